package bridge

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/smsbridge/smsbridge/internal/smtpsink"
	"github.com/smsbridge/smsbridge/report"
	"github.com/smsbridge/smsbridge/smppout"
	"github.com/smsbridge/smsbridge/smppout/smsctest"
	"github.com/smsbridge/smsbridge/smtpd"
	"github.com/smsbridge/smsbridge/store"
)

// gateway is the whole path of a report on loopback: the SMTP front door,
// the store, the bridge with one route to the SMSC simulator, and an SMTP
// sink standing in for the smarthost that receives the reports.
type gateway struct {
	path     string
	st       *store.Store
	sim      *smsctest.Server
	sink     *smtpsink.Sink
	b        *Bridge
	smtpAddr string

	stopOnce sync.Once
	stopFn   func()
}

type gatewayOpts struct {
	path  string         // store file; "" for a fresh one
	sink  *smtpsink.Sink // nil: a new one
	cfg   Config
	sc    smsctest.Config
	setup func(st *store.Store) // runs before the bridge starts
}

func startGateway(t *testing.T, o gatewayOpts) *gateway {
	t.Helper()
	if o.path == "" {
		o.path = filepath.Join(t.TempDir(), "gw.db")
	}
	g := &gateway{path: o.path, sink: o.sink}
	var err error
	if g.st, err = store.Open(o.path, store.Options{}); err != nil {
		t.Fatal(err)
	}
	if o.setup != nil {
		o.setup(g.st)
	}
	o.sc.SystemID, o.sc.Password = "b", "pw"
	if o.sc.ReceiptDelay == 0 {
		o.sc.ReceiptDelay = 10 * time.Millisecond
	}
	g.sim = smsctest.New(o.sc)
	if err := g.sim.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	if g.sink == nil {
		if g.sink, err = smtpsink.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { g.sink.Close() })
	}
	log := slog.New(slog.DiscardHandler)
	cl := smppout.New(smppout.Config{
		Addr: g.sim.Addr(), SystemID: "b", Password: "pw",
		RespTimeout: 2 * time.Second, BackoffMin: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond,
	}, func(ctx context.Context, r smppout.Receipt) error { return g.b.ReceiptHandler("default")(ctx, r) }, log)
	cfg := o.cfg
	if cfg.RetryMin == 0 {
		cfg.RetryMin, cfg.RetryMax = 10*time.Millisecond, 40*time.Millisecond
	}
	cfg.ReportingMTA = "gw.test"
	g.b = New(cfg, g.st, []Route{{Name: "default", SMSC: cl}},
		report.SMTP{Addr: g.sink.Addr(), Helo: "gw.test"}, log)

	front := smtpd.New(smtpd.Config{
		Hostname: "gw.test", Domains: []string{"sms.test"}, DefaultRegion: "US",
		TrustedNetworks: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
	}, g.st, log)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g.smtpAddr = l.Addr().String()

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); cl.Run(ctx) }()
	go func() { defer wg.Done(); g.b.Run(ctx) }()
	go func() { defer wg.Done(); front.Serve(l) }()
	g.stopFn = func() {
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		front.Shutdown(sctx)
		scancel()
		cancel()
		wg.Wait()
		g.sim.Close()
		g.st.Close()
	}
	t.Cleanup(g.stop)
	return g
}

// stop ends everything but the sink, as a crash or a restart would.
func (g *gateway) stop() { g.stopOnce.Do(g.stopFn) }

// dsnRcpt is one RCPT TO with its DSN options.
type dsnRcpt struct {
	to   string
	opts *smtp.RcptOptions
}

// mail sends one mail through the front door with go-smtp's client.
func (g *gateway) mail(t *testing.T, from string, mo *smtp.MailOptions, rcpts []dsnRcpt, body string) {
	t.Helper()
	c, err := smtp.Dial(g.smtpAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("client.test"); err != nil {
		t.Fatal(err)
	}
	if err := c.Mail(from, mo); err != nil {
		t.Fatal(err)
	}
	for _, r := range rcpts {
		if err := c.Rcpt(r.to, r.opts); err != nil {
			t.Fatalf("RCPT %s: %v", r.to, err)
		}
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte(body)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("DATA: %v", err)
	}
	c.Quit()
}

// settle waits until every record is final and its report done, and
// returns them.
func (g *gateway) settle(t *testing.T, want int) []*store.Record {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		recs, err := g.st.List("", 0)
		if err != nil {
			t.Fatal(err)
		}
		done := len(recs) == want
		for _, r := range recs {
			done = done && r.State.Final() && r.ReportDone
		}
		if done {
			return recs
		}
		if time.Now().After(deadline) {
			for _, r := range recs {
				t.Logf("%s %s %s reported=%v events=%+v", r.ID, r.Rcpt, r.State, r.ReportDone, r.Events)
			}
			t.Fatalf("%d records, not all final and reported", len(recs))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitRecord polls record id until cond holds.
func (g *gateway) waitRecord(t *testing.T, id string, what string, cond func(*store.Record) bool) *store.Record {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		r, err := g.st.Get(id)
		if err != nil {
			t.Fatal(err)
		}
		if cond(r) {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("record %s never %s: state %s events %+v", id, what, r.State, r.Events)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// reportBlock is one per-recipient block of a report, with what the whole
// report said.
type reportBlock struct {
	fields    map[string]string // per-recipient fields
	envID     string            // Original-Envelope-Id
	thirdType string
	third     string
	envFrom   string
	envTo     []string
	header    map[string]string // some top-level fields
}

// blocks parses every report the sink received and returns the blocks by
// Final-Recipient address.
func blocks(t *testing.T, msgs []smtpsink.Message) map[string][]reportBlock {
	t.Helper()
	out := map[string][]reportBlock{}
	for _, m := range msgs {
		p, err := report.Parse(m.Data)
		if err != nil {
			t.Fatalf("report does not parse: %v\n%s", err, m.Data)
		}
		hdr := map[string]string{}
		for _, k := range []string{"To", "In-Reply-To", "References", "Auto-Submitted", "Subject"} {
			hdr[k] = p.Header.Get(k)
		}
		for _, rc := range p.Recipients {
			f := map[string]string{}
			for _, k := range []string{"Original-Recipient", "Final-Recipient", "Action", "Status", "Diagnostic-Code", "Will-Retry-Until"} {
				f[k] = rc.Get(k)
			}
			addr := strings.TrimSpace(strings.TrimPrefix(f["Final-Recipient"], "rfc822;"))
			out[addr] = append(out[addr], reportBlock{fields: f, envID: p.Message.Get("Original-Envelope-Id"),
				thirdType: p.OrigType, third: string(p.OrigHeader), envFrom: m.From, envTo: m.To, header: hdr})
		}
	}
	return out
}

func waitCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func hasEvent(r *store.Record, what, detail string) bool {
	for _, e := range r.Events {
		if e.What == what && strings.Contains(e.Detail, detail) {
			return true
		}
	}
	return false
}
