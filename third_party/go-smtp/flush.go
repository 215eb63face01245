package smtp

import (
	"io"
	"time"
)

// smsbridge patch (PATCHES.md, change 3): replies are buffered.
//
// writeResponse puts each reply, whole, into c.text.W and does not flush
// it. The buffer goes out, in one write:
//
//   - before a read from the socket (flushReader): what the client sent is
//     all handled, so it waits for our replies (RFC 2920 section 3.2: send
//     all pending responses when the input buffer is emptied);
//   - after the reply to any command but RSET, MAIL, RCPT and BDAT, the ones
//     that may be followed by more of a pipelined group (handle);
//   - after a 421, the server's last word (writeResponse);
//   - before the STARTTLS handshake, before the connection is closed by its
//     own goroutine (flushAndClose), and before waiting for the next LMTP
//     status (nextStatus) or for LMTPData to return (handleDataLMTP).
//
// A pipelined MAIL, RCPT, DATA then costs one write instead of three.

// flushReader is what the text reader reads from: it sends the buffered
// replies before it reads from the connection.
type flushReader struct {
	c *Conn
	r io.Reader // c.conn when the reader was made
}

func (r flushReader) Read(b []byte) (int, error) {
	if err := r.c.flush(); err != nil {
		return 0, err
	}
	return r.r.Read(b)
}

// flush sends the buffered replies. It may be called from the goroutine of
// an LMTPData reading the message, hence the lock.
func (c *Conn) flush() error {
	c.wlock.Lock()
	defer c.wlock.Unlock()
	return c.flushLocked()
}

func (c *Conn) flushLocked() error {
	if c.text.W.Buffered() == 0 {
		return nil
	}
	if c.server.WriteTimeout != 0 {
		c.conn.SetWriteDeadline(time.Now().Add(c.server.WriteTimeout))
	}
	return c.text.W.Flush()
}

// flushAndClose sends the buffered replies and closes the connection. Only
// the goroutine serving c calls it: Close, which Server.Close calls from
// another goroutine, does not flush.
func (c *Conn) flushAndClose() {
	c.flush()
	c.Close()
}

// nextStatus waits for a recipient's LMTP status; if it is not there yet,
// the replies written so far go out first.
func (c *Conn) nextStatus(ch chan error) error {
	select {
	case err := <-ch:
		return err
	default:
		c.flush()
		return <-ch
	}
}
