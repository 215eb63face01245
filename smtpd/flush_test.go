package smtpd

import (
	"fmt"
	"strings"
	"testing"
)

// go-smtp (third_party/go-smtp, PATCHES.md change 3) buffers its replies
// and writes them when it is about to read, so a pipelined group is
// answered in one write. A hangup (hangupAfterReply) must still end the
// session right after its reply: go-smtp sends a 421 at once, so the
// replies to commands pipelined after it are dropped, not sent with it.

// TestPipelinedHangup: too many errors within one pipelined group.
func TestPipelinedHangup(t *testing.T) {
	cfg := baseConfig()
	cfg.MaxErrors = 3
	ts := start(t, cfg, nil, plainSMTP)
	c := envelopeTo(t, ts.addr)
	c.send("RCPT TO:<x@example.com>\r\nRCPT TO:<bob@sms.test>\r\nRCPT TO:<+14155550123@example.com>\r\nDATA\r\nQUIT\r\n")
	c.replies("550 5.7.1", "550 5.1.3", "421 4.7.0", "EOF")
}

// TestPipelinedMails: several mails on one connection, each a pipelined
// group and then its message with the next group.
func TestPipelinedMails(t *testing.T) {
	ts := start(t, baseConfig(), nil, plainSMTP)
	c := greeted(t, ts.addr)
	c.expect("EHLO client.test", "250")
	c.send("MAIL FROM:<a@x.test>\r\nRCPT TO:<+14155550123@sms.test>\r\nDATA\r\n")
	next := ".\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<+14155550123@sms.test>\r\nDATA\r\n"
	for i := range 3 {
		for _, want := range []string{"250 2.0.0", "250 2.0.0", "354"} {
			if r := c.reply(); !strings.HasPrefix(r, want) {
				t.Fatalf("mail %d: reply %q, want %q", i, r, want)
			}
		}
		if i == 2 {
			next = ".\r\nQUIT\r\n"
		}
		c.send(testMail + next)
		if r := c.reply(); !strings.HasPrefix(r, "250 2.0.0 OK: queued as") {
			t.Fatalf("mail %d: reply %q", i, r)
		}
	}
	c.replies("221 2.0.0", "EOF")
	if n := ts.records(t); n != 3 {
		t.Fatalf("%d records", n)
	}
}

// TestHangupAfterManyReplies: the 421 that ends a session comes after
// more than a write buffer of pipelined replies (go-smtp then sends those
// first): it still reaches the client, last, and no command after it runs.
func TestHangupAfterManyReplies(t *testing.T) {
	cfg := baseConfig()
	// 50 refusals of 81 bytes fill 4,050 bytes of go-smtp's 4,096-byte
	// buffer: the 421, the 51st, does not fit, and what is buffered goes
	// first in a write of its own.
	cfg.MaxErrors = 51
	cfg.MaxRecipients = 200
	ts := start(t, cfg, nil, plainSMTP)
	c := envelopeTo(t, ts.addr)
	var b strings.Builder
	for i := range 70 {
		fmt.Fprintf(&b, "RCPT TO:<+1415555%04d@example.com>\r\n", i) // a foreign domain: 550 5.7.1
	}
	b.WriteString("RSET\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<+14155550123@sms.test>\r\nDATA\r\n" + testMail + ".\r\n")
	c.send(b.String())
	refused := 0
	for {
		r := c.reply()
		if strings.HasPrefix(r, "550 5.7.1") {
			refused++
			continue
		}
		if !strings.HasPrefix(r, "421 4.7.0") {
			t.Fatalf("after %d refusals: reply %q, want 421 4.7.0", refused, r)
		}
		break
	}
	if refused != 50 {
		t.Fatalf("%d refusals before the 421, want 50", refused)
	}
	c.replies("EOF")
	if n := ts.records(t); n != 0 {
		t.Fatalf("%d records queued after the 421", n)
	}
}
