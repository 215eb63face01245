package smtpd

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"
)

// This file holds what go-smtp does not do for us at the connection level:
// limits on connections in total and per client, an idle limit per read
// (go-smtp's ReadTimeout spans a whole DATA), a way to hang up right after
// a reply, and draining for a graceful shutdown.

// guardListener sits between the socket and go-smtp: it refuses clients over
// the connection limits, or while the server shuts down, with a 421 of its
// own, and wraps the others in a *conn.
type guardListener struct {
	net.Listener
	srv         *Server
	implicitTLS bool
	closed      chan struct{}
	closeOnce   sync.Once
}

// Accept returns the next client that may talk to go-smtp. Closing the
// guard (go-smtp's Shutdown does) leaves the socket open: clients that
// arrive during the shutdown get 421 4.3.2 until Server.Shutdown closes it.
func (l *guardListener) Accept() (net.Conn, error) {
	for {
		raw, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		select {
		case <-l.closed:
			l.srv.refuse(raw, l.implicitTLS, replyShuttingDown)
			continue
		default:
		}
		c, reply := l.srv.admit(raw)
		if reply != nil {
			l.srv.refuse(raw, l.implicitTLS, reply)
			continue
		}
		if l.implicitTLS {
			return tls.Server(c, l.srv.cfg.TLS), nil
		}
		return c, nil
	}
}

func (l *guardListener) Close() error {
	l.closeOnce.Do(func() { close(l.closed) })
	return nil
}

// clientKey is the unit of per-client limits: the IPv4 address, or the /64
// of an IPv6 address (one host usually has a whole /64).
func clientKey(a netip.Addr) string {
	if a.Is6() && !a.Is4In6() {
		p, _ := a.Prefix(64)
		return p.String()
	}
	return a.Unmap().String()
}

// admit counts a new client against the connection limits. It returns the
// wrapped connection, or the reply for a client that is refused.
func (s *Server) admit(raw net.Conn) (*conn, []byte) {
	ip := addrOf(raw.RemoteAddr())
	key := clientKey(ip)
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.draining:
		return nil, replyShuttingDown
	case s.cfg.MaxConnections > 0 && len(s.live) >= s.cfg.MaxConnections:
		s.log.Warn("smtp connection refused", "client", ip, "reason", "server connection limit")
		return nil, replyTooManyConns
	case s.cfg.MaxConnectionsPerIP > 0 && ip.IsValid() && s.perIP[key] >= s.cfg.MaxConnectionsPerIP:
		s.log.Warn("smtp connection refused", "client", ip, "reason", "per-client connection limit")
		return nil, replyTooManyFromIP
	}
	c := &conn{Conn: raw, srv: s, ip: ip, key: key, idle: s.cfg.IdleTimeout}
	s.live[c] = struct{}{}
	if ip.IsValid() {
		s.perIP[key]++
	}
	return c, nil
}

func (s *Server) release(c *conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.live, c)
	if c.ip.IsValid() {
		if s.perIP[c.key]--; s.perIP[c.key] <= 0 {
			delete(s.perIP, c.key)
		}
	}
	if len(s.live) == 0 && s.idle != nil {
		close(s.idle)
		s.idle = nil
	}
}

// refuse answers a client that may not talk to us, off the accept loop.
// A limited number of refusals run at once; beyond that the socket is just
// closed, so a flood cannot make us spend a goroutine per connection.
func (s *Server) refuse(raw net.Conn, implicitTLS bool, reply []byte) {
	select {
	case s.refusing <- struct{}{}:
	default:
		raw.Close()
		return
	}
	go func() {
		defer func() { <-s.refusing }()
		defer raw.Close()
		raw.SetDeadline(time.Now().Add(5 * time.Second))
		var w io.Writer = raw
		if implicitTLS {
			tc := tls.Server(raw, s.cfg.TLS)
			if tc.Handshake() != nil {
				return
			}
			defer tc.Close()
			w = tc
		}
		w.Write(reply)
	}()
}

// conn is one client connection, under go-smtp (and under TLS when the
// client starts it).
type conn struct {
	net.Conn
	srv  *Server
	ip   netip.Addr
	key  string
	idle time.Duration

	mu          sync.Mutex
	cmdDeadline time.Time // set by go-smtp: its ReadTimeout
	readErr     error     // sticky: every later read fails with it
	inData      bool      // a message is being received or committed
	draining    bool
	hangupNext  bool // hang up once the next reply is written
	hungUp      bool // reads see EOF, writes are dropped
	errors      int  // replies refusing something, for Config.MaxErrors
	closeOnce   sync.Once
}

// timeoutError is a read that waited longer than the idle limit, or was cut
// by a shutdown. go-smtp answers a timeout while it waits for a command
// with "421 4.4.2" and closes.
type timeoutError struct{ msg string }

func (e timeoutError) Error() string   { return e.msg }
func (e timeoutError) Timeout() bool   { return true }
func (e timeoutError) Temporary() bool { return true }

var (
	errIdle    net.Error = timeoutError{"smtpd: client idle for too long"}
	errDrained net.Error = timeoutError{"smtpd: server shutting down"}
)

func (c *conn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cmdDeadline = t
	return nil // applied by Read
}

func (c *conn) SetDeadline(t time.Time) error {
	c.SetReadDeadline(t)
	return c.Conn.SetWriteDeadline(t)
}

// Read reads with a deadline of the idle limit from now, or go-smtp's own
// deadline if sooner. After a timeout every read fails: go-smtp would
// otherwise read the rest of a message as commands (upstream #196).
func (c *conn) Read(b []byte) (int, error) {
	c.mu.Lock()
	if c.hungUp {
		c.mu.Unlock()
		return 0, io.EOF
	}
	if c.readErr != nil {
		err := c.readErr
		c.mu.Unlock()
		return 0, err
	}
	d := time.Time{}
	if c.idle > 0 {
		d = time.Now().Add(c.idle)
	}
	if !c.cmdDeadline.IsZero() && (d.IsZero() || c.cmdDeadline.Before(d)) {
		d = c.cmdDeadline
	}
	c.Conn.SetReadDeadline(d) // under mu, so that drain's deadline wins
	c.mu.Unlock()

	n, err := c.Conn.Read(b)
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		c.mu.Lock()
		if c.hungUp {
			c.mu.Unlock()
			return n, io.EOF
		}
		if c.readErr == nil {
			c.readErr = errIdle
		}
		err = c.readErr
		c.mu.Unlock()
	}
	return n, err
}

func (c *conn) Write(b []byte) (int, error) {
	c.mu.Lock()
	if c.hungUp {
		c.mu.Unlock()
		return len(b), nil
	}
	c.mu.Unlock()
	n, err := c.Conn.Write(b)
	c.mu.Lock()
	if c.hangupNext {
		c.hungUp = true
		c.Conn.SetReadDeadline(time.Now()) // wake a read in a BDAT goroutine
	}
	c.mu.Unlock()
	return n, err
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.closeOnce.Do(func() { c.srv.release(c) })
	return err
}

// hangupAfterReply makes the next reply the last: then reads see EOF (go-smtp
// closes quietly) and any reply to commands already buffered is dropped.
func (c *conn) hangupAfterReply() {
	if c == nil {
		return
	}
	c.mu.Lock()
	c.hangupNext = true
	c.mu.Unlock()
}

// countError counts a refusal and reports whether the session has had too
// many.
func (c *conn) countError(max int) bool {
	if c == nil {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.errors++
	return max > 0 && c.errors >= max
}

// beginData marks a message in transfer: a shutdown lets it finish.
func (c *conn) beginData() {
	if c == nil {
		return
	}
	c.mu.Lock()
	c.inData = true
	c.mu.Unlock()
}

// endData ends the message; during a shutdown the connection closes after
// the replies to it.
func (c *conn) endData() {
	if c == nil {
		return
	}
	c.mu.Lock()
	c.inData = false
	if c.draining && c.readErr == nil {
		c.readErr = errDrained
	}
	c.mu.Unlock()
}

// drain is the shutdown of one connection: unless a message is in
// transfer, its pending read fails now, and go-smtp answers 421 and closes.
func (c *conn) drain() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.draining = true
	if c.inData {
		return
	}
	if c.readErr == nil {
		c.readErr = errDrained
	}
	c.Conn.SetReadDeadline(time.Now())
}

// connOf finds our conn under go-smtp's (which may be TLS over it).
func connOf(nc net.Conn) *conn {
	if tc, ok := nc.(*tls.Conn); ok {
		nc = tc.NetConn()
	}
	c, _ := nc.(*conn)
	return c
}

func addrOf(a net.Addr) netip.Addr {
	if a == nil {
		return netip.Addr{}
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}
