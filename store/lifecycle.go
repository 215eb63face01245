package store

import (
	"bytes"
	"context"
	"fmt"
	"time"
)

// chunk is how many keys one transaction of Recover or Purge handles: small
// enough that the writers queued behind it hardly notice, large enough that
// a big backlog takes few commits.
var chunk = 500

// Recover moves every Submitting record back to Queued, due at now, with a
// "recovered" event, and returns how many it moved. Call it at start-up,
// before the dispatcher runs: a record left Submitting by a crash may have
// had some segments accepted and not recorded, so the segments without an
// SMSC id are submitted again (at least once). It reads the submitting
// index, not the records.
func (s *Store) Recover(now time.Time) (n int, err error) {
	for {
		var done int
		err := s.w.do(func(tx *txn) error {
			done = 0
			c := tx.Bucket(bucketSubmitting).Cursor()
			var keys []string
			for k, _ := c.First(); k != nil && len(keys) < chunk; k, _ = c.Next() {
				keys = append(keys, string(k))
			}
			for _, id := range keys {
				rec, err := load(tx, id)
				if err != nil {
					return err
				}
				old := snapshot(rec)
				if rec.State != Submitting { // a stray index entry
					if err := tx.Bucket(bucketSubmitting).Delete([]byte(id)); err != nil {
						return err
					}
					continue
				}
				rec.State, rec.NextAttempt = Queued, now
				rec.Events = append(rec.Events, Event{At: now, What: "recovered",
					Detail: "recovered after restart"})
				if err := s.put(tx, old, rec, now); err != nil {
					return err
				}
				done++
			}
			return nil
		})
		n += done
		if err != nil {
			return n, fmt.Errorf("store: recover: %w", err)
		}
		if done == 0 {
			return n, nil
		}
	}
}

// Cancel ends a record that is not final yet: it becomes Cancelled, with
// LastError reason and a "cancelled" event. A final record is left alone and
// the error wraps ErrBadTransition. The record is returned as written.
func (s *Store) Cancel(id, reason string) (*Record, error) {
	now := s.opt.Now()
	rec, err := s.Update(id, func(r *Record) error {
		if r.State.Final() {
			return fmt.Errorf("%w: %s record cannot be cancelled", ErrBadTransition, r.State)
		}
		r.State, r.LastError = Cancelled, reason
		r.Events = append(r.Events, Event{At: now, What: "cancelled", Detail: reason})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: cancel %s: %w", id, err)
	}
	return rec, nil
}

// Purge deletes what is no longer needed, in transactions of a few hundred
// keys so that writers never wait long, and returns the number of records
// deleted:
//
//   - final records whose report is done and that became final more than
//     Options.Retention before now, with their index entries (read from the
//     final index: live records are not looked at);
//   - the generations of dedup entries (see generation) that hold only
//     entries older than Options.DedupWindow;
//   - per-destination reference counters untouched for between one and
//     two refsGeneration (7 days);
//   - parked receipts older than Options.ParkedMaxAge.
//
// It stops early, with ctx's error, when ctx is done. Run it now and then
// (every few minutes); it never shrinks the file (see the package doc).
func (s *Store) Purge(ctx context.Context, now time.Time) (n int, err error) {
	if s.opt.Retention >= 0 {
		n, err = s.sweep(ctx, bucketFinal, now.Add(-s.opt.Retention), s.purgeRecord)
		if err != nil {
			return n, fmt.Errorf("store: purge records: %w", err)
		}
	}
	// The generation holding now - DedupWindow may hold entries within
	// the window; those before it do not (see duplicate). With no window,
	// every entry is stale.
	dedupBound := now
	if w := s.opt.DedupWindow; w >= 0 {
		dedupBound = generation(now.Add(-w), dedupGeneration)
	}
	if _, err := s.sweep(ctx, bucketDedup, dedupBound, dropKeyOnly); err != nil {
		return n, fmt.Errorf("store: purge dedup index: %w", err)
	}
	refsBound := generation(now, refsGeneration).Add(-refsGeneration)
	if _, err := s.sweep(ctx, bucketRefs, refsBound, dropKeyOnly); err != nil {
		return n, fmt.Errorf("store: purge refs: %w", err)
	}
	for {
		if err := ctx.Err(); err != nil {
			return n, fmt.Errorf("store: purge: %w", err)
		}
		var k int
		err := s.w.do(func(tx *txn) error {
			var err error
			k, err = s.expireParked(tx, now, chunk)
			return err
		})
		if err != nil {
			return n, fmt.Errorf("store: purge parked: %w", err)
		}
		if k < chunk {
			return n, nil
		}
	}
}

// sweep calls drop for each key of the time-keyed index bucket whose time is
// before cutoff, oldest first, chunk keys per transaction, and returns how
// many drop counted. drop deletes what the key stands for; sweep deletes the
// key.
func (s *Store) sweep(ctx context.Context, bucket []byte, cutoff time.Time,
	drop func(tx *txn, t time.Time, rest []byte) (bool, error)) (int, error) {
	bound := timeKey(cutoff)
	n := 0
	// Each batch starts after the last key the one before deleted: from
	// First, it would step again over every key deleted since the last
	// checkpoint, which the overlay still holds as deleted.
	var after []byte
	released := time.Now()
	defer func() { _ = releaseMapped(s.db) }() // costs memory only if it fails
	for {
		if time.Since(released) >= sweepRelease {
			_ = releaseMapped(s.db)
			released = time.Now()
		}
		if err := ctx.Err(); err != nil {
			return n, err
		}
		var seen, dropped int
		var keys [][]byte
		err := s.w.do(func(tx *txn) error {
			seen, dropped, keys = 0, 0, keys[:0]
			c := tx.Bucket(bucket).Cursor()
			var k []byte
			if after == nil {
				k, _ = c.First()
			} else {
				k, _ = c.Seek(after)
			}
			for ; k != nil && len(keys) < chunk && (len(k) < 8 || bytes.Compare(k[:8], bound) < 0); k, _ = c.Next() {
				keys = append(keys, bytes.Clone(k))
			}
			for _, k := range keys {
				if len(k) < 8 { // stands for nothing: it only goes
					if err := tx.Bucket(bucket).Delete(k); err != nil {
						return err
					}
					continue
				}
				ok, err := drop(tx, keyTime(k[:8]), k[8:])
				if err != nil {
					return err
				}
				if ok {
					dropped++
				}
				if err := tx.Bucket(bucket).Delete(k); err != nil {
					return err
				}
			}
			seen = len(keys)
			return nil
		})
		n += dropped
		if err != nil {
			return n, err
		}
		if seen < chunk {
			return n, nil
		}
		after = keys[len(keys)-1]
		select {
		case <-ctx.Done():
		case <-time.After(time.Duration(seen) * sweepPace):
		}
	}
}

// purgeRecord deletes the record of a final index entry.
func (s *Store) purgeRecord(tx *txn, _ time.Time, id []byte) (bool, error) {
	rec, err := load(tx, string(id))
	if err != nil {
		return false, nil // a stray index entry: sweep deletes it
	}
	if !rec.State.Final() || !rec.ReportDone {
		return false, nil
	}
	if err := s.remove(tx, rec); err != nil {
		return false, err
	}
	if rec.MessageID != "" {
		// Add's now, which is Created unless the caller set one.
		key := setGeneration(dedupKey(rec), generation(rec.Created, dedupGeneration))
		if v := tx.Bucket(bucketDedup).Get(key); len(v) > 8 && string(v[8:]) == rec.ID {
			if err := tx.Bucket(bucketDedup).Delete(key); err != nil {
				return false, err
			}
		}
	}
	return true, nil
}

// dropKeyOnly is sweep's drop for buckets whose keys stand for nothing
// else: the key goes, and counts for nothing.
func dropKeyOnly(*txn, time.Time, []byte) (bool, error) { return false, nil }

// sweepPace is the pause per key sweep deleted: at most 20,000 keys a
// second, so that a dedup window's worth of them (480,000 at 800 mails/s)
// is spread over half a minute instead of piling up in the overlay faster
// than checkpoints write them into bbolt.
var sweepPace = 50 * time.Microsecond

// sweepRelease is how often sweep drops the pages it mapped
// (releaseMapped): a stale dedup generation at 800 mails/s is about 50 MB
// of the file, read once and never again.
var sweepRelease = 20 * time.Millisecond

// Submitting returns up to limit ids of records in Submitting, from the
// submitting index.
func (s *Store) Submitting(limit int) ([]string, error) {
	var ids []string
	err := s.w.view(func(tx *txn) error {
		c := tx.Bucket(bucketSubmitting).Cursor()
		for k, _ := c.First(); k != nil && len(ids) < limit; k, _ = c.Next() {
			ids = append(ids, string(k))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: submitting: %w", err)
	}
	return ids, nil
}
