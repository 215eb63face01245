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
// replay is the way back.

// ErrClosed is returned (wrapped) by writes after Close.
var ErrClosed = errors.New("store: closed")

// Checkpoint triggers (variables for tests).
var (
	ckptBytes   int64 = 4 << 20
	maxLogBytes int64 = 32 << 20
	ckptAge           = time.Second
	// releaseEvery spaces out dropping bbolt's mapped pages from the RSS.
	releaseEvery = 5 * time.Second
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

	db  *bolt.DB
	ids *bucketIDs
	log wal

	mu       sync.Mutex // guards the fields up to stopped
	cond     *sync.Cond
	queue    []call
	spare    []call
	closed   bool
	ckptDone *error // set by the checkpoint goroutine
	tick     bool   // the age timer fired
	timer    *time.Timer
	stopped  chan struct{}
	stopErr  error

	// omu guards active and frozen against readers: the writer holds it
	// for a whole round, so a reader never sees a round before it is on
	// disk, nor one that is being undone.
	omu    sync.Mutex
	active *overlay
	frozen *overlay

	// The writer goroutine's own state.
	ckptRunning bool      // a checkpoint goroutine is on, or its ckptDone not taken
	since       time.Time // when active got its first round
	logBytes    int64     // log written since active started
	broken      error
	rnd         round
	buf         []byte

	released time.Time // the last releaseMapped (checkpoints only; one at a time)

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
	w.stopped = make(chan struct{})
	w.active = newOverlay(0)
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

// view runs fn in a read transaction over what the last durable round
// left. It holds off the writer meanwhile (the overlay is not made for
// readers beside its writer): fn should be quick.
func (w *writer) view(fn func(*txn) error) error {
	w.omu.Lock()
	defer w.omu.Unlock()
	btx, err := w.db.Begin(false)
	if err != nil {
		return err
	}
	defer btx.Rollback()
	return fn(&txn{ids: w.ids, layers: []*overlay{w.active, w.frozen}, base: btx})
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
		// Let the callers answered by the last round run first: those
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

// next waits for calls and takes them, handling checkpoint events on the
// way. It returns false, with w.mu held, when the writer is to stop.
func (w *writer) next() ([]call, bool) {
	w.mu.Lock()
	for {
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

// runRound runs calls in one round and answers each.
func (w *writer) runRound(calls []call) {
	errs := make([]error, len(calls))
	var hooks []func()
	w.omu.Lock()
	for len(calls) > 0 {
		if w.broken != nil {
			for _, c := range calls {
				c.done <- w.broken
			}
			w.omu.Unlock()
			return
		}
		failed, n, err := w.tryRound(calls, errs, &hooks)
		if n < len(calls) {
			// The round is full: the rest go first in the next.
			w.requeue(calls[n:])
			calls, errs = calls[:n], errs[:n]
		}
		if failed >= 0 {
			// Undo, answer the call that failed, run the others again.
			calls[failed].done <- err
			calls = append(calls[:failed:failed], calls[failed+1:]...)
			errs = errs[:len(calls)]
			continue
		}
		if err != nil {
			w.broken = err
			errs = errs[:0]
			for range calls {
				errs = append(errs, err)
			}
		}
		break
	}
	w.omu.Unlock()
	for _, h := range hooks {
		h()
	}
	for i, c := range calls {
		c.done <- errs[i]
	}
}

// requeue puts calls back at the head of the queue.
func (w *writer) requeue(calls []call) {
	w.mu.Lock()
	w.queue = append(slices.Clone(calls), w.queue...)
	w.mu.Unlock()
}

// tryRound runs calls over the active overlay and logs what they wrote.
// It returns the index of a call that failed after writing (the round is
// undone then), or -1 and the log's error (nil if durable), and how many
// calls it ran: it stops taking them once the round holds maxRoundBytes.
func (w *writer) tryRound(calls []call, errs []error, hooks *[]func()) (failed, n int, err error) {
	n = len(calls)
	defer func() { w.rnd.t = nil }() // nor keep its hooks
	btx, err := w.db.Begin(false)
	if err != nil {
		return -1, n, fmt.Errorf("store: begin: %w", err)
	}
	defer btx.Rollback()
	w.rnd.reset(w.active, w.ids, w.buf)
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
	w.buf = w.rnd.payload
	if len(w.rnd.changes) == 0 {
		*hooks = t.onCommit
		return -1, n, nil
	}
	if err := w.log.append(w.rnd.payload); err != nil {
		w.rnd.undo()
		return -1, n, err
	}
	w.rounds.Add(1)
	if w.logBytes == 0 {
		w.since = time.Now()
	}
	w.logBytes += int64(len(w.rnd.payload))
	*hooks = t.onCommit
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
	frozen, seq, gen := w.active, w.log.seq, w.log.gen
	if err := w.log.create(gen + 1); err != nil {
		w.broken = err
		return
	}
	w.omu.Lock()
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
// store closed cleanly is one bbolt file.
func (w *writer) finish() error {
	w.mu.Lock()
	if w.timer != nil {
		w.timer.Stop()
	}
	for w.ckptRunning && w.ckptDone == nil {
		w.cond.Wait()
	}
	if w.ckptDone != nil {
		err := *w.ckptDone
		w.ckptDone, w.ckptRunning = nil, false
		w.mu.Unlock()
		w.checkpointed(err)
	} else {
		w.mu.Unlock()
	}
	if w.broken != nil {
		w.log.close()
		return w.broken // the log stays for Open to replay
	}
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
}

type change struct {
	k   string // bucket id ‖ key
	old item
	had bool
}

func (r *round) reset(active *overlay, ids *bucketIDs, buf []byte) {
	r.active, r.ids = active, ids
	clear(r.changes)
	r.changes = r.changes[:0]
	r.payload = append(buf[:0], make([]byte, walHeader)...)
}

func (r *round) set(b *bucket, k []byte, it item) {
	full := overlayKey(b.id, k)
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
	full := overlayKey(b.id, k)
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

// unsafeBytes is s as a byte slice without a copy, for APIs that take
// bytes and neither keep nor change them.
func unsafeBytes(s string) []byte {
	return unsafe.Slice(unsafe.StringData(s), len(s))
}

// undo takes the round's changes back out of the overlay, newest first.
func (r *round) undo() {
	r.t.gen++
	for i := len(r.changes) - 1; i >= 0; i-- {
		c := r.changes[i]
		if c.had {
			r.active.set(c.k, c.old)
		} else {
			r.active.unset(c.k)
		}
	}
	clear(r.changes)
	r.changes = r.changes[:0]
	r.payload = r.payload[:walHeader]
}
