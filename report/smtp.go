package report

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"
	"unicode"

	"github.com/emersion/go-smtp"
)

// ErrNoSMTPUTF8 means the report needs SMTPUTF8 (RFC 6531) and the
// smarthost does not offer it. It is permanent for IsPermanent.
var ErrNoSMTPUTF8 = errors.New("report: smarthost does not offer SMTPUTF8")

// Send delivers msg to rcpt from the null sender <> (RFC 3464 §2; RFC
// 5321 §4.5.5). The whole session is bounded by ctx. Errors are wrapped;
// IsPermanent tells a 5xx refusal from a failure worth retrying.
func (s SMTP) Send(ctx context.Context, rcpt string, msg []byte) error {
	if err := checkRcpt(rcpt); err != nil {
		return err
	}
	conn, err := new(net.Dialer).DialContext(ctx, "tcp", s.Addr)
	if err != nil {
		return fmt.Errorf("report: smtp %s: dial: %w", s.Addr, err)
	}
	// Closing the connection when ctx ends aborts a blocked read or write.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()

	c := smtp.NewClient(conn)
	defer c.Close()
	if d, ok := ctx.Deadline(); ok {
		c.CommandTimeout = min(c.CommandTimeout, time.Until(d))
		c.SubmissionTimeout = min(c.SubmissionTimeout, time.Until(d))
	}
	if err := s.session(c, rcpt, msg); err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%w)", ctx.Err(), err)
		}
		return fmt.Errorf("report: smtp %s: to %s: %w", s.Addr, rcpt, err)
	}
	return nil
}

// session runs one transaction on a connected client.
func (s SMTP) session(c *smtp.Client, rcpt string, msg []byte) error {
	if err := c.Hello(s.Helo); err != nil {
		return fmt.Errorf("hello: %w", err)
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

// mailOptions asks for SMTPUTF8 when the recipient or the message (an
// internationalised To or From) is not ASCII.
func mailOptions(c *smtp.Client, rcpt string, msg []byte) (*smtp.MailOptions, error) {
	if isASCII(rcpt) && isASCII(string(msg)) {
		return nil, nil
	}
	if ok, _ := c.Extension("SMTPUTF8"); !ok {
		return nil, ErrNoSMTPUTF8
	}
	return &smtp.MailOptions{UTF8: true}, nil
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
// a 5xx reply (RFC 5321 §4.2.1), ErrNoSMTPUTF8 or ErrInvalid. Anything
// else (4xx, network, timeout) is worth retrying.
func IsPermanent(err error) bool {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		return se.Code/100 == 5
	}
	return errors.Is(err, ErrNoSMTPUTF8) || errors.Is(err, ErrInvalid)
}

// checkRcpt refuses an empty recipient or one with control characters,
// which no retry can fix.
func checkRcpt(rcpt string) error {
	if rcpt == "" || strings.IndexFunc(rcpt, unicode.IsControl) >= 0 {
		return fmt.Errorf("%w: recipient %q", ErrInvalid, rcpt)
	}
	return nil
}
