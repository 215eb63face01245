package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-message"
	"github.com/emersion/go-message/textproto"
	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/smsbridge/smsbridge/internal/smtpsink"
	"github.com/smsbridge/smsbridge/smppout/smsctest"
	"github.com/smsbridge/smsbridge/store"
)

// testConfig is a config for a whole smsbridge on loopback with timings
// short enough for tests.
func testConfig(t *testing.T, smscAddr, smarthost string) Config {
	c := defaultConfig()
	c.SMTPAddr = "127.0.0.1:0"
	c.AdminAddr = ""
	c.DataDir = t.TempDir()
	c.Hostname = "gw.test"
	c.SMSC.Addr = smscAddr
	c.SMSC.SystemID, c.SMSC.Password = "gw", "secret"
	c.SMSC.EnquireLink = Duration{time.Second}
	c.SMSC.RespTimeout = Duration{2 * time.Second}
	c.SMSC.ReconnectMin = Duration{20 * time.Millisecond}
	c.SMSC.ReconnectMax = Duration{100 * time.Millisecond}
	c.Retry.Min = Duration{20 * time.Millisecond}
	c.Retry.Max = Duration{100 * time.Millisecond}
	c.Smarthost = smarthost
	yes := true
	c.ReportSuccess = &yes
	return c
}

// running is an app serving in the background.
type running struct {
	*app
	stop func()
}

func startApp(t *testing.T, cfg Config) *running {
	t.Helper()
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	a, err := newApp(cfg, log)
	if err != nil {
		t.Fatalf("newApp: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.run(ctx) }()
	r := &running{app: a}
	var stopped bool
	r.stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("run: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("app did not stop in 20s")
		}
	}
	t.Cleanup(r.stop)
	return r
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	if testing.Verbose() {
		w.t.Log(strings.TrimRight(string(b), "\n"))
	}
	return len(b), nil
}

// sendMail sends one mail over TCP with a real SMTP client and returns the
// queue ids from the 250 reply.
func sendMail(t *testing.T, addr, from string, to []string, msg string) []string {
	t.Helper()
	c, err := smtp.Dial(addr)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer c.Close()
	if err := c.Hello("client.test"); err != nil {
		t.Fatalf("EHLO: %v", err)
	}
	if err := c.Mail(from, nil); err != nil {
		t.Fatalf("MAIL: %v", err)
	}
	for _, r := range to {
		if err := c.Rcpt(r, nil); err != nil {
			t.Fatalf("RCPT %s: %v", r, err)
		}
	}
	w, err := c.Data()
	if err != nil {
		t.Fatalf("DATA: %v", err)
	}
	io.WriteString(w, strings.ReplaceAll(msg, "\n", "\r\n"))
	resp, err := w.CloseWithResponse()
	if err != nil {
		t.Fatalf("end of DATA: %v", err)
	}
	c.Quit()
	_, ids, ok := strings.Cut(resp.StatusText, "queued as ")
	if !ok {
		t.Fatalf("250 reply %q has no queue ids", resp.StatusText)
	}
	return strings.Fields(ids)
}

// startSim starts an SMSC simulator on addr ("127.0.0.1:0" for any port),
// closed at the end of the test.
func startSim(t testing.TB, addr string, cfg smsctest.Config) *smsctest.Server {
	t.Helper()
	sim := smsctest.New(cfg)
	if err := sim.Start(addr); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	return sim
}

// waitState waits until record id reaches a final state and returns it.
func waitFinal(t *testing.T, st *store.Store, id string) *store.Record {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		rec, err := st.Get(id)
		if err != nil {
			t.Fatalf("get %s: %v", id, err)
		}
		if rec.State.Final() {
			return rec
		}
		if time.Now().After(deadline) {
			t.Fatalf("record %s still %s: %+v", id, rec.State, rec.Events)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitFor waits up to 15 s for ok.
func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func waitMessages(t *testing.T, sim *smsctest.Server, n int) []smsctest.Message {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		msgs := sim.Messages()
		if len(msgs) >= n {
			return msgs
		}
		if time.Now().After(deadline) {
			t.Fatalf("simulator got %d messages, want %d", len(msgs), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// dsn is what a test checks of a report mail.
type dsn struct {
	envFrom, envTo string
	subject        string
	inReplyTo      string
	perMsg, perRcp textproto.Header
	human          string
}

// parseReport checks the RFC 3464 shape of a report mail and returns its
// fields.
func parseReport(t *testing.T, m smtpsink.Message) dsn {
	t.Helper()
	e, err := message.Read(bytes.NewReader(m.Data))
	if err != nil {
		t.Fatalf("report does not parse: %v\n%s", err, m.Data)
	}
	mt, params, _ := e.Header.ContentType()
	if mt != "multipart/report" || params["report-type"] != "delivery-status" {
		t.Fatalf("report Content-Type %s %v", mt, params)
	}
	d := dsn{envFrom: m.From, envTo: strings.Join(m.To, ","), subject: e.Header.Get("Subject"),
		inReplyTo: e.Header.Get("In-Reply-To")}
	if got := e.Header.Get("Auto-Submitted"); got != "auto-replied" {
		t.Errorf("Auto-Submitted = %q", got)
	}
	mr := e.MultipartReader()
	var types []string
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("report part: %v", err)
		}
		pt, _, _ := p.Header.ContentType()
		types = append(types, pt)
		body, _ := io.ReadAll(p.Body)
		switch pt {
		case "text/plain":
			d.human = string(body)
		case "message/delivery-status":
			br := bufioReader(body)
			if d.perMsg, err = textproto.ReadHeader(br); err != nil {
				t.Fatalf("per-message fields: %v\n%s", err, body)
			}
			if d.perRcp, err = textproto.ReadHeader(br); err != nil {
				t.Fatalf("per-recipient fields: %v\n%s", err, body)
			}
		}
	}
	want := "text/plain,message/delivery-status,text/rfc822-headers"
	if got := strings.Join(types, ","); got != want {
		t.Errorf("report parts %s, want %s", got, want)
	}
	return d
}

// gsmText is 400 characters whose GSM 03.38 codes equal their ASCII codes,
// so a 3-part message (153+153+94 septets).
var gsmText = strings.Repeat("Alarm 42 on pump station North. ", 13)[:400]

func TestEndToEnd(t *testing.T) {
	sim := startSim(t, "127.0.0.1:0", smsctest.Config{
		SystemID: "gw", Password: "secret",
		ReceiptDelay: 50 * time.Millisecond,
		Outcomes:     []smsctest.Outcome{{Prefix: "14155550199", Stat: "UNDELIV", Err: "001"}},
	})
	sink, err := smtpsink.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	a := startApp(t, testConfig(t, sim.Addr(), sink.Addr()))
	addr := a.smtpL.Addr().String()

	mail := "From: Pump <alarm@plant.test>\nTo: ops\nSubject: Pump alarm\nMessage-ID: <alarm-1@plant.test>\n\n" + gsmText + "\n"
	ids := sendMail(t, addr, "alarm@plant.test",
		[]string{"+14155550123@sms.localhost", "1-415-555-0124@SMS.LOCALHOST"}, mail)
	if len(ids) != 2 {
		t.Fatalf("queue ids %v, want 2", ids)
	}

	msgs := waitMessages(t, sim, 6)
	byDest := map[string][]smsctest.Message{}
	for _, m := range msgs {
		byDest[m.Dest] = append(byDest[m.Dest], m)
	}
	for _, dest := range []string{"14155550123", "14155550124"} {
		parts := byDest[dest]
		if len(parts) != 3 {
			t.Fatalf("%s got %d parts, want 3", dest, len(parts))
		}
		checkConcatenated(t, parts, gsmText)
	}
	for _, id := range ids {
		if rec := waitFinal(t, a.st, id); rec.State != store.Delivered {
			t.Errorf("record %s ended %s, want delivered: %+v", id, rec.State, rec.Events)
		}
	}
	reps, err := sink.Wait(ctxTimeout(t, 15*time.Second), 2)
	if err != nil {
		t.Fatal(err)
	}
	finals := map[string]bool{}
	for _, m := range reps {
		d := parseReport(t, m)
		if d.envFrom != "" || d.envTo != "alarm@plant.test" {
			t.Errorf("report envelope %q -> %q, want <> -> alarm@plant.test", d.envFrom, d.envTo)
		}
		if got := d.perRcp.Get("Action"); got != "delivered" {
			t.Errorf("Action = %q, want delivered", got)
		}
		if got := d.perRcp.Get("Status"); got != "2.0.0" {
			t.Errorf("Status = %q, want 2.0.0", got)
		}
		if d.inReplyTo != "<alarm-1@plant.test>" {
			t.Errorf("In-Reply-To = %q", d.inReplyTo)
		}
		if !strings.HasPrefix(d.perMsg.Get("Reporting-MTA"), "dns;") {
			t.Errorf("Reporting-MTA = %q", d.perMsg.Get("Reporting-MTA"))
		}
		finals[d.perRcp.Get("Final-Recipient")] = true
	}
	for _, want := range []string{"rfc822; +14155550123@sms.localhost", "rfc822; 1-415-555-0124@SMS.LOCALHOST"} {
		if !finals[want] {
			t.Errorf("no report with Final-Recipient %q (got %v)", want, finals)
		}
	}

	// A receipt that says UNDELIV fails the record and the sender hears of it.
	ids = sendMail(t, addr, "erp@corp.test", []string{"+14155550199@sms.localhost"},
		"Subject: Invoice\n\nYour invoice is ready.\n")
	rec := waitFinal(t, a.st, ids[0])
	if rec.State != store.Failed {
		t.Fatalf("UNDELIV record ended %s", rec.State)
	}
	reps, err = sink.Wait(ctxTimeout(t, 15*time.Second), 3)
	if err != nil {
		t.Fatal(err)
	}
	d := parseReport(t, reps[2])
	if d.envTo != "erp@corp.test" || d.perRcp.Get("Action") != "failed" || !strings.HasPrefix(d.perRcp.Get("Status"), "5.") {
		t.Errorf("failure report: to %s, Action %q, Status %q", d.envTo, d.perRcp.Get("Action"), d.perRcp.Get("Status"))
	}
	if got := d.perRcp.Get("Diagnostic-Code"); !strings.Contains(got, "UNDELIV") {
		t.Errorf("Diagnostic-Code = %q, want the SMSC's stat", got)
	}
	if !strings.HasPrefix(d.subject, "Undeliverable") {
		t.Errorf("failure report Subject = %q", d.subject)
	}
}

// checkConcatenated checks TS 23.040 §9.2.3.24.1 headers on the parts of
// one message and that their payloads join up to text.
func checkConcatenated(t *testing.T, parts []smsctest.Message, text string) {
	t.Helper()
	var joined []byte
	ref := parts[0].ShortMessage[3]
	for i, p := range parts {
		if p.DataCoding != 0 {
			t.Errorf("part %d data_coding %#x, want 0 (GSM 7-bit)", i+1, p.DataCoding)
		}
		if p.ESMClass&0x40 == 0 {
			t.Errorf("part %d esm_class %#x lacks UDHI", i+1, p.ESMClass)
		}
		if p.RegisteredDelivery&1 == 0 {
			t.Errorf("part %d registered_delivery %#x asks no receipt", i+1, p.RegisteredDelivery)
		}
		udh := p.ShortMessage[:6]
		want := []byte{5, 0, 3, ref, byte(len(parts)), byte(i + 1)}
		if !bytes.Equal(udh, want) {
			t.Errorf("part %d UDH % x, want % x", i+1, udh, want)
		}
		joined = append(joined, p.ShortMessage[6:]...)
	}
	if got := string(joined); got != text {
		t.Errorf("parts join to %q, want %q", got, text)
	}
	if n := len(parts[0].ShortMessage) - 6; n != 153 {
		t.Errorf("first part carries %d septets, want 153", n)
	}
}

func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// freeAddr returns a loopback address nothing listens on (yet).
func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// TestRestartWhileSMSCDown: a mail accepted while the SMSC is down survives
// a restart of smsbridge and is sent, and reported, exactly once when the
// SMSC comes up.
func TestRestartWhileSMSCDown(t *testing.T) {
	smscAddr := freeAddr(t)
	sink, err := smtpsink.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	cfg := testConfig(t, smscAddr, sink.Addr())

	a := startApp(t, cfg)
	ids := sendMail(t, a.smtpL.Addr().String(), "ops@corp.test", []string{"+14155550123@sms.localhost"},
		"Subject: Disk full\n\nDisk /var is 97% full on db1.\n")
	time.Sleep(200 * time.Millisecond) // let it try and fail a few times
	a.stop()

	cfg2 := cfg
	cfg2.SMTPAddr = "127.0.0.1:0"
	b := startApp(t, cfg2)
	rec, err := b.st.Get(ids[0])
	if err != nil || rec.State != store.Queued {
		t.Fatalf("after restart: %v, state %v", err, rec)
	}
	sim := startSim(t, smscAddr, smsctest.Config{SystemID: "gw", Password: "secret", ReceiptDelay: 20 * time.Millisecond})
	if rec := waitFinal(t, b.st, ids[0]); rec.State != store.Delivered {
		t.Fatalf("record ended %s", rec.State)
	}
	if _, err := sink.Wait(ctxTimeout(t, 15*time.Second), 1); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // room for a duplicate to show up
	if n := len(sim.Messages()); n != 1 {
		t.Errorf("SMSC got %d submits, want exactly 1", n)
	}
	if got := sim.Messages()[0].ShortMessage; string(got) != "Disk /var is 97% full on db1." {
		t.Errorf("SMS text %q", got)
	}
	if n := len(sink.Messages()); n != 1 {
		t.Errorf("%d reports, want exactly 1", n)
	}
}

func bufioReader(b []byte) *bufio.Reader { return bufio.NewReader(bytes.NewReader(b)) }

// TestDemoMode: with no SMSC configured, smsbridge runs its own simulator and
// writes reports, successes included, to the outbox, as a newcomer expects.
func TestDemoMode(t *testing.T) {
	cfg := defaultConfig()
	cfg.SMTPAddr = "127.0.0.1:0"
	cfg.AdminAddr = "127.0.0.1:0"
	cfg.DataDir = t.TempDir()
	a := startApp(t, cfg)
	if a.sim == nil {
		t.Fatal("no simulator in demo mode")
	}
	if before := httpGet(t, "http://"+a.adminL.Addr().String()+"/metrics"); !strings.Contains(before, "smsbridge_mails_accepted_total 0") {
		t.Errorf("before any mail, /metrics lacks smsbridge_mails_accepted_total 0")
	}
	ids := sendMail(t, a.smtpL.Addr().String(), "ops@example.com", []string{"+14155550123@sms.localhost"},
		"Subject: Hello\n\nHello from the demo\n")
	if rec := waitFinal(t, a.st, ids[0]); rec.State != store.Delivered {
		t.Fatalf("record ended %s", rec.State)
	}
	outbox := filepath.Join(cfg.DataDir, "outbox")
	deadline := time.Now().Add(10 * time.Second)
	for {
		files, _ := filepath.Glob(filepath.Join(outbox, "*.eml"))
		if len(files) == 1 {
			data, err := os.ReadFile(files[0])
			if err != nil {
				t.Fatal(err)
			}
			d := parseReport(t, smtpsink.Message{To: []string{"ops@example.com"}, Data: data})
			if d.perRcp.Get("Action") != "delivered" {
				t.Errorf("demo report Action %q", d.perRcp.Get("Action"))
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("outbox has %d reports, want 1", len(files))
		}
		time.Sleep(20 * time.Millisecond)
	}
	base := "http://" + a.adminL.Addr().String()
	if got := httpGet(t, base+"/healthz"); got != "ok\n" {
		t.Errorf("/healthz = %q", got)
	}
	metrics := httpGet(t, base+"/metrics")
	for _, want := range []string{
		"smsbridge_segments_submitted_total 1",
		`smsbridge_records{state="delivered"} 1`,
		`smsbridge_receipts_total{matched="true",stat="DELIVRD"} 1`,
		`smsbridge_reports_total{result="sent"} 1`,
		`smsbridge_route_bound{route="default"} 1`,
		`smsbridge_route_submitted_total{route="default"} 1`,
		`smsbridge_route_receipts_total{route="default"} 1`,
		"smsbridge_queue_oldest_seconds 0",
		`smsbridge_smtp_sessions_total{protocol="smtp"} 1`,
		`smsbridge_smtp_replies_total{code="250",command="DATA"} 1`,
		"smsbridge_mails_accepted_total 1",
		"smsbridge_records_accepted_total 1",
		"smsbridge_commit_seconds_count 1",
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if got := httpGet(t, base+"/api/records/"+ids[0]); !strings.Contains(got, `"state": "delivered"`) {
		t.Errorf("API record: %s", got)
	}

	// The queue CLI, over the API and then on the stopped server's data dir.
	queue := func(args ...string) string {
		var out, errOut strings.Builder
		if status := runQueue(args, &out, &errOut); status != 0 {
			t.Fatalf("queue %v: status %d: %s", args, status, errOut.String())
		}
		return out.String()
	}
	if got := queue("--admin-addr", a.adminL.Addr().String(), "list", "--state", "delivered"); !strings.Contains(got, ids[0]) {
		t.Errorf("queue list:\n%s", got)
	}
	if got := queue("--admin-addr", a.adminL.Addr().String(), "show", ids[0]); !strings.Contains(got, "stat=DELIVRD") {
		t.Errorf("queue show:\n%s", got)
	}
	a.stop()
	if got := queue("--data-dir", cfg.DataDir, "--json", "show", ids[0]); !strings.Contains(got, `"what": "reported"`) {
		t.Errorf("offline queue show:\n%s", got)
	}
	// Flags may come after the subcommand and its argument too.
	if got := queue("list", "--state", "delivered", "--data-dir", cfg.DataDir); !strings.Contains(got, ids[0]) {
		t.Errorf("queue list with flags after it:\n%s", got)
	}
	if got := queue("show", ids[0], "--json", "--data-dir", cfg.DataDir); !strings.Contains(got, `"what": "reported"`) {
		t.Errorf("queue show with flags after it:\n%s", got)
	}
	var errOut strings.Builder
	if status := runQueue([]string{"show", ids[0], "--state", "failed", "--data-dir", cfg.DataDir}, io.Discard, &errOut); status != 2 {
		t.Errorf("show with a list filter: status %d, want 2", status)
	}
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s\n%s", url, resp.Status, b)
	}
	return string(b)
}

// TestStartFailsCleanly: a busy SMTP port is an error, not a crash, and
// leaves the store closed so that another process may open it.
func TestStartFailsCleanly(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	cfg := defaultConfig()
	cfg.SMTPAddr = busy.Addr().String()
	cfg.AdminAddr = ""
	cfg.DataDir = t.TempDir()
	if _, err := newApp(cfg, slog.New(slog.DiscardHandler)); err == nil {
		t.Fatal("newApp succeeded on a busy port")
	}
	st, err := store.Open(filepath.Join(cfg.DataDir, "smsbridge.db"), store.Options{})
	if err != nil {
		t.Fatalf("store left open: %v", err)
	}
	st.Close()
}

// TestAuthOverStartTLS: with no trusted network, a client must STARTTLS
// and AUTH; the user's sender id reaches the phone. The users file is made
// with `smsbridge passwd`.
func TestAuthOverStartTLS(t *testing.T) {
	cfg := defaultConfig()
	cfg.SMTPAddr, cfg.AdminAddr, cfg.DataDir = "127.0.0.1:0", "", t.TempDir()
	cfg.TrustedNetworks = []string{}
	cfg.SMTP.UsersFile = filepath.Join(cfg.DataDir, "users")

	r, w, _ := os.Pipe()
	io.WriteString(w, "s3cret-pw\n")
	w.Close()
	var out, errOut strings.Builder
	if status := runPasswd([]string{"--users", cfg.SMTP.UsersFile, "alice"}, r, &out, &errOut); status != 0 {
		t.Fatalf("passwd: %d %s", status, errOut.String())
	}
	line, _ := os.ReadFile(cfg.SMTP.UsersFile)
	os.WriteFile(cfg.SMTP.UsersFile, []byte(strings.TrimSpace(string(line))+" source=ACME\n"), 0o600)

	a := startApp(t, cfg)
	c, err := smtp.Dial(a.smtpL.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("client.test"); err != nil {
		t.Fatal(err)
	}
	var se *smtp.SMTPError
	if err := c.Mail("alice@acme.test", nil); !errors.As(err, &se) || se.Code != 530 || se.EnhancedCode != (smtp.EnhancedCode{5, 7, 0}) {
		t.Fatalf("MAIL before AUTH: %v, want 530 5.7.0", err)
	}
	if err := c.Auth(sasl.NewPlainClient("", "alice", "s3cret-pw")); err == nil {
		t.Fatal("AUTH without TLS succeeded")
	}
	c.Close()
	// The demo's certificate is self-signed.
	c, err = smtp.DialStartTLS(a.smtpL.Addr().String(), &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatalf("STARTTLS: %v", err)
	}
	defer c.Close()
	if err := c.Auth(sasl.NewPlainClient("", "alice", "wrong")); err == nil {
		t.Fatal("AUTH with a wrong password succeeded")
	}
	if err := c.Auth(sasl.NewPlainClient("", "alice", "s3cret-pw")); err != nil {
		t.Fatalf("AUTH: %v", err)
	}
	if err := c.Mail("alice@acme.test", nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt("+14155550123@sms.localhost", nil); err != nil {
		t.Fatal(err)
	}
	wc, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(wc, "Subject: hi\r\n\r\nfrom alice\r\n")
	resp, err := wc.CloseWithResponse()
	if err != nil {
		t.Fatal(err)
	}
	id := strings.Fields(resp.StatusText)[len(strings.Fields(resp.StatusText))-1]
	rec := waitFinal(t, a.st, id)
	if rec.User != "alice" || rec.Source != "ACME" {
		t.Errorf("record user %q source %q", rec.User, rec.Source)
	}
	if msgs := a.sim.Messages(); len(msgs) != 1 || msgs[0].Source != "ACME" {
		t.Errorf("SMSC got %+v, want source ACME", msgs)
	}
}

// TestReload: SIGHUP's reload moves a route to another SMSC, keeps the
// binds of a route that did not change, and applies a new deny list.
func TestReload(t *testing.T) {
	sims := map[string]*smsctest.Server{}
	for _, n := range []string{"a", "b", "fr"} {
		s := startSim(t, "127.0.0.1:0", smsctest.Config{SystemID: "gw", Password: "secret", ReceiptDelay: 10 * time.Millisecond})
		sims[n] = s
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "smsbridge.toml")
	write := func(deAddr, deny string) {
		os.WriteFile(file, []byte(fmt.Sprintf(`smtp_addr = "127.0.0.1:0"
admin_addr = ""
data_dir = %q
[smtp]
deny_prefixes = [%s]
[[routes]]
name = "de"
prefixes = ["+49"]
addr = %q
system_id = "gw"
password = "secret"
reconnect_min = "20ms"
reconnect_max = "100ms"
[[routes]]
name = "fr"
prefixes = ["+33"]
addr = %q
system_id = "gw"
password = "secret"
`, filepath.Join(dir, "data"), deny, deAddr, sims["fr"].Addr())), 0o600)
	}
	write(sims["a"].Addr(), "")
	cfg, err := parseServeFlags([]string{"--config", file})
	if err != nil {
		t.Fatal(err)
	}
	a := startApp(t, cfg)
	a.reloadConfig = func() (Config, error) { return parseServeFlags([]string{"--config", file}) }
	addr := a.smtpL.Addr().String()
	if err := sims["fr"].WaitBinds(ctxTimeout(t, 10*time.Second), 1); err != nil {
		t.Fatal(err)
	}
	sendMail(t, addr, "ops@x.test", []string{"+4915112345678@sms.localhost"}, "Subject: one\n\nfirst\n")
	if _, err := sims["a"].WaitMessages(ctxTimeout(t, 10*time.Second), 1); err != nil {
		t.Fatal(err)
	}

	write(sims["b"].Addr(), `"+4930"`)
	a.reload()
	// A mail that finds route de not bound yet waits RetryMin (30 s): wait
	// for its new client to bind, the reload's promise under test.
	waitFor(t, "route de bound to its new SMSC", func() bool {
		for _, r := range a.rs.list() {
			if r.name == "de" && r.sc.Addr == sims["b"].Addr() && r.cl.Bound() {
				return true
			}
		}
		return false
	})
	ids := sendMail(t, addr, "ops@x.test", []string{"+4915112345679@sms.localhost"}, "Subject: two\n\nsecond\n")
	if rec := waitFinal(t, a.st, ids[0]); rec.State != store.Delivered {
		t.Fatalf("after reload: %s", rec.State)
	}
	if n := len(sims["b"].Messages()); n != 1 {
		t.Errorf("the new SMSC of route de got %d messages, want 1", n)
	}
	if n := len(sims["a"].Messages()); n != 1 {
		t.Errorf("the old SMSC of route de got %d messages, want still 1", n)
	}
	if n := sims["fr"].Binds(); n != 1 {
		t.Errorf("route fr, unchanged, bound %d times, want once", n)
	}
	c, err := smtp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Hello("client.test")
	c.Mail("ops@x.test", nil)
	var se *smtp.SMTPError
	if err := c.Rcpt("+4930123456@sms.localhost", nil); !errors.As(err, &se) || se.Code != 550 {
		t.Errorf("RCPT to a prefix denied by the reload: %v", err)
	}
}

// TestRenameRouteKeepsReceipts: a route renamed by a reload, with smsc_id
// set to its old name, still matches the receipts of the messages it sent
// before (they come on the new bind: the SMSC account is the same).
func TestRenameRouteKeepsReceipts(t *testing.T) {
	sim := startSim(t, "127.0.0.1:0", smsctest.Config{SystemID: "gw", Password: "secret", ReceiptDelay: 1500 * time.Millisecond})
	dir := t.TempDir()
	file := filepath.Join(dir, "smsbridge.toml")
	write := func(name, smscID string) {
		os.WriteFile(file, []byte(fmt.Sprintf(`smtp_addr = "127.0.0.1:0"
admin_addr = ""
data_dir = %q
[[routes]]
name = %q
smsc_id = %q
prefixes = ["+49"]
addr = %q
system_id = "gw"
password = "secret"
reconnect_min = "20ms"
reconnect_max = "100ms"
`, filepath.Join(dir, "data"), name, smscID, sim.Addr())), 0o600)
	}
	write("de", "")
	cfg, err := parseServeFlags([]string{"--config", file})
	if err != nil {
		t.Fatal(err)
	}
	a := startApp(t, cfg)
	a.reloadConfig = func() (Config, error) { return parseServeFlags([]string{"--config", file}) }
	ids := sendMail(t, a.smtpL.Addr().String(), "ops@x.test", []string{"+4915112345678@sms.localhost"}, "Subject: one\n\nfirst\n")
	if _, err := sim.WaitMessages(ctxTimeout(t, 10*time.Second), 1); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if rec, err := a.st.Get(ids[0]); err == nil && rec.State == store.Submitted {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the SMSC id was not written down")
		}
	}

	write("germany", "de")
	a.reload()
	if rec := waitFinal(t, a.st, ids[0]); rec.State != store.Delivered {
		t.Fatalf("after the rename: %s", rec.State)
	}
	if n := sim.Binds(); n != 2 {
		t.Errorf("%d binds, want 2 (the renamed route is a new one)", n)
	}
}
