package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// parkedScan is how many of the oldest parked receipts each park looks at for
// expiry: enough to keep up with parking, bounded so parking stays cheap.
const parkedScan = 16

// ApplyReceipt records rc on the segment with its SMSC id and recomputes the
// record's state (see the package doc for the rules). An id not (yet) known is
// parked and applied when a segment gets that id; matched is then false and
// rec nil. It returns after the commit.
//
// A receipt for a known id that changes nothing (a duplicate, or one for a
// final record) returns the record unchanged with matched true.
func (s *Store) ApplyReceipt(rc Receipt) (rec *Record, matched bool, err error) {
	if rc.SMSCID == "" {
		return nil, false, errors.New("store: receipt without SMSC id")
	}
	now := s.opt.Now()
	err = s.w.do(func(tx *txn) error {
		// This may run more than once: start from scratch each time.
		rec, matched = nil, false
		ref := tx.Bucket(bucketSMSC).Get([]byte(rc.SMSCID))
		if ref == nil {
			return s.park(tx, rc, now)
		}
		matched = true
		var err error
		rec, err = s.applyIndexed(tx, ref, rc, now)
		return err
	})
	if err != nil {
		return nil, false, fmt.Errorf("store: receipt %s: %w", rc.SMSCID, err)
	}
	return rec, matched, nil
}

// applyIndexed applies rc to the segment that ref (an smscid index value)
// points to, and returns the record as it is after the transaction.
func (s *Store) applyIndexed(tx *txn, ref []byte, rc Receipt, now time.Time) (*Record, error) {
	id, seg, err := splitSegRef(ref)
	if err != nil {
		return nil, err
	}
	rec, err := load(tx, id)
	if err != nil {
		return nil, fmt.Errorf("smscid index: %w", err)
	}
	old := snapshot(rec)
	if seg >= len(rec.Segments) || rec.Segments[seg].SMSCID != rc.SMSCID {
		return nil, fmt.Errorf("smscid index points to %s segment %d, which does not have it", id, seg)
	}
	if !applyReceipt(rec, seg, rc, now) {
		return rec, nil
	}
	settle(rec, now)
	return rec, s.put(tx, old, rec, now)
}

// Segment outcomes of a receipt stat.
func segStateOf(stat string) (state string, final bool) {
	switch strings.ToUpper(strings.TrimSpace(stat)) {
	case "DELIVRD":
		return SegDelivered, true
	case "UNDELIV", "EXPIRED", "REJECTD", "DELETED", "UNKNOWN":
		return SegFailed, true
	}
	return "", false
}

// applyReceipt records rc on segment i of rec and reports whether it changed
// anything: receipts for a final record or for a segment that already has
// its final receipt are ignored.
func applyReceipt(rec *Record, i int, rc Receipt, now time.Time) bool {
	seg := &rec.Segments[i]
	if rec.State.Final() || seg.State == SegDelivered || seg.State == SegFailed {
		return false
	}
	seg.Stat, seg.Err = rc.Stat, rc.Err
	if state, final := segStateOf(rc.Stat); final {
		seg.State = state
	}
	rec.Events = append(rec.Events, Event{At: now, What: "receipt",
		Detail: fmt.Sprintf("seg %d/%d stat=%s err=%s", i+1, len(rec.Segments), rc.Stat, rc.Err)})
	return true
}

// settle moves a Queued, Submitting or Submitted record to Failed when a
// segment has failed, or to Delivered when every segment was delivered.
func settle(rec *Record, now time.Time) {
	if rec.State.Final() {
		return
	}
	delivered := len(rec.Segments) > 0
	for _, seg := range rec.Segments {
		if seg.State == SegFailed {
			rec.State = Failed
			rec.LastError = fmt.Sprintf("stat=%s err=%s", seg.Stat, seg.Err)
			rec.Events = append(rec.Events, Event{At: now, What: "failed", Detail: rec.LastError})
			return
		}
		delivered = delivered && seg.State == SegDelivered
	}
	if delivered {
		rec.State = Delivered
		rec.Events = append(rec.Events, Event{At: now, What: "delivered"})
	}
}

// applyParked applies the parked receipts for the SMSC ids that rec has and
// old did not, then settles rec if any of them changed it.
func (s *Store) applyParked(tx *txn, old before, rec *Record, now time.Time) error {
	applied := false
	for i, seg := range rec.Segments {
		if seg.SMSCID == "" || (i < len(old.smscIDs) && old.smscIDs[i] == seg.SMSCID) {
			continue
		}
		p, err := unpark(tx, seg.SMSCID)
		if err != nil {
			return err
		}
		if p != nil && applyReceipt(rec, i, p.Receipt, now) {
			applied = true
		}
	}
	if applied {
		settle(rec, now)
	}
	return nil
}

// parked is a receipt waiting for its SMSC id to be recorded.
type parked struct {
	Receipt  Receipt
	ParkedAt time.Time
}

// park keeps rc until a segment gets its SMSC id. A final receipt is not
// replaced by an intermediate one for the same id. Each park also drops a
// few expired entries.
func (s *Store) park(tx *txn, rc Receipt, now time.Time) error {
	prev, err := getParked(tx, rc.SMSCID)
	if err != nil {
		return err
	}
	if prev != nil {
		if _, final := segStateOf(prev.Receipt.Stat); final {
			if _, isFinal := segStateOf(rc.Stat); !isFinal {
				return nil
			}
		}
		if err := deleteParked(tx, rc.SMSCID, prev); err != nil {
			return err
		}
	}
	if rc.At.IsZero() {
		rc.At = now
	}
	p := parked{Receipt: rc, ParkedAt: now}
	v, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("encode parked: %w", err)
	}
	if err := tx.Bucket(bucketParked).Put([]byte(rc.SMSCID), v); err != nil {
		return fmt.Errorf("park: %w", err)
	}
	if err := tx.Bucket(bucketParkedAge).Put(timeIDKey(now, rc.SMSCID), []byte{}); err != nil {
		return fmt.Errorf("park: %w", err)
	}
	_, err = s.expireParked(tx, now, parkedScan)
	return err
}

// getParked returns the parked receipt for smscID, or nil.
func getParked(tx *txn, smscID string) (*parked, error) {
	v := tx.Bucket(bucketParked).Get([]byte(smscID))
	if v == nil {
		return nil, nil
	}
	p := new(parked)
	if err := json.Unmarshal(v, p); err != nil {
		return nil, fmt.Errorf("parked %s: %w", smscID, err)
	}
	return p, nil
}

// unpark removes and returns the parked receipt for smscID, or nil. An
// expired receipt not yet purged is still returned: it is as true as before.
func unpark(tx *txn, smscID string) (*parked, error) {
	p, err := getParked(tx, smscID)
	if p == nil || err != nil {
		return nil, err
	}
	return p, deleteParked(tx, smscID, p)
}

func deleteParked(tx *txn, smscID string, p *parked) error {
	if err := tx.Bucket(bucketParked).Delete([]byte(smscID)); err != nil {
		return fmt.Errorf("unpark %s: %w", smscID, err)
	}
	if err := tx.Bucket(bucketParkedAge).Delete(timeIDKey(p.ParkedAt, smscID)); err != nil {
		return fmt.Errorf("unpark %s: %w", smscID, err)
	}
	return nil
}

// expireParked drops parked receipts parked more than ParkedMaxAge before
// now, looking at no more than limit of the oldest (limit <= 0: all).
func (s *Store) expireParked(tx *txn, now time.Time, limit int) (int, error) {
	cutoff := now.Add(-s.opt.ParkedMaxAge)
	var expired [][]byte
	c := tx.Bucket(bucketParkedAge).Cursor()
	for k, _ := c.First(); k != nil && !full(len(expired), limit); k, _ = c.Next() {
		if !keyTime(k).Before(cutoff) {
			break
		}
		expired = append(expired, k) // deleting under a cursor can skip keys
	}
	var dropped []parked
	for _, k := range expired {
		t, smscID, err := splitTimeKey(k)
		if err != nil {
			return 0, err
		}
		if s.opt.Dropped != nil {
			p, err := getParked(tx, smscID)
			switch {
			case err != nil: // unreadable: say what we know, drop it all the same
				dropped = append(dropped, parked{Receipt: Receipt{SMSCID: smscID}, ParkedAt: t})
			case p != nil:
				dropped = append(dropped, *p)
			}
		}
		if err := deleteParked(tx, smscID, &parked{ParkedAt: t}); err != nil {
			return 0, err
		}
	}
	if len(dropped) > 0 {
		tx.OnCommit(func() {
			for _, p := range dropped {
				s.opt.Dropped(p.Receipt, p.ParkedAt)
			}
		})
	}
	return len(expired), nil
}

// PurgeParked drops every parked receipt older than Options.ParkedMaxAge and
// returns how many it dropped. Parking does this a few at a time already;
// PurgeParked is for a periodic sweep or an operator.
func (s *Store) PurgeParked() (int, error) {
	now := s.opt.Now()
	var n int
	err := s.w.do(func(tx *txn) error {
		var err error
		n, err = s.expireParked(tx, now, 0)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("store: purge parked: %w", err)
	}
	return n, nil
}

// Parked returns the number of receipts waiting for their SMSC id.
func (s *Store) Parked() (int, error) {
	var n int
	err := s.w.view(func(tx *txn) error {
		n = tx.Bucket(bucketParked).KeyN()
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("store: parked: %w", err)
	}
	return n, nil
}
