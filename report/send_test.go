package report

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// delivery is one transaction the sink accepted.
type delivery struct {
	from  string
	rcpts []string
	utf8  bool
	data  []byte
}

// sink is a go-smtp backend that records deliveries and refuses the
// recipients listed in refuse with the given reply.
type sink struct {
	refuse map[string]*smtp.SMTPError

	mu  sync.Mutex
	got []delivery
}

func (s *sink) NewSession(*smtp.Conn) (smtp.Session, error) { return &sinkSession{sink: s}, nil }

func (s *sink) deliveries() []delivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]delivery(nil), s.got...)
}

type sinkSession struct {
	sink *sink
	cur  delivery
}

func (ss *sinkSession) Mail(from string, opts *smtp.MailOptions) error {
	ss.cur = delivery{from: from, utf8: opts != nil && opts.UTF8}
	return nil
}

func (ss *sinkSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	if err := ss.sink.refuse[to]; err != nil {
		return err
	}
	ss.cur.rcpts = append(ss.cur.rcpts, to)
	return nil
}

func (ss *sinkSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	ss.cur.data = b
	ss.sink.mu.Lock()
	defer ss.sink.mu.Unlock()
	ss.sink.got = append(ss.sink.got, ss.cur)
	return nil
}

func (ss *sinkSession) Reset()        { ss.cur = delivery{} }
func (ss *sinkSession) Logout() error { return nil }

// startSink serves s on 127.0.0.1:0 until the test ends and returns the
// address.
func startSink(t *testing.T, s *sink) string {
	t.Helper()
	srv := smtp.NewServer(s)
	srv.Domain = "sink.localhost"
	srv.EnableSMTPUTF8 = true
	srv.ReadTimeout = time.Minute
	srv.WriteTimeout = time.Minute
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(l)
	}()
	t.Cleanup(func() {
		srv.Close()
		<-done
	})
	return l.Addr().String()
}

func buildBase(t *testing.T) []byte {
	t.Helper()
	msg, err := Build(base())
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

func TestSMTPSendDeliversFromNullSender(t *testing.T) {
	s := &sink{}
	addr := startSink(t, s)
	msg := buildBase(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := (SMTP{Addr: addr, Helo: "sms.localhost"}).Send(ctx, "alice@example.com", msg); err != nil {
		t.Fatal(err)
	}
	got := s.deliveries()
	if len(got) != 1 {
		t.Fatalf("%d deliveries, want 1", len(got))
	}
	d := got[0]
	if d.from != "" {
		t.Errorf("MAIL FROM:<%s>, want <>", d.from)
	}
	if len(d.rcpts) != 1 || d.rcpts[0] != "alice@example.com" {
		t.Errorf("RCPT TO %q", d.rcpts)
	}
	if d.utf8 {
		t.Error("SMTPUTF8 asked for an ASCII report")
	}
	if !bytes.Equal(d.data, msg) {
		t.Errorf("body differs:\n%s", d.data)
	}
}

func TestSMTPSendUTF8Recipient(t *testing.T) {
	s := &sink{}
	addr := startSink(t, s)
	err := (SMTP{Addr: addr, Helo: "sms.localhost"}).Send(context.Background(), "jörg@example.de", buildBase(t))
	if err != nil {
		t.Fatal(err)
	}
	if got := s.deliveries(); len(got) != 1 || !got[0].utf8 || got[0].rcpts[0] != "jörg@example.de" {
		t.Errorf("deliveries %+v, want one with SMTPUTF8 to jörg@example.de", got)
	}
}

func TestSMTPSendClassifiesRefusals(t *testing.T) {
	s := &sink{refuse: map[string]*smtp.SMTPError{
		"gone@example.com": {Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"},
		"busy@example.com": {Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try later"},
	}}
	addr := startSink(t, s)
	cases := []struct {
		rcpt      string
		permanent bool
	}{
		{"gone@example.com", true},
		{"busy@example.com", false},
	}
	for _, tc := range cases {
		t.Run(tc.rcpt, func(t *testing.T) {
			err := (SMTP{Addr: addr, Helo: "sms.localhost"}).Send(context.Background(), tc.rcpt, buildBase(t))
			if err == nil {
				t.Fatal("Send succeeded")
			}
			if got := IsPermanent(err); got != tc.permanent {
				t.Errorf("IsPermanent(%v) = %v, want %v", err, got, tc.permanent)
			}
			if !strings.Contains(err.Error(), tc.rcpt) {
				t.Errorf("error %q does not name the recipient", err)
			}
		})
	}
	if got := s.deliveries(); len(got) != 0 {
		t.Errorf("%d deliveries, want none", len(got))
	}
}

func TestSMTPSendTransientFailures(t *testing.T) {
	cases := []struct {
		name  string
		setup func(t *testing.T) string
	}{
		{"connection refused", func(t *testing.T) string {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			addr := l.Addr().String()
			l.Close()
			return addr
		}},
		{"server never greets: the deadline ends the session", func(t *testing.T) string {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { l.Close() })
			return l.Addr().String() // accepted by the kernel, never answered
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			start := time.Now()
			err := (SMTP{Addr: tc.setup(t), Helo: "sms.localhost"}).Send(ctx, "alice@example.com", buildBase(t))
			if err == nil || IsPermanent(err) {
				t.Errorf("err %v, want a temporary error", err)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("Send took %v after a 300ms deadline", d)
			}
		})
	}
}

func TestSMTPSendRefusesBadRecipient(t *testing.T) {
	err := (SMTP{Addr: "127.0.0.1:1", Helo: "x"}).Send(context.Background(), "a@b\r\nRCPT TO:<c@d>", nil)
	if !errors.Is(err, ErrInvalid) || !IsPermanent(err) {
		t.Errorf("err %v, want permanent ErrInvalid", err)
	}
}

var outboxNameRe = regexp.MustCompile(`^\d{8}T\d{6}\.\d{9}Z-[0-9a-f]{16}\.eml$`)

func TestOutboxSend(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "reports")
	o := Outbox{Dir: dir}
	msg := buildBase(t)
	for _, rcpt := range []string{"alice@example.com", "../../etc/passwd"} {
		if err := o.Send(context.Background(), rcpt, msg); err != nil {
			t.Fatal(err)
		}
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("dir mode %v (%v), want 0700", fi.Mode().Perm(), err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2 {
		t.Fatalf("%d files, want 2 (no temporary files left)", len(entries))
	}
	for _, e := range entries {
		if !outboxNameRe.MatchString(e.Name()) {
			t.Errorf("file name %q", e.Name())
		}
		got, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Parse(got); err != nil || !bytes.Equal(got, msg) {
			t.Errorf("file %s differs from the report (parse: %v)", e.Name(), err)
		}
	}
}

func TestOutboxSendCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	dir := t.TempDir()
	if err := (Outbox{Dir: dir}).Send(ctx, "a@b", []byte("x")); !errors.Is(err, context.Canceled) {
		t.Errorf("err %v, want context.Canceled", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("%d files written after cancel", len(entries))
	}
}

// scriptedSmarthost serves one session by hand, offering PIPELINING or
// not, and reports how the envelope arrived: with pipelining, RCPT and
// DATA must arrive before MAIL is answered (it waits for them, and a
// client that waited for its reply would time out); without, nothing may
// follow a command before its reply.
func scriptedSmarthost(t *testing.T, pipelining bool) (addr string, done <-chan error) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		conn, err := l.Accept()
		l.Close()
		if err != nil {
			errc <- err
			return
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		errc <- serveScript(conn, pipelining)
	}()
	return l.Addr().String(), errc
}

func serveScript(conn net.Conn, pipelining bool) error {
	r := bufio.NewReader(conn)
	line := func() (string, error) {
		s, err := r.ReadString('\n')
		return strings.TrimRight(s, "\r\n"), err
	}
	io.WriteString(conn, "220 script ESMTP\r\n")
	for {
		l, err := line()
		if err != nil {
			return err
		}
		switch {
		case strings.HasPrefix(l, "EHLO "):
			caps := "250-script\r\n"
			if pipelining {
				caps += "250-PIPELINING\r\n"
			}
			io.WriteString(conn, caps+"250 8BITMIME\r\n")
		case strings.HasPrefix(l, "MAIL FROM:<>"):
			if !pipelining {
				time.Sleep(20 * time.Millisecond)
				if r.Buffered() > 0 {
					return errors.New("the client sent more before MAIL's reply")
				}
				io.WriteString(conn, "250 ok\r\n")
				if l, err = line(); err != nil || !strings.HasPrefix(l, "RCPT TO:") {
					return fmt.Errorf("want RCPT, got %q (%v)", l, err)
				}
				io.WriteString(conn, "250 ok\r\n")
				if l, err = line(); err != nil || l != "DATA" {
					return fmt.Errorf("want DATA, got %q (%v)", l, err)
				}
				io.WriteString(conn, "354 go on\r\n")
			} else {
				conn.SetReadDeadline(time.Now().Add(2 * time.Second))
				rcpt, err1 := line()
				data, err2 := line()
				if err := errors.Join(err1, err2); err != nil || !strings.HasPrefix(rcpt, "RCPT TO:") || data != "DATA" {
					return fmt.Errorf("want RCPT and DATA before MAIL's reply, got %q %q (%v)", rcpt, data, err)
				}
				conn.SetDeadline(time.Now().Add(5 * time.Second))
				io.WriteString(conn, "250 ok\r\n250 ok\r\n354 go on\r\n")
			}
			for l != "." {
				if l, err = line(); err != nil {
					return err
				}
			}
			io.WriteString(conn, "250 queued\r\n")
		case l == "QUIT":
			io.WriteString(conn, "221 bye\r\n")
			return nil
		default:
			return fmt.Errorf("unexpected %q", l)
		}
	}
}

// Reports pipeline their envelope when the smarthost offers PIPELINING
// (RFC 2920), and wait for each reply when it does not.
func TestSMTPSendPipelinesEnvelope(t *testing.T) {
	for _, pipelining := range []bool{true, false} {
		addr, done := scriptedSmarthost(t, pipelining)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		// No pool: the session ends with QUIT after the report.
		err := (SMTP{Addr: addr, Helo: "sms.localhost"}).Send(ctx, "alice@example.com", buildBase(t))
		cancel()
		if err != nil {
			t.Errorf("pipelining %v: %v", pipelining, err)
		}
		if err := <-done; err != nil {
			t.Errorf("pipelining %v: smarthost: %v", pipelining, err)
		}
	}
}
