// Package smtpd is smsbridge's SMTP front door: it judges each envelope,
// converts the mail into SMS segments and answers 250 only once every
// recipient's record is committed to the store.
//
// It is meant to face the internet: STARTTLS or implicit TLS, AUTH only
// over TLS against a users file, no relaying, limits on connections,
// errors, rates and quotas, and a refusal of bare line ends that stops
// SMTP smuggling. The replies and when they are given are listed in
// replies.go.
package smtpd

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/smsbridge/smsbridge/convert"
	"github.com/smsbridge/smsbridge/smtpd/ratelimit"
	"github.com/smsbridge/smsbridge/smtpd/users"
	"github.com/smsbridge/smsbridge/store"
)

// Config is the front door's policy. Zero values mean the defaults given
// beside each field; limits that default to 0 are off.
type Config struct {
	Hostname      string   // for the greeting and EHLO; default "localhost"
	Domains       []string // SMS domains we accept mail for
	DefaultRegion string   // ISO 3166 region for numbers without a country code; default "US"

	// PostmasterDir is the maildir where mail to postmaster@ a domain of
	// ours, or to <Postmaster>, is kept (RFC 5321 §4.5.1; see
	// postmaster.go). Empty: such mail is refused like any address that
	// is not a number.
	PostmasterDir string

	// TLS enables STARTTLS on Serve and is required by ServeTLS. Versions
	// below TLS 1.2 are refused whatever it says. See LoadTLS, SelfSigned.
	TLS *tls.Config

	// Users may AUTH (PLAIN or LOGIN, only over TLS); nil: AUTH is off.
	Users *users.DB

	// TrustedNetworks may send without AUTH; if TrustedSenders is set,
	// only with an envelope sender matching one of them (patterns as in
	// users.SenderAllowed: "a@b.example", "@b.example", "<>"). LMTP clients
	// on a Unix socket are trusted.
	TrustedNetworks []netip.Prefix
	TrustedSenders  []string

	MaxMessageBytes int64 // SIZE; default 10 MiB
	MaxRecipients   int   // per mail; default 100
	// MaxLineLength bounds every line, commands and message alike: go-smtp
	// closes on a longer command line; a longer message line gets 552
	// after the end of data, and the session goes on. RFC 5321 says 1000
	// octets, but generated HTML often has longer lines; default 10,000.
	MaxLineLength int

	MaxConnections      int // open at once; default 100, -1 for no limit
	MaxConnectionsPerIP int // open at once per client (IPv4 address or IPv6 /64); default 10, -1 for no limit
	MaxErrors           int // refusals in one session before 421 and hang-up; default 20, -1 for no limit

	// ReadTimeout is go-smtp's: it bounds each command and the whole DATA
	// transfer; default 10 min. IdleTimeout bounds each wait for bytes from
	// the client, in DATA too; default 5 min.
	ReadTimeout   time.Duration
	IdleTimeout   time.Duration
	WriteTimeout  time.Duration // default 1 min
	CommitTimeout time.Duration // bound on the store commit after DATA; default 30 s

	// Destinations: numbers starting with a DenyPrefixes entry are refused;
	// if AllowPrefixes is set, numbers must start with one of them.
	// Prefixes are E.164: "+" and digits ("+1900", "+49").
	AllowPrefixes []string
	DenyPrefixes  []string
	// MobileOnly refuses at RCPT (550 5.1.3) numbers that the numbering
	// plan says are fixed lines, toll-free, premium rate and the like.
	MobileOnly bool

	// Rate limits and daily quotas (off while zero). UserLimits apply to
	// each authenticated user, per field unless the users file sets it;
	// IPLimits apply to each client address. Trusted networks are exempt
	// from IPLimits unless LimitTrusted.
	UserLimits   ratelimit.Limits
	IPLimits     ratelimit.Limits
	LimitTrusted bool

	// AUTH failures from one client address within AuthFailWindow (default
	// 1 h): from the AuthSlowAfter-th (default 3) each 535 is delayed by
	// AuthDelay (default 3 s); at AuthMaxFailures (default 10) the client
	// gets 421 4.7.0 and is disconnected, and so is every AUTH from it until
	// the window has passed.
	AuthSlowAfter   int
	AuthMaxFailures int
	AuthDelay       time.Duration
	AuthFailWindow  time.Duration

	Convert convert.Options

	// MaxReturnBytes caps the mail kept with each record for a failure
	// report that returns it whole (RFC 3461 RET=FULL): a larger mail
	// gets its header returned instead. Default 256 KiB; negative: never
	// keep the whole mail.
	MaxReturnBytes int64

	// Now is the clock of rate limits and AUTH failure windows; time.Now
	// by default.
	Now func() time.Time

	// Metrics, if set, count sessions, replies and commits; nil keeps
	// unregistered ones.
	Metrics *Metrics
}

func (c *Config) setDefaults() {
	if c.Metrics == nil {
		c.Metrics = NewMetrics(nil)
	}
	if c.Hostname == "" {
		c.Hostname = "localhost"
	}
	if c.DefaultRegion == "" {
		c.DefaultRegion = "US"
	}
	def := func(p *int, v int) {
		if *p == 0 {
			*p = v
		}
	}
	defDur := func(p *time.Duration, v time.Duration) {
		if *p == 0 {
			*p = v
		}
	}
	if c.MaxMessageBytes == 0 {
		c.MaxMessageBytes = 10 << 20
	}
	if c.MaxReturnBytes == 0 {
		c.MaxReturnBytes = DefaultMaxReturnBytes
	}
	def(&c.MaxRecipients, 100)
	def(&c.MaxLineLength, 10000)
	def(&c.MaxConnections, 100)
	def(&c.MaxConnectionsPerIP, 10)
	def(&c.MaxErrors, 20)
	def(&c.AuthSlowAfter, 3)
	def(&c.AuthMaxFailures, 10)
	// go-smtp arms ReadTimeout once per command, so it bounds all of DATA:
	// it must be minutes, not seconds (libraries.md).
	defDur(&c.ReadTimeout, 10*time.Minute)
	defDur(&c.IdleTimeout, 5*time.Minute)
	defDur(&c.WriteTimeout, time.Minute)
	defDur(&c.CommitTimeout, 30*time.Second)
	defDur(&c.AuthDelay, 3*time.Second)
	defDur(&c.AuthFailWindow, time.Hour)
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.TLS != nil {
		c.TLS = c.TLS.Clone()
		if c.TLS.MinVersion < tls.VersionTLS12 {
			c.TLS.MinVersion = tls.VersionTLS12
		}
	}
}

// DefaultMaxReturnBytes is the default of Config.MaxReturnBytes.
const DefaultMaxReturnBytes = 256 << 10

// Validate reports settings that cannot work.
func (c *Config) Validate() error {
	if len(c.Domains) == 0 {
		return errors.New("smtpd: no SMS domains")
	}
	for _, p := range append(append([]string{}, c.AllowPrefixes...), c.DenyPrefixes...) {
		if err := users.CheckPrefix(p); err != nil {
			return fmt.Errorf("smtpd: %w", err)
		}
	}
	for _, p := range c.TrustedSenders {
		if err := users.CheckSenderPattern(p); err != nil {
			return fmt.Errorf("smtpd: trusted senders: %w", err)
		}
	}
	return nil
}

// Queue is where accepted mails go. Add must return only after the records
// are durably committed.
type Queue interface {
	Add(ctx context.Context, recs []*store.Record) error
}

// Server is the SMTP (and LMTP) listener.
type Server struct {
	cfg     Config
	q       Queue
	log     *slog.Logger
	smtp    *smtp.Server
	lmtp    *smtp.Server
	users   atomic.Pointer[users.DB]
	pol     atomic.Pointer[Policy]
	numbers numberCache
	rate    *ratelimit.Limiter
	auth    *authGuard
	sleep   func(time.Duration) // AUTH slow-down; replaced in tests

	refusing chan struct{} // bounds goroutines answering refused clients

	mu        sync.Mutex
	draining  bool
	live      map[*conn]struct{}
	perIP     map[string]int
	idle      chan struct{} // closed when live empties during Shutdown
	listeners []net.Listener
	guards    []*guardListener
}

// New returns a server that queues into q.
func New(cfg Config, q Queue, log *slog.Logger) *Server {
	cfg.setDefaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		cfg: cfg, q: timedQueue{q, cfg.Metrics}, log: log,
		rate:     ratelimit.New(cfg.Now),
		auth:     newAuthGuard(cfg.Now, cfg.AuthFailWindow),
		sleep:    time.Sleep,
		refusing: make(chan struct{}, 64),
		live:     make(map[*conn]struct{}),
		perIP:    make(map[string]int),
	}
	s.users.Store(cfg.Users)
	s.pol.Store(cfg.policy())
	s.smtp = s.newSMTP(false)
	s.lmtp = s.newSMTP(true)
	return s
}

func (s *Server) newSMTP(lmtp bool) *smtp.Server {
	proto := map[bool]string{false: "smtp", true: "lmtp"}[lmtp]
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		s.cfg.Metrics.sessions.WithLabelValues(proto).Inc()
		return metered{s.newSession(c, lmtp), s.cfg.Metrics}, nil
	}))
	srv.LMTP = lmtp
	srv.Domain = s.cfg.Hostname
	srv.MaxMessageBytes = s.cfg.MaxMessageBytes
	srv.MaxRecipients = s.cfg.MaxRecipients
	srv.MaxLineLength = s.cfg.MaxLineLength
	srv.ReadTimeout = s.cfg.ReadTimeout
	srv.WriteTimeout = s.cfg.WriteTimeout
	srv.EnableSMTPUTF8 = true
	srv.EnableDSN = true // RFC 3461: NOTIFY, ORCPT, RET, ENVID (see dsn.go)
	if !lmtp {
		srv.TLSConfig = s.cfg.TLS
	}
	// go-smtp would answer AUTH without TLS with "523 5.7.10" (not a valid
	// code) and never ask us. We let AUTH through, advertise it only over
	// TLS (AuthMechanisms) and answer 538 5.7.11 ourselves (RFC 4954).
	srv.AllowInsecureAuth = true
	srv.ErrorLog = slogAdapter{s.log}
	return srv
}

// SetUsers replaces the users (for a reload); nil turns AUTH off.
func (s *Server) SetUsers(db *users.DB) { s.users.Store(db) }

// Serve accepts SMTP connections on l, with STARTTLS if Config.TLS is set,
// until Shutdown.
func (s *Server) Serve(l net.Listener) error { return s.serve(l, s.smtp, false) }

// ServeTLS accepts implicit-TLS SMTP connections (port 465, RFC 8314) on a
// plain TCP listener l: the server does the handshake with Config.TLS.
func (s *Server) ServeTLS(l net.Listener) error {
	if s.cfg.TLS == nil {
		return errors.New("smtpd: ServeTLS needs Config.TLS")
	}
	return s.serve(l, s.smtp, true)
}

// ServeLMTP accepts LMTP connections (RFC 2033) on l, for an MTA in front:
// each recipient gets its own reply after DATA. The same policy applies:
// clients must be on a trusted network (or a Unix socket).
func (s *Server) ServeLMTP(l net.Listener) error { return s.serve(l, s.lmtp, false) }

func (s *Server) serve(l net.Listener, srv *smtp.Server, implicitTLS bool) error {
	g := &guardListener{Listener: l, srv: s, implicitTLS: implicitTLS, closed: make(chan struct{})}
	s.mu.Lock()
	if s.draining {
		s.mu.Unlock()
		l.Close()
		return nil
	}
	s.listeners = append(s.listeners, l)
	s.guards = append(s.guards, g)
	s.mu.Unlock()
	err := srv.Serve(g)
	if errors.Is(err, smtp.ErrServerClosed) || errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

// Shutdown stops taking mail: new clients get 421 4.3.2, sessions waiting
// for a command are closed with a 421, and sessions receiving a message
// finish it (their reply is given) and are closed. It returns when every
// session has ended, or when ctx is done, after which it closes them.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.draining = true
	for _, g := range s.guards {
		g.Close()
	}
	var idle chan struct{}
	if len(s.live) > 0 {
		s.idle = make(chan struct{})
		idle = s.idle
	}
	conns := make([]*conn, 0, len(s.live))
	for c := range s.live {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.drain()
	}
	var err error
	if idle != nil {
		select {
		case <-idle:
		case <-ctx.Done():
			err = ctx.Err()
		}
	}
	s.mu.Lock()
	for _, l := range s.listeners {
		l.Close()
	}
	for c := range s.live {
		c.Conn.Close()
	}
	s.mu.Unlock()
	s.smtp.Close()
	s.lmtp.Close()
	return err
}

func (s *Server) isDraining() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.draining
}

func (s *Server) trusted(a netip.Addr) bool {
	for _, p := range s.cfg.TrustedNetworks {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// slogAdapter routes go-smtp's internal error log to slog: at WARN, but a
// client that went away (a reset, a broken pipe, a closed connection) is
// the client's business, logged at DEBUG.
type slogAdapter struct{ log *slog.Logger }

func (a slogAdapter) Printf(format string, v ...any) { a.print(fmt.Sprintf(format, v...)) }

func (a slogAdapter) Println(v ...any) { a.print(fmt.Sprint(v...)) }

func (a slogAdapter) print(detail string) {
	level := slog.LevelWarn
	if clientGone(detail) {
		level = slog.LevelDebug
	}
	a.log.Log(context.Background(), level, "smtp server", "detail", detail)
}

func clientGone(detail string) bool {
	for _, s := range []string{"broken pipe", "connection reset by peer", "use of closed network connection"} {
		if strings.Contains(detail, s) {
			return true
		}
	}
	return false
}
