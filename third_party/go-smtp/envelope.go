package smtp

// smsbridge patch (PATCHES.md, change 10): a client transaction that
// pipelines its envelope (RFC 2920).

import (
	"errors"
	"fmt"
	"time"
)

// EnvelopeError is a failed reply to one command sent by SendEnvelope.
type EnvelopeError struct {
	Command string // "MAIL", "RCPT" or "DATA"
	Rcpt    string // the recipient, for RCPT
	Err     error  // the reply, an *SMTPError
}

func (e *EnvelopeError) Error() string {
	if e.Command == "RCPT" {
		return fmt.Sprintf("RCPT TO:<%s>: %v", e.Rcpt, e.Err)
	}
	return e.Command + ": " + e.Err.Error()
}

func (e *EnvelopeError) Unwrap() error { return e.Err }

// SendEnvelope sends MAIL FROM:<from>, a RCPT TO for each of to, and DATA,
// and returns the writer for the message once DATA got its 354, as Mail,
// Rcpt and Data would. rcptOpts is nil or holds the options of each
// recipient.
//
// If the server advertises PIPELINING, the commands go in one write and
// the replies are read after it, in order: one round trip instead of
// 2+len(to). Otherwise they go one at a time.
//
// A refused command gives an *EnvelopeError that names it, wrapping the
// server's *SMTPError; any other error (the connection's, or a bad
// argument, found before anything is sent) is returned as is. All
// recipients must be accepted: the first refusal ends the attempt, and the
// server may still hold the transaction's MAIL, so call Reset before the
// next one.
func (c *Client) SendEnvelope(from string, opts *MailOptions, to []string, rcptOpts []*RcptOptions) (*DataCommand, error) {
	if len(to) == 0 {
		return nil, errors.New("smtp: SendEnvelope without recipients")
	}
	if rcptOpts != nil && len(rcptOpts) != len(to) {
		return nil, errors.New("smtp: SendEnvelope: one RcptOptions per recipient")
	}
	if err := validateLine(from); err != nil {
		return nil, err
	}
	if err := c.hello(); err != nil {
		return nil, err
	}
	lines := make([]string, 0, len(to)+2)
	line, err := c.mailLine(from, opts)
	if err != nil {
		return nil, err
	}
	lines = append(lines, line)
	for i, rcpt := range to {
		var o *RcptOptions
		if rcptOpts != nil {
			o = rcptOpts[i]
		}
		line, err := c.rcptLine(rcpt, o)
		if err != nil {
			return nil, err
		}
		lines = append(lines, line)
	}
	lines = append(lines, "DATA")
	if _, ok := c.ext["PIPELINING"]; !ok {
		return c.envelopeInTurn(lines, to)
	}
	return c.envelopePipelined(lines, to)
}

// envelopeInTurn sends the envelope's commands one at a time.
func (c *Client) envelopeInTurn(lines, to []string) (*DataCommand, error) {
	for i, line := range lines {
		code := envelopeCode(i, len(lines))
		if _, _, err := c.cmd(code, "%s", line); err != nil {
			return nil, envelopeErr(i, to, err)
		}
		c.envelopeAccepted(i, to)
	}
	return &DataCommand{client: c, wc: c.text.DotWriter()}, nil
}

// envelopePipelined sends the envelope's commands in one write, then reads
// every reply. RFC 2920 section 3.1: a client that pipelines MUST check
// every reply of the group, and must not assume that DATA is refused
// because every RCPT was; if DATA got 354 all the same, it sends a single
// dot, so that the server has an empty transaction to end (with no valid
// recipient, nothing is delivered).
func (c *Client) envelopePipelined(lines, to []string) (*DataCommand, error) {
	c.conn.SetDeadline(time.Now().Add(c.CommandTimeout))
	defer c.conn.SetDeadline(time.Time{})

	ids := make([]uint, len(lines))
	for i, line := range lines {
		ids[i] = c.text.Next()
		c.text.StartRequest(ids[i])
		_, err := c.text.W.WriteString(line + "\r\n")
		c.text.EndRequest(ids[i])
		if err != nil {
			return nil, err
		}
	}
	if err := c.text.W.Flush(); err != nil {
		return nil, err
	}

	var refused error
	dataOpen := false
	for i, id := range ids {
		c.text.StartResponse(id)
		_, _, err := c.readResponse(envelopeCode(i, len(lines)))
		c.text.EndResponse(id)
		var serr *SMTPError
		switch {
		case err == nil:
			c.envelopeAccepted(i, to)
			dataOpen = i == len(lines)-1
		case errors.As(err, &serr):
			if refused == nil {
				refused = envelopeErr(i, to, err)
			}
		case refused != nil:
			// The connection ended after a refusal (a 421 closes it):
			// the refusal says why.
			return nil, refused
		default:
			return nil, err // the connection, not a reply
		}
	}
	if refused == nil {
		return &DataCommand{client: c, wc: c.text.DotWriter()}, nil
	}
	if dataOpen {
		if _, _, err := c.cmd(0, "."); err != nil {
			var serr *SMTPError
			if !errors.As(err, &serr) {
				return nil, err
			}
		}
	}
	return nil, refused
}

// envelopeCode is the reply expected to command i of n: 250 to MAIL, 25x
// to RCPT, 354 to DATA.
func envelopeCode(i, n int) int {
	switch i {
	case 0:
		return 250
	case n - 1:
		return 354
	}
	return 25
}

// envelopeAccepted keeps the state that Mail and Rcpt keep: the
// recipients of this transaction, for LMTP's replies.
func (c *Client) envelopeAccepted(i int, to []string) {
	switch {
	case i == 0:
		c.rcpts = nil
	case i <= len(to):
		c.rcpts = append(c.rcpts, to[i-1])
	}
}

// envelopeErr names the command of err, if it is a reply.
func envelopeErr(i int, to []string, err error) error {
	var serr *SMTPError
	if !errors.As(err, &serr) {
		return err
	}
	switch {
	case i == 0:
		return &EnvelopeError{Command: "MAIL", Err: err}
	case i <= len(to):
		return &EnvelopeError{Command: "RCPT", Rcpt: to[i-1], Err: err}
	}
	return &EnvelopeError{Command: "DATA", Err: err}
}
