package store

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// TestRoundSurvivesAFailedCall holds the writer in one call while others
// queue, so that they share the next round, in which one call fails after
// writing: it alone gets the error, the others are run again and commit.
func TestRoundSurvivesAFailedCall(t *testing.T) {
	s, _ := openTemp(t, Options{Now: newClock().Now})
	var recs []*Record
	for range 5 {
		recs = append(recs, record("+491511234567", 1))
	}
	mustAdd(t, s, recs...)

	hold, release := make(chan struct{}), make(chan struct{})
	go s.Update(recs[0].ID, func(*Record) error { close(hold); <-release; return nil })
	<-hold

	var runs atomic.Int32
	var wg sync.WaitGroup
	errs := make([]error, len(recs))
	for i, r := range recs[1:] {
		wg.Go(func() {
			_, errs[i+1] = s.Update(r.ID, func(r *Record) error {
				runs.Add(1)
				r.Attempts++
				return nil
			})
		})
	}
	boom := make(chan error, 1)
	go func() {
		boom <- s.w.do(func(tx *txn) error {
			if err := tx.Bucket(bucketMeta).Put([]byte("junk"), []byte("x")); err != nil {
				return err
			}
			return errors.New("failed after writing")
		})
	}()
	waitQueued(t, s, len(recs)) // 4 updates and the failing call
	close(release)
	wg.Wait()
	if err := <-boom; err == nil || err.Error() != "failed after writing" {
		t.Errorf("failing call got %v", err)
	}
	for i, err := range errs[1:] {
		if err != nil {
			t.Errorf("update %d: %v", i+1, err)
		}
	}
	for _, r := range recs[1:] {
		if got := mustGet(t, s, r.ID); got.Attempts != 1 {
			t.Errorf("%s: %d attempts, want 1", r.ID, got.Attempts)
		}
	}
	if n := runs.Load(); n < 4 || n > 8 {
		t.Errorf("update functions ran %d times", n)
	}
	if keys := indexKeys(t, s, bucketMeta); slices.Contains(keys, "junk") {
		t.Errorf("rolled-back write is in the store: %q", keys)
	}
}

func waitQueued(t *testing.T, s *Store, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		s.w.mu.Lock()
		q := len(s.w.queue)
		s.w.mu.Unlock()
		if q >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d calls queued, want %d", q, n)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestUpdateFnErrorDoesNotDisturbOthers(t *testing.T) {
	s, _ := openTemp(t, Options{})
	a, b := record("+491511234567", 1), record("+491511234568", 1)
	mustAdd(t, s, a, b)
	hold, release := make(chan struct{}), make(chan struct{})
	go s.Update(a.ID, func(*Record) error { close(hold); <-release; return nil })
	<-hold
	var wg sync.WaitGroup
	var errA, errB error
	wg.Go(func() {
		_, errA = s.Update(a.ID, func(r *Record) error { r.State = Delivered; return nil })
	})
	wg.Go(func() { _, errB = s.Update(b.ID, submit("B")) })
	waitQueued(t, s, 2)
	close(release)
	wg.Wait()
	if !errors.Is(errA, ErrBadTransition) || errB != nil {
		t.Fatalf("errors %v, %v", errA, errB)
	}
	if got := mustGet(t, s, b.ID); got.State != Submitted {
		t.Errorf("b is %s", got.State)
	}
}

func TestUpdatePanicIsAnError(t *testing.T) {
	s, _ := openTemp(t, Options{})
	r := record("+491511234567", 1)
	mustAdd(t, s, r)
	if _, err := s.Update(r.ID, func(*Record) error { panic("oops") }); err == nil {
		t.Fatal("no error")
	}
	mustUpdate(t, s, r.ID, submit("P")) // the writer still works
}

func TestWritesAfterClose(t *testing.T) {
	s, _ := openTemp(t, Options{})
	r := record("+491511234567", 1)
	mustAdd(t, s, r)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Add(context.Background(), []*Record{record("+491511234567", 1)}); !errors.Is(err, ErrClosed) {
		t.Errorf("Add after Close: %v", err)
	}
	if _, err := s.Update(r.ID, submit("X")); !errors.Is(err, ErrClosed) {
		t.Errorf("Update after Close: %v", err)
	}
}

// TestLoneWriteIsNotDelayed: with nobody else writing, an Update costs one
// commit and takes about as long as a bare bbolt commit: no batching timer.
func TestLoneWriteIsNotDelayed(t *testing.T) {
	s, _ := openTemp(t, Options{})
	r := record("+491511234567", 1)
	mustAdd(t, s, r)
	const n = 20
	start := time.Now()
	for range n {
		err := s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put([]byte("x"), []byte("y")) })
		if err != nil {
			t.Fatal(err)
		}
	}
	bare := time.Since(start) / n
	before := commits(t, s)
	start = time.Now()
	for range n {
		mustUpdate(t, s, r.ID, func(r *Record) error { r.Attempts++; return nil })
	}
	per := time.Since(start) / n
	t.Logf("%v per lone Update, %v per bare commit", per, bare)
	if c := commits(t, s) - before; c != n {
		t.Errorf("%d Updates in %d commits", n, c)
	}
	if per > 3*bare+2*time.Millisecond {
		t.Errorf("%v per lone Update, %v per bare commit", per, bare)
	}
}

// holdSyncer makes the syncer wait, before its next log write, until the
// returned release is called (at the latest when the test ends); held is
// closed once it waits.
func holdSyncer(t *testing.T, s *Store) (held <-chan struct{}, release func()) {
	h, r := make(chan struct{}), make(chan struct{})
	var once sync.Once
	s.w.mu.Lock()
	s.w.beforeLog = func() {
		once.Do(func() { close(h); <-r })
	}
	s.w.mu.Unlock()
	release = sync.OnceFunc(func() { close(r) })
	t.Cleanup(release) // before openTemp's Close, which would wait
	return h, release
}

// applied returns the number of rounds run over the overlay.
func applied(s *Store) uint64 {
	s.w.omu.Lock()
	defer s.w.omu.Unlock()
	return s.w.applied
}

// TestViewWaitsForDurability: the writer runs the next round while the
// syncer makes the last one durable; a read that sees a round not yet
// durable returns only once it is.
func TestViewWaitsForDurability(t *testing.T) {
	s, _ := openTemp(t, Options{})
	r := record("+491511234567", 1)
	mustAdd(t, s, r)
	held, release := holdSyncer(t, s)
	before := applied(s)
	updated := make(chan error, 1)
	go func() {
		_, err := s.Update(r.ID, func(r *Record) error { r.Attempts++; return nil })
		updated <- err
	}()
	<-held
	waitFor(t, "the update's round", func() bool { return applied(s) > before })
	got := make(chan *Record, 1)
	go func() { got <- mustGet(t, s, r.ID) }()
	select {
	case rec := <-got:
		t.Fatalf("Get returned %d attempts before the round was durable", rec.Attempts)
	case err := <-updated:
		t.Fatalf("Update returned %v before its round was durable", err)
	case <-time.After(50 * time.Millisecond):
	}
	release()
	if err := <-updated; err != nil {
		t.Fatal(err)
	}
	if rec := <-got; rec.Attempts != 1 {
		t.Errorf("Get: %d attempts, want 1", rec.Attempts)
	}
}

// TestLogFailureTakesBackRounds: rounds run while the syncer held an
// earlier one fail with the log's error when its write fails; they are
// taken back out of the overlay, so reads go on over what is durable, and
// the next Open finds the same.
func TestLogFailureTakesBackRounds(t *testing.T) {
	s, path := openTemp(t, Options{})
	r := record("+491511234567", 1)
	mustAdd(t, s, r)
	mustUpdate(t, s, r.ID, func(r *Record) error { r.Attempts = 1; return nil })
	held, release := holdSyncer(t, s)
	before := applied(s)
	const n = 3
	errs := make(chan error, n)
	for i := range n {
		go func() {
			_, err := s.Update(r.ID, func(r *Record) error { r.Attempts += 10; return nil })
			errs <- err
		}()
		if i == 0 {
			<-held
		}
		// One round each: the next starts once this one ran.
		waitFor(t, "a round", func() bool { return applied(s) > before+uint64(i) })
	}
	readErr := make(chan error, 1)
	go func() {
		_, err := s.Get(r.ID) // sees the rounds not yet durable
		readErr <- err
	}()
	waitFor(t, "the read to wait", func() bool {
		s.w.mu.Lock()
		defer s.w.mu.Unlock()
		return s.w.readWaits > 0
	})
	s.w.log.f.Close() // the next write fails
	release()
	for range n {
		if err := <-errs; err == nil {
			t.Error("an Update logged after the failure succeeded")
		}
	}
	if err := <-readErr; err == nil {
		t.Error("a read of rounds that never became durable succeeded")
	}
	// The callers learn of the failure from the notifier, maybe before
	// the writer has taken the rounds back out of the overlay: a read in
	// between sees them and fails with the log's error, never returns
	// them. Reads then go on over what was durable.
	var got *Record
	waitFor(t, "a read over what was durable", func() bool {
		var err error
		got, err = s.Get(r.ID)
		return err == nil
	})
	if got.Attempts != 1 {
		t.Errorf("after the failure: %d attempts, want 1", got.Attempts)
	}
	if _, err := s.Update(r.ID, func(r *Record) error { r.Attempts++; return nil }); err == nil {
		t.Error("a write after the failure succeeded")
	}
	if err := s.Close(); err == nil {
		t.Error("Close hid the log's failure")
	}
	s2, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if got := mustGet(t, s2, r.ID); got.Attempts != 1 {
		t.Errorf("after reopening: %d attempts, want 1", got.Attempts)
	}
}

// heldUpdates holds the syncer on a first Update of id, and runs k more
// behind it, each its own round: the syncer then takes them together.
func heldUpdates(t *testing.T, s *Store, id string, k int) (release func(), errs chan error) {
	t.Helper()
	held, release := holdSyncer(t, s)
	before := applied(s)
	errs = make(chan error, k+1)
	for i := range k + 1 {
		go func() {
			_, err := s.Update(id, func(r *Record) error { r.Attempts += 10; return nil })
			errs <- err
		}()
		if i == 0 {
			<-held
		}
		waitFor(t, "a round", func() bool { return applied(s) > before+uint64(i) })
	}
	return release, errs
}

// TestBatchIsOneLogRecord: the rounds the syncer takes together are one
// log record, so that a crash during its fdatasync can tear only the
// log's last record. A crash image with that record damaged opens, with
// neither round in it (neither was acknowledged).
func TestBatchIsOneLogRecord(t *testing.T) {
	noCheckpoints(t)
	s, path := openTemp(t, Options{})
	r := record("+491511234567", 1)
	mustAdd(t, s, r)
	release, errs := heldUpdates(t, s, r.ID, 2) // one round, then a batch of two
	records := commits(t, s)
	release()
	for range 3 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if n := commits(t, s) - records; n != 2 {
		t.Fatalf("3 rounds in %d log records, want 2 (one, then a batch of two)", n)
	}
	cf := snapshotFiles(t, path)
	data := cf.logs[cf.maxGen()]
	var offs []int
	for off, rest := 0, data; len(rest) > 0; {
		_, _, next, err := nextRecord(rest)
		if err != nil {
			t.Fatal(err)
		}
		offs = append(offs, off)
		off += len(rest) - len(next)
		rest = next
	}
	data[offs[len(offs)-1]+walHeader+2] ^= 0xff // the batch, torn
	s2, err := Open(cf.restore(t), Options{})
	if err != nil {
		t.Fatalf("Open after a crash during a batch: %v", err)
	}
	defer s2.Close()
	if got := mustGet(t, s2, r.ID); got.Attempts != 10 {
		t.Errorf("after the crash: %d attempts, want 10 (the round before the batch)", got.Attempts)
	}
}

// TestHookMayRead: an OnCommit hook (here Options.Dropped) may read the
// store; the notifier runs it, not the syncer that the read waits for.
func TestHookMayRead(t *testing.T) {
	clk := newClock()
	var s *Store
	got := make(chan error, 1)
	s, _ = openTemp(t, Options{Now: clk.Now, ParkedMaxAge: time.Hour, Dropped: func(Receipt, time.Time) {
		_, err := s.Parked()
		got <- err
	}})
	if _, _, err := s.ApplyReceipt(Receipt{SMSCID: "x", Stat: "DELIVRD"}); err != nil {
		t.Fatal(err)
	}
	clk.Add(2 * time.Hour)
	go s.PurgeParked()
	select {
	case err := <-got:
		if err != nil {
			t.Errorf("a read in the hook: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a read in an OnCommit hook hangs")
	}
}

// TestTakeFlightsBoundsTheRecord: the syncer puts no more rounds in one
// log record than its 32-bit length holds; the rest go in the next.
func TestTakeFlightsBoundsTheRecord(t *testing.T) {
	round := func(n int, logged bool) *flight {
		return &flight{logged: logged, payload: make([]byte, walHeader+n)}
	}
	w := &writer{}
	w.flights = []*flight{round(60, true), round(30, true), round(500, false), round(20, true), round(200, true)}
	var got [][]int
	for len(w.flights) > 0 {
		var sizes []int
		for _, f := range w.takeFlights(100) {
			sizes = append(sizes, len(f.payload)-walHeader)
		}
		got = append(got, sizes)
	}
	want := [][]int{{60, 30, 500}, {20}, {200}} // a round alone may exceed it
	if !slices.EqualFunc(got, want, slices.Equal[[]int]) {
		t.Errorf("batches %v, want %v", got, want)
	}
}
