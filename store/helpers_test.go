package store

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// clock is a settable time source for Options.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

var t0 = time.Date(2026, 11, 3, 10, 0, 0, 0, time.UTC)

func newClock() *clock { return &clock{t: t0} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// openTemp opens a store in a fresh file, closed at the end of the test.
func openTemp(t testing.TB, opt Options) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "store.db")
	s, err := Open(path, opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, path
}

// record is a Record with n segments, nothing yet submitted.
func record(to string, n int) *Record {
	r := &Record{From: "alice@example.org", Rcpt: to + "@sms.localhost", To: to, Text: "hello"}
	for i := range n {
		r.Segments = append(r.Segments, Segment{Payload: []byte{byte('a' + i)}})
	}
	return r
}

func mustAdd(t testing.TB, s *Store, recs ...*Record) {
	t.Helper()
	if err := s.Add(context.Background(), recs); err != nil {
		t.Fatal(err)
	}
}

func mustGet(t testing.TB, s *Store, id string) *Record {
	t.Helper()
	r, err := s.Get(id)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func mustUpdate(t testing.TB, s *Store, id string, fn func(*Record) error) *Record {
	t.Helper()
	r, err := s.Update(id, fn)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// submit is an Update function that records SMSC ids on every segment (id
// prefix plus segment number) and marks the record Submitted.
func submit(prefix string) func(*Record) error {
	return func(r *Record) error {
		for i := range r.Segments {
			r.Segments[i].SMSCID = prefix + string(rune('1'+i))
			r.Segments[i].State = SegSubmitted
		}
		r.State = Submitted
		r.Attempts++
		return nil
	}
}

// commits returns the id of the last committed write transaction, which
// grows by one per commit.
func commits(t testing.TB, s *Store) int {
	t.Helper()
	return int(s.w.rounds.Load())
}

// indexKeys returns the keys of an index bucket, in order.
func indexKeys(t testing.TB, s *Store, bucket []byte) []string {
	t.Helper()
	var keys []string
	err := s.w.view(func(tx *txn) error {
		return tx.Bucket(bucket).ForEach(func(k, _ []byte) error {
			keys = append(keys, string(k))
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

// addMail adds a one-segment record to with Message-ID msgid.
func addMail(t testing.TB, s *Store, to, msgid string) *Record {
	t.Helper()
	r := record(to, 1)
	r.MessageID = msgid
	mustAdd(t, s, r)
	return r
}

// reopen closes s and opens path again with opt.
func reopen(t testing.TB, s *Store, path string, opt Options) *Store {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err := Open(path, opt)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// genKeys is indexKeys without the generation prefix (dedup, refs).
func genKeys(t testing.TB, s *Store, bucket []byte) []string {
	t.Helper()
	keys := indexKeys(t, s, bucket)
	for i, k := range keys {
		if len(k) < 8 {
			t.Fatalf("%s key %q has no generation", bucket, k)
		}
		keys[i] = k[8:]
	}
	return keys
}

func ids(recs []*Record) []string {
	var out []string
	for _, r := range recs {
		out = append(out, r.ID)
	}
	return out
}

func whats(evs []Event) []string {
	var out []string
	for _, e := range evs {
		out = append(out, e.What)
	}
	return out
}

// rawUpdate changes a closed store's file with bbolt itself.
func rawUpdate(t testing.TB, path string, fn func(*bolt.Tx) error) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(fn); err != nil {
		t.Fatal(err)
	}
}
