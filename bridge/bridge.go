// Package bridge is smsbridge's dispatcher: it takes due records from the
// store to the SMSC, applies the receipts that come back, and hands final
// records to the report sender.
package bridge

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/smsbridge/smsbridge/report"
	"github.com/smsbridge/smsbridge/smppout"
	"github.com/smsbridge/smsbridge/store"
)

// Config tunes the dispatcher. Zero values mean the defaults in setDefaults.
type Config struct {
	SourceAddr    string        // source_addr of every SMS
	Workers       int           // records submitted concurrently; default 16
	ReportWorkers int           // reports sent concurrently; default 32
	RetryMin      time.Duration // first retry delay after a temporary error; default 30 s
	RetryMax      time.Duration // cap of the exponential backoff; default 10 min
	Validity      time.Duration // a record not submitted by then fails as expired; default 48 h
	MaxAttempts   int           // submit attempts before a record fails; default 100 (throttling is not an attempt)
	ReceiptGrace  time.Duration // a submitted record with no final receipt by Validity + this expires; default 1 h
	ThrottleMin   time.Duration // first pause of the route when the SMSC throttles; default 1 s
	ThrottleMax   time.Duration // longest pause; default 1 min
	ReportingMTA  string        // our host name, for reports
	Postmaster    string        // From of reports
	ReportSuccess bool          // send a report when an SMS is delivered, not only on failure
	PurgeEvery    time.Duration // how often final records past retention are purged; default 10 min
	Now           func() time.Time
	Metrics       *Metrics // nil: metrics kept but not registered

	// Delivery reports when the sender gave no NOTIFY and the user has no
	// report policy (see reports.go); ReportSuccess above is the third.
	ReportFailures *bool         // report failures; nil: true
	ReportDelays   bool          // send a delay report once DelayAfter has passed; default false
	DelayAfter     time.Duration // how long a record waits before a delay report; default 4 h
	ReportGiveUp   time.Duration // a report still not sent this long after it was due is given up; default 5 days
	GroupReports   bool          // one report for the recipients of one mail whose reports are due together; default false
}

func (c *Config) setDefaults() {
	if c.Workers == 0 {
		c.Workers = 16
	}
	if c.ReportWorkers == 0 {
		c.ReportWorkers = 32
	}
	if c.RetryMin == 0 {
		c.RetryMin = 30 * time.Second
	}
	if c.RetryMax == 0 {
		c.RetryMax = 10 * time.Minute
	}
	if c.Validity == 0 {
		c.Validity = 48 * time.Hour
	}
	if c.PurgeEvery == 0 {
		c.PurgeEvery = 10 * time.Minute
	}
	if c.ReceiptGrace == 0 {
		c.ReceiptGrace = time.Hour
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = 100
	}
	if c.ThrottleMin == 0 {
		c.ThrottleMin = time.Second
	}
	if c.ThrottleMax == 0 {
		c.ThrottleMax = time.Minute
	}
	if c.ReportingMTA == "" {
		c.ReportingMTA = "localhost"
	}
	if c.Postmaster == "" {
		c.Postmaster = "postmaster@" + c.ReportingMTA
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Metrics == nil {
		c.Metrics = NewMetrics(nil)
	}
	if c.ReportFailures == nil {
		yes := true
		c.ReportFailures = &yes
	}
	if c.DelayAfter == 0 {
		c.DelayAfter = 4 * time.Hour
	}
	if c.ReportGiveUp == 0 {
		c.ReportGiveUp = 5 * 24 * time.Hour
	}
}

// SMSC is what the dispatcher needs of an SMPP client.
type SMSC interface {
	Submit(ctx context.Context, s smppout.Submit) (string, error)
	Bound() bool
}

// Store is what the dispatcher needs of the store.
type Store interface {
	Get(id string) (*store.Record, error)
	DueExcept(now time.Time, limit int, skip func(id string) bool) ([]*store.Record, time.Time, error)
	Update(id string, fn func(*store.Record) error) (*store.Record, error)
	ApplyReceipt(rc store.Receipt) (*store.Record, bool, error)
	Reportable(limit int) ([]*store.Record, error)
	ReportsDueExcept(now time.Time, limit int, skip func(id string) bool) ([]*store.Record, time.Time, error)
	DelayDueExcept(before time.Time, limit int, skip func(id string) bool) ([]*store.Record, time.Time, error)
	Changed() <-chan struct{}
	DueChanged() <-chan struct{}
	Recover(now time.Time) (int, error)
	Submitting(limit int) ([]string, error)
	Purge(ctx context.Context, now time.Time) (int, error)
	Original(rec *store.Record) ([]byte, error)
	Header(rec *store.Record) ([]byte, error)
}

// Bridge moves records between the store, the SMSC and the report sender.
type Bridge struct {
	cfg      Config
	st       Store
	routesMu sync.RWMutex
	routes   []*route // replaced whole by SetRoutes
	out      report.Sender
	log      *slog.Logger

	mu         sync.Mutex
	inflight   map[string]bool // records being submitted now
	inflightTo map[string]bool // their destinations
	reporting  map[string]bool // records whose report is being sent now
	mo         moJoiner
}

// New returns a dispatcher; Run starts it.
func New(cfg Config, st Store, routes []Route, out report.Sender, log *slog.Logger) *Bridge {
	cfg.setDefaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	b := &Bridge{
		cfg: cfg, st: st, out: out, log: log,
		inflight:   make(map[string]bool),
		inflightTo: make(map[string]bool),
		reporting:  make(map[string]bool),
		mo:         moJoiner{reasm: map[string]*smppout.Reassembler{}, loaded: make(chan struct{})},
	}
	for _, r := range routes {
		b.routes = append(b.routes, &route{Route: r})
	}
	return b
}

// Run dispatches and reports until ctx is done. Submits already handed to
// the SMSC are waited for, so that their ids are recorded before Run returns.
//
// It starts by putting back in the queue the records a crash left in
// Submitting: their segments without an SMSC id are sent again (at least
// once; the duplicates are at most what was in flight at the crash).
func (b *Bridge) Run(ctx context.Context) error {
	n, err := b.st.Recover(b.cfg.Now())
	if err != nil {
		return fmt.Errorf("bridge: recover: %w", err)
	}
	if n > 0 {
		b.log.Warn("records left in submitting by a crash are queued again", "records", n)
	}
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return b.purgeLoop(ctx) })
	g.Go(func() error { return b.moLoop(ctx) })
	g.Go(func() error { return b.dispatchLoop(ctx) })
	g.Go(func() error { return b.reportLoop(ctx) })
	return g.Wait()
}

// wait blocks until ctx is done, the store changed, or d has passed.
func wait(ctx context.Context, changed <-chan struct{}, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-changed:
	case <-t.C:
	}
}

// backoff is the delay before attempt n+1: exponential from RetryMin to
// RetryMax, with full jitter in its upper half so that a burst of records
// that failed together does not come back together.
func (b *Bridge) backoff(attempts int) time.Duration {
	d := b.cfg.RetryMin
	for i := 1; i < attempts && d < b.cfg.RetryMax; i++ {
		d *= 2
	}
	d = min(d, b.cfg.RetryMax)
	return d/2 + rand.N(d/2+1)
}

// purgeLoop removes final, reported records past the store's retention,
// and puts back in the queue records stuck in Submitting.
func (b *Bridge) purgeLoop(ctx context.Context) error {
	t := time.NewTicker(b.cfg.PurgeEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		b.unstick()
		n, err := b.st.Purge(ctx, b.cfg.Now())
		switch {
		case err != nil && ctx.Err() == nil:
			b.log.Error("purge", "err", err)
		case n > 0:
			b.log.Info("purged records past retention", "records", n)
		}
	}
}

// unstick requeues records in Submitting that no worker holds: a store
// write after their submit failed (a full disk, say), and only a restart's
// Recover would otherwise take them up again. Segments with an SMSC id are
// not sent again.
func (b *Bridge) unstick() {
	ids, err := b.st.Submitting(1000)
	if err != nil {
		b.log.Error("listing records in submitting", "err", err)
		return
	}
	now := b.cfg.Now()
	for _, id := range ids {
		b.mu.Lock()
		busy := b.inflight[id]
		b.mu.Unlock()
		if busy {
			continue
		}
		_, err := b.st.Update(id, func(r *store.Record) error {
			if r.State != store.Submitting {
				return errNotDue
			}
			r.State, r.NextAttempt = store.Queued, now
			r.Events = append(r.Events, store.Event{At: now, What: "recovered", Detail: "left in submitting by a failed write"})
			return nil
		})
		if err == nil {
			b.log.Warn("record stuck in submitting queued again", "id", id)
		}
	}
}
