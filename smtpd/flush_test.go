package smtpd

import (
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
