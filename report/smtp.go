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
func (s SMTP) Send(ctx context.Context, rcpt string, msg []byte) error {
	if err := checkRcpt(rcpt); err != nil {
		return err
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

func (s SMTP) attempt(ctx context.Context, rcpt string, msg []byte, mode TLSMode) error {
	conn, err := new(net.Dialer).DialContext(ctx, "tcp", s.Addr)
	if err != nil {
		return fmt.Errorf("report: smtp %s: dial: %w", s.Addr, err)
	}
	// Closing the connection when ctx ends aborts a blocked read or write.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	defer conn.Close()
	if err := s.transaction(ctx, conn, rcpt, msg, mode); err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%w)", ctx.Err(), err)
		}
		return fmt.Errorf("report: smtp %s: to %s: %w", s.Addr, rcpt, err)
	}
	return nil
}

// transaction runs the session on a connection: our own preface (the
// greeting, EHLO and STARTTLS), then go-smtp's client for the rest.
func (s SMTP) transaction(ctx context.Context, conn net.Conn, rcpt string, msg []byte, mode TLSMode) error {
	d, ok := ctx.Deadline()
	if !ok {
		d = time.Now().Add(prefaceTimeout)
	}
	conn.SetDeadline(d)
	nc, isTLS, err := s.preface(ctx, conn, mode)
	if err != nil {
		return err
	}
	conn.SetDeadline(time.Time{})
	c := smtp.NewClient(nc)
	defer c.Close()
	if ok {
		c.CommandTimeout = min(c.CommandTimeout, time.Until(d))
		c.SubmissionTimeout = min(c.SubmissionTimeout, time.Until(d))
	}
	return s.session(c, rcpt, msg, isTLS)
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

// session runs one transaction on a connected client.
func (s SMTP) session(c *smtp.Client, rcpt string, msg []byte, isTLS bool) error {
	if err := c.Hello(s.helo()); err != nil {
		return fmt.Errorf("hello: %w", err)
	}
	if err := s.auth(c, isTLS); err != nil {
		return err
	}
	opts, err := mailOptions(c, rcpt, msg)
	if err != nil {
		return err
	}
	if err := c.Mail("", opts); err != nil {
		return fmt.Errorf("mail from:<>: %w", err)
	}
	if err := c.Rcpt(rcpt, nil); err != nil {
		return fmt.Errorf("rcpt: %w", err)
	}
	if err := data(c, msg); err != nil {
		return err
	}
	if err := c.Quit(); err != nil {
		return fmt.Errorf("quit: %w", err)
	}
	return nil
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

func data(c *smtp.Client, msg []byte) error {
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("data: %w", err)
	}
	if _, err := w.Write(msg); err != nil {
		w.Close()
		return fmt.Errorf("data: write: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("data: end: %w", err)
	}
	return nil
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
