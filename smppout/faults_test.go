package smppout

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/smsbridge/smsbridge/smppout/smsctest"
)

// ledger is a test's receipt store: handler calls by message id.
type ledger struct {
	mu       sync.Mutex
	receipts map[string]int
}

func newLedger() *ledger { return &ledger{receipts: make(map[string]int)} }

func (l *ledger) handle(_ context.Context, r Receipt) error {
	l.mu.Lock()
	l.receipts[r.MessageID]++
	l.mu.Unlock()
	return nil
}

func (l *ledger) count(id string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.receipts[id]
}

// duplicates is handler calls beyond the first for each id.
func (l *ledger) duplicates() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, c := range l.receipts {
		n += c - 1
	}
	return n
}

// sendAll submits n messages ("m000"…) concurrently, each retried like
// the bridge does while the error is temporary, and returns the ids.
func sendAll(t *testing.T, c *Client, n int) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ids := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			s := hello
			s.ShortMessage = []byte(fmt.Sprintf("m%03d", i))
			for ctx.Err() == nil {
				id, err := c.Submit(ctx, s)
				if err == nil {
					ids[i] = id
					return
				}
				if !Temporary(err) {
					t.Errorf("message %d: %v", i, err)
					return
				}
				sleep(ctx, 10*time.Millisecond)
			}
			t.Errorf("message %d never accepted", i)
		})
	}
	wg.Wait()
	return ids
}

// checkNoneLost checks the story of each fault: every message reached the
// SMSC, a message is duplicated only after an in-doubt submit, every
// receipt the SMSC had was acknowledged, and every id we were given got
// its receipt. It returns the duplicate messages.
func checkNoneLost(t *testing.T, sim *smsctest.Server, c *Client, l *ledger, ids []string) (dupMsgs int) {
	t.Helper()
	seen := map[string]int{}
	for _, m := range sim.Messages() {
		seen[string(m.ShortMessage)]++
	}
	for i := range ids {
		switch n := seen[fmt.Sprintf("m%03d", i)]; {
		case n == 0:
			t.Errorf("message %d lost", i)
		case n > 1:
			dupMsgs += n - 1
		}
	}
	if err := sim.WaitReceiptsAcked(ctxT(t)); err != nil {
		t.Fatalf("receipts lost: %v (%d pending)", err, sim.PendingReceipts())
	}
	st := c.Stats()
	if uint64(dupMsgs) > st.InDoubt {
		t.Errorf("%d duplicate messages but only %d submits in doubt", dupMsgs, st.InDoubt)
	}
	// A receipt is queued by the simulator after its submit_sm_resp is
	// written, so the last ones may still be on their way: wait for them.
	waitCond(func() bool {
		for _, id := range ids {
			if id != "" && l.count(id) == 0 {
				return false
			}
		}
		return true
	})
	for i, id := range ids {
		if id != "" && l.count(id) == 0 {
			t.Errorf("message %d: no receipt for id %q", i, id)
		}
	}
	t.Logf("stats %+v; duplicate messages %d, duplicate receipts %d", st, dupMsgs, l.duplicates())
	return dupMsgs
}

// TestFaults runs n messages through each simulator fault.
func TestFaults(t *testing.T) {
	const n = 40
	tests := []struct {
		name   string
		sim    smsctest.Config
		client func(*Config)
		during func(t *testing.T, sim *smsctest.Server) // runs while the messages go
		check  func(t *testing.T, sim *smsctest.Server, c *Client, l *ledger)
	}{
		{name: "a fraction throttled",
			sim: smsctest.Config{ThrottleFraction: 0.3},
			check: func(t *testing.T, sim *smsctest.Server, c *Client, _ *ledger) {
				if st := c.Stats(); st.Throttled == 0 || st.Throttled != uint64(sim.Throttled()) {
					t.Errorf("client counted %d throttled, simulator %d", st.Throttled, sim.Throttled())
				}
			}},
		{name: "throttled above a rate",
			sim: smsctest.Config{MaxTPS: 25},
			check: func(t *testing.T, sim *smsctest.Server, c *Client, _ *ledger) {
				if sim.Throttled() == 0 || c.Stats().Throttled != uint64(sim.Throttled()) {
					t.Errorf("throttled: simulator %d, client %d", sim.Throttled(), c.Stats().Throttled)
				}
			}},
		{name: "connection dropped in a full window",
			sim: smsctest.Config{RespDelay: 150 * time.Millisecond},
			during: func(t *testing.T, sim *smsctest.Server) {
				ctx := ctxT(t)
				sim.WaitMessages(ctx, 10) // the window is full: 10 accepted, none answered
				sim.DropConnections()
			},
			check: func(t *testing.T, sim *smsctest.Server, c *Client, _ *ledger) {
				if c.Stats().InDoubt == 0 || sim.Binds() < 2 {
					t.Errorf("no submit in doubt after the drop (%+v), %d binds", c.Stats(), sim.Binds())
				}
			}},
		{name: "slow and jittered responses",
			sim: smsctest.Config{RespDelay: 5 * time.Millisecond, RespJitter: 30 * time.Millisecond}},
		{name: "receipts out of order, duplicated, before the response",
			sim: smsctest.Config{ReceiptJitter: 100 * time.Millisecond, DuplicateReceipts: true, ReceiptBeforeResp: true},
			check: func(t *testing.T, sim *smsctest.Server, c *Client, l *ledger) {
				if sim.DuplicateReceipts() != n || l.duplicates() != n {
					t.Errorf("duplicate receipts: simulator sent %d, handler saw %d, want %d", sim.DuplicateReceipts(), l.duplicates(), n)
				}
			}},
		{name: "hex ids in submit_sm_resp, decimal in receipts",
			sim:    smsctest.Config{IDStyle: "hex/dec"},
			client: func(c *Config) { c.IDFormat = IDHexDec }},
		{name: "SMSC-initiated enquire_link",
			sim: smsctest.Config{EnquireLink: 10 * time.Millisecond},
			check: func(t *testing.T, sim *smsctest.Server, _ *Client, _ *ledger) {
				if err := waitCond(func() bool { return sim.EnquireLinkResps() >= 3 }); err != nil {
					t.Errorf("%d enquire_link_resp", sim.EnquireLinkResps())
				}
			}},
		{name: "unknown command from the SMSC",
			during: func(t *testing.T, sim *smsctest.Server) {
				if _, err := sim.InjectCommand("esme", 0x00001234, nil); err != nil {
					t.Error(err)
				}
			},
			check: func(t *testing.T, sim *smsctest.Server, _ *Client, _ *ledger) {
				r, err := sim.WaitResponses(ctxT(t), 1)
				if err != nil || r[0].CommandID != 0x80000000 || r[0].Status != 0x03 {
					t.Errorf("responses %+v, %v; want generic_nack ESME_RINVCMDID", r, err)
				}
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.sim.ReceiptRetry = 50 * time.Millisecond
			sim := startSim(t, tc.sim)
			cfg := fastConfig(sim.Addr())
			if tc.client != nil {
				tc.client(&cfg)
			}
			l := newLedger()
			c := New(cfg, l.handle, nil)
			runClient(t, c)
			waitFor(t, "bind", c.Bound)
			var wg sync.WaitGroup
			if tc.during != nil {
				wg.Go(func() { tc.during(t, sim) })
			}
			ids := sendAll(t, c, n)
			wg.Wait()
			checkNoneLost(t, sim, c, l, ids)
			if tc.check != nil {
				tc.check(t, sim, c, l)
			}
		})
	}
}

// waitCond polls cond for up to 5 s.
func waitCond(cond func() bool) error {
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			return context.DeadlineExceeded
		}
		time.Sleep(5 * time.Millisecond)
	}
	return nil
}
