package store

import (
	"errors"
	"fmt"
)

// State is where a record is in its life. The package doc draws the state
// machine; transitions lists the changes Update and the other writers allow.
type State string

const (
	Queued     State = "queued"     // waiting for (another) submit attempt
	Submitting State = "submitting" // handed to the dispatcher; segments being submitted
	Submitted  State = "submitted"  // every segment accepted by the SMSC, awaiting receipts
	Delivered  State = "delivered"  // every segment delivered (final)
	Failed     State = "failed"     // some segment failed for good, or submit failed permanently (final)
	Expired    State = "expired"    // validity period over before the outcome was known (final)
	Cancelled  State = "cancelled"  // cancelled by an operator (final)
)

// States lists every state, in the order of a record's life.
var States = []State{Queued, Submitting, Submitted, Delivered, Failed, Expired, Cancelled}

// Final reports whether no further change of state is expected.
func (s State) Final() bool {
	return s == Delivered || s == Failed || s == Expired || s == Cancelled
}

// Known reports whether s is one of States.
func (s State) Known() bool {
	_, ok := transitions[s]
	return ok
}

// ErrBadTransition is returned (wrapped) when a change would break the state
// machine: leaving a final state, an unknown state, Delivered while some
// segment is not delivered, or any pair not in transitions.
var ErrBadTransition = errors.New("store: transition not allowed")

// transitions is the state machine: for each state, the states a record may
// move to. Staying in the same state is always allowed (it is not a
// transition), final states lead nowhere, and Add is the only way into
// Queued from nothing.
var transitions = map[State][]State{
	// Submitted directly: a dispatcher may record every SMSC id in one
	// Update. Delivered or Failed: late receipts of an earlier attempt.
	Queued: {Submitting, Submitted, Delivered, Failed, Expired, Cancelled},
	// Queued: a retry (temporary error) or Recover after a crash.
	// Delivered or Failed: receipts for segments already accepted.
	Submitting: {Queued, Submitted, Delivered, Failed, Expired, Cancelled},
	// Queued: an operator's retry.
	Submitted: {Queued, Delivered, Failed, Expired, Cancelled},
	Delivered: nil,
	Failed:    nil,
	Expired:   nil,
	Cancelled: nil,
}

// Allowed reports whether a record may move from one state to another
// (always true for from == to of a known state). Delivered has one more
// condition that Allowed cannot see: every segment must be SegDelivered.
func Allowed(from, to State) bool {
	next, ok := transitions[from]
	if !ok || !to.Known() {
		return false
	}
	if from == to {
		return true
	}
	for _, s := range next {
		if s == to {
			return true
		}
	}
	return false
}

// checkTransition returns an error wrapping ErrBadTransition if rec may not
// have moved from state from (from is "" for a new record) to rec.State.
func checkTransition(from State, rec *Record) error {
	to := rec.State
	switch {
	case from == "":
		if to != Queued {
			return fmt.Errorf("%w: a new record is %s, must be %s", ErrBadTransition, to, Queued)
		}
		return nil
	case !Allowed(from, to):
		return fmt.Errorf("%w: %s → %q", ErrBadTransition, from, to)
	case to == Delivered && from != Delivered:
		for i, seg := range rec.Segments {
			if seg.State != SegDelivered {
				return fmt.Errorf("%w: %s → %s with segment %d/%d %q", ErrBadTransition,
					from, to, i+1, len(rec.Segments), seg.State)
			}
		}
		if len(rec.Segments) == 0 {
			return fmt.Errorf("%w: %s → %s without segments", ErrBadTransition, from, to)
		}
	}
	return nil
}
