package report

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// countingListener counts the connections a test server accepts and
// keeps them, to see which said QUIT and to cut them.
type countingListener struct {
	net.Listener

	mu    sync.Mutex
	conns []*watchedConn
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	w := &watchedConn{Conn: c}
	l.mu.Lock()
	l.conns = append(l.conns, w)
	l.mu.Unlock()
	return w, nil
}

func (l *countingListener) list() []*watchedConn {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]*watchedConn(nil), l.conns...)
}

// accepted is how many connections came.
func (l *countingListener) accepted() int { return len(l.list()) }

// ended counts the connections closed, and those of them that said QUIT
// first (plain text only: QUIT is not seen through TLS).
func (l *countingListener) ended() (closed, quit int) {
	for _, c := range l.list() {
		if c.closed.Load() {
			closed++
			if c.quit.Load() {
				quit++
			}
		}
	}
	return closed, quit
}

// watchedConn is the server's side of a connection. It is closed when the
// server closes it or reads EOF (the client closed it).
type watchedConn struct {
	net.Conn
	quit   atomic.Bool
	closed atomic.Bool
}

func (c *watchedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if bytes.Contains(p[:n], []byte("QUIT\r\n")) {
		c.quit.Store(true)
	}
	if err != nil {
		c.closed.Store(true)
	}
	return n, err
}

func (c *watchedConn) Close() error {
	c.closed.Store(true)
	return c.Conn.Close()
}

// serveCounting serves srv on 127.0.0.1:0 until the test ends.
func serveCounting(t testing.TB, srv *smtp.Server) (string, *countingListener) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cl := &countingListener{Listener: l}
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(cl) }()
	t.Cleanup(func() { srv.Close(); <-done })
	return l.Addr().String(), cl
}

// hookSink records deliveries by recipient. hook, if set, is asked at
// MAIL, RCPT and DATA (after the message was read) with the number of the
// connection and of the transaction on it, both from 1; an error is the
// reply.
type hookSink struct {
	hook   func(cmd string, conn, txn int, c *smtp.Conn) error
	noUTF8 bool

	n  atomic.Int32 // sessions
	mu sync.Mutex
	to map[string]int
}

func (s *hookSink) NewSession(c *smtp.Conn) (smtp.Session, error) {
	return &hookSession{s: s, c: c, conn: int(s.n.Add(1))}, nil
}

func (s *hookSink) delivered(rcpt string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.to[rcpt]
}

func (s *hookSink) total() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, v := range s.to {
		n += v
	}
	return n
}

type hookSession struct {
	s    *hookSink
	c    *smtp.Conn
	conn int
	txn  int
	rcpt string
}

func (x *hookSession) call(cmd string) error {
	if x.s.hook == nil {
		return nil
	}
	return x.s.hook(cmd, x.conn, x.txn, x.c)
}

func (x *hookSession) Mail(string, *smtp.MailOptions) error {
	x.txn++
	return x.call("MAIL")
}

func (x *hookSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	x.rcpt = to
	return x.call("RCPT")
}

func (x *hookSession) Data(r io.Reader) error {
	if _, err := io.Copy(io.Discard, r); err != nil {
		return err
	}
	x.s.mu.Lock()
	if x.s.to == nil {
		x.s.to = map[string]int{}
	}
	x.s.to[x.rcpt]++
	x.s.mu.Unlock()
	return x.call("DATA")
}

func (x *hookSession) Reset()        {}
func (x *hookSession) Logout() error { return nil }

func startHookSink(t testing.TB, s *hookSink) (string, *countingListener) {
	t.Helper()
	srv := smtp.NewServer(s)
	srv.Domain = "sink.localhost"
	srv.EnableSMTPUTF8 = !s.noUTF8
	srv.ReadTimeout, srv.WriteTimeout = time.Minute, time.Minute
	srv.ErrorLog = nopLog{}
	return serveCounting(t, srv)
}

type nopLog struct{}

func (nopLog) Printf(string, ...any) {}
func (nopLog) Println(...any)        {}

// eventually polls cond for up to 2 s, in 10 ms steps.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(2 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("after 2s: %s", what)
		}
	}
}

func TestSMTPPoolReuse(t *testing.T) {
	tests := []struct {
		name      string
		pool      *PoolConfig // nil: no Pool
		sends     int
		wantConns int
	}{
		{"no pool: a connection per report", nil, 4, 4},
		{"pool: one connection for all", &PoolConfig{}, 20, 1},
		{"MaxMails 3: a new connection every 3 reports", &PoolConfig{MaxMails: 3}, 7, 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sink := &hookSink{}
			addr, l := startHookSink(t, sink)
			s := SMTP{Addr: addr, Helo: "gw.example"}
			if tc.pool != nil {
				s.Pool = NewPool(*tc.pool)
			}
			msg := buildBase(t)
			for i := range tc.sends {
				if err := s.Send(ctx10s(t), fmt.Sprintf("u%d@example.com", i), msg); err != nil {
					t.Fatalf("send %d: %v", i, err)
				}
			}
			if got := l.accepted(); got != tc.wantConns {
				t.Errorf("%d connections, want %d", got, tc.wantConns)
			}
			for i := range tc.sends {
				if n := sink.delivered(fmt.Sprintf("u%d@example.com", i)); n != 1 {
					t.Errorf("report %d delivered %d times", i, n)
				}
			}
			if s.Pool != nil {
				if n := s.Pool.idleConns(); n != 1 {
					t.Errorf("%d idle connections, want 1", n)
				}
				s.Pool.Close()
				if n := s.Pool.idleConns(); n != 0 {
					t.Errorf("%d idle connections after Close", n)
				}
			}
			// Every connection ends with QUIT: after its report, at MaxMails,
			// or at Close.
			eventually(t, "every connection closed with QUIT", func() bool {
				closed, quit := l.ended()
				return closed == tc.wantConns && quit == tc.wantConns
			})
		})
	}
}

func TestSMTPPoolConcurrent(t *testing.T) {
	const goroutines, each = 8, 25
	tests := []struct {
		name     string
		maxIdle  int
		maxConns int // 0: unchecked
	}{
		// A Send dials only when nothing is idle, and nothing idle is
		// evicted: never more connections than concurrent Sends.
		{"MaxIdle as many as the senders", goroutines, goroutines},
		// Fewer idle than senders: the surplus is evicted and dialled again.
		{"MaxIdle 2", 2, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sink := &hookSink{}
			addr, l := startHookSink(t, sink)
			s := SMTP{Addr: addr, Helo: "gw.example", Pool: NewPool(PoolConfig{MaxIdle: tc.maxIdle})}
			defer s.Pool.Close()
			msg := buildBase(t)
			ctx := ctx10s(t)
			var wg sync.WaitGroup
			errs := make(chan error, goroutines*each)
			for g := range goroutines {
				wg.Go(func() {
					for i := range each {
						if err := s.Send(ctx, fmt.Sprintf("g%d-%d@example.com", g, i), msg); err != nil {
							errs <- err
						}
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			for g := range goroutines {
				for i := range each {
					if n := sink.delivered(fmt.Sprintf("g%d-%d@example.com", g, i)); n != 1 {
						t.Errorf("report g%d-%d delivered %d times", g, i, n)
					}
				}
			}
			if n := sink.total(); n != goroutines*each {
				t.Errorf("%d deliveries, want %d", n, goroutines*each)
			}
			if n := s.Pool.idleConns(); n > tc.maxIdle {
				t.Errorf("%d idle connections, more than MaxIdle %d", n, tc.maxIdle)
			}
			if got := l.accepted(); tc.maxConns > 0 && got > tc.maxConns {
				t.Errorf("%d connections, want at most %d", got, tc.maxConns)
			}
			t.Logf("%d connections for %d reports", l.accepted(), goroutines*each)
		})
	}
}

// TestSMTPPoolDeadConnection: the second report goes on the connection
// the first left idle, which the server breaks in various ways. Broken
// before DATA's 354: sent again at once on a new connection, once. A reply
// of the server's own (451, 550) or a failure after the message was sent:
// the error, as without a pool, and no second attempt.
func TestSMTPPoolDeadConnection(t *testing.T) {
	onSecond := func(cmd string, reply error, cut bool) func(string, int, int, *smtp.Conn) error {
		return func(c string, conn, txn int, sc *smtp.Conn) error {
			if conn == 1 && txn == 2 && c == cmd {
				if cut {
					sc.Conn().Close()
				}
				return reply
			}
			return nil
		}
	}
	r421 := &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 4, 2}, Message: "closing"}
	tests := []struct {
		name string
		hook func(string, int, int, *smtp.Conn) error
		// idle breaks the idle connection, given the server's side.
		idle       func(c *watchedConn)
		wantErr    string // "": delivered; "temporary" or "permanent"
		wantSecond int    // deliveries of the second report
		wantConns  int
	}{
		{name: "server closed the idle connection",
			idle: func(c *watchedConn) { c.Close() }, wantSecond: 1, wantConns: 2},
		{name: "server said 421 and closed the idle connection",
			idle: func(c *watchedConn) {
				io.WriteString(c.Conn, "421 4.4.2 sink.localhost Error: timeout exceeded\r\n")
				c.Close()
			}, wantSecond: 1, wantConns: 2},
		{name: "421 to MAIL", hook: onSecond("MAIL", r421, false), wantSecond: 1, wantConns: 2},
		{name: "421 to RCPT", hook: onSecond("RCPT", r421, false), wantSecond: 1, wantConns: 2},
		{name: "connection cut at RCPT", hook: onSecond("RCPT", nil, true), wantSecond: 1, wantConns: 2},
		{name: "451 to MAIL is the server's answer: not retried",
			hook:    onSecond("MAIL", &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "later"}, false),
			wantErr: "temporary", wantSecond: 0, wantConns: 1},
		{name: "550 to RCPT is permanent: not retried",
			hook:    onSecond("RCPT", &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no"}, false),
			wantErr: "permanent", wantSecond: 0, wantConns: 1},
		{name: "reply to the final dot lost: an error, not sent twice",
			hook: onSecond("DATA", nil, true), wantErr: "temporary", wantSecond: 1, wantConns: 1},
		{name: "421 to the final dot: an error, not retried",
			hook: onSecond("DATA", r421, false), wantErr: "temporary", wantSecond: 1, wantConns: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sink := &hookSink{hook: tc.hook}
			addr, l := startHookSink(t, sink)
			s := SMTP{Addr: addr, Helo: "gw.example", Pool: NewPool(PoolConfig{})}
			defer s.Pool.Close()
			msg := buildBase(t)
			if err := s.Send(ctx10s(t), "first@example.com", msg); err != nil {
				t.Fatal(err)
			}
			if tc.idle != nil {
				tc.idle(l.list()[0])
				eventually(t, "server side closed", func() bool { c, _ := l.ended(); return c == 1 })
			}
			err := s.Send(ctx10s(t), "second@example.com", msg)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("Send: %v", err)
			case tc.wantErr != "" && err == nil:
				t.Fatal("Send succeeded")
			case tc.wantErr != "" && IsPermanent(err) != (tc.wantErr == "permanent"):
				t.Errorf("Send: %v, want a %s error", err, tc.wantErr)
			}
			if n := sink.delivered("second@example.com"); n != tc.wantSecond {
				t.Errorf("second report delivered %d times, want %d", n, tc.wantSecond)
			}
			if n := l.accepted(); n != tc.wantConns {
				t.Errorf("%d connections, want %d", n, tc.wantConns)
			}
			if tc.wantErr != "" {
				// The connection that failed is not pooled again.
				if n := s.Pool.idleConns(); n != 0 {
					t.Errorf("%d idle connections after an error, want 0", n)
				}
				if err := s.Send(ctx10s(t), "third@example.com", msg); err != nil {
					t.Fatalf("third Send: %v", err)
				}
				if n := l.accepted(); n != tc.wantConns+1 {
					t.Errorf("%d connections after the third report, want %d", n, tc.wantConns+1)
				}
			}
		})
	}
}

func TestSMTPPoolIdleTimeout(t *testing.T) {
	sink := &hookSink{}
	addr, l := startHookSink(t, sink)
	s := SMTP{Addr: addr, Helo: "gw.example", Pool: NewPool(PoolConfig{IdleTimeout: 100 * time.Millisecond})}
	defer s.Pool.Close()
	msg := buildBase(t)
	for round := 1; round <= 2; round++ {
		start := time.Now()
		if err := s.Send(ctx10s(t), "alice@example.com", msg); err != nil {
			t.Fatal(err)
		}
		if n := s.Pool.idleConns(); n != 1 {
			t.Fatalf("round %d: %d idle connections, want 1", round, n)
		}
		eventually(t, "the idle connection closed with QUIT", func() bool {
			closed, quit := l.ended()
			return closed == round && quit == round
		})
		if d := time.Since(start); d < 100*time.Millisecond {
			t.Errorf("round %d: closed after %v, before the idle limit", round, d)
		}
		if n := s.Pool.idleConns(); n != 0 {
			t.Errorf("round %d: %d idle connections after the limit", round, n)
		}
	}
	// The second round needed a new connection (and the timer, re-armed,
	// closed it too).
	if n := l.accepted(); n != 2 {
		t.Errorf("%d connections, want 2", n)
	}
}

// TestSMTPPoolExpiredNotUsed: a connection past the idle limit that the
// reaper has not closed yet is not used either.
func TestSMTPPoolExpiredNotUsed(t *testing.T) {
	sink := &hookSink{}
	addr, l := startHookSink(t, sink)
	s := SMTP{Addr: addr, Helo: "gw.example", Pool: NewPool(PoolConfig{IdleTimeout: time.Hour})}
	defer s.Pool.Close()
	msg := buildBase(t)
	if err := s.Send(ctx10s(t), "a@example.com", msg); err != nil {
		t.Fatal(err)
	}
	s.Pool.mu.Lock()
	s.Pool.idle[s.poolKey()][0].since = time.Now().Add(-2 * time.Hour)
	s.Pool.mu.Unlock()
	if err := s.Send(ctx10s(t), "b@example.com", msg); err != nil {
		t.Fatal(err)
	}
	if n := l.accepted(); n != 2 {
		t.Errorf("%d connections, want 2", n)
	}
	eventually(t, "the expired connection closed with QUIT", func() bool {
		closed, quit := l.ended()
		return closed == 1 && quit == 1
	})
}

// TestSMTPPoolEvictsOldest: with MaxIdle idle already, a connection coming
// back pushes out the one idle longest, with QUIT.
func TestSMTPPoolEvictsOldest(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	sink := &hookSink{hook: func(cmd string, conn, txn int, _ *smtp.Conn) error {
		if cmd == "DATA" && conn == 1 && txn == 1 {
			close(entered)
			<-release
		}
		return nil
	}}
	addr, l := startHookSink(t, sink)
	s := SMTP{Addr: addr, Helo: "gw.example", Pool: NewPool(PoolConfig{MaxIdle: 1})}
	defer s.Pool.Close()
	msg := buildBase(t)
	first := make(chan error, 1)
	go func() { first <- s.Send(ctx10s(t), "a@example.com", msg) }()
	<-entered // connection 1 is busy
	if err := s.Send(ctx10s(t), "b@example.com", msg); err != nil {
		t.Fatal(err) // on connection 2, now idle
	}
	close(release)
	if err := <-first; err != nil {
		t.Fatal(err) // connection 1 comes back: 2 goes
	}
	eventually(t, "connection 2 closed with QUIT", func() bool {
		closed, quit := l.ended()
		return closed == 1 && quit == 1 && l.list()[1].quit.Load()
	})
	if n := s.Pool.idleConns(); n != 1 {
		t.Errorf("%d idle connections, want 1", n)
	}
	if err := s.Send(ctx10s(t), "c@example.com", msg); err != nil {
		t.Fatal(err)
	}
	if n := l.accepted(); n != 2 {
		t.Errorf("%d connections, want 2 (the third report on connection 1)", n)
	}
}

// TestSMTPPoolKeepsConnectionAfterLocalRefusal: ErrNoSMTPUTF8 is decided
// before MAIL, so the session is clean and stays in the pool.
func TestSMTPPoolKeepsConnectionAfterLocalRefusal(t *testing.T) {
	sink := &hookSink{noUTF8: true}
	addr, l := startHookSink(t, sink)
	s := SMTP{Addr: addr, Helo: "gw.example", Pool: NewPool(PoolConfig{})}
	defer s.Pool.Close()
	msg := buildBase(t)
	if err := s.Send(ctx10s(t), "a@example.com", msg); err != nil {
		t.Fatal(err)
	}
	if err := s.Send(ctx10s(t), "jörg@example.de", msg); !errors.Is(err, ErrNoSMTPUTF8) || !IsPermanent(err) {
		t.Fatalf("Send: %v, want permanent ErrNoSMTPUTF8", err)
	}
	if err := s.Send(ctx10s(t), "b@example.com", msg); err != nil {
		t.Fatal(err)
	}
	if n := l.accepted(); n != 1 {
		t.Errorf("%d connections, want 1", n)
	}
}

// TestSMTPPoolCancelled: a Send whose ctx ends mid-session does not leave
// its connection in the pool.
func TestSMTPPoolCancelled(t *testing.T) {
	release := make(chan struct{})
	sink := &hookSink{hook: func(cmd string, _, txn int, _ *smtp.Conn) error {
		if cmd == "RCPT" && txn == 2 {
			<-release
		}
		return nil
	}}
	defer close(release)
	addr, l := startHookSink(t, sink)
	s := SMTP{Addr: addr, Helo: "gw.example", Pool: NewPool(PoolConfig{})}
	defer s.Pool.Close()
	msg := buildBase(t)
	if err := s.Send(ctx10s(t), "a@example.com", msg); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err := s.Send(ctx, "b@example.com", msg)
	if !errors.Is(err, context.DeadlineExceeded) || IsPermanent(err) {
		t.Fatalf("Send: %v, want a temporary DeadlineExceeded", err)
	}
	if n := s.Pool.idleConns(); n != 0 {
		t.Errorf("%d idle connections after a cancelled Send", n)
	}
	if n := l.accepted(); n != 1 {
		t.Errorf("%d connections, want 1 (no retry after ctx ended)", n)
	}
}

func TestSMTPPoolTLS(t *testing.T) {
	cert, roots := selfSigned(t)
	required := SMTP{TLS: TLSRequired, TLSConfig: &tls.Config{RootCAs: roots}, Username: "gw", Password: "pw"}
	tests := []struct {
		name      string
		sends     []SMTP // in turn, all with the same Addr and Pool
		wantConns int
	}{
		{"required: the reused connection is still TLS and authenticated",
			[]SMTP{required, required, required, required}, 1},
		{"a plain connection is not reused under required",
			[]SMTP{{TLS: TLSNone}, required, required}, 2},
		{"opportunistic and required keep their connections apart",
			[]SMTP{{}, required, {}, required}, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sink := &tlsSink{mechs: []string{sasl.Plain}, user: "gw"}
			srv := smtp.NewServer(sink)
			srv.Domain = "sink.test"
			srv.AllowInsecureAuth = true
			srv.ReadTimeout, srv.WriteTimeout = time.Minute, time.Minute
			srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
			addr, l := serveCounting(t, srv)
			pool := NewPool(PoolConfig{})
			defer pool.Close()
			for i, s := range tc.sends {
				s.Addr, s.Helo, s.Pool = addr, "gw.example", pool
				if err := s.Send(ctx10s(t), "alice@example.com", mustBuild(t, base())); err != nil {
					t.Fatalf("send %d: %v", i, err)
				}
				got := sink.deliveries()
				if len(got) != i+1 {
					t.Fatalf("%d deliveries after send %d", len(got), i)
				}
				d := got[i]
				if wantTLS := s.TLS != TLSNone; d.tls != wantTLS {
					t.Errorf("send %d (%q): tls %v, want %v", i, s.TLS, d.tls, wantTLS)
				}
				if s.TLS == TLSRequired && d.authed != "PLAIN:gw" {
					t.Errorf("send %d: auth %q, want PLAIN:gw", i, d.authed)
				}
			}
			if n := l.accepted(); n != tc.wantConns {
				t.Errorf("%d connections, want %d", n, tc.wantConns)
			}
		})
	}
}

// BenchmarkSendReuse compares a connection per report with the pool, in
// plain text and with STARTTLS (opportunistic), against an in-process
// go-smtp server (whose CPU counts too).
func BenchmarkSendReuse(b *testing.B) {
	cert, _ := selfSigned(b)
	msg, err := Build(base())
	if err != nil {
		b.Fatal(err)
	}
	for _, tlsOn := range []bool{false, true} {
		for _, pooled := range []bool{false, true} {
			name := map[bool]string{false: "fresh", true: "reuse"}[pooled]
			if tlsOn {
				name += "-starttls"
			} else {
				name += "-plain"
			}
			b.Run(name, func(b *testing.B) {
				srv := smtp.NewServer(&hookSink{})
				srv.Domain = "sink.test"
				srv.ErrorLog = nopLog{}
				srv.ReadTimeout, srv.WriteTimeout = time.Minute, time.Minute
				s := SMTP{Helo: "gw.example", TLS: TLSNone}
				if tlsOn {
					srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
					s.TLS = TLSOpportunistic
				}
				addr, l := serveCounting(b, srv)
				s.Addr = addr
				if pooled {
					s.Pool = NewPool(PoolConfig{})
					defer s.Pool.Close()
				}
				ctx := context.Background()
				b.ReportAllocs()
				for b.Loop() {
					if err := s.Send(ctx, "alice@example.com", msg); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(l.accepted())/float64(b.N), "conns/op")
			})
		}
	}
}

// TestMXPoolReuse: MX delivery with a Pool keeps the session to an
// exchanger for the next report to the same domain.
func TestMXPoolReuse(t *testing.T) {
	addr, l := startHookSink(t, &hookSink{})
	host, port, _ := net.SplitHostPort(addr)
	m := MX{Helo: "gw.example", Port: port, Pool: NewPool(PoolConfig{}),
		LookupMX: func(context.Context, string) ([]*net.MX, error) { return []*net.MX{{Host: host + ".", Pref: 10}}, nil }}
	defer m.Pool.Close()
	msg := buildBase(t)
	for _, rcpt := range []string{"a@example.com", "b@example.com", "c@example.com"} {
		if err := m.Send(ctx10s(t), rcpt, msg); err != nil {
			t.Fatal(err)
		}
	}
	if n := l.accepted(); n != 1 {
		t.Errorf("%d connections for 3 reports, want 1", n)
	}
}
