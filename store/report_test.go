package store

import (
	"slices"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// TestReportsDueIndex: a final record with its report pending is in the
// report_due index at ReportNextAttempt; a temporary failure moves it later,
// ReportDone takes it out and drops the returned original.
func TestReportsDueIndex(t *testing.T) {
	clk := newClock()
	s, _ := openTemp(t, Options{Now: clk.Now})
	a, b := record("+491511234567", 1), record("+491511234568", 1)
	a.Ret, a.Original = "FULL", []byte("Subject: x\r\n\r\nbody\r\n")
	mustAdd(t, s, a, b)
	if due, _, _ := s.ReportsDue(t0.Add(time.Hour), 0); len(due) != 0 {
		t.Fatalf("queued records due for a report: %v", ids(due))
	}
	for _, r := range []*Record{a, b} {
		mustUpdate(t, s, r.ID, func(r *Record) error { r.State, r.LastError = Failed, "x"; return nil })
	}
	due, next, err := s.ReportsDue(t0, 0)
	if err != nil || !slices.Equal(ids(due), []string{a.ID, b.ID}) || !next.IsZero() {
		t.Fatalf("ReportsDue = %v, %v, %v", ids(due), next, err)
	}
	if due, next, _ := s.ReportsDue(t0, 1); len(due) != 1 || next.After(t0) {
		t.Errorf("ReportsDue limit 1 = %v, next %v: want one and next not after now", ids(due), next)
	}
	later := t0.Add(time.Minute)
	mustUpdate(t, s, a.ID, func(r *Record) error { r.ReportAttempts, r.ReportNextAttempt = 1, later; return nil })
	due, next, _ = s.ReportsDue(t0, 0)
	if !slices.Equal(ids(due), []string{b.ID}) || !next.Equal(later) {
		t.Errorf("after a retry: ReportsDue = %v, next %v, want [%s], %v", ids(due), next, b.ID, later)
	}
	if got := mustGet(t, s, a.ID); got.Original == nil {
		t.Error("original dropped before the report is done")
	}
	got := mustUpdate(t, s, a.ID, func(r *Record) error { r.ReportDone = true; return nil })
	if got.Original != nil || mustGet(t, s, a.ID).Original != nil {
		t.Error("original kept after the report is done")
	}
	if keys := indexKeys(t, s, bucketReportDue); !slices.Equal(keys, []string{string(timeIDKey(time.Time{}, b.ID))}) {
		t.Errorf("report_due index %q", keys)
	}
}

// TestDelayIndex: records not final yet that may want a delay report are
// in the delay index by Created; NOTIFY, the user's policy, the null
// sender and NoReport keep them out; DelayDone or a retry take them out; a
// retried delay report is in report_due until the record becomes final,
// which resets the retry so that the final report is due at once.
func TestDelayIndex(t *testing.T) {
	clk := newClock()
	s, _ := openTemp(t, Options{Now: clk.Now})
	mk := func(mod func(*Record)) *Record {
		r := record("+491511234567", 1)
		mod(r)
		mustAdd(t, s, r)
		clk.Add(time.Second)
		return r
	}
	plain := mk(func(r *Record) {})
	delay := mk(func(r *Record) { r.Notify = "FAILURE,DELAY" })
	mk(func(r *Record) { r.Notify = "NEVER" })
	mk(func(r *Record) { r.Notify = "SUCCESS,FAILURE" })
	mk(func(r *Record) { r.From = "" })
	mk(func(r *Record) { r.NoReport = "auto-submitted" })
	mk(func(r *Record) { r.ReportPolicy = "failures" })
	all := mk(func(r *Record) { r.ReportPolicy = "all" })

	got, next, err := s.DelayDue(t0.Add(time.Second), 0)
	if err != nil || !slices.Equal(ids(got), []string{plain.ID, delay.ID}) || !next.Equal(all.Created) {
		t.Fatalf("DelayDue = %v, next %v (%v), want [%s %s], %v", ids(got), next, err, plain.ID, delay.ID, all.Created)
	}
	mustUpdate(t, s, plain.ID, func(r *Record) error { r.DelayDone = true; return nil })
	retry := t0.Add(time.Hour)
	mustUpdate(t, s, delay.ID, func(r *Record) error { r.ReportAttempts, r.ReportNextAttempt = 1, retry; return nil })
	if got, _, _ := s.DelayDue(clk.Now(), 0); !slices.Equal(ids(got), []string{all.ID}) {
		t.Errorf("DelayDue after DelayDone and a retry = %v, want [%s]", ids(got), all.ID)
	}
	if got, _, _ := s.ReportsDue(retry, 0); !slices.Equal(ids(got), []string{delay.ID}) {
		t.Errorf("ReportsDue at the retry = %v, want the delay report", ids(got))
	}
	r := mustUpdate(t, s, delay.ID, func(r *Record) error { r.State = Expired; return nil })
	if r.ReportAttempts != 0 || !r.ReportNextAttempt.IsZero() {
		t.Errorf("final record keeps the delay report's retry: %d, %v", r.ReportAttempts, r.ReportNextAttempt)
	}
	if got, _, _ := s.ReportsDue(t0, 0); !slices.Equal(ids(got), []string{delay.ID}) {
		t.Errorf("ReportsDue once final = %v, want [%s] at once", ids(got), delay.ID)
	}
	if keys := indexKeys(t, s, bucketDelay); len(keys) != 1 {
		t.Errorf("delay index has %d keys, want 1 (the ReportPolicy=all record)", len(keys))
	}
}

// TestMigrateLayout2 rebuilds the derived indexes of a layout 2 file, which
// had no report_due or delay index.
func TestMigrateLayout2(t *testing.T) {
	clk := newClock()
	s, path := openTemp(t, Options{Now: clk.Now})
	q, f := record("+491511234567", 1), record("+491511234568", 1)
	mustAdd(t, s, q, f)
	mustUpdate(t, s, f.ID, func(r *Record) error { r.State = Failed; return nil })
	err := s.db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketReportDue, bucketDelay} {
			if err := tx.DeleteBucket(b); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketMeta).Put(keyVersion, []byte("2"))
	})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = Open(path, Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got, _, _ := s.ReportsDue(t0, 0); !slices.Equal(ids(got), []string{f.ID}) {
		t.Errorf("ReportsDue after migration = %v", ids(got))
	}
	if got, _, _ := s.DelayDue(t0, 0); !slices.Equal(ids(got), []string{q.ID}) {
		t.Errorf("DelayDue after migration = %v", ids(got))
	}
}
