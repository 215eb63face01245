package smtpd

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// TestSmuggling: each probe hides a second transaction behind a line end
// that some MTA might read as the end of DATA. The server must refuse the
// message and never queue the hidden one.
func TestSmuggling(t *testing.T) {
	const hidden = "MAIL FROM:<evil@x.test>\r\nRCPT TO:<+14155550199@sms.test>\r\nDATA\r\nsmuggled\r\n"
	for _, tc := range []struct{ name, probe, want string }{
		{`\n.\n`, "\n.\n", "550 5.5.2"},
		{`\n.\r\n`, "\n.\r\n", "550 5.5.2"},
		{`\r.\r\n`, "\r.\r\n", "550 5.5.2"},
		{"bare CR", "\r", "550 5.5.2"},
		{"bare LF", "\n", "550 5.5.2"},
		// go-smtp's DATA reader dropped a "." and CR at the start of a
		// line when no LF followed, hiding this bare CR; our patched copy
		// (third_party/go-smtp) hands the CR on.
		{`\r\n.\r`, "\r\n.\r", "550 5.5.2"},
		{`\r\n.\r\r\n`, "\r\n.\r\r\n", "550 5.5.2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := start(t, baseConfig(), nil, plainSMTP)
			c := envelopeTo(t, ts.addr)
			c.expect("RCPT TO:<+14155550123@sms.test>", "250")
			c.expect("DATA", "354")
			c.send("Subject: x\r\n\r\nhello" + tc.probe + hidden + ".\r\n")
			if r := c.reply(); !strings.HasPrefix(r, tc.want) {
				t.Fatalf("reply %q", r)
			}
			// Nothing of the hidden transaction was read as commands.
			c.expect("NOOP", "250 2.0.0")
			if n := ts.records(t); n != 0 {
				t.Fatalf("%d records queued", n)
			}
		})
	}
}

// TestClientStopsMidData: a client that goes away in the middle of the
// message queues nothing and leaves no session behind.
func TestClientStopsMidData(t *testing.T) {
	ts := start(t, baseConfig(), nil, plainSMTP)
	c := envelopeTo(t, ts.addr)
	c.expect("RCPT TO:<+14155550123@sms.test>", "250")
	c.expect("DATA", "354")
	c.send("Subject: x\r\n\r\nhalf a mess")
	c.conn.Close()
	waitFor(t, "the session to end", func() bool { return ts.liveConns() == 0 })
	if n := ts.records(t); n != 0 {
		t.Fatalf("%d records queued", n)
	}
}

// TestIdleTimeout: the idle limit applies to each read, in DATA too, where
// go-smtp's ReadTimeout would wait for the whole transfer.
func TestIdleTimeout(t *testing.T) {
	cfg := baseConfig()
	cfg.IdleTimeout = 150 * time.Millisecond
	ts := start(t, cfg, nil, plainSMTP)

	c := envelopeTo(t, ts.addr)
	c.expect("RCPT TO:<+14155550123@sms.test>", "250")
	c.expect("DATA", "354")
	c.send("Subject: x\r\n\r\nhalf a mess")
	began := time.Now()
	if r := c.reply(); !strings.HasPrefix(r, "421 4.4.2 Timeout reading the message") {
		t.Fatalf("reply %q", r)
	}
	if d := time.Since(began); d > 2*time.Second {
		t.Fatalf("timeout took %v", d)
	}
	if !c.closed() {
		t.Fatal("connection left open")
	}
	// The same inside a BDAT chunk (go-smtp said 554, a permanent
	// failure, for a client that was only slow).
	c = envelopeTo(t, ts.addr)
	c.expect("RCPT TO:<+14155550123@sms.test>", "250")
	c.send("BDAT 100 LAST\r\nSubject: x\r\n\r\nhalf")
	if r := c.reply(); !strings.HasPrefix(r, "421 4.4.2") {
		t.Fatalf("idle in BDAT: %q", r)
	}
	if !c.closed() {
		t.Fatal("connection left open after BDAT timeout")
	}
	// The rest of the body, had it come, is not read as commands.
	c = greeted(t, ts.addr)
	c.expect("EHLO client.test", "250")
	if r := c.reply(); !strings.HasPrefix(r, "421 4.4.2") {
		t.Fatalf("idle between commands: %q", r)
	}
	if n := ts.records(t); n != 0 {
		t.Fatalf("%d records queued", n)
	}
}

// TestSMTPUTF8: advertised with 8BITMIME and PIPELINING; a UTF-8 sender
// works with SMTPUTF8 and is refused without it; an 8-bit body is read.
func TestSMTPUTF8(t *testing.T) {
	ts := start(t, baseConfig(), nil, plainSMTP)
	c := greeted(t, ts.addr)
	ehlo := c.expect("EHLO client.test", "250")
	for _, ext := range []string{"SMTPUTF8", "8BITMIME", "PIPELINING", "ENHANCEDSTATUSCODES", "SIZE 10485760"} {
		if !strings.Contains(ehlo, "250-"+ext+"\n") && !strings.HasSuffix(ehlo, "250 "+ext) {
			t.Errorf("EHLO lacks %s:\n%s", ext, ehlo)
		}
	}
	c.expect("MAIL FROM:<jörg@bücher.test>", "553 5.6.7")
	c.expect("MAIL FROM:<jörg@bücher.test> SMTPUTF8 BODY=8BITMIME", "250")
	// With SMTPUTF8 given, a UTF-8 recipient is refused for what it is
	// (RFC 6531 §3.5 keeps 5.6.7 for a missing SMTPUTF8).
	c.expect("RCPT TO:<jé@sms.test>", "550 5.1.3")
	c.expect("RCPT TO:<+14155550123@sms.bücher.test>", "550 5.7.1")
	c.expect("RCPT TO:<+14155550123@sms.test>", "250")
	c.expect("DATA", "354")
	c.send("Subject: Grüße\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nPumpe läuft nicht\r\n.\r\n")
	if r := c.reply(); !strings.HasPrefix(r, "250 2.0.0") {
		t.Fatalf("reply %q", r)
	}
	recs, _, err := ts.st.Query(storeQueryAll())
	if err != nil || len(recs) != 1 {
		t.Fatal(recs, err)
	}
	if recs[0].From != "jörg@bücher.test" || recs[0].Text != "Pumpe läuft nicht" {
		t.Fatalf("from %q text %q", recs[0].From, recs[0].Text)
	}
}

// TestPipelining: a whole transaction in one write, replies in order.
func TestPipelining(t *testing.T) {
	ts := start(t, baseConfig(), nil, plainSMTP)
	c := greeted(t, ts.addr)
	c.expect("EHLO client.test", "250")
	c.send("MAIL FROM:<a@x.test>\r\nRCPT TO:<+14155550123@sms.test>\r\nRCPT TO:<x@example.com>\r\nDATA\r\n")
	c.replies("250 2.0.0", "250 2.0.0", "550 5.7.1", "354")
	c.send(testMail + ".\r\nQUIT\r\n")
	c.replies("250 2.0.0 OK: queued as", "221 2.0.0")
}

// TestGracefulShutdown: during Shutdown a session in DATA finishes and gets
// its 250, an idle session is closed with a 421, a new client gets
// 421 4.3.2, and Shutdown returns when all are gone.
func TestGracefulShutdown(t *testing.T) {
	ts := start(t, baseConfig(), nil, plainSMTP)
	busy := envelopeTo(t, ts.addr)
	busy.expect("RCPT TO:<+14155550123@sms.test>", "250")
	busy.expect("DATA", "354")
	busy.send("Subject: x\r\n\r\nfirst half ")
	idle := greeted(t, ts.addr)
	idle.expect("EHLO client.test", "250")
	waitFor(t, "both sessions, one in DATA", func() bool {
		ts.mu.Lock()
		defer ts.mu.Unlock()
		inData := 0
		for c := range ts.live {
			c.mu.Lock()
			if c.inData {
				inData++
			}
			c.mu.Unlock()
		}
		return len(ts.live) == 2 && inData == 1
	})

	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		done <- ts.Shutdown(ctx)
	}()
	waitFor(t, "draining", ts.isDraining)

	if r := idle.reply(); !strings.HasPrefix(r, "421 4.4.2") {
		t.Fatalf("idle session: %q", r)
	}
	late := dialRaw(t, ts.addr)
	if r := late.reply(); r != "421 4.3.2 Service shutting down, try again later" {
		t.Fatalf("new client: %q", r)
	}
	select {
	case err := <-done:
		t.Fatalf("Shutdown returned %v while a message was in transfer", err)
	case <-time.After(50 * time.Millisecond):
	}
	busy.send("second half\r\n.\r\n")
	if r := busy.reply(); !strings.HasPrefix(r, "250 2.0.0 OK: queued as") {
		t.Fatalf("busy session: %q", r)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if ts.records(t) != 1 {
		t.Fatal("message lost")
	}
	if _, err := net.DialTimeout("tcp", ts.addr, time.Second); err == nil {
		t.Fatal("still listening after Shutdown")
	}
}

// TestLMTP: one reply per recipient; a store failure for one recipient
// does not fail the others; one number named twice gets two replies.
func TestLMTP(t *testing.T) {
	q := &countingQueue{Store: openStore(t), failFor: "+14155550124"}
	ts := start(t, baseConfig(), q, lmtp)
	c := lmtpEnvelope(t, ts.addr, "+14155550123@sms.test", "+14155550124@sms.test", "14155550123@sms.test", "+4915112345678@sms.test")
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte(testMail))
	resp, err := w.CloseWithLMTPResponse()
	var lerr smtp.LMTPDataError
	if !errors.As(err, &lerr) || len(lerr) != 1 {
		t.Fatalf("LMTP result %v", err)
	}
	if e := lerr["+14155550124@sms.test"]; e == nil || e.Code != 451 || e.EnhancedCode != (smtp.EnhancedCode{4, 3, 0}) {
		t.Fatalf("failed recipient: %v", e)
	}
	for _, r := range []string{"+14155550123@sms.test", "14155550123@sms.test", "+4915112345678@sms.test"} {
		if resp[r] == nil || !strings.HasPrefix(resp[r].StatusText, "2.0.0 <"+r+"> OK: queued as ") {
			t.Errorf("%s: %+v", r, resp[r])
		}
	}
	id := func(r string) string { _, id, _ := strings.Cut(resp[r].StatusText, "queued as "); return id }
	if id("+14155550123@sms.test") != id("14155550123@sms.test") {
		t.Error("one number named twice got two records")
	}
	if counts, _ := q.Counts(); counts["queued"] != 2 {
		t.Fatalf("counts %v", counts)
	}
}

func TestClientGoneIsNotAWarning(t *testing.T) {
	for _, tc := range []struct {
		detail string
		gone   bool
	}{
		{"write tcp 127.0.0.1:2525->127.0.0.1:5555: write: broken pipe", true},
		{"read tcp 127.0.0.1:2525->127.0.0.1:5555: read: connection reset by peer", true},
		{"accept tcp [::]:2525: use of closed network connection", true},
		{"handler panicked: runtime error: index out of range", false},
		{"accept tcp [::]:2525: accept4: too many open files", false},
	} {
		if got := clientGone(tc.detail); got != tc.gone {
			t.Errorf("clientGone(%q) = %v, want %v", tc.detail, got, tc.gone)
		}
	}
}
