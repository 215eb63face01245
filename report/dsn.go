package report

import (
	"bytes"
	"fmt"

	"github.com/emersion/go-message/textproto"
)

// parts returns the body parts of the report in order (RFC 3464 §2):
// human-readable text, delivery status, and the original header if any.
func (r Report) parts() ([]part, error) {
	status, err := r.statusPart()
	if err != nil {
		return nil, err
	}
	parts := []part{r.textPart(), status}
	if orig, ok := originalPart(r.Original, r.OrigUTF8); ok {
		parts = append(parts, orig)
	} else if hdr := crlfLines(r.OrigHeader); hdr != nil {
		parts = append(parts, headersPart(hdr, r.SevenBit))
	}
	return parts, nil
}

// originalPart is the whole original mail (RFC 3461 §4.3 RET=FULL) as
// message/rfc822, or message/global (RFC 6532 §3.5) for a mail that came
// with SMTPUTF8. RFC 2046 §5.2.1 allows only 7bit, 8bit or binary for
// message/rfc822: a mail with 8-bit octets is sent 8bit, and one that
// could only go as binary (a NUL, a line over 998 octets) is not sent
// (ok false): the report carries its header instead.
func originalPart(orig []byte, utf8 bool) (part, bool) {
	if len(orig) == 0 {
		return part{}, false
	}
	if !bytes.HasSuffix(orig, []byte("\r\n")) {
		orig = append(orig[:len(orig):len(orig)], "\r\n"...)
	}
	cte := "7bit"
	for _, line := range bytes.Split(orig, []byte("\r\n")) {
		switch {
		case len(line) > maxLine || bytes.IndexByte(line, 0) >= 0 || bytes.ContainsAny(line, "\r\n"):
			return part{}, false
		case !isASCII(string(line)):
			cte = "8bit"
		}
	}
	t := "message/rfc822"
	if utf8 {
		t = "message/global"
	}
	return part{header: newHeader("Content-Type", t, "Content-Transfer-Encoding", cte), body: orig}, true
}

// global reports whether a delivery-status field is not ASCII, which needs
// message/global-delivery-status (RFC 6533 §6.1).
func (r Report) global() bool {
	if !isASCII(r.EnvID) {
		return true
	}
	for _, rc := range r.recipients() {
		for _, s := range []string{rc.OrigRcpt, rc.FinalRcpt, rc.Diagnostic} {
			if !isASCII(s) {
				return true
			}
		}
	}
	return false
}

// statusPart is the message/delivery-status part (RFC 3464 §2.1): the
// per-message fields, a blank line, the per-recipient fields. Plain
// message/delivery-status must be 7bit ASCII (RFC 2045 §6.4), so the global
// variant is used when a field is not: 8bit, which RFC 6533 §6.1 requires
// unless the path is 7-bit only (SevenBit), where it goes quoted-printable.
func (r Report) statusPart() (part, error) {
	var body bytes.Buffer
	if err := writeFields(&body, r.perMessage()); err != nil {
		return part{}, fmt.Errorf("%w: delivery-status per-message fields: %v", ErrInvalid, err)
	}
	for _, rc := range r.recipients() {
		if err := writeFields(&body, rc.perRecipient()); err != nil {
			return part{}, fmt.Errorf("%w: delivery-status per-recipient fields: %v", ErrInvalid, err)
		}
	}
	// The delimiter's leading CRLF ends the last field (RFC 2046 §5.1.1).
	body.Truncate(body.Len() - len("\r\n"))
	h := newHeader("Content-Type", "message/delivery-status")
	if r.global() {
		h = newHeader(
			"Content-Type", "message/global-delivery-status",
			"Content-Transfer-Encoding", utf8Encoding(body.Bytes(), r.SevenBit),
		)
	}
	return part{header: h, body: body.Bytes()}, nil
}

// perMessage is the RFC 3464 §2.2 block.
func (r Report) perMessage() []string {
	kv := []string{"Reporting-MTA", "dns; " + r.ReportingMTA} // §2.2.2
	if r.EnvID != "" {
		kv = append(kv, "Original-Envelope-Id", r.EnvID) // §2.2.1
	}
	if !r.Arrival.IsZero() {
		kv = append(kv, "Arrival-Date", formatDate(r.Arrival)) // §2.2.5
	}
	return kv
}

// perRecipient is the RFC 3464 §2.3 block of one recipient.
func (r Recipient) perRecipient() []string {
	var kv []string
	if r.OrigRcpt != "" {
		kv = append(kv, "Original-Recipient", r.OrigRcpt) // §2.3.1
	}
	kv = append(kv,
		"Final-Recipient", r.finalRecipient(), // §2.3.2
		"Action", string(r.Action), // §2.3.3
		"Status", r.Status, // §2.3.4
	)
	if r.Diagnostic != "" {
		kv = append(kv, "Diagnostic-Code", r.Diagnostic) // §2.3.6
	}
	if !r.LastAttempt.IsZero() {
		kv = append(kv, "Last-Attempt-Date", formatDate(r.LastAttempt)) // §2.3.7
	}
	if r.Action == ActionDelayed && !r.WillRetryUntil.IsZero() {
		kv = append(kv, "Will-Retry-Until", formatDate(r.WillRetryUntil)) // §2.3.8
	}
	return kv
}

// finalRecipient is "rfc822; addr", or "utf-8; addr" for an
// internationalised address (RFC 6533 §3).
func (r Recipient) finalRecipient() string {
	if isASCII(r.FinalRcpt) {
		return "rfc822; " + r.FinalRcpt
	}
	return "utf-8; " + r.FinalRcpt
}

// writeFields writes one header block, folded to 78 columns where there is
// whitespace, ending in a blank line. It fails on CR or LF in a value.
func writeFields(w *bytes.Buffer, kv []string) error {
	h := newHeader(kv...) // validate has refused CR and LF in values
	return textproto.WriteHeader(w, h.Header)
}

// headersPart returns the original header (RFC 6522 text/rfc822-headers),
// or message/global-headers (RFC 6533 §6.3) if it is not ASCII, which
// goes 8bit unless sevenBit. A header that cannot go as it is (a line over
// 998 octets, a NUL) is sent quoted-printable.
func headersPart(hdr []byte, sevenBit bool) part {
	if isASCII(string(hdr)) {
		if !needsEncoding(hdr) {
			return part{header: newHeader("Content-Type", "text/rfc822-headers"), body: hdr}
		}
		return part{header: newHeader(
			"Content-Type", "text/rfc822-headers",
			"Content-Transfer-Encoding", "quoted-printable",
		), body: hdr}
	}
	return part{header: newHeader(
		"Content-Type", "message/global-headers",
		"Content-Transfer-Encoding", utf8Encoding(hdr, sevenBit),
	), body: hdr}
}

// utf8Encoding is the Content-Transfer-Encoding of a UTF-8 message/global-*
// part: 8bit, as RFC 6533 §6 asks, unless the path is 7-bit only or a line
// could not go 8bit (over 998 octets, or a NUL: RFC 2045 §2.8); then
// quoted-printable, which go-message applies when the part is written.
func utf8Encoding(b []byte, sevenBit bool) string {
	if sevenBit {
		return "quoted-printable"
	}
	for _, line := range bytes.Split(b, []byte("\r\n")) {
		if len(line) > maxLine || bytes.IndexByte(line, 0) >= 0 {
			return "quoted-printable"
		}
	}
	return "8bit"
}
