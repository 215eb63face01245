package smppout

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"sync"
	"time"

	"github.com/smsbridge/smsbridge/smppout/internal/wire"
)

// Client keeps one bind to an SMSC.
type Client struct {
	cfg Config
	h   Handler
	log *slog.Logger

	mu   sync.Mutex
	sess *session // bound session, nil when none
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
	return &Client{cfg: cfg, h: h, log: log}
}

// Run binds, keeps the session alive and rebinds with backoff until ctx is
// done; then it unbinds after draining in-flight requests. It returns nil
// on shutdown; an error only for a config it cannot use.
func (c *Client) Run(ctx context.Context) error {
	if c.cfg.Addr == "" {
		return errors.New("smppout: Config.Addr is empty")
	}
	attempt := 0
	for ctx.Err() == nil {
		bound, err := c.runSession(ctx)
		if ctx.Err() != nil {
			break
		}
		if bound {
			attempt = 0
		}
		wait := c.backoff(attempt)
		attempt++
		var be *BindError
		if errors.As(err, &be) && be.Credentials() {
			wait = c.cfg.BackoffMax
			c.log.Error("smpp bind refused: check system_id/password", "status", fmt.Sprintf("0x%08X", be.Status), "retry_in", wait)
		} else {
			c.log.Warn("smpp session ended", "err", err, "retry_in", wait)
		}
		sleep(ctx, wait)
	}
	c.log.Info("smpp client stopped")
	return nil
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
func (c *Client) runSession(ctx context.Context) (bound bool, err error) {
	conn, err := c.dial(ctx)
	if err != nil {
		return false, err
	}
	s := newSession(conn, c.cfg, c.h, c.log)
	if err := s.bind(ctx); err != nil {
		conn.Close()
		return false, err
	}
	c.log.Info("smpp bound")
	c.setSession(s)
	err = s.serve(ctx)
	c.setSession(nil)
	return true, err
}

func (c *Client) dial(ctx context.Context) (net.Conn, error) {
	d := net.Dialer{Timeout: c.cfg.RespTimeout, KeepAlive: c.cfg.EnquireLink}
	conn, err := d.DialContext(ctx, "tcp", c.cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("smppout: dial: %w", err)
	}
	return conn, nil
}

func (c *Client) setSession(s *session) {
	c.mu.Lock()
	c.sess = s
	c.mu.Unlock()
}

func (c *Client) session() *session {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sess
}

// Bound reports whether a session is bound now.
func (c *Client) Bound() bool {
	s := c.session()
	return s != nil && s.open()
}

// Submit sends s and returns the SMSC's message id (NormalizeMessageID).
// It returns ErrNotBound at once when there is no session, blocks while
// the window is full, and returns ErrTimeout (or ErrSessionLost) when the
// response does not come: the SMSC may have accepted the message.
func (c *Client) Submit(ctx context.Context, s Submit) (string, error) {
	body, err := submitBody(s)
	if err != nil {
		return "", err
	}
	sess := c.session()
	if sess == nil {
		return "", ErrNotBound
	}
	resp, err := sess.request(ctx, wire.SubmitSM, body, true)
	if err != nil {
		return "", fmt.Errorf("smppout: submit_sm to %s: %w", s.Dest, err)
	}
	if resp.Status != 0 {
		return "", fmt.Errorf("smppout: submit_sm to %s: %w", s.Dest, &StatusError{Status: resp.Status})
	}
	id, err := wire.ParseMessageID(resp.Body)
	if err != nil {
		return "", fmt.Errorf("smppout: submit_sm_resp: %w", err)
	}
	return NormalizeMessageID(id), nil
}
