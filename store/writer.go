package store

import (
	"errors"
	"fmt"
	"runtime"
	"sync"

	bolt "go.etcd.io/bbolt"
)

// Group commit.
//
// Every write (Add, Update, ApplyReceipt, Cancel, Recover, Purge) is a call
// queued for one writer goroutine. The writer takes every call waiting, runs
// them one after the other in a single bbolt transaction, commits it (one
// fsync), and answers them all. Calls that arrive meanwhile wait for the next
// round. Under low load a call is committed at once, alone; under load the
// calls that piled up during one fsync share the next one. There is no timer:
// unlike db.Batch, nobody waits for company that may not come.
//
// A call's function must be idempotent: if a later call in the same round
// fails after it has written something, the transaction is rolled back, the
// failed call gets its error, and the others are run again in a new
// transaction. A function that fails before writing anything returns its
// error wrapped by noWrite; the round then goes on without it.

// ErrClosed is returned (wrapped) by writes after Close.
var ErrClosed = errors.New("store: closed")

type call struct {
	fn   func(*bolt.Tx) error
	done chan error
}

type writer struct {
	// begin is called at the start of each transaction the writer runs, and
	// end after its calls, before the commit (both may be nil).
	begin func()
	end   func(*bolt.Tx) error

	mu      sync.Mutex
	cond    *sync.Cond
	queue   []call
	spare   []call
	closed  bool
	stopped chan struct{}
}

func (w *writer) start(db *bolt.DB) {
	w.cond = sync.NewCond(&w.mu)
	w.stopped = make(chan struct{})
	go w.loop(db)
}

var donePool = sync.Pool{New: func() any { return make(chan error, 1) }}

// do runs fn in the writer's next transaction and returns once it committed
// (nil) or failed (fn's error, or the commit's).
func (w *writer) do(fn func(*bolt.Tx) error) error {
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

// stop makes later calls fail with ErrClosed, and returns once the calls
// already queued are answered.
func (w *writer) stop() {
	w.mu.Lock()
	w.closed = true
	w.cond.Signal()
	w.mu.Unlock()
	<-w.stopped
}

func (w *writer) loop(db *bolt.DB) {
	defer close(w.stopped)
	for {
		// Let the callers answered by the last round run first: those
		// that write again join this round instead of the next one. This
		// costs a microsecond when nobody is waiting.
		runtime.Gosched()
		w.mu.Lock()
		for len(w.queue) == 0 && !w.closed {
			w.cond.Wait()
		}
		if len(w.queue) == 0 {
			w.mu.Unlock()
			return
		}
		round := w.queue
		w.queue, w.spare = w.spare[:0], nil
		w.mu.Unlock()

		w.runRound(db, round)

		clear(round) // drop the closures
		w.mu.Lock()
		w.spare = round[:0]
		w.mu.Unlock()
	}
}

// runRound runs calls in one transaction and answers each.
func (w *writer) runRound(db *bolt.DB, calls []call) {
	errs := make([]error, len(calls))
	for len(calls) > 0 {
		failed := -1
		err := db.Update(func(tx *bolt.Tx) error {
			if w.begin != nil {
				w.begin()
			}
			for i, c := range calls {
				err := safeCall(c.fn, tx)
				if nw, ok := err.(noWriteError); ok {
					errs[i] = nw.err
					continue
				}
				if err != nil {
					failed = i
					return err
				}
				errs[i] = nil
			}
			if w.end != nil {
				return w.end(tx)
			}
			return nil
		})
		if failed >= 0 {
			// Roll back, answer the call that failed, run the others again.
			calls[failed].done <- err
			calls = append(calls[:failed:failed], calls[failed+1:]...)
			errs = errs[:len(calls)]
			continue
		}
		for i, c := range calls {
			if err != nil {
				c.done <- err
			} else {
				c.done <- errs[i]
			}
		}
		return
	}
}

func safeCall(fn func(*bolt.Tx) error, tx *bolt.Tx) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic in store write: %v", p)
		}
	}()
	return fn(tx)
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
