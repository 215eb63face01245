package report

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

const origMail = "From: Alice <alice@example.com>\r\n" +
	"To: +14155550123@sms.localhost\r\n" +
	"Subject: Lunch?\r\n" +
	"Message-ID: <orig-1@example.com>\r\n" +
	"\r\n" +
	"Lunch at noon?\r\n"

// failedFull is a failure report that returns the whole mail (RET=FULL).
func failedFull() Report {
	r := failedWithEnvelope()
	r.MessageID = "<fixed-5@sms.localhost>"
	r.Original = []byte(origMail)
	return r
}

// delayedWillRetry is a delay report with Will-Retry-Until.
func delayedWillRetry() Report {
	r := base()
	r.MessageID = "<fixed-6@sms.localhost>"
	r.Action, r.Status = ActionDelayed, "4.4.7"
	r.Diagnostic = "smpp; stat=ENROUTE err=000"
	r.WillRetryUntil = arrival.Add(48 * time.Hour)
	return r
}

// twoRecipients is one report on two recipients of one mail, one
// delivered and one failed.
func twoRecipients() Report {
	r := base()
	r.MessageID = "<fixed-7@sms.localhost>"
	r.EnvID = "QQ314159"
	r.OrigRcpt = "rfc822;boss@example.com"
	r.Also = []Recipient{{
		FinalRcpt: "+14155550124@sms.localhost", Number: "+14155550124", Text: r.Text, Segments: 1,
		Action: ActionFailed, Status: "5.7.1", Diagnostic: "smpp; stat=REJECTD err=011", LastAttempt: attempt,
	}}
	return r
}

func init() {
	goldenCases = append(goldenCases, []struct {
		name string
		r    Report
	}{
		{"failed-ret-full", failedFull()},
		{"delayed-will-retry", delayedWillRetry()},
		{"two-recipients", twoRecipients()},
	}...)
}

// TestBuildDSNFields parses each new kind of report back and checks its
// delivery-status fields and its third part.
func TestBuildDSNFields(t *testing.T) {
	tests := []struct {
		name      string
		r         Report
		subject   string
		perRcpt   []map[string]string
		thirdType string
		third     string // the third part contains it
	}{
		{"RET=FULL returns the whole mail", failedFull(), "Undeliverable: Lunch?",
			[]map[string]string{{"Action": "failed", "Status": "5.0.0", "Original-Recipient": "rfc822;+14155550123@sms.localhost", "Will-Retry-Until": ""}},
			"message/rfc822", "Lunch at noon?\r\n"},
		{"delayed says until when it retries", delayedWillRetry(), "Delayed: Lunch?",
			[]map[string]string{{"Action": "delayed", "Status": "4.4.7", "Will-Retry-Until": "Sun, 16 Mar 2025 09:26:53 +0000"}},
			"text/rfc822-headers", "Subject: Lunch?"},
		{"two recipients share one report", twoRecipients(), "Undeliverable: Lunch?",
			[]map[string]string{
				{"Final-Recipient": "rfc822; +14155550123@sms.localhost", "Original-Recipient": "rfc822;boss@example.com", "Action": "delivered", "Status": "2.0.0"},
				{"Final-Recipient": "rfc822; +14155550124@sms.localhost", "Original-Recipient": "", "Action": "failed", "Status": "5.7.1", "Diagnostic-Code": "X-SMPP; stat=REJECTD err=011"},
			}, "text/rfc822-headers", "Subject: Lunch?"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			msg, err := Build(tc.r)
			if err != nil {
				t.Fatal(err)
			}
			checkWire(t, msg, false)
			p, err := Parse(msg)
			if err != nil {
				t.Fatal(err)
			}
			if got := p.Header.Get("Subject"); got != tc.subject {
				t.Errorf("Subject %q, want %q", got, tc.subject)
			}
			if len(p.Recipients) != len(tc.perRcpt) {
				t.Fatalf("%d per-recipient blocks, want %d", len(p.Recipients), len(tc.perRcpt))
			}
			for i, want := range tc.perRcpt {
				checkFields(t, "per-recipient", p.Recipients[i], want)
			}
			if tc.r.EnvID != "" && p.Message.Get("Original-Envelope-Id") != tc.r.EnvID {
				t.Errorf("Original-Envelope-Id %q", p.Message.Get("Original-Envelope-Id"))
			}
			if p.OrigType != tc.thirdType || !strings.Contains(string(p.OrigHeader), tc.third) {
				t.Errorf("third part %s:\n%s\nwant %s containing %q", p.OrigType, p.OrigHeader, tc.thirdType, tc.third)
			}
		})
	}
}

func TestBuildOriginalEncodings(t *testing.T) {
	tests := []struct {
		name     string
		orig     string
		utf8     bool
		wantType string
		wantCTE  string
	}{
		{"ASCII mail is 7bit message/rfc822", origMail, false, "message/rfc822", "7bit"},
		{"8-bit mail is 8bit message/rfc822", strings.Replace(origMail, "Lunch at", "Déjeuner à", 1), false, "message/rfc822", "8bit"},
		{"SMTPUTF8 mail is message/global", "From: jörg@example.de\r\n\r\nHallo\r\n", true, "message/global", "8bit"},
		{"a line over 998 octets falls back to the header", "Subject: x\r\n\r\n" + strings.Repeat("y", 1200) + "\r\n", false, "text/rfc822-headers", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := failedWithEnvelope()
			r.Original, r.OrigUTF8 = []byte(tc.orig), tc.utf8
			msg, err := Build(r)
			if err != nil {
				t.Fatal(err)
			}
			checkWire(t, msg, false) // an 8bit part makes the report 8bit
			p, err := Parse(msg)
			if err != nil {
				t.Fatal(err)
			}
			if p.OrigType != tc.wantType {
				t.Errorf("third part %s, want %s", p.OrigType, tc.wantType)
			}
			if tc.wantCTE != "" && !bytes.Contains(msg, []byte("Content-Transfer-Encoding: "+tc.wantCTE+"\r\n\r\n"+tc.orig[:10])) {
				t.Errorf("original not sent as %s:\n%s", tc.wantCTE, msg)
			}
			if tc.wantCTE == "" && bytes.Contains(msg, []byte(strings.Repeat("y", 1200))) {
				t.Error("the long line went into the report")
			}
		})
	}
}

func TestBuildTwoRecipientsText(t *testing.T) {
	p, err := Parse(mustBuild(t, twoRecipients()))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"not delivered to every recipient", "+14155550123", "+14155550124", "Undeliverable", "Lunch at noon?"} {
		if !strings.Contains(p.Text, s) {
			t.Errorf("text lacks %q:\n%s", s, p.Text)
		}
	}
	if n := strings.Count(p.Text, "Lunch at noon?"); n != 1 {
		t.Errorf("SMS text quoted %d times, want once", n)
	}
}

func mustBuild(t *testing.T, r Report) []byte {
	t.Helper()
	msg, err := Build(r)
	if err != nil {
		t.Fatal(err)
	}
	return msg
}
