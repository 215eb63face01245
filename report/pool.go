package report

import (
	"crypto/tls"
	"net"
	"sync"
	"time"

	"github.com/emersion/go-smtp"
)

// Pool defaults (PoolConfig's zero values).
const (
	// DefaultMaxIdle matches bridge.Config.ReportWorkers' default: each
	// worker can find a connection waiting.
	DefaultMaxIdle = 32
	// DefaultIdleTimeout is longer than Postfix's
	// smtp_connection_cache_time_limit (2 s), for a trickle of reports,
	// and well below the 5 minutes a server waits for a command (RFC 5321
	// §4.5.3.2.7), so the server rarely closes a connection first.
	DefaultIdleTimeout = 30 * time.Second
	// DefaultMaxMails retires a connection with QUIT, as Postfix's
	// smtp_connection_reuse_count_limit can, so one session does not hold
	// the server's per-connection state (and its limits) for ever.
	DefaultMaxMails = 1000
)

// quitTimeout bounds the QUIT that retires a connection: its reply
// changes nothing, so it is not worth waiting long for.
const quitTimeout = 5 * time.Second

// PoolConfig bounds a Pool. Zero values are the defaults.
type PoolConfig struct {
	MaxIdle     int           // idle connections kept, over all servers; 0: DefaultMaxIdle; < 0: none
	IdleTimeout time.Duration // an idle connection older than this is closed with QUIT; 0: DefaultIdleTimeout
	MaxMails    int           // transactions on one connection before QUIT; 0: DefaultMaxMails
}

// Pool keeps SMTP's connections open between reports, like Postfix's
// connection cache: after a successful transaction the connection, still
// greeted, upgraded to TLS and authenticated, waits for the next report
// to the same server. It bounds the idle connections (not the busy ones:
// the caller's workers do that; past MaxIdle the connection idle longest
// goes), closes those idle longer than IdleTimeout with QUIT, and retires
// a connection with QUIT after MaxMails.
//
// Connections are kept apart by everything that makes a session: the
// address, the EHLO name, the TLS mode and configuration, the
// credentials. So SMTP values that differ share one Pool safely, and a
// connection made under TLSRequired only ever serves TLSRequired.
//
// A Pool is safe for concurrent use. Close it when done.
type Pool struct {
	cfg PoolConfig

	mu     sync.Mutex
	idle   map[poolKey][]*conn // per server, most recently used last
	n      int                 // idle connections in all lists
	timer  *time.Timer         // reaps expired idle connections
	armed  bool                // timer is pending
	closed bool
}

// NewPool returns an empty Pool.
func NewPool(cfg PoolConfig) *Pool {
	if cfg.MaxIdle == 0 {
		cfg.MaxIdle = DefaultMaxIdle
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.MaxMails == 0 {
		cfg.MaxMails = DefaultMaxMails
	}
	return &Pool{cfg: cfg, idle: map[poolKey][]*conn{}}
}

// poolKey is what a connection was set up with.
type poolKey struct {
	addr, helo     string
	mode           TLSMode
	tlsConfig      *tls.Config
	user, password string
}

func (s SMTP) poolKey() poolKey {
	return poolKey{s.Addr, s.helo(), s.TLS, s.TLSConfig, s.Username, s.Password}
}

// conn is a session ready for MAIL FROM: greeted, upgraded to TLS as the
// mode said, authenticated.
type conn struct {
	raw   net.Conn // the TCP connection: closing it aborts the session
	c     *smtp.Client
	tls   bool
	mails int       // transactions completed
	since time.Time // idle since

	cmdTimeout, submissionTimeout time.Duration // go-smtp's defaults
}

// bound limits the client's timeouts to deadline d, if ok.
func (cn *conn) bound(d time.Time, ok bool) {
	cn.c.CommandTimeout, cn.c.SubmissionTimeout = cn.cmdTimeout, cn.submissionTimeout
	if ok {
		cn.c.CommandTimeout = min(cn.c.CommandTimeout, time.Until(d))
		cn.c.SubmissionTimeout = min(cn.c.SubmissionTimeout, time.Until(d))
	}
}

// quit ends the session politely within timeout. Its reply changes
// nothing: the connection is closed either way.
func (cn *conn) quit(timeout time.Duration) {
	cn.c.CommandTimeout = timeout
	cn.c.Quit()
	cn.c.Close()
}

// get takes the most recently used idle connection for k (the older ones
// then age out when fewer are needed), or returns nil. A nil Pool has
// none.
func (p *Pool) get(k poolKey) *conn {
	if p == nil {
		return nil
	}
	p.mu.Lock()
	cn, stale := p.pop(k)
	p.mu.Unlock()
	if len(stale) > 0 {
		go quitAll(stale)
	}
	return cn
}

// pop is get under p.mu; stale are the connections it dropped.
func (p *Pool) pop(k poolKey) (_ *conn, stale []*conn) {
	list := p.idle[k]
	for len(list) > 0 {
		cn := list[len(list)-1]
		list[len(list)-1] = nil
		list = list[:len(list)-1]
		p.n--
		switch {
		case time.Since(cn.since) >= p.cfg.IdleTimeout: // the reaper is late
			stale = append(stale, cn)
		case k.mode == TLSRequired && !cn.tls: // cannot happen: a required preface fails without TLS
			stale = append(stale, cn)
		default:
			p.setList(k, list)
			return cn, stale
		}
	}
	p.setList(k, list)
	return nil, stale
}

func (p *Pool) setList(k poolKey, list []*conn) {
	if len(list) == 0 {
		delete(p.idle, k)
		return
	}
	p.idle[k] = list
}

// retires reports whether cn is not to be kept: there is no Pool, it
// keeps nothing, or cn has served MaxMails.
func (p *Pool) retires(cn *conn) bool {
	return p == nil || p.cfg.MaxIdle < 0 || cn.mails >= p.cfg.MaxMails
}

// put keeps cn idle for k; when MaxIdle are idle already, the one idle
// longest goes (with QUIT). It reports false, leaving cn to the caller,
// when the Pool is closed.
func (p *Pool) put(k poolKey, cn *conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	if p.n >= p.cfg.MaxIdle {
		go quitAll([]*conn{p.evict()})
	}
	cn.since = time.Now()
	p.idle[k] = append(p.idle[k], cn)
	p.n++
	if !p.armed {
		if p.timer == nil {
			p.timer = time.AfterFunc(p.cfg.IdleTimeout, p.reap)
		} else {
			p.timer.Reset(p.cfg.IdleTimeout)
		}
		p.armed = true
	}
	return true
}

// evict takes out the connection idle longest; p.n > 0. Each list is in
// the order its connections went idle.
func (p *Pool) evict() *conn {
	var oldest poolKey
	var found *conn
	for k, list := range p.idle {
		if found == nil || list[0].since.Before(found.since) {
			oldest, found = k, list[0]
		}
	}
	list := p.idle[oldest]
	list[0] = nil
	p.setList(oldest, list[1:])
	p.n--
	return found
}

// reap closes, with QUIT, the connections idle for IdleTimeout, and
// arms the timer for the next to expire.
func (p *Pool) reap() {
	p.mu.Lock()
	var old []*conn
	var next time.Time
	now := time.Now()
	for k, list := range p.idle {
		keep := list[:0]
		for _, cn := range list {
			exp := cn.since.Add(p.cfg.IdleTimeout)
			if !now.Before(exp) {
				old = append(old, cn)
				continue
			}
			keep = append(keep, cn)
			if next.IsZero() || exp.Before(next) {
				next = exp
			}
		}
		clear(list[len(keep):])
		p.setList(k, keep)
	}
	p.n -= len(old)
	p.armed = false
	if !next.IsZero() && !p.closed {
		p.timer.Reset(next.Sub(now))
		p.armed = true
	}
	p.mu.Unlock()
	quitAll(old)
}

// Close says QUIT on the idle connections and closes them. Connections
// busy with a report are closed when it ends; Sends go on working,
// without keeping connections.
func (p *Pool) Close() error {
	p.mu.Lock()
	p.closed = true
	if p.timer != nil {
		p.timer.Stop()
	}
	var all []*conn
	for _, list := range p.idle {
		all = append(all, list...)
	}
	p.idle, p.n, p.armed = map[poolKey][]*conn{}, 0, false
	p.mu.Unlock()
	quitAll(all)
	return nil
}

// idleConns counts the idle connections (for tests).
func (p *Pool) idleConns() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n
}

// quitAll retires conns at once, each within quitTimeout.
func quitAll(conns []*conn) {
	var wg sync.WaitGroup
	for _, cn := range conns {
		wg.Go(func() { cn.quit(quitTimeout) })
	}
	wg.Wait()
}
