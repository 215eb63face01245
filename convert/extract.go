package convert

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/emersion/go-message"
	_ "github.com/emersion/go-message/charset" // decode every charset, not only UTF-8
	"github.com/emersion/go-message/textproto"
)

// maxHeaderBytes caps one header block, as go-message does by default.
const maxHeaderBytes = 1 << 20

// Extract reads an RFC 5322 message and returns the text to send.
//
// It fails with ErrNoText when there is nothing to send, with ErrTooComplex
// (wrapped) beyond opt.Limits or for a header block over 1 MiB, and with the reader's
// error when r fails. A part with an unknown charset or a broken transfer
// encoding is salvaged or skipped, never fatal. Extract may stop reading r
// before its end once it has found the text.
func Extract(r io.Reader, opt Options) (*Mail, error) {
	src := &stickyReader{r: r}
	m, err := extract(src, opt.withDefaults())
	if src.err != nil {
		// A failing source is not a malformed mail: never salvage it.
		return nil, fmt.Errorf("convert: read message: %w", src.err)
	}
	return m, err
}

func extract(r io.Reader, opt Options) (*Mail, error) {
	br := bufio.NewReaderSize(r, readBuffer(r))
	raw, body, err := readHeader(br)
	if err != nil {
		return nil, err
	}
	h := parseHeader(raw)
	m := &Mail{Header: raw, Subject: subject(h), MessageID: messageID(h), Fields: h}

	c, err := newCleaner(opt.Footers)
	if err != nil {
		return nil, err
	}
	root, partErr := message.New(message.Header{Header: h}, body)
	w := walker{lim: opt.Limits, cleaner: c}
	f, err := w.entity(root, partErr, 0)
	if err != nil {
		return nil, err
	}
	m.Text = withSubject(f.text, m.Subject, opt)
	if m.Text == "" {
		return nil, ErrNoText
	}
	return m, nil
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	if l.MaxDepth == 0 {
		l.MaxDepth = d.MaxDepth
	}
	if l.MaxParts == 0 {
		l.MaxParts = d.MaxParts
	}
	if l.MaxBytes == 0 {
		l.MaxBytes = d.MaxBytes
	}
	return l
}

// found is the text a subtree yields, and where it came from: the choice
// between alternatives and the message/rfc822 fallback depend on it.
type found struct {
	text   string
	html   bool // converted from text/html
	nested bool // from inside a message/rfc822 part
}

// walker descends the MIME tree itself, rather than through Entity.Walk, so
// that it can refuse a part that is too deep before reading into it, and stop
// as soon as it has the text.
type walker struct {
	lim     Limits
	cleaner cleaner
	parts   int
	bytes   int64 // decoded text bytes read so far
}

func (w *walker) entity(e *message.Entity, partErr error, depth int) (found, error) {
	w.parts++
	if w.parts > w.lim.MaxParts {
		return found{}, fmt.Errorf("%w: more than %d MIME parts", ErrTooComplex, w.lim.MaxParts)
	}
	if disp, _, _ := e.Header.ContentDisposition(); strings.EqualFold(disp, "attachment") {
		return found{}, nil
	}
	t, params := mediaType(e)
	switch {
	case strings.HasPrefix(t, "multipart/"):
		if depth >= w.lim.MaxDepth {
			return found{}, fmt.Errorf("%w: MIME nesting deeper than %d", ErrTooComplex, w.lim.MaxDepth)
		}
		if t == "multipart/alternative" {
			return w.alternative(e.MultipartReader(), depth)
		}
		return w.mixed(e.MultipartReader(), depth)
	case t == "message/rfc822" || t == "message/global":
		if depth >= w.lim.MaxDepth {
			return found{}, fmt.Errorf("%w: MIME nesting deeper than %d", ErrTooComplex, w.lim.MaxDepth)
		}
		if partErr != nil && !rawEncoding(e) {
			return found{}, nil
		}
		return w.message(e.Body, depth)
	case t == "text/plain" || t == "text/html":
		return w.text(e, t, params, partErr)
	}
	return found{}, nil // images, calendars, anything not meant as the body
}

// mediaType is the part's lower-case media type; RFC 2045 §5.2 makes a
// missing or unparsable one text/plain.
func mediaType(e *message.Entity) (string, map[string]string) {
	t, params, _ := e.Header.ContentType()
	if t == "" {
		return "text/plain", params
	}
	return t, params
}

// alternative prefers text/plain, unless empty, over text/html (RFC 2046
// §5.1.4 orders by fidelity, but for an SMS plain text is the better
// rendering), and a forwarded message last.
func (w *walker) alternative(mr message.MultipartReader, depth int) (found, error) {
	var plain, html, nested found
	err := w.children(mr, depth, func(f found) bool {
		switch {
		case f.text == "":
		case f.nested:
			if nested.text == "" {
				nested = f
			}
		case f.html:
			if html.text == "" {
				html = f
			}
		default:
			plain = f
			return true
		}
		return false
	})
	return firstText(plain, html, nested), err
}

// mixed takes the first part with text, for multipart/mixed, related and any
// other multipart; a forwarded message only when nothing else has text.
func (w *walker) mixed(mr message.MultipartReader, depth int) (found, error) {
	var first, nested found
	err := w.children(mr, depth, func(f found) bool {
		if f.text == "" {
			return false
		}
		if f.nested {
			if nested.text == "" {
				nested = f
			}
			return false
		}
		first = f
		return true
	})
	return firstText(first, nested), err
}

func firstText(fs ...found) found {
	for _, f := range fs {
		if f.text != "" {
			return f
		}
	}
	return found{}
}

// children walks the parts of a multipart until visit returns true. A
// malformed multipart ends the walk but keeps what was found before it.
func (w *walker) children(mr message.MultipartReader, depth int, visit func(found) bool) error {
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			return nil
		}
		if err != nil && !message.IsUnknownCharset(err) && !message.IsUnknownEncoding(err) {
			return nil
		}
		f, err := w.entity(p, err, depth+1)
		if err != nil {
			return err
		}
		if visit(f) {
			return nil
		}
	}
}

// message reads an attached message/rfc822 and walks its body. With no body
// text, its subject stands for it.
func (w *walker) message(body io.Reader, depth int) (found, error) {
	raw, rest, err := readHeader(bufio.NewReader(body))
	if errors.Is(err, ErrTooComplex) {
		return found{}, err
	}
	if err != nil {
		return found{}, nil // broken inside an encoding of the outer part
	}
	h := parseHeader(raw)
	inner, partErr := message.New(message.Header{Header: h}, rest)
	f, err := w.entity(inner, partErr, depth+1)
	if err != nil {
		return found{}, err
	}
	if f.text == "" {
		f.text = subject(h)
	}
	f.nested = true
	return f, nil
}

// text reads a text/plain or text/html leaf and cleans it. A part whose
// transfer encoding go-message could not undo is skipped, unless its name is
// a misspelt identity encoding; an unknown charset is salvaged.
func (w *walker) text(e *message.Entity, t string, params map[string]string, partErr error) (found, error) {
	if partErr != nil && !rawEncoding(e) {
		return found{}, nil
	}
	b, err := w.read(e.Body)
	if err != nil {
		return found{}, err
	}
	// Unknown charsets, and 8-bit text labelled us-ascii or utf-8, reach
	// here undecoded.
	s := salvageUTF8(b)
	if t == "text/html" {
		return found{text: w.cleaner.clean(htmlToText(s)), html: true}, nil
	}
	if strings.EqualFold(params["format"], "flowed") {
		s = unflow(s, strings.EqualFold(params["delsp"], "yes"))
	}
	return found{text: w.cleaner.clean(s)}, nil
}

// read reads a decoded body within the byte budget. A broken encoding or an
// unterminated multipart ends the body early: what was decoded is kept.
func (w *walker) read(body io.Reader) ([]byte, error) {
	left := w.lim.MaxBytes - w.bytes
	b, _ := io.ReadAll(io.LimitReader(body, left+1))
	w.bytes += int64(len(b))
	if w.bytes > w.lim.MaxBytes {
		return nil, fmt.Errorf("%w: more than %d bytes of text", ErrTooComplex, w.lim.MaxBytes)
	}
	return b, nil
}

// rawEncoding reports whether the part's Content-Transfer-Encoding, though
// not understood by go-message, names an identity encoding ("8-bit", "7 bit"),
// so that the body can be read as it is.
func rawEncoding(e *message.Entity) bool {
	cte := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			return r
		}
		return -1
	}, strings.ToLower(e.Header.Get("Content-Transfer-Encoding")))
	switch cte {
	case "", "7bit", "8bit", "binary":
		return true
	}
	return false
}

// readHeader returns the header block as received and a reader of the
// body after it. A script's mail often has no blank line after its header
// ("Subject: Alert", then the text): when a line that is neither a field
// nor a continuation has no field after it in the block, the body starts
// there, as Postfix and sendmail read it (RFC 5322 §2.1 wants the blank
// line), and the blank line, if one came later, stays in the body.
// Otherwise the whole text would be taken for a broken header and lost. A
// stray line with fields after it (an address list folded without its
// indent) is part of the header, and parseHeader drops it: the
// Content-Type after it still counts.
func readHeader(br *bufio.Reader) (raw []byte, body io.Reader, err error) {
	raw, blank, err := readHeaderBlock(br)
	if err != nil {
		return raw, br, err
	}
	end := headerEnd(raw)
	if end == len(raw) || fieldFollows(raw[end:]) {
		return raw, br, nil
	}
	rest := raw[end:len(raw):len(raw)]
	if blank {
		eol := "\n"
		if bytes.Contains(raw, []byte("\r\n")) {
			eol = "\r\n"
		}
		rest = append(rest, eol...)
	}
	return raw[:end], io.MultiReader(bytes.NewReader(rest), br), nil
}

// fieldFollows reports whether a line of b is a header field.
func fieldFollows(b []byte) bool {
	for line := range bytes.Lines(b) {
		if validFieldLine(bytes.TrimRight(line, "\r\n")) {
			return true
		}
	}
	return false
}

// headerEnd is the offset of the first line of raw that is neither a field
// nor a continuation of one (len(raw) if none).
func headerEnd(raw []byte) int {
	off, inField := 0, false
	for line := range bytes.Lines(raw) {
		l := bytes.TrimRight(line, "\r\n")
		switch {
		case len(l) > 0 && (l[0] == ' ' || l[0] == '\t') && inField:
		case validFieldLine(l):
			inField = true
		default:
			return off
		}
		off += len(line)
	}
	return off
}

// readHeaderBlock returns the header block as received, up to and excluding
// the blank line, which it consumes; blank is false when the data ended
// before one.
func readHeaderBlock(br *bufio.Reader) (hdr []byte, blank bool, err error) {
	atLineStart := true
	for {
		chunk, err := br.ReadSlice('\n')
		if atLineStart && (string(chunk) == "\r\n" || string(chunk) == "\n") {
			return hdr, true, nil
		}
		hdr = append(hdr, chunk...)
		if len(hdr) > maxHeaderBytes {
			return nil, false, fmt.Errorf("%w: header block over %d bytes", ErrTooComplex, maxHeaderBytes)
		}
		switch {
		case err == bufio.ErrBufferFull:
			atLineStart = false
		case err == io.EOF:
			return hdr, false, nil
		case err != nil:
			return nil, false, fmt.Errorf("convert: read header: %w", err)
		default:
			atLineStart = true
		}
	}
}

// parseHeader parses a header block leniently: lines that are neither a
// field nor its continuation are dropped, where go-message would give up on
// the whole header and so lose Content-Type.
func parseHeader(raw []byte) textproto.Header {
	var buf bytes.Buffer
	inField := false
	for line := range bytes.Lines(raw) {
		line = bytes.TrimRight(line, "\r\n")
		switch {
		case len(line) > 0 && (line[0] == ' ' || line[0] == '\t'):
			if !inField {
				continue
			}
		case validFieldLine(line):
			inField = true
		default:
			inField = false
			continue
		}
		buf.Write(line)
		buf.WriteString("\r\n")
	}
	buf.WriteString("\r\n")
	// Sized to the block: the default 4 KiB buffer was most of the
	// allocation of a typical mail.
	h, _ := textproto.ReadHeader(bufio.NewReaderSize(&buf, buf.Len()))
	return h
}

// validFieldLine mirrors the field-name check of go-message's textproto
// (RFC 5322 §2.2: printable ASCII but colon, then the colon).
func validFieldLine(line []byte) bool {
	i := bytes.IndexByte(line, ':')
	if i < 0 {
		return false
	}
	name := bytes.TrimRight(line[:i], " \t")
	if len(name) == 0 {
		return false
	}
	for _, c := range name {
		if c < 33 || c > 126 {
			return false
		}
	}
	return true
}

// stickyReader remembers the first error of the source other than EOF, so
// that Extract tells a broken connection from a broken mail.
type stickyReader struct {
	r   io.Reader
	err error
}

func (s *stickyReader) Read(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF {
		s.err = err
	}
	return n, err
}

// withSubject applies the subject policy to the body text.
func withSubject(body, subject string, opt Options) string {
	switch {
	case subject == "" || opt.Subject == SubjectNone:
		return body
	case body == "":
		return subject
	case opt.Subject == SubjectPrefix:
		return subject + opt.SubjectSeparator + body
	}
	return body
}

// readBuffer sizes the reader's buffer: 4 KiB, or less for a message held
// in memory that is smaller (the server's case).
func readBuffer(r io.Reader) int {
	if s, ok := r.(*stickyReader); ok {
		r = s.r
	}
	if l, ok := r.(interface{ Len() int }); ok && l.Len() < 4096 {
		return max(l.Len(), 16)
	}
	return 4096
}
