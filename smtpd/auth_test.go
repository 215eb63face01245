package smtpd

import (
	"crypto/tls"
	"errors"
	netsmtp "net/smtp"
	"net/textproto"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

const testMail = "Subject: hi\r\n\r\nhello\r\n"

// authConfig is a server for the internet: no trusted network, TLS, users.
func authConfig(t *testing.T) Config {
	t.Helper()
	tc, err := SelfSigned([]string{"mx.test", "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	cfg := baseConfig()
	cfg.TrustedNetworks = nil
	cfg.TLS = tc
	cfg.Users = testUsers(t,
		"alice:secret source=ACME senders=alerts@acme.test,@ops.acme.test",
		"bob:hunter2 prefixes=+49",
	)
	return cfg
}

var clientTLS = &tls.Config{InsecureSkipVerify: true}

// TestSTARTTLSThenAuth: a submission client (go-smtp) starts TLS, logs in
// with PLAIN or LOGIN and sends; the record carries the user and its
// sender id.
func TestSTARTTLSThenAuth(t *testing.T) {
	for _, mech := range []string{"PLAIN", "LOGIN"} {
		t.Run(mech, func(t *testing.T) {
			ts := start(t, authConfig(t), nil, plainSMTP)
			c, err := smtp.DialStartTLS(ts.addr, clientTLS)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if err := c.Hello("client.test"); err != nil {
				t.Fatal(err)
			}
			if ok, params := c.Extension("AUTH"); !ok || params != "PLAIN LOGIN" {
				t.Fatalf("AUTH over TLS advertised %v %q", ok, params)
			}
			a := sasl.NewPlainClient("", "alice", "secret")
			if mech == "LOGIN" {
				a = sasl.NewLoginClient("alice", "secret")
			}
			if err := c.Auth(a); err != nil {
				t.Fatal(err)
			}
			if err := c.SendMail("alerts@acme.test", []string{"+14155550123@sms.test"}, strings.NewReader(testMail)); err != nil {
				t.Fatal(err)
			}
			recs, _, err := ts.st.Query(storeQueryAll())
			if err != nil || len(recs) != 1 {
				t.Fatalf("records %v %v", recs, err)
			}
			if recs[0].User != "alice" || recs[0].Source != "ACME" || recs[0].From != "alerts@acme.test" {
				t.Fatalf("record user %q source %q from %q", recs[0].User, recs[0].Source, recs[0].From)
			}
		})
	}
}

// TestNetSMTPClient: Go's net/smtp, which refuses PLAIN without TLS itself.
func TestNetSMTPClient(t *testing.T) {
	ts := start(t, authConfig(t), nil, plainSMTP)
	c, err := netsmtp.Dial(ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("client.test"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := c.Extension("AUTH"); ok {
		t.Fatal("AUTH advertised before TLS")
	}
	if err := c.StartTLS(&tls.Config{InsecureSkipVerify: true, ServerName: "mx.test"}); err != nil {
		t.Fatal(err)
	}
	if err := c.Auth(netsmtp.PlainAuth("", "bob", "hunter2", "127.0.0.1")); err != nil {
		t.Fatal(err)
	}
	if err := c.Mail("bob@x.test"); err != nil {
		t.Fatal(err)
	}
	var te *textproto.Error
	if err := c.Rcpt("+14155550123@sms.test"); !errors.As(err, &te) || te.Code != 550 || !strings.HasPrefix(te.Msg, "5.7.1 ") {
		t.Fatalf("bob may only send to +49: %v", err)
	}
	if err := c.Rcpt("+4915112345678@sms.test"); err != nil {
		t.Fatal(err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte(testMail))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	c.Quit()
	if n := ts.records(t); n != 1 {
		t.Fatalf("%d records", n)
	}
}

// TestAuthNeedsTLS: no AUTH in EHLO without TLS, and AUTH anyway is 538.
func TestAuthNeedsTLS(t *testing.T) {
	ts := start(t, authConfig(t), nil, plainSMTP)
	c := greeted(t, ts.addr)
	ehlo := c.expect("EHLO client.test", "250")
	if strings.Contains(ehlo, "AUTH") || !strings.Contains(ehlo, "STARTTLS") {
		t.Fatalf("EHLO before TLS:\n%s", ehlo)
	}
	c.expect("AUTH PLAIN "+plainAuth("alice", "secret"), "538 5.7.11")
	c.expect("AUTH LOGIN", "538 5.7.11")
	c.expect("MAIL FROM:<alerts@acme.test>", "530 5.7.0")
	c.startTLS()
	ehlo = c.expect("EHLO client.test", "250")
	if !strings.Contains(ehlo, "AUTH PLAIN LOGIN") || strings.Contains(ehlo, "STARTTLS") {
		t.Fatalf("EHLO after TLS:\n%s", ehlo)
	}
	c.expect("AUTH CRAM-MD5", "504 5.5.4")
	c.expect("AUTH PLAIN "+b64("alice\x00secret"), "501 5.5.2")
	c.expect("AUTH PLAIN not-base64!", "501 5.5.2") // RFC 4954 section 4 (go-smtp said 454)
	c.send("AUTH LOGIN\r\n")
	c.reply()
	c.expect("%%%", "501 5.5.2")
	c.expect("AUTH PLAIN "+plainAuth("alice", "secret"), "235 2.7.0")
	c.expect("AUTH PLAIN "+plainAuth("alice", "secret"), "503 5.5.1")
}

func TestTLSVersions(t *testing.T) {
	ts := start(t, authConfig(t), nil, implicitTLS)
	for _, tc := range []struct {
		name string
		max  uint16
		ok   bool
	}{{"TLS 1.0 refused", tls.VersionTLS10, false}, {"TLS 1.1 refused", tls.VersionTLS11, false},
		{"TLS 1.2", tls.VersionTLS12, true}, {"TLS 1.3", tls.VersionTLS13, true}} {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := tls.Dial("tcp", ts.addr, &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS10, MaxVersion: tc.max})
			if (err == nil) != tc.ok {
				t.Fatalf("handshake error %v", err)
			}
			if conn != nil {
				conn.Close()
			}
		})
	}
}

// TestImplicitTLS: port 465 style; AUTH is offered at once, STARTTLS is not.
func TestImplicitTLS(t *testing.T) {
	ts := start(t, authConfig(t), nil, implicitTLS)
	c, err := smtp.DialTLS(ts.addr, clientTLS)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("client.test"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := c.Extension("STARTTLS"); ok {
		t.Fatal("STARTTLS offered inside TLS")
	}
	if err := c.Auth(sasl.NewPlainClient("", "alice", "secret")); err != nil {
		t.Fatal(err)
	}
	if err := c.SendMail("x@ops.acme.test", []string{"+14155550123@sms.test"}, strings.NewReader(testMail)); err != nil {
		t.Fatal(err)
	}
}

// TestWrongPasswords: 535 5.7.8 for a wrong password and an unknown user
// alike; from the AuthSlowAfter-th failure the reply is delayed; at
// AuthMaxFailures the client is cut off, and stays cut off.
func TestWrongPasswords(t *testing.T) {
	cfg := authConfig(t)
	cfg.AuthSlowAfter, cfg.AuthMaxFailures, cfg.AuthDelay = 2, 4, 7*time.Second
	ts := start(t, cfg, nil, plainSMTP)
	var mu sync.Mutex
	var slept []time.Duration
	ts.sleep = func(d time.Duration) { mu.Lock(); slept = append(slept, d); mu.Unlock() }
	sleeps := func() int { mu.Lock(); defer mu.Unlock(); return len(slept) }

	c := greeted(t, ts.addr)
	c.expect("EHLO client.test", "250")
	c.startTLS()
	c.expect("EHLO client.test", "250")
	wrong := c.expect("AUTH PLAIN "+plainAuth("alice", "wrong"), "535 5.7.8")
	if sleeps() != 0 {
		t.Fatal("first failure delayed")
	}
	unknown := c.expect("AUTH PLAIN "+plainAuth("mallory", "secret"), "535 5.7.8")
	if wrong != unknown {
		t.Fatalf("unknown user told apart: %q vs %q", unknown, wrong)
	}
	if sleeps() != 1 || slept[0] != 7*time.Second {
		t.Fatalf("second failure: slept %v", slept)
	}
	c.send("AUTH LOGIN\r\n")
	if r := c.reply(); r != "334 VXNlcm5hbWU6" {
		t.Fatalf("LOGIN challenge %q", r)
	}
	c.send(b64("alice") + "\r\n")
	c.reply()
	c.expect(b64("nope"), "535 5.7.8")
	c.expect("AUTH PLAIN "+plainAuth("alice", "wrong"), "421 4.7.0")
	if !c.closed() {
		t.Fatal("not disconnected after too many failures")
	}
	// A new connection from the same address is cut off at AUTH, even with
	// the right password: no oracle for a guesser.
	c = greeted(t, ts.addr)
	c.expect("EHLO client.test", "250")
	c.startTLS()
	c.expect("EHLO client.test", "250")
	c.expect("AUTH PLAIN "+plainAuth("alice", "secret"), "421 4.7.0")
	if !c.closed() {
		t.Fatal("not disconnected")
	}
	// The window passes.
	ts.clock.Advance(cfg.AuthFailWindow + time.Hour)
	c = greeted(t, ts.addr)
	c.expect("EHLO client.test", "250")
	c.startTLS()
	c.expect("EHLO client.test", "250")
	c.expect("AUTH PLAIN "+plainAuth("alice", "secret"), "235 2.7.0")
}

// TestSenderRules: a user's senders; a trusted network's listed senders.
func TestSenderRules(t *testing.T) {
	ts := start(t, authConfig(t), nil, plainSMTP)
	c := greeted(t, ts.addr)
	c.expect("EHLO client.test", "250")
	c.startTLS()
	c.expect("EHLO client.test", "250")
	c.expect("AUTH PLAIN "+plainAuth("alice", "secret"), "235")
	c.expect("MAIL FROM:<ceo@acme.test>", "553 5.7.1")
	c.expect("MAIL FROM:<>", "553 5.7.1")
	c.expect("MAIL FROM:<Alerts@ACME.test>", "250")
	c.expect("RSET", "250")
	c.expect("MAIL FROM:<pager@OPS.acme.test>", "250")
	// Never a relay, whoever asks.
	c.expect("RCPT TO:<+14155550123@example.com>", "550 5.7.1")

	cfg := baseConfig()
	cfg.TrustedSenders = []string{"monitor@plant.test", "@scada.test"}
	ts = start(t, cfg, nil, plainSMTP)
	for _, tc := range []struct{ from, want string }{
		{"monitor@plant.test", "250"}, {"x@scada.test", "250"}, {"other@plant.test", "530 5.7.0"}, {"", "530 5.7.0"},
	} {
		c := greeted(t, ts.addr)
		c.expect("EHLO client.test", "250")
		c.expect("MAIL FROM:<"+tc.from+">", tc.want)
	}
}
