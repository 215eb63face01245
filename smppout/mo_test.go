package smppout

import (
	"bytes"
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

// FuzzNewMO feeds deliver_sm user data and sar_* TLVs from the SMSC (outside
// input) through newMO and a Reassembler: no panic, a part always in range,
// UDH and payload always the user data cut in two, and what Add returns as
// complete always complete.
func FuzzNewMO(f *testing.F) {
	f.Add(byte(0x40), []byte{5, 0, 3, 7, 2, 1, 'a', 'b'}, []byte{0, 7}, byte(2), byte(1))
	f.Add(byte(0x40), []byte{6, 8, 4, 1, 2, 2, 2, 'x'}, []byte{}, byte(0), byte(0))
	f.Add(byte(0x00), []byte("plain"), []byte{1, 2}, byte(3), byte(3))
	f.Add(byte(0x40), []byte{9, 0, 3}, []byte{1}, byte(255), byte(0))
	f.Fuzz(func(t *testing.T, esm byte, ud, ref []byte, total, seq byte) {
		r := NewReassembler(time.Minute)
		now := time.Unix(0, 0)
		// The same user data twice, and with its last octet as the
		// sequence number, as a run of parts of one message would be.
		for i := range 3 {
			tlvs := map[uint16][]byte{wire.TagSARMsgRefNum: ref, wire.TagSARTotalSegments: {total}, wire.TagSARSegmentSeqnum: {seq + byte(i)}}
			data := ud
			if i == 2 && len(ud) > 0 {
				data = append(bytes.Clone(ud[:len(ud)-1]), ud[len(ud)-1]+1)
			}
			m := newMO("deliver_sm", wire.SM{ESMClass: esm, SourceTON: 1, Source: "4915", ShortMessage: data, TLVMap: tlvs})
			if p := m.Part; p != nil && (p.Total < 2 || p.Seq == 0 || p.Seq > p.Total) {
				t.Fatalf("part out of range: %+v", *p)
			}
			if m.UDH != nil && !bytes.Equal(append(bytes.Clone(m.UDH), m.Payload...), data) {
				t.Fatalf("UDH %x + payload %x is not the user data %x", m.UDH, m.Payload, data)
			}
			if a, done := r.Add(now, m); done && !a.Complete() {
				t.Fatalf("Add returned an incomplete message: %+v", a)
			}
		}
		for _, a := range r.Expire(now.Add(time.Hour)) {
			if a.Complete() {
				t.Fatalf("a complete message left pending: %+v", a)
			}
		}
	})
}
