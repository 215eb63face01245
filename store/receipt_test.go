package store

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"
)

func TestReceipts(t *testing.T) {
	type rc struct {
		seg       int // 1-based; the SMSC id is "S" + seg
		stat, err string
	}
	tests := []struct {
		name       string
		requeue    bool // the record went back to Queued before the receipts came
		receipts   []rc
		wantState  State
		wantSegs   []string
		wantStats  []string
		wantErr    string
		wantEvents []string // after accepted, submitted
	}{
		{
			name:       "delivered only when every segment is delivered",
			receipts:   []rc{{1, "DELIVRD", "000"}, {3, "DELIVRD", "000"}, {2, "DELIVRD", "000"}},
			wantState:  Delivered,
			wantSegs:   []string{SegDelivered, SegDelivered, SegDelivered},
			wantStats:  []string{"DELIVRD", "DELIVRD", "DELIVRD"},
			wantEvents: []string{"receipt", "receipt", "receipt", "delivered"},
		},
		{
			name:       "two of three delivered stays submitted",
			receipts:   []rc{{1, "DELIVRD", "000"}, {2, "DELIVRD", "000"}},
			wantState:  Submitted,
			wantSegs:   []string{SegDelivered, SegDelivered, SegSubmitted},
			wantStats:  []string{"DELIVRD", "DELIVRD", ""},
			wantEvents: []string{"receipt", "receipt"},
		},
		{
			name:       "one failed segment fails the record",
			receipts:   []rc{{1, "DELIVRD", "000"}, {2, "UNDELIV", "001"}},
			wantState:  Failed,
			wantSegs:   []string{SegDelivered, SegFailed, SegSubmitted},
			wantStats:  []string{"DELIVRD", "UNDELIV", ""},
			wantErr:    "stat=UNDELIV err=001",
			wantEvents: []string{"receipt", "receipt", "failed"},
		},
		{
			name:       "each failing stat fails the segment",
			receipts:   []rc{{1, "EXPIRED", "0"}},
			wantState:  Failed,
			wantSegs:   []string{SegFailed, SegSubmitted, SegSubmitted},
			wantStats:  []string{"EXPIRED", "", ""},
			wantErr:    "stat=EXPIRED err=0",
			wantEvents: []string{"receipt", "failed"},
		},
		{
			name:       "duplicate receipt is ignored",
			receipts:   []rc{{1, "DELIVRD", "000"}, {1, "DELIVRD", "000"}, {1, "UNDELIV", "001"}},
			wantState:  Submitted,
			wantSegs:   []string{SegDelivered, SegSubmitted, SegSubmitted},
			wantStats:  []string{"DELIVRD", "", ""},
			wantEvents: []string{"receipt"},
		},
		{
			name:       "intermediate ENROUTE does not end the record",
			receipts:   []rc{{1, "ENROUTE", "000"}, {2, "ACCEPTD", "000"}, {3, "ENROUTE", "000"}},
			wantState:  Submitted,
			wantSegs:   []string{SegSubmitted, SegSubmitted, SegSubmitted},
			wantStats:  []string{"ENROUTE", "ACCEPTD", "ENROUTE"},
			wantEvents: []string{"receipt", "receipt", "receipt"},
		},
		{
			name:       "final receipt after an intermediate one",
			receipts:   []rc{{1, "ENROUTE", "000"}, {1, "DELIVRD", "000"}, {2, "DELIVRD", "000"}, {3, "DELIVRD", "000"}},
			wantState:  Delivered,
			wantSegs:   []string{SegDelivered, SegDelivered, SegDelivered},
			wantStats:  []string{"DELIVRD", "DELIVRD", "DELIVRD"},
			wantEvents: []string{"receipt", "receipt", "receipt", "receipt", "delivered"},
		},
		{
			name:       "a final record never changes",
			receipts:   []rc{{2, "REJECTD", "005"}, {1, "DELIVRD", "000"}, {3, "DELIVRD", "000"}},
			wantState:  Failed,
			wantSegs:   []string{SegSubmitted, SegFailed, SegSubmitted},
			wantStats:  []string{"", "REJECTD", ""},
			wantErr:    "stat=REJECTD err=005",
			wantEvents: []string{"receipt", "failed"},
		},
		{
			name:       "late receipts end a record queued for a retry",
			requeue:    true,
			receipts:   []rc{{1, "DELIVRD", "000"}, {2, "DELIVRD", "000"}, {3, "DELIVRD", "000"}},
			wantState:  Delivered,
			wantSegs:   []string{SegDelivered, SegDelivered, SegDelivered},
			wantStats:  []string{"DELIVRD", "DELIVRD", "DELIVRD"},
			wantEvents: []string{"receipt", "receipt", "receipt", "delivered"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := openTemp(t, Options{Now: newClock().Now})
			r := record("+491511234567", 3)
			mustAdd(t, s, r)
			mustUpdate(t, s, r.ID, submit("S"))
			if tc.requeue {
				mustUpdate(t, s, r.ID, func(r *Record) error { r.State = Queued; return nil })
			}
			for _, x := range tc.receipts {
				got, matched, err := s.ApplyReceipt(Receipt{SMSCID: fmt.Sprint("S", x.seg), Stat: x.stat, Err: x.err})
				if err != nil || !matched || got.ID != r.ID {
					t.Fatalf("ApplyReceipt(%v) = %v, %v, %v", x, got, matched, err)
				}
			}
			got := mustGet(t, s, r.ID)
			if got.State != tc.wantState || got.LastError != tc.wantErr {
				t.Errorf("state %s %q, want %s %q", got.State, got.LastError, tc.wantState, tc.wantErr)
			}
			var segs, stats []string
			for _, seg := range got.Segments {
				segs, stats = append(segs, seg.State), append(stats, seg.Stat)
			}
			if !slices.Equal(segs, tc.wantSegs) || !slices.Equal(stats, tc.wantStats) {
				t.Errorf("segments %q stats %q, want %q %q", segs, stats, tc.wantSegs, tc.wantStats)
			}
			wantEvents := append([]string{"accepted"}, tc.wantEvents...)
			if ev := whats(got.Events); !slices.Equal(ev, wantEvents) {
				t.Errorf("events %v, want %v", ev, wantEvents)
			}
			if due := indexKeys(t, s, bucketDue); tc.wantState.Final() && len(due) != 0 {
				t.Errorf("final record still in the due index")
			}
			if rep := indexKeys(t, s, bucketReport); tc.wantState.Final() != (len(rep) == 1) {
				t.Errorf("report index %q for state %s", rep, tc.wantState)
			}
		})
	}
}

func TestReceiptEventDetail(t *testing.T) {
	s, _ := openTemp(t, Options{Now: newClock().Now})
	r := record("+491511234567", 3)
	mustAdd(t, s, r)
	mustUpdate(t, s, r.ID, submit("D"))
	got, _, err := s.ApplyReceipt(Receipt{SMSCID: "D2", Stat: "UNDELIV", Err: "001"})
	if err != nil {
		t.Fatal(err)
	}
	n := len(got.Events)
	want := []Event{
		{At: t0, What: "receipt", Detail: "seg 2/3 stat=UNDELIV err=001"},
		{At: t0, What: "failed", Detail: "stat=UNDELIV err=001"},
	}
	if !slices.Equal(got.Events[n-2:], want) {
		t.Errorf("events %+v, want %+v", got.Events[n-2:], want)
	}
}

func TestParkedReceiptAppliedOnUpdate(t *testing.T) {
	tests := []struct {
		name      string
		parked    []Receipt
		wantState State
		wantSeg1  string
		wantStat  string
	}{
		{"delivered before the submit was recorded",
			[]Receipt{{SMSCID: "P1", Stat: "DELIVRD", Err: "000"}}, Delivered, SegDelivered, "DELIVRD"},
		{"failed before the submit was recorded",
			[]Receipt{{SMSCID: "P1", Stat: "UNDELIV", Err: "001"}}, Failed, SegFailed, "UNDELIV"},
		{"intermediate parked after final keeps the final",
			[]Receipt{{SMSCID: "P1", Stat: "DELIVRD"}, {SMSCID: "P1", Stat: "ENROUTE"}}, Delivered, SegDelivered, "DELIVRD"},
		{"final parked after intermediate replaces it",
			[]Receipt{{SMSCID: "P1", Stat: "ENROUTE"}, {SMSCID: "P1", Stat: "DELIVRD"}}, Delivered, SegDelivered, "DELIVRD"},
		{"intermediate only",
			[]Receipt{{SMSCID: "P1", Stat: "ENROUTE"}}, Submitted, SegSubmitted, "ENROUTE"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := openTemp(t, Options{Now: newClock().Now})
			r := record("+491511234567", 1)
			mustAdd(t, s, r)
			for _, rc := range tc.parked {
				got, matched, err := s.ApplyReceipt(rc)
				if err != nil || matched || got != nil {
					t.Fatalf("ApplyReceipt unknown id = %v, %v, %v; want parked", got, matched, err)
				}
			}
			if n, err := s.Parked(); err != nil || n != 1 {
				t.Fatalf("Parked = %d, %v; want 1", n, err)
			}
			got := mustUpdate(t, s, r.ID, submit("P"))
			if got.State != tc.wantState || got.Segments[0].State != tc.wantSeg1 || got.Segments[0].Stat != tc.wantStat {
				t.Errorf("after Update: %s, segment %q %q; want %s %q %q", got.State,
					got.Segments[0].State, got.Segments[0].Stat, tc.wantState, tc.wantSeg1, tc.wantStat)
			}
			if stored := mustGet(t, s, r.ID); stored.State != got.State {
				t.Errorf("stored state %s, returned %s", stored.State, got.State)
			}
			if n, _ := s.Parked(); n != 0 {
				t.Errorf("%d receipts still parked", n)
			}
			if keys := indexKeys(t, s, bucketParkedAge); len(keys) != 0 {
				t.Errorf("parked_age index = %q", keys)
			}
		})
	}
}

func TestParkedReceiptsExpire(t *testing.T) {
	clk := newClock()
	var mu sync.Mutex
	var dropped []string
	s, _ := openTemp(t, Options{Now: clk.Now, ParkedMaxAge: time.Hour, Dropped: func(rc Receipt, at time.Time) {
		mu.Lock()
		defer mu.Unlock()
		dropped = append(dropped, fmt.Sprintf("%s %s %s", rc.SMSCID, rc.Stat, at.Sub(t0)))
	}})
	park := func(id string) {
		t.Helper()
		if _, matched, err := s.ApplyReceipt(Receipt{SMSCID: id, Stat: "DELIVRD"}); err != nil || matched {
			t.Fatalf("park %s: %v %v", id, matched, err)
		}
	}
	parked := func() int {
		t.Helper()
		n, err := s.Parked()
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	for i := range 3 {
		park(fmt.Sprint("old", i))
	}
	clk.Add(30 * time.Minute)
	park("mid")
	clk.Add(31 * time.Minute) // the first three are now 61 minutes old
	if n, err := s.PurgeParked(); err != nil || n != 3 {
		t.Fatalf("PurgeParked = %d, %v; want 3", n, err)
	}
	if n := parked(); n != 1 {
		t.Fatalf("%d parked after purge, want 1", n)
	}
	mu.Lock()
	if want := []string{"old0 DELIVRD 0s", "old1 DELIVRD 0s", "old2 DELIVRD 0s"}; !slices.Equal(dropped, want) {
		t.Errorf("Dropped told of %q, want %q", dropped, want)
	}
	mu.Unlock()
	clk.Add(time.Hour)
	park("new") // parking drops the expired "mid"
	if n := parked(); n != 1 {
		t.Errorf("%d parked after parking past expiry, want 1", n)
	}
	if keys := indexKeys(t, s, bucketParked); !slices.Equal(keys, []string{"new"}) {
		t.Errorf("parked = %q, want [new]", keys)
	}
}

func TestReceiptWithoutSMSCID(t *testing.T) {
	s, _ := openTemp(t, Options{})
	if _, _, err := s.ApplyReceipt(Receipt{Stat: "DELIVRD"}); err == nil {
		t.Fatal("receipt without SMSC id accepted")
	}
}

func TestSegStateOf(t *testing.T) {
	tests := []struct {
		stat  string
		want  string
		final bool
	}{
		{"DELIVRD", SegDelivered, true},
		{"delivrd", SegDelivered, true},
		{"UNDELIV", SegFailed, true},
		{"EXPIRED", SegFailed, true},
		{"REJECTD", SegFailed, true},
		{"DELETED", SegFailed, true},
		{"UNKNOWN", SegFailed, true},
		{"ENROUTE", "", false},
		{"ACCEPTD", "", false},
		{"", "", false},
		{"WHATEVR", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.stat, func(t *testing.T) {
			got, final := segStateOf(tc.stat)
			if got != tc.want || final != tc.final {
				t.Errorf("segStateOf(%q) = %q, %v; want %q, %v", tc.stat, got, final, tc.want, tc.final)
			}
		})
	}
}
