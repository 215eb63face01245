package smtp

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
)

type EnhancedCode [3]int

// SMTPError specifies the error code, enhanced error code (if any) and
// message returned by the server.
type SMTPError struct {
	Code         int
	EnhancedCode EnhancedCode
	Message      string
}

// NoEnhancedCode is used to indicate that enhanced error code should not be
// included in response.
//
// Note that RFC 2034 requires an enhanced code to be included in all 2xx, 4xx
// and 5xx responses. This constant is exported for use by extensions, you
// should probably use EnhancedCodeNotSet instead.
var NoEnhancedCode = EnhancedCode{-1, -1, -1}

// EnhancedCodeNotSet is a nil value of EnhancedCode field in SMTPError, used
// to indicate that backend failed to provide enhanced status code. X.0.0 will
// be used (X is derived from error code).
var EnhancedCodeNotSet = EnhancedCode{0, 0, 0}

func (err *SMTPError) Error() string {
	s := fmt.Sprintf("SMTP error %03d", err.Code)
	if err.Message != "" {
		s += ": " + err.Message
	}
	return s
}

func (err *SMTPError) Temporary() bool {
	return err.Code/100 == 4
}

var ErrDataTooLarge = &SMTPError{
	Code:         552,
	EnhancedCode: EnhancedCode{5, 3, 4},
	Message:      "Maximum message size exceeded",
}

type dataReader struct {
	r     *bufio.Reader
	state int

	limited bool
	n       int64 // Maximum bytes remaining
}

func newDataReader(c *Conn) *dataReader {
	dr := &dataReader{
		r: c.text.R,
	}

	if c.server.MaxMessageBytes > 0 {
		dr.limited = true
		dr.n = int64(c.server.MaxMessageBytes)
	}

	return dr
}

func (r *dataReader) Read(b []byte) (n int, err error) {
	// Code below is taken from net/textproto with only one modification to
	// not rewrite CRLF -> LF.

	// Run data through a simple state machine to
	// elide leading dots and detect End-of-Data (<CR><LF>.<CR><LF>) line.
	const (
		stateBeginLine = iota // beginning of line; initial state; must be zero
		stateDot              // read . at beginning of line
		stateDotCR            // read .\r at beginning of line
		stateCR               // read \r (possibly at end of line)
		stateData             // reading data in middle of line
		stateEOF              // reached .\r\n end marker line
	)
	if r.state == stateEOF {
		return 0, io.EOF
	}
	if r.limited {
		if r.n <= 0 {
			// smsbridge patch: a message of exactly MaxMessageBytes is
			// not too large; take its end marker (upstream refused it).
			if r.state == stateBeginLine {
				if p, err := r.r.Peek(3); err == nil && string(p) == ".\r\n" {
					r.r.Discard(3)
					r.state = stateEOF
					return 0, io.EOF
				}
			}
			return 0, ErrDataTooLarge
		}
		if int64(len(b)) > r.n {
			b = b[0:r.n]
		}
	}

	for n < len(b) && r.state != stateEOF {
		// smsbridge patch: in the middle of a line only a CR can change
		// the state, so copy what is buffered up to the next CR at once
		// instead of byte by byte (the reader was 6% of the gateway's
		// CPU). FuzzPatchDataReader checks it against the rules.
		if r.state == stateData && r.r.Buffered() > 0 {
			avail := r.r.Buffered()
			if avail > len(b)-n {
				avail = len(b) - n
			}
			buf, _ := r.r.Peek(avail)
			if i := bytes.IndexByte(buf, '\r'); i != 0 {
				if i < 0 {
					i = len(buf)
				}
				n += copy(b[n:], buf[:i])
				r.r.Discard(i)
				continue
			}
		}
		var c byte
		c, err = r.r.ReadByte()
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			break
		}
		switch r.state {
		case stateBeginLine:
			if c == '.' {
				r.state = stateDot
				continue
			}
			if c == '\r' {
				r.state = stateCR
				break
			}
			r.state = stateData
		case stateDot:
			if c == '\r' {
				r.state = stateDotCR
				continue
			}
			r.state = stateData
		case stateDotCR:
			if c == '\n' {
				r.state = stateEOF
				continue
			}
			// smsbridge patch: "." CR without LF is not the end of data.
			// Pass the CR on (the dot goes, as dot-stuffing says) and read
			// c again after it, so the caller sees the bare CR instead of
			// a silently joined line (SMTP smuggling, RFC 5321 2.3.8).
			r.r.UnreadByte() // cannot fail right after ReadByte
			r.state = stateData
			c = '\r'
		case stateCR:
			if c == '\n' {
				r.state = stateBeginLine
				break
			}
			// smsbridge patch: a CR after a CR may start the line end
			// (CR CR LF . CR LF ends the data, RFC 5321 4.1.1.4), as
			// net/textproto's dotReader has it; upstream lost it.
			if c == '\r' {
				break
			}
			r.state = stateData
		case stateData:
			if c == '\r' {
				r.state = stateCR
			}
		}
		b[n] = c
		n++
	}
	if err == nil && r.state == stateEOF {
		err = io.EOF
	}

	if r.limited {
		r.n -= int64(n)
	}
	return
}
