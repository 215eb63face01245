package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"slices"
	"sync"
	"testing"
	"time"
)

func TestAddGetRoundTrip(t *testing.T) {
	later := t0.Add(time.Hour)
	tests := []struct {
		name        string
		rec         *Record
		wantCreated time.Time
		wantNext    time.Time
	}{
		{"single segment gets defaults", record("+491511234567", 1), t0, t0},
		{"null sender, three segments with UDH", func() *Record {
			r := record("+441234567890", 3)
			r.From = ""
			for i := range r.Segments {
				r.Segments[i].Text = fmt.Sprint("part ", i+1)
			}
			r.Header = []byte("Subject: hi\r\n\r\n")
			r.DataCoding = 8
			return r
		}(), t0, t0},
		{"given Created and NextAttempt are kept", func() *Record {
			r := record("+15551234567", 1)
			r.Created = t0.Add(-time.Minute)
			r.NextAttempt = later
			return r
		}(), t0.Add(-time.Minute), later},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := openTemp(t, Options{Now: newClock().Now})
			mustAdd(t, s, tc.rec)
			if !regexp.MustCompile(`^[0-9a-f]{24}$`).MatchString(tc.rec.ID) {
				t.Errorf("ID = %q, want 24 hex digits", tc.rec.ID)
			}
			if tc.rec.State != Queued || !tc.rec.Created.Equal(tc.wantCreated) || !tc.rec.NextAttempt.Equal(tc.wantNext) {
				t.Errorf("after Add: state %s created %v next %v", tc.rec.State, tc.rec.Created, tc.rec.NextAttempt)
			}
			if got := whats(tc.rec.Events); !slices.Equal(got, []string{"accepted"}) {
				t.Errorf("events = %v", got)
			}
			got := mustGet(t, s, tc.rec.ID)
			if !reflect.DeepEqual(got, tc.rec) {
				t.Errorf("Get = %+v\nwant %+v", got, tc.rec)
			}
		})
	}
}

func TestGetUnknown(t *testing.T) {
	s, _ := openTemp(t, Options{})
	if _, err := s.Get("nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get unknown: %v, want ErrNotFound", err)
	}
	if _, err := s.Update("nope", func(*Record) error { return nil }); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Update unknown: %v, want ErrNotFound", err)
	}
}

func TestOpenCreatesPrivateFile(t *testing.T) {
	_, path := openTemp(t, Options{})
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("mode %v, want 0600", perm)
	}
}

func TestAddCancelledWritesNothing(t *testing.T) {
	s, _ := openTemp(t, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r := record("+491511234567", 1)
	if err := s.Add(ctx, []*Record{r}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Add: %v, want context.Canceled", err)
	}
	if r.ID != "" || r.State != "" || len(r.Events) != 0 {
		t.Errorf("record changed by a failed Add: %+v", r)
	}
	if n, _ := s.List("", 0); len(n) != 0 {
		t.Errorf("%d records stored", len(n))
	}
}

func TestSurvivesReopen(t *testing.T) {
	clk := newClock()
	s, path := openTemp(t, Options{Now: clk.Now})
	a, b := record("+491511234567", 2), record("+491511234568", 1)
	mustAdd(t, s, a, b)
	mustUpdate(t, s, b.ID, submit("X"))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	clk.Add(-time.Hour) // the clock went back while we were down
	s, err := Open(path, Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := mustGet(t, s, a.ID); !reflect.DeepEqual(got, a) {
		t.Errorf("after reopen Get = %+v, want %+v", got, a)
	}
	due, _, err := s.Due(t0, 0)
	if err != nil || !slices.Equal(ids(due), []string{a.ID}) {
		t.Errorf("after reopen Due = %v, %v; want [%s]", ids(due), err, a.ID)
	}
	if rec, matched, err := s.ApplyReceipt(Receipt{SMSCID: "X1", Stat: "DELIVRD"}); err != nil || !matched || rec.State != Delivered {
		t.Errorf("after reopen receipt: %v %v %v", rec, matched, err)
	}
	c := record("+491511234569", 1)
	mustAdd(t, s, c)
	if c.ID <= b.ID {
		t.Errorf("id after reopen with clock set back %s, not after %s", c.ID, b.ID)
	}
}

func TestIDsSortAndAreUniqueWithinANanosecond(t *testing.T) {
	s, _ := openTemp(t, Options{Now: newClock().Now}) // the clock never moves
	var recs []*Record
	for range 100 {
		recs = append(recs, record("+491511234567", 1))
	}
	mustAdd(t, s, recs[:50]...)
	mustAdd(t, s, recs[50:]...)
	got := ids(recs)
	if !slices.IsSorted(got) {
		t.Errorf("ids not increasing: %v", got)
	}
	if len(slices.Compact(slices.Clone(got))) != len(got) {
		t.Errorf("duplicate ids: %v", got)
	}
}

// TestConcurrentAddSharesCommits checks the group commit: 50 sessions adding
// at once are all persisted, in far fewer commits than Adds.
func TestConcurrentAddSharesCommits(t *testing.T) {
	const sessions = 50
	s, path := openTemp(t, Options{})
	before := commits(t, s)
	var wg sync.WaitGroup
	errs := make(chan error, sessions)
	start := make(chan struct{})
	for i := range sessions {
		wg.Go(func() {
			<-start
			errs <- s.Add(context.Background(), []*Record{record(fmt.Sprintf("+4915112%05d", i), 1)})
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	n := commits(t, s) - before
	t.Logf("%d Adds in %d commits", sessions, n)
	if n > sessions/5 {
		t.Errorf("%d Adds took %d commits, want at most %d", sessions, n, sessions/5)
	}

	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	counts, err := s.Counts()
	if err != nil || counts[Queued] != sessions {
		t.Errorf("after reopen Counts = %v, %v; want %d queued", counts, err, sessions)
	}
	if due := indexKeys(t, s, bucketDue); len(due) != sessions {
		t.Errorf("due index has %d entries, want %d", len(due), sessions)
	}
}

func TestDue(t *testing.T) {
	// Five records due at t0+0s, +10s, +20s, +30s, +40s, added in a mixed order.
	offsets := []int{20, 0, 40, 10, 30}
	tests := []struct {
		name     string
		now      time.Duration
		limit    int
		want     []int // offsets of the records returned, in order
		wantNext time.Duration
		noNext   bool
	}{
		{"nothing due yet: next is the earliest", -time.Second, 10, nil, 0, false},
		{"due exactly at now is included", 0, 10, []int{0}, 10 * time.Second, false},
		{"oldest first", 25 * time.Second, 10, []int{0, 10, 20}, 30 * time.Second, false},
		{"limit cuts the list: next is the first left out", 25 * time.Second, 2, []int{0, 10}, 20 * time.Second, false},
		{"all due: no next", time.Hour, 0, []int{0, 10, 20, 30, 40}, 0, true},
		{"all due, limit exactly the count: no next", time.Hour, 5, []int{0, 10, 20, 30, 40}, 0, true},
	}
	s, _ := openTemp(t, Options{Now: newClock().Now})
	byOffset := map[int]string{}
	for _, off := range offsets {
		r := record("+491511234567", 1)
		r.NextAttempt = t0.Add(time.Duration(off) * time.Second)
		mustAdd(t, s, r)
		byOffset[off] = r.ID
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			recs, next, err := s.Due(t0.Add(tc.now), tc.limit)
			if err != nil {
				t.Fatal(err)
			}
			var want []string
			for _, off := range tc.want {
				want = append(want, byOffset[off])
			}
			if got := ids(recs); !slices.Equal(got, want) {
				t.Errorf("Due = %v, want %v", got, want)
			}
			wantNext := t0.Add(tc.wantNext)
			if tc.noNext {
				wantNext = time.Time{}
			}
			if !next.Equal(wantNext) {
				t.Errorf("next = %v, want %v", next, wantNext)
			}
		})
	}
}

// TestDueExcept: skipped ids are neither returned nor counted toward the
// limit, so the records behind them come up.
func TestDueExcept(t *testing.T) {
	s, _ := openTemp(t, Options{Now: newClock().Now})
	var all []string
	for i := range 5 {
		r := record("+491511234567", 1)
		r.NextAttempt = t0.Add(time.Duration(i) * time.Second)
		mustAdd(t, s, r)
		all = append(all, r.ID)
	}
	skipped := map[string]bool{all[0]: true, all[2]: true}
	asked := 0
	recs, next, err := s.DueExcept(t0.Add(time.Hour), 2, func(id string) bool { asked++; return skipped[id] })
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(recs); !slices.Equal(got, []string{all[1], all[3]}) {
		t.Errorf("DueExcept = %v, want %v", got, []string{all[1], all[3]})
	}
	if !next.Equal(t0.Add(4*time.Second)) || asked != 4 {
		t.Errorf("next %v (want the fifth record's time), skip asked %d times (want 4)", next, asked)
	}
}

func TestDueEmpty(t *testing.T) {
	s, _ := openTemp(t, Options{})
	recs, next, err := s.Due(time.Now(), 10)
	if err != nil || len(recs) != 0 || !next.IsZero() {
		t.Fatalf("Due on empty store = %v, %v, %v", recs, next, err)
	}
}

func TestUpdateMovesIndexes(t *testing.T) {
	s, _ := openTemp(t, Options{Now: newClock().Now})
	r := record("+491511234567", 2)
	mustAdd(t, s, r)
	later := t0.Add(5 * time.Minute)

	steps := []struct {
		name       string
		fn         func(*Record) error
		wantState  State
		wantDue    []string
		wantSMSC   []string
		wantReport []string
	}{
		{"submitted leaves the due index, ids enter the smscid index", submit("A"),
			Submitted, nil, []string{"A1", "A2"}, nil},
		{"retry puts it back in the due index at the new time", func(r *Record) error {
			r.State, r.NextAttempt = Queued, later
			for i := range r.Segments {
				r.Segments[i] = Segment{Payload: r.Segments[i].Payload}
			}
			return nil
		}, Queued, []string{string(timeIDKey(later, r.ID))}, nil, nil},
		{"resubmitted under new ids", submit("B"), Submitted, nil, []string{"B1", "B2"}, nil},
		{"failed by the dispatcher is reportable", func(r *Record) error {
			r.State, r.LastError = Failed, "permanent"
			return nil
		}, Failed, nil, []string{"B1", "B2"}, []string{r.ID}},
		{"report done leaves the report index", func(r *Record) error {
			r.ReportDone = true
			return nil
		}, Failed, nil, []string{"B1", "B2"}, nil},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			got := mustUpdate(t, s, r.ID, st.fn)
			if got.State != st.wantState {
				t.Errorf("state = %s, want %s", got.State, st.wantState)
			}
			if keys := indexKeys(t, s, bucketDue); !slices.Equal(keys, st.wantDue) {
				t.Errorf("due index = %q, want %q", keys, st.wantDue)
			}
			if keys := indexKeys(t, s, bucketSMSC); !slices.Equal(keys, st.wantSMSC) {
				t.Errorf("smscid index = %q, want %q", keys, st.wantSMSC)
			}
			if keys := indexKeys(t, s, bucketReport); !slices.Equal(keys, st.wantReport) {
				t.Errorf("report index = %q, want %q", keys, st.wantReport)
			}
		})
	}
}

func TestUpdateErrorWritesNothing(t *testing.T) {
	s, _ := openTemp(t, Options{Now: newClock().Now})
	r := record("+491511234567", 1)
	mustAdd(t, s, r)
	boom := errors.New("boom")
	_, err := s.Update(r.ID, func(rec *Record) error {
		submit("A")(rec)
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Update = %v, want boom", err)
	}
	if got := mustGet(t, s, r.ID); !reflect.DeepEqual(got, r) {
		t.Errorf("record changed: %+v", got)
	}
	if keys := indexKeys(t, s, bucketSMSC); len(keys) != 0 {
		t.Errorf("smscid index = %q", keys)
	}
}

func TestUpdateCannotChangeID(t *testing.T) {
	s, _ := openTemp(t, Options{})
	r := record("+491511234567", 1)
	mustAdd(t, s, r)
	got := mustUpdate(t, s, r.ID, func(rec *Record) error { rec.ID = "other"; return nil })
	if got.ID != r.ID {
		t.Errorf("ID = %q, want %q", got.ID, r.ID)
	}
	if _, err := s.Get("other"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get(other) = %v", err)
	}
}

func TestReportable(t *testing.T) {
	s, _ := openTemp(t, Options{Now: newClock().Now})
	var recs []*Record
	for range 4 {
		recs = append(recs, record("+491511234567", 1))
	}
	mustAdd(t, s, recs...)
	for i, r := range recs[:3] { // three final, one left queued
		mustUpdate(t, s, r.ID, submit(fmt.Sprintf("R%d-", i)))
		if _, _, err := s.ApplyReceipt(Receipt{SMSCID: fmt.Sprintf("R%d-1", i), Stat: "DELIVRD", Err: "000"}); err != nil {
			t.Fatal(err)
		}
	}
	mustUpdate(t, s, recs[1].ID, func(r *Record) error { r.ReportDone = true; return nil })

	tests := []struct {
		limit int
		want  []string
	}{
		{0, []string{recs[0].ID, recs[2].ID}},
		{1, []string{recs[0].ID}},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprint("limit ", tc.limit), func(t *testing.T) {
			got, err := s.Reportable(tc.limit)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(ids(got), tc.want) {
				t.Errorf("Reportable = %v, want %v", ids(got), tc.want)
			}
		})
	}
}

func TestListAndCounts(t *testing.T) {
	s, _ := openTemp(t, Options{Now: newClock().Now})
	a, b, c := record("+491511234567", 1), record("+491511234568", 1), record("+491511234569", 1)
	mustAdd(t, s, a, b, c)
	mustUpdate(t, s, b.ID, submit("L"))

	counts, err := s.Counts()
	if err != nil {
		t.Fatal(err)
	}
	if want := map[State]int{Queued: 2, Submitted: 1}; !reflect.DeepEqual(counts, want) {
		t.Errorf("Counts = %v, want %v", counts, want)
	}
	tests := []struct {
		state State
		limit int
		want  []string
	}{
		{"", 0, []string{a.ID, b.ID, c.ID}},
		{Queued, 0, []string{a.ID, c.ID}},
		{Queued, 1, []string{a.ID}},
		{Submitted, 0, []string{b.ID}},
		{Delivered, 0, nil},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%q limit %d", tc.state, tc.limit), func(t *testing.T) {
			got, err := s.List(tc.state, tc.limit)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(ids(got), tc.want) {
				t.Errorf("List = %v, want %v", ids(got), tc.want)
			}
		})
	}
}

// TestChangedNotifies: Changed wakes its subscribers after each commit
// that adds work; DueChanged only after those that change the due queue.
func TestChangedNotifies(t *testing.T) {
	s, _ := openTemp(t, Options{Now: newClock().Now})
	subs := []<-chan struct{}{s.Changed(), s.Changed()}
	due := s.DueChanged()
	r := record("+491511234567", 1)

	steps := []struct {
		name          string
		do            func() error
		want, wantDue bool
	}{
		{"add", func() error { return s.Add(context.Background(), []*Record{r}) }, true, true},
		{"submitted: nothing due or reportable", func() error { _, err := s.Update(r.ID, submit("C")); return err }, false, false},
		{"intermediate receipt", func() error { _, _, err := s.ApplyReceipt(Receipt{SMSCID: "C1", Stat: "ENROUTE"}); return err }, false, false},
		{"back to queued", func() error {
			_, err := s.Update(r.ID, func(r *Record) error { r.State = Queued; return nil })
			return err
		}, true, true},
		{"new next attempt", func() error {
			_, err := s.Update(r.ID, func(r *Record) error { r.NextAttempt = t0.Add(time.Minute); return nil })
			return err
		}, true, true},
		{"submitted again", func() error { _, err := s.Update(r.ID, submit("C")); return err }, false, false},
		{"final receipt: reportable, not due", func() error { _, _, err := s.ApplyReceipt(Receipt{SMSCID: "C1", Stat: "DELIVRD"}); return err }, true, false},
		{"report done", func() error {
			_, err := s.Update(r.ID, func(r *Record) error { r.ReportDone = true; return nil })
			return err
		}, false, false},
	}
	woken := func(c <-chan struct{}) bool {
		select {
		case <-c:
			return true
		default:
			return false
		}
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			if err := st.do(); err != nil {
				t.Fatal(err)
			}
			for i, c := range subs {
				if got := woken(c); got != st.want {
					t.Errorf("Changed subscriber %d woken: %v, want %v", i, got, st.want)
				}
			}
			if got := woken(due); got != st.wantDue {
				t.Errorf("DueChanged woken: %v, want %v", got, st.wantDue)
			}
		})
	}
}

func TestTimeKeyOrder(t *testing.T) {
	times := []time.Time{
		{},
		time.Date(1969, 12, 31, 23, 59, 59, 0, time.UTC),
		time.Unix(0, 0),
		time.Unix(0, 1),
		t0,
		time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC),
	}
	for i := 1; i < len(times); i++ {
		a, b := string(timeKey(times[i-1])), string(timeKey(times[i]))
		if a >= b {
			t.Errorf("key(%v) = %x not before key(%v) = %x", times[i-1], a, times[i], b)
		}
	}
	if a, b := timeKey(time.Time{}), timeKey(time.Date(1500, 1, 1, 0, 0, 0, 0, time.UTC)); string(a) != string(b) {
		t.Errorf("times before 1678 not clamped: %x, %x", a, b)
	}
	if got := keyTime(timeKey(t0)); !got.Equal(t0) {
		t.Errorf("keyTime(timeKey(t0)) = %v", got)
	}
}

func BenchmarkAddParallel(b *testing.B) {
	const sessions = 50
	s, _ := openTemp(b, Options{})
	before := commits(b, s)
	work := make(chan struct{})
	var wg sync.WaitGroup
	b.ResetTimer()
	for range sessions {
		wg.Go(func() {
			for range work {
				if err := s.Add(context.Background(), []*Record{record("+491511234567", 2)}); err != nil {
					b.Error(err)
				}
			}
		})
	}
	for range b.N {
		work <- struct{}{}
	}
	close(work)
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(commits(b, s)-before)/float64(b.N), "commits/op")
}

// BenchmarkUpdate measures one Update, a commit (and fsync) of its own.
func BenchmarkUpdate(b *testing.B) {
	s, _ := openTemp(b, Options{})
	r := record("+491511234567", 2)
	mustAdd(b, s, r)
	for b.Loop() {
		if _, err := s.Update(r.ID, func(r *Record) error { r.Attempts++; return nil }); err != nil {
			b.Fatal(err)
		}
	}
}

// TestDedupKeyedBySender: the same Message-ID from another sender is a
// different mail, not a retry.
func TestDedupKeyedBySender(t *testing.T) {
	s, _ := openTemp(t, Options{})
	mk := func(from string) *Record {
		return &Record{From: from, To: "+14155550123", MessageID: "<alert-1@x>", Segments: []Segment{{Payload: []byte("x")}}}
	}
	a, b, again := mk("a@x.test"), mk("b@y.test"), mk("A@X.TEST")
	for _, r := range []*Record{a, b, again} {
		if err := s.Add(context.Background(), []*Record{r}); err != nil {
			t.Fatal(err)
		}
	}
	if b.DuplicateOf != "" {
		t.Errorf("another sender's mail taken for a duplicate of %s", b.DuplicateOf)
	}
	if again.DuplicateOf != a.ID {
		t.Errorf("a retry by the same sender (any case) not caught: %q", again.DuplicateOf)
	}
}
