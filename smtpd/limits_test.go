package smtpd

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/smsbridge/smsbridge/smtpd/ratelimit"
)

// envelopeTo opens a session from the trusted loopback up to MAIL FROM.
func envelopeTo(t *testing.T, addr string) *raw {
	t.Helper()
	c := greeted(t, addr)
	c.expect("EHLO client.test", "250")
	c.expect("MAIL FROM:<a@x.test>", "250")
	return c
}

// TestNoRelay: relay tricks over raw SMTP, since client libraries would
// not send them. go-smtp drops a source route (RFC 5321 C: "SHOULD
// ignore") and unquotes a quoted local part before we see the address, so
// a route or quotes around one of our own numbers are the same mailbox;
// what names another domain is refused.
func TestNoRelay(t *testing.T) {
	ts := start(t, baseConfig(), nil, plainSMTP)
	tests := []struct{ name, rcpt, want string }{
		{"foreign domain", "<+14155550123@example.com>", "550 5.7.1"},
		{"foreign domain, name local part", "<bob@example.com>", "550 5.7.1"},
		{"address literal", "<+14155550123@[127.0.0.1]>", "550 5.7.1"},
		{"source route to a foreign domain", "<@sms.test,@relay.example:+14155550123@example.com>", "550 5.7.1"},
		{"source route to us is ignored", "<@a.example,@b.example:+14155550123@sms.test>", "250"},
		{"percent hack", "<+14155550123%example.com@sms.test>", "550 5.1.3"},
		{"bang path", "<example.com!+14155550123@sms.test>", "550 5.1.3"},
		{"second at sign", "<+14155550123@sms.test@example.com>", "550 5.7.1"},
		{"quoted foreign address", `<"+14155550123@example.com"@sms.test>`, "550 5.1.3"},
		{"quoted percent hack", `<"+14155550123%example.com"@sms.test>`, "550 5.1.3"},
		{"quoted number is the same mailbox", `<"+14155550123"@sms.test>`, "250"},
		{"subdomain", "<+14155550123@evil.sms.test>", "550 5.7.1"},
		{"lookalike domain", "<+14155550123@sms.test.example.com>", "550 5.7.1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := envelopeTo(t, ts.addr)
			c.expect("RCPT TO:"+tc.rcpt, tc.want)
		})
	}
}

// TestSequence: commands out of order are a bad sequence, 503 5.5.1 (RFC
// 5321 sections 4.1.4, 4.2.4, 4.3.2); commands not implemented stay 502.
// go-smtp answers these before our session is asked: the 503s come from
// our patched copy in third_party/go-smtp (see its PATCHES.md).
func TestSequence(t *testing.T) {
	plain := start(t, baseConfig(), nil, plainSMTP)
	withTLS := start(t, authConfig(t), nil, plainSMTP)
	type step struct{ send, want string } // send: whole lines, with CRLF
	tests := []struct {
		name     string
		ts       *testServer
		startTLS bool // EHLO and STARTTLS before the steps
		steps    []step
	}{
		{"MAIL before EHLO", plain, false, []step{{"MAIL FROM:<a@x.test>\r\n", "503 5.5.1"}}},
		{"RCPT before EHLO", plain, false, []step{{"RCPT TO:<+14155550123@sms.test>\r\n", "503 5.5.1"}}},
		{"DATA before EHLO", plain, false, []step{{"DATA\r\n", "503 5.5.1"}}},
		{"AUTH before EHLO", plain, false, []step{{"AUTH PLAIN\r\n", "503 5.5.1"}}},
		{"RCPT before MAIL", plain, false, []step{
			{"EHLO client.test\r\n", "250"},
			{"RCPT TO:<+14155550123@sms.test>\r\n", "503 5.5.1"},
		}},
		{"DATA before MAIL", plain, false, []step{
			{"EHLO client.test\r\n", "250"},
			{"DATA\r\n", "503 5.5.1"},
		}},
		{"DATA before RCPT", plain, false, []step{
			{"EHLO client.test\r\n", "250"},
			{"MAIL FROM:<a@x.test>\r\n", "250"},
			{"DATA\r\n", "503 5.5.1"},
		}},
		{"DATA after the only RCPT was refused", plain, false, []step{
			{"EHLO client.test\r\n", "250"},
			{"MAIL FROM:<a@x.test>\r\n", "250"},
			{"RCPT TO:<+14155550123@example.com>\r\n", "550 5.7.1"},
			{"DATA\r\n", "503 5.5.1"},
		}},
		{"BDAT before RCPT, chunk skipped", plain, false, []step{
			{"EHLO client.test\r\n", "250"},
			{"MAIL FROM:<a@x.test>\r\n", "250"},
			{"BDAT 6 LAST\r\nNOOP\r\n", "503 5.5.1"},
		}},
		{"MAIL inside a transaction", plain, false, []step{
			{"EHLO client.test\r\n", "250"},
			{"MAIL FROM:<a@x.test>\r\n", "250"},
			{"MAIL FROM:<b@x.test>\r\n", "503 5.5.1"},
			{"RSET\r\n", "250"},
			{"MAIL FROM:<b@x.test>\r\n", "250"},
		}},
		{"RCPT after RSET", plain, false, []step{
			{"EHLO client.test\r\n", "250"},
			{"MAIL FROM:<a@x.test>\r\n", "250"},
			{"RSET\r\n", "250"},
			{"RCPT TO:<+14155550123@sms.test>\r\n", "503 5.5.1"},
		}},
		// RFC 3207 section 4.2: after TLS the client must EHLO again.
		{"MAIL after STARTTLS without EHLO", withTLS, true, []step{{"MAIL FROM:<alerts@acme.test>\r\n", "503 5.5.1"}}},
		{"AUTH after STARTTLS without EHLO", withTLS, true, []step{{"AUTH PLAIN " + plainAuth("alice", "secret") + "\r\n", "503 5.5.1"}}},
		{"STARTTLS twice", withTLS, true, []step{
			{"EHLO client.test\r\n", "250"},
			{"STARTTLS\r\n", "503 5.5.1"},
		}},
		// A syntax error, not a sequence error: 501 (go-smtp said 502).
		{"AUTH without a mechanism", plain, false, []step{
			{"EHLO client.test\r\n", "250"},
			{"AUTH\r\n", "501 5.5.4"},
		}},
		// Not implemented, in any state: 502.
		{"STARTTLS without TLS configured", plain, false, []step{
			{"EHLO client.test\r\n", "250"},
			{"STARTTLS\r\n", "502 5.5.1"},
		}},
		{"HELP, EXPN, TURN", plain, false, []step{
			{"HELP\r\n", "502 5.5.1"},
			{"EXPN staff\r\n", "502 5.5.1"},
			{"TURN\r\n", "502 5.5.1"},
			{"VRFY x\r\n", "252 2.5.0"},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := greeted(t, tc.ts.addr)
			if tc.startTLS {
				c.expect("EHLO client.test", "250")
				c.startTLS()
			}
			for _, st := range tc.steps {
				c.send(st.send)
				if r := c.reply(); !strings.HasPrefix(r, st.want) {
					t.Fatalf("%q: reply %q, want %q", st.send, r, st.want)
				}
			}
			// The session goes on: nothing was read as a command that was
			// not one.
			c.expect("NOOP", "250 2.0.0")
			c.expect("QUIT", "221 2.0.0")
		})
	}
}

func TestConnectionLimits(t *testing.T) {
	for _, tc := range []struct {
		name  string
		total int
		perIP int
		want  string
	}{
		{"per client", -1, 2, "421 4.7.0 Too many connections from your address"},
		{"in total", 2, -1, "421 4.7.0 Too many connections,"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := baseConfig()
			cfg.MaxConnections, cfg.MaxConnectionsPerIP = tc.total, tc.perIP
			ts := start(t, cfg, nil, plainSMTP)
			a, _ := greeted(t, ts.addr), greeted(t, ts.addr)
			c := dialRaw(t, ts.addr)
			if r := c.reply(); !strings.HasPrefix(r, tc.want) {
				t.Fatalf("third connection: %q", r)
			}
			if !c.closed() {
				t.Fatal("third connection left open")
			}
			a.expect("QUIT", "221")
			waitFor(t, "a slot to free", func() bool { return ts.liveConns() == 1 })
			greeted(t, ts.addr)
		})
	}
}

// TestLongLine: a body line over MaxLineLength is refused with an enhanced
// code after the end of data, and the session goes on (the reply used to
// come in the middle of the data, and the connection end).
func TestLongLine(t *testing.T) {
	cfg := baseConfig()
	cfg.MaxLineLength = 200
	ts := start(t, cfg, nil, plainSMTP)
	c := envelopeTo(t, ts.addr)
	c.expect("RCPT TO:<+14155550123@sms.test>", "250")
	c.expect("DATA", "354")
	c.send("Subject: x\r\n\r\n" + strings.Repeat("y", 300) + "\r\nmore\r\n.\r\n")
	if r := c.reply(); !strings.HasPrefix(r, "552 5.3.4 Message has a line longer than 200 bytes") {
		t.Fatalf("reply %q", r)
	}
	// The same session takes the next mail, and the rest of the refused
	// one was not read as commands.
	c.expect("MAIL FROM:<a@x.test>", "250")
	c.expect("RCPT TO:<+14155550123@sms.test>", "250")
	c.expect("DATA", "354")
	c.send("Subject: x\r\n\r\n" + strings.Repeat("y", 190) + "\r\n.\r\n")
	if r := c.reply(); !strings.HasPrefix(r, "250 2.0.0") {
		t.Fatalf("reply %q", r)
	}
	// A line just under the limit is fine.
	c = envelopeTo(t, ts.addr)
	c.expect("RCPT TO:<+14155550123@sms.test>", "250")
	c.expect("DATA", "354")
	c.send("Subject: x\r\n\r\n" + strings.Repeat("y", 190) + "\r\n.\r\n")
	if r := c.reply(); !strings.HasPrefix(r, "250 2.0.0") {
		t.Fatalf("reply %q", r)
	}
	if ts.records(t) != 2 {
		t.Fatal("records")
	}
}

func TestMaxErrors(t *testing.T) {
	cfg := baseConfig()
	cfg.MaxErrors = 3
	ts := start(t, cfg, nil, plainSMTP)
	c := envelopeTo(t, ts.addr)
	c.expect("RCPT TO:<x@example.com>", "550 5.7.1")
	c.expect("RCPT TO:<bob@sms.test>", "550 5.1.3")
	c.expect("RCPT TO:<+14155550123@example.com>", "421 4.7.0")
	if !c.closed() {
		t.Fatal("not disconnected")
	}
}

func TestDestinationPrefixes(t *testing.T) {
	cfg := baseConfig()
	cfg.AllowPrefixes = []string{"+1", "+49"}
	cfg.DenyPrefixes = []string{"+1900"}
	ts := start(t, cfg, nil, plainSMTP)
	for _, tc := range []struct{ rcpt, want string }{
		{"+14155550123", "250"},
		{"+4915112345678", "250"},
		{"+19005550123", "550 5.7.1 Destination +19005550123 not allowed: the prefix is blocked"},
		{"+447911123456", "550 5.7.1 Destination +447911123456 not allowed: this server does not send"},
	} {
		c := envelopeTo(t, ts.addr)
		c.expect("RCPT TO:<"+tc.rcpt+"@sms.test>", tc.want)
	}
}

// send runs one mail to n numbers from the loopback and returns the first
// failing reply, or the 250.
func send(t *testing.T, addr string, n int, text string) string {
	t.Helper()
	c := envelopeTo(t, addr)
	for i := range n {
		if r := c.cmd(fmt.Sprintf("RCPT TO:<+1415555%04d@sms.test>", 100+i)); !strings.HasPrefix(r, "250") {
			return r
		}
	}
	c.expect("DATA", "354")
	c.send("Subject: x\r\n\r\n" + text + "\r\n.\r\n")
	return c.reply()
}

func TestRateLimits(t *testing.T) {
	long := strings.Repeat("two segments ", 20) // 260 GSM characters: 2 segments
	tests := []struct {
		name   string
		limits ratelimit.Limits
		exempt bool
		steps  []string // "send N text→want", "wait D"
	}{
		{"messages per minute, then the next minute", ratelimit.Limits{MessagesPerMinute: 3}, false,
			[]string{"2 hi→250 2.0.0", "2 hi→451 4.7.1 Rate limit reached: your address 127.0.0.1 may send 3 SMS messages per minute",
				"1 hi→250 2.0.0", "1 hi→451 4.7.1", "wait 1m", "3 hi→250 2.0.0"}},
		{"daily quota", ratelimit.Limits{MessagesPerDay: 2, MessagesPerMinute: 10}, false,
			[]string{"2 hi→250 2.0.0", "1 hi→550 5.7.1 Daily quota exceeded: your address 127.0.0.1 may send 2 SMS messages per day; it resets at 2026-11-21 00:00 UTC",
				"wait 11h", "1 hi→550 5.7.1 Daily quota", "wait 1h", "1 hi→250 2.0.0"}},
		{"segments per hour, refused at DATA", ratelimit.Limits{SegmentsPerHour: 3}, false,
			[]string{"1 long→250 2.0.0", "1 long→451 4.7.1 Rate limit reached: your address 127.0.0.1 may send 3 SMS segments per hour",
				"1 hi→250 2.0.0", "1 hi→451 4.7.1", "wait 1h", "1 long→250 2.0.0"}},
		{"a mail over a limit on its own", ratelimit.Limits{SegmentsPerMinute: 3}, false,
			[]string{"2 long→550 5.7.1 Mail needs 4 SMS segments, more than the limit of 3 per minute"}},
		{"trusted networks exempt", ratelimit.Limits{MessagesPerMinute: 1}, true,
			[]string{"3 hi→250 2.0.0", "3 hi→250 2.0.0"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := baseConfig()
			cfg.IPLimits, cfg.LimitTrusted = tc.limits, !tc.exempt
			ts := start(t, cfg, nil, plainSMTP)
			for _, step := range tc.steps {
				if d, ok := strings.CutPrefix(step, "wait "); ok {
					dur, _ := time.ParseDuration(d)
					ts.clock.Advance(dur)
					continue
				}
				what, want, _ := strings.Cut(step, "→")
				var n int
				var text string
				fmt.Sscan(what, &n, &text)
				if text == "long" {
					text = long
				}
				if got := send(t, ts.addr, n, text); !strings.HasPrefix(got, want) {
					t.Fatalf("%s: got %q", step, got)
				}
			}
		})
	}
}

// TestUserLimits: per-user limits from the users file and the server's
// defaults for users; per-user segment cap.
func TestUserLimits(t *testing.T) {
	cfg := authConfig(t)
	cfg.Users = testUsers(t, "carol:pw messages_per_minute=1 max_segments=1", "dave:pw")
	cfg.UserLimits = ratelimit.Limits{MessagesPerMinute: 2}
	cfg.Convert.Overflow = "reject"
	ts := start(t, cfg, nil, plainSMTP)
	login := func(user string) *raw {
		c := greeted(t, ts.addr)
		c.expect("EHLO client.test", "250")
		c.startTLS()
		c.expect("EHLO client.test", "250")
		c.expect("AUTH PLAIN "+plainAuth(user, "pw"), "235")
		c.expect("MAIL FROM:<"+user+"@x.test>", "250")
		return c
	}
	c := login("carol")
	c.expect("RCPT TO:<+14155550100@sms.test>", "250")
	c.expect("RCPT TO:<+14155550101@sms.test>", "451 4.7.1 Rate limit reached: user carol may send 1 SMS messages per minute")
	c.expect("DATA", "354")
	c.send("Subject: x\r\n\r\n" + strings.Repeat("two segments ", 20) + "\r\n.\r\n")
	if r := c.reply(); !strings.HasPrefix(r, "550 5.3.4 Message too long: its text needs 2 SMS, the limit is 1") {
		t.Fatalf("carol's segment cap: %q", r)
	}
	c = login("dave")
	c.expect("RCPT TO:<+14155550100@sms.test>", "250")
	c.expect("RCPT TO:<+14155550101@sms.test>", "250")
	c.expect("RCPT TO:<+14155550102@sms.test>", "451 4.7.1 Rate limit reached: user dave may send 2")
}
