package bridge

import (
	"context"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/smsbridge/smsbridge/store"
)

// staleDelayStore lists records for delay reports as if the listing had
// been taken before the report in flight for one of them ended (the loop
// may wait for a worker between the listing and the start): its second
// listing includes the record, and returns only once that report ended.
type staleDelayStore struct {
	*store.Store
	b       *Bridge
	id      string
	release chan struct{}
	calls   int
}

func (s *staleDelayStore) DelayDueExcept(before time.Time, limit int, _ func(string) bool) ([]*store.Record, time.Time, error) {
	recs, next, err := s.Store.DelayDueExcept(before, limit, nil)
	s.calls++
	if s.calls >= 2 && s.b.isReporting(s.id) {
		close(s.release) // the smarthost answers the first report now
		for s.b.isReporting(s.id) {
			time.Sleep(time.Millisecond)
		}
	}
	return recs, next, err
}

// heldSender holds the first report until release is closed, and counts.
type heldSender struct {
	mu      sync.Mutex
	n       int
	release chan struct{}
}

func (c *heldSender) Send(ctx context.Context, rcpt string, msg []byte) error {
	c.mu.Lock()
	c.n++
	first := c.n == 1
	c.mu.Unlock()
	if first {
		select {
		case <-c.release:
		case <-ctx.Done():
		}
	}
	return nil
}

func (c *heldSender) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// TestDelayReportOnceFromAStaleListing: a delay report whose record was
// listed again while its first report was in flight goes once (found by a
// review: the worker trusted the listing's copy of the record).
func TestDelayReportOnceFromAStaleListing(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "t.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	rec := &store.Record{From: "a@x.test", Rcpt: "+15550001@sms.test", To: "+15550001", Subject: "s",
		Text: "hi", Notify: "DELAY", Segments: []store.Segment{{Payload: []byte("hi"), Text: "hi"}}}
	if err := st.Add(context.Background(), []*store.Record{rec}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Millisecond) // past DelayAfter
	release := make(chan struct{})
	rs := &staleDelayStore{Store: st, id: rec.ID, release: release}
	out := &heldSender{release: release}
	b := New(Config{DelayAfter: time.Millisecond, ReportDelays: true, ReportWorkers: 4, ReportingMTA: "gw.test"},
		rs, nil, out, slog.New(slog.DiscardHandler))
	rs.b = b
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { b.reportLoop(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	waitUntil(t, "the first delay report", func() bool { return out.count() >= 1 })
	// The next delay scan comes delayScan later; a store change starts a pass.
	time.Sleep(delayScan + 100*time.Millisecond)
	other := &store.Record{From: "a@x.test", Rcpt: "+15550002@sms.test", To: "+15550002", Subject: "s",
		Text: "hi", Notify: "NEVER", Segments: []store.Segment{{Payload: []byte("hi"), Text: "hi"}}}
	if err := st.Add(context.Background(), []*store.Record{other}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the second scan", func() bool {
		select {
		case <-release:
			return true
		default:
			return false
		}
	})
	waitUntil(t, "the delay report marked", func() bool {
		got, _ := st.Get(rec.ID)
		return got.DelayDone
	})
	time.Sleep(50 * time.Millisecond) // a second report would start now
	if n := out.count(); n != 1 {
		t.Errorf("delay report sent %d times", n)
	}
}
