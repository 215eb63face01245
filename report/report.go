// Package report builds RFC 3464 delivery status notifications for SMS
// outcomes and delivers them, from the null sender, to a smarthost or an
// outbox directory.
package report

import (
	"context"
	"time"
)

// Action is the RFC 3464 §2.3.3 action.
type Action string

const (
	ActionDelivered Action = "delivered"
	ActionFailed    Action = "failed"
	ActionDelayed   Action = "delayed"
)

// Report is everything one delivery status notification says.
type Report struct {
	ReportingMTA string    // our host name, for "Reporting-MTA: dns; …" and Message-ID
	From         string    // postmaster address for the From header
	To           string    // the original envelope sender
	EnvID        string    // RFC 3461 ENVID, "" if none
	Arrival      time.Time // when we accepted the mail
	Now          time.Time // the report's Date

	OrigMessageID string // with angle brackets, "" if none
	OrigSubject   string
	OrigHeader    []byte // original header block, sent as text/rfc822-headers

	// The SMS.
	OrigRcpt    string // ORCPT (RFC 3461) as "rfc822;addr", "" if none
	FinalRcpt   string // the RCPT TO address as given
	Number      string // E.164
	Text        string
	Segments    int
	Action      Action
	Status      string // RFC 3463 code, e.g. "2.0.0", "5.0.0"
	Diagnostic  string // e.g. "smpp; stat=UNDELIV err=001"
	LastAttempt time.Time
}

// Build returns the whole report mail (headers and body, CRLF line ends).
func Build(r Report) ([]byte, error) { panic("TODO") }

// Sender delivers a built report with envelope sender <> to rcpt.
type Sender interface {
	Send(ctx context.Context, rcpt string, msg []byte) error
}

// SMTP delivers reports to a smarthost.
type SMTP struct {
	Addr  string // host:port
	Helo  string // our host name
}

func (s SMTP) Send(ctx context.Context, rcpt string, msg []byte) error { panic("TODO") }

// Outbox writes reports as .eml files into Dir (atomically, fsync'd).
type Outbox struct{ Dir string }

func (o Outbox) Send(ctx context.Context, rcpt string, msg []byte) error { panic("TODO") }
