package report

import (
	"strings"
	"testing"
)

// FuzzBuild checks that whatever the original mail and the SMSC put in a
// report, Build either refuses it or writes CRLF lines of at most 998 octets,
// 7-bit unless labelled 8bit (and 7-bit for a 7-bit path), that Parse reads
// back with the same Action and Status.
func FuzzBuild(f *testing.F) {
	f.Add("Lunch?", "Lunch at noon?", origHeader, "smpp; stat=DELIVRD err=000", "+14155550123@sms.localhost", "E1")
	f.Add("Grüße\r\n", strings.Repeat("✓", 200), "X: "+strings.Repeat("y", 1200), "", "jörg@x", "a\nb")
	f.Fuzz(func(t *testing.T, subject, text, header, diag, rcpt, envID string) {
		r := failedWithEnvelope()
		r.OrigSubject, r.Text, r.OrigHeader, r.Diagnostic, r.FinalRcpt, r.EnvID = subject, text, []byte(header), diag, rcpt, envID
		for _, sevenBit := range []bool{false, true} {
			r.SevenBit = sevenBit
			msg, err := Build(r)
			if err != nil {
				return
			}
			checkWire(t, msg, sevenBit)
			p, err := Parse(msg)
			if err != nil {
				t.Fatalf("Parse: %v\n%s", err, msg)
			}
			if len(p.Recipients) != 1 || p.Recipients[0].Get("Action") != "failed" || p.Recipients[0].Get("Status") != "5.0.0" {
				t.Fatalf("per-recipient blocks %v\n%s", p.Recipients, msg)
			}
		}
	})
}
