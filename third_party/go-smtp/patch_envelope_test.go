package smtp_test

// Tests for the smsbridge patch that pipelines a client's envelope (see
// PATCHES.md, change 10).

import (
	"bufio"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// scriptServer serves one connection: a greeting, an EHLO reply offering
// exts, then script, which reads and answers the rest. Its error, or a
// panic's, fails the test.
func scriptServer(t *testing.T, exts []string, script func(r *bufio.Reader, w io.Writer) error) *smtp.Client {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		conn, err := ln.Accept()
		ln.Close()
		if err != nil {
			done <- err
			return
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		r := bufio.NewReader(conn)
		io.WriteString(conn, "220 fake ESMTP\r\n")
		if line, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(line, "EHLO ") {
			done <- errors.New("want EHLO, got " + line)
			return
		}
		reply := "250-fake\r\n"
		for _, e := range exts {
			reply += "250-" + e + "\r\n"
		}
		io.WriteString(conn, reply+"250 HELP\r\n")
		done <- script(r, conn)
	}()
	t.Cleanup(func() {
		if err := <-done; err != nil {
			t.Error("server:", err)
		}
	})
	c, err := smtp.Dial(ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c.CommandTimeout = 5 * time.Second
	c.SubmissionTimeout = 5 * time.Second
	t.Cleanup(func() { c.Close() })
	return c
}

// readLines reads n lines, which must be there without an answer.
func readLines(r *bufio.Reader, n int) ([]string, error) {
	var lines []string
	for i := 0; i < n; i++ {
		line, err := r.ReadString('\n')
		if err != nil {
			return lines, err
		}
		lines = append(lines, strings.TrimRight(line, "\r\n"))
	}
	return lines, nil
}

func expectLines(got []string, want ...string) error {
	if strings.Join(got, "|") != strings.Join(want, "|") {
		return errors.New("got " + strings.Join(got, "|") + ", want " + strings.Join(want, "|"))
	}
	return nil
}

// With PIPELINING, the whole envelope arrives before any reply is sent: a
// client that waited for MAIL's reply would hang here until the deadline.
func TestSendEnvelopePipelines(t *testing.T) {
	c := scriptServer(t, []string{"PIPELINING"}, func(r *bufio.Reader, w io.Writer) error {
		lines, err := readLines(r, 4)
		if err != nil {
			return err
		}
		if err := expectLines(lines, "MAIL FROM:<>", "RCPT TO:<a@example.com>", "RCPT TO:<b@example.com>", "DATA"); err != nil {
			return err
		}
		io.WriteString(w, "250 2.1.0 ok\r\n250 2.1.5 ok\r\n251 2.1.5 forwarded\r\n354 go on\r\n")
		body, err := readLines(r, 2)
		if err != nil {
			return err
		}
		if err := expectLines(body, "hello", "."); err != nil {
			return err
		}
		_, err = io.WriteString(w, "250 2.0.0 queued\r\n")
		return err
	})
	wc, err := c.SendEnvelope("", nil, []string{"a@example.com", "b@example.com"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(wc, "hello\r\n")
	if err := wc.Close(); err != nil {
		t.Fatal(err)
	}
}

// Without PIPELINING, each command waits for its reply: the server
// checks that nothing follows a command before it answered.
func TestSendEnvelopeInTurn(t *testing.T) {
	c := scriptServer(t, nil, func(r *bufio.Reader, w io.Writer) error {
		for _, step := range []struct{ cmd, reply string }{
			{"MAIL FROM:<s@example.com>", "250 ok"},
			{"RCPT TO:<a@example.com>", "250 ok"},
			{"DATA", "354 go on"},
		} {
			lines, err := readLines(r, 1)
			if err != nil {
				return err
			}
			if err := expectLines(lines, step.cmd); err != nil {
				return err
			}
			time.Sleep(20 * time.Millisecond)
			if r.Buffered() > 0 {
				return errors.New("the client sent more before the reply to " + step.cmd)
			}
			io.WriteString(w, step.reply+"\r\n")
		}
		if _, err := readLines(r, 2); err != nil {
			return err
		}
		_, err := io.WriteString(w, "250 queued\r\n")
		return err
	})
	wc, err := c.SendEnvelope("s@example.com", nil, []string{"a@example.com"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(wc, "hello\r\n")
	if err := wc.Close(); err != nil {
		t.Fatal(err)
	}
}

// Refusals, pipelined or not: the error names the first refused command
// and wraps the server's reply, and every reply of the group is read.
func TestSendEnvelopeRefused(t *testing.T) {
	for _, tc := range []struct {
		name    string
		exts    []string
		replies []string // one per command sent, in order
		more    string   // what the client must send after the replies
		command string
		code    int
	}{
		{"mail", []string{"PIPELINING"}, []string{"550 5.7.1 no", "503 5.5.1 no MAIL", "503 5.5.1 no RCPT"}, "", "MAIL", 550},
		{"rcpt", []string{"PIPELINING"}, []string{"250 ok", "550 5.1.1 unknown", "554 5.5.1 no valid recipients"}, "", "RCPT", 550},
		// RFC 2920 section 3.1: DATA accepted though its RCPT was not:
		// the client ends the empty transaction with a dot.
		{"rcpt then 354", []string{"PIPELINING"}, []string{"250 ok", "450 4.2.1 later", "354 go on"}, ".", "RCPT", 450},
		{"data", []string{"PIPELINING"}, []string{"250 ok", "250 ok", "451 4.3.0 busy"}, "", "DATA", 451},
		{"rcpt in turn", nil, []string{"250 ok", "550 5.1.1 unknown"}, "", "RCPT", 550},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := scriptServer(t, tc.exts, func(r *bufio.Reader, w io.Writer) error {
				if tc.exts != nil {
					if _, err := readLines(r, 3); err != nil {
						return err
					}
					io.WriteString(w, strings.Join(tc.replies, "\r\n")+"\r\n")
				} else {
					for _, reply := range tc.replies {
						if _, err := readLines(r, 1); err != nil {
							return err
						}
						io.WriteString(w, reply+"\r\n")
					}
				}
				if tc.more != "" {
					lines, err := readLines(r, 1)
					if err != nil {
						return err
					}
					if err := expectLines(lines, tc.more); err != nil {
						return err
					}
					io.WriteString(w, "554 5.5.1 no valid recipients\r\n")
				}
				// The session is still in step: a NOOP gets its own reply.
				lines, err := readLines(r, 1)
				if err != nil {
					return err
				}
				if err := expectLines(lines, "NOOP"); err != nil {
					return err
				}
				_, err = io.WriteString(w, "250 2.0.0 ok\r\n")
				return err
			})
			_, err := c.SendEnvelope("", nil, []string{"a@example.com"}, nil)
			var ee *smtp.EnvelopeError
			var se *smtp.SMTPError
			if !errors.As(err, &ee) || !errors.As(err, &se) {
				t.Fatalf("err = %v, want an *EnvelopeError wrapping an *SMTPError", err)
			}
			if ee.Command != tc.command || se.Code != tc.code {
				t.Errorf("refused %s with %d, want %s with %d (%v)", ee.Command, se.Code, tc.command, tc.code, err)
			}
			if err := c.Noop(); err != nil {
				t.Errorf("NOOP after the refusal: %v", err)
			}
		})
	}
}

// A 421 closes the connection: the replies after it never come, and the
// 421 is what the caller learns.
func TestSendEnvelope421(t *testing.T) {
	c := scriptServer(t, []string{"PIPELINING"}, func(r *bufio.Reader, w io.Writer) error {
		if _, err := readLines(r, 3); err != nil {
			return err
		}
		_, err := io.WriteString(w, "421 4.4.2 idle too long\r\n")
		return err
	})
	_, err := c.SendEnvelope("", nil, []string{"a@example.com"}, nil)
	var se *smtp.SMTPError
	if !errors.As(err, &se) || se.Code != 421 {
		t.Fatalf("err = %v, want the 421", err)
	}
}

// Bad arguments are found before anything is sent.
func TestSendEnvelopeBadArguments(t *testing.T) {
	c := scriptServer(t, []string{"PIPELINING"}, func(r *bufio.Reader, w io.Writer) error {
		lines, err := readLines(r, 1)
		if err != nil {
			return err
		}
		if err := expectLines(lines, "QUIT"); err != nil {
			return err
		}
		_, err = io.WriteString(w, "221 bye\r\n")
		return err
	})
	for _, to := range [][]string{nil, {"a@example.com\r\nRSET"}} {
		if _, err := c.SendEnvelope("", nil, to, nil); err == nil {
			t.Errorf("SendEnvelope(%q) = nil, want an error", to)
		}
	}
	if _, err := c.SendEnvelope("", nil, []string{"a@example.com"}, []*smtp.RcptOptions{nil, nil}); err == nil {
		t.Error("SendEnvelope with 2 RcptOptions for 1 recipient = nil, want an error")
	}
	if err := c.Quit(); err != nil {
		t.Error(err)
	}
}
