// Package store keeps smsbridge's records in a bbolt file: one record per
// (mail, recipient), its segments, state and history, and the indexes that
// the dispatcher and the receipt path look them up by.
package store

import (
	"context"
	"errors"
	"time"
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
	UDH     []byte
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
	ID          string // assigned by Add; sortable by creation
	Created     time.Time
	From        string // envelope sender; "" for the null sender <>
	Rcpt        string // RCPT TO address as given
	To          string // E.164 destination, with "+"
	MessageID   string
	Subject     string
	Header      []byte // original header block, for reports
	Text        string
	DataCoding  byte
	Segments    []Segment
	State       State
	Attempts    int
	NextAttempt time.Time
	LastError   string
	ReportDone  bool // a report was sent, or none is due
	Events      []Event
}

// Receipt is a delivery receipt as the store needs it.
type Receipt struct {
	SMSCID string
	Stat   string // DELIVRD, UNDELIV, EXPIRED, REJECTD, DELETED, UNKNOWN, ACCEPTD, ENROUTE
	Err    string
	At     time.Time
}

var ErrNotFound = errors.New("store: record not found")

// Options tune a Store; zero values mean defaults.
type Options struct {
	Now          func() time.Time // clock; time.Now by default
	ParkedMaxAge time.Duration    // how long a receipt for an unknown id is kept (default 1h)
}

// Store is an open bbolt file.
type Store struct{}

// Open opens (creating if needed) the store file at path.
func Open(path string, opt Options) (*Store, error) { panic("TODO") }

// Close closes the file.
func (s *Store) Close() error { panic("TODO") }

// Add assigns IDs to recs, sets their state to Queued, and commits them in one
// fsync'd transaction shared with concurrent callers. It returns only once the
// commit is on disk.
func (s *Store) Add(ctx context.Context, recs []*Record) error { panic("TODO") }

// Get returns the record with id, or ErrNotFound.
func (s *Store) Get(id string) (*Record, error) { panic("TODO") }

// Due returns up to limit Queued records whose NextAttempt is not after now,
// oldest first, and the time the next one is due (zero if none).
func (s *Store) Due(now time.Time, limit int) (recs []*Record, next time.Time, err error) {
	panic("TODO")
}

// Update reads record id, lets fn change it, and writes it back with its
// indexes in one transaction. An SMSCID newly set on a segment is matched
// against parked receipts in the same transaction.
func (s *Store) Update(id string, fn func(*Record) error) (*Record, error) { panic("TODO") }

// ApplyReceipt records rc on the segment with its SMSC id and recomputes the
// record's state. An id not (yet) known is parked and applied when a segment
// gets that id; matched is then false and rec nil. It returns after the commit.
func (s *Store) ApplyReceipt(rc Receipt) (rec *Record, matched bool, err error) { panic("TODO") }

// Reportable returns up to limit final records with ReportDone unset.
func (s *Store) Reportable(limit int) ([]*Record, error) { panic("TODO") }

// Changed returns a channel that receives (without blocking the writer) after
// each commit that may have made records due or reportable.
func (s *Store) Changed() <-chan struct{} { panic("TODO") }
