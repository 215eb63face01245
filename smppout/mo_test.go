package smppout

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/smsbridge/smsbridge/smppout/internal/wire"
	"github.com/smsbridge/smsbridge/smppout/smsctest"
)

// moStore is what the store side does with MO parts: keep each (the ack
// waits for it), join them with a Reassembler.
type moStore struct {
	mu    sync.Mutex
	fail  int // refuse this many parts first, as a store that is down
	parts []MO
	r     *Reassembler
	done  []Assembled
}

func (s *moStore) handle(_ context.Context, m MO) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail > 0 {
		s.fail--
		return errors.New("store down")
	}
	s.parts = append(s.parts, m)
	if a, ok := s.r.Add(time.Now(), m); ok {
		s.done = append(s.done, a)
	}
	return nil
}

func (s *moStore) messages() map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]string{}
	for _, a := range s.done {
		out[a.From] = string(a.Payload())
	}
	return out
}

func TestMO(t *testing.T) {
	sim := startSim(t, smsctest.Config{ReceiptRetry: 20 * time.Millisecond})
	st := &moStore{fail: 2, r: NewReassembler(time.Minute)}
	cfg := fastConfig(sim.Addr())
	cfg.MO = st.handle
	c := New(cfg, nil, nil)
	runClient(t, c)
	waitFor(t, "bind", c.Bound)
	sar := func(seq byte) map[uint16][]byte {
		return map[uint16][]byte{wire.TagSARMsgRefNum: {0, 9}, wire.TagSARTotalSegments: {2}, wire.TagSARSegmentSeqnum: {seq}}
	}
	mos := []smsctest.MO{
		{From: "491", To: "1234", Text: []byte("single")},
		{From: "492", To: "1234", UDH: udh8(5, 3, 3), Text: []byte("ee")}, // parts in reverse
		{From: "492", To: "1234", UDH: udh8(5, 3, 2), Text: []byte("dd")},
		{From: "492", To: "1234", UDH: udh8(5, 3, 1), Text: []byte("cc")},
		{From: "493", To: "1234", UDH: []byte{6, 8, 4, 1, 0, 2, 2}, Text: []byte("16b")}, // 16-bit ref
		{From: "493", To: "1234", UDH: []byte{6, 8, 4, 1, 0, 2, 1}, Text: []byte("ref-")},
		{From: "494", To: "1234", Text: []byte("SAR2"), TLVs: sar(2)},
		{From: "494", To: "1234", Text: []byte("SAR1"), TLVs: sar(1)},
		{From: "495", To: "1234", Text: []byte("by data_sm"), DataSM: true},
	}
	for _, m := range mos {
		m.SystemID = "esme"
		sim.SendMO(m)
	}
	if err := sim.WaitReceiptsAcked(ctxT(t)); err != nil {
		t.Fatalf("MO parts not acknowledged: %v", err)
	}
	want := map[string]string{"+491": "single", "+492": "ccddee", "+493": "ref-16b", "+494": "SAR1SAR2", "+495": "by data_sm"}
	got := st.messages()
	for from, text := range want {
		if got[from] != text {
			t.Errorf("from %s: %q, want %q", from, got[from], text)
		}
	}
	refused := 0
	for _, r := range sim.DeliverResps() {
		if r.Status == wire.StatusXTAppn {
			refused++
		}
	}
	if s := c.Stats(); refused != 2 || s.HandlerErrors != 2 || s.MO != uint64(len(mos)) || len(st.parts) != len(mos) {
		t.Fatalf("%d refused, stats %+v, %d parts stored; want 2 refused then all %d stored once", refused, s, len(st.parts), len(mos))
	}
}
