package smtpd

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"golang.org/x/crypto/bcrypt"

	"github.com/smsbridge/smsbridge/smtpd/users"
	"github.com/smsbridge/smsbridge/store"
)

// testServer is a server on 127.0.0.1:0 with its store (or queue).
type testServer struct {
	*Server
	addr  string // SMTP with STARTTLS if cfg.TLS
	st    *store.Store
	clock *fakeClock
}

type listenKind int

const (
	plainSMTP listenKind = iota
	implicitTLS
	lmtp
)

func start(t *testing.T, cfg Config, q Queue, kind listenKind) *testServer {
	t.Helper()
	ts := &testServer{clock: &fakeClock{t: time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)}}
	if cfg.Now == nil {
		cfg.Now = ts.clock.Now
	}
	if q == nil {
		ts.st = openStore(t)
		q = ts.st
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts.Server = New(cfg, q, nil)
	ts.sleep = func(time.Duration) {}
	ts.addr = l.Addr().String()
	done := make(chan struct{})
	go func() {
		defer close(done)
		switch kind {
		case implicitTLS:
			ts.ServeTLS(l)
		case lmtp:
			ts.ServeLMTP(l)
		default:
			ts.Serve(l)
		}
	}()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		ts.Shutdown(ctx)
		<-done
	})
	return ts
}

// records is how many records the store holds.
func (ts *testServer) records(t *testing.T) int {
	t.Helper()
	counts, err := ts.st.Counts()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, c := range counts {
		n += c
	}
	return n
}

// liveConns is how many client connections the server holds.
func (ts *testServer) liveConns() int {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return len(ts.live)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// raw is a client that speaks SMTP by hand, for what client libraries
// will not send.
type raw struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *raw {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &raw{t: t, conn: conn, r: bufio.NewReader(conn)}
}

// greeted dials and reads the greeting, which must be 220.
func greeted(t *testing.T, addr string) *raw {
	t.Helper()
	c := dialRaw(t, addr)
	if g := c.reply(); !strings.HasPrefix(g, "220 ") {
		t.Fatalf("greeting %q", g)
	}
	return c
}

func (c *raw) send(s string) {
	c.t.Helper()
	c.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c.conn, s); err != nil {
		c.t.Fatalf("send %q: %v", s, err)
	}
}

// reply reads one reply, all its lines joined by "\n"; "EOF" if the
// server closed the connection.
func (c *raw) reply() string {
	c.t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	var lines []string
	for {
		line, err := c.r.ReadString('\n')
		if err != nil {
			if len(lines) == 0 && (errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || isReset(err)) {
				return "EOF"
			}
			c.t.Fatalf("reading reply: %v (got %q)", err, lines)
		}
		line = strings.TrimRight(line, "\r\n")
		lines = append(lines, line)
		if len(line) < 4 || line[3] != '-' {
			return strings.Join(lines, "\n")
		}
	}
}

// replies reads one reply for each of wants, in order, and fails the test
// unless each starts with its want ("EOF": the server closed).
func (c *raw) replies(wants ...string) {
	c.t.Helper()
	for _, want := range wants {
		if r := c.reply(); !strings.HasPrefix(r, want) {
			c.t.Fatalf("reply %q, want %q", r, want)
		}
	}
}

func isReset(err error) bool {
	return strings.Contains(err.Error(), "connection reset")
}

// cmd sends one command line and returns the reply.
func (c *raw) cmd(line string) string {
	c.t.Helper()
	c.send(line + "\r\n")
	return c.reply()
}

// expect sends a command and checks that the reply starts with want.
func (c *raw) expect(line, want string) string {
	c.t.Helper()
	got := c.cmd(line)
	if !strings.HasPrefix(got, want) {
		c.t.Fatalf("%q: reply %q, want %q", line, got, want)
	}
	return got
}

// startTLS upgrades the connection; the EHLO must be given again.
func (c *raw) startTLS() {
	c.t.Helper()
	c.expect("STARTTLS", "220 ")
	tc := tls.Client(c.conn, &tls.Config{InsecureSkipVerify: true})
	if err := tc.Handshake(); err != nil {
		c.t.Fatal(err)
	}
	c.conn = tc
	c.r = bufio.NewReader(tc)
}

// closed reports that the server closes the connection without a reply.
func (c *raw) closed() bool {
	c.t.Helper()
	return c.reply() == "EOF"
}

func plainAuth(user, pw string) string {
	return b64("\x00" + user + "\x00" + pw)
}

func b64(s string) string {
	return base64Std(s)
}

// testUsers makes a users DB with cheap hashes.
func testUsers(t *testing.T, lines ...string) *users.DB {
	t.Helper()
	var b strings.Builder
	for _, l := range lines {
		name, pw, _ := strings.Cut(l, ":")
		pw, settings, _ := strings.Cut(pw, " ")
		h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s:%s %s\n", name, h, settings)
	}
	db, err := users.Parse(strings.NewReader(b.String()), "test")
	if err != nil {
		t.Fatal(err)
	}
	return db
}

// countingQueue counts Add calls on its way to a real store; failFor makes
// Add fail for records to one number (failure injection for LMTP).
type countingQueue struct {
	*store.Store
	mu      sync.Mutex
	adds    int
	failFor string
}

func (q *countingQueue) Add(ctx context.Context, recs []*store.Record) error {
	q.mu.Lock()
	q.adds++
	q.mu.Unlock()
	for _, r := range recs {
		if r.To == q.failFor {
			return errors.New("disk on fire")
		}
	}
	return q.Store.Add(ctx, recs)
}

func base64Std(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func storeQueryAll() store.Query { return store.Query{Limit: 1000} }

// lmtpEnvelope dials the LMTP listener at addr and sends LHLO, MAIL FROM
// a@x.test and an RCPT for each of rcpts; the client is closed with t.
func lmtpEnvelope(t *testing.T, addr string, rcpts ...string) *smtp.Client {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c := smtp.NewClientLMTP(conn)
	t.Cleanup(func() { c.Close() })
	if err := c.Hello("mta.test"); err != nil {
		t.Fatal(err)
	}
	if err := c.Mail("a@x.test", nil); err != nil {
		t.Fatal(err)
	}
	for _, r := range rcpts {
		if err := c.Rcpt(r, nil); err != nil {
			t.Fatal(err)
		}
	}
	return c
}
