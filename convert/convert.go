// Package convert turns a mail into the text of an SMS, and that text into
// encoded SMS segments (GSM 03.38 7-bit or UCS-2, concatenated with UDH).
package convert

import (
	"errors"

	"github.com/emersion/go-message/textproto"
)

// Limits cap what a hostile mail can make us do.
type Limits struct {
	MaxDepth int   // MIME nesting depth
	MaxParts int   // MIME parts in total
	MaxBytes int64 // decoded bytes of text read from all parts
}

// DefaultLimits are the limits used when a Limits field is zero.
func DefaultLimits() Limits {
	return Limits{MaxDepth: 20, MaxParts: 100, MaxBytes: 1 << 20}
}

var (
	// ErrNoText: the mail has neither a text body nor a subject (SMTP 550 5.6.0).
	ErrNoText = errors.New("convert: mail has no text to send")
	// ErrTooComplex: the mail exceeds Limits (SMTP 552 5.3.4). Returned wrapped.
	ErrTooComplex = errors.New("convert: mail exceeds limits")
)

// Mail is what Extract finds in a message.
type Mail struct {
	Subject   string // decoded (RFC 2047) Subject
	MessageID string // Message-ID with the angle brackets, "" if none
	Header    []byte // the original header block as received, for reports
	Text      string // cleaned text to send; the subject when the body has none
	// Fields is the header parsed, lines that are not fields left out,
	// for the callers that look at other fields (Auto-Submitted…).
	Fields textproto.Header
}

// Coding is the SMS alphabet of an encoded message.
type Coding uint8

const (
	GSM7 Coding = iota // 3GPP TS 23.038 default alphabet + extension table
	UCS2               // UTF-16BE
)

// DataCoding is the SMPP data_coding value for c (0x00 SMSC default, 0x08 UCS-2).
func (c Coding) DataCoding() byte {
	if c == UCS2 {
		return 0x08
	}
	return 0x00
}

// Segment is one SMS of a possibly concatenated message. Its user data
// header depends on the concatenation reference, which is assigned when the
// message is queued: see Header.
type Segment struct {
	Payload []byte // GSM7: one unpacked septet per octet; UCS2: UTF-16BE
	Text    string // the characters this segment carries
}

// Encoded is a text ready for submit_sm.
type Encoded struct {
	Coding Coding
	// National language shift tables (TS 23.038 §6.2.1.2.4) in use, by
	// their national language identifier (1 Turkish, 2 Spanish, 3
	// Portuguese…); 0 for the default alphabet and extension table.
	LockingShift, SingleShift uint8
	Concat                    Concat
	Segments                  []Segment
	Needed                    int  // segments the whole text needs, before any truncation (ConcatPayload: UDH 8-bit parts the SMSC will make)
	Truncated                 bool // the text was cut to Options.MaxSegments
}

// Header is everything the user data header of one segment says: the
// concatenation information element and the shift-table ones.
type Header struct {
	Concat                    Concat
	Ref                       uint16 // concatenation reference (only the low 8 bits with ConcatUDH8)
	Total, Seq                int    // number of parts, and this part's number from 1
	LockingShift, SingleShift uint8
}

// Header returns the header of segment i (from 0) with reference ref.
func (e *Encoded) Header(i int, ref uint16) Header {
	return Header{Concat: e.Concat, Ref: ref, Total: len(e.Segments), Seq: i + 1,
		LockingShift: e.LockingShift, SingleShift: e.SingleShift}
}

// UDH returns the user data header, with its length octet (TS 23.040
// §9.2.3.24), or nil when the segment needs none: a single SMS in the
// default alphabet, or a concatenation that SMPP carries outside the user
// data (ConcatSAR, ConcatPayload).
func (h Header) UDH() []byte {
	var ie []byte
	if h.Total > 1 {
		switch h.Concat {
		case ConcatUDH8, "":
			// §9.2.3.24.1: IEI 00, length 3, reference, total, sequence.
			ie = append(ie, 0x00, 0x03, byte(h.Ref), byte(h.Total), byte(h.Seq))
		case ConcatUDH16:
			// §9.2.3.24.8: IEI 08, length 4, 16-bit reference, total, sequence.
			ie = append(ie, 0x08, 0x04, byte(h.Ref>>8), byte(h.Ref), byte(h.Total), byte(h.Seq))
		}
	}
	if h.SingleShift != 0 {
		ie = append(ie, 0x24, 0x01, h.SingleShift) // §9.2.3.24.15
	}
	if h.LockingShift != 0 {
		ie = append(ie, 0x25, 0x01, h.LockingShift) // §9.2.3.24.16
	}
	if len(ie) == 0 {
		return nil
	}
	return append([]byte{byte(len(ie))}, ie...)
}
