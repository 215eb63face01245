package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
)

// appendFill is the FillPercent of the appendMostly buckets.
const appendFill = 0.9

// Buckets; the package doc describes their keys and values.
var (
	bucketMeta       = []byte("meta")
	bucketRecords    = []byte("records")
	bucketDue        = []byte("due")
	bucketSubmitting = []byte("submitting")
	bucketSMSC       = []byte("smscid")
	bucketReport     = []byte("report")
	bucketFinal      = []byte("final")
	bucketCounts     = []byte("counts")
	bucketDedup      = []byte("dedup_gen")
	bucketRefs       = []byte("refs_gen")
	bucketParked     = []byte("parked")
	bucketParkedAge  = []byte("parked_age")
	bucketReportDue  = []byte("report_due")
	bucketDelay      = []byte("delay")
	bucketOriginals  = []byte("originals")
	bucketHeaders    = []byte("headers")

	// appendMostly are the buckets whose keys start with a record id or a
	// time, so that new keys go mostly at the end: checkpoints fill
	// their pages to appendFill instead of bbolt's half, so that a record
	// costs fewer pages to write and to walk. The others (keyed by an SMSC
	// id, a hash, a number) take new keys anywhere, where half-full pages
	// leave room.
	appendMostly = map[string]bool{string(bucketRecords): true, string(bucketDue): true,
		string(bucketSubmitting): true, string(bucketReport): true, string(bucketFinal): true,
		string(bucketParkedAge): true, string(bucketReportDue): true, string(bucketDelay): true,
		string(bucketOriginals): true, string(bucketHeaders): true}

	allBuckets = [][]byte{bucketMeta, bucketRecords, bucketDue, bucketSubmitting,
		bucketSMSC, bucketReport, bucketFinal, bucketCounts, bucketDedup,
		bucketRefs, bucketParked, bucketParkedAge, bucketReportDue, bucketDelay, bucketOriginals,
		bucketInbound, bucketMOParts, bucketHeaders}

	// droppedBuckets were in older layouts: layout 5 dropped the age
	// indexes of dedup and refs (two more writes per record); since
	// layout 7 their keys start with their generation instead.
	droppedBuckets = [][]byte{[]byte("dedup_age"), []byte("refs_age")}

	// regenerated are the buckets of layouts before 7 whose entries go,
	// under their generation (see generation), to the bucket of the same
	// kind: copied a chunk at a time by Open, then dropped.
	regenerated = []struct {
		old, new []byte
		length   time.Duration
		at       func(v []byte) (time.Time, bool) // the time in a value
	}{
		{[]byte("dedup"), bucketDedup, dedupGeneration, func(v []byte) (time.Time, bool) {
			return keyTimeAt(v, 0, len(v) > 8) // accepted time ‖ id
		}},
		{[]byte("refs"), bucketRefs, refsGeneration, func(v []byte) (time.Time, bool) {
			return keyTimeAt(v, 2, len(v) == 10) // reference ‖ time last used
		}},
	}

	// derivedBuckets hold what the records imply; a migration rebuilds them.
	derivedBuckets = [][]byte{bucketDue, bucketSubmitting, bucketSMSC, bucketReport,
		bucketFinal, bucketCounts, bucketReportDue, bucketDelay}

	keyVersion = []byte("version")
)

// layoutVersion 2 added the submitting, final, counts, dedup and refs
// buckets, 3 the report_due and delay indexes, 5 dropped dedup_age and
// refs_age, 6 the headers bucket (records of layout 5 keep their header
// inline, and are read as they are), 7 the dedup_gen and refs_gen buckets,
// keyed by generation (see generation), for dedup and refs; an older file
// is migrated by Open.
const layoutVersion = "7"

// entry is one index entry that a record implies.
type entry struct {
	bucket, key, val []byte
}

func (e entry) equal(o entry) bool {
	return bytes.Equal(e.bucket, o.bucket) && bytes.Equal(e.key, o.key) && bytes.Equal(e.val, o.val)
}

// wakesDue reports whether putting e may give the dispatcher work (see
// DueChanged), and wakesReports whether it may give the report loop work
// (see Changed, which both wake).
func (e entry) wakesDue() bool { return bytes.Equal(e.bucket, bucketDue) }

func (e entry) wakesReports() bool {
	return bytes.Equal(e.bucket, bucketReport) || bytes.Equal(e.bucket, bucketReportDue)
}

// entries returns the index entries of r (none for nil). Their keys and
// values share one buffer: the writer computes entries twice per change,
// and allocations are most of their cost.
func entries(r *Record) []entry {
	if r == nil {
		return nil
	}
	es := make([]entry, 0, 2+len(r.Segments))
	size := 2 * (8 + len(r.ID))
	for _, seg := range r.Segments {
		if seg.SMSCID != "" {
			size += len(seg.SMSCID) + 4 + len(r.ID)
		}
	}
	buf := make([]byte, 0, size)
	// cut returns what was appended to buf since start, capped: nothing
	// appended to one key or value runs over the next.
	cut := func(start int) []byte { return buf[start:len(buf):len(buf)] }
	timeID := func(t time.Time) []byte {
		start := len(buf)
		buf = appendTimeIDKey(buf, t, r.ID)
		return cut(start)
	}
	id := func() []byte {
		start := len(buf)
		buf = append(buf, r.ID...)
		return cut(start)
	}
	switch {
	case r.State == Queued:
		es = append(es, entry{bucketDue, timeID(r.NextAttempt), []byte{}})
	case r.State == Submitted && !r.ReceiptsBy.IsZero():
		// A submitted record is due when its receipts are overdue: the
		// dispatcher ends it then, so it cannot wait forever.
		es = append(es, entry{bucketDue, timeID(r.ReceiptsBy), []byte{}})
	case r.State == Submitting:
		es = append(es, entry{bucketSubmitting, id(), []byte{}})
	case r.State.Final() && !r.ReportDone:
		es = append(es, entry{bucketReport, id(), []byte{}})
	case r.State.Final():
		es = append(es, entry{bucketFinal, timeID(r.FinalAt), []byte{}})
	}
	switch {
	case r.State.Final() && !r.ReportDone,
		!r.State.Final() && !r.DelayDone && !r.ReportNextAttempt.IsZero():
		es = append(es, entry{bucketReportDue, timeID(r.ReportNextAttempt), []byte{}})
	case !r.State.Final() && !r.DelayDone && mayWantDelay(r):
		es = append(es, entry{bucketDelay, timeID(r.Created), []byte{}})
	}
	for i, seg := range r.Segments {
		if seg.SMSCID != "" {
			start := len(buf)
			buf = append(buf, seg.SMSCID...)
			k := cut(start)
			start = len(buf)
			buf = appendSegRef(buf, r.ID, i)
			es = append(es, entry{bucketSMSC, k, cut(start)})
		}
	}
	return es
}

// mayWantDelay reports whether what the record says allows a delay report;
// when NOTIFY is absent and ReportPolicy is the server's, the report loop
// decides (it knows the server's policy).
func mayWantDelay(r *Record) bool {
	switch {
	case r.From == "" || r.NoReport != "" || r.Notify == "NEVER":
		return false
	case r.Notify != "":
		return strings.Contains(r.Notify, "DELAY")
	}
	return r.ReportPolicy != "none" && r.ReportPolicy != "failures"
}

// before is what a record was when a write transaction read it: what put
// needs to move its indexes and check its change of state.
type before struct {
	state   State
	entries []entry
	smscIDs []string // per segment
}

func snapshot(r *Record) before {
	b := before{state: r.State, entries: entries(r), smscIDs: make([]string, len(r.Segments))}
	for i, seg := range r.Segments {
		b.smscIDs[i] = seg.SMSCID
	}
	return b
}

// put checks rec's change of state, sets FinalAt when it becomes final,
// writes it, and moves its index entries and state count from what old
// implied to what rec implies (old is the zero before for a new record).
// After the commit, subscribers of Changed are woken if rec entered the due
// or report index.
//
// put writes nothing if it returns an ErrBadTransition error.
func (s *Store) put(tx *txn, old before, rec *Record, now time.Time) error {
	if err := checkTransition(old.state, rec); err != nil {
		return noWrite(fmt.Errorf("%s: %w", rec.ID, err))
	}
	if rec.State.Final() && !old.state.Final() {
		rec.FinalAt = now
		// A delay report still being retried is moot: the final report
		// is due at once.
		rec.ReportAttempts, rec.ReportNextAttempt = 0, time.Time{}
	}
	if rec.State.Final() && rec.ReportDone {
		rec.Original, rec.Header = nil, nil // kept only for reports
		if err := dropShared(tx, rec); err != nil {
			return err
		}
	}
	data, err := encode(rec)
	if err != nil {
		// Not noWrite: dropShared may have written; the round is undone.
		return fmt.Errorf("encode %s: %w", rec.ID, err)
	}
	if err := tx.Bucket(bucketRecords).putOwned(unsafeBytes(rec.ID), data); err != nil {
		return fmt.Errorf("put %s: %w", rec.ID, err)
	}
	after := entries(rec)
	for _, e := range old.entries {
		if !contains(after, e) {
			if err := deleteEntry(tx, e); err != nil {
				return err
			}
		}
	}
	wakeDue, wakeReports := false, false
	for _, e := range after {
		if contains(old.entries, e) {
			continue
		}
		// entries makes new values for every call.
		if err := tx.Bucket(e.bucket).putOwned(e.key, e.val); err != nil {
			return fmt.Errorf("index %s of %s: %w", e.bucket, rec.ID, err)
		}
		wakeDue = wakeDue || e.wakesDue()
		wakeReports = wakeReports || e.wakesReports()
	}
	if old.state != rec.State {
		s.counted(old.state, -1)
		s.counted(rec.State, +1)
	}
	switch {
	case wakeDue:
		tx.OnCommit(s.wakeDue)
	case wakeReports:
		tx.OnCommit(s.wakeReports)
	}
	return nil
}

// dropShared drops rec's claims on the shared original and header, once
// no report needs them.
func dropShared(tx *txn, rec *Record) error {
	if rec.OriginalRef != "" {
		if err := unrefShared(tx, bucketOriginals, rec.OriginalRef); err != nil {
			return fmt.Errorf("original of %s: %w", rec.ID, err)
		}
		rec.OriginalRef = ""
	}
	if rec.HeaderRef != "" {
		if err := unrefShared(tx, bucketHeaders, rec.HeaderRef); err != nil {
			return fmt.Errorf("header of %s: %w", rec.ID, err)
		}
		rec.HeaderRef = ""
	}
	return nil
}

// counted notes a change of the number of records in state st, written to
// the counts bucket at the end of the transaction (once per state, however
// many records changed). Only the writer goroutine calls it.
func (s *Store) counted(st State, delta int64) {
	if st == "" {
		return
	}
	if s.deltas == nil {
		s.deltas = make(map[State]int64)
	}
	s.deltas[st] += delta
}

// writeCounts adds the changes noted by counted to the counts bucket.
func (s *Store) writeCounts(tx *txn) error {
	for st, d := range s.deltas {
		if d != 0 {
			if err := count(tx, st, d); err != nil {
				return fmt.Errorf("count %s: %w", st, err)
			}
		}
	}
	clear(s.deltas)
	return nil
}

// remove deletes rec (as stored) with its index entries and its count.
func (s *Store) remove(tx *txn, rec *Record) error {
	if err := tx.Bucket(bucketRecords).Delete(unsafeBytes(rec.ID)); err != nil {
		return fmt.Errorf("delete %s: %w", rec.ID, err)
	}
	if err := dropShared(tx, rec); err != nil {
		return err
	}
	for _, e := range entries(rec) {
		if err := deleteEntry(tx, e); err != nil {
			return err
		}
	}
	s.counted(rec.State, -1)
	return nil
}

// count adds delta to the number of records in state st ("" is no state: a
// record that does not exist).
func count(tx *txn, st State, delta int64) error {
	if st == "" {
		return nil
	}
	b := tx.Bucket(bucketCounts)
	var n int64
	if v := b.Get([]byte(st)); len(v) == 8 {
		n = int64(binary.BigEndian.Uint64(v))
	}
	n = max(n+delta, 0)
	if n == 0 {
		return b.Delete([]byte(st))
	}
	return b.Put([]byte(st), binary.BigEndian.AppendUint64(nil, uint64(n)))
}

// deleteEntry removes e if the index still holds it as e. An SMSC id reused by
// another record points to that record now and is left alone.
func deleteEntry(tx *txn, e entry) error {
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

// load reads and decodes record id (a private copy: its strings may share
// an overlay's value, which never changes).
func load(tx *txn, id string) (*Record, error) {
	v, stable := tx.Bucket(bucketRecords).lookup([]byte(id))
	if v == nil {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	rec, err := decodeFrom(v, stable)
	if err != nil {
		return nil, fmt.Errorf("record %s: %w", id, err)
	}
	return rec, nil
}

// Time keys: 8 bytes that sort like the times they encode. Unix nanoseconds
// with the sign bit flipped, clamped to the range int64 nanoseconds can hold
// (the zero time sorts first).
var (
	minKeyTime = time.Unix(0, math.MinInt64)
	maxKeyTime = time.Unix(0, math.MaxInt64)
)

func timeKey(t time.Time) []byte {
	a := timeKeyArray(t)
	return a[:]
}

// timeKeyArray is timeKey as an array, which costs no allocation where it
// does not escape.
func timeKeyArray(t time.Time) [8]byte {
	var n int64
	switch {
	case t.Before(minKeyTime):
		n = math.MinInt64
	case t.After(maxKeyTime):
		n = math.MaxInt64
	default:
		n = t.UnixNano()
	}
	var a [8]byte
	binary.BigEndian.PutUint64(a[:], uint64(n)^(1<<63))
	return a
}

func keyTime(k []byte) time.Time {
	return time.Unix(0, int64(binary.BigEndian.Uint64(k)^(1<<63)))
}

// keyTimeAt is keyTime of v[off:], if ok.
func keyTimeAt(v []byte, off int, ok bool) (time.Time, bool) {
	if !ok {
		return time.Time{}, false
	}
	return keyTime(v[off:]), true
}

// timeIDKey is timeKey(t) ‖ id, the key of the due and parked_age indexes.
func timeIDKey(t time.Time, id string) []byte {
	return appendTimeIDKey(nil, t, id)
}

func appendTimeIDKey(b []byte, t time.Time, id string) []byte {
	a := timeKeyArray(t)
	return append(append(b, a[:]...), id...)
}

func splitTimeKey(k []byte) (time.Time, string, error) {
	if len(k) <= 8 {
		return time.Time{}, "", fmt.Errorf("bad index key %x", k)
	}
	return keyTime(k[:8]), string(k[8:]), nil
}

// segRef is the value of the smscid index: segment index ‖ record id.
func segRef(id string, seg int) []byte {
	return appendSegRef(nil, id, seg)
}

func appendSegRef(b []byte, id string, seg int) []byte {
	return append(binary.BigEndian.AppendUint32(b, uint32(seg)), id...)
}

func splitSegRef(v []byte) (id string, seg int, err error) {
	if len(v) <= 4 {
		return "", 0, errors.New("bad smscid index value")
	}
	return string(v[4:]), int(binary.BigEndian.Uint32(v[:4])), nil
}
