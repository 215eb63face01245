// Package smtpsink is an SMTP server for tests that keeps every message it
// is given, standing in for the smarthost that receives report mails.
package smtpsink

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"

	"github.com/emersion/go-smtp"
)

// Message is one mail the sink accepted.
type Message struct {
	From string   // envelope sender; "" for <>
	To   []string // envelope recipients
	Data []byte
}

// Sink is a running SMTP server.
type Sink struct {
	srv *smtp.Server
	l   net.Listener

	mu      sync.Mutex
	msgs    []Message
	changed chan struct{} // closed and replaced on every new message
	// Reject, if set, is the error returned from DATA (e.g. a 4xx or 5xx
	// *smtp.SMTPError) instead of accepting.
	reject error
}

// Start listens on 127.0.0.1:0 and serves until Close.
func Start() (*Sink, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &Sink{l: l, changed: make(chan struct{})}
	s.srv = smtp.NewServer(s)
	s.srv.Domain = "sink.test"
	s.srv.ErrorLog = nopLogger{}
	go s.srv.Serve(l)
	return s, nil
}

// Addr is the host:port to send to.
func (s *Sink) Addr() string { return s.l.Addr().String() }

// Close stops the server.
func (s *Sink) Close() error { return s.srv.Close() }

// Reject makes DATA answer err (nil accepts again).
func (s *Sink) Reject(err error) {
	s.mu.Lock()
	s.reject = err
	s.mu.Unlock()
}

// Messages returns a copy of what was received so far.
func (s *Sink) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.msgs...)
}

// Wait returns once at least n messages arrived, or ctx is done.
func (s *Sink) Wait(ctx context.Context, n int) ([]Message, error) {
	for {
		s.mu.Lock()
		msgs, ch := append([]Message(nil), s.msgs...), s.changed
		s.mu.Unlock()
		if len(msgs) >= n {
			return msgs, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return msgs, errors.Join(ctx.Err(), errors.New("smtpsink: fewer messages than expected"))
		}
	}
}

func (s *Sink) add(m Message) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.reject != nil {
		return s.reject
	}
	s.msgs = append(s.msgs, m)
	close(s.changed)
	s.changed = make(chan struct{})
	return nil
}

// NewSession implements smtp.Backend.
func (s *Sink) NewSession(*smtp.Conn) (smtp.Session, error) { return &session{sink: s}, nil }

type session struct {
	sink *Sink
	msg  Message
}

func (x *session) Reset()        { x.msg = Message{} }
func (x *session) Logout() error { return nil }
func (x *session) Mail(from string, _ *smtp.MailOptions) error {
	x.msg.From = from
	return nil
}
func (x *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	x.msg.To = append(x.msg.To, to)
	return nil
}
func (x *session) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	m := x.msg
	m.Data = b
	return x.sink.add(m)
}

type nopLogger struct{}

func (nopLogger) Printf(string, ...any) {}
func (nopLogger) Println(...any)        {}
