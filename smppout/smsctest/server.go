package smsctest

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/smsbridge/smsbridge/smppout/internal/wire"
)

// Server is a running simulator. Its state (messages, receipts not yet
// acknowledged) survives Stop/Start and Restart, like a real SMSC's.
type Server struct {
	cfg Config
	log *slog.Logger

	mu        sync.Mutex
	ln        net.Listener
	addr      string
	conns     map[*conn]struct{}
	msgs      []Message
	idBase    uint64
	nextID    uint64
	outbox    []*receipt
	resps     []DeliverResp
	respTotal int // deliver_sm_resps received, also those MaxMessages dropped
	binds     int
	enquires  int
	accepted  uint64 // connections
	total     int    // messages accepted, also those MaxMessages dropped
	waiters   int    // callers in wait: notify only when someone listens

	throttleAcc float64   // ThrottleFraction accumulator
	tpsSecond   time.Time // MaxTPS: the second being counted
	tpsCount    int
	throttled   int
	dupReceipts int // receipts sent again on purpose
	enqResps    int // enquire_link_resp to our enquire_link
	unbinds     int // unbind requests from ESMEs
	cmdResps    []Response
	moSeq       int
	changed     chan struct{} // closed and replaced on every state change
	pumpStop    chan struct{} // nil while the receipt pump is not running

	kick     chan struct{} // wakes the pump
	pumpDone chan struct{}
	wg       sync.WaitGroup // accept loop and connections
}

// New returns a stopped simulator; Start listens.
func New(cfg Config) *Server {
	cfg = cfg.withDefaults()
	return &Server{
		cfg:     cfg,
		log:     cfg.Log,
		conns:   make(map[*conn]struct{}),
		idBase:  uint64(time.Now().UnixMilli()) << 12, // ids differ across simulator runs
		changed: make(chan struct{}),
		kick:    make(chan struct{}, 1),
	}
}

// Start listens on addr ("127.0.0.1:0" picks a port) and serves. It may be
// called again after Stop, e.g. with the old Addr to simulate an outage.
func (s *Server) Start(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("smsctest: listen: %w", err)
	}
	if s.cfg.TLS != nil {
		ln = tls.NewListener(ln, s.cfg.TLS)
	}
	s.mu.Lock()
	if s.ln != nil {
		s.mu.Unlock()
		ln.Close()
		return errors.New("smsctest: already started")
	}
	s.ln, s.addr = ln, ln.Addr().String()
	if s.pumpStop == nil {
		s.pumpStop, s.pumpDone = make(chan struct{}), make(chan struct{})
		go s.pump(s.pumpStop, s.pumpDone)
	}
	s.mu.Unlock()
	s.wg.Add(1)
	go s.accept(ln)
	s.log.Info("smsc simulator listening", "addr", s.addr)
	return nil
}

// Addr returns the address Start bound (also after Stop).
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// Stop closes the listener and every connection but keeps the state:
// receipts not acknowledged are sent after the next bind.
func (s *Server) Stop() {
	s.mu.Lock()
	ln := s.ln
	s.ln = nil
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	if ln != nil {
		ln.Close()
	}
	for _, c := range conns {
		c.nc.Close()
	}
	s.wg.Wait()
}

// Restart stops and starts again on the same address.
func (s *Server) Restart() error {
	s.Stop()
	return s.Start(s.Addr())
}

// Close stops the simulator for good.
func (s *Server) Close() error {
	s.Stop()
	s.mu.Lock()
	stop, done := s.pumpStop, s.pumpDone
	s.pumpStop = nil
	s.mu.Unlock()
	if stop != nil {
		close(stop)
		<-done
	}
	return nil
}

func (s *Server) accept(ln net.Listener) {
	defer s.wg.Done()
	for {
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		c := &conn{s: s, nc: nc, log: s.log.With("remote", nc.RemoteAddr().String()),
			w: wire.NewWriter(nc, s.cfg.RespTimeout), end: make(chan struct{})}
		s.mu.Lock()
		if s.ln != ln { // stopped meanwhile
			s.mu.Unlock()
			nc.Close()
			return
		}
		s.accepted++
		c.born = s.accepted
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go c.serve()
	}
}

// notifyLocked wakes the waiters; s.mu held.
func (s *Server) notifyLocked() {
	if s.waiters == 0 {
		return
	}
	close(s.changed)
	s.changed = make(chan struct{})
}

// wait blocks until cond (called with s.mu held) holds or ctx is done.
func (s *Server) wait(ctx context.Context, cond func() bool) error {
	for {
		s.mu.Lock()
		ok, ch := cond(), s.changed
		if !ok {
			s.waiters++
		}
		s.mu.Unlock()
		if ok {
			return nil
		}
		var err error
		select {
		case <-ch:
		case <-ctx.Done():
			err = fmt.Errorf("smsctest: wait: %w", ctx.Err())
		}
		s.mu.Lock()
		s.waiters--
		s.mu.Unlock()
		if err != nil {
			return err
		}
	}
}

// Messages returns a copy of the accepted messages, oldest first.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.msgs...)
}

// WaitMessages waits until at least n messages were accepted.
func (s *Server) WaitMessages(ctx context.Context, n int) ([]Message, error) {
	err := s.wait(ctx, func() bool { return s.total >= n })
	return s.Messages(), err
}

// Accepted counts the messages accepted since New, also those
// MaxMessages no longer keeps.
func (s *Server) Accepted() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.total
}

// Throttled counts submit_sm refused with ESME_RTHROTTLED by
// ThrottleFraction or MaxTPS.
func (s *Server) Throttled() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.throttled
}

// DuplicateReceipts counts the receipts sent again by DuplicateReceipts.
func (s *Server) DuplicateReceipts() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dupReceipts
}

// EnquireLinkResps counts the answers to the simulator's enquire_link.
func (s *Server) EnquireLinkResps() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.enqResps
}

// Responses returns the responses to InjectCommand requests, oldest first.
func (s *Server) Responses() []Response {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Response(nil), s.cmdResps...)
}

// WaitResponses waits until at least n InjectCommand responses came.
func (s *Server) WaitResponses(ctx context.Context, n int) ([]Response, error) {
	err := s.wait(ctx, func() bool { return len(s.cmdResps) >= n })
	return s.Responses(), err
}

// Unbinds counts the unbind requests ESMEs sent.
func (s *Server) Unbinds() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.unbinds
}

// DropConnections closes every connection at once, without unbind, and
// keeps listening: what was accepted but not yet answered is in doubt
// for the client.
func (s *Server) DropConnections() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.nc.Close()
	}
}

// DeliverResps returns the deliver_sm_resps received, oldest first.
func (s *Server) DeliverResps() []DeliverResp {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]DeliverResp(nil), s.resps...)
}

// WaitDeliverResps waits until at least n deliver_sm_resps came.
func (s *Server) WaitDeliverResps(ctx context.Context, n int) ([]DeliverResp, error) {
	err := s.wait(ctx, func() bool { return s.respTotal >= n })
	return s.DeliverResps(), err
}

// PendingReceipts counts receipts not yet acknowledged with ESME_ROK.
func (s *Server) PendingReceipts() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.outbox)
}

// WaitReceiptsAcked waits until every receipt was acknowledged.
func (s *Server) WaitReceiptsAcked(ctx context.Context) error {
	return s.wait(ctx, func() bool { return len(s.outbox) == 0 })
}

// Binds counts successful binds since New.
func (s *Server) Binds() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.binds
}

// WaitBinds waits until at least n successful binds happened.
func (s *Server) WaitBinds(ctx context.Context, n int) error {
	return s.wait(ctx, func() bool { return s.binds >= n })
}

// EnquireLinks counts the enquire_link requests received.
func (s *Server) EnquireLinks() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.enquires
}
