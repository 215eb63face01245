package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/fiorix/go-smpp/smpp/pdu/pdutlv"
)

// ErrBody is a PDU body that does not match its command's layout.
var ErrBody = errors.New("smpp: malformed body")

// Builder appends fields to a PDU body.
type Builder struct{ b []byte }

// CString appends a C-Octet String (§3.1): s and a NUL.
func (w *Builder) CString(s string) *Builder { w.b = append(append(w.b, s...), 0); return w }

// Byte appends an Integer(1).
func (w *Builder) Byte(v byte) *Builder { w.b = append(w.b, v); return w }

// Octets appends raw octets.
func (w *Builder) Octets(v []byte) *Builder { w.b = append(w.b, v...); return w }

// TLV appends an optional parameter (§3.1, §5.3).
func (w *Builder) TLV(tag uint16, v []byte) *Builder {
	w.b = binary.BigEndian.AppendUint16(w.b, tag)
	w.b = binary.BigEndian.AppendUint16(w.b, uint16(len(v)))
	w.b = append(w.b, v...)
	return w
}

// Bytes returns the body built so far.
func (w *Builder) Bytes() []byte { return w.b }

// Parser reads fields from a PDU body; the first error sticks.
type Parser struct {
	b   []byte
	err error
}

// NewParser parses body.
func NewParser(body []byte) *Parser { return &Parser{b: body} }

func (p *Parser) fail(what string) {
	if p.err == nil {
		p.err = fmt.Errorf("%w: %s", ErrBody, what)
	}
}

// CString reads a C-Octet String up to its NUL.
func (p *Parser) CString() string {
	i := bytes.IndexByte(p.b, 0)
	if p.err != nil || i < 0 {
		p.fail("unterminated C-Octet String")
		return ""
	}
	s := string(p.b[:i])
	p.b = p.b[i+1:]
	return s
}

// Byte reads an Integer(1).
func (p *Parser) Byte() byte {
	if p.err != nil || len(p.b) < 1 {
		p.fail("truncated")
		return 0
	}
	v := p.b[0]
	p.b = p.b[1:]
	return v
}

// Octets reads n octets (copied).
func (p *Parser) Octets(n int) []byte {
	if p.err != nil || len(p.b) < n {
		p.fail("truncated octet string")
		return nil
	}
	v := bytes.Clone(p.b[:n])
	p.b = p.b[n:]
	return v
}

// TLVs reads the optional parameters that end every body, with go-smpp's
// decoder (it checks each length against what is left).
func (p *Parser) TLVs() map[uint16][]byte {
	if p.err != nil {
		return nil
	}
	m, err := pdutlv.DecodeTLV(bytes.NewBuffer(p.b))
	if err != nil {
		p.fail(err.Error())
		return nil
	}
	p.b = nil
	out := make(map[uint16][]byte, len(m))
	for tag, v := range m {
		out[uint16(tag)] = bytes.Clone(v.Bytes())
	}
	return out
}

// Err returns the first error met.
func (p *Parser) Err() error { return p.err }

// CStringValue returns a TLV value read as a C-Octet String, without its NUL.
func CStringValue(v []byte) string {
	if i := bytes.IndexByte(v, 0); i >= 0 {
		v = v[:i]
	}
	return string(v)
}
