package bridge

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/smsbridge/smsbridge/report"
)

// sevenBitSender is a smarthost without 8BITMIME or SMTPUTF8: it refuses
// what report.SMTP refuses then, and keeps the rest.
type sevenBitSender struct {
	refused int
	got     [][]byte
	rcpts   []string
}

func (s *sevenBitSender) Send(_ context.Context, rcpt string, msg []byte) error {
	head, body, _ := bytes.Cut(msg, []byte("\r\n\r\n"))
	switch {
	case !isASCIIBytes(head) || !isASCIIBytes([]byte(rcpt)):
		s.refused++
		return report.ErrNoSMTPUTF8
	case !isASCIIBytes(body):
		s.refused++
		return report.ErrNo8BitMIME
	}
	s.got, s.rcpts = append(s.got, msg), append(s.rcpts, rcpt)
	return nil
}

func isASCIIBytes(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 {
			return false
		}
	}
	return true
}

// TestDeliverToSevenBitPath: a report with UTF-8 delivery-status fields
// and an 8-bit original, to a smarthost without 8BITMIME, goes once more
// 7-bit: the original's header instead of the original, the UTF-8 parts
// quoted-printable (RFC 6533 §6 allows that only on a 7-bit path).
func TestDeliverToSevenBitPath(t *testing.T) {
	out := &sevenBitSender{}
	b := New(Config{ReportingMTA: "gw.test"}, nil, nil, out, slog.New(slog.DiscardHandler))
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	rep := report.Report{
		ReportingMTA: "gw.test", From: "Mail Delivery System <postmaster@gw.test>", To: "alice@corp.test",
		Arrival: now, Now: now, OrigHeader: []byte("From: alice@corp.test\r\nSubject: Déjeuner\r\n"),
		Original:  []byte("From: alice@corp.test\r\nSubject: x\r\n\r\nDéjeuner à midi\r\n"),
		FinalRcpt: "jörg@sms.test", Number: "+4915112345678", Text: "Déjeuner à midi", Segments: 1,
		Action: report.ActionFailed, Status: "5.0.0", Diagnostic: "smpp; stat=UNDELIV err=001", LastAttempt: now,
	}
	if err := b.deliver(context.Background(), "john doe@corp.test", rep); err != nil {
		t.Fatal(err)
	}
	if out.refused != 1 || len(out.got) != 1 {
		t.Fatalf("%d refused, %d sent; want the 8-bit report refused once, then the 7-bit one sent", out.refused, len(out.got))
	}
	msg := string(out.got[0])
	for _, want := range []string{
		"Content-Type: message/global-delivery-status\r\nContent-Transfer-Encoding: quoted-printable",
		"Final-Recipient: utf-8; j=C3=B6rg@sms.test",
		"Content-Type: message/global-headers\r\nContent-Transfer-Encoding: quoted-printable",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("report lacks %q:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "message/rfc822") || strings.Contains(msg, "Content-Transfer-Encoding: 8bit") {
		t.Errorf("the 7-bit report carries an 8-bit part:\n%s", msg)
	}
	if out.rcpts[0] != `"john doe"@corp.test` {
		t.Errorf("sent to %s", out.rcpts[0])
	}
}
