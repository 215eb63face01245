package smppout

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/smsbridge/smsbridge/smppout/internal/wire"
)

// maxSeq: sequence numbers run 1..0x7FFFFFFF and wrap (§3.2).
const maxSeq = 0x7FFFFFFF

var (
	errPeerUnbind = errors.New("smppout: SMSC sent unbind")
	errShutdown   = errors.New("smppout: shutting down")
)

// session is one TCP connection and bind. Responses are matched to
// requests by (response command_id, sequence_number): a request from the
// SMSC (deliver_sm) never completes one of ours even when its sequence
// number collides with a pending submit_sm (go-smpp issue #87).
type session struct {
	conn      net.Conn
	r         *bufio.Reader
	cfg       Config
	bindID    uint32 // bind_transceiver, bind_transmitter or bind_receiver
	canSubmit bool   // bound as transceiver or transmitter
	h         Handler
	stats     *counters
	log       *slog.Logger
	ctx       context.Context // Run's, for handler values; never cancelled here

	w *wire.Writer // one writer goroutine: PDUs never interleave

	mu       sync.Mutex
	seq      uint32
	pending  map[uint32]*call // by sequence number
	given    int              // pending calls given up, kept to spot late responses
	draining bool             // shutting down: no new submits
	closed   bool
	closeErr error

	window   chan struct{} // one token per submit_sm in flight
	inflight tracker       // registered submits
	handlers tracker       // receipt handlers running
	slots    chan struct{} // bounds them: a full set stops the read loop
	done     chan struct{} // closed by close
	once     sync.Once
}

type call struct {
	respID uint32
	ch     chan wire.PDU // buffered: resolve never blocks
	dest   string        // submit_sm destination, for the log
	tag    any           // Submit.Tag, handed to Config.Late
	given  bool          // the caller gave up waiting: a response now is late
}

func newSession(conn net.Conn, cfg Config, bindID uint32, h Handler, stats *counters, log *slog.Logger) *session {
	return &session{
		conn: conn, r: bufio.NewReader(conn), cfg: cfg, h: h, log: log, stats: stats,
		w:      wire.NewWriter(conn, cfg.RespTimeout),
		bindID: bindID, canSubmit: bindID != wire.BindReceiver,
		ctx:     context.Background(),
		pending: make(map[uint32]*call),
		window:  make(chan struct{}, cfg.Window),
		slots:   make(chan struct{}, maxHandlers),
		done:    make(chan struct{}),
	}
}

// open reports whether the session takes submits.
func (s *session) open() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return !s.closed && !s.draining
}

// close ends the session once; waiting requests fail with ErrSessionLost.
// After an unbind (ours or the SMSC's) what is queued is sent first, so
// the last unbind_resp or deliver_sm_resp goes out; otherwise the
// connection is closed at once: it may be dead.
func (s *session) close(err error) {
	s.once.Do(func() {
		s.mu.Lock()
		s.closed, s.closeErr = true, err
		s.mu.Unlock()
		close(s.done)
		if errors.Is(err, errPeerUnbind) || errors.Is(err, errShutdown) {
			s.w.Close()
		}
		s.conn.Close()
		s.w.Close()
	})
}

func (s *session) err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closeErr
}

// write queues one PDU; a failed write ends the session.
func (s *session) write(p wire.PDU) error {
	if err := s.w.Write(p); err != nil {
		err = fmt.Errorf("smppout: write command 0x%08X: %w", p.ID, err)
		s.close(err)
		return err
	}
	return nil
}

// bind sends the session's bind (§4.1.1, §4.1.3, §4.1.5) and waits for
// its bind_*_resp (§4.1.2).
func (s *session) bind(ctx context.Context) error {
	s.ctx = ctx
	stop := context.AfterFunc(ctx, func() { s.conn.Close() })
	defer stop()
	seq := s.nextSeq()
	b := wire.Bind{SystemID: s.cfg.SystemID, Password: s.cfg.Password, SystemType: s.cfg.SystemType,
		Version: s.cfg.InterfaceVersion, AddressRange: s.cfg.AddressRange}
	if err := s.write(wire.PDU{ID: s.bindID, Seq: seq, Body: b.Marshal()}); err != nil {
		return err
	}
	s.conn.SetReadDeadline(time.Now().Add(s.cfg.RespTimeout))
	defer s.conn.SetReadDeadline(time.Time{})
	for {
		p, err := wire.Read(s.r)
		if err != nil {
			return fmt.Errorf("smppout: waiting for bind_resp: %w", err)
		}
		switch {
		case p.Seq == seq && (p.ID == s.bindID|wire.RespBit || p.ID == wire.GenericNack):
			if p.Status != 0 {
				return &BindError{Status: p.Status}
			}
			return nil
		case p.ID == wire.EnquireLink:
			if err := s.write(p.Resp(0, nil)); err != nil {
				return err
			}
		default:
			s.log.Warn("smpp PDU before bind_resp ignored", "seq", p.Seq, "command_id", fmt.Sprintf("0x%08X", p.ID))
		}
	}
}

// nextSeq returns the next free sequence number. Caller must not hold mu.
func (s *session) nextSeq() uint32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.nextSeqLocked()
}

func (s *session) nextSeqLocked() uint32 {
	for {
		s.seq++
		if s.seq > maxSeq {
			s.seq = 1
		}
		if _, busy := s.pending[s.seq]; !busy {
			return s.seq
		}
	}
}

// serve runs the session until it ends or ctx is done, then waits for the
// goroutines it started. On ctx done it drains and unbinds.
func (s *session) serve(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); s.close(s.readLoop()) }()
	go func() { defer wg.Done(); s.keepalive() }()
	select {
	case <-ctx.Done():
		s.shutdown()
	case <-s.done:
	}
	wg.Wait()
	<-s.handlers.Idle() // bounded: handlers get a RespTimeout context
	if ctx.Err() != nil {
		return nil
	}
	return s.err()
}

// shutdown stops new submits, waits for those in flight and for receipt
// handlers (together bounded by RespTimeout), then unbinds (§4.2).
func (s *session) shutdown() {
	s.mu.Lock()
	s.draining = true
	s.mu.Unlock()
	deadline := time.NewTimer(s.cfg.RespTimeout)
	defer deadline.Stop()
	for _, t := range []*tracker{&s.inflight, &s.handlers} {
		if !waitIdle(t, deadline.C, s.done) {
			s.log.Warn("smpp shutdown: gave up waiting for requests in flight")
			break
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), min(s.cfg.RespTimeout, 2*time.Second))
	defer cancel()
	if _, err := s.request(ctx, wire.Unbind, nil, "", nil); err != nil {
		s.log.Warn("smpp unbind", "err", err)
	} else {
		s.log.Info("smpp unbound")
	}
	s.close(errShutdown)
}

// waitIdle waits for t unless timeout or done fires first.
func waitIdle(t *tracker, timeout <-chan time.Time, done <-chan struct{}) bool {
	select {
	case <-t.Idle():
		return true
	case <-done:
		return true
	case <-timeout:
		return false
	}
}

// keepalive sends enquire_link (§4.11) every EnquireLink; no response
// within RespTimeout means a dead link and closes the session.
func (s *session) keepalive() {
	t := time.NewTicker(s.cfg.EnquireLink)
	defer t.Stop()
	for {
		select {
		case <-s.done:
			return
		case <-t.C:
		}
		if _, err := s.request(context.Background(), wire.EnquireLink, nil, "", nil); err != nil {
			s.close(fmt.Errorf("smppout: dead link: enquire_link: %w", err))
			return
		}
	}
}
