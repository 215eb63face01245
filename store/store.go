package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// State is where a record is in its life.
type State string

const (
	Queued    State = "queued"    // waiting for (another) submit attempt
	Submitted State = "submitted" // every segment accepted by the SMSC, awaiting receipts
	Delivered State = "delivered" // every segment delivered (final)
	Failed    State = "failed"    // some segment failed for good, or submit failed permanently (final)
)

// Final reports whether no further change of state is expected.
func (s State) Final() bool { return s == Delivered || s == Failed }

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
	What   string // "accepted", "submitted", "receipt", "retry", "delivered", "failed", "reported"
	Detail string
}

// Record is one (mail, recipient).
type Record struct {
	ID         string // assigned by Add; sortable by creation
	Created    time.Time
	From       string // envelope sender; "" for the null sender <>
	Rcpt       string // RCPT TO address as given
	To         string // E.164 destination, with "+"
	MessageID  string
	Subject    string
	Header     []byte // original header block, for reports
	Text       string
	DataCoding byte
	// How the segments' user data headers are made (convert.Header):
	// concatenation method and reference, national language shift tables.
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
	Events     []Event
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
}

// Defaults for Options.
const (
	DefaultParkedMaxAge = time.Hour

	// batchDelay is how long db.Batch waits for more callers before it
	// commits. bbolt's default of 10 ms would be added to every DATA reply
	// and receipt acknowledgement, several times the cost of the fsync
	// itself; callers that arrive while a commit is running still queue up
	// behind it and share the next one, so a short delay loses little
	// grouping under load.
	batchDelay = 2 * time.Millisecond

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
	return o
}

// Store is an open bbolt file.
type Store struct {
	db   *bolt.DB
	opt  Options
	ids  idGen
	subs hub
}

// Open opens (creating if needed) the store file at path.
func Open(path string, opt Options) (*Store, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: lockTimeout})
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	db.MaxBatchDelay = batchDelay
	s := &Store{db: db, opt: opt.withDefaults()}
	if err := db.Update(s.initBuckets); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	return s, nil
}

// initBuckets creates the buckets, checks the layout version and primes the
// id generator with the newest id in the file.
func (s *Store) initBuckets(tx *bolt.Tx) error {
	for _, name := range allBuckets {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return fmt.Errorf("create bucket %s: %w", name, err)
		}
	}
	meta := tx.Bucket(bucketMeta)
	switch v := meta.Get(keyVersion); {
	case v == nil:
		if err := meta.Put(keyVersion, []byte(layoutVersion)); err != nil {
			return err
		}
	case string(v) != layoutVersion:
		return fmt.Errorf("layout version %q, want %q", v, layoutVersion)
	}
	if k, _ := tx.Bucket(bucketRecords).Cursor().Last(); k != nil {
		s.ids.resume(string(k))
	}
	return nil
}

// Close closes the file.
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("store: close: %w", err)
	}
	return nil
}

// Add assigns IDs to recs, sets their state to Queued, and commits them in one
// fsync'd transaction shared with concurrent callers. It returns only once the
// commit is on disk.
//
// Created is set to now and NextAttempt to Created where they are zero, and an
// "accepted" event is appended. The records in recs are changed only if the
// commit succeeds. ctx is checked until the transaction starts to commit; a
// cancelled Add writes nothing.
func (s *Store) Add(ctx context.Context, recs []*Record) error {
	if len(recs) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("store: add: %w", err)
	}
	now := s.opt.Now()
	// Everything that varies (ids, times) is fixed here, outside the batch
	// function: db.Batch may run it more than once.
	prepared := make([]*Record, len(recs))
	for i, r := range recs {
		prepared[i] = s.prepare(r, now)
	}
	err := s.db.Batch(func(tx *bolt.Tx) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		for _, r := range prepared {
			if err := s.put(tx, nil, r); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: add %d records: %w", len(recs), err)
	}
	for i, r := range recs {
		*r = *prepared[i]
	}
	return nil
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
	c.Events = append(append([]Event(nil), r.Events...), Event{At: now, What: "accepted"})
	return &c
}

// Get returns the record with id, or ErrNotFound.
func (s *Store) Get(id string) (*Record, error) {
	var rec *Record
	err := s.db.View(func(tx *bolt.Tx) error {
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
// indexes in one transaction. An SMSCID newly set on a segment is matched
// against parked receipts in the same transaction.
//
// fn is called exactly once, inside the write transaction: keep it short and
// do not call the Store from it. If fn returns an error nothing is written and
// Update returns that error, wrapped. fn cannot change the record's ID. Each
// Update is a commit of its own (one fsync).
func (s *Store) Update(id string, fn func(*Record) error) (*Record, error) {
	now := s.opt.Now()
	var rec *Record
	err := s.db.Update(func(tx *bolt.Tx) error {
		old, err := load(tx, id)
		if err != nil {
			return err
		}
		rec, err = load(tx, id) // a private copy for fn
		if err != nil {
			return err
		}
		if err := fn(rec); err != nil {
			return err
		}
		rec.ID = old.ID
		if err := s.applyParked(tx, old, rec, now); err != nil {
			return err
		}
		return s.put(tx, old, rec)
	})
	if err != nil {
		return nil, fmt.Errorf("store: update %s: %w", id, err)
	}
	return rec, nil
}

// Due returns up to limit Queued records whose NextAttempt is not after now,
// oldest first, and the time the next one is due (zero if none).
//
// next is the NextAttempt of the first Queued record not returned: it is not
// after now when limit cut the list short, so the caller should ask again at
// once.
func (s *Store) Due(now time.Time, limit int) (recs []*Record, next time.Time, err error) {
	bound := timeKey(now)
	err = s.db.View(func(tx *bolt.Tx) error {
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
	err := s.db.View(func(tx *bolt.Tx) error {
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
	err := s.db.View(func(tx *bolt.Tx) error {
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

// Counts returns the number of records in each state. Like List, it reads
// every record.
func (s *Store) Counts() (map[State]int, error) {
	counts := make(map[State]int)
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketRecords).ForEach(func(k, v []byte) error {
			st, err := decodeState(v)
			if err != nil {
				return fmt.Errorf("record %s: %w", k, err)
			}
			counts[st]++
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

// hub is the broadcast behind Changed.
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
