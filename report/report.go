// Package report builds RFC 3464 delivery status notifications for SMS
// outcomes and delivers them, from the null sender, to a smarthost (SMTP,
// with STARTTLS and AUTH), straight to the recipient domain's MX (MX), or
// into an outbox directory (Outbox).
package report

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/emersion/go-message"
)

// Action is the RFC 3464 §2.3.3 action.
type Action string

const (
	ActionDelivered Action = "delivered"
	ActionFailed    Action = "failed"
	ActionDelayed   Action = "delayed"
)

// ErrInvalid is wrapped by Build errors caused by the Report itself (a
// missing or malformed field): retrying such a report cannot succeed.
var ErrInvalid = errors.New("report: invalid report")

// Report is everything one delivery status notification says.
type Report struct {
	ReportingMTA string    // our host name, for "Reporting-MTA: dns; …" and Message-ID
	From         string    // postmaster address for the From header
	To           string    // the original envelope sender
	EnvID        string    // RFC 3461 ENVID, "" if none
	Arrival      time.Time // when we accepted the mail; zero omits Arrival-Date
	Now          time.Time // the report's Date

	// MessageID is the report's own Message-ID, with angle brackets. If
	// empty, Build generates <random@ReportingMTA>. The MIME boundary is
	// derived from it, so a fixed MessageID makes Build deterministic.
	MessageID string

	OrigMessageID string // with angle brackets, "" if none
	OrigSubject   string
	OrigHeader    []byte // original header block, sent as text/rfc822-headers
	// Original is the whole original mail (RFC 3461 RET=FULL), sent as
	// message/rfc822 (message/global if OrigUTF8, RFC 6532 §3.5) instead
	// of OrigHeader. It is left out, and OrigHeader sent, when it cannot go
	// in a mail as it is (a line over 998 octets or a NUL, RFC 5322 §2.1.1).
	// An 8-bit original makes the report 8-bit: see SMTP.Send.
	Original []byte
	OrigUTF8 bool

	// SevenBit says the path to To is 7-bit only (the smarthost does not
	// offer 8BITMIME): the UTF-8 parts (message/global-delivery-status,
	// message/global-headers) then go quoted-printable instead of 8bit,
	// which RFC 6533 §6 allows only there. The bridge sets it when a
	// report comes back with ErrNo8BitMIME.
	SevenBit bool

	// The SMS.
	OrigRcpt    string // ORCPT (RFC 3461) as "rfc822;addr", "" if none
	FinalRcpt   string // the RCPT TO address as given
	Number      string // E.164
	Text        string
	Segments    int
	Action      Action
	Status      string    // RFC 3463 code, e.g. "2.0.0", "5.0.0"
	Diagnostic  string    // e.g. "smpp; stat=UNDELIV err=001"
	LastAttempt time.Time // zero omits Last-Attempt-Date
	// WillRetryUntil is RFC 3464 §2.3.8, for a delayed action; zero
	// omits it.
	WillRetryUntil time.Time

	// Also are more recipients of the same mail, reported together with
	// the one above (RFC 3464 §2.1 allows one block per recipient).
	Also []Recipient
}

// Recipient is one recipient's block of a report (RFC 3464 §2.3) and its
// lines in the human-readable part; the fields mean what the same fields
// of Report mean.
type Recipient struct {
	OrigRcpt       string
	FinalRcpt      string
	Number         string
	Text           string
	Segments       int
	Action         Action
	Status         string
	Diagnostic     string
	LastAttempt    time.Time
	WillRetryUntil time.Time
}

// recipients is the first recipient (Report's own fields) and Also.
func (r Report) recipients() []Recipient {
	first := Recipient{
		OrigRcpt: r.OrigRcpt, FinalRcpt: r.FinalRcpt, Number: r.Number, Text: r.Text,
		Segments: r.Segments, Action: r.Action, Status: r.Status, Diagnostic: r.Diagnostic,
		LastAttempt: r.LastAttempt, WillRetryUntil: r.WillRetryUntil,
	}
	return append([]Recipient{first}, r.Also...)
}

// action is the report's overall action, for its Subject and headline:
// failed if any recipient failed, else delayed if any is delayed.
func (r Report) action() Action {
	a := ActionDelivered
	for _, rc := range r.recipients() {
		switch rc.Action {
		case ActionFailed:
			return ActionFailed
		case ActionDelayed:
			a = ActionDelayed
		}
	}
	return a
}

// Build returns the whole report mail (headers and body, CRLF line ends):
// a multipart/report (RFC 6522) with a human-readable text/plain part, a
// message/delivery-status part (RFC 3464 §2.1) with a block per recipient
// and, if Original is set, the original mail as message/rfc822, else if
// OrigHeader is set, the original header as text/rfc822-headers.
//
// EnvID and OrigRcpt are left out if malformed (control characters, or a
// non-printable ENVID, RFC 3461 §4.4); control characters in Diagnostic
// become spaces, one without a "type;" gets "X-Smsbridge; " (RFC 3464
// §2.3.6), and a type IANA does not register gets "X-" ("smpp; …" becomes
// "X-SMPP; …"). A malformed From, To, FinalRcpt or a bad Action or Status
// is an error wrapping ErrInvalid.
//
// If a delivery-status field (FinalRcpt, OrigRcpt, EnvID, Diagnostic) is
// not ASCII, the second part is message/global-delivery-status (RFC 6533
// §6.1), 8bit (quoted-printable if SevenBit), with the "utf-8" address
// type; likewise a non-ASCII OrigHeader is sent as message/global-headers
// (RFC 6533 §6.3). A report with an 8bit part says so at the top (RFC 2045
// §6.4: a multipart's encoding is its parts' widest).
func Build(r Report) ([]byte, error) {
	r = r.cleaned()
	if err := r.validate(); err != nil {
		return nil, err
	}
	id := r.MessageID
	if id == "" {
		var err error
		if id, err = newMessageID(r.ReportingMTA); err != nil {
			return nil, err
		}
	}
	parts, err := r.parts()
	if err != nil {
		return nil, err
	}
	msg, err := assemble(r.topHeader(id, boundaryFor(id, parts), reportType(parts)), parts)
	if err != nil || !eightBit(parts) {
		return msg, err
	}
	// go-message drops a multipart's Content-Transfer-Encoding, so it goes
	// in here, last in the top header (which ends at the first empty line).
	end := bytes.Index(msg, []byte("\r\n\r\n")) + 2
	return slices.Concat(msg[:end], []byte("Content-Transfer-Encoding: 8bit\r\n"), msg[end:]), nil
}

// assemble writes the top header and the parts through go-message's
// multipart writer.
func assemble(top message.Header, parts []part) ([]byte, error) {
	var buf bytes.Buffer
	w, err := message.CreateWriter(&buf, top)
	if err != nil {
		return nil, fmt.Errorf("report: build: %w", err)
	}
	for _, p := range parts {
		if err := writePart(w, p); err != nil {
			return nil, err
		}
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("report: build: close multipart: %w", err)
	}
	return buf.Bytes(), nil
}

func writePart(w *message.Writer, p part) error {
	pw, err := w.CreatePart(p.header)
	if err != nil {
		return fmt.Errorf("report: build: %s part: %w", p.mediaType(), err)
	}
	if _, err := pw.Write(p.body); err != nil {
		return fmt.Errorf("report: build: write %s part: %w", p.mediaType(), err)
	}
	if err := pw.Close(); err != nil {
		return fmt.Errorf("report: build: close %s part: %w", p.mediaType(), err)
	}
	return nil
}

// Sender delivers a built report with envelope sender <> to rcpt.
type Sender interface {
	Send(ctx context.Context, rcpt string, msg []byte) error
}

// TLSMode says when SMTP uses STARTTLS.
type TLSMode string

const (
	// TLSOpportunistic (the default) uses STARTTLS when the server offers
	// it, without checking its certificate (Postfix's "may": it defeats a
	// passive eavesdropper, not an active attacker), and goes on in plain
	// text when it is not offered or the handshake fails.
	TLSOpportunistic TLSMode = ""
	// TLSRequired refuses to send unless STARTTLS succeeds with a
	// certificate valid for the host (TLSConfig's roots and ServerName).
	TLSRequired TLSMode = "required"
	// TLSNone never uses STARTTLS.
	TLSNone TLSMode = "none"
)

// SMTP delivers reports to a smarthost.
type SMTP struct {
	Addr string // host:port
	Helo string // our host name, for EHLO

	TLS TLSMode
	// TLSConfig verifies the server under TLSRequired (nil: the system's
	// roots, ServerName the host of Addr).
	TLSConfig *tls.Config

	// Username and Password, if set, authenticate with AUTH PLAIN, or
	// LOGIN if the server offers only that. The password is sent only over
	// TLS, or to a loopback address.
	Username, Password string

	// Pool, if set, keeps connections open between reports (see Pool);
	// nil: a connection per report, closed with QUIT after it. Copies of
	// an SMTP share its Pool.
	Pool *Pool
}

// Outbox writes reports as .eml files into Dir (atomically, fsync'd).
type Outbox struct{ Dir string }
