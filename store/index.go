package store

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Buckets; the package doc describes their keys and values.
var (
	bucketMeta      = []byte("meta")
	bucketRecords   = []byte("records")
	bucketDue       = []byte("due")
	bucketSMSC      = []byte("smscid")
	bucketReport    = []byte("report")
	bucketParked    = []byte("parked")
	bucketParkedAge = []byte("parked_age")

	allBuckets = [][]byte{bucketMeta, bucketRecords, bucketDue, bucketSMSC,
		bucketReport, bucketParked, bucketParkedAge}

	keyVersion = []byte("version")
)

const layoutVersion = "1"

// entry is one index entry that a record implies.
type entry struct {
	bucket, key, val []byte
}

func (e entry) equal(o entry) bool {
	return bytes.Equal(e.bucket, o.bucket) && bytes.Equal(e.key, o.key) && bytes.Equal(e.val, o.val)
}

// wakes reports whether adding e may give the dispatcher or the reporter
// work (see Changed).
func (e entry) wakes() bool {
	return bytes.Equal(e.bucket, bucketDue) || bytes.Equal(e.bucket, bucketReport)
}

// entries returns the index entries of r (none for nil).
func entries(r *Record) []entry {
	if r == nil {
		return nil
	}
	var es []entry
	if r.State == Queued {
		es = append(es, entry{bucketDue, timeIDKey(r.NextAttempt, r.ID), []byte{}})
	}
	if r.State.Final() && !r.ReportDone {
		es = append(es, entry{bucketReport, []byte(r.ID), []byte{}})
	}
	for i, seg := range r.Segments {
		if seg.SMSCID != "" {
			es = append(es, entry{bucketSMSC, []byte(seg.SMSCID), segRef(r.ID, i)})
		}
	}
	return es
}

// put writes rec and moves its index entries from what old implied to what
// rec implies (old is nil for a new record). After the commit, subscribers of
// Changed are woken if rec entered the due or report index.
func (s *Store) put(tx *bolt.Tx, old, rec *Record) error {
	data, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("encode %s: %w", rec.ID, err)
	}
	if err := tx.Bucket(bucketRecords).Put([]byte(rec.ID), data); err != nil {
		return fmt.Errorf("put %s: %w", rec.ID, err)
	}
	before, after := entries(old), entries(rec)
	for _, e := range before {
		if !contains(after, e) {
			if err := deleteEntry(tx, e); err != nil {
				return err
			}
		}
	}
	wake := false
	for _, e := range after {
		if contains(before, e) {
			continue
		}
		if err := tx.Bucket(e.bucket).Put(e.key, e.val); err != nil {
			return fmt.Errorf("index %s of %s: %w", e.bucket, rec.ID, err)
		}
		wake = wake || e.wakes()
	}
	if wake {
		tx.OnCommit(s.subs.notify)
	}
	return nil
}

// deleteEntry removes e if the index still holds it as e. An SMSC id reused by
// another record points to that record now and is left alone.
func deleteEntry(tx *bolt.Tx, e entry) error {
	b := tx.Bucket(e.bucket)
	if v := b.Get(e.key); v == nil || !bytes.Equal(v, e.val) {
		return nil
	}
	if err := b.Delete(e.key); err != nil {
		return fmt.Errorf("unindex %s %q: %w", e.bucket, e.key, err)
	}
	return nil
}

func contains(es []entry, e entry) bool {
	for _, o := range es {
		if o.equal(e) {
			return true
		}
	}
	return false
}

// load reads and decodes record id (a private copy).
func load(tx *bolt.Tx, id string) (*Record, error) {
	v := tx.Bucket(bucketRecords).Get([]byte(id))
	if v == nil {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	rec, err := decode(v)
	if err != nil {
		return nil, fmt.Errorf("record %s: %w", id, err)
	}
	return rec, nil
}

func decode(v []byte) (*Record, error) {
	rec := new(Record)
	if err := json.Unmarshal(v, rec); err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	return rec, nil
}

// decodeState reads only the state of an encoded record.
func decodeState(v []byte) (State, error) {
	var r struct{ State State }
	if err := json.Unmarshal(v, &r); err != nil {
		return "", fmt.Errorf("decode: %w", err)
	}
	return r.State, nil
}

// Time keys: 8 bytes that sort like the times they encode. Unix nanoseconds
// with the sign bit flipped, clamped to the range int64 nanoseconds can hold
// (the zero time sorts first).
var (
	minKeyTime = time.Unix(0, math.MinInt64)
	maxKeyTime = time.Unix(0, math.MaxInt64)
)

func timeKey(t time.Time) []byte {
	var n int64
	switch {
	case t.Before(minKeyTime):
		n = math.MinInt64
	case t.After(maxKeyTime):
		n = math.MaxInt64
	default:
		n = t.UnixNano()
	}
	return binary.BigEndian.AppendUint64(nil, uint64(n)^(1<<63))
}

func keyTime(k []byte) time.Time {
	return time.Unix(0, int64(binary.BigEndian.Uint64(k)^(1<<63)))
}

// timeIDKey is timeKey(t) ‖ id, the key of the due and parked_age indexes.
func timeIDKey(t time.Time, id string) []byte {
	return append(timeKey(t), id...)
}

func splitTimeKey(k []byte) (time.Time, string, error) {
	if len(k) <= 8 {
		return time.Time{}, "", fmt.Errorf("bad index key %x", k)
	}
	return keyTime(k[:8]), string(k[8:]), nil
}

// segRef is the value of the smscid index: segment index ‖ record id.
func segRef(id string, seg int) []byte {
	return append(binary.BigEndian.AppendUint32(nil, uint32(seg)), id...)
}

func splitSegRef(v []byte) (id string, seg int, err error) {
	if len(v) <= 4 {
		return "", 0, errors.New("bad smscid index value")
	}
	return string(v[4:]), int(binary.BigEndian.Uint32(v[:4])), nil
}
