package report

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/emersion/go-message"
	"github.com/emersion/go-message/textproto"
)

// maxPartBytes bounds what Parse reads of one part.
const maxPartBytes = 1 << 20

// Parsed is a report read back by Parse, for tests and tools.
type Parsed struct {
	Header     message.Header     // the top-level header
	ReportType string             // "delivery-status" or "global-delivery-status"
	Text       string             // the human-readable part, decoded
	Message    textproto.Header   // per-message fields (RFC 3464 §2.2)
	Recipients []textproto.Header // per-recipient fields (RFC 3464 §2.3)
	OrigHeader []byte             // the third part, decoded; nil if absent
	OrigType   string             // its media type: text/rfc822-headers, message/rfc822…
}

// Parse reads a report as built by Build: a multipart/report with a text
// part, a (global-)delivery-status part and optionally the original
// header. It is strict about that shape and is not a general DSN parser.
func Parse(msg []byte) (*Parsed, error) {
	e, err := message.Read(bytes.NewReader(msg))
	if err != nil {
		return nil, fmt.Errorf("report: parse: %w", err)
	}
	t, params, err := e.Header.ContentType()
	if err != nil || t != "multipart/report" {
		return nil, fmt.Errorf("report: parse: content type %q is not multipart/report", t)
	}
	p := &Parsed{Header: e.Header, ReportType: params["report-type"]}
	if err := p.readParts(e.MultipartReader()); err != nil {
		return nil, fmt.Errorf("report: parse: %w", err)
	}
	return p, nil
}

func (p *Parsed) readParts(mr message.MultipartReader) error {
	for i := 0; ; i++ {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			if i < 2 {
				return fmt.Errorf("%d parts, want 2 or 3", i)
			}
			return nil
		}
		if err != nil {
			return fmt.Errorf("part %d: %w", i+1, err)
		}
		if err := p.readPart(i, part); err != nil {
			return fmt.Errorf("part %d: %w", i+1, err)
		}
	}
}

// wantTypes are the allowed media types of the parts, in order.
var wantTypes = [][]string{
	{"text/plain"},
	{"message/delivery-status", "message/global-delivery-status"},
	{"text/rfc822-headers", "message/global-headers", "message/rfc822", "message/global"},
}

func (p *Parsed) readPart(i int, e *message.Entity) error {
	if i >= len(wantTypes) {
		return errors.New("too many parts")
	}
	t, _, _ := e.Header.ContentType()
	if !slices.Contains(wantTypes[i], t) {
		return fmt.Errorf("type %q, want one of %q", t, wantTypes[i])
	}
	body, err := io.ReadAll(io.LimitReader(e.Body, maxPartBytes))
	if err != nil {
		return err
	}
	switch i {
	case 0:
		p.Text = string(body)
	case 1:
		if strings.TrimPrefix(t, "message/") != p.ReportType {
			return fmt.Errorf("type %q does not match report-type %q", t, p.ReportType)
		}
		return p.readStatus(body)
	case 2:
		p.OrigHeader, p.OrigType = body, t
	}
	return nil
}

// readStatus splits the delivery-status body into its per-message block
// and one or more per-recipient blocks (RFC 3464 §2.1).
func (p *Parsed) readStatus(body []byte) error {
	br := bufio.NewReader(bytes.NewReader(body))
	h, err := textproto.ReadHeader(br)
	if err != nil {
		return fmt.Errorf("per-message fields: %w", err)
	}
	p.Message = h
	// ReadHeader returns an empty header at EOF; each call consumes at
	// least one line, so the loop ends.
	for {
		if _, err := br.Peek(1); errors.Is(err, io.EOF) {
			break
		}
		h, err := textproto.ReadHeader(br)
		if err != nil {
			return fmt.Errorf("per-recipient fields: %w", err)
		}
		if h.Len() > 0 {
			p.Recipients = append(p.Recipients, h)
		}
	}
	if len(p.Recipients) == 0 {
		return errors.New("no per-recipient fields")
	}
	return nil
}
