package store

import (
	"context"
	"fmt"
	"slices"
	"strings"
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
	s.Close()
	rawUpdate(t, path, func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketReportDue, bucketDelay} {
			if err := tx.DeleteBucket(b); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketMeta).Put(keyVersion, []byte("2"))
	})
	s, err := Open(path, Options{Now: clk.Now})
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

// TestSharedOriginal: the records of one mail that carry the same original
// (RET=FULL to several recipients) share one stored copy; each reads it
// with Original; it goes when the last of them is final and reported (or
// removed), not before; a duplicate that Add did not store holds no claim.
func TestSharedOriginal(t *testing.T) {
	s, _ := openTemp(t, Options{Retention: time.Hour})
	orig := []byte("Subject: x\r\n\r\n" + strings.Repeat("body ", 1000) + "\r\n")
	var recs []*Record
	for i := range 3 {
		r := record(fmt.Sprintf("+49151123456%d", i), 1)
		r.Ret, r.Original, r.MessageID = "FULL", orig, "<shared@x>"
		recs = append(recs, r)
	}
	single := record("+491511234569", 1)
	single.Ret, single.Original = "FULL", []byte("Subject: alone\r\n\r\nx\r\n")
	mustAdd(t, s, append(recs, single)...)
	if keys := indexKeys(t, s, bucketOriginals); !slices.Equal(keys, []string{recs[0].ID}) {
		t.Fatalf("originals bucket %q, want one copy under %s", keys, recs[0].ID)
	}
	again := record("+4915112345610", 1) // a retried mail: a duplicate, not stored
	again.Ret, again.Original, again.MessageID = "FULL", orig, "<shared@x>"
	againToo := record("+491511234560", 1)
	againToo.Ret, againToo.Original, againToo.MessageID = "FULL", orig, "<shared@x>"
	mustAdd(t, s, again, againToo)
	if againToo.DuplicateOf != recs[0].ID {
		t.Fatalf("DuplicateOf %q", againToo.DuplicateOf)
	}
	for _, r := range append(recs, single) {
		got, err := s.Original(mustGet(t, s, r.ID))
		if err != nil || (r == single && string(got) != string(single.Original)) || (r != single && string(got) != string(orig)) {
			t.Fatalf("Original(%s) = %d bytes, %v", r.ID, len(got), err)
		}
	}
	// The second mail's one stored record keeps its own copy.
	if keys := indexKeys(t, s, bucketOriginals); !slices.Equal(keys, []string{recs[0].ID, again.ID}) {
		t.Fatalf("originals bucket %q, want %s and %s", keys, recs[0].ID, again.ID)
	}
	for i, r := range recs {
		mustUpdate(t, s, r.ID, func(r *Record) error { r.State, r.ReportDone = Failed, true; return nil })
		shared := slices.Contains(indexKeys(t, s, bucketOriginals), recs[0].ID)
		if last := i == len(recs)-1; shared == last {
			t.Fatalf("after %d of %d records reported, shared copy kept: %v", i+1, len(recs), shared)
		}
	}
	mustUpdate(t, s, again.ID, func(r *Record) error { r.State = Failed; return nil })
	if got, _ := s.Original(mustGet(t, s, again.ID)); string(got) != string(orig) {
		t.Fatalf("final but unreported: original %d bytes", len(got))
	}
	if _, err := s.Cancel(single.ID, "x"); err != nil {
		t.Fatal(err)
	}
	mustUpdate(t, s, again.ID, func(r *Record) error { r.ReportDone = true; return nil })
	if keys := indexKeys(t, s, bucketOriginals); len(keys) != 0 {
		t.Errorf("originals left after every record was reported: %q", keys)
	}
}

// TestSharedHeader: every record's header block is stored apart from it,
// once per mail (the records of a mail share it, a lone record has its
// own), so that the record's several rewrites do not carry it; Header
// reads it; it goes when the last record of the mail is final and
// reported, or purged. A record of layout 5 keeps its header inline.
func TestSharedHeader(t *testing.T) {
	clk := newClock()
	s, _ := openTemp(t, Options{Now: clk.Now, Retention: time.Hour})
	hdr := []byte("Subject: shared\r\nMessage-ID: <h@x>\r\n\r\n")
	var recs []*Record
	for i := range 3 {
		r := record(fmt.Sprintf("+49151123456%d", i), 1)
		r.Header = hdr
		recs = append(recs, r)
	}
	single := record("+491511234569", 1)
	singleHdr := []byte("Subject: alone\r\n\r\n")
	single.Header = singleHdr
	none := record("+491511234568", 1)
	mustAdd(t, s, append(recs, single, none)...)
	if keys := indexKeys(t, s, bucketHeaders); !slices.Equal(keys, []string{recs[0].ID, single.ID}) {
		t.Fatalf("headers bucket %q, want copies under %s and %s", keys, recs[0].ID, single.ID)
	}
	for _, r := range append(recs, single, none) {
		got := mustGet(t, s, r.ID)
		if got.Header != nil {
			t.Errorf("%s: stored record carries its header (%d bytes)", r.ID, len(got.Header))
		}
		want := hdr
		switch r {
		case single:
			want = singleHdr
		case none:
			want = nil
		}
		h, err := s.Header(got)
		if err != nil || string(h) != string(want) {
			t.Errorf("Header(%s) = %q, %v; want %q", r.ID, h, err, want)
		}
	}
	for i, r := range recs {
		mustUpdate(t, s, r.ID, func(r *Record) error { r.State, r.ReportDone = Failed, true; return nil })
		kept := slices.Contains(indexKeys(t, s, bucketHeaders), recs[0].ID)
		if last := i == len(recs)-1; kept == last {
			t.Fatalf("after %d of %d records reported, shared header kept: %v", i+1, len(recs), kept)
		}
	}
	if h, _ := s.Header(mustGet(t, s, recs[0].ID)); h != nil {
		t.Errorf("reported record still has a header: %q", h)
	}
	// A record that is purged without a report (cancelled, then purged)
	// gives its copy back too.
	mustUpdate(t, s, single.ID, func(r *Record) error { r.State = Cancelled; return nil })
	mustUpdate(t, s, single.ID, func(r *Record) error { r.ReportDone = true; return nil })
	clk.Add(2 * time.Hour)
	if _, err := s.Purge(context.Background(), clk.Now()); err != nil {
		t.Fatal(err)
	}
	if keys := indexKeys(t, s, bucketHeaders); len(keys) != 0 {
		t.Errorf("headers left: %q", keys)
	}
	// A record that refers to a stored copy cannot be added again: its
	// claim would not be counted.
	re := record("+491511234567", 1)
	re.HeaderRef = recs[0].ID
	if err := s.Add(context.Background(), []*Record{re}); err == nil {
		t.Error("Add took a record with a HeaderRef")
	}
	// Layout 5: the header is in the record.
	old := &Record{ID: "x", Header: []byte("Subject: old\r\n\r\n")}
	if h, err := s.Header(old); err != nil || string(h) != "Subject: old\r\n\r\n" {
		t.Errorf("Header of an inline record = %q, %v", h, err)
	}
}
