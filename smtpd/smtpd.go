// Package smtpd is smsbridge's SMTP front door: it judges each envelope,
// converts the mail into SMS segments and answers 250 only once every
// recipient's record is committed to the store.
package smtpd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/smsbridge/smsbridge/convert"
	"github.com/smsbridge/smsbridge/store"
)

// Config is the front door's policy.
type Config struct {
	Hostname        string   // for the greeting and EHLO
	Domains         []string // SMS domains we accept mail for
	DefaultRegion   string   // ISO 3166 region for numbers without a country code
	TrustedNetworks []netip.Prefix
	MaxMessageBytes int64         // SIZE; default 10 MiB
	MaxRecipients   int           // per mail; default 100
	ReadTimeout     time.Duration // per command, and for the whole DATA; default 10 min
	WriteTimeout    time.Duration // default 1 min
	CommitTimeout   time.Duration // bound on the store commit after DATA; default 30 s
	Convert         convert.Options
}

func (c *Config) setDefaults() {
	if c.Hostname == "" {
		c.Hostname = "localhost"
	}
	if c.DefaultRegion == "" {
		c.DefaultRegion = "US"
	}
	if c.MaxMessageBytes == 0 {
		c.MaxMessageBytes = 10 << 20
	}
	if c.MaxRecipients == 0 {
		c.MaxRecipients = 100
	}
	// go-smtp arms ReadTimeout once per command, so it bounds all of DATA:
	// it must be minutes, not seconds (libraries.md).
	if c.ReadTimeout == 0 {
		c.ReadTimeout = 10 * time.Minute
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = time.Minute
	}
	if c.CommitTimeout == 0 {
		c.CommitTimeout = 30 * time.Second
	}
}

// Queue is where accepted mails go. Add must return only after the records
// are durably committed.
type Queue interface {
	Add(ctx context.Context, recs []*store.Record) error
}

// Server is the SMTP listener.
type Server struct {
	cfg Config
	q   Queue
	log *slog.Logger
	srv *smtp.Server
}

// New returns a server that queues into q.
func New(cfg Config, q Queue, log *slog.Logger) *Server {
	cfg.setDefaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{cfg: cfg, q: q, log: log}
	srv := smtp.NewServer(s)
	srv.Domain = cfg.Hostname
	srv.MaxMessageBytes = cfg.MaxMessageBytes
	srv.MaxRecipients = cfg.MaxRecipients
	srv.ReadTimeout = cfg.ReadTimeout
	srv.WriteTimeout = cfg.WriteTimeout
	srv.ErrorLog = slogAdapter{log}
	s.srv = srv
	return s
}

// Serve accepts connections on l until Shutdown or Close.
func (s *Server) Serve(l net.Listener) error {
	err := s.srv.Serve(l)
	if errors.Is(err, smtp.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops accepting connections and waits for sessions to end, or
// for ctx to be done, after which it closes them.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	if err != nil {
		s.srv.Close()
	}
	return err
}

// NewSession implements smtp.Backend.
func (s *Server) NewSession(c *smtp.Conn) (smtp.Session, error) {
	return &session{srv: s, remote: remoteAddr(c), helo: c.Hostname()}, nil
}

func (s *Server) trusted(a netip.Addr) bool {
	for _, p := range s.cfg.TrustedNetworks {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func remoteAddr(c *smtp.Conn) netip.Addr {
	ap, err := netip.ParseAddrPort(c.Conn().RemoteAddr().String())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// slogAdapter routes go-smtp's internal error log to slog.
type slogAdapter struct{ log *slog.Logger }

func (a slogAdapter) Printf(format string, v ...any) {
	a.log.Warn("smtp server", "detail", fmt.Sprintf(format, v...))
}

func (a slogAdapter) Println(v ...any) {
	a.log.Warn("smtp server", "detail", fmt.Sprint(v...))
}
