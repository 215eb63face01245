package smtpd

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/smsbridge/smsbridge/smtpd/ratelimit"
)

// postmasterMail is what the postmaster's maildir holds, by file.
func postmasterMail(t *testing.T, dir string) []string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "new", "*"))
	var out []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, string(b))
	}
	if tmp, _ := filepath.Glob(filepath.Join(dir, "tmp", "*")); len(tmp) != 0 {
		t.Errorf("left in tmp/: %v", tmp)
	}
	return out
}

// TestPostmaster: mail to the postmaster of our domain, and to
// <Postmaster> alone, is taken and kept in the maildir (RFC 5321 §4.5.1);
// with a number too, the number gets its SMS; another domain's postmaster
// is refused as before.
func TestPostmaster(t *testing.T) {
	cfg := baseConfig()
	cfg.PostmasterDir = filepath.Join(t.TempDir(), "postmaster")
	ts := start(t, cfg, nil, plainSMTP)

	c := envelopeTo(t, ts.addr)
	c.expect("RCPT TO:<Postmaster@SMS.test>", "250")
	c.expect("RCPT TO:<postmaster@example.com>", "550 5.7.1")
	c.expect("DATA", "354")
	c.send("Subject: abuse report\r\n\r\nhello postmaster\r\n.\r\n")
	if r := c.reply(); !strings.HasPrefix(r, "250 2.0.0 OK: kept for the postmaster") {
		t.Fatalf("reply %q", r)
	}
	c.expect("MAIL FROM:<b@x.test>", "250")
	c.expect("RCPT TO:<postmaster>", "250")
	c.expect("RCPT TO:<+14155550123@sms.test>", "250")
	c.expect("DATA", "354")
	c.send("Subject: both\r\n\r\nfor the phone and the postmaster\r\n.\r\n")
	if r := c.reply(); !strings.HasPrefix(r, "250 2.0.0 OK: queued as ") {
		t.Fatalf("reply %q", r)
	}
	if n := ts.records(t); n != 1 {
		t.Fatalf("%d records, want the one SMS", n)
	}
	got := postmasterMail(t, cfg.PostmasterDir)
	if len(got) != 2 {
		t.Fatalf("%d mails kept, want 2: %q", len(got), got)
	}
	var first, second string
	for _, m := range got {
		if strings.Contains(m, "abuse report") {
			first = m
		} else {
			second = m
		}
	}
	trace := "Return-Path: <a@x.test>\r\nDelivered-To: postmaster\r\nReceived: from client.test ([127.0.0.1])\r\n" +
		"\tby localhost (smsbridge) with ESMTP;\r\n\tFri, 20 Nov 2026 12:00:00 +0000\r\nSubject: abuse report\r\n"
	if !strings.HasPrefix(first, trace) ||
		!strings.HasPrefix(second, "Return-Path: <b@x.test>\r\n") || !strings.Contains(second, "for the phone and the postmaster") {
		t.Fatalf("kept:\n%q\n%q", first, second)
	}
	// A quoted local part stays quoted in Return-Path.
	c.expect(`MAIL FROM:<"john doe"@x.test>`, "250")
	c.expect("RCPT TO:<postmaster>", "250")
	c.expect("DATA", "354")
	c.send("Subject: q\r\n\r\nhi\r\n.\r\n")
	if r := c.reply(); !strings.HasPrefix(r, "250 ") {
		t.Fatalf("reply %q", r)
	}
	var quoted bool
	for _, m := range postmasterMail(t, cfg.PostmasterDir) {
		quoted = quoted || strings.HasPrefix(m, `Return-Path: <"john doe"@x.test>`)
	}
	if !quoted {
		t.Error("no Return-Path with the quoted local part")
	}
}

// TestPostmasterOff: without a maildir, postmaster is refused like any
// address that is no number.
func TestPostmasterOff(t *testing.T) {
	ts := start(t, baseConfig(), nil, plainSMTP)
	c := envelopeTo(t, ts.addr)
	c.expect("RCPT TO:<postmaster@sms.test>", "550 5.1.3")
}

// TestPostmasterLMTP: the postmaster gets its own LMTP reply.
func TestPostmasterLMTP(t *testing.T) {
	cfg := baseConfig()
	cfg.PostmasterDir = filepath.Join(t.TempDir(), "postmaster")
	ts := start(t, cfg, nil, lmtp)
	c := lmtpEnvelope(t, ts.addr, "postmaster@sms.test", "+14155550123@sms.test")
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte(testMail))
	resp, err := w.CloseWithLMTPResponse()
	if err != nil {
		t.Fatal(err)
	}
	if r := resp["postmaster@sms.test"]; r == nil || !strings.Contains(r.StatusText, "kept for the postmaster") {
		t.Errorf("postmaster: %+v", r)
	}
	if r := resp["+14155550123@sms.test"]; r == nil || !strings.Contains(r.StatusText, "queued as") {
		t.Errorf("number: %+v", r)
	}
	if got := postmasterMail(t, cfg.PostmasterDir); len(got) != 1 {
		t.Fatalf("%d kept", len(got))
	}
}

// TestPostmasterRateLimited: mail for the postmaster alone takes a message
// of the client's rate limits, so a client cannot fill the disk with it.
func TestPostmasterRateLimited(t *testing.T) {
	cfg := baseConfig()
	cfg.PostmasterDir = filepath.Join(t.TempDir(), "postmaster")
	cfg.IPLimits = ratelimit.Limits{MessagesPerMinute: 1}
	cfg.LimitTrusted = true
	ts := start(t, cfg, nil, plainSMTP)
	c := envelopeTo(t, ts.addr)
	for i, want := range []string{"250 ", "451 4.7.1"} {
		if i > 0 {
			c.expect("MAIL FROM:<a@x.test>", "250")
		}
		c.expect("RCPT TO:<postmaster@sms.test>", "250")
		c.expect("DATA", "354")
		c.send("Subject: s\r\n\r\nhi\r\n.\r\n")
		if r := c.reply(); !strings.HasPrefix(r, want) {
			t.Fatalf("mail %d: %q, want %s", i+1, r, want)
		}
	}
	if got := postmasterMail(t, cfg.PostmasterDir); len(got) != 1 {
		t.Fatalf("%d kept, want 1", len(got))
	}
}
