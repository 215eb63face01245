package report

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"strings"
	"time"
	"unicode"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// ErrNoSMTPUTF8 means the report needs SMTPUTF8 (RFC 6531) and the
// smarthost does not offer it. It is permanent for IsPermanent.
var ErrNoSMTPUTF8 = errors.New("report: smarthost does not offer SMTPUTF8")

// ErrNo8BitMIME means the report carries an 8-bit original (RET=FULL)
// and the server does not offer 8BITMIME (RFC 6152). It is permanent for
// IsPermanent; the caller may send the report again without the original.
var ErrNo8BitMIME = errors.New("report: server does not offer 8BITMIME")

// ErrTLSRequired means TLSRequired is set and the server does not offer
// STARTTLS or the handshake failed. Retried, like any failure to connect.
var ErrTLSRequired = errors.New("report: STARTTLS required")

// Send delivers msg to rcpt from the null sender <> (RFC 3464 §2; RFC
// 5321 §4.5.5). The whole session is bounded by ctx. Errors are wrapped;
// IsPermanent tells a 5xx refusal from a failure worth retrying.
//
// It says EHLO with Helo, then STARTTLS as TLS says, then AUTH if Username
// is set. MAIL FROM asks for SMTPUTF8 when the recipient or the report's
// header is not ASCII, and BODY=8BITMIME when its body has 8-bit octets.
//
// With a Pool, Send first takes an idle connection to the same server
// and, after a successful transaction, leaves its connection there; see
// Pool. A pooled connection found dead before the server took the message
// (an I/O error or a 421 reply before DATA's 354) is closed and the report
// sent at once on a new connection, so reuse never sends a report twice
// nor fails one that a new connection would deliver.
//
// The report is delivered at the 250 to its final dot; the QUIT that ends
// a connection (at once without a Pool) does not change the result.
func (s SMTP) Send(ctx context.Context, rcpt string, msg []byte) error {
	if err := checkRcpt(rcpt); err != nil {
		return err
	}
	if cn := s.Pool.get(s.poolKey()); cn != nil {
		err := s.deliver(ctx, cn, rcpt, msg, true)
		var stale *staleError
		if !errors.As(err, &stale) {
			return err
		}
	}
	err := s.attempt(ctx, rcpt, msg, s.TLS)
	var hs *handshakeError
	if s.TLS == TLSOpportunistic && errors.As(err, &hs) {
		// A server that offers STARTTLS and cannot do it: plain text is
		// no worse than a server that does not offer it.
		err = s.attempt(ctx, rcpt, msg, TLSNone)
	}
	return err
}

// handshakeError is a failed STARTTLS.
type handshakeError struct{ err error }

func (e *handshakeError) Error() string { return "starttls: " + e.err.Error() }
func (e *handshakeError) Unwrap() error { return e.err }

// staleError is a pooled connection that was dead before the server had
// the message: Send tries again on a new one.
type staleError struct{ err error }

func (e *staleError) Error() string { return e.err.Error() }
func (e *staleError) Unwrap() error { return e.err }

// attempt sends on a new connection.
func (s SMTP) attempt(ctx context.Context, rcpt string, msg []byte, mode TLSMode) error {
	raw, err := new(net.Dialer).DialContext(ctx, "tcp", s.Addr)
	if err != nil {
		return fmt.Errorf("report: smtp %s: dial: %w", s.Addr, err)
	}
	// Closing the connection when ctx ends aborts a blocked read or write.
	stop := context.AfterFunc(ctx, func() { raw.Close() })
	cn, err := s.open(ctx, raw, mode)
	stop()
	if err != nil {
		raw.Close()
		return s.fail(ctx, rcpt, err)
	}
	return s.deliver(ctx, cn, rcpt, msg, false)
}

// fail wraps an error of the session, saying when ctx ended it.
func (s SMTP) fail(ctx context.Context, rcpt string, err error) error {
	if cerr := ended(ctx); cerr != nil {
		err = fmt.Errorf("%w (%w)", cerr, err)
	}
	return fmt.Errorf("report: smtp %s: to %s: %w", s.Addr, rcpt, err)
}

// ended is ctx.Err(), or DeadlineExceeded once ctx's deadline has passed:
// the connection's deadline, set from it, can fire before ctx's own timer
// and leave an i/o timeout that ctx does not explain yet.
func ended(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if d, ok := ctx.Deadline(); ok && !time.Now().Before(d) {
		return context.DeadlineExceeded
	}
	return nil
}

// open sets a session up on raw: our own preface (the greeting, EHLO and
// STARTTLS), then go-smtp's client for EHLO and AUTH.
func (s SMTP) open(ctx context.Context, raw net.Conn, mode TLSMode) (*conn, error) {
	d, ok := ctx.Deadline()
	pd := d
	if !ok {
		pd = time.Now().Add(prefaceTimeout)
	}
	raw.SetDeadline(pd)
	nc, isTLS, err := s.preface(ctx, raw, mode)
	if err != nil {
		return nil, err
	}
	raw.SetDeadline(time.Time{})
	c := smtp.NewClient(nc)
	cn := &conn{raw: raw, c: c, tls: isTLS, cmdTimeout: c.CommandTimeout, submissionTimeout: c.SubmissionTimeout}
	cn.bound(d, ok)
	if err := c.Hello(s.helo()); err != nil {
		c.Close()
		return nil, fmt.Errorf("hello: %w", err)
	}
	if err := s.auth(c, isTLS); err != nil {
		c.Close()
		return nil, err
	}
	return cn, nil
}

// deliver runs one transaction on cn, then keeps cn in the Pool or
// retires it. reused says cn came from the Pool: a failure that shows it
// dead before the message went out is then a *staleError.
//
// A pooled connection goes straight to MAIL FROM, without RSET. Only a
// connection whose last transaction ended with 250 to the final dot is
// pooled, and that reply cleared the sender, recipient and data buffers
// (RFC 5321 §4.1.1.4) as RSET would (§4.1.1.5), so MAIL starts the next
// transaction. RSET would only find a dead connection one command
// earlier, for a round trip per report: MAIL finds it as well, and a
// failure before DATA's 354 is retried on a new connection. (go-smtp's
// Client.Reset also forgets the EHLO, so the next MAIL would say EHLO
// again: a second round trip.)
func (s SMTP) deliver(ctx context.Context, cn *conn, rcpt string, msg []byte, reused bool) error {
	stop := context.AfterFunc(ctx, func() { cn.raw.Close() })
	d, ok := ctx.Deadline()
	cn.bound(d, ok)
	st, err := s.transaction(cn.c, rcpt, msg)
	if err == nil {
		cn.mails++
	}
	// Delivered, or refused before a command was sent (mailOptions): the
	// session is clean. Any error or unexpected reply closes it. (After a
	// 5xx to RCPT an RSET could save it; refusals are rare enough that
	// closing is simpler.)
	clean := (err == nil || st == nothingSent) && ended(ctx) == nil
	keep := clean && !s.Pool.retires(cn)
	switch {
	case keep:
	case clean:
		cn.quit(min(quitTimeout, cn.c.CommandTimeout)) // still under ctx, as the session was
	default:
		cn.c.Close()
	}
	aborted := !stop() // ctx closed the connection
	if keep && (aborted || !s.Pool.put(s.poolKey(), cn)) {
		cn.c.Close()
	}
	if err == nil {
		return nil
	}
	err = s.fail(ctx, rcpt, err)
	if reused && st == beforeData && ended(ctx) == nil && deadConn(err) {
		return &staleError{err}
	}
	return err
}

// deadConn reports whether err, before DATA's 354, says the connection is
// gone: not a reply (EOF, reset, timeout, TLS alert), or 421 (RFC 5321
// §3.8: the server is closing the channel, as when it times an idle one
// out).
func deadConn(err error) bool {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		return se.Code == 421
	}
	return true
}

// prefaceTimeout bounds the preface when ctx has no deadline.
const prefaceTimeout = 5 * time.Minute

// preface reads the greeting, says EHLO and, as mode says, STARTTLS. It is
// ours because go-smtp v0.25's client can only do STARTTLS before Hello,
// that is as "localhost". It returns the connection for go-smtp's client,
// which reads a greeting first: a replayed "220" (after STARTTLS, RFC
// 3207 §4.2 says to start again with EHLO, which the client does).
func (s SMTP) preface(ctx context.Context, conn net.Conn, mode TLSMode) (net.Conn, bool, error) {
	tp := textproto.NewConn(conn)
	if _, _, err := tp.ReadResponse(220); err != nil {
		return nil, false, fmt.Errorf("greeting: %w", smtpErr(err))
	}
	plain := func() (net.Conn, bool, error) {
		buffered, _ := tp.R.Peek(tp.R.Buffered())
		return replay(conn, buffered), false, nil
	}
	if mode == TLSNone {
		return plain()
	}
	if err := tp.PrintfLine("EHLO %s", s.helo()); err != nil {
		return nil, false, fmt.Errorf("ehlo: %w", err)
	}
	_, ext, err := tp.ReadResponse(250)
	offered := false
	for _, line := range strings.Split(ext, "\n") {
		offered = offered || strings.EqualFold(strings.TrimSpace(line), "STARTTLS")
	}
	switch {
	case err != nil && mode == TLSRequired:
		return nil, false, fmt.Errorf("%w: ehlo: %w", ErrTLSRequired, smtpErr(err))
	case err != nil, !offered && mode != TLSRequired:
		return plain() // go-smtp's client says EHLO (or HELO) again
	case !offered:
		return nil, false, fmt.Errorf("%w: the server does not offer it", ErrTLSRequired)
	}
	if err := tp.PrintfLine("STARTTLS"); err != nil {
		return nil, false, fmt.Errorf("starttls: %w", err)
	}
	if _, _, err := tp.ReadResponse(220); err != nil {
		if mode == TLSRequired {
			return nil, false, fmt.Errorf("%w: %w", ErrTLSRequired, smtpErr(err))
		}
		return plain()
	}
	tc := tls.Client(conn, s.tlsConfig(mode))
	if err := tc.HandshakeContext(ctx); err != nil {
		if mode == TLSRequired {
			return nil, false, fmt.Errorf("%w: handshake: %w", ErrTLSRequired, err)
		}
		return nil, false, &handshakeError{err}
	}
	return replay(tc, nil), true, nil
}

func (s SMTP) tlsConfig(mode TLSMode) *tls.Config {
	if mode != TLSRequired {
		// Opportunistic: see TLSOpportunistic.
		return &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12} //nolint:gosec
	}
	cfg := s.TLSConfig.Clone()
	if cfg == nil {
		cfg = &tls.Config{}
	}
	if cfg.ServerName == "" {
		cfg.ServerName = s.host()
	}
	cfg.MinVersion = max(cfg.MinVersion, tls.VersionTLS12)
	return cfg
}

// smtpErr turns a net/textproto reply error into go-smtp's *SMTPError,
// which IsPermanent understands.
func smtpErr(err error) error {
	var te *textproto.Error
	if errors.As(err, &te) {
		return &smtp.SMTPError{Code: te.Code, Message: te.Msg}
	}
	return err
}

// replayConn reads a greeting, then what was read ahead, then the
// connection.
type replayConn struct {
	net.Conn
	r io.Reader
}

func (c *replayConn) Read(p []byte) (int, error) { return c.r.Read(p) }

func replay(conn net.Conn, buffered []byte) net.Conn {
	return &replayConn{Conn: conn, r: io.MultiReader(
		strings.NewReader("220 ready\r\n"), bytes.NewReader(bytes.Clone(buffered)), conn)}
}

// stage is how far a transaction got before it failed.
type stage int

const (
	nothingSent stage = iota // refused before MAIL (mailOptions)
	beforeData               // MAIL, RCPT or DATA failed: the server does not have the message
	afterData                // DATA got 354: the server may have the message
)

// transaction runs MAIL, RCPT and DATA on a client ready for MAIL.
func (s SMTP) transaction(c *smtp.Client, rcpt string, msg []byte) (stage, error) {
	opts, err := mailOptions(c, rcpt, msg)
	if err != nil {
		return nothingSent, err
	}
	// MAIL, RCPT and DATA go in one write when the smarthost offers
	// PIPELINING (RFC 2920): one round trip instead of three per report.
	w, err := c.SendEnvelope("", opts, []string{rcpt}, nil)
	if err != nil {
		return beforeData, fmt.Errorf("envelope: %w", err)
	}
	if _, err := w.Write(msg); err != nil {
		w.Close()
		return afterData, fmt.Errorf("data: write: %w", err)
	}
	if err := w.Close(); err != nil {
		return afterData, fmt.Errorf("data: end: %w", err)
	}
	return afterData, nil
}

func (s SMTP) helo() string {
	if s.Helo == "" {
		return "localhost"
	}
	return s.Helo
}

func (s SMTP) host() string {
	h, _, err := net.SplitHostPort(s.Addr)
	if err != nil {
		return s.Addr
	}
	return h
}

// auth authenticates with PLAIN, or LOGIN if only that is offered. The
// password goes only over TLS or to loopback.
func (s SMTP) auth(c *smtp.Client, isTLS bool) error {
	if s.Username == "" {
		return nil
	}
	if !isTLS && !isLoopback(s.host()) {
		return errors.New("auth: refusing to send the password without TLS")
	}
	var cl sasl.Client
	switch {
	case c.SupportsAuth(sasl.Plain):
		cl = sasl.NewPlainClient("", s.Username, s.Password)
	case c.SupportsAuth(sasl.Login):
		cl = sasl.NewLoginClient(s.Username, s.Password)
	default:
		return errors.New("auth: the server offers neither PLAIN nor LOGIN")
	}
	if err := c.Auth(cl); err != nil {
		return fmt.Errorf("auth: %w", err)
	}
	return nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// mailOptions asks for SMTPUTF8 when the recipient or the report's header
// (an internationalised To or From) is not ASCII, and for BODY=8BITMIME
// when the body has 8-bit octets (an 8bit original, RET=FULL).
func mailOptions(c *smtp.Client, rcpt string, msg []byte) (*smtp.MailOptions, error) {
	head, body, _ := bytes.Cut(msg, []byte("\r\n\r\n"))
	var opts smtp.MailOptions
	if !isASCII(rcpt) || !isASCII(string(head)) {
		if ok, _ := c.Extension("SMTPUTF8"); !ok {
			return nil, ErrNoSMTPUTF8
		}
		opts.UTF8 = true
	}
	if !isASCII(string(body)) {
		if ok, _ := c.Extension("8BITMIME"); !ok {
			return nil, ErrNo8BitMIME
		}
		opts.Body = smtp.Body8BitMIME
	}
	if opts == (smtp.MailOptions{}) {
		return nil, nil
	}
	return &opts, nil
}

// IsPermanent reports whether err from SMTP.Send is a permanent failure:
// a 5xx reply (RFC 5321 §4.2.1), ErrNoSMTPUTF8, ErrNo8BitMIME, ErrNullMX
// or ErrInvalid. Anything
// else (4xx, network, timeout) is worth retrying.
func IsPermanent(err error) bool {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		return se.Code/100 == 5
	}
	return errors.Is(err, ErrNoSMTPUTF8) || errors.Is(err, ErrNo8BitMIME) || errors.Is(err, ErrInvalid) ||
		errors.Is(err, ErrNullMX)
}

// checkRcpt refuses an empty recipient or one with control characters,
// which no retry can fix.
func checkRcpt(rcpt string) error {
	if rcpt == "" || strings.IndexFunc(rcpt, unicode.IsControl) >= 0 {
		return fmt.Errorf("%w: recipient %q", ErrInvalid, rcpt)
	}
	return nil
}
