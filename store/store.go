package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Segment states.
const (
	SegPending   = ""          // not yet accepted by the SMSC
	SegSubmitted = "submitted" // accepted (has SMSCID), no final receipt yet
	SegDelivered = "delivered"
	SegFailed    = "failed"
)

// Segment is one SMS of a record and what the SMSC said of it.
type Segment struct {
	Text    string // the characters it carries, for people
	Payload []byte
	SMSCID  string // message_id from submit_sm_resp, normalised by smppout
	State   string // Seg* constant
	Stat    string // last receipt stat (DELIVRD, UNDELIV, ENROUTE…)
	Err     string // last receipt err code
}

// Event is one line of a record's history.
type Event struct {
	At     time.Time
	What   string // "accepted", "submitting", "submitted", "receipt", "retry", "recovered", "delivered", "failed", "expired", "cancelled", "reported"
	Detail string
}

// Record is one (mail, recipient).
type Record struct {
	ID      string // assigned by Add; sortable by creation
	Created time.Time
	From    string // envelope sender; "" for the null sender <>
	Rcpt    string // RCPT TO address as given
	// User is the AUTH identity that sent the mail ("" from a trusted
	// network); Source, if set, is the sender id shown on the phone for
	// this record instead of the route's default.
	User       string `json:",omitempty"`
	Source     string `json:",omitempty"`
	To         string // E.164 destination, with "+"
	MessageID  string
	Subject    string
	Header     []byte // original header block, for reports
	Text       string
	DataCoding byte
	// How the segments' user data headers are made (convert.Header):
	// concatenation method and reference, national language shift tables.
	// Add sets Ref to the next reference of the destination, single SMS
	// included (the dispatcher may encode it again in parts).
	Concat                    string `json:",omitempty"`
	Ref                       uint16 `json:",omitempty"`
	LockingShift, SingleShift uint8  `json:",omitempty"`
	Truncated                 bool   `json:",omitempty"` // the text was cut to the segment cap
	Segments                  []Segment
	State                     State
	Attempts                  int
	NextAttempt               time.Time
	LastError                 string
	// FailStatus is the RFC 3463 status of a record that failed without a
	// failed receipt (refused or expired before the SMSC accepted it); its
	// diagnostic is LastError.
	FailStatus string `json:",omitempty"`
	ReportDone bool   // a report was sent, or none is due
	// FinalAt is when the record became final (set by the store); Purge
	// counts the retention from it.
	FinalAt time.Time `json:",omitzero"`
	Events  []Event

	// What the client asked of delivery status notifications in the
	// envelope (RFC 3461), and what the report loop needs to honour it.
	// These fields were added after the others: they are at the end of the
	// binary form too (codec.go).

	// Notify is the RCPT NOTIFY parameter: "" (not given), "NEVER", or
	// some of "SUCCESS", "FAILURE", "DELAY", comma-separated in that order.
	Notify string `json:",omitempty"`
	// ORcpt is the RCPT ORCPT parameter as "addr-type;address", the
	// address decoded from xtext; "" if not given.
	ORcpt string `json:",omitempty"`
	// Ret is the MAIL RET parameter, "FULL" or "HDRS"; "" if not given.
	Ret string `json:",omitempty"`
	// EnvID is the MAIL ENVID parameter, decoded from xtext; "" if none.
	EnvID string `json:",omitempty"`
	// UTF8 is set when the mail came with SMTPUTF8 (RFC 6531): a returned
	// copy is message/global.
	UTF8 bool `json:",omitempty"`
	// Original is the whole mail, kept for a failure report that returns
	// it (RET=FULL) when it fits the front door's size cap; nil otherwise.
	// The store drops it once the record is final and its report done.
	Original []byte `json:",omitempty"`
	// ReportPolicy is the authenticated user's report policy, which
	// applies when NOTIFY is absent: "" (the server's), "none",
	// "failures", "all".
	ReportPolicy string `json:",omitempty"`
	// NoReport says why no report may ever be sent on this mail, to
	// prevent loops: "" if reports are allowed. Set at DATA for a null
	// sender, an Auto-Submitted mail (RFC 3834 §2) or a report itself
	// (multipart/report, RFC 6522).
	NoReport string `json:",omitempty"`
	// DelayDone: a delay report was sent, given up, or is not wanted; at
	// most one is ever sent.
	DelayDone bool `json:",omitempty"`
	// ReportAttempts counts the failed attempts to send the pending report
	// (the delay report of a record not final yet, else the final one);
	// ReportNextAttempt is when the next is due (zero: at once). Both are
	// reset when the record becomes final.
	ReportAttempts    int       `json:",omitempty"`
	ReportNextAttempt time.Time `json:",omitzero"`

	// ReceiptsBy is when a Submitted record stops waiting for receipts
	// (set by the dispatcher): Due returns it then, to be ended.
	ReceiptsBy time.Time `json:",omitzero"`

	// OriginalRef names the one stored copy of Original when the records
	// of one mail share it (RET=FULL to several recipients): Add stores it
	// once, not once per recipient, and Original is then nil here; read it
	// with Store.Original. The copy goes when the last record sharing it
	// is final and reported.
	OriginalRef string `json:",omitempty"`

	// HeaderRef names the stored copy of Header: Add stores every
	// record's header block apart, once per Add for the records that carry
	// the same block (smtpd adds a mail's recipients together; LMTP, one
	// at a time, makes one copy each), and Header is then nil here; read it with Store.Header.
	// A record changes several times in its life and the header, often
	// the larger part of it, is written once. The copy goes with
	// OriginalRef's. Records stored before layout 6 keep Header inline.
	HeaderRef string `json:",omitempty"`

	// DuplicateOf is set by Add, instead of storing the record, when the
	// same (MessageID, sender, user, To) was accepted within
	// Options.DedupWindow: it is
	// the id of the earlier record, and ID is set to it too. Never stored.
	DuplicateOf string `json:"-"`
}

// Receipt is a delivery receipt as the store needs it.
type Receipt struct {
	SMSCID string
	Stat   string // DELIVRD, UNDELIV, EXPIRED, REJECTD, DELETED, UNKNOWN, ACCEPTD, ENROUTE
	Err    string
	At     time.Time
}

// ErrNotFound is returned (wrapped) for an id that has no record.
var ErrNotFound = errors.New("store: record not found")

// Options tune a Store; zero values mean defaults.
type Options struct {
	Now          func() time.Time // clock; time.Now by default
	ParkedMaxAge time.Duration    // how long a receipt for an unknown id is kept (default 1h)
	// Dropped, if set, is told of each parked receipt dropped because no
	// segment got its SMSC id within ParkedMaxAge, after the commit that
	// dropped it (the caller logs it: issue 4 wants each one seen).
	Dropped func(rc Receipt, parkedAt time.Time)
	// DedupWindow is how long a (Message-ID, sender, user, destination)
	// is remembered: Add does not store a record whose four were accepted
	// less than DedupWindow ago (default 10 minutes, at most
	// MaxDedupWindow; negative: never).
	DedupWindow time.Duration
	// Retention is how long a final, reported record is kept before Purge
	// deletes it (default 7 days; negative: Purge keeps every record).
	Retention time.Duration
}

// Defaults for Options.
const (
	DefaultParkedMaxAge = time.Hour
	DefaultDedupWindow  = 10 * time.Minute
	DefaultRetention    = 7 * 24 * time.Hour
	// MaxDedupWindow caps Options.DedupWindow: Add reads one generation
	// of the dedup index per 10 minutes of window (see duplicate), 145 at
	// this cap, and up to 6 more after a clock stepped back.
	MaxDedupWindow = 24 * time.Hour

	// lockTimeout bounds the wait for the file lock, so that a second
	// process (e.g. "smsbridge queue list" while serve runs) fails instead
	// of hanging.
	lockTimeout = 2 * time.Second
)

func (o Options) withDefaults() Options {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.ParkedMaxAge <= 0 {
		o.ParkedMaxAge = DefaultParkedMaxAge
	}
	if o.DedupWindow == 0 {
		o.DedupWindow = DefaultDedupWindow
	}
	o.DedupWindow = min(o.DedupWindow, MaxDedupWindow)
	if o.Retention == 0 {
		o.Retention = DefaultRetention
	}
	return o
}

// Store is an open bbolt file.
type Store struct {
	db      *bolt.DB
	opt     Options
	ids     idGen
	bids    *bucketIDs
	subs    hub // every change that adds work (Changed)
	dueSubs hub // changes of the due queue only (DueChanged)
	// wakeDue and wakeReports are made once: put hands one to every
	// transaction that adds work, and a method value costs an allocation
	// each time.
	wakeDue, wakeReports func()
	w                    writer

	deltas map[State]int64 // state counts changed in the writer's transaction
	// newestDedup is the newest dedup generation written (Unix ns): after
	// a clock stepped back, it is ahead of now's.
	newestDedup atomic.Int64
}

// Open opens (creating if needed) the store file at path, and replays the
// log beside it (path-wal.N) that a crash left (see wal.go).
func Open(path string, opt Options) (*Store, error) {
	// The log files are found and made by name beside the file: a path
	// made absolute now does not change meaning with the working directory.
	path, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	db, err := bolt.Open(path, 0o600, boltOptions())
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	s := &Store{db: db, opt: opt.withDefaults(), bids: newBucketIDs(allBuckets)}
	s.wakeDue = func() { s.subs.notify(); s.dueSubs.notify() }
	s.wakeReports = s.subs.notify
	var seq, gen uint64
	err = db.Update(func(btx *bolt.Tx) error {
		for _, name := range allBuckets {
			if _, err := btx.CreateBucketIfNotExists(name); err != nil {
				return fmt.Errorf("create bucket %s: %w", name, err)
			}
		}
		var err error
		if seq, gen, _, err = replay(btx, path); err != nil {
			return err
		}
		return s.initBuckets(&txn{ids: s.bids, base: btx})
	})
	if err == nil {
		err = removeLogs(path)
	}
	if err == nil {
		err = regenerate(db)
	}
	if err == nil {
		err = db.View(func(tx *bolt.Tx) error {
			if k, _ := tx.Bucket(bucketDedup).Cursor().Last(); len(k) >= 8 {
				s.newestDedup.Store(keyTime(k[:8]).UnixNano())
			}
			return nil
		})
	}
	if err == nil {
		s.w.begin = func() { clear(s.deltas) }
		s.w.end = s.writeCounts
		err = s.w.start(db, path, s.bids, gen+1, seq)
	}
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	return s, nil
}

// removeLogs deletes the log files beside path, once bbolt holds them.
func removeLogs(path string) error {
	gens, err := walFiles(path)
	if err != nil {
		return err
	}
	for _, g := range gens {
		if err := os.Remove(walName(path, g)); err != nil {
			return err
		}
	}
	return nil
}

// initBuckets checks the layout version (migrating an older one) and primes
// the id generator with the newest id in the file. tx is in direct mode.
func (s *Store) initBuckets(tx *txn) error {
	meta := tx.Bucket(bucketMeta)
	v := bytes.Clone(meta.Get(keyVersion))
	switch {
	case v == nil && tx.Bucket(bucketRecords).KeyN() == 0:
	case v == nil, string(v) == "1", string(v) == "2", string(v) == "3":
		if err := migrate(tx); err != nil {
			return fmt.Errorf("migrate layout %q to %q: %w", v, layoutVersion, err)
		}
	case string(v) == "4", string(v) == "5", string(v) == "6":
		// Nothing to rebuild: the dropped buckets go below, the new
		// ones are there.
	case string(v) != layoutVersion:
		return fmt.Errorf("layout version %q, want %q", v, layoutVersion)
	}
	for _, name := range droppedBuckets {
		if tx.base.Bucket(name) == nil {
			continue
		}
		if err := tx.base.DeleteBucket(name); err != nil {
			return fmt.Errorf("drop bucket %s: %w", name, err)
		}
	}
	if err := meta.Put(keyVersion, []byte(layoutVersion)); err != nil {
		return err
	}
	if k, _ := tx.Bucket(bucketRecords).Cursor().Last(); k != nil {
		s.ids.resume(string(k))
	}
	return nil
}

// regenerate copies the entries of the dedup and refs buckets of a layout
// before 7 into dedup_gen and refs_gen, under their generation, then drops
// the old buckets. It runs in Open, before the writer starts, a chunk of
// entries per transaction, so that its memory does not grow with the
// buckets (a million counters in one transaction took 400 MB). After a
// crash in the middle, the next Open goes on with what the old buckets
// still hold.
// It drops only entries without a time: what is stale depends on options
// that the opener (a queue command, say) may not share, and Purge deletes
// old generations anyway.
func regenerate(db *bolt.DB) error {
	for _, r := range regenerated {
		for done := false; !done; {
			err := db.Update(func(tx *bolt.Tx) error {
				old := tx.Bucket(r.old)
				if old == nil {
					done = true
					return nil
				}
				// Copied entries leave the old bucket in the same
				// transaction: it never holds what is copied, and its
				// pages go as the copy goes.
				var copied [][]byte
				c, dst := old.Cursor(), tx.Bucket(r.new)
				for k, v := c.First(); k != nil && len(copied) < regenBatch; k, v = c.Next() {
					if t, ok := r.at(v); ok {
						if err := dst.Put(append(timeKey(generation(t, r.length)), k...), v); err != nil {
							return err
						}
					}
					copied = append(copied, bytes.Clone(k))
				}
				if len(copied) == 0 {
					done = true
					return tx.DeleteBucket(r.old)
				}
				for _, k := range copied {
					if err := old.Delete(k); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				return fmt.Errorf("store: copy %s to %s: %w", r.old, r.new, err)
			}
			// The pages read and written stay mapped in the RSS
			// otherwise: 400 MB for two million entries.
			_ = releaseMapped(db)
		}
	}
	return nil
}

// regenBatch is how many entries one transaction of regenerate copies.
var regenBatch = 10000

// migrate rebuilds the derived indexes from the records, giving final
// records a FinalAt (their last event's time) if they have none.
func migrate(tx *txn) error {
	for _, name := range derivedBuckets {
		if err := tx.base.DeleteBucket(name); err != nil {
			return err
		}
		if _, err := tx.base.CreateBucket(name); err != nil {
			return err
		}
	}
	var fixed []*Record
	err := tx.Bucket(bucketRecords).ForEach(func(k, v []byte) error {
		rec, err := decode(v)
		if err != nil {
			return fmt.Errorf("record %s: %w", k, err)
		}
		if rec.State.Final() && rec.FinalAt.IsZero() {
			rec.FinalAt = rec.Created
			if n := len(rec.Events); n > 0 {
				rec.FinalAt = rec.Events[n-1].At
			}
			fixed = append(fixed, rec)
		}
		for _, e := range entries(rec) {
			if err := tx.Bucket(e.bucket).Put(e.key, e.val); err != nil {
				return err
			}
		}
		return count(tx, rec.State, +1)
	})
	if err != nil {
		return err
	}
	for _, rec := range fixed {
		data, err := encode(rec)
		if err != nil {
			return err
		}
		if err := tx.Bucket(bucketRecords).Put([]byte(rec.ID), data); err != nil {
			return err
		}
	}
	return nil
}

// Close waits for the writes in progress and closes the file. Writes after
// Close fail with ErrClosed.
func (s *Store) Close() error {
	werr := s.w.stop()
	if err := errors.Join(werr, s.db.Close()); err != nil {
		return fmt.Errorf("store: close: %w", err)
	}
	return nil
}

// Add assigns IDs to recs, sets their state to Queued, and commits them in one
// fsync'd transaction shared with concurrent callers. It returns only once the
// commit is on disk.
//
// Created is set to now and NextAttempt to Created where they are zero, Ref is
// set (see the package doc), and an "accepted" event is appended.
//
// A record whose (MessageID, sender, user, To) was accepted less than
// Options.DedupWindow ago, by an earlier Add or earlier in recs, is not stored: its DuplicateOf
// and ID are set to the earlier record's id, and the rest is left alone.
//
// The records in recs are changed only if the commit succeeds. ctx is checked
// until the transaction starts; a cancelled Add writes nothing.
func (s *Store) Add(ctx context.Context, recs []*Record) error {
	if len(recs) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("store: add: %w", err)
	}
	for _, r := range recs {
		if r.OriginalRef != "" || r.HeaderRef != "" {
			// A stored record's claim on a shared copy is not counted
			// for a new one: Add makes the copies itself.
			return fmt.Errorf("store: add: record refers to a stored copy (OriginalRef %q, HeaderRef %q)", r.OriginalRef, r.HeaderRef)
		}
	}
	now := s.opt.Now()
	// Ids and times are fixed here, outside the transaction, which may run
	// more than once; refs and duplicates are read from the file in it.
	prepared := make([]*Record, len(recs))
	for i, r := range recs {
		prepared[i] = s.prepare(r, now)
	}
	shared := shareOriginals(prepared)
	headers := shareHeaders(prepared)
	dupOf := make([]string, len(recs))
	err := s.w.do(func(tx *txn) error {
		if err := ctx.Err(); err != nil {
			return noWrite(err)
		}
		clear(dupOf)
		for i, r := range prepared {
			var dk []byte // built in each run: remember gives it away
			if s.opt.DedupWindow >= 0 && r.MessageID != "" {
				dk = dedupKey(r)
				if id := s.duplicate(tx, dk, now); id != "" {
					dupOf[i] = id
					continue
				}
			}
			// Every record gets a reference, even a single SMS: the
			// dispatcher may encode it again for a route that needs
			// more parts (a different alphabet or concatenation).
			ref, err := nextRef(tx, r.To, now)
			if err != nil {
				return err
			}
			r.Ref = ref
			if err := s.put(tx, before{}, r, now); err != nil {
				return err
			}
			if dk != nil {
				if err := s.remember(tx, dk, r, now); err != nil {
					return err
				}
			}
		}
		if err := putShared(tx, bucketHeaders, headers, prepared, dupOf, func(r *Record) string { return r.HeaderRef }); err != nil {
			return err
		}
		return putShared(tx, bucketOriginals, shared, prepared, dupOf, func(r *Record) string { return r.OriginalRef })
	})
	if err != nil {
		return fmt.Errorf("store: add %d records: %w", len(recs), err)
	}
	for i, r := range recs {
		if dupOf[i] != "" {
			r.ID, r.DuplicateOf = dupOf[i], dupOf[i]
			continue
		}
		*r = *prepared[i]
	}
	return nil
}

// shareOriginals finds the records that carry the same Original (smtpd
// gives every recipient of a mail the same slice) and makes them refer to
// one copy, keyed by the first one's id: a RET=FULL mail of 256 KiB to 100
// recipients is stored once, not 100 times. It returns the copies by key.
func shareOriginals(recs []*Record) map[string][]byte {
	var shared map[string][]byte
	for i, r := range recs {
		if len(r.Original) == 0 || r.OriginalRef != "" {
			continue
		}
		orig, key := r.Original, ""
		for _, o := range recs[i+1:] {
			if o.OriginalRef == "" && len(o.Original) == len(orig) &&
				(&o.Original[0] == &orig[0] || bytes.Equal(o.Original, orig)) {
				if key == "" {
					key = r.ID
					if shared == nil {
						shared = make(map[string][]byte)
					}
					shared[key] = orig
					r.Original, r.OriginalRef = nil, key
				}
				o.Original, o.OriginalRef = nil, key
			}
		}
	}
	return shared
}

// shareHeaders takes every record's header block out of it into one copy
// per distinct block (smtpd gives the recipients of a mail the same
// slice), keyed by the id of its first record, and returns the copies.
func shareHeaders(recs []*Record) map[string][]byte {
	var shared map[string][]byte
	for i, r := range recs {
		if len(r.Header) == 0 || r.HeaderRef != "" {
			continue
		}
		h, key := r.Header, r.ID
		if shared == nil {
			shared = make(map[string][]byte)
		}
		shared[key] = h
		r.Header, r.HeaderRef = nil, key
		for _, o := range recs[i+1:] {
			if o.HeaderRef == "" && len(o.Header) == len(h) &&
				(&o.Header[0] == &h[0] || bytes.Equal(o.Header, h)) {
				o.Header, o.HeaderRef = nil, key
			}
		}
	}
	return shared
}

// putShared stores each shared copy (original or header) once in bucket,
// with the number of records stored with it (a duplicate that Add did not
// store does not count); ref names a record's copy.
func putShared(tx *txn, bucket []byte, shared map[string][]byte, recs []*Record, dupOf []string, ref func(*Record) string) error {
	for key, data := range shared {
		n := 0
		for i, r := range recs {
			if ref(r) == key && dupOf[i] == "" {
				n++
			}
		}
		if n == 0 {
			continue
		}
		v := binary.AppendUvarint(make([]byte, 0, binary.MaxVarintLen64+len(data)), uint64(n))
		if err := tx.Bucket(bucket).putOwned(unsafeBytes(key), append(v, data...)); err != nil {
			return fmt.Errorf("%s of %s: %w", bucket, key, err)
		}
	}
	return nil
}

// unrefShared drops one record's claim on a shared copy in bucket, and
// the copy with the last one.
func unrefShared(tx *txn, bucket []byte, key string) error {
	b := tx.Bucket(bucket)
	v := b.Get([]byte(key))
	n, w := binary.Uvarint(v)
	if w <= 0 || n <= 1 {
		return b.Delete(unsafeBytes(key))
	}
	nv := binary.AppendUvarint(make([]byte, 0, binary.MaxVarintLen64+len(v)-w), n-1)
	return b.putOwned(unsafeBytes(key), append(nv, v[w:]...))
}

// Header returns the header block of rec's mail (for reports): rec.Header,
// or the copy stored apart; nil once the record is final and reported.
func (s *Store) Header(rec *Record) ([]byte, error) {
	if rec.Header != nil || rec.HeaderRef == "" {
		return rec.Header, nil
	}
	return s.shared(bucketHeaders, rec.HeaderRef)
}

// shared reads a shared copy.
func (s *Store) shared(bucket []byte, key string) ([]byte, error) {
	var out []byte
	err := s.w.view(func(tx *txn) error {
		v := tx.Bucket(bucket).Get([]byte(key))
		if _, w := binary.Uvarint(v); w > 0 {
			out = bytes.Clone(v[w:])
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: %s %s: %w", bucket, key, err)
	}
	return out, nil
}

// Original returns the copy of the mail kept with rec for a report that
// returns it whole (RET=FULL): rec.Original, or the copy shared with the
// other recipients of the mail; nil if none is kept (any more).
func (s *Store) Original(rec *Record) ([]byte, error) {
	if rec.Original != nil || rec.OriginalRef == "" {
		return rec.Original, nil
	}
	return s.shared(bucketOriginals, rec.OriginalRef)
}

// prepare returns a copy of r as Add stores it.
func (s *Store) prepare(r *Record, now time.Time) *Record {
	c := *r
	c.ID = s.ids.next(now)
	if c.Created.IsZero() {
		c.Created = now
	}
	c.State = Queued
	if c.NextAttempt.IsZero() {
		c.NextAttempt = c.Created
	}
	c.FinalAt = time.Time{}
	c.DuplicateOf = ""
	c.Events = append(append([]Event(nil), r.Events...), Event{At: now, What: "accepted"})
	return &c
}

// Generations (see generation) have fixed lengths, whatever the options:
// a file opened with another dedup window or retention, or by a command
// with the defaults, finds its entries where they are.
const (
	// dedupGeneration is the default dedup window: a lookup reads two
	// generations with it, one more per 10 minutes of a longer window,
	// and up to 6 more after a clock stepped back (see duplicate).
	dedupGeneration = 10 * time.Minute
	// refsGeneration is how long a destination's reference counter is
	// kept at least after its last use (at most twice that): the parts of
	// a concatenated SMS are reassembled within hours, and the 8-bit
	// reference cycles through 256 values anyway.
	refsGeneration = 7 * 24 * time.Hour
)

// dedupKey is the key of the dedup index for r, its generation (the first
// 8 bytes) left for setGeneration: MessageID ‖ 0 ‖ sender ‖ 0 ‖ user ‖ 0 ‖
// To, with the part before To replaced by its SHA-256 when over 256 bytes
// (bbolt keys are limited). The envelope sender and the user are part of
// the key: a Message-ID is the sender's to choose, so another sender (or
// user) reusing it must not silence their mail.
func dedupKey(r *Record) []byte {
	n := len(r.MessageID) + 1 + len(r.From) + 1 + len(r.User)
	k := make([]byte, 8, 8+max(n, 71)+1+len(r.To))
	if n > 256 || !isASCII(r.From) {
		mid := r.MessageID + "\x00" + strings.ToLower(r.From) + "\x00" + r.User
		if len(mid) > 256 {
			sum := sha256.Sum256([]byte(mid))
			mid = "sha256:" + hex.EncodeToString(sum[:])
		}
		k = append(k, mid...)
	} else {
		// strings.ToLower, without its copy, for the usual ASCII sender.
		k = append(append(k, r.MessageID...), 0)
		for i := range len(r.From) {
			c := r.From[i]
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			k = append(k, c)
		}
		k = append(append(k, 0), r.User...)
	}
	return append(append(k, 0), r.To...)
}

func isASCII(s string) bool {
	for i := range len(s) {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// setGeneration writes the generation starting at gen into the first 8
// bytes of k.
func setGeneration(k []byte, gen time.Time) []byte {
	a := timeKeyArray(gen)
	copy(k[:8], a[:])
	return k
}

// generation is the start of the period of length that t falls in (periods
// counted from the zero time, so the same across restarts): the key prefix
// of the dedup and refs entries made at t. A lookup reads the generations
// that can hold an entry it may use; Purge deletes the generations older
// than that as one contiguous range of keys: it reads no live entry, and
// frees whole pages instead of dirtying every page of the bucket, as
// deleting by age from a bucket ordered by Message-ID or number did.
func generation(t time.Time, length time.Duration) time.Time {
	return t.Truncate(length)
}

// maxStepBack is how far back a clock may step and duplicate still find
// what was accepted before the step.
const maxStepBack = time.Hour

// duplicate returns the id of the record accepted within the dedup window
// with r's MessageID, sender, user and To, or "". key is dedupKey(r). It
// reads the generations from now - DedupWindow's to now's, and the ones
// after now's that the store wrote to (a clock stepped back), up to
// maxStepBack ahead, newest first.
func (s *Store) duplicate(tx *txn, key []byte, now time.Time) string {
	w := s.opt.DedupWindow
	oldest := generation(now.Add(-w), dedupGeneration)
	g := generation(now, dedupGeneration)
	if newest := time.Unix(0, s.newestDedup.Load()); newest.After(g) {
		g = newest
		if limit := generation(now, dedupGeneration).Add(maxStepBack); g.After(limit) {
			g = limit // not from a clock once set years ahead
		}
	}
	for ; !g.Before(oldest); g = g.Add(-dedupGeneration) {
		v := tx.Bucket(bucketDedup).Get(setGeneration(key, g))
		if len(v) > 8 && now.Sub(keyTime(v[:8])) < w {
			return string(v[8:])
		}
	}
	return ""
}

// remember enters r, accepted now, in the dedup index under key, which it
// owns from then on. Purge drops the generations older than the window.
func (s *Store) remember(tx *txn, key []byte, r *Record, now time.Time) error {
	g := generation(now, dedupGeneration)
	if g.UnixNano() > s.newestDedup.Load() {
		s.newestDedup.Store(g.UnixNano())
	}
	t := timeKeyArray(now)
	v := append(append(make([]byte, 0, 8+len(r.ID)), t[:]...), r.ID...)
	if err := tx.Bucket(bucketDedup).putOwned(setGeneration(key, g), v); err != nil {
		return fmt.Errorf("dedup index of %s: %w", r.ID, err)
	}
	return nil
}

// nextRef returns the next concatenation reference for destination to and
// records it, with the time, in the refs bucket under the current
// generation: a counter used within refsGeneration is in that generation
// or the one before. A clock stepped back across a generation boundary
// may hand out again a few references used just before; 8-bit references
// repeat every 256 messages anyway.
func nextRef(tx *txn, to string, now time.Time) (uint16, error) {
	b := tx.Bucket(bucketRefs)
	cur := generation(now, refsGeneration)
	key := append(make([]byte, 8, 8+len(to)), to...)
	v := b.Get(setGeneration(key, cur))
	if v == nil {
		v = b.Get(setGeneration(key, cur.Add(-refsGeneration)))
		setGeneration(key, cur)
	}
	var ref uint16
	if len(v) == 10 {
		ref = uint16(v[0])<<8 | uint16(v[1])
	}
	ref++ // wraps at 65536
	t := timeKeyArray(now)
	nv := append([]byte{byte(ref >> 8), byte(ref)}, t[:]...)
	if err := b.putOwned(key, nv); err != nil {
		return 0, fmt.Errorf("refs of %s: %w", to, err)
	}
	return ref, nil
}

// Get returns the record with id, or ErrNotFound.
func (s *Store) Get(id string) (*Record, error) {
	var rec *Record
	err := s.w.view(func(tx *txn) error {
		var err error
		rec, err = load(tx, id)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("store: get %s: %w", id, err)
	}
	return rec, nil
}

// Update reads record id, lets fn change it, and writes it back with its
// indexes in one transaction, shared with concurrent writers (group commit).
// An SMSCID newly set on a segment is matched against parked receipts in the
// same transaction.
//
// fn runs inside the write transaction, on a fresh copy of the record read
// in it. It may run more than once (when the shared transaction has to be
// run again): it must only change the record, deterministically, and must
// not call the Store. If fn returns an error nothing is written and Update
// returns that error, wrapped. fn cannot change the record's ID. A change of
// state that the state machine does not allow fails with an error wrapping
// ErrBadTransition, and nothing is written.
func (s *Store) Update(id string, fn func(*Record) error) (*Record, error) {
	now := s.opt.Now()
	var out *Record
	err := s.w.do(func(tx *txn) error {
		out = nil
		rec, err := load(tx, id)
		if err != nil {
			return noWrite(err)
		}
		old := snapshot(rec)
		if err := fn(rec); err != nil {
			return noWrite(err)
		}
		rec.ID = id
		if err := checkTransition(old.state, rec); err != nil {
			return noWrite(err)
		}
		if err := s.applyParked(tx, old, rec, now); err != nil {
			return err
		}
		if err := s.put(tx, old, rec, now); err != nil {
			return err
		}
		out = rec
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: update %s: %w", id, err)
	}
	return out, nil
}

// Due returns up to limit records whose NextAttempt is not after now,
// oldest first, and the time the next one is due (zero if none): Queued
// records to submit (by NextAttempt), and Submitted ones whose receipts are
// overdue (by ReceiptsBy, the deadline the dispatcher set).
//
// next is the NextAttempt of the first Queued record not returned: it is not
// after now when limit cut the list short, so the caller should ask again at
// once.
func (s *Store) Due(now time.Time, limit int) (recs []*Record, next time.Time, err error) {
	return s.DueExcept(now, limit, nil)
}

// DueExcept is Due without the records whose id skip reports (nil: none),
// which it neither reads nor counts toward limit: the dispatcher skips
// the records it has in flight without decoding them on every pass.
func (s *Store) DueExcept(now time.Time, limit int, skip func(id string) bool) (recs []*Record, next time.Time, err error) {
	bound := timeKey(now)
	err = s.w.view(func(tx *txn) error {
		c := tx.Bucket(bucketDue).Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			t, id, err := splitTimeKey(k)
			if err != nil {
				return err
			}
			if string(k[:8]) > string(bound) || full(len(recs), limit) {
				next = t
				return nil
			}
			if skip != nil && skip(id) {
				continue
			}
			rec, err := load(tx, id)
			if err != nil {
				return fmt.Errorf("due index: %w", err)
			}
			recs = append(recs, rec)
		}
		return nil
	})
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("store: due: %w", err)
	}
	return recs, next, nil
}

// ReportsDue returns up to limit records whose report is due at now (a
// final record whose report is not done, or a record whose delay report is
// being retried), by ReportNextAttempt, and the time the next one is due
// (zero if none; not after now when limit cut the list short).
func (s *Store) ReportsDue(now time.Time, limit int) ([]*Record, time.Time, error) {
	return s.ReportsDueExcept(now, limit, nil)
}

// ReportsDueExcept is ReportsDue without the records whose id skip reports
// (nil: none), which it neither reads nor counts toward limit: the report
// loop skips the reports it is sending.
func (s *Store) ReportsDueExcept(now time.Time, limit int, skip func(id string) bool) ([]*Record, time.Time, error) {
	recs, next, err := s.scanTimeIndex(bucketReportDue, now, limit, skip)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("store: reports due: %w", err)
	}
	return recs, next, nil
}

// DelayDue returns up to limit records not final yet, created at or before
// before, that may still need a delay report (none sent, not excluded by
// NOTIFY, ReportPolicy or NoReport, none being retried), oldest first, and
// the Created time of the next such record (zero if none). The caller
// decides, and sets DelayDone or ReportNextAttempt, which takes the record
// out of this index.
func (s *Store) DelayDue(before time.Time, limit int) ([]*Record, time.Time, error) {
	return s.DelayDueExcept(before, limit, nil)
}

// DelayDueExcept is DelayDue without the records whose id skip reports
// (nil: none), which it neither reads nor counts toward limit.
func (s *Store) DelayDueExcept(before time.Time, limit int, skip func(id string) bool) ([]*Record, time.Time, error) {
	recs, next, err := s.scanTimeIndex(bucketDelay, before, limit, skip)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("store: delay due: %w", err)
	}
	return recs, next, nil
}

// scanTimeIndex loads the records of a (time ‖ id) index whose time is not
// after bound, in key order, but those skip reports, and returns the time
// of the first one it did not load (a skipped one aside).
func (s *Store) scanTimeIndex(bucket []byte, bound time.Time, limit int, skip func(id string) bool) (recs []*Record, next time.Time, err error) {
	b := timeKey(bound)
	err = s.w.view(func(tx *txn) error {
		c := tx.Bucket(bucket).Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			t, id, err := splitTimeKey(k)
			if err != nil {
				return err
			}
			if string(k[:8]) > string(b) || full(len(recs), limit) {
				next = t
				return nil
			}
			if skip != nil && skip(id) {
				continue
			}
			rec, err := load(tx, id)
			if err != nil {
				return fmt.Errorf("%s index: %w", bucket, err)
			}
			recs = append(recs, rec)
		}
		return nil
	})
	return recs, next, err
}

// Reportable returns up to limit final records with ReportDone unset, oldest
// first.
func (s *Store) Reportable(limit int) ([]*Record, error) {
	recs, err := s.scanIndex(bucketReport, limit)
	if err != nil {
		return nil, fmt.Errorf("store: reportable: %w", err)
	}
	return recs, nil
}

// scanIndex loads the records whose ids are the keys of bucket, in key order.
func (s *Store) scanIndex(bucket []byte, limit int) ([]*Record, error) {
	var recs []*Record
	err := s.w.view(func(tx *txn) error {
		c := tx.Bucket(bucket).Cursor()
		for k, _ := c.First(); k != nil && !full(len(recs), limit); k, _ = c.Next() {
			rec, err := load(tx, string(k))
			if err != nil {
				return fmt.Errorf("%s index: %w", bucket, err)
			}
			recs = append(recs, rec)
		}
		return nil
	})
	return recs, err
}

// List returns up to limit records in state (every state if state is ""),
// oldest first. It reads every record: it is meant for operators and tests,
// not for the message path.
func (s *Store) List(state State, limit int) ([]*Record, error) {
	var recs []*Record
	err := s.w.view(func(tx *txn) error {
		c := tx.Bucket(bucketRecords).Cursor()
		for k, v := c.First(); k != nil && !full(len(recs), limit); k, v = c.Next() {
			rec, err := decode(v)
			if err != nil {
				return fmt.Errorf("record %s: %w", k, err)
			}
			if state == "" || rec.State == state {
				recs = append(recs, rec)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: list %q: %w", state, err)
	}
	return recs, nil
}

// Counts returns the number of records in each state that has any. The
// counts are kept up to date in the same transactions as the records: this
// reads one small bucket, not the records.
func (s *Store) Counts() (map[State]int, error) {
	counts := make(map[State]int)
	err := s.w.view(func(tx *txn) error {
		return tx.Bucket(bucketCounts).ForEach(func(k, v []byte) error {
			if len(v) != 8 {
				return fmt.Errorf("count of %q: bad value %x", k, v)
			}
			if n := binary.BigEndian.Uint64(v); n > 0 {
				counts[State(k)] = int(n)
			}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("store: counts: %w", err)
	}
	return counts, nil
}

// Changed returns a new channel, registered for the life of the Store, that
// receives after each commit that may have made records due or reportable:
// records added, a record set (back) to Queued or given a new NextAttempt, a
// record become final. Sends never block the writer: the channel has a buffer
// of one, so several commits while the consumer is busy give one wake-up.
//
// Each consumer calls Changed once and keeps the channel; calling it in a loop
// registers a subscriber per call. The channels are never closed.
func (s *Store) Changed() <-chan struct{} { return s.subs.subscribe() }

// DueChanged is Changed for the due queue alone: records added, set (back)
// to Queued or given a new NextAttempt; not a record become final. The
// dispatcher, which reads only the due queue, would otherwise scan it
// again for every report that became due.
func (s *Store) DueChanged() <-chan struct{} { return s.dueSubs.subscribe() }

// hub is the broadcast behind Changed and DueChanged.
type hub struct {
	mu   sync.Mutex
	subs []chan struct{}
}

func (h *hub) subscribe() <-chan struct{} {
	c := make(chan struct{}, 1)
	h.mu.Lock()
	h.subs = append(h.subs, c)
	h.mu.Unlock()
	return c
}

func (h *hub) notify() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, c := range h.subs {
		select {
		case c <- struct{}{}:
		default:
		}
	}
}

// full reports whether n records reach limit (<= 0: no limit).
func full(n, limit int) bool { return limit > 0 && n >= limit }
