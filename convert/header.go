package convert

import (
	"bytes"
	"io"
	"mime"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/emersion/go-message"
	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-message/textproto"
	"golang.org/x/text/encoding/charmap"
)

// subject decodes the RFC 2047 Subject. An encoded word in an unknown
// charset is salvaged like a body part, not left encoded.
func subject(h textproto.Header) string {
	// Raw 8-bit subjects (RFC 6532, or plain misuse) are salvaged like
	// bodies; a broken encoded word loses its invalid bytes.
	v := salvageUTF8([]byte(h.Get("Subject")))
	dec := mime.WordDecoder{CharsetReader: salvageCharsetReader}
	if s, err := dec.DecodeHeader(v); err == nil {
		v = strings.ToValidUTF8(s, "")
	}
	// Folding and tabs leave runs of white space; controls have no place
	// in an SMS.
	return strings.Join(strings.FieldsFunc(v, func(r rune) bool {
		return unicode.IsSpace(r) || unicode.IsControl(r)
	}), " ")
}

// salvageCharsetReader decodes what go-message's charset package knows and
// reads anything else as UTF-8 when valid, else Windows-1252.
func salvageCharsetReader(charset string, input io.Reader) (io.Reader, error) {
	if message.CharsetReader != nil {
		if r, err := message.CharsetReader(charset, input); err == nil {
			return r, nil
		}
	}
	b, err := io.ReadAll(input)
	if err != nil {
		return nil, err
	}
	return strings.NewReader(salvageUTF8(b)), nil
}

// salvageUTF8 returns b as text: as is when it is valid UTF-8, else read as
// Windows-1252, the most common 8-bit charset of mislabelled mail (and what
// browsers assume). Every byte maps to some character, so no text is lost.
func salvageUTF8(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	s, err := charmap.Windows1252.NewDecoder().Bytes(b)
	if err != nil {
		return string(bytes.ToValidUTF8(b, []byte("\uFFFD")))
	}
	return string(s)
}

// messageID returns the Message-ID with its angle brackets, "" if none. An
// id go-message cannot parse is kept when it is at least bracketed.
func messageID(h textproto.Header) string {
	mh := mail.Header{Header: message.Header{Header: h}}
	if id, err := mh.MessageID(); err == nil && id != "" {
		return "<" + id + ">"
	}
	v := strings.TrimSpace(h.Get("Message-Id"))
	if len(v) > 2 && v[0] == '<' && v[len(v)-1] == '>' && !strings.ContainsAny(v, " \t\r\n") {
		return v
	}
	return ""
}
