package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	bolt "go.etcd.io/bbolt"
)

// Group commit.
//
// Every write (Add, Update, ApplyReceipt, Cancel, Recover, Purge) is a call
// queued for one writer goroutine. The writer takes every call waiting, runs
// them one after the other in one round over the active overlay (kv.go),
// appends the round's changes to the log as one record and fdatasyncs it
// (wal.go), and answers them all. Calls that arrive meanwhile wait for the
// next round. Under low load a call is committed at once, alone; under load
// the calls that piled up during one round share the next one. There is no
// timer: unlike db.Batch, nobody waits for company that may not come.
//
// A call's function must be idempotent: if a later call in the same round
// fails after it has written something, the round is undone, the failed
// call gets its error, and the others are run again. A function that fails
// before writing anything returns its error wrapped by noWrite; the round
// then goes on without it.
//
// Pipelining: the writer does not wait for a round's fdatasync. It hands
// the round to the syncer goroutine and runs the next one over the same
// overlay while the disk works; the syncer writes every round handed to it
// meanwhile as one log record and makes it durable with one fdatasync;
// the notifier goroutine then runs their OnCommit hooks and answers their
// calls, in order. So a round's CPU and the previous round's fdatasync
// overlap, and neither waits for the other. What a round may see that is
// not durable yet is harmless: an answer that depends on it waits for the
// same fdatasync, or a later one. Readers (view) see the applied rounds
// too, so view returns only once every round it could see is durable. A
// hook may read: it runs on the notifier, not on the syncer that the read
// waits for. If the log fails, the writer takes every round not yet
// durable back out of the overlay, and the reads that saw them fail. (A
// record whose fdatasync failed may still be on disk, and come back at the
// next Open: after a failed fdatasync nobody knows; its calls got an
// error, which means "unknown", as for any database.)
//
// Checkpoints: when the log since the last checkpoint holds ckptBytes, or
// its oldest round is ckptAge old, the writer freezes the active overlay,
// starts a new one and a new log file, and a goroutine copies the frozen
// overlay into bbolt in one transaction; the writer goes on meanwhile. Once
// that commits, the frozen overlay and its log file go. If the new overlay
// reaches maxLogBytes before that, writes wait for the checkpoint: memory
// stays bounded whatever the disk's speed.
//
// A failed log write or checkpoint stops all writes (they return the error):
// after a failed fdatasync nobody knows what the file holds, and Open's
// replay is the way back. Reads go on, over what was durable.

// ErrClosed is returned (wrapped) by writes after Close.
var ErrClosed = errors.New("store: closed")

// Checkpoint triggers (variables for tests).
var (
	ckptBytes   int64 = 4 << 20
	maxLogBytes int64 = 32 << 20
	ckptAge           = time.Second
	// releaseEvery spaces out dropping bbolt's mapped pages from the RSS.
	releaseEvery = 5 * time.Second
	// maxFlights bounds the rounds applied and not yet durable: beyond it
	// the writer waits for the syncer, so that a slow disk holds memory
	// and callers back instead of a growing queue of rounds.
	maxFlights = 16
)

type call struct {
	fn   func(*txn) error
	done chan error
}

type writer struct {
	// begin is called at the start of each round the writer runs, and end
	// after its calls, before the log write (both may be nil).
	begin func()
	end   func(*txn) error
	// beforeLog, if set, is called by the syncer before it writes a batch
	// (tests hold the syncer with it).
	beforeLog func()

	db  *bolt.DB
	ids *bucketIDs
	log wal

	mu       sync.Mutex // guards the fields up to stopped
	cond     *sync.Cond // wakes the writer
	queue    []call
	spare    []call
	closed   bool
	ckptDone *error // set by the checkpoint goroutine
	tick     bool   // the age timer fired
	timer    *time.Timer
	// The syncer's side: rounds handed to it, the number of the last one
	// it made durable, and the log's error; then the batches it handed to
	// the notifier, and the number of the last round answered.
	flights   []*flight
	synced    uint64
	syncErr   error
	syncClose bool
	// syncExited is set by the syncer as it returns: the notifier
	// returns once it answered what is left.
	syncExited bool
	notes      []note
	readWaits  int // views that waited for the syncer (for tests)
	answered   uint64
	scond      *sync.Cond // wakes the syncer
	ncond      *sync.Cond // wakes the notifier
	rcond      *sync.Cond // wakes those waiting for synced to grow
	stopped    chan struct{}
	syncDone   chan struct{}
	notifyDone chan struct{}
	stopErr    error

	// omu guards active and frozen against readers: the writer holds it
	// for a whole round, so a reader never sees a round half run, nor one
	// being undone (view then waits for what it saw to be durable).
	omu    sync.Mutex
	active *overlay
	frozen *overlay

	// applied numbers the rounds run over the overlays (the writer sets it
	// with omu held): a view that saw round n returns once n is durable.
	applied uint64

	// The writer goroutine's own state.
	ckptRunning bool      // a checkpoint goroutine is on, or its ckptDone not taken
	since       time.Time // when active got its first round
	logBytes    int64     // log written since active started
	broken      error
	undone      bool // logFailed ran
	rnd         round
	unsynced    []*flight // handed to the syncer and maybe not durable, oldest first
	free        []*flight

	released time.Time // the last releaseMapped (checkpoints only; one at a time)

	batchBuf    []byte       // the syncer's: one log record for many rounds
	rounds      atomic.Int64 // log records written (for benchmarks)
	checkpoints atomic.Int64
}

// start opens log generation gen (after Open's replay, seq is its last
// round) and starts the writer goroutine.
func (w *writer) start(db *bolt.DB, path string, ids *bucketIDs, gen, seq uint64) error {
	w.db, w.ids = db, ids
	w.log = wal{path: path, seq: seq}
	if err := w.log.create(gen); err != nil {
		return err
	}
	w.cond = sync.NewCond(&w.mu)
	w.scond = sync.NewCond(&w.mu)
	w.rcond = sync.NewCond(&w.mu)
	w.ncond = sync.NewCond(&w.mu)
	w.stopped = make(chan struct{})
	w.syncDone = make(chan struct{})
	w.notifyDone = make(chan struct{})
	w.active = newOverlay(0)
	go w.syncLoop()
	go w.notifyLoop()
	go w.loop()
	return nil
}

var donePool = sync.Pool{New: func() any { return make(chan error, 1) }}

// do runs fn in the writer's next round and returns once it is durable
// (nil) or failed (fn's error, or the log's).
func (w *writer) do(fn func(*txn) error) error {
	done := donePool.Get().(chan error)
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		donePool.Put(done)
		return ErrClosed
	}
	w.queue = append(w.queue, call{fn: fn, done: done})
	if len(w.queue) == 1 {
		w.cond.Signal()
	}
	w.mu.Unlock()
	err := <-done
	donePool.Put(done)
	return err
}

// view runs fn in a read transaction over what the rounds run so far
// left, and returns once they are durable: what fn saw is then what a
// restart would find. If the log fails first, view returns its error. It
// holds off the writer while fn runs (the overlay is not made for readers
// beside its writer): fn should be quick.
func (w *writer) view(fn func(*txn) error) error {
	w.omu.Lock()
	seen := w.applied
	err := w.read(fn)
	w.omu.Unlock()
	if err != nil {
		return err
	}
	return w.awaitSynced(seen)
}

func (w *writer) read(fn func(*txn) error) error {
	btx, err := w.db.Begin(false)
	if err != nil {
		return err
	}
	defer btx.Rollback()
	return fn(&txn{ids: w.ids, layers: []*overlay{w.active, w.frozen}, base: btx})
}

// awaitSynced waits until round n is durable, or the log failed before.
func (w *writer) awaitSynced(n uint64) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.synced < n {
		w.readWaits++
	}
	for w.synced < n && w.syncErr == nil {
		w.rcond.Wait()
	}
	if w.synced < n {
		return w.syncErr
	}
	return nil
}

// stop makes later calls fail with ErrClosed, and returns once the calls
// already queued are answered and the overlays are in bbolt.
func (w *writer) stop() error {
	w.mu.Lock()
	w.closed = true
	w.cond.Signal()
	w.mu.Unlock()
	<-w.stopped
	return w.stopErr
}

func (w *writer) loop() {
	defer close(w.stopped)
	for {
		// Let the callers the syncer just answered run first: those
		// that write again join this round instead of the next one. This
		// costs a microsecond when nobody is waiting.
		runtime.Gosched()
		round, ok := w.next()
		if !ok {
			w.mu.Unlock()
			w.stopErr = w.finish()
			return
		}
		w.runRound(round)
		clear(round) // drop the closures
		w.mu.Lock()
		w.spare = round[:0]
		w.mu.Unlock()
		w.maybeCheckpoint(false)
	}
}

// next waits for calls and takes them, handling checkpoint and log
// events on the way. It returns false, with w.mu held, when the writer is
// to stop.
func (w *writer) next() ([]call, bool) {
	w.mu.Lock()
	for {
		if w.syncErr != nil && !w.undone {
			err := w.syncErr
			w.mu.Unlock()
			w.logFailed(err)
			w.mu.Lock()
			continue
		}
		if w.ckptDone != nil {
			err := *w.ckptDone
			w.ckptDone, w.ckptRunning = nil, false
			w.mu.Unlock()
			w.checkpointed(err)
			w.maybeCheckpoint(false)
			w.mu.Lock()
			continue
		}
		if w.tick {
			w.tick = false
			w.mu.Unlock()
			w.maybeCheckpoint(true)
			w.mu.Lock()
			continue
		}
		// A broken writer answers at once, with its error.
		full := w.broken == nil && w.frozen != nil && w.logBytes >= maxLogBytes
		if len(w.queue) > 0 && !full {
			break
		}
		if w.closed && len(w.queue) == 0 {
			return nil, false
		}
		w.cond.Wait()
	}
	round := w.queue
	w.queue, w.spare = w.spare[:0], nil
	w.mu.Unlock()
	return round, true
}

// flight is a round handed to the syncer: its log record, the calls to
// answer once it is durable, and its changes to the overlay, to take them
// back if the log fails.
type flight struct {
	n       uint64 // w.applied when it was run
	logged  bool   // payload is to be written (the round changed something)
	payload []byte // walHeader bytes, then operations
	changes []change
	calls   []call
	errs    []error
	hooks   []func()
}

// runRound runs calls in one round over the active overlay and hands it
// to the syncer, which answers them.
func (w *writer) runRound(calls []call) {
	if w.broken != nil {
		for _, c := range calls {
			c.done <- w.broken
		}
		return
	}
	f := w.newFlight()
	errs := make([]error, len(calls))
	w.omu.Lock()
	for len(calls) > 0 {
		failed, n, err := w.tryRound(calls, errs, f)
		if n < len(calls) {
			// The round is full: the rest go first in the next.
			w.requeue(calls[n:])
			calls, errs = calls[:n], errs[:n]
		}
		if failed >= 0 {
			// Undone: the call that failed gets its error with the
			// round, the others run again.
			f.calls, f.errs = append(f.calls, calls[failed]), append(f.errs, err)
			calls = append(calls[:failed:failed], calls[failed+1:]...)
			errs = errs[:len(calls)]
			continue
		}
		if err != nil {
			// The end hook failed, or bbolt; the round is undone.
			w.broken = err
			for i := range errs {
				errs[i] = err
			}
		}
		break
	}
	f.calls, f.errs = append(f.calls, calls...), append(f.errs, errs...)
	w.applied++
	f.n = w.applied
	w.omu.Unlock()
	w.unsynced = append(w.unsynced, f)
	w.mu.Lock()
	w.flights = append(w.flights, f)
	w.scond.Signal()
	w.mu.Unlock()
}

// newFlight returns a flight to fill, once there is room for one. It
// recycles those the syncer is done with.
func (w *writer) newFlight() *flight {
	w.mu.Lock()
	for len(w.unsynced)-w.durable() >= maxFlights && w.syncErr == nil {
		w.cond.Wait()
	}
	n := w.durable()
	w.mu.Unlock()
	for _, f := range w.unsynced[:n] {
		clear(f.calls)
		clear(f.errs)
		clear(f.hooks)
		clear(f.changes)
		f.calls, f.errs, f.hooks, f.changes = f.calls[:0], f.errs[:0], f.hooks[:0], f.changes[:0]
		f.logged = false
		if cap(f.payload) > 1<<20 {
			f.payload = nil // a rare big round's buffer goes
		}
		w.free = append(w.free, f)
	}
	w.unsynced = append(w.unsynced[:0], w.unsynced[n:]...)
	if len(w.free) == 0 {
		return &flight{}
	}
	f := w.free[len(w.free)-1]
	w.free = w.free[:len(w.free)-1]
	return f
}

// durable returns how many of w.unsynced the syncer and the notifier are
// done with (w.mu held).
func (w *writer) durable() int {
	n := 0
	for n < len(w.unsynced) && w.unsynced[n].n <= w.answered {
		n++
	}
	return n
}

// drain waits until every round run is durable; it returns false if the
// log failed first.
func (w *writer) drain() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for w.synced < w.applied && w.syncErr == nil {
		w.cond.Wait()
	}
	return w.syncErr == nil
}

// logFailed stops writes after a failed log write, and takes the rounds
// that may not be durable back out of the overlay, newest first: reads go
// on over what is.
func (w *writer) logFailed(err error) {
	if w.broken == nil {
		w.broken = err
	}
	w.undone = true
	w.omu.Lock()
	w.mu.Lock()
	synced := w.synced
	w.mu.Unlock()
	for i := len(w.unsynced) - 1; i >= 0; i-- {
		if f := w.unsynced[i]; f.n > synced {
			undoChanges(w.active, f.changes)
		}
	}
	w.applied = synced
	w.omu.Unlock()
	w.unsynced = nil
}

// syncLoop is the syncer: it takes the rounds handed to it since it last
// looked, writes them to the log as one record, makes that durable with
// one fdatasync, and hands them to the notifier, in order.
func (w *writer) syncLoop() {
	defer close(w.syncDone)
	for {
		w.mu.Lock()
		for len(w.flights) == 0 && !w.syncClose {
			w.scond.Wait()
		}
		if len(w.flights) == 0 {
			w.syncExited = true
			w.ncond.Signal()
			w.mu.Unlock()
			return
		}
		batch := w.takeFlights(maxWALRecord)
		err := w.syncErr
		w.mu.Unlock()
		if err == nil {
			err = w.logBatch(batch)
		}
		w.mu.Lock()
		if err != nil && w.syncErr == nil {
			w.syncErr = err
			w.cond.Signal()
		}
		if err == nil {
			w.synced = batch[len(batch)-1].n
			w.cond.Signal() // drain
		}
		w.notes = append(w.notes, note{batch: batch, err: err})
		w.ncond.Signal()
		w.rcond.Broadcast()
		w.mu.Unlock()
		// The notifier was just woken onto this P, which the next
		// fdatasync would hold in a system call until the runtime takes
		// it back (up to milliseconds): let it answer first.
		runtime.Gosched()
	}
}

// takeFlights takes the rounds handed to the syncer, as many as one log
// record of at most max bytes of payload holds, but at least one (w.mu
// held).
func (w *writer) takeFlights(max int64) []*flight {
	n, size := 0, int64(walHeader)
	for ; n < len(w.flights); n++ {
		f := w.flights[n]
		if f.logged {
			size += int64(len(f.payload) - walHeader)
		}
		if n > 0 && size > walHeader+max {
			break // the rest go in the next record
		}
	}
	batch := slices.Clone(w.flights[:n])
	rest := copy(w.flights, w.flights[n:])
	clear(w.flights[rest:])
	w.flights = w.flights[:rest]
	return batch
}

// note is a batch of rounds for the notifier: durable (err nil), or failed.
type note struct {
	batch []*flight
	err   error
}

// notifyLoop runs the hooks of durable rounds, in order, then answers
// their calls. It is not the syncer: a hook may read the store, and a
// read waits for the syncer to make the rounds it saw durable.
func (w *writer) notifyLoop() {
	defer close(w.notifyDone)
	for {
		w.mu.Lock()
		for len(w.notes) == 0 && !w.syncExited {
			w.ncond.Wait()
		}
		if len(w.notes) == 0 {
			w.mu.Unlock()
			return
		}
		notes := w.notes
		w.notes = nil
		w.mu.Unlock()
		for _, nt := range notes {
			for _, f := range nt.batch {
				if nt.err == nil {
					for _, h := range f.hooks {
						h()
					}
				}
				for i, c := range f.calls {
					if nt.err != nil {
						c.done <- nt.err
					} else {
						c.done <- f.errs[i]
					}
				}
			}
		}
		w.mu.Lock()
		w.answered = notes[len(notes)-1].batch[len(notes[len(notes)-1].batch)-1].n
		w.cond.Signal() // newFlight, finish
		w.mu.Unlock()
	}
}

// logBatch writes the rounds of batch that changed something to the log
// as one record, and waits for it to be on disk. One record, not one per
// round: a crash during the fdatasync may keep a later part of what was
// written and lose an earlier one, and only a log's last record may be
// torn (see replay). None of the batch was acknowledged yet, so it all
// goes together.
func (w *writer) logBatch(batch []*flight) error {
	if w.beforeLog != nil {
		w.beforeLog()
	}
	var rec []byte
	for _, f := range batch {
		switch {
		case !f.logged:
		case rec == nil:
			rec = f.payload
		default:
			if len(w.batchBuf) == 0 {
				w.batchBuf = append(w.batchBuf[:0], rec...)
			}
			w.batchBuf = append(w.batchBuf, f.payload[walHeader:]...)
			rec = w.batchBuf
		}
	}
	defer func() {
		if cap(w.batchBuf) > 4<<20 {
			w.batchBuf = nil // a rare big batch's buffer goes
		}
		w.batchBuf = w.batchBuf[:0]
	}()
	if rec == nil {
		return nil
	}
	if err := w.log.write(rec); err != nil {
		return err
	}
	if err := w.log.sync(); err != nil {
		return err
	}
	w.rounds.Add(1)
	return nil
}

// requeue puts calls back at the head of the queue.
func (w *writer) requeue(calls []call) {
	w.mu.Lock()
	w.queue = append(slices.Clone(calls), w.queue...)
	w.mu.Unlock()
}

// tryRound runs calls over the active overlay, and puts what they wrote in
// f. It returns the index of a call that failed after writing (the round
// is undone then), or -1 and the end hook's or bbolt's error, and how many
// calls it ran: it stops taking them once the round holds maxRoundBytes.
func (w *writer) tryRound(calls []call, errs []error, f *flight) (failed, n int, err error) {
	n = len(calls)
	defer func() { w.rnd.t = nil }() // nor keep its hooks
	btx, err := w.db.Begin(false)
	if err != nil {
		return -1, n, fmt.Errorf("store: begin: %w", err)
	}
	defer btx.Rollback()
	w.rnd.reset(w.active, w.ids, f.payload, f.changes)
	defer func() { f.payload, f.changes = w.rnd.payload, w.rnd.changes }()
	t := &txn{ids: w.ids, layers: []*overlay{w.active, w.frozen}, base: btx, w: &w.rnd}
	w.rnd.t = t
	if w.begin != nil {
		w.begin()
	}
	for i, c := range calls {
		err := safeCall(c.fn, t)
		if nw, ok := err.(noWriteError); ok {
			errs[i], err = nw.err, nil
		} else if err == nil {
			errs[i] = nil
			if int64(len(w.rnd.payload)) > maxWALRecord-maxRoundBytes {
				err = fmt.Errorf("store: %d bytes in one write", len(w.rnd.payload))
			}
		}
		if err != nil {
			w.rnd.undo()
			return i, n, err
		}
		if len(w.rnd.payload) >= maxRoundBytes {
			n = i + 1
			break
		}
	}
	if w.end != nil {
		if err := w.end(t); err != nil {
			w.rnd.undo()
			return -1, n, err
		}
	}
	f.hooks = append(f.hooks, t.onCommit...)
	f.logged = len(w.rnd.changes) > 0
	if f.logged {
		if w.logBytes == 0 {
			w.since = time.Now()
		}
		w.logBytes += int64(len(w.rnd.payload))
	}
	return -1, n, nil
}

// maybeCheckpoint starts a checkpoint when the log asks for one (aged:
// the age timer fired), or arms the timer.
func (w *writer) maybeCheckpoint(aged bool) {
	if w.broken != nil || w.logBytes == 0 {
		return
	}
	if w.frozen != nil {
		return // checkpointed() calls again
	}
	if w.logBytes < ckptBytes && !aged && time.Since(w.since) < ckptAge {
		w.mu.Lock()
		if w.timer == nil {
			w.timer = time.AfterFunc(ckptAge, func() {
				w.mu.Lock()
				w.tick, w.timer = true, nil
				w.cond.Signal()
				w.mu.Unlock()
			})
		}
		w.mu.Unlock()
		return
	}
	// The syncer writes to the log file being replaced, and the frozen
	// overlay is to hold only durable rounds.
	if !w.drain() {
		return // next() handles the log's error
	}
	frozen, seq, gen := w.active, w.log.seq, w.log.gen
	if err := w.log.create(gen + 1); err != nil {
		w.broken = err
		return
	}
	w.omu.Lock()
	frozen.sealed = true
	w.frozen, w.active = frozen, newOverlay(len(frozen.m))
	w.omu.Unlock()
	w.logBytes = 0
	w.ckptRunning = true
	go func() {
		err := w.checkpoint(frozen, seq, gen)
		w.mu.Lock()
		w.ckptDone = &err
		w.cond.Signal()
		w.mu.Unlock()
	}()
}

// checkpoint copies o into bbolt, notes seq as the last round bbolt holds,
// and deletes log file gen, which holds nothing newer.
func (w *writer) checkpoint(o *overlay, seq, gen uint64) error {
	err := w.db.Update(func(btx *bolt.Tx) error {
		return copyOverlay(btx, w.ids, o, seq)
	})
	if err != nil {
		return fmt.Errorf("store: checkpoint: %w", err)
	}
	w.checkpoints.Add(1)
	if err := os.Remove(walName(w.log.path, gen)); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("store: checkpoint: %w", err)
	}
	// Checkpoints walk many pages; reads bring back those they need. Not
	// after every checkpoint: refaulting the B-tree's upper pages each time
	// costs the writer a tenth of its rate. An error here costs memory only.
	if time.Since(w.released) >= releaseEvery {
		_ = releaseMapped(w.db)
		w.released = time.Now()
	}
	return nil
}

func copyOverlay(btx *bolt.Tx, ids *bucketIDs, o *overlay, seq uint64) error {
	buckets := make([]*bolt.Bucket, len(ids.names))
	var err error
	o.ascend(func(k string, it item) bool {
		id := k[0]
		if buckets[id] == nil {
			buckets[id] = btx.Bucket(ids.names[id])
			if appendMostly[string(ids.names[id])] {
				buckets[id].FillPercent = appendFill
			}
		}
		// bbolt copies the key it keeps.
		if it.del {
			err = buckets[id].Delete(unsafeBytes(k[1:]))
		} else {
			err = buckets[id].Put(unsafeBytes(k[1:]), it.v)
		}
		return err == nil
	})
	if err != nil {
		return err
	}
	return btx.Bucket(bucketMeta).Put(keyWALSeq, binary.BigEndian.AppendUint64(nil, seq))
}

// checkpointed ends a checkpoint: its overlay goes.
func (w *writer) checkpointed(err error) {
	if err != nil {
		w.broken = err
		return
	}
	w.omu.Lock()
	w.frozen = nil
	w.omu.Unlock()
}

// finish puts what the log holds into bbolt and deletes the log, so that a
// store closed cleanly is one bbolt file. It waits for the checkpoint and
// the syncer, then stops the syncer.
func (w *writer) finish() error {
	w.mu.Lock()
	if w.timer != nil {
		w.timer.Stop()
	}
	for (w.ckptRunning && w.ckptDone == nil) || (w.synced < w.applied && w.syncErr == nil) {
		w.cond.Wait()
	}
	ckptDone, syncErr := w.ckptDone, w.syncErr
	w.ckptDone, w.ckptRunning = nil, false
	w.syncClose = true
	w.scond.Signal()
	w.mu.Unlock()
	<-w.syncDone
	<-w.notifyDone
	if ckptDone != nil {
		w.checkpointed(*ckptDone)
	}
	if syncErr != nil && !w.undone {
		w.logFailed(syncErr)
	}
	if w.broken != nil {
		w.log.close()
		return w.broken // the log stays for Open to replay
	}
	w.omu.Lock()
	w.active.sealed = true
	w.omu.Unlock()
	err := w.checkpoint(w.active, w.log.seq, w.log.gen)
	w.log.close()
	return err
}

func safeCall(fn func(*txn) error, t *txn) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic in store write: %v", p)
		}
	}()
	return fn(t)
}

// noWriteError marks an error returned by a call before it wrote anything.
type noWriteError struct{ err error }

func (e noWriteError) Error() string { return e.err.Error() }
func (e noWriteError) Unwrap() error { return e.err }

// noWrite wraps err (if not nil) to say that nothing was written.
func noWrite(err error) error {
	if err == nil {
		return nil
	}
	return noWriteError{err}
}

// round is what one round wrote: the changes to the active overlay, with
// what each replaced (to undo them), and the log record's payload.
type round struct {
	t       *txn
	active  *overlay
	ids     *bucketIDs
	changes []change
	payload []byte // walHeader bytes, then operations
	keys    keyArena
}

type change struct {
	k   string // bucket id ‖ key
	old item
	had bool
}

func (r *round) reset(active *overlay, ids *bucketIDs, buf []byte, changes []change) {
	r.active, r.ids = active, ids
	clear(changes)
	r.changes = changes[:0]
	r.payload = append(buf[:0], make([]byte, walHeader)...)
}

func (r *round) set(b *bucket, k []byte, it item) {
	full := r.keys.key(b.id, k)
	r.t.gen++
	old, had := r.active.set(full, it)
	r.changes = append(r.changes, change{k: full, old: old, had: had})
	op := byte(opPut)
	if it.del {
		op = opDelete
	}
	r.payload = appendOp(r.payload, op, b.name, k, it.v)
}

// remove takes k out of the active overlay (which holds it, alone) and
// logs its deletion.
func (r *round) remove(b *bucket, k []byte) {
	r.t.gen++
	full := r.keys.key(b.id, k)
	old, _ := r.active.get(unsafeBytes(full))
	r.active.unset(full)
	r.changes = append(r.changes, change{k: full, old: old, had: true})
	r.payload = appendOp(r.payload, opDelete, b.name, k, nil)
}

// overlayKey is an overlay's key for k in bucket id: the id, then k.
func overlayKey(id byte, k []byte) string {
	var b strings.Builder
	b.Grow(1 + len(k))
	b.WriteByte(id)
	b.Write(k)
	return b.String()
}

// keyArena carves overlay keys out of blocks. A round sets thousands of
// keys; one allocation per block instead of one per key spares the writer
// most of its calls to the allocator, and the GC marks one object without
// pointers instead of each key. A key is an immutable string into a block,
// which is only ever appended to, within its capacity; the GC keeps a block
// as long as any of its keys, about as long as the overlay that holds them.
type keyArena struct{ block []byte }

const arenaBlock = 64 << 10

// key returns the overlay key of k in bucket id (see overlayKey).
func (a *keyArena) key(id byte, k []byte) string {
	n := 1 + len(k)
	if n > arenaBlock/16 {
		return overlayKey(id, k)
	}
	if cap(a.block)-len(a.block) < n {
		a.block = make([]byte, 0, arenaBlock)
	}
	start := len(a.block)
	a.block = append(append(a.block, id), k...)
	return unsafe.String(&a.block[start], n)
}

// unsafeBytes is s as a byte slice without a copy, for APIs that take
// bytes and neither keep nor change them.
func unsafeBytes(s string) []byte {
	return unsafe.Slice(unsafe.StringData(s), len(s))
}

// undo takes the round's changes back out of the overlay.
func (r *round) undo() {
	r.t.gen++
	undoChanges(r.active, r.changes)
	clear(r.changes)
	r.changes = r.changes[:0]
	r.payload = r.payload[:walHeader]
}

// undoChanges takes changes back out of o, newest first.
func undoChanges(o *overlay, changes []change) {
	for i := len(changes) - 1; i >= 0; i-- {
		c := changes[i]
		if c.had {
			o.set(c.k, c.old)
		} else {
			o.unset(c.k)
		}
	}
}
