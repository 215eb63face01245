package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/sync/errgroup"

	"github.com/smsbridge/smsbridge/admin"

	"github.com/smsbridge/smsbridge/bridge"
	"github.com/smsbridge/smsbridge/report"
	"github.com/smsbridge/smsbridge/smppout"
	"github.com/smsbridge/smsbridge/smppout/smsctest"
	"github.com/smsbridge/smsbridge/smtpd"
	"github.com/smsbridge/smsbridge/smtpd/ratelimit"
	"github.com/smsbridge/smsbridge/smtpd/users"
	"github.com/smsbridge/smsbridge/store"
)

// demoSystemID and demoPassword bind to the built-in simulator.
const (
	demoSystemID = "smsbridge"
	demoPassword = "demo"
)

// app is one running smsbridge: every component, wired.
type app struct {
	cfg          Config
	demo         bool // the SMSC is our own simulator
	log          *slog.Logger
	st           *store.Store
	sim          *smsctest.Server // demo mode only
	rs           routeSet         // the SMPP clients, one per route
	tps          tpsMeter
	bridge       *bridge.Bridge
	smtp         *smtpd.Server
	reloadConfig func() (Config, error) // what SIGHUP reads; nil: no reload
	smarthostTLS *tls.Config
	reportPool   *report.Pool // smarthost connections kept between reports; nil without a smarthost
	smtpdCfg     smtpd.Config
	smtpL        net.Listener
	smtpsL       net.Listener // implicit TLS, optional
	lmtpL        net.Listener // optional
	adminL       net.Listener
	reg          *prometheus.Registry
}

// newApp opens the store and the listeners; run starts the work.
func newApp(cfg Config, log *slog.Logger) (_ *app, err error) {
	a := &app{cfg: cfg, demo: cfg.demo(), log: log}
	defer func() {
		if err != nil {
			a.close() // whatever was opened before the error
		}
	}()
	if cfg.demo() {
		if err := a.startSimulator(); err != nil {
			return nil, err
		}
	} else {
		log.Info("smsbridge starting", "smsc", cfg.SMSC.Addr, "smtp", cfg.SMTPAddr)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	dedup := cfg.Store.DedupWindow.Duration
	if dedup == 0 {
		dedup = -1 // the store's "off"
	}
	a.st, err = store.Open(filepath.Join(cfg.DataDir, "smsbridge.db"), store.Options{
		Retention:    cfg.Store.Retention.Duration,
		DedupWindow:  dedup,
		ParkedMaxAge: cfg.Store.ParkedMaxAge.Duration,
		Dropped: func(rc store.Receipt, parkedAt time.Time) {
			a.log.Warn("receipt for an unknown SMSC id dropped", "smsc_id", rc.SMSCID, "stat", rc.Stat,
				"err", rc.Err, "parked_at", parkedAt)
		},
	})
	if err != nil {
		return nil, err
	}
	if err := a.loadSmarthostCA(); err != nil {
		return nil, err
	}
	a.smtpdCfg = cfg.smtpdConfig()
	if err := a.loadSMTPFiles(&a.smtpdCfg); err != nil {
		return nil, err
	}
	a.wire()
	if a.smtpL, err = net.Listen("tcp", cfg.SMTPAddr); err != nil {
		return nil, fmt.Errorf("smtp listener: %w", err)
	}
	if cfg.SMTP.SMTPSAddr != "" {
		if a.smtpdCfg.TLS == nil {
			return nil, errors.New("smtp.smtps_addr needs smtp.tls_cert and smtp.tls_key")
		}
		if a.smtpsL, err = net.Listen("tcp", cfg.SMTP.SMTPSAddr); err != nil {
			return nil, fmt.Errorf("smtps listener: %w", err)
		}
	}
	if cfg.SMTP.LMTPAddr != "" {
		if a.lmtpL, err = listen(cfg.SMTP.LMTPAddr); err != nil {
			return nil, fmt.Errorf("lmtp listener: %w", err)
		}
	}
	if cfg.AdminAddr != "" {
		if a.adminL, err = net.Listen("tcp", cfg.AdminAddr); err != nil {
			return nil, fmt.Errorf("admin listener: %w", err)
		}
	}
	return a, nil
}

// startSimulator is demo mode: an SMSC on loopback that delivers every
// number and sends receipts, so one machine shows the whole path.
func (a *app) startSimulator() error {
	a.log.Info("smsbridge starting in DEMO MODE: no --smsc given, SMS go to the built-in SMSC simulator",
		"smtp", a.cfg.SMTPAddr)
	a.sim = smsctest.New(smsctest.Config{
		SystemID:     demoSystemID,
		Password:     demoPassword,
		ReceiptDelay: time.Second,
		MaxMessages:  10000, // a demo that runs for days must not grow without end
		Log:          a.log.With("component", "smsc-simulator"),
	})
	if err := a.sim.Start("127.0.0.1:0"); err != nil {
		return fmt.Errorf("smsc simulator: %w", err)
	}
	a.cfg.SMSC.Addr = a.sim.Addr()
	a.cfg.SMSC.SystemID, a.cfg.SMSC.Password = demoSystemID, demoPassword
	return nil
}

func (a *app) wire() {
	cfg := a.cfg
	a.reg = prometheus.NewRegistry()
	a.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		admin.NewCollector(a.st, a.routes))
	host := cfg.hostname()
	a.rs.apply(a, a.cfg)
	routes := a.rs.bridgeRoutes(a.cfg, a.smtpdCfg.Convert)
	out := a.reportSender(host)
	reportSuccess := a.demo
	if cfg.ReportSuccess != nil {
		reportSuccess = *cfg.ReportSuccess
	}
	postmaster := cfg.Postmaster
	if postmaster == "" {
		postmaster = "postmaster@" + host
	}
	a.bridge = bridge.New(bridge.Config{
		SourceAddr:     cfg.SourceAddr,
		RetryMin:       cfg.Retry.Min.Duration,
		RetryMax:       cfg.Retry.Max.Duration,
		Validity:       cfg.Retry.Validity.Duration,
		MaxAttempts:    cfg.Retry.MaxAttempts,
		Workers:        a.windows(),
		ReportingMTA:   host,
		Postmaster:     postmaster,
		ReportSuccess:  reportSuccess,
		ReportFailures: cfg.ReportFailures,
		ReportDelays:   cfg.ReportDelays,
		DelayAfter:     cfg.ReportDelayAfter.Duration,
		ReportGiveUp:   cfg.ReportGiveUp.Duration,
		GroupReports:   cfg.ReportGroup,
		Metrics:        bridge.NewMetrics(a.reg),
	}, a.st, routes, out, a.log.With("component", "bridge"))
	a.smtpdCfg.Metrics = smtpd.NewMetrics(a.reg)
	a.smtp = smtpd.New(a.smtpdCfg, a.st, a.log.With("component", "smtpd"))
}

// smtpdConfig is the front door's configuration, without TLS and users,
// which need files read (see loadSMTPFiles).
func (c *Config) smtpdConfig() smtpd.Config {
	trusted, _ := c.trustedPrefixes() // validated before
	sc := c.SMTP
	lim := func(l Limits) ratelimit.Limits {
		return ratelimit.Limits{
			MessagesPerMinute: l.MessagesPerMinute, MessagesPerHour: l.MessagesPerHour, MessagesPerDay: l.MessagesPerDay,
			SegmentsPerMinute: l.SegmentsPerMinute, SegmentsPerHour: l.SegmentsPerHour, SegmentsPerDay: l.SegmentsPerDay,
		}
	}
	return smtpd.Config{
		Hostname:            c.hostname(),
		Domains:             c.Domains,
		DefaultRegion:       c.DefaultRegion,
		PostmasterDir:       filepath.Join(c.DataDir, "postmaster"),
		TrustedNetworks:     trusted,
		TrustedSenders:      sc.TrustedSenders,
		MaxMessageBytes:     sc.MaxMessageBytes,
		MaxReturnBytes:      sc.MaxReturnBytes,
		MaxRecipients:       sc.MaxRecipients,
		MaxLineLength:       sc.MaxLineLength,
		MaxConnections:      sc.MaxConnections,
		MaxConnectionsPerIP: sc.MaxConnectionsPerIP,
		MaxErrors:           sc.MaxErrors,
		IdleTimeout:         sc.IdleTimeout.Duration,
		AllowPrefixes:       c.routablePrefixes(),
		MobileOnly:          sc.MobileOnly,
		DenyPrefixes:        sc.DenyPrefixes,
		UserLimits:          lim(sc.UserLimits),
		IPLimits:            lim(sc.IPLimits),
		LimitTrusted:        sc.LimitTrusted,
		Convert:             c.convertOptions(),
	}
}

// loadSMTPFiles reads the TLS certificate (or makes a self-signed one in
// demo mode) and the users file into sc.
func (a *app) loadSMTPFiles(sc *smtpd.Config) error {
	c := a.cfg.SMTP
	switch {
	case c.TLSCert != "" || c.TLSKey != "":
		t, err := smtpd.LoadTLS(c.TLSCert, c.TLSKey)
		if err != nil {
			return fmt.Errorf("smtp tls: %w", err)
		}
		sc.TLS = t
	case a.demo:
		t, err := smtpd.SelfSigned([]string{sc.Hostname, "localhost", "127.0.0.1"})
		if err != nil {
			return fmt.Errorf("smtp tls: %w", err)
		}
		sc.TLS = t
	}
	if c.UsersFile != "" {
		db, err := users.Load(c.UsersFile)
		if err != nil {
			return err
		}
		sc.Users = db
	}
	return nil
}

// listen opens "host:port", or "unix:/path" for a Unix socket.
func listen(addr string) (net.Listener, error) {
	if path, ok := strings.CutPrefix(addr, "unix:"); ok {
		os.Remove(path) // a stale socket from a previous run
		return net.Listen("unix", path)
	}
	return net.Listen("tcp", addr)
}

// run serves until ctx is done, then shuts down in the order that loses
// nothing: stop taking mail, finish in-flight submits, unbind, close the store.
func (a *app) run(ctx context.Context) error {
	defer a.close()
	a.log.Info("listening", "smtp", a.smtpL.Addr().String(), "admin", addrOf(a.adminL),
		"domains", a.cfg.Domains, "data_dir", a.cfg.DataDir)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return a.smtp.Serve(a.smtpL) })
	if a.smtpsL != nil {
		g.Go(func() error { return a.smtp.ServeTLS(a.smtpsL) })
	}
	if a.lmtpL != nil {
		g.Go(func() error { return a.smtp.ServeLMTP(a.lmtpL) })
	}
	g.Go(func() error {
		<-gctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		a.smtp.Shutdown(sctx)
		return nil
	})
	g.Go(func() error { return a.rs.run(gctx) })
	g.Go(func() error { return a.bridge.Run(gctx) })
	if a.adminL != nil {
		h := admin.New(admin.Config{
			Token:    a.cfg.AdminToken,
			Routes:   a.routes,
			Ready:    a.rs.anyBound,
			Gatherer: a.reg,
			Pprof:    a.cfg.AdminPprof,
		}, a.st, a.log.With("component", "admin"))
		srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
		g.Go(func() error {
			if err := srv.Serve(a.adminL); !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("admin: %w", err)
			}
			return nil
		})
		g.Go(func() error {
			<-gctx.Done()
			return srv.Close()
		})
	}
	err := g.Wait()
	a.log.Info("smsbridge stopped")
	return err
}

// routes describes the SMSC binds for the admin listener.
func (a *app) routes() []admin.RouteStatus {
	var out []admin.RouteStatus
	for _, r := range a.rs.list() {
		st := r.cl.Stats()
		out = append(out, admin.RouteStatus{Name: r.name, Addr: r.sc.Addr, Bound: st.Bound > 0,
			Binds: st.Bound, WindowInUse: st.WindowInUse, Submitted: st.Submitted, Throttled: st.Throttled,
			InDoubt: st.InDoubt, Receipts: st.Receipts, MO: st.MO, TPS: a.tps.rate(r.cl, st.Submitted)})
	}
	return out
}

// tpsMeter turns the routes' submit counters into a rate: submits per
// second since the previous look, at least a second ago.
type tpsMeter struct {
	mu    sync.Mutex
	last  map[*smppout.Client]tpsSample // by client: a reload replaces them
	rates map[*smppout.Client]float64
}

type tpsSample struct {
	at time.Time
	n  uint64
}

func (m *tpsMeter) rate(route *smppout.Client, n uint64) float64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.last == nil {
		m.last, m.rates = map[*smppout.Client]tpsSample{}, map[*smppout.Client]float64{}
	}
	now := time.Now()
	prev, ok := m.last[route]
	switch {
	case !ok, n < prev.n:
		m.last[route] = tpsSample{now, n}
	case now.Sub(prev.at) >= time.Second:
		m.rates[route] = float64(n-prev.n) / now.Sub(prev.at).Seconds()
		m.last[route] = tpsSample{now, n}
	}
	return m.rates[route]
}

func (a *app) close() {
	for _, l := range []net.Listener{a.smtpL, a.smtpsL, a.lmtpL} {
		if l != nil {
			l.Close()
		}
	}
	if a.adminL != nil {
		a.adminL.Close()
	}
	if a.st != nil {
		if err := a.st.Close(); err != nil {
			a.log.Error("closing store", "err", err)
		}
	}
	if a.reportPool != nil {
		a.reportPool.Close() // QUIT to the idle smarthost connections
	}
	if a.sim != nil {
		a.sim.Close()
	}
}

func addrOf(l net.Listener) string {
	if l == nil {
		return ""
	}
	return l.Addr().String()
}

func (c *Config) hostname() string {
	if c.Hostname != "" {
		return c.Hostname
	}
	if h, err := os.Hostname(); err == nil && h != "" {
		return h
	}
	return "localhost"
}

func smtpdValidate(c *Config) error {
	sc := c.smtpdConfig()
	return sc.Validate()
}

func tlsFor(sc SMSCConfig) *tls.Config {
	if !sc.TLS {
		return nil
	}
	host, _, _ := net.SplitHostPort(sc.Addr)
	return &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
}

// reload is SIGHUP: it reads the configuration again (reloadConfig) and
// applies what can change while running: the users file, the SMTP policy
// (trusted senders, prefixes, mobile_only, rate limits) and the routes. A
// route whose SMSC settings did not change keeps its binds; a new or
// changed one binds anew; a removed one drains and unbinds. Anything else
// needs a restart, which loses nothing (SIGTERM drains).
func (a *app) reload() {
	if a.reloadConfig == nil {
		return
	}
	c, err := a.reloadConfig()
	if err != nil {
		a.log.Error("reload: configuration kept as it was", "err", err)
		return
	}
	if c.SMTP.UsersFile != "" {
		db, err := users.Load(c.SMTP.UsersFile)
		if err != nil {
			a.log.Error("reload: users file kept as it was", "err", err)
		} else {
			a.smtp.SetUsers(db)
		}
	}
	sc := c.smtpdConfig()
	pol := smtpd.Policy{TrustedSenders: sc.TrustedSenders, AllowPrefixes: sc.AllowPrefixes, DenyPrefixes: sc.DenyPrefixes,
		MobileOnly: sc.MobileOnly, UserLimits: sc.UserLimits, IPLimits: sc.IPLimits, LimitTrusted: sc.LimitTrusted}
	if err := a.smtp.SetPolicy(pol); err != nil {
		a.log.Error("reload: SMTP policy kept as it was", "err", err)
	}
	if a.demo {
		c.SMSC = a.cfg.SMSC // the simulator stays the default route
	}
	kept, started, stopped := a.rs.apply(a, c)
	a.bridge.SetRoutes(a.rs.bridgeRoutes(c, a.smtpdCfg.Convert))
	a.log.Info("reload: configuration applied", "routes_kept", kept, "routes_started", started, "routes_stopped", stopped)
}

// reportSender is where report mails go: the smarthost, the sender
// domain's MX, or the outbox (the default, and the demo's).
func (a *app) reportSender(host string) report.Sender {
	c := a.cfg
	switch {
	case c.Smarthost != "":
		a.reportPool = report.NewPool(report.PoolConfig{}) // 32 idle, as many as the bridge's report workers
		return report.SMTP{Addr: c.Smarthost, Helo: host, TLS: report.TLSMode(c.SmarthostTLS), TLSConfig: a.smarthostTLS,
			Username: c.SmarthostUsername, Password: c.SmarthostPassword, Pool: a.reportPool}
	case c.ReportDelivery == "mx":
		a.reportPool = report.NewPool(report.PoolConfig{})
		return report.MX{Helo: host, TLS: report.TLSMode(c.SmarthostTLS), Pool: a.reportPool}
	}
	return report.Outbox{Dir: filepath.Join(c.DataDir, "outbox")}
}

// loadSmarthostCA reads the CA bundle that smarthost_tls = "required"
// checks the smarthost against.
func (a *app) loadSmarthostCA() error {
	if a.cfg.SmarthostCA == "" {
		return nil
	}
	pem, err := os.ReadFile(a.cfg.SmarthostCA)
	if err != nil {
		return fmt.Errorf("smarthost_ca: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return fmt.Errorf("smarthost_ca: no PEM certificate in %s", a.cfg.SmarthostCA)
	}
	host, _, _ := net.SplitHostPort(a.cfg.Smarthost)
	a.smarthostTLS = &tls.Config{RootCAs: pool, ServerName: host, MinVersion: tls.VersionTLS12}
	return nil
}

// routablePrefixes is the RCPT allow list: the configured one, or, when no
// route serves every number (no [smsc] address, only [[routes]] with
// prefixes), the routes' prefixes: a number no route serves is refused at
// RCPT (550 5.7.1) instead of waiting in the queue until it expires.
func (c *Config) routablePrefixes() []string {
	if len(c.SMTP.AllowPrefixes) > 0 || c.SMSC.Addr != "" || len(c.Routes) == 0 {
		return c.SMTP.AllowPrefixes
	}
	var ps []string
	for _, r := range c.Routes {
		if len(r.Prefixes) == 0 || slices.Contains(r.Prefixes, "+") {
			return nil // this route serves every number
		}
		ps = append(ps, r.Prefixes...)
	}
	return ps
}

// windows is how many records the dispatcher works on at once: at least
// what the routes' windows take, and at least 128, because a record spends
// most of its time waiting for the store's commits, which many share
// (measured: 128 workers submit twice as fast as 16; BENCHMARKS.md).
func (a *app) windows() int {
	n := 0
	for _, sc := range append([]SMSCConfig{a.cfg.SMSC}, routeSMSCs(a.cfg.Routes)...) {
		n += sc.Window * max(sc.Binds, 1)
	}
	return max(n, 128)
}

func routeSMSCs(rs []RouteConfig) []SMSCConfig {
	out := make([]SMSCConfig, len(rs))
	for i, r := range rs {
		out[i] = r.SMSCConfig
	}
	return out
}
