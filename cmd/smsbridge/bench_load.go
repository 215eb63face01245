package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/smsbridge/smsbridge/convert"
)

// The load generator speaks SMTP itself, on a bufio pair per session, so
// that it costs little CPU next to the server it measures (on one box they
// share the cores): no allocation per mail once a session runs, and with
// PIPELINING (RFC 2920) two round trips per mail: MAIL, RCPT… and DATA in
// one write, then the body.

// textKind is one entry of --mix: a text whose segment count is known.
type textKind struct {
	name     string
	weight   int
	text     string // with "%d" where the token goes
	segments int    // SMS segments per recipient, checked with convert
	parts    [][]byte
}

// benchTexts are the texts --mix chooses from. Each starts with the token
// ("BENCH<n> "), which the simulator's hook reads back from the first
// segment: in GSM 03.38 and in UCS-2 the ASCII letters and digits keep
// their codes.
var benchTexts = map[string]string{
	"gsm":  "BENCH%d Disk /var on db1 is 97% full; the backup job stopped.",
	"ucs2": "BENCH%d Авария: насос 3 остановлен, давление 2,1 бар",
	"long": "BENCH%d " + strings.Repeat("Alarm 42 on pump station North. ", 13)[:400],
}

// parseMix reads "gsm,ucs2:1,long:2" (weight 1 when none is given).
func parseMix(s string) ([]*textKind, error) {
	var kinds []*textKind
	for f := range strings.SplitSeq(s, ",") {
		name, w, hasW := strings.Cut(strings.TrimSpace(f), ":")
		if !hasW {
			name, w, hasW = strings.Cut(name, "=")
		}
		weight := 1
		if hasW {
			n, err := strconv.Atoi(w)
			if err != nil || n < 0 {
				return nil, fmt.Errorf("--mix %q: bad weight %q", s, w)
			}
			weight = n
		}
		text, ok := benchTexts[name]
		if !ok {
			return nil, fmt.Errorf("--mix %q: unknown text %q (gsm, ucs2, long)", s, name)
		}
		if weight > 0 {
			kinds = append(kinds, &textKind{name: name, weight: weight, text: text})
		}
	}
	if len(kinds) == 0 {
		return nil, fmt.Errorf("--mix %q: no text with a weight", s)
	}
	return kinds, nil
}

// countSegments sets each kind's segment count, checking with convert
// that the shortest and the longest token give the same.
func countSegments(kinds []*textKind, opt convert.Options) error {
	for _, k := range kinds {
		n := -1
		for _, tok := range []uint64{1, 1<<64 - 1} {
			e, err := convert.Encode(fmt.Sprintf(k.text, tok), opt)
			if err != nil {
				return fmt.Errorf("text %s: %w", k.name, err)
			}
			if n >= 0 && len(e.Segments) != n {
				return fmt.Errorf("text %s: segment count depends on the token", k.name)
			}
			n = len(e.Segments)
		}
		k.segments = n
	}
	return nil
}

// buildTemplates makes each kind's mail, split where the token goes, padded
// with a base64 attachment (which convert skips) to about size bytes.
func buildTemplates(kinds []*textKind, size int) {
	for _, k := range kinds {
		text := strings.Replace(k.text, "%d", "\x00", 1)
		var b strings.Builder
		b.WriteString("From: Bench <load@bench.test>\r\nTo: ops@sms.localhost\r\nSubject: bench\r\n")
		b.WriteString("Message-ID: <b\x00.smsbench@bench.test>\r\nMIME-Version: 1.0\r\n")
		plain := "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" + text + "\r\n"
		base := b.Len() + len(plain) + 40 // and two tokens
		if size <= base {
			b.WriteString(plain)
		} else {
			b.WriteString("Content-Type: multipart/mixed; boundary=\"smsbench-b\"\r\n\r\n--smsbench-b\r\n")
			b.WriteString(plain)
			b.WriteString("--smsbench-b\r\nContent-Type: application/octet-stream; name=\"log.bin\"\r\n" +
				"Content-Disposition: attachment; filename=\"log.bin\"\r\nContent-Transfer-Encoding: base64\r\n\r\n")
			pad := size - b.Len() - len("\r\n--smsbench-b--\r\n") - 20
			line := strings.Repeat("QUJDRA", 13)[:76] + "\r\n"
			for ; pad > 0; pad -= len(line) {
				b.WriteString(line[max(0, len(line)-pad):])
			}
			b.WriteString("--smsbench-b--\r\n")
		}
		for p := range strings.SplitSeq(b.String(), "\x00") {
			k.parts = append(k.parts, []byte(p))
		}
	}
}

// generator is the shared state of the sessions.
type generator struct {
	addr        string
	rcpts       int
	connPerMail bool
	pipelining  bool
	interval    time.Duration // per session, from --rate; 0: as fast as possible
	kinds       []*textKind
	wheel       []*textKind // kinds repeated by weight: token % len picks
	start       time.Time   // the run's clock: times are ns since start
	times       *mailTimes
	data250     latencies
	limit       uint64        // --count: measured mails to send; 0: until stopped
	slice       time.Duration // --slice: DATA→250 is also kept per slice of the window; 0: not

	measureStart atomic.Int64 // now() when measuring began
	sliceMu      sync.Mutex
	slices       []*latencies // by slice of the window

	next      atomic.Uint64 // tokens, from 1
	measuring atomic.Bool   // mails sent now are measured
	stopping  atomic.Bool
	measured  atomic.Uint64 // tokens handed out while measuring

	accepted    atomic.Uint64 // 250 after DATA
	expectSegs  atomic.Uint64 // SMS the accepted mails make (× recipients)
	tempFail    atomic.Uint64 // 4xx
	permFail    atomic.Uint64 // 5xx
	ioErrors    atomic.Uint64 // dial, read, write, timeout
	connections atomic.Uint64

	errMu   sync.Mutex
	lastErr string
}

func newGenerator(addr string, kinds []*textKind) *generator {
	g := &generator{addr: addr, kinds: kinds, times: new(mailTimes)}
	for _, k := range kinds {
		for range k.weight {
			g.wheel = append(g.wheel, k)
		}
	}
	return g
}

func (g *generator) now() int64 { return int64(time.Since(g.start)) }

// startMeasuring marks the start of the window: mails sent from now on are
// measured.
func (g *generator) startMeasuring() {
	g.measureStart.Store(g.now())
	g.measuring.Store(true)
}

// addSlice files the DATA→250 latency (µs) of a measured mail whose DATA
// went at at under its slice of the window.
func (g *generator) addSlice(at int64, us uint32) {
	i := int(max(at-g.measureStart.Load(), 0) / int64(g.slice))
	g.sliceMu.Lock()
	for len(g.slices) <= i {
		g.slices = append(g.slices, new(latencies))
	}
	l := g.slices[i]
	g.sliceMu.Unlock()
	l.addUS(us)
}

// sliceSummary is DATA→250 of the mails whose DATA went in one slice of
// the window, starting FromS seconds into it.
type sliceSummary struct {
	FromS float64 `json:"from_s"`
	latencySummary
}

func (g *generator) sliceSummaries() []sliceSummary {
	g.sliceMu.Lock()
	defer g.sliceMu.Unlock()
	var out []sliceSummary
	for i, l := range g.slices {
		out = append(out, sliceSummary{FromS: (time.Duration(i) * g.slice).Seconds(), latencySummary: l.summary()})
	}
	return out
}

// take hands out the next token, or false when the run is over.
func (g *generator) take() (uint64, bool, bool) {
	if g.stopping.Load() {
		return 0, false, false
	}
	measured := g.measuring.Load()
	if measured && g.limit > 0 {
		if g.measured.Add(1) > g.limit {
			return 0, false, false
		}
	}
	return g.next.Add(1), measured, true
}

func (g *generator) fail(err error) {
	g.errMu.Lock()
	g.lastErr = err.Error()
	g.errMu.Unlock()
}

// session is one SMTP client connection (or a series of them with
// --conn-per-mail).
type session struct {
	g    *generator
	nc   net.Conn
	r    *bufio.Reader
	w    *bufio.Writer
	cmd  []byte // MAIL, RCPT… and DATA for one mail
	body []byte
	lat  []uint32 // DATA→250 of measured mails, merged at the end
	rcpt uint64
	// phase delays the session's first mail under --rate (see phase).
	phase time.Duration
}

// phase is when session i of n sends its first mail under --rate, after
// the start: the sessions' sends are spread evenly over one interval. Had
// they all started at once, each would send at the same instants, and the
// server would see bursts of one mail per session (50 at once) instead of
// the rate asked for: the latencies measured would be those of the bursts.
func phase(i, n int, interval time.Duration) time.Duration {
	if n <= 0 {
		return 0
	}
	return interval * time.Duration(i) / time.Duration(n)
}

var errReply = errors.New("unexpected reply")

// replyError is a 4xx or 5xx reply.
type replyError struct {
	code int
	line string
}

func (e *replyError) Error() string { return e.line }

func (s *session) run() {
	g := s.g
	defer func() {
		if s.nc != nil {
			s.quit()
		}
		g.data250.addBatch(s.lat)
	}()
	due := time.Now().Add(s.phase)
	for {
		token, measured, ok := g.take()
		if !ok {
			return
		}
		if g.interval > 0 {
			if d := time.Until(due); d > 0 {
				time.Sleep(d)
			}
			due = due.Add(g.interval)
			if late := time.Since(due); late > time.Second {
				due = time.Now() // do not burst to catch up after a stall
			}
		}
		if s.nc == nil {
			if err := s.connect(); err != nil {
				g.ioErrors.Add(1)
				g.fail(err)
				time.Sleep(10 * time.Millisecond)
				continue
			}
		}
		err := s.mail(token, measured)
		var re *replyError
		switch {
		case err == nil:
		case errors.As(err, &re):
			if re.code >= 500 {
				g.permFail.Add(1)
			} else {
				g.tempFail.Add(1)
			}
			g.fail(err)
			if re.code == 421 {
				s.close()
			} else if s.nc != nil {
				s.w.WriteString("RSET\r\n")
				if s.w.Flush() != nil || s.expect(250) != nil {
					s.close()
				}
			}
		default:
			g.ioErrors.Add(1)
			g.fail(err)
			s.close()
		}
		if g.connPerMail && s.nc != nil {
			s.quit()
		}
	}
}

func (s *session) connect() error {
	nc, err := net.DialTimeout("tcp", s.g.addr, 10*time.Second)
	if err != nil {
		return err
	}
	s.g.connections.Add(1)
	s.nc = nc
	if s.r == nil {
		s.r = bufio.NewReaderSize(nc, 4096)
		s.w = bufio.NewWriterSize(nc, 8192)
	} else {
		s.r.Reset(nc)
		s.w.Reset(nc)
	}
	nc.SetDeadline(time.Now().Add(60 * time.Second))
	if err := s.expect(220); err != nil {
		s.close()
		return fmt.Errorf("greeting: %w", err)
	}
	s.w.WriteString("EHLO bench.test\r\n")
	if err := s.w.Flush(); err != nil {
		s.close()
		return err
	}
	if err := s.expect(250); err != nil {
		s.close()
		return fmt.Errorf("EHLO: %w", err)
	}
	return nil
}

func (s *session) quit() {
	s.w.WriteString("QUIT\r\n")
	if s.w.Flush() == nil {
		s.expect(221)
	}
	s.close()
}

func (s *session) close() {
	if s.nc != nil {
		s.nc.Close()
		s.nc = nil
	}
}

// number is recipient i of mail token: numbers cycle through 8,000,000
// valid US numbers, so that messages to one number (which smsbridge sends
// one at a time) are rare.
func (s *session) number(token uint64, i int) []byte {
	n := 2000000 + (token*uint64(s.g.rcpts)+uint64(i))%8000000
	s.cmd = append(s.cmd, "RCPT TO:<+1415"...)
	s.cmd = strconv.AppendUint(s.cmd, n, 10)
	s.cmd = append(s.cmd, "@sms.localhost>\r\n"...)
	return s.cmd
}

// mail sends one mail on the open connection.
func (s *session) mail(token uint64, measured bool) error {
	g := s.g
	k := g.wheel[token%uint64(len(g.wheel))]
	s.nc.SetDeadline(time.Now().Add(60 * time.Second))
	s.cmd = append(s.cmd[:0], "MAIL FROM:<load@bench.test> BODY=8BITMIME\r\n"...)
	if !g.pipelining {
		if err := s.send(s.cmd, 250); err != nil {
			return err
		}
		s.cmd = s.cmd[:0]
	}
	for i := range g.rcpts {
		s.number(token, i)
		if !g.pipelining {
			if err := s.send(s.cmd, 250); err != nil {
				return err
			}
			s.cmd = s.cmd[:0]
		}
	}
	s.cmd = append(s.cmd, "DATA\r\n"...)
	at := g.now()
	if measured {
		g.times.set(token, at)
	}
	if _, err := s.w.Write(s.cmd); err != nil {
		return err
	}
	if err := s.w.Flush(); err != nil {
		return err
	}
	n := 1
	if g.pipelining {
		n += 1 + g.rcpts
	}
	for i := range n {
		want := 250
		if i == n-1 {
			want = 354
		}
		if err := s.expect(want); err != nil {
			g.times.set(token, 0)
			var re *replyError
			if i < n-1 && errors.As(err, &re) {
				// A refused MAIL or RCPT: DATA then fails (503/554) too; read its reply.
				for range n - 1 - i {
					s.expect(354)
				}
				if s.nc == nil {
					return err
				}
			}
			return err
		}
	}
	s.body = s.body[:0]
	for i, p := range k.parts {
		if i > 0 {
			s.body = strconv.AppendUint(s.body, token, 10)
		}
		s.body = append(s.body, p...)
	}
	s.body = append(s.body, ".\r\n"...)
	if err := s.send(s.body, 250); err != nil {
		g.times.set(token, 0)
		return err
	}
	g.accepted.Add(1)
	g.expectSegs.Add(uint64(k.segments * g.rcpts))
	if measured {
		us := uint32(min((g.now()-at)/1000, 1<<32-1))
		s.lat = append(s.lat, us)
		if g.slice > 0 {
			g.addSlice(at, us)
		}
	}
	return nil
}

func (s *session) send(b []byte, want int) error {
	if _, err := s.w.Write(b); err != nil {
		return err
	}
	if err := s.w.Flush(); err != nil {
		return err
	}
	return s.expect(want)
}

// expect reads one reply, which may have several lines, and checks its
// code.
func (s *session) expect(want int) error {
	if s.nc == nil {
		return net.ErrClosed
	}
	for {
		line, err := s.r.ReadSlice('\n')
		if err != nil {
			return err
		}
		if len(line) < 4 {
			return fmt.Errorf("%w: %q", errReply, line)
		}
		if line[3] == '-' {
			continue
		}
		c, ok := parseDigits(line[:3])
		if !ok {
			return fmt.Errorf("%w: %q", errReply, line)
		}
		code := int(c)
		if code != want {
			if code >= 400 {
				return &replyError{code: code, line: string(bytes.TrimSpace(line))}
			}
			return fmt.Errorf("%w %q, want %d", errReply, bytes.TrimSpace(line), want)
		}
		return nil
	}
}
