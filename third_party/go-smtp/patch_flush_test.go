package smtp_test

// Tests for the smsbridge patch that buffers replies (see PATCHES.md,
// change 3): a pipelined group is answered in one write, and every reply
// still reaches the client before the server waits or hangs up.

import (
	"bufio"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"io"
	"io/ioutil"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// writeLog records what the server writes, one entry per Write.
type writeLog struct {
	mu     sync.Mutex
	writes []string
}

func (l *writeLog) add(b []byte) {
	l.mu.Lock()
	l.writes = append(l.writes, string(b))
	l.mu.Unlock()
}

// since returns the writes after the first n.
func (l *writeLog) since(n int) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.writes[n:]...)
}

func (l *writeLog) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.writes)
}

type loggedConn struct {
	net.Conn
	log *writeLog
}

func (c loggedConn) Write(b []byte) (int, error) {
	c.log.add(b)
	return c.Conn.Write(b)
}

type loggedListener struct {
	net.Listener
	log *writeLog
}

func (l loggedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return loggedConn{c, l.log}, nil
}

// flushClient is the client side of a test: every read and write has a
// short deadline, so that a reply left in the server's buffer fails the
// test instead of hanging it.
type flushClient struct {
	t    *testing.T
	c    net.Conn
	r    *bufio.Reader
	log  *writeLog
	be   *backend
	s    *smtp.Server
	mark int
}

// flushServer starts a server (timeouts set, to exercise the deadlines)
// whose connections log their writes, connects, and reads the greeting.
func flushServer(t *testing.T, fn ...serverConfigureFunc) *flushClient {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	log := new(writeLog)
	be := new(backend)
	s := smtp.NewServer(be)
	s.Domain = "localhost"
	s.AllowInsecureAuth = true
	s.ReadTimeout = 10 * time.Second
	s.WriteTimeout = 10 * time.Second
	for _, f := range fn {
		f(s)
	}
	go s.Serve(loggedListener{l, log})
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	fc := &flushClient{t: t, c: c, r: bufio.NewReader(c), log: log, be: be, s: s}
	t.Cleanup(func() {
		c.Close()
		s.Close()
	})
	if g := fc.reply(); !strings.HasPrefix(g, "220 ") {
		t.Fatalf("greeting %q", g)
	}
	return fc
}

// send writes s in one Write.
func (fc *flushClient) send(s string) {
	fc.t.Helper()
	fc.c.SetWriteDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.WriteString(fc.c, s); err != nil {
		fc.t.Fatal(err)
	}
}

// reply reads one reply, all its lines.
func (fc *flushClient) reply() string {
	fc.t.Helper()
	fc.c.SetReadDeadline(time.Now().Add(2 * time.Second))
	var lines []string
	for {
		line, err := fc.r.ReadString('\n')
		if err != nil {
			fc.t.Fatalf("reading reply: %v (got %q)", err, lines)
		}
		line = strings.TrimRight(line, "\r\n")
		lines = append(lines, line)
		if len(line) < 4 || line[3] != '-' {
			return strings.Join(lines, "\n")
		}
	}
}

// expect reads one reply per prefix in want.
func (fc *flushClient) expect(want ...string) {
	fc.t.Helper()
	for _, w := range want {
		if got := fc.reply(); !strings.HasPrefix(got, w) {
			fc.t.Fatalf("reply %q, want %q", got, w)
		}
	}
}

// closed checks that the server has closed the connection, with nothing
// more to read.
func (fc *flushClient) closed() {
	fc.t.Helper()
	fc.c.SetReadDeadline(time.Now().Add(2 * time.Second))
	b, err := fc.r.ReadString('\n')
	if err != io.EOF {
		fc.t.Fatalf("read %q, %v; want EOF", b, err)
	}
}

// writes returns the server's writes since the last call (or since the
// greeting, on the first call). Call it only once every reply it should
// see was read.
func (fc *flushClient) writes() []string {
	w := fc.log.since(fc.mark)
	fc.mark += len(w)
	return w
}

// TestPatchFlushPipelined: a pipelined group MAIL, RCPT, RCPT, DATA gets
// its four replies, in order, in one write; so do the lines of the EHLO
// reply, and the reply to the message.
func TestPatchFlushPipelined(t *testing.T) {
	fc := flushServer(t)
	fc.writes()
	fc.send("EHLO localhost\r\n")
	fc.expect("250-Hello localhost")
	if w := fc.writes(); len(w) != 1 || !strings.Contains(w[0], "250 ") {
		t.Fatalf("EHLO reply in %d writes: %q", len(w), w)
	}

	fc.send("MAIL FROM:<a@x>\r\nRCPT TO:<b@x>\r\nRCPT TO:<c@x>\r\nDATA\r\n")
	fc.expect("250 ", "250 ", "250 ", "354 ")
	w := fc.writes()
	if len(w) != 1 {
		t.Fatalf("4 replies in %d writes: %q", len(w), w)
	}
	if n := strings.Count(w[0], "\r\n"); n != 4 {
		t.Fatalf("write has %d lines: %q", n, w[0])
	}

	fc.send("Subject: x\r\n\r\nhello\r\n.\r\n")
	fc.expect("250 2.0.0 ")
	if w := fc.writes(); len(w) != 1 {
		t.Fatalf("DATA reply in %d writes: %q", len(w), w)
	}
	if len(fc.be.anonmsgs) != 1 || len(fc.be.anonmsgs[0].To) != 2 {
		t.Fatalf("messages %v", fc.be.anonmsgs)
	}

	// The message may start a group (RFC 2920 section 3.1): its reply goes
	// out at once, alone, as DATA's; then the rest of the group's.
	fc.send("MAIL FROM:<a@x>\r\nRCPT TO:<b@x>\r\nDATA\r\n")
	fc.expect("250 ", "250 ", "354 ")
	fc.writes()
	fc.send("hi\r\n.\r\nRSET\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@x>\r\nDATA\r\n")
	fc.expect("250 2.0.0 ", "250 ", "250 ", "250 ", "354 ")
	w = fc.writes()
	if len(w) != 2 || !strings.HasPrefix(w[0], "250 2.0.0 OK: queued\r\n") ||
		!strings.HasPrefix(w[1], "250 2.0.0 Session reset") || strings.Count(w[1], "\r\n") != 4 {
		t.Fatalf("writes %q", w)
	}
}

// TestPatchFlushLockstep: a client that waits for each reply gets each one
// at once (no reply waits in the buffer for a read that never comes).
func TestPatchFlushLockstep(t *testing.T) {
	fc := flushServer(t)
	fc.writes()
	for _, st := range []struct{ send, want string }{
		{"EHLO localhost\r\n", "250-Hello"},
		{"NOOP\r\n", "250 "},
		{"MAIL FROM:<a@x>\r\n", "250 "},
		{"RCPT TO:<b@x>\r\n", "250 "},
		{"RCPT TO:<c@x>\r\n", "250 "},
		{"DATA\r\n", "354 "},
		{"Subject: x\r\n\r\nhello\r\n.\r\n", "250 2.0.0 "},
		{"VRFY a@x\r\n", "252 "},
		{"RSET\r\n", "250 "},
		{"MAIL FROM:<a@x>\r\n", "250 "},
		{"RCPT TO:<b@x>\r\n", "250 "},
		{"BDAT 7\r\nSubject", "250 "},
		{"BDAT 11 LAST\r\n: x\r\n\r\nhi\r\n", "250 2.0.0 "},
		{"HELP\r\n", "502 "},
	} {
		fc.send(st.send)
		fc.expect(st.want)
		if w := fc.writes(); len(w) != 1 {
			t.Fatalf("%q: reply in %d writes: %q", st.send, len(w), w)
		}
	}
	if len(fc.be.anonmsgs) != 2 || string(fc.be.anonmsgs[1].Data) != "Subject: x\r\n\r\nhi\r\n" {
		t.Fatalf("messages %v", fc.be.anonmsgs)
	}
}

// TestPatchFlushSTARTTLS: the 220 goes out before the handshake, and the
// replies over TLS are buffered the same way.
func TestPatchFlushSTARTTLS(t *testing.T) {
	keypair, err := tls.X509KeyPair(smtp.PatchTestKeyPair[0], smtp.PatchTestKeyPair[1])
	if err != nil {
		t.Fatal(err)
	}
	fc := flushServer(t, func(s *smtp.Server) {
		s.TLSConfig = &tls.Config{Certificates: []tls.Certificate{keypair}}
	})
	fc.send("EHLO localhost\r\n")
	fc.expect("250-Hello")
	fc.send("STARTTLS\r\n")
	fc.expect("220 ")
	tc := tls.Client(fc.c, &tls.Config{InsecureSkipVerify: true})
	tc.SetDeadline(time.Now().Add(2 * time.Second))
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	fc.c, fc.r = tc, bufio.NewReader(tc)
	fc.send("EHLO localhost\r\n")
	fc.expect("250-Hello")
	fc.writes()
	fc.send("MAIL FROM:<a@x>\r\nRCPT TO:<b@x>\r\nDATA\r\n")
	fc.expect("250 ", "250 ", "354 ")
	if w := fc.writes(); len(w) != 1 {
		t.Fatalf("3 replies in %d TLS writes", len(w))
	}
	fc.send("hello\r\n.\r\nQUIT\r\n")
	fc.expect("250 2.0.0 ", "221 ")
	fc.closed()
}

// TestPatchFlushAUTH: the 334 challenge reaches the client, which answers.
func TestPatchFlushAUTH(t *testing.T) {
	fc := flushServer(t)
	fc.send("EHLO localhost\r\n")
	fc.expect("250-Hello")
	fc.send("AUTH PLAIN\r\n")
	fc.expect("334 ")
	fc.send(base64.StdEncoding.EncodeToString([]byte("\x00username\x00password")) + "\r\n")
	fc.expect("235 ")
	fc.send("AUTH PLAIN\r\n")
	fc.expect("503 ")
}

// TestPatchFlushQUIT: the 221 arrives before the server closes, also when
// it ends a pipelined group.
func TestPatchFlushQUIT(t *testing.T) {
	fc := flushServer(t)
	fc.send("EHLO localhost\r\n")
	fc.expect("250-Hello")
	fc.send("MAIL FROM:<a@x>\r\nRSET\r\nQUIT\r\n")
	fc.expect("250 ", "250 ", "221 2.0.0 Bye")
	fc.closed()
}

// TestPatchFlushLMTP: every per-recipient reply arrives, after DATA and
// after BDAT LAST.
func TestPatchFlushLMTP(t *testing.T) {
	fc := flushServer(t, func(s *smtp.Server) {
		s.LMTP = true
		be := s.Backend.(*backend)
		be.implementLMTPData = true
		be.lmtpStatus = []struct {
			addr string
			err  error
		}{
			{"a@x", nil},
			{"b@x", errors.New("nah")},
			{"c@x", &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 2, 2}, Message: "full"}},
		}
	})
	fc.send("LHLO localhost\r\n")
	fc.expect("250-Hello")
	fc.send("MAIL FROM:<z@x>\r\nRCPT TO:<a@x>\r\nRCPT TO:<b@x>\r\nRCPT TO:<c@x>\r\nDATA\r\n")
	fc.expect("250 ", "250 ", "250 ", "250 ", "354 ")
	fc.send("hello\r\n.\r\n")
	fc.expect("250 2.0.0 <a@x> ", "554 5.0.0 <b@x> ", "452 4.2.2 <c@x> full")
	fc.send("MAIL FROM:<z@x>\r\nRCPT TO:<a@x>\r\nRCPT TO:<b@x>\r\nRCPT TO:<c@x>\r\nBDAT 7 LAST\r\nhello\r\n")
	fc.expect("250 ", "250 ", "250 ", "250 ", "250 2.0.0 <a@x> ", "554 5.0.0 <b@x> ", "452 4.2.2 <c@x> full")
	fc.send("QUIT\r\n")
	fc.expect("221 ")
	fc.closed()
}

// earlyLMTP is an LMTP backend that gives every status before it reads the
// message: the server writes the replies while LMTPData still reads the
// connection (through the same flushing reader).
type earlyLMTP struct{ rcpts []string }

func (be *earlyLMTP) NewSession(*smtp.Conn) (smtp.Session, error) { return be, nil }
func (be *earlyLMTP) Reset()                                      { be.rcpts = nil }
func (be *earlyLMTP) Logout() error                               { return nil }
func (be *earlyLMTP) Mail(string, *smtp.MailOptions) error        { return nil }
func (be *earlyLMTP) Rcpt(to string, _ *smtp.RcptOptions) error {
	be.rcpts = append(be.rcpts, to)
	return nil
}
func (be *earlyLMTP) Data(io.Reader) error { return errors.New("not LMTP") }
func (be *earlyLMTP) LMTPData(r io.Reader, status smtp.StatusCollector) error {
	for _, rcpt := range be.rcpts {
		status.SetStatus(rcpt, nil)
	}
	time.Sleep(20 * time.Millisecond) // the replies are out
	_, err := io.Copy(ioutil.Discard, r)
	return err
}

func TestPatchFlushLMTPEarlyStatus(t *testing.T) {
	fc := flushServer(t, func(s *smtp.Server) {
		s.LMTP = true
		s.Backend = new(earlyLMTP)
	})
	fc.send("LHLO localhost\r\n")
	fc.expect("250-Hello")
	fc.send("MAIL FROM:<z@x>\r\nRCPT TO:<a@x>\r\nRCPT TO:<b@x>\r\nDATA\r\n")
	fc.expect("250 ", "250 ", "250 ", "354 ")
	// The statuses arrive while the message is not all sent.
	fc.send("hello\r\n")
	fc.expect("250 2.0.0 <a@x> ", "250 2.0.0 <b@x> ")
	fc.send("world\r\n.\r\nNOOP\r\n")
	fc.expect("250 ")
}

// TestPatchFlushHangup: the last reply before the server closes the
// connection arrives, with those buffered before it.
func TestPatchFlushHangup(t *testing.T) {
	t.Run("too long line", func(t *testing.T) {
		fc := flushServer(t, func(s *smtp.Server) { s.MaxLineLength = 100 })
		fc.send("EHLO localhost\r\n")
		fc.expect("250-Hello")
		fc.send("NOOP " + strings.Repeat("x", 200) + "\r\n")
		fc.expect("500 5.4.0 Too long line")
		fc.closed()
	})
	t.Run("too many errors", func(t *testing.T) {
		fc := flushServer(t)
		fc.send("EHLO localhost\r\n")
		fc.expect("250-Hello")
		fc.send("MAIL FROM:<a@x>\r\nXYZW\r\nXYZW\r\nXYZW\r\nXYZW\r\n")
		fc.expect("250 ", "500 ", "500 ", "500 ", "421 4.7.0 Too many errors")
		fc.closed()
	})
	t.Run("panic in the backend", func(t *testing.T) {
		fc := flushServer(t, func(s *smtp.Server) {
			s.Backend.(*backend).panicOnMail = true
			s.ErrorLog = nopLogger{}
		})
		fc.send("EHLO localhost\r\n")
		fc.expect("250-Hello")
		fc.send("RSET\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@x>\r\n")
		fc.expect("250 ", "421 4.0.0 Internal server error")
		fc.closed()
	})
	t.Run("idle timeout", func(t *testing.T) {
		fc := flushServer(t, func(s *smtp.Server) { s.ReadTimeout = 100 * time.Millisecond })
		fc.send("EHLO localhost\r\n")
		fc.expect("250-Hello")
		fc.expect("421 4.4.2 Idle timeout")
		fc.closed()
	})
	// A 421 from the backend goes out at once, with the replies before it,
	// and closes the connection (change 5): the pipelined commands after
	// it are not run.
	t.Run("421 from the backend", func(t *testing.T) {
		fc := flushServer(t, func(s *smtp.Server) {
			s.Backend.(*backend).userErr = &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 3, 2}, Message: "shutting down"}
		})
		fc.send("EHLO localhost\r\n")
		fc.expect("250-Hello")
		fc.writes()
		fc.send("RSET\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@x>\r\nDATA\r\n")
		fc.expect("250 ", "421 4.3.2 shutting down")
		fc.closed()
		w := fc.writes()
		if len(w) != 1 || !strings.HasSuffix(w[0], "421 4.3.2 shutting down\r\n") {
			t.Fatalf("writes %q", w)
		}
	})
	t.Run("server closed", func(t *testing.T) {
		fc := flushServer(t)
		fc.send("EHLO localhost\r\n")
		fc.expect("250-Hello")
		fc.s.Close()
		fc.closed()
	})
}

type nopLogger struct{}

func (nopLogger) Printf(string, ...interface{}) {}
func (nopLogger) Println(...interface{})        {}
