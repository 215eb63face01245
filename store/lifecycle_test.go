package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func TestRecover(t *testing.T) {
	clk := newClock()
	s, path := openTemp(t, Options{Now: clk.Now})
	queued, half, none, submitted := record("+491511234561", 1), record("+491511234562", 2),
		record("+491511234563", 1), record("+491511234564", 1)
	mustAdd(t, s, queued, half, none, submitted)
	toSubmitting := func(r *Record) error { r.State = Submitting; return nil }
	mustUpdate(t, s, half.ID, toSubmitting)
	mustUpdate(t, s, half.ID, func(r *Record) error { // the first segment made it
		r.Segments[0].SMSCID, r.Segments[0].State = "H1", SegSubmitted
		return nil
	})
	mustUpdate(t, s, none.ID, toSubmitting)
	mustUpdate(t, s, submitted.ID, submit("S"))
	if keys := indexKeys(t, s, bucketSubmitting); !slices.Equal(keys, []string{half.ID, none.ID}) {
		t.Fatalf("submitting index = %q", keys)
	}

	// The crash.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	clk.Add(time.Hour)
	s, err := Open(path, Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	now := clk.Now()
	n, err := s.Recover(now)
	if err != nil || n != 2 {
		t.Fatalf("Recover = %d, %v; want 2", n, err)
	}
	for _, id := range []string{half.ID, none.ID} {
		r := mustGet(t, s, id)
		last := r.Events[len(r.Events)-1]
		if r.State != Queued || !r.NextAttempt.Equal(now) || last.What != "recovered" || last.Detail != "recovered after restart" {
			t.Errorf("%s after Recover: %s next %v last event %+v", id, r.State, r.NextAttempt, last)
		}
	}
	if r := mustGet(t, s, half.ID); r.Segments[0].SMSCID != "H1" || r.Segments[1].SMSCID != "" {
		t.Errorf("segments after Recover: %+v", r.Segments)
	}
	if keys := indexKeys(t, s, bucketSubmitting); len(keys) != 0 {
		t.Errorf("submitting index after Recover = %q", keys)
	}
	due, _, _ := s.Due(now, 0)
	if got, want := ids(due), []string{queued.ID, half.ID, none.ID}; !slices.Equal(got, want) {
		t.Errorf("Due = %v, want %v", got, want)
	}
	if got := mustGet(t, s, submitted.ID); got.State != Submitted {
		t.Errorf("submitted record became %s", got.State)
	}
	// A receipt for the segment that made it still counts.
	if _, matched, err := s.ApplyReceipt(Receipt{SMSCID: "H1", Stat: "DELIVRD"}); err != nil || !matched {
		t.Errorf("receipt after Recover: %v %v", matched, err)
	}
	if n, err := s.Recover(now); err != nil || n != 0 {
		t.Errorf("second Recover = %d, %v", n, err)
	}
	if counts, _ := s.Counts(); !reflect.DeepEqual(counts, map[State]int{Queued: 3, Submitted: 1}) {
		t.Errorf("Counts = %v", counts)
	}
}

func TestRecoverMoreThanAChunk(t *testing.T) {
	defer func(c int) { chunk = c }(chunk)
	chunk = 3
	s, _ := openTemp(t, Options{Now: newClock().Now})
	var recs []*Record
	for range 10 {
		recs = append(recs, record("+491511234567", 1))
	}
	mustAdd(t, s, recs...)
	for _, r := range recs {
		mustUpdate(t, s, r.ID, func(r *Record) error { r.State = Submitting; return nil })
	}
	if n, err := s.Recover(t0); err != nil || n != 10 {
		t.Fatalf("Recover = %d, %v", n, err)
	}
	if due := indexKeys(t, s, bucketDue); len(due) != 10 {
		t.Errorf("%d due", len(due))
	}
}

func TestReceiptsWhileSubmitting(t *testing.T) {
	tests := []struct {
		name      string
		stats     []string // receipts for segments 1 and 2 (both have ids)
		wantState State
	}{
		{"one part failed fails the record", []string{"UNDELIV"}, Failed},
		{"all parts delivered before the state says submitted", []string{"DELIVRD", "DELIVRD"}, Delivered},
		{"some parts delivered stays submitting", []string{"DELIVRD"}, Submitting},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := openTemp(t, Options{Now: newClock().Now})
			r := record("+491511234567", 2)
			mustAdd(t, s, r)
			mustUpdate(t, s, r.ID, func(r *Record) error {
				r.State = Submitting
				for i := range r.Segments {
					r.Segments[i].SMSCID, r.Segments[i].State = fmt.Sprint("W", i+1), SegSubmitted
				}
				return nil
			})
			for i, st := range tc.stats {
				if _, _, err := s.ApplyReceipt(Receipt{SMSCID: fmt.Sprint("W", i+1), Stat: st}); err != nil {
					t.Fatal(err)
				}
			}
			got := mustGet(t, s, r.ID)
			if got.State != tc.wantState {
				t.Errorf("state %s, want %s", got.State, tc.wantState)
			}
			inIndex := len(indexKeys(t, s, bucketSubmitting)) == 1
			if inIndex != (tc.wantState == Submitting) {
				t.Errorf("in submitting index: %v", inIndex)
			}
		})
	}
}

func TestCancel(t *testing.T) {
	for _, from := range States {
		t.Run("from "+string(from), func(t *testing.T) {
			s, _ := openTemp(t, Options{Now: newClock().Now})
			r := into(t, s, from)
			got, err := s.Cancel(r.ID, "operator: wrong number")
			if from.Final() {
				if !errors.Is(err, ErrBadTransition) || got != nil {
					t.Fatalf("Cancel = %v, %v; want ErrBadTransition", got, err)
				}
				if stored := mustGet(t, s, r.ID); !reflect.DeepEqual(stored, r) {
					t.Errorf("record changed: %+v", stored)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			last := got.Events[len(got.Events)-1]
			if got.State != Cancelled || got.LastError != "operator: wrong number" ||
				last.What != "cancelled" || last.Detail != "operator: wrong number" || got.FinalAt.IsZero() {
				t.Errorf("after Cancel: %s %q %+v FinalAt %v", got.State, got.LastError, last, got.FinalAt)
			}
			if due := indexKeys(t, s, bucketDue); len(due) != 0 {
				t.Errorf("due index %q", due)
			}
			if rep := indexKeys(t, s, bucketReport); !slices.Equal(rep, []string{r.ID}) {
				t.Errorf("report index %q", rep)
			}
		})
	}
	s, _ := openTemp(t, Options{})
	if _, err := s.Cancel("nope", "x"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Cancel unknown: %v", err)
	}
}

func TestCountsFollowEveryChange(t *testing.T) {
	clk := newClock()
	s, path := openTemp(t, Options{Now: clk.Now, Retention: time.Hour})
	check := func(step string) {
		t.Helper()
		counts, err := s.Counts()
		if err != nil {
			t.Fatal(err)
		}
		all, _ := s.List("", 0)
		want := map[State]int{}
		for _, r := range all {
			want[r.State]++
		}
		if !reflect.DeepEqual(counts, want) {
			t.Errorf("%s: Counts = %v, records say %v", step, counts, want)
		}
	}
	check("empty")
	var recs []*Record
	for i := range 6 {
		recs = append(recs, record(fmt.Sprint("+49151123456", i), 1))
	}
	mustAdd(t, s, recs...)
	check("added")
	mustUpdate(t, s, recs[0].ID, func(r *Record) error { r.State = Submitting; return nil })
	mustUpdate(t, s, recs[1].ID, submit("C"))
	check("submitting, submitted")
	if _, _, err := s.ApplyReceipt(Receipt{SMSCID: "C1", Stat: "DELIVRD"}); err != nil {
		t.Fatal(err)
	}
	mustUpdate(t, s, recs[2].ID, func(r *Record) error { r.State = Expired; return nil })
	if _, err := s.Cancel(recs[3].ID, "x"); err != nil {
		t.Fatal(err)
	}
	mustUpdate(t, s, recs[4].ID, func(r *Record) error { r.State = Failed; return nil })
	check("final")
	if _, err := s.Update(recs[5].ID, func(r *Record) error { r.State = "bogus"; return nil }); err == nil {
		t.Fatal("unknown state accepted")
	}
	check("refused")
	if _, err := s.Recover(clk.Now()); err != nil {
		t.Fatal(err)
	}
	check("recovered")
	for _, r := range recs[1:5] {
		mustUpdate(t, s, r.ID, func(r *Record) error { r.ReportDone = true; return nil })
	}
	clk.Add(2 * time.Hour)
	if n, err := s.Purge(context.Background(), clk.Now()); err != nil || n != 4 {
		t.Fatalf("Purge = %d, %v", n, err)
	}
	check("purged")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	check("reopened")
}

func TestRefs(t *testing.T) {
	const a, b = "+491511111111", "+491512222222"
	clk := newClock()
	s, path := openTemp(t, Options{Now: clk.Now})
	add := func(recs ...*Record) []uint16 {
		t.Helper()
		mustAdd(t, s, recs...)
		var refs []uint16
		for _, r := range recs {
			refs = append(refs, r.Ref)
		}
		return refs
	}
	tests := []struct {
		name string
		recs []*Record
		want []uint16
	}{
		{"first multipart to a destination gets 1", []*Record{record(a, 2)}, []uint16{1}},
		{"next one gets 2", []*Record{record(a, 3)}, []uint16{2}},
		{"a single SMS gets one too (it may be encoded again in parts)", []*Record{record(a, 1)}, []uint16{3}},
		{"another destination counts on its own", []*Record{record(b, 2)}, []uint16{1}},
		{"one Add, several records", []*Record{record(a, 2), record(b, 2), record(a, 2)}, []uint16{4, 2, 5}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := add(tc.recs...); !slices.Equal(got, tc.want) {
				t.Errorf("refs %v, want %v", got, tc.want)
			}
			for _, r := range tc.recs {
				if stored := mustGet(t, s, r.ID); stored.Ref != r.Ref {
					t.Errorf("stored ref %d, returned %d", stored.Ref, r.Ref)
				}
			}
		})
	}
	t.Run("a ref given by the caller is replaced", func(t *testing.T) {
		r := record(a, 2)
		r.Ref = 0xBEEF
		if got := add(r); got[0] != 6 {
			t.Errorf("ref %d, want 6", got[0])
		}
		r = record(a, 1)
		r.Ref = 0xBEEF
		if got := add(r); got[0] != 7 {
			t.Errorf("single segment ref %d, want 7", got[0])
		}
	})
	t.Run("survives a restart", func(t *testing.T) {
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		var err error
		if s, err = Open(path, Options{Now: clk.Now}); err != nil {
			t.Fatal(err)
		}
		if got := add(record(a, 2)); got[0] != 8 {
			t.Errorf("ref after reopen %d, want 8", got[0])
		}
	})
	t.Run("wraps at 65536", func(t *testing.T) {
		err := s.w.do(func(tx *txn) error {
			v := append([]byte{0xFF, 0xFF}, timeKey(clk.Now())...)
			return tx.Bucket(bucketRefs).Put(append(timeKey(generation(clk.Now(), refsGeneration)), b...), v)
		})
		if err != nil {
			t.Fatal(err)
		}
		if got := add(record(b, 2), record(b, 2)); !slices.Equal(got, []uint16{0, 1}) {
			t.Errorf("refs after 65535: %v", got)
		}
	})
	s.Close()
}

func TestRefsUniqueUnderConcurrentAdds(t *testing.T) {
	s, _ := openTemp(t, Options{})
	const n = 64
	refs := make(chan uint16, n)
	done := make(chan error, n)
	for range n {
		go func() {
			r := record("+491511234567", 2)
			err := s.Add(context.Background(), []*Record{r})
			refs <- r.Ref
			done <- err
		}()
	}
	seen := map[uint16]bool{}
	for range n {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		seen[<-refs] = true
	}
	if len(seen) != n || seen[0] || !seen[n] {
		t.Errorf("refs not 1..%d: %v", n, seen)
	}
}

func TestDedup(t *testing.T) {
	const a, b = "+491511111111", "+491512222222"
	mail := func(msgid, to string) *Record {
		r := record(to, 1)
		r.MessageID = msgid
		return r
	}
	type step struct {
		after time.Duration // clock moves first
		recs  []*Record     // one Add
		dupOf []int         // per record: index in the steps' records (flattened) of the original, or -1
	}
	tests := []struct {
		name   string
		window time.Duration
		steps  []step
	}{
		{"same mail again within the window is a duplicate", 0, []step{
			{0, []*Record{mail("<m1@x>", a)}, []int{-1}},
			{9 * time.Minute, []*Record{mail("<m1@x>", a)}, []int{0}},
		}},
		{"after the window it is sent again", 0, []step{
			{0, []*Record{mail("<m1@x>", a)}, []int{-1}},
			{10 * time.Minute, []*Record{mail("<m1@x>", a)}, []int{-1}},
			{time.Minute, []*Record{mail("<m1@x>", a)}, []int{1}},
		}},
		{"the window counts from the first acceptance", 0, []step{
			{0, []*Record{mail("<m1@x>", a)}, []int{-1}},
			{6 * time.Minute, []*Record{mail("<m1@x>", a)}, []int{0}},
			{6 * time.Minute, []*Record{mail("<m1@x>", a)}, []int{-1}},
		}},
		{"same mail to two recipients is not a duplicate", 0, []step{
			{0, []*Record{mail("<m1@x>", a), mail("<m1@x>", b)}, []int{-1, -1}},
			{time.Minute, []*Record{mail("<m1@x>", a), mail("<m1@x>", b)}, []int{0, 1}},
		}},
		{"twice in one Add", 0, []step{
			{0, []*Record{mail("<m1@x>", a), mail("<m1@x>", a)}, []int{-1, 0}},
		}},
		{"empty Message-ID never deduplicates", 0, []step{
			{0, []*Record{mail("", a), mail("", a)}, []int{-1, -1}},
			{time.Second, []*Record{mail("", a)}, []int{-1}},
		}},
		{"other Message-ID is another mail", 0, []step{
			{0, []*Record{mail("<m1@x>", a)}, []int{-1}},
			{time.Second, []*Record{mail("<m2@x>", a)}, []int{-1}},
		}},
		{"negative window disables", -1, []step{
			{0, []*Record{mail("<m1@x>", a)}, []int{-1}},
			{time.Second, []*Record{mail("<m1@x>", a)}, []int{-1}},
		}},
		{"across a generation boundary", 0, []step{
			{8 * time.Minute, []*Record{mail("<m1@x>", a)}, []int{-1}},
			{5 * time.Minute, []*Record{mail("<m1@x>", a)}, []int{0}},  // the next generation
			{5 * time.Minute, []*Record{mail("<m1@x>", a)}, []int{-1}}, // 10 minutes after the first
			{time.Minute, []*Record{mail("<m1@x>", a)}, []int{2}},
		}},
		{"a shorter window", time.Minute, []step{
			{0, []*Record{mail("<m1@x>", a)}, []int{-1}},
			{59 * time.Second, []*Record{mail("<m1@x>", a)}, []int{0}},
			{time.Second, []*Record{mail("<m1@x>", a)}, []int{-1}},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clk := newClock()
			s, _ := openTemp(t, Options{Now: clk.Now, DedupWindow: tc.window})
			var all []*Record
			stored := 0
			for i, st := range tc.steps {
				clk.Add(st.after)
				mustAdd(t, s, st.recs...)
				all = append(all, st.recs...)
				for j, r := range st.recs {
					want := ""
					if st.dupOf[j] >= 0 {
						want = all[st.dupOf[j]].ID
					} else {
						stored++
					}
					if r.DuplicateOf != want || (want != "" && r.ID != want) {
						t.Errorf("step %d record %d: DuplicateOf %q ID %q, want %q", i, j, r.DuplicateOf, r.ID, want)
					}
				}
			}
			if recs, _ := s.List("", 0); len(recs) != stored {
				t.Errorf("%d records stored, want %d", len(recs), stored)
			}
			if counts, _ := s.Counts(); counts[Queued] != stored {
				t.Errorf("Counts = %v, want %d queued", counts, stored)
			}
		})
	}
}

func TestDedupLongMessageID(t *testing.T) {
	s, _ := openTemp(t, Options{Now: newClock().Now})
	long := "<" + string(make([]byte, 40000)) + "@x>" // longer than a bbolt key may be
	a, b := record("+491511234567", 1), record("+491511234567", 1)
	a.MessageID, b.MessageID = long, long
	mustAdd(t, s, a)
	mustAdd(t, s, b)
	if b.DuplicateOf != a.ID {
		t.Errorf("DuplicateOf %q, want %q", b.DuplicateOf, a.ID)
	}
}

func TestPurge(t *testing.T) {
	const retention = 24 * time.Hour
	clk := newClock()
	s, _ := openTemp(t, Options{Now: clk.Now, Retention: retention, ParkedMaxAge: time.Hour})
	mk := func(to, msgid string, segs int) *Record {
		r := record(to, segs)
		r.MessageID = msgid
		mustAdd(t, s, r)
		return r
	}
	deliver := func(r *Record, prefix string, reported bool) {
		mustUpdate(t, s, r.ID, submit(prefix))
		for i := range r.Segments {
			if _, _, err := s.ApplyReceipt(Receipt{SMSCID: fmt.Sprint(prefix, i+1), Stat: "DELIVRD"}); err != nil {
				t.Fatal(err)
			}
		}
		if reported {
			mustUpdate(t, s, r.ID, func(r *Record) error { r.ReportDone = true; return nil })
		}
	}
	// Two days ago.
	old := mk("+491510000001", "<old@x>", 2)
	deliver(old, "O", true)
	oldUnreported := mk("+491510000002", "<unrep@x>", 1)
	deliver(oldUnreported, "U", false)
	oldQueued := mk("+491510000003", "<q@x>", 1)
	oldSubmitted := mk("+491510000004", "<s@x>", 1)
	mustUpdate(t, s, oldSubmitted.ID, submit("S"))
	oldCancelled := mk("+491510000005", "", 1)
	if _, err := s.Cancel(oldCancelled.ID, "x"); err != nil {
		t.Fatal(err)
	}
	mustUpdate(t, s, oldCancelled.ID, func(r *Record) error { r.ReportDone = true; return nil })
	if _, _, err := s.ApplyReceipt(Receipt{SMSCID: "never-seen", Stat: "DELIVRD"}); err != nil {
		t.Fatal(err)
	}
	// Now.
	clk.Add(2 * retention)
	recent := mk("+491510000006", "<new@x>", 2)
	deliver(recent, "N", true)
	if _, _, err := s.ApplyReceipt(Receipt{SMSCID: "seen-lately", Stat: "DELIVRD"}); err != nil {
		t.Fatal(err)
	}

	n, err := s.Purge(context.Background(), clk.Now())
	if err != nil || n != 2 {
		t.Fatalf("Purge = %d, %v; want 2", n, err)
	}
	for _, r := range []*Record{old, oldCancelled} {
		if _, err := s.Get(r.ID); !errors.Is(err, ErrNotFound) {
			t.Errorf("%s still there: %v", r.ID, err)
		}
	}
	for _, r := range []*Record{oldUnreported, oldQueued, oldSubmitted, recent} {
		got := mustGet(t, s, r.ID)
		if got.ID != r.ID {
			t.Errorf("live record %s damaged", r.ID)
		}
	}
	if got := indexKeys(t, s, bucketSMSC); !slices.Equal(got, []string{"N1", "N2", "S1", "U1"}) {
		t.Errorf("smscid index %q", got)
	}
	if got := indexKeys(t, s, bucketFinal); !slices.Equal(got, []string{string(timeIDKey(mustGet(t, s, recent.ID).FinalAt, recent.ID))}) {
		t.Errorf("final index %q", got)
	}
	if got := indexKeys(t, s, bucketReport); !slices.Equal(got, []string{oldUnreported.ID}) {
		t.Errorf("report index %q", got)
	}
	if got := len(indexKeys(t, s, bucketDue)); got != 1 {
		t.Errorf("%d due", got)
	}
	if got := genKeys(t, s, bucketDedup); !slices.Equal(got, []string{"<new@x>\x00alice@example.org\x00\x00+491510000006"}) {
		t.Errorf("dedup index %q", got)
	}
	if got := len(genKeys(t, s, bucketRefs)); got != 6 { // kept a week at least, whatever the retention
		t.Errorf("%d refs, want 6", got)
	}
	if got := indexKeys(t, s, bucketParked); !slices.Equal(got, []string{"seen-lately"}) {
		t.Errorf("parked %q", got)
	}
	if counts, _ := s.Counts(); !reflect.DeepEqual(counts, map[State]int{Queued: 1, Submitted: 1, Delivered: 2}) {
		t.Errorf("Counts = %v", counts)
	}
	if n, err := s.Purge(context.Background(), clk.Now()); err != nil || n != 0 {
		t.Errorf("second Purge = %d, %v", n, err)
	}
}

func TestPurgeInChunks(t *testing.T) {
	defer func(c int) { chunk = c }(chunk)
	chunk = 4
	clk := newClock()
	s, _ := openTemp(t, Options{Now: clk.Now, Retention: time.Hour})
	var recs []*Record
	for i := range 11 {
		r := record("+491511234567", 1)
		r.MessageID = fmt.Sprint(i)
		recs = append(recs, r)
	}
	mustAdd(t, s, recs...)
	for _, r := range recs {
		mustUpdate(t, s, r.ID, func(r *Record) error { r.State, r.ReportDone = Failed, true; return nil })
	}
	clk.Add(2 * time.Hour)
	before := commits(t, s)
	n, err := s.Purge(context.Background(), clk.Now())
	if err != nil || n != 11 {
		t.Fatalf("Purge = %d, %v", n, err)
	}
	if c := commits(t, s) - before; c < 3 {
		t.Errorf("%d commits, want at least 3 of %d keys", c, chunk)
	}
	for _, b := range [][]byte{bucketRecords, bucketFinal, bucketDedup, bucketCounts} {
		if keys := indexKeys(t, s, b); len(keys) != 0 {
			t.Errorf("%s has %d keys", b, len(keys))
		}
	}
}

func TestPurgeStopsWithContext(t *testing.T) {
	s, _ := openTemp(t, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Purge(ctx, time.Now()); !errors.Is(err, context.Canceled) {
		t.Errorf("Purge = %v", err)
	}
}

// TestPurgeDropsOldGenerations: dedup entries and reference counters are
// kept by generation (see generation); Purge drops the generations that
// hold only stale entries, over several transactions, and keeps a counter
// used again since.
func TestPurgeDropsOldGenerations(t *testing.T) {
	defer func(c int) { chunk = c }(chunk)
	chunk = 3
	clk := newClock() // 10:00 on a Tuesday, the start of a dedup generation
	s, _ := openTemp(t, Options{Now: clk.Now, DedupWindow: 10 * time.Minute, Retention: time.Hour})
	add := func(to, msgid string) *Record {
		r := record(to, 1)
		r.MessageID = msgid
		mustAdd(t, s, r)
		return r
	}
	purge := func() {
		t.Helper()
		if n, err := s.Purge(context.Background(), clk.Now()); err != nil || n != 0 {
			t.Fatalf("Purge = %d, %v", n, err)
		}
	}
	for i := range 10 {
		add(fmt.Sprintf("+49151000000%d", i), fmt.Sprintf("<%d@x>", i))
	}
	clk.Add(15 * time.Minute) // 10:15: past the window, in the next generation
	again := add("+491510000003", "<again@x>")
	purge()
	if got := len(genKeys(t, s, bucketDedup)); got != 11 {
		t.Errorf("dedup entries, the window reaching into the 10:00 generation: %d, want 11", got)
	}
	clk.Add(10 * time.Minute) // 10:25: the window starts in the 10:10 generation
	purge()
	if got := genKeys(t, s, bucketDedup); !slices.Equal(got, []string{"<again@x>\x00alice@example.org\x00\x00+491510000003"}) {
		t.Errorf("dedup after the window = %q", got)
	}
	if got := len(genKeys(t, s, bucketRefs)); got != 10 {
		t.Errorf("refs: %d, want 10", got)
	}
	clk.Add(refsGeneration) // a week on: the ten are in the previous generation
	again2 := add("+491510000003", "<again2@x>")
	purge()
	if got := len(genKeys(t, s, bucketRefs)); got != 11 {
		t.Errorf("refs of this and the previous generation: %d, want 11", got)
	}
	clk.Add(refsGeneration) // two weeks on
	purge()
	if got := genKeys(t, s, bucketRefs); !slices.Equal(got, []string{"+491510000003"}) {
		t.Errorf("refs after two generations = %q", got)
	}
	// The counter goes on from where it was.
	next := add("+491510000003", "")
	if again2.Ref != again.Ref+1 || next.Ref != again2.Ref+1 {
		t.Errorf("refs %d, %d, %d: want one more each time", again.Ref, again2.Ref, next.Ref)
	}
	if got := len(genKeys(t, s, bucketDedup)); got != 0 {
		t.Errorf("dedup entries left: %d", got)
	}
}

// TestPurgeDropsDedupOfPurgedRecord: with a retention shorter than the
// dedup window, a purged record's dedup entry goes with it, so the same
// mail again is a new record, not a duplicate of one that is gone.
func TestPurgeDropsDedupOfPurgedRecord(t *testing.T) {
	clk := newClock()
	s, _ := openTemp(t, Options{Now: clk.Now, DedupWindow: time.Hour, Retention: time.Minute})
	first := record("+491511234567", 1)
	first.MessageID = "<m@x>"
	mustAdd(t, s, first)
	mustUpdate(t, s, first.ID, func(r *Record) error { r.State, r.ReportDone = Failed, true; return nil })
	clk.Add(2 * time.Minute)
	if n, err := s.Purge(context.Background(), clk.Now()); err != nil || n != 1 {
		t.Fatalf("Purge = %d, %v", n, err)
	}
	if got := genKeys(t, s, bucketDedup); len(got) != 0 {
		t.Errorf("dedup entries of the purged record: %q", got)
	}
	again := record("+491511234567", 1)
	again.MessageID = "<m@x>"
	mustAdd(t, s, again)
	if again.DuplicateOf != "" {
		t.Errorf("a duplicate of the purged record %s", again.DuplicateOf)
	}
}

// TestDedupKeyAsBefore: the key after the generation is the key of
// layouts before 7, which migrated entries keep: MessageID ‖ 0 ‖ the sender
// in lower case ‖ 0 ‖ user, hashed when over 256 bytes, ‖ 0 ‖ To.
func TestDedupKeyAsBefore(t *testing.T) {
	before := func(r *Record) string {
		mid := r.MessageID + "\x00" + strings.ToLower(r.From) + "\x00" + r.User
		if len(mid) > 256 {
			sum := sha256.Sum256([]byte(mid))
			mid = "sha256:" + hex.EncodeToString(sum[:])
		}
		return mid + "\x00" + r.To
	}
	long := strings.Repeat("x", 250)
	for _, r := range []*Record{
		{MessageID: "<m@x>", From: "Alice@Example.ORG", User: "", To: "+491511234567"},
		{MessageID: "<m@x>", From: "", User: "acme", To: "+1"},
		{MessageID: "<m@x>", From: "ÄLICE@bücher.DE", User: "u", To: "+44"},
		{MessageID: long, From: "B@x", To: "+33"},  // 256 bytes: kept
		{MessageID: long, From: "Bo@x", To: "+33"}, // 257: hashed
		{MessageID: long, From: "İ@x", To: "+33"},  // longer once lower-cased
	} {
		if got, want := string(dedupKey(r)[8:]), before(r); got != want {
			t.Errorf("dedupKey(%q, %q, %q) = %q, want %q", r.MessageID[:min(len(r.MessageID), 10)], r.From, r.User, got, want)
		}
	}
}

// TestDedupAcrossOpens: generations do not depend on the options, so a
// file opened again with a longer or shorter window, or with the defaults,
// finds what it accepted.
func TestDedupAcrossOpens(t *testing.T) {
	for _, w := range []time.Duration{0, time.Hour, 3 * time.Minute} {
		t.Run(fmt.Sprint(w), func(t *testing.T) {
			clk := newClock()
			s, path := openTemp(t, Options{Now: clk.Now, DedupWindow: 30 * time.Minute})
			clk.Add(8 * time.Minute)
			first := record("+491511234567", 1)
			first.MessageID = "<m@x>"
			mustAdd(t, s, first)
			clk.Add(2*time.Minute + 30*time.Second) // 10:10:30, the next generation
			s = reopen(t, s, path, Options{Now: clk.Now, DedupWindow: w})
			defer s.Close()
			if again := addMail(t, s, "+491511234567", "<m@x>"); again.DuplicateOf != first.ID {
				t.Errorf("window %v: DuplicateOf %q, want %q", w, again.DuplicateOf, first.ID)
			}
		})
	}
}

// TestDedupClockSteppedBack: a clock stepped back across generation
// boundaries, by up to maxStepBack, still finds what was accepted before
// the step, also after a restart.
func TestDedupClockSteppedBack(t *testing.T) {
	for _, tc := range []struct {
		back   time.Duration
		reopen bool
	}{{2 * time.Second, false}, {30 * time.Minute, false}, {30 * time.Minute, true}} {
		t.Run(fmt.Sprint(tc.back, tc.reopen), func(t *testing.T) {
			clk := newClock()
			opt := Options{Now: clk.Now, DedupWindow: 2 * time.Hour}
			s, path := openTemp(t, opt)
			clk.Add(10*time.Minute + time.Second) // 10:10:01
			first := record("+491511234567", 1)
			first.MessageID = "<m@x>"
			mustAdd(t, s, first)
			clk.Add(-tc.back)
			if tc.reopen {
				s = reopen(t, s, path, opt)
				defer s.Close()
			}
			if again := addMail(t, s, "+491511234567", "<m@x>"); again.DuplicateOf != first.ID {
				t.Errorf("DuplicateOf %q, want %q", again.DuplicateOf, first.ID)
			}
		})
	}
}

// TestPurgeSweepIsPaced: a sweep's deletes wait sweepPace per key, so that
// a dedup window's worth of them is spread out, and a cancelled context
// ends the wait at once.
func TestPurgeSweepIsPaced(t *testing.T) {
	defer func(c int, p time.Duration) { chunk, sweepPace = c, p }(chunk, sweepPace)
	chunk, sweepPace = 10, 2*time.Millisecond
	clk := newClock()
	s, _ := openTemp(t, Options{Now: clk.Now, DedupWindow: time.Minute})
	for i := range 40 {
		r := record(fmt.Sprintf("+4915100000%02d", i), 1)
		r.MessageID = fmt.Sprintf("<%d@x>", i)
		mustAdd(t, s, r)
	}
	clk.Add(time.Hour)
	start := time.Now()
	if _, err := s.Purge(context.Background(), clk.Now()); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < 40*sweepPace {
		t.Errorf("40 deletes took %v, want at least %v", took, 40*sweepPace)
	}
	if got := indexKeys(t, s, bucketDedup); len(got) != 0 {
		t.Errorf("dedup after the window: %q", got)
	}

	for i := range 40 {
		r := record(fmt.Sprintf("+4915200000%02d", i), 1)
		r.MessageID = fmt.Sprintf("<b%d@x>", i)
		mustAdd(t, s, r)
	}
	clk.Add(time.Hour)
	sweepPace = time.Hour
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	start = time.Now()
	if _, err := s.Purge(ctx, clk.Now()); !errors.Is(err, context.Canceled) {
		t.Errorf("Purge = %v, want it cancelled", err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("a cancelled purge took %v", took)
	}
}

// TestMigrateLayout4 drops the age indexes that layout 5 no longer keeps.
func TestMigrateLayout4(t *testing.T) {
	s, path := openTemp(t, Options{})
	r := record("+491511234567", 1)
	r.MessageID = "<m@x>"
	mustAdd(t, s, r)
	s.Close()
	rawUpdate(t, path, func(tx *bolt.Tx) error {
		for _, b := range droppedBuckets {
			if _, err := tx.CreateBucket(b); err != nil {
				return err
			}
		}
		if err := unprefix(tx); err != nil {
			return err
		}
		return tx.Bucket(bucketMeta).Put(keyVersion, []byte("4"))
	})
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	err = s.db.View(func(tx *bolt.Tx) error {
		for _, b := range droppedBuckets {
			if tx.Bucket(b) != nil {
				t.Errorf("bucket %s still there", b)
			}
		}
		if v := tx.Bucket(bucketMeta).Get(keyVersion); string(v) != layoutVersion {
			t.Errorf("version %q", v)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := mustGet(t, s, r.ID); got.MessageID != "<m@x>" {
		t.Errorf("record after migration: %+v", got)
	}
	// The dedup entry survived: the same mail again is a duplicate.
	dup := record("+491511234567", 1)
	dup.MessageID = "<m@x>"
	mustAdd(t, s, dup)
	if dup.DuplicateOf != r.ID {
		t.Errorf("DuplicateOf = %q, want %q", dup.DuplicateOf, r.ID)
	}
}

// unprefix moves the dedup and refs entries back to their buckets of
// layouts before 7, without the generation prefix.
func unprefix(tx *bolt.Tx) error {
	for _, r := range regenerated {
		old, err := tx.CreateBucket(r.old)
		if err != nil {
			return err
		}
		if err := tx.Bucket(r.new).ForEach(func(k, v []byte) error {
			return old.Put(k[8:], v)
		}); err != nil {
			return err
		}
		if err := tx.DeleteBucket(r.new); err != nil {
			return err
		}
		if _, err := tx.CreateBucket(r.new); err != nil {
			return err
		}
	}
	return nil
}

// TestMigrateLayout6 gives the dedup and refs entries their generation:
// a duplicate within the window and a destination's counter are found
// after the migration, whatever the options of the open that migrates.
func TestMigrateLayout6(t *testing.T) {
	defer func(b int) { regenBatch = b }(regenBatch)
	regenBatch = 1 // a transaction per entry
	clk := newClock()
	s, path := openTemp(t, Options{Now: clk.Now, DedupWindow: time.Hour})
	mk := func(to, msgid string) *Record {
		r := record(to, 1)
		r.MessageID = msgid
		mustAdd(t, s, r)
		return r
	}
	older := mk("+491510000001", "<older@x>")
	clk.Add(35 * time.Minute) // 10:35
	recent := mk("+491510000002", "<recent@x>")
	s.Close()
	var refs []string
	rawUpdate(t, path, func(tx *bolt.Tx) error {
		if err := tx.Bucket(bucketRefs).ForEach(func(k, v []byte) error {
			refs = append(refs, string(k))
			return nil
		}); err != nil {
			return err
		}
		if err := unprefix(tx); err != nil {
			return err
		}
		// An earlier migration, cut short by a crash, had copied one
		// counter (a made-up value here, which the copy overwrites).
		if err := tx.Bucket(bucketRefs).Put([]byte(refs[0]), append([]byte{0x12, 0x34}, timeKey(t0)...)); err != nil {
			return err
		}
		return tx.Bucket(bucketMeta).Put(keyVersion, []byte("6"))
	})
	clk.Add(10 * time.Minute) // 10:45
	// A queue command migrates, with the default options (a 10-minute window).
	s, err := Open(path, Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	if got := len(genKeys(t, s, bucketDedup)); got != 2 {
		t.Errorf("dedup entries after migration: %d, want 2", got)
	}
	if got := indexKeys(t, s, bucketRefs); !slices.Equal(got, refs) {
		t.Errorf("refs after migration %q, want %q", got, refs)
	}
	err = s.db.View(func(tx *bolt.Tx) error {
		for _, r := range regenerated {
			if tx.Bucket(r.old) != nil {
				t.Errorf("bucket %s still there", r.old)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if s, err = Open(path, Options{Now: clk.Now, DedupWindow: time.Hour}); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if dup := mk("+491510000001", "<older@x>"); dup.DuplicateOf != older.ID {
		t.Errorf("DuplicateOf = %q, want %q", dup.DuplicateOf, older.ID)
	}
	if dup := mk("+491510000002", "<recent@x>"); dup.DuplicateOf != recent.ID {
		t.Errorf("DuplicateOf = %q, want %q", dup.DuplicateOf, recent.ID)
	}
	if next := mk("+491510000002", ""); next.Ref != recent.Ref+1 {
		t.Errorf("ref after migration %d, want %d", next.Ref, recent.Ref+1)
	}
	if next := mk("+491510000001", ""); next.Ref != older.Ref+1 {
		t.Errorf("ref after migration %d, want %d", next.Ref, older.Ref+1)
	}
}
