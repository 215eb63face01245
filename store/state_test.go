package store

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// into returns a new record with two segments, brought to state st by
// allowed steps.
func into(t *testing.T, s *Store, st State) *Record {
	t.Helper()
	r := record("+491511234567", 2)
	mustAdd(t, s, r)
	if st == Queued {
		return r
	}
	return mustUpdate(t, s, r.ID, func(r *Record) error {
		if st == Delivered {
			for i := range r.Segments {
				r.Segments[i].State = SegDelivered
			}
		}
		r.State = st
		return nil
	})
}

// TestTransitions tries every pair of states. The expected matrix is
// written out here, not derived from the transitions table, so that a
// change to the table shows up as a failure to review.
func TestTransitions(t *testing.T) {
	// Rows: from; columns: to, in the order of States, then an unknown
	// state. "+" allowed, "." refused.
	//               q s S D F E C ?
	want := map[State]string{
		Queued:     "+ + + + + + + .",
		Submitting: "+ + + + + + + .",
		Submitted:  "+ . + + + + + .",
		Delivered:  ". . . + . . . .",
		Failed:     ". . . . + . . .",
		Expired:    ". . . . . + . .",
		Cancelled:  ". . . . . . + .",
	}
	targets := append(slices.Clone(States), State("bogus"))
	for _, from := range States {
		cells := strings.Fields(want[from])
		for j, to := range targets {
			allowed := cells[j] == "+"
			name := string(from) + " to " + string(to)
			if !allowed {
				name += " refused"
			}
			t.Run(name, func(t *testing.T) {
				if got := Allowed(from, to); got != allowed {
					t.Errorf("Allowed(%s, %s) = %v", from, to, got)
				}
				s, _ := openTemp(t, Options{Now: newClock().Now})
				r := into(t, s, from)
				countsBefore, _ := s.Counts()
				got, err := s.Update(r.ID, func(r *Record) error {
					if to == Delivered { // the receipts came
						for i := range r.Segments {
							r.Segments[i].State = SegDelivered
						}
					}
					r.State = to
					return nil
				})
				if allowed {
					if err != nil || got.State != to {
						t.Fatalf("Update = %v, %v; want state %s", got, err, to)
					}
					return
				}
				if !errors.Is(err, ErrBadTransition) {
					t.Fatalf("Update = %v, %v; want ErrBadTransition", got, err)
				}
				if stored := mustGet(t, s, r.ID); !reflect.DeepEqual(stored, r) {
					t.Errorf("refused Update changed the record: %+v", stored)
				}
				if counts, _ := s.Counts(); !reflect.DeepEqual(counts, countsBefore) {
					t.Errorf("counts %v, before %v", counts, countsBefore)
				}
			})
		}
	}
}

func TestDeliveredNeedsEverySegmentDelivered(t *testing.T) {
	tests := []struct {
		name string
		segs []string
	}{
		{"no receipt at all", []string{SegPending, SegPending}},
		{"one of two delivered", []string{SegDelivered, SegSubmitted}},
		{"one delivered, one failed", []string{SegDelivered, SegFailed}},
	}
	for _, from := range []State{Queued, Submitting, Submitted} {
		for _, tc := range tests {
			t.Run(string(from)+": "+tc.name, func(t *testing.T) {
				s, _ := openTemp(t, Options{Now: newClock().Now})
				r := into(t, s, from)
				_, err := s.Update(r.ID, func(r *Record) error {
					for i := range r.Segments {
						r.Segments[i].State = tc.segs[i]
					}
					r.State = Delivered
					return nil
				})
				if !errors.Is(err, ErrBadTransition) {
					t.Fatalf("Update = %v, want ErrBadTransition", err)
				}
			})
		}
	}
}

func TestAddOnlyQueues(t *testing.T) {
	s, _ := openTemp(t, Options{})
	r := record("+491511234567", 1)
	r.State = Delivered // ignored: Add always queues
	mustAdd(t, s, r)
	if r.State != Queued {
		t.Errorf("state %s", r.State)
	}
}

func TestFinalStates(t *testing.T) {
	for _, st := range States {
		want := st == Delivered || st == Failed || st == Expired || st == Cancelled
		if st.Final() != want || !st.Known() {
			t.Errorf("%s: Final %v Known %v", st, st.Final(), st.Known())
		}
	}
	if State("bogus").Known() || State("").Known() {
		t.Error("unknown state is known")
	}
}

func TestFinalAtSetOnceWhenFinal(t *testing.T) {
	clk := newClock()
	s, _ := openTemp(t, Options{Now: clk.Now})
	r := record("+491511234567", 1)
	mustAdd(t, s, r)
	clk.Add(1e9)
	r = mustUpdate(t, s, r.ID, submit("F"))
	if !r.FinalAt.IsZero() {
		t.Fatalf("FinalAt %v before final", r.FinalAt)
	}
	clk.Add(1e9)
	if _, _, err := s.ApplyReceipt(Receipt{SMSCID: "F1", Stat: "DELIVRD"}); err != nil {
		t.Fatal(err)
	}
	finalAt := clk.Now()
	clk.Add(1e9)
	r = mustUpdate(t, s, r.ID, func(r *Record) error { r.ReportDone = true; return nil })
	if !r.FinalAt.Equal(finalAt) {
		t.Errorf("FinalAt %v, want %v (when it became delivered)", r.FinalAt, finalAt)
	}
}
