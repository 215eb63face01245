package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/smsbridge/smsbridge/smppout/smsctest"
)

// benchOptions are the flags of smsbridge bench.
type benchOptions struct {
	slice        time.Duration
	sessions     int
	connPerMail  bool
	noPipelining bool
	size         int
	rcpts        int
	mix          string
	receipts     bool
	receiptDelay time.Duration
	reports      string // sink, outbox, off
	duration     time.Duration
	count        uint64
	warmup       time.Duration
	drain        time.Duration
	rate         float64
	json         bool
	cpuprofile   string
	tracefile    string
	memprofile   string
	config       string
	dataDir      string
	window       int
	binds        int
	logLevel     string

	// external mode
	smtp       string
	admin      string
	adminToken string
	simListen  string
	sinkListen string
}

func parseBenchFlags(args []string, stderr io.Writer) (benchOptions, error) {
	var o benchOptions
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, `usage: smsbridge bench [flags]

Drives SMTP sessions against smsbridge and prints one table: mails/s
accepted, SMS/s submitted, receipts/s, reports/s, DATA→250, DATA→submit_sm
and DATA→report latencies, CPU and RSS.

By default it starts smsbridge, the SMSC simulator and a report sink in
this process (CPU and RSS are then the whole process, load generator
included). With --smtp it targets a running smsbridge instead: give
--admin to read its counters, CPU and RSS from /metrics, --sim-listen to
serve it as its SMSC (the load starts once it has bound), and
--sink-listen to be its smarthost.

With --rate, the sessions' sends are spread evenly over time: each session
sends once per sessions/rate seconds, the sessions a fraction of that
apart.

`)
		fs.PrintDefaults()
	}
	fs.IntVar(&o.sessions, "sessions", 50, "concurrent SMTP sessions")
	fs.BoolVar(&o.connPerMail, "conn-per-mail", false, "one connection per mail (connect, EHLO, mail, QUIT) instead of reusing each session's connection")
	fs.BoolVar(&o.noPipelining, "no-pipelining", false, "wait for each reply instead of pipelining MAIL, RCPT and DATA (RFC 2920)")
	fs.IntVar(&o.size, "size", 0, "mail size in bytes, reached with a base64 attachment (0: the bare text, about 300 bytes)")
	fs.IntVar(&o.rcpts, "rcpts", 1, "recipients per mail")
	fs.StringVar(&o.mix, "mix", "gsm", "texts and weights: gsm (1 SMS), ucs2 (1 SMS), long (3 SMS), e.g. gsm:8,ucs2:1,long:1")
	fs.BoolVar(&o.receipts, "receipts", true, "the simulator sends delivery receipts (off: none at all, records stay submitted)")
	fs.DurationVar(&o.receiptDelay, "receipt-delay", 50*time.Millisecond, "simulator: delay from submit_sm to its receipt")
	fs.StringVar(&o.reports, "reports", "sink", "in-process: where success reports go: sink (an SMTP smarthost in this process), outbox (.eml files), off (report_success off)")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "measuring time after the warm-up")
	fs.DurationVar(&o.slice, "slice", 0, "also give DATA→250 for each slice of the window this long, e.g. 1m, to see when the tail came (0: not)")
	fs.Uint64Var(&o.count, "count", 0, "send this many measured mails instead of running for --duration")
	fs.DurationVar(&o.warmup, "warmup", 2*time.Second, "load before measuring starts")
	fs.DurationVar(&o.drain, "drain", time.Minute, "longest wait, after the load stops, for the last submits, receipts and reports")
	fs.Float64Var(&o.rate, "rate", 0, "target mails/s over all sessions (0: as fast as the server answers)")
	fs.BoolVar(&o.json, "json", false, "print the result as JSON")
	fs.StringVar(&o.cpuprofile, "cpuprofile", "", "write a CPU profile of the measuring window to `file`")
	fs.StringVar(&o.tracefile, "trace", "", "write an execution trace of the measuring window to `file` (go tool trace; -pprof=sched shows where goroutines waited for a CPU)")
	fs.StringVar(&o.memprofile, "memprofile", "", "write an allocation profile at the end of the window to `file`")
	fs.StringVar(&o.config, "config", "", "in-process: the smsbridge config `file` to start from (addresses, SMSC, data dir and reports are the benchmark's)")
	fs.StringVar(&o.dataDir, "data-dir", "", "in-process: data directory (default: a new temporary one, removed at the end)")
	fs.IntVar(&o.window, "window", 0, "in-process: SMPP window (0: the config's)")
	fs.IntVar(&o.binds, "binds", 0, "in-process: SMPP binds (0: the config's)")
	fs.StringVar(&o.logLevel, "log-level", "warn", "in-process: smsbridge's log level")
	fs.StringVar(&o.smtp, "smtp", "", "external: the `host:port` of a running smsbridge")
	fs.StringVar(&o.admin, "admin", "", "external: its admin `URL` (http://127.0.0.1:8025), for counters, CPU and RSS")
	fs.StringVar(&o.adminToken, "admin-token", "", "external: admin bearer token")
	fs.StringVar(&o.simListen, "sim-listen", "", "external: run the SMSC simulator on this `address` (system_id bench, password bench)")
	fs.StringVar(&o.sinkListen, "sink-listen", "", "external: run the report sink (smarthost) on this `address`")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	switch {
	case o.sessions < 1:
		return o, errors.New("--sessions must be at least 1")
	case o.rcpts < 1:
		return o, errors.New("--rcpts must be at least 1")
	case o.count == 0 && o.duration <= 0:
		return o, errors.New("--duration or --count")
	case o.slice != 0 && o.slice < 100*time.Millisecond:
		return o, errors.New("--slice must be 0 or at least 100ms")
	case o.reports != "sink" && o.reports != "outbox" && o.reports != "off":
		return o, fmt.Errorf("--reports %q: sink, outbox or off", o.reports)
	}
	return o, nil
}

func runBench(args []string, stdout, stderr io.Writer) int {
	o, err := parseBenchFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "smsbridge bench:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := runBenchOnce(ctx, o, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "smsbridge bench:", err)
		return 1
	}
	if o.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(res)
	} else {
		res.print(stdout)
	}
	if !res.Complete {
		return 1
	}
	return 0
}

// snapshot is the counters at one moment; -1 where they cannot be known.
type snapshot struct {
	at        time.Time
	accepted  uint64
	submitted int64
	receipts  int64
	reports   int64         // records reported on
	mails     int64         // report mails
	cpu       time.Duration // -1: unknown
	rss       int64
}

// benchResult is what a run measured; the JSON of --json.
type benchResult struct {
	Machine  string  `json:"machine"`
	Mode     string  `json:"mode"` // in-process, external
	Sessions int     `json:"sessions"`
	Conn     string  `json:"connections"` // reused, per-mail
	Pipeline bool    `json:"pipelining"`
	Rcpts    int     `json:"rcpts"`
	Mix      string  `json:"mix"`
	Size     int     `json:"mail_bytes"`
	Receipts string  `json:"receipts"`
	Reports  string  `json:"reports"`
	Rate     float64 `json:"target_rate,omitempty"`

	WarmupS float64 `json:"warmup_s"`
	WindowS float64 `json:"window_s"`
	DrainS  float64 `json:"drain_s"`

	Mails          uint64         `json:"mails_accepted"`
	MailsPerS      float64        `json:"mails_per_s"`
	SMS            int64          `json:"sms_submitted"` // -1: not measured
	SMSPerS        float64        `json:"sms_per_s"`
	ReceiptsN      int64          `json:"receipts_applied"`
	ReceiptsPerS   float64        `json:"receipts_per_s"`
	ReportsN       int64          `json:"records_reported"` // recipients covered by reports
	ReportMails    int64          `json:"report_mails"`     // a report may cover several recipients of one mail
	ReportsPerS    float64        `json:"reports_per_s"`
	EndToEndPerS   float64        `json:"end_to_end_mails_per_s"`
	EndToEndStage  string         `json:"end_to_end_stage"`
	Complete       bool           `json:"complete"` // every accepted mail reached the last stage within --drain
	TotalMails     uint64         `json:"total_mails"`
	TotalSMS       int64          `json:"total_sms"`
	ExpectedSMS    uint64         `json:"expected_sms"`
	TotalReceipts  int64          `json:"total_receipts"`
	TotalReports   int64          `json:"total_reports"`
	SegmentsByText map[string]int `json:"segments_by_text"`

	Data250 latencySummary `json:"data_to_250"`
	// Data250Slices is DATA→250 per --slice of the window, by the time
	// DATA was sent.
	Data250Slices []sliceSummary `json:"data_to_250_slices,omitempty"`
	DataSubmit    latencySummary `json:"data_to_submit_sm"`
	DataReport    latencySummary `json:"data_to_report"`

	TempFail    uint64 `json:"smtp_4xx"`
	PermFail    uint64 `json:"smtp_5xx"`
	IOErrors    uint64 `json:"io_errors"`
	LastError   string `json:"last_error,omitempty"`
	Connections uint64 `json:"connections_made"`

	CPUSeconds float64 `json:"cpu_s"` // -1: unknown
	CPUCores   float64 `json:"cpu_cores"`
	// CPUPerMail is CPUSeconds per mail accepted in the window, in µs: the
	// whole path's cost per mail when the later stages keep up (--rate).
	// It varies less than the rates on a shared machine.
	CPUPerMail float64 `json:"cpu_us_per_mail,omitempty"`
	CPUScope   string  `json:"cpu_scope"`
	RSSMB      float64 `json:"rss_mb"`
	PeakRSSMB  float64 `json:"peak_rss_mb,omitempty"`
}

// benchTarget is what the run drives: the counters it reads and how to
// stop it.
type benchTarget struct {
	addr    string
	snap    func(*snapshot)
	close   func()
	scope   string
	subs    *submitCounter
	sink    *reportSink
	reports bool // reports are expected
	receipt bool // receipts are expected
}

func runBenchOnce(ctx context.Context, o benchOptions, stderr io.Writer) (*benchResult, error) {
	kinds, err := parseMix(o.mix)
	if err != nil {
		return nil, err
	}
	cfg := defaultConfig()
	if o.config != "" {
		if err := loadFile(o.config, &cfg); err != nil {
			return nil, err
		}
	}
	if err := countSegments(kinds, cfg.convertOptions()); err != nil {
		return nil, err
	}
	buildTemplates(kinds, o.size)
	g := newGenerator("", kinds)
	g.rcpts, g.connPerMail, g.pipelining = o.rcpts, o.connPerMail, !o.noPipelining
	g.limit, g.slice = o.count, o.slice
	if o.rate > 0 {
		g.interval = time.Duration(float64(time.Second) * float64(o.sessions) / o.rate)
	}
	g.start = time.Now()

	var t *benchTarget
	if o.smtp == "" {
		t, err = startInProcess(ctx, o, cfg, g, stderr)
	} else {
		t, err = startExternal(o, g)
	}
	if err != nil {
		return nil, err
	}
	defer t.close()
	g.addr = t.addr

	res := &benchResult{
		Machine:  machineName(),
		Mode:     map[bool]string{true: "in-process", false: "external"}[o.smtp == ""],
		Sessions: o.sessions, Conn: map[bool]string{true: "per-mail", false: "reused"}[o.connPerMail],
		Pipeline: !o.noPipelining, Rcpts: o.rcpts, Mix: o.mix, Rate: o.rate,
		Reports: o.reports, CPUScope: t.scope, SegmentsByText: map[string]int{},
	}
	for _, k := range kinds {
		res.SegmentsByText[k.name] = k.segments
	}
	for _, p := range kinds[0].parts {
		res.Size += len(p) + 6 // and a token of about 6 digits
	}
	res.Receipts = "off"
	if t.receipt {
		res.Receipts = "after " + o.receiptDelay.String()
	}
	if o.smtp != "" {
		res.Receipts, res.Reports = "server's", "server's"
	}

	var s0, s1, s2, s3 snapshot
	t.snap(&s0)
	if o.warmup <= 0 {
		s1 = s0
		g.startMeasuring()
	}
	var wg sync.WaitGroup
	for i := range o.sessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			(&session{g: g, phase: phase(i, o.sessions, g.interval)}).run()
		}()
	}
	sessionsDone := make(chan struct{})
	go func() { wg.Wait(); close(sessionsDone) }()
	abort := func() { g.stopping.Store(true); <-sessionsDone }

	select {
	case <-time.After(max(o.warmup, 0)):
	case <-ctx.Done():
		abort()
		return nil, ctx.Err()
	case <-sessionsDone:
		return nil, fmt.Errorf("every session stopped during the warm-up: %s", g.lastErr)
	}
	if o.cpuprofile != "" {
		f, err := os.Create(o.cpuprofile)
		if err != nil {
			abort()
			return nil, err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			abort()
			return nil, err
		}
	}
	if o.tracefile != "" {
		f, err := os.Create(o.tracefile)
		if err != nil {
			abort()
			return nil, err
		}
		defer f.Close()
		if err := trace.Start(f); err != nil {
			abort()
			return nil, err
		}
	}
	if o.warmup > 0 {
		t.snap(&s1)
		g.startMeasuring()
	}

	if o.count > 0 {
		select {
		case <-sessionsDone:
		case <-ctx.Done():
			abort()
		}
	} else {
		select {
		case <-time.After(o.duration):
		case <-ctx.Done():
		case <-sessionsDone:
		}
		g.stopping.Store(true)
	}
	t.snap(&s2)
	if o.cpuprofile != "" {
		pprof.StopCPUProfile()
	}
	if o.tracefile != "" {
		trace.Stop()
	}
	if o.memprofile != "" {
		if err := writeHeapProfile(o.memprofile); err != nil {
			fmt.Fprintln(stderr, "smsbridge bench: memprofile:", err)
		}
	}
	<-sessionsDone

	// Drain: wait until every accepted mail went through the last stage.
	deadline := time.Now().Add(o.drain)
	stage := "accepted"
	switch {
	case t.reports:
		stage = "reported"
	case t.receipt && s0.receipts >= 0:
		stage = "receipt applied"
	case s0.submitted >= 0:
		stage = "submitted"
	}
	for {
		t.snap(&s3)
		if drained(t, g, &s0, &s3) || time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	res.Complete = drained(t, g, &s0, &s3)

	win := s2.at.Sub(s1.at).Seconds()
	res.WarmupS = o.warmup.Seconds()
	res.WindowS = win
	res.DrainS = s3.at.Sub(s2.at).Seconds()
	res.Mails = s2.accepted - s1.accepted
	res.MailsPerS = float64(res.Mails) / win
	rate := func(a, b int64) (int64, float64) {
		if a < 0 || b < 0 {
			return -1, 0
		}
		return b - a, float64(b-a) / win
	}
	// With --duration the later stages are counted in the same window as
	// the mails (their steady rate under load); with --count they are
	// counted until the drain ends, since they lag the last mail.
	last := s2
	if o.count > 0 {
		last = s3
		win = s3.at.Sub(s1.at).Seconds()
	}
	res.SMS, res.SMSPerS = rate(s1.submitted, last.submitted)
	res.ReceiptsN, res.ReceiptsPerS = rate(s1.receipts, last.receipts)
	res.ReportsN, res.ReportsPerS = rate(s1.reports, last.reports)
	res.ReportMails, _ = rate(s1.mails, last.mails)
	win = res.WindowS
	res.EndToEndStage = stage
	if res.Complete {
		res.EndToEndPerS = float64(res.Mails) / s3.at.Sub(s1.at).Seconds()
	}
	res.TotalMails = g.accepted.Load()
	res.ExpectedSMS = g.expectSegs.Load()
	diff := func(a, b int64) int64 {
		if a < 0 || b < 0 {
			return -1
		}
		return b - a
	}
	res.TotalSMS = diff(s0.submitted, s3.submitted)
	res.TotalReceipts = diff(s0.receipts, s3.receipts)
	res.TotalReports = diff(s0.reports, s3.reports)

	res.Data250 = g.data250.summary()
	res.Data250Slices = g.sliceSummaries()
	if t.subs != nil {
		res.DataSubmit = t.subs.lat.summary()
	}
	if t.sink != nil {
		res.DataReport = t.sink.lat.summary()
	}
	res.TempFail, res.PermFail, res.IOErrors = g.tempFail.Load(), g.permFail.Load(), g.ioErrors.Load()
	res.LastError, res.Connections = g.lastErr, g.connections.Load()
	res.CPUSeconds, res.CPUCores = -1, 0
	if s1.cpu >= 0 && s2.cpu >= 0 {
		res.CPUSeconds = (s2.cpu - s1.cpu).Seconds()
		res.CPUCores = res.CPUSeconds / win
		if res.Mails > 0 {
			res.CPUPerMail = res.CPUSeconds * 1e6 / float64(res.Mails)
		}
	}
	res.RSSMB = float64(s2.rss) / (1 << 20)
	if o.smtp == "" {
		_, hwm := memStatus()
		res.PeakRSSMB = float64(hwm) / (1 << 20)
	}
	return res, nil
}

// drained reports whether every mail accepted so far went through every
// stage the run can see.
func drained(t *benchTarget, g *generator, s0, s *snapshot) bool {
	segs := int64(g.expectSegs.Load())
	if s.submitted >= 0 && s.submitted-s0.submitted < segs {
		return false
	}
	if t.receipt && s.receipts >= 0 && s.receipts-s0.receipts < segs {
		return false
	}
	if t.reports && s.reports >= 0 && s.reports-s0.reports < int64(g.accepted.Load())*int64(g.rcpts) {
		return false
	}
	return true
}

func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	runtime.GC()
	return pprof.Lookup("allocs").WriteTo(f, 0)
}

// startInProcess starts the simulator, the report sink and smsbridge in
// this process.
func startInProcess(ctx context.Context, o benchOptions, cfg Config, g *generator, stderr io.Writer) (*benchTarget, error) {
	t := &benchTarget{scope: "whole process: smsbridge, load generator, SMSC simulator and report sink",
		receipt: o.receipts, reports: o.receipts && o.reports != "off"}
	var closers []func()
	t.close = func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	fail := func(err error) (*benchTarget, error) { t.close(); return nil, err }

	t.subs = &submitCounter{g: g}
	sim := smsctest.New(smsctest.Config{
		SystemID: "bench", Password: "bench",
		ReceiptDelay: o.receiptDelay,
		NoReceipts:   !o.receipts,
		MaxMessages:  1000, // the hook counts; keep little
		OnSubmit:     t.subs.onSubmit,
	})
	if err := sim.Start("127.0.0.1:0"); err != nil {
		return fail(err)
	}
	closers = append(closers, func() { sim.Close() })

	cfg.SMTPAddr = "127.0.0.1:0"
	cfg.AdminAddr = ""
	cfg.SMTP.SMTPSAddr, cfg.SMTP.LMTPAddr = "", ""
	cfg.SMTP.MaxConnections = max(cfg.SMTP.MaxConnections, 4*o.sessions+100)
	cfg.SMTP.MaxConnectionsPerIP = max(cfg.SMTP.MaxConnectionsPerIP, 4*o.sessions+100)
	cfg.SMTP.MaxRecipients = max(cfg.SMTP.MaxRecipients, o.rcpts)
	cfg.Domains = []string{"sms.localhost"}
	cfg.Hostname = "bench.test"
	cfg.SMSC.Addr, cfg.SMSC.SystemID, cfg.SMSC.Password = sim.Addr(), "bench", "bench"
	cfg.SMSC.TLS = false
	cfg.Routes = nil
	if o.window > 0 {
		cfg.SMSC.Window = o.window
	}
	if o.binds > 0 {
		cfg.SMSC.Binds = o.binds
	}
	cfg.LogLevel = o.logLevel
	yes, no := true, false
	cfg.ReportSuccess = &yes
	if o.reports == "off" {
		cfg.ReportSuccess = &no
	}
	cfg.Smarthost = ""
	if o.reports != "outbox" { // with "off", the sink still gets failure reports
		sink, err := startReportSink("127.0.0.1:0", g)
		if err != nil {
			return fail(err)
		}
		closers = append(closers, func() { sink.Close() })
		t.sink = sink
		cfg.Smarthost = sink.Addr()
	} else {
		t.reports = false // the outbox: only report mails are counted, from the metrics
	}
	cfg.DataDir = o.dataDir
	if cfg.DataDir == "" {
		dir, err := os.MkdirTemp("", "smsbridge-bench-")
		if err != nil {
			return fail(err)
		}
		closers = append(closers, func() { os.RemoveAll(dir) })
		cfg.DataDir = filepath.Join(dir, "data")
	}
	if err := cfg.validate(); err != nil {
		return fail(fmt.Errorf("config: %w", err))
	}
	a, err := newApp(cfg, newLogger(&cfg, stderr))
	if err != nil {
		return fail(err)
	}
	actx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan error, 1)
	go func() { done <- a.run(actx) }()
	closers = append(closers, func() {
		cancel()
		if err := <-done; err != nil {
			fmt.Fprintln(stderr, "smsbridge bench: smsbridge stopped:", err)
		}
	})
	for deadline := time.Now().Add(10 * time.Second); !a.rs.anyBound(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			return fail(errors.New("smsbridge did not bind to the simulator in 10s"))
		}
	}
	t.addr = a.smtpL.Addr().String()
	t.snap = func(s *snapshot) {
		s.at = time.Now()
		s.accepted = g.accepted.Load()
		s.submitted = int64(t.subs.count.Load())
		m := gatherCounters(a.reg)
		s.receipts = int64(m["smsbridge_receipts_total"])
		if t.sink != nil {
			s.reports, s.mails = int64(t.sink.records.Load()), int64(t.sink.reports.Load())
		} else {
			s.reports, s.mails = -1, int64(m[`smsbridge_reports_total{result="sent"}`])
		}
		s.cpu = cpuTime()
		s.rss, _ = memStatus()
	}
	return t, nil
}

// gatherCounters sums the counters of reg by name, and by name with each
// label pair: "smsbridge_reports_total" and
// `smsbridge_reports_total{result="sent"}`.
func gatherCounters(reg *prometheus.Registry) map[string]float64 {
	out := map[string]float64{}
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var v float64
			switch {
			case m.GetCounter() != nil:
				v = m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				v = m.GetGauge().GetValue()
			default:
				continue
			}
			out[mf.GetName()] += v
			for _, l := range m.GetLabel() {
				out[fmt.Sprintf("%s{%s=%q}", mf.GetName(), l.GetName(), l.GetValue())] += v
			}
		}
	}
	return out
}

// bindWait bounds the wait for an external smsbridge to bind to the
// simulator: a reconnect back-off grows to a minute by default. (A var:
// tests shorten it.)
var bindWait = 90 * time.Second

// startExternal targets a running smsbridge, with the simulator and the
// sink when asked.
func startExternal(o benchOptions, g *generator) (*benchTarget, error) {
	t := &benchTarget{addr: o.smtp, scope: "unknown (no --admin)"}
	var closers []func()
	t.close = func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	if o.simListen != "" {
		t.subs = &submitCounter{g: g}
		sim := smsctest.New(smsctest.Config{SystemID: "bench", Password: "bench",
			ReceiptDelay: o.receiptDelay, NoReceipts: !o.receipts, MaxMessages: 1000, OnSubmit: t.subs.onSubmit})
		if err := sim.Start(o.simListen); err != nil {
			return nil, err
		}
		closers = append(closers, func() { sim.Close() })
		t.receipt = o.receipts
		// The load waits for smsbridge to bind, as in-process: mails
		// accepted before would wait for its reconnect back-off (up to
		// BackoffMax), and their DATA→submit_sm measure that wait.
		ctx, cancel := context.WithTimeout(context.Background(), bindWait)
		err := sim.WaitBinds(ctx, 1)
		cancel()
		if err != nil {
			t.close()
			return nil, fmt.Errorf("smsbridge did not bind to the simulator on %s in %v", o.simListen, bindWait)
		}
	}
	if o.sinkListen != "" {
		sink, err := startReportSink(o.sinkListen, g)
		if err != nil {
			t.close()
			return nil, err
		}
		closers = append(closers, func() { sink.Close() })
		t.sink = sink
		t.reports = true
	}
	if o.admin != "" {
		t.scope = "the smsbridge process (process_cpu_seconds_total)"
		t.receipt = true
	}
	hc := &http.Client{Timeout: 5 * time.Second}
	t.snap = func(s *snapshot) {
		s.at = time.Now()
		s.accepted = g.accepted.Load()
		s.submitted, s.receipts, s.reports, s.cpu = -1, -1, -1, -1
		var m map[string]float64
		if o.admin != "" {
			var err error
			if m, err = scrape(hc, strings.TrimRight(o.admin, "/")+"/metrics", o.adminToken); err != nil {
				m = nil
			}
		}
		if t.subs != nil {
			s.submitted = int64(t.subs.count.Load())
		} else if m != nil {
			s.submitted = int64(m["smsbridge_segments_submitted_total"])
		}
		if m != nil {
			s.receipts = int64(m["smsbridge_receipts_total"])
			s.mails = int64(m[`smsbridge_reports_total{result="sent"}`])
			s.cpu = time.Duration(m["process_cpu_seconds_total"] * float64(time.Second))
			s.rss = int64(m["process_resident_memory_bytes"])
		}
		if t.sink != nil {
			s.reports, s.mails = int64(t.sink.records.Load()), int64(t.sink.reports.Load())
		}
	}
	return t, nil
}

// scrape reads a Prometheus text exposition and sums samples as
// gatherCounters does (only single-label series are keyed by label).
func scrape(hc *http.Client, url, token string) (map[string]float64, error) {
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		return nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("%s: %s", url, resp.Status)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		sp := strings.LastIndexByte(line, ' ')
		if sp < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[sp+1:], 64)
		if err != nil {
			continue
		}
		series := line[:sp]
		name, labels, _ := strings.Cut(series, "{")
		out[name] += v
		for l := range strings.SplitSeq(strings.TrimSuffix(labels, "}"), ",") {
			if l != "" {
				out[name+"{"+l+"}"] += v
			}
		}
	}
	return out, sc.Err()
}

func machineName() string {
	return fmt.Sprintf("%d-core %s/%s, %s", runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, runtime.Version())
}

func (r *benchResult) print(w io.Writer) {
	conn := "reused connections"
	if r.Conn == "per-mail" {
		conn = "one connection per mail"
	}
	pipe := "pipelining"
	if !r.Pipeline {
		pipe = "no pipelining"
	}
	fmt.Fprintf(w, "smsbridge bench: %s on %s\n", r.Mode, r.Machine)
	fmt.Fprintf(w, "%d sessions, %s, %s, %d rcpt/mail, mix %s (segments %v), ~%d-byte mails, receipts %s, reports %s",
		r.Sessions, conn, pipe, r.Rcpts, r.Mix, r.SegmentsByText, r.Size, r.Receipts, r.Reports)
	if r.Rate > 0 {
		fmt.Fprintf(w, ", target %.0f mails/s", r.Rate)
	}
	fmt.Fprintf(w, "\nwindow %.1f s after %.1f s warm-up; drained in %.2f s\n\n", r.WindowS, r.WarmupS, r.DrainS)
	fmt.Fprintf(w, "%-18s %9s %10s  %-20s %8s %8s %8s %8s\n", "stage", "count", "per s", "latency from DATA", "p50 ms", "p95 ms", "p99 ms", "max ms")
	row := func(name string, n int64, perS float64, latName string, l latencySummary) {
		cnt, ps := "-", "-"
		if n >= 0 {
			cnt, ps = strconv.FormatInt(n, 10), fmt.Sprintf("%.0f", perS)
		}
		if l.N == 0 {
			fmt.Fprintf(w, "%-18s %9s %10s  %-20s\n", name, cnt, ps, latName)
			return
		}
		fmt.Fprintf(w, "%-18s %9s %10s  %-20s %8.2f %8.2f %8.2f %8.2f\n", name, cnt, ps, latName, l.P50, l.P95, l.P99, l.Max)
	}
	row("mails accepted", int64(r.Mails), r.MailsPerS, "DATA→250", r.Data250)
	row("SMS submitted", r.SMS, r.SMSPerS, "DATA→submit_sm", r.DataSubmit)
	row("receipts applied", r.ReceiptsN, r.ReceiptsPerS, "", latencySummary{})
	row("records reported", r.ReportsN, r.ReportsPerS, "DATA→report", r.DataReport)
	if r.Complete {
		fmt.Fprintf(w, "%-18s %9d %10.0f  (mails accepted in the window / time until the last was %s)\n",
			"end to end", r.Mails, r.EndToEndPerS, r.EndToEndStage)
	} else {
		fmt.Fprintf(w, "%-18s INCOMPLETE: not every mail was %s within the drain time (SMS %d of %d, receipts %d, reports %d of %d)\n",
			"end to end", r.EndToEndStage, r.TotalSMS, r.ExpectedSMS, r.TotalReceipts, r.TotalReports, r.TotalMails*uint64(r.Rcpts))
	}
	if len(r.Data250Slices) > 0 {
		fmt.Fprintf(w, "\n%-18s %9s %8s %8s %8s %8s\n", "DATA→250 from s", "mails", "p50 ms", "p95 ms", "p99 ms", "max ms")
		for _, sl := range r.Data250Slices {
			fmt.Fprintf(w, "%-18.0f %9d %8.2f %8.2f %8.2f %8.2f\n", sl.FromS, sl.N, sl.P50, sl.P95, sl.P99, sl.Max)
		}
	}
	fmt.Fprintf(w, "\nwhole run: %d mails accepted, %d SMS submitted (expected %d), %d receipts, %d records reported; %d connections\n",
		r.TotalMails, r.TotalSMS, r.ExpectedSMS, r.TotalReceipts, r.TotalReports, r.Connections)
	if r.ReportMails > 0 {
		fmt.Fprintf(w, "report mails in the window: %d (recipients of one mail that are due together share one)\n", r.ReportMails)
	}
	fmt.Fprintf(w, "errors: %d × 4xx, %d × 5xx, %d i/o", r.TempFail, r.PermFail, r.IOErrors)
	if r.LastError != "" {
		fmt.Fprintf(w, " (last: %s)", r.LastError)
	}
	fmt.Fprintln(w)
	if r.CPUSeconds >= 0 {
		fmt.Fprintf(w, "CPU: %.2f s in the window = %.2f cores (%s); %.0f µs per mail accepted in it\n",
			r.CPUSeconds, r.CPUCores, r.CPUScope, r.CPUPerMail)
	} else {
		fmt.Fprintf(w, "CPU: unknown (%s)\n", r.CPUScope)
	}
	if r.RSSMB > 0 {
		fmt.Fprintf(w, "RSS: %.0f MB at the end of the window", r.RSSMB)
		if r.PeakRSSMB > 0 {
			fmt.Fprintf(w, ", peak %.0f MB", r.PeakRSSMB)
		}
		fmt.Fprintln(w)
	}
}
