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
	if hdr := crlfLines(r.OrigHeader); hdr != nil {
		parts = append(parts, headersPart(hdr))
	}
	return parts, nil
}

// global reports whether a delivery-status field is not ASCII, which needs
// message/global-delivery-status (RFC 6533 §6.1).
func (r Report) global() bool {
	for _, s := range []string{r.EnvID, r.OrigRcpt, r.FinalRcpt, r.Diagnostic} {
		if !isASCII(s) {
			return true
		}
	}
	return false
}

// statusPart is the message/delivery-status part (RFC 3464 §2.1): the
// per-message fields, a blank line, the per-recipient fields. Plain
// message/delivery-status must be 7bit ASCII (RFC 2045 §6.4), so the global
// variant is used, quoted-printable, when a field is not.
func (r Report) statusPart() (part, error) {
	var body bytes.Buffer
	if err := writeFields(&body, r.perMessage()); err != nil {
		return part{}, fmt.Errorf("%w: delivery-status per-message fields: %v", ErrInvalid, err)
	}
	if err := writeFields(&body, r.perRecipient()); err != nil {
		return part{}, fmt.Errorf("%w: delivery-status per-recipient fields: %v", ErrInvalid, err)
	}
	// The delimiter's leading CRLF ends the last field (RFC 2046 §5.1.1).
	body.Truncate(body.Len() - len("\r\n"))
	h := newHeader("Content-Type", "message/delivery-status")
	if r.global() {
		h = newHeader(
			"Content-Type", "message/global-delivery-status",
			"Content-Transfer-Encoding", "quoted-printable",
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

// perRecipient is the RFC 3464 §2.3 block for our one recipient.
func (r Report) perRecipient() []string {
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
	return kv
}

// finalRecipient is "rfc822; addr", or "utf-8; addr" for an
// internationalised address (RFC 6533 §3).
func (r Report) finalRecipient() string {
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
// or message/global-headers (RFC 6533 §6.3) if it is not ASCII. A header
// that cannot go as 7bit is sent quoted-printable.
func headersPart(hdr []byte) part {
	t := "text/rfc822-headers"
	if !isASCII(string(hdr)) {
		t = "message/global-headers"
	}
	if !needsEncoding(hdr) {
		return part{header: newHeader("Content-Type", t), body: hdr}
	}
	return part{header: newHeader(
		"Content-Type", t,
		"Content-Transfer-Encoding", "quoted-printable",
	), body: hdr}
}
