package smppout

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/smsbridge/smsbridge/smppout/internal/wire"
)

// Client keeps the sessions of one route (Config) bound: Binds
// transceivers, or Binds transmitters and Binds receivers, each rebound
// on its own with backoff. Submits are spread over the bound sessions
// that may submit; receipts and MO come from any session that receives.
type Client struct {
	cfg    Config
	h      Handler
	log    *slog.Logger
	bucket *bucket // TPS cap; nil when none
	now    func() time.Time
	stats  counters

	mu       sync.Mutex
	sessions []*session // bound sessions, all kinds
	next     int        // round-robin start among equally loaded sessions
}

// New returns a client; Run starts it. A nil h acknowledges receipts
// without looking at them; a nil log discards.
func New(cfg Config, h Handler, log *slog.Logger) *Client {
	cfg = cfg.withDefaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if h == nil {
		h = func(context.Context, Receipt) error { return nil }
	}
	log = log.With("addr", cfg.Addr, "system_id", cfg.SystemID)
	c := &Client{cfg: cfg, h: h, log: log, now: time.Now}
	if cfg.TPS > 0 {
		c.bucket = newBucket(cfg.TPS, c.now())
	}
	return c
}

// Run binds every session, keeps them alive and rebinds with backoff
// until ctx is done; then each unbinds after draining its in-flight
// requests. It returns nil on shutdown; an error (ErrConfig) only for a
// config it cannot use.
func (c *Client) Run(ctx context.Context) error {
	if err := c.cfg.Validate(); err != nil {
		return err
	}
	g, ctx := errgroup.WithContext(ctx)
	for i := range c.cfg.Binds {
		for _, id := range c.bindIDs() {
			g.Go(func() error { c.keep(ctx, id, i); return nil })
		}
	}
	g.Wait()
	c.log.Info("smpp client stopped")
	return nil
}

// bindIDs are the bind commands of one unit of Binds (§4.1).
func (c *Client) bindIDs() []uint32 {
	if c.cfg.BindMode == BindTransmitterReceiver {
		return []uint32{wire.BindTransmitter, wire.BindReceiver}
	}
	return []uint32{wire.BindTransceiver}
}

// keep runs one session slot: bind, serve, back off, again.
func (c *Client) keep(ctx context.Context, bindID uint32, n int) {
	log := c.log.With("bind", bindName(bindID), "session", n)
	attempt := 0
	for ctx.Err() == nil {
		bound, err := c.runSession(ctx, bindID, log)
		if ctx.Err() != nil {
			return
		}
		if bound {
			attempt = 0
		}
		wait := c.backoff(attempt)
		attempt++
		var be *BindError
		if errors.As(err, &be) && be.Credentials() {
			wait = c.cfg.BackoffMax
			log.Error("smpp bind refused: check system_id/password", "status", fmt.Sprintf("0x%08X", be.Status), "retry_in", wait)
		} else {
			log.Warn("smpp session ended", "err", err, "retry_in", wait)
		}
		sleep(ctx, wait)
	}
}

func bindName(id uint32) string {
	switch id {
	case wire.BindTransmitter:
		return "transmitter"
	case wire.BindReceiver:
		return "receiver"
	}
	return "transceiver"
}

// backoff is exponential from BackoffMin to BackoffMax with jitter: a
// uniform pick in [d/2, d], so a fleet restarting together spreads out.
func (c *Client) backoff(attempt int) time.Duration {
	d := c.cfg.BackoffMin
	for i := 0; i < attempt && d < c.cfg.BackoffMax; i++ {
		d *= 2
	}
	d = min(d, c.cfg.BackoffMax)
	return d/2 + rand.N(d/2+1)
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// runSession dials, binds and serves one session until it ends. bound
// reports whether the bind succeeded.
func (c *Client) runSession(ctx context.Context, bindID uint32, log *slog.Logger) (bound bool, err error) {
	conn, err := c.dial(ctx)
	if err != nil {
		return false, err
	}
	s := newSession(conn, c.cfg, bindID, c.h, &c.stats, log)
	if err := s.bind(ctx); err != nil {
		s.close(err)
		return false, err
	}
	log.Info("smpp bound")
	c.addSession(s)
	c.stats.binds.Add(1) // after: a counted bind is among the sessions
	err = s.serve(ctx)
	c.removeSession(s)
	return true, err
}

// dial connects, with TLS when Config.TLS is set.
func (c *Client) dial(ctx context.Context) (net.Conn, error) {
	nd := &net.Dialer{Timeout: c.cfg.RespTimeout, KeepAlive: c.cfg.EnquireLink}
	var conn net.Conn
	var err error
	if c.cfg.TLS != nil {
		td := tls.Dialer{NetDialer: nd, Config: c.cfg.TLS}
		conn, err = td.DialContext(ctx, "tcp", c.cfg.Addr)
	} else {
		conn, err = nd.DialContext(ctx, "tcp", c.cfg.Addr)
	}
	if err != nil {
		return nil, fmt.Errorf("smppout: dial %s: %w", c.cfg.Addr, err)
	}
	return conn, nil
}

func (c *Client) addSession(s *session) {
	c.mu.Lock()
	c.sessions = append(c.sessions, s)
	c.mu.Unlock()
}

func (c *Client) removeSession(s *session) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, x := range c.sessions {
		if x == s {
			c.sessions = append(c.sessions[:i], c.sessions[i+1:]...)
			return
		}
	}
}

// pick returns the open session that may submit with the fewest requests
// in flight, starting the scan round-robin so that ties rotate; nil when
// none.
func (c *Client) pick() *session {
	c.mu.Lock()
	defer c.mu.Unlock()
	var best *session
	bestLoad := 0
	n := len(c.sessions)
	for i := range n {
		s := c.sessions[(c.next+i)%n]
		if !s.canSubmit || !s.open() {
			continue
		}
		if load := len(s.window); best == nil || load < bestLoad {
			best, bestLoad = s, load
		}
	}
	c.next++
	return best
}

// Bound reports whether a session that may submit is bound now.
func (c *Client) Bound() bool { return c.pick() != nil }

// Submit sends s and returns the SMSC's message id, normalised by
// Config.IDFormat. It returns ErrNotBound at once when no session may
// submit, waits for TPS tokens (Submit.Segments) and for a window slot
// within ctx, and returns an error that satisfies InDoubt (ErrTimeout,
// ErrSessionLost) when the request went out and no response came: the
// SMSC may have accepted the message.
func (c *Client) Submit(ctx context.Context, s Submit) (string, error) {
	body, err := submitBody(s, c.cfg)
	if err != nil {
		return "", err
	}
	if c.pick() == nil {
		return "", ErrNotBound
	}
	if err := c.rateWait(ctx, s.segments()); err != nil {
		return "", fmt.Errorf("smppout: submit_sm to %s: waiting for TPS: %w", s.Dest, err)
	}
	sess := c.pick()
	if sess == nil {
		return "", ErrNotBound
	}
	resp, err := sess.request(ctx, wire.SubmitSM, body, s.Dest, s.Tag)
	if err != nil {
		if InDoubt(err) {
			c.stats.inDoubt.Add(1)
		}
		return "", fmt.Errorf("smppout: submit_sm to %s: %w", s.Dest, err)
	}
	return c.submitted(s, resp)
}

// submitted reads a submit_sm_resp (§4.4.2).
func (c *Client) submitted(s Submit, resp wire.PDU) (string, error) {
	if resp.Status != 0 {
		c.stats.refused.Add(1)
		if resp.Status == wire.StatusThrottled {
			c.stats.throttled.Add(1)
		}
		return "", fmt.Errorf("smppout: submit_sm to %s: %w", s.Dest, &StatusError{Status: resp.Status})
	}
	c.stats.submitted.Add(1)
	id, err := wire.ParseMessageID(resp.Body)
	if err != nil {
		return "", fmt.Errorf("smppout: submit_sm_resp: %w", err)
	}
	return c.cfg.IDFormat.SubmitID(id), nil
}

func (c *Client) rateWait(ctx context.Context, n int) error {
	if c.bucket == nil {
		return nil
	}
	waited, err := c.bucket.wait(ctx, c.now(), n)
	if waited {
		c.stats.rateWaits.Add(1)
	}
	return err
}

// InDoubt reports whether err leaves a request in doubt: it was sent and
// no response came (timeout, session lost, ctx done while waiting), so
// the SMSC may have accepted it. Retrying may duplicate the message.
func InDoubt(err error) bool { return errors.Is(err, ErrTimeout) }
