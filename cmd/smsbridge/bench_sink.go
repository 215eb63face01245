package main

import (
	"bytes"
	"io"
	"net"
	"sync"
	"sync/atomic"

	"github.com/emersion/go-smtp"

	"github.com/smsbridge/smsbridge/smppout/smsctest"
)

// reportSink is the smarthost of a benchmark: an SMTP server that counts
// the reports and reads the token of the original mail back from them
// (the report quotes its Message-ID), keeping nothing.
type reportSink struct {
	g       *generator
	srv     *smtp.Server
	l       net.Listener
	reports atomic.Uint64 // report mails
	records atomic.Uint64 // records they report on (one report may cover several recipients of a mail)
	lat     latencies
	bufs    sync.Pool
}

func startReportSink(addr string, g *generator) (*reportSink, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	s := &reportSink{g: g, l: l}
	s.bufs.New = func() any { return new(bytes.Buffer) }
	s.srv = smtp.NewServer(s)
	s.srv.Domain = "sink.bench.test"
	s.srv.ErrorLog = nopLogger{}
	s.srv.MaxRecipients = 100
	go s.srv.Serve(l)
	return s, nil
}

func (s *reportSink) Addr() string { return s.l.Addr().String() }
func (s *reportSink) Close() error { return s.srv.Close() }

// NewSession implements smtp.Backend.
func (s *reportSink) NewSession(*smtp.Conn) (smtp.Session, error) { return sinkSession{s}, nil }

type sinkSession struct{ s *reportSink }

func (sinkSession) Reset()                               {}
func (sinkSession) Logout() error                        { return nil }
func (sinkSession) Mail(string, *smtp.MailOptions) error { return nil }
func (sinkSession) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (x sinkSession) Data(r io.Reader) error {
	s := x.s
	b := s.bufs.Get().(*bytes.Buffer)
	b.Reset()
	defer s.bufs.Put(b)
	if _, err := b.ReadFrom(r); err != nil {
		return err
	}
	s.reports.Add(1)
	s.records.Add(uint64(max(1, bytes.Count(b.Bytes(), []byte("\nFinal-Recipient:")))))
	if tok, ok := reportToken(b.Bytes()); ok {
		if at := s.g.times.get(tok); at != 0 {
			s.lat.add(timeSince(s.g, at))
		}
	}
	return nil
}

// reportToken finds "<b123.smsbench@" in a report.
func reportToken(b []byte) (uint64, bool) {
	i := bytes.Index(b, []byte(".smsbench@"))
	if i < 0 {
		return 0, false
	}
	j := i
	for j > 0 && b[j-1] >= '0' && b[j-1] <= '9' {
		j--
	}
	return parseDigits(b[j:i])
}

// submitToken reads the token from the text of a submit_sm: "BENCH123 "
// at the start of the first segment, in GSM 03.38 unpacked septets or in
// UCS-2. Other segments have none.
func submitToken(m *smsctest.Message) (uint64, bool) {
	b := m.ShortMessage
	if m.ESMClass&0x40 != 0 { // UDHI: skip the user data header
		if len(b) == 0 || int(b[0])+1 > len(b) {
			return 0, false
		}
		b = b[int(b[0])+1:]
	}
	var buf [32]byte
	t := buf[:0]
	if m.DataCoding == 0x08 {
		for i := 0; i+1 < len(b) && len(t) < len(buf); i += 2 {
			if b[i] != 0 {
				break
			}
			t = append(t, b[i+1])
		}
	} else {
		t = b[:min(len(b), len(buf))]
	}
	rest, ok := bytes.CutPrefix(t, []byte("BENCH"))
	if !ok {
		return 0, false
	}
	end := 0
	for end < len(rest) && rest[end] >= '0' && rest[end] <= '9' {
		end++
	}
	return parseDigits(rest[:end])
}

func parseDigits(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 19 {
		return 0, false
	}
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	return n, true
}

// submitCounter is the simulator's OnSubmit hook: it counts every
// submit_sm and times the first segment of measured mails.
type submitCounter struct {
	g     *generator
	count atomic.Uint64
	lat   latencies
}

func (c *submitCounter) onSubmit(m smsctest.Message, _ uint32) {
	c.count.Add(1)
	if tok, ok := submitToken(&m); ok {
		if at := c.g.times.get(tok); at != 0 {
			c.lat.add(timeSince(c.g, at))
		}
	}
}

type nopLogger struct{}

func (nopLogger) Printf(string, ...any) {}
func (nopLogger) Println(...any)        {}
