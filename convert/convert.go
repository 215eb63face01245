// Package convert turns a mail into the text of an SMS, and that text into
// encoded SMS segments (GSM 03.38 7-bit or UCS-2, concatenated with UDH).
package convert

import "errors"

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

// Segment is one SMS of a possibly concatenated message.
type Segment struct {
	UDH     []byte // user data header incl. its length octet; nil for a single SMS
	Payload []byte // GSM7: one unpacked septet per octet; UCS2: UTF-16BE
}

// Encoded is a text ready for submit_sm.
type Encoded struct {
	Coding   Coding
	Segments []Segment
}
