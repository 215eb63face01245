package smppout

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/smsbridge/smsbridge/smppout/internal/wire"
	"github.com/smsbridge/smsbridge/smppout/smsctest"
)

var hello = Submit{Source: "Shop", Dest: "+4915112345", ShortMessage: []byte("hello"), RegisteredDelivery: 1}

func TestSubmitGetsID(t *testing.T) {
	sim := startSim(t, smsctest.Config{SystemID: "esme", Password: "pw", ReceiptDelay: time.Hour})
	c := New(fastConfig(sim.Addr()), nil, nil)
	runClient(t, c)
	waitFor(t, "bind", c.Bound)
	id, err := c.Submit(ctxT(t), hello)
	if err != nil {
		t.Fatal(err)
	}
	msgs := sim.Messages()
	if len(msgs) != 1 || msgs[0].ID != id || msgs[0].Dest != "4915112345" || msgs[0].Source != "Shop" ||
		string(msgs[0].ShortMessage) != "hello" || msgs[0].RegisteredDelivery != 1 {
		t.Fatalf("id %q, simulator has %+v", id, msgs)
	}
}

func TestSubmitRefusedStatus(t *testing.T) {
	sim := startSim(t, smsctest.Config{SubmitStatus: func(smsctest.Message) uint32 { return 0x58 }})
	c := New(fastConfig(sim.Addr()), nil, nil)
	runClient(t, c)
	waitFor(t, "bind", c.Bound)
	_, err := c.Submit(ctxT(t), hello)
	var se *StatusError
	if !errors.As(err, &se) || se.Status != 0x58 || !se.Temporary() {
		t.Fatalf("err = %v, want temporary StatusError 0x58", err)
	}
}

// countingHandler counts log records at level and above.
type countingHandler struct {
	slog.Handler
	n atomic.Int32
}

func (h *countingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *countingHandler) WithGroup(string) slog.Handler      { return h }

func (h *countingHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *countingHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Level >= slog.LevelError {
		h.n.Add(1)
	}
	return nil
}

func TestBindRefused(t *testing.T) {
	sim := startSim(t, smsctest.Config{SystemID: "esme", Password: "secret"})
	cfg := fastConfig(sim.Addr())
	cfg.BackoffMin, cfg.BackoffMax = time.Millisecond, 300*time.Millisecond

	t.Run("distinct error", func(t *testing.T) {
		_, err := New(cfg, nil, nil).runSession(ctxT(t), wire.BindTransceiver, slog.New(slog.DiscardHandler))
		var be *BindError
		if !errors.As(err, &be) || be.Status != 0x0E || !be.Credentials() {
			t.Fatalf("err = %v, want BindError ESME_RINVPASWD", err)
		}
	})
	t.Run("no tight loop", func(t *testing.T) {
		h := &countingHandler{Handler: slog.DiscardHandler}
		c := New(cfg, nil, slog.New(h))
		stop := runClient(t, c)
		time.Sleep(400 * time.Millisecond)
		stop()
		// Exponential backoff from 1ms would make ~9 attempts; BackoffMax at most 3.
		if n := h.n.Load(); n < 1 || n > 3 {
			t.Fatalf("%d refused binds in 400ms, want 1..3", n)
		}
		if sim.Binds() != 0 || c.Bound() {
			t.Fatal("bound with a wrong password")
		}
	})
}

func TestReceiptAckedAfterHandler(t *testing.T) {
	sim := startSim(t, smsctest.Config{})
	release := make(chan struct{})
	got := make(chan Receipt, 1)
	c := New(fastConfig(sim.Addr()), func(ctx context.Context, r Receipt) error {
		got <- r
		<-release
		return nil
	}, nil)
	runClient(t, c)
	waitFor(t, "bind", c.Bound)
	id, err := c.Submit(ctxT(t), hello)
	if err != nil {
		t.Fatal(err)
	}
	r := <-got
	if r.MessageID != id || r.Stat != "DELIVRD" || r.Err != "000" {
		t.Fatalf("receipt %+v for %q", r, id)
	}
	time.Sleep(50 * time.Millisecond)
	if n := len(sim.DeliverResps()); n != 0 {
		t.Fatalf("%d deliver_sm_resp before the handler returned", n)
	}
	close(release)
	resps, err := sim.WaitDeliverResps(ctxT(t), 1)
	if err != nil || resps[0].Status != 0 || resps[0].MessageID != id {
		t.Fatalf("deliver_sm_resps %+v, %v", resps, err)
	}
	if err := sim.WaitReceiptsAcked(ctxT(t)); err != nil {
		t.Fatal(err)
	}
}

func TestHandlerErrorMakesSMSCResend(t *testing.T) {
	sim := startSim(t, smsctest.Config{ReceiptRetry: 20 * time.Millisecond,
		Outcomes: []smsctest.Outcome{{Prefix: "49", Stat: "UNDELIV", Err: "001"}}})
	var calls atomic.Int32
	c := New(fastConfig(sim.Addr()), func(ctx context.Context, r Receipt) error {
		if calls.Add(1) == 1 {
			return errors.New("store down")
		}
		if r.Stat != "UNDELIV" || r.Err != "001" {
			t.Errorf("receipt %+v", r)
		}
		return nil
	}, nil)
	runClient(t, c)
	waitFor(t, "bind", c.Bound)
	if _, err := c.Submit(ctxT(t), hello); err != nil {
		t.Fatal(err)
	}
	resps, err := sim.WaitDeliverResps(ctxT(t), 2)
	if err != nil || resps[0].Status != 0x64 || resps[1].Status != 0 {
		t.Fatalf("deliver_sm_resps %+v, %v; want ESME_RX_T_APPN then ESME_ROK", resps, err)
	}
}

// TestDeliverSMWithPendingSubmitSeq: a deliver_sm carrying the sequence
// number of a pending submit_sm is a request, not its response
// (go-smpp issue #87: there the receipt was acknowledged and lost).
func TestDeliverSMWithPendingSubmitSeq(t *testing.T) {
	var sim *smsctest.Server
	injected := make(chan uint32, 1)
	sim = startSim(t, smsctest.Config{ReceiptDelay: time.Hour, OnSubmit: func(m smsctest.Message, seq uint32) {
		if err := sim.InjectReceipt("esme", seq, "earlier-id", "DELIVRD"); err != nil {
			t.Error(err)
		}
		injected <- seq
		time.Sleep(20 * time.Millisecond) // let the client read the deliver_sm first
	}})
	got := make(chan Receipt, 1)
	c := New(fastConfig(sim.Addr()), func(ctx context.Context, r Receipt) error { got <- r; return nil }, nil)
	runClient(t, c)
	waitFor(t, "bind", c.Bound)
	id, err := c.Submit(ctxT(t), hello)
	if err != nil || id != sim.Messages()[0].ID {
		t.Fatalf("Submit = %q, %v; want %q", id, err, sim.Messages()[0].ID)
	}
	if r := <-got; r.MessageID != "earlier-id" {
		t.Fatalf("receipt %+v", r)
	}
	seq := <-injected
	resps, err := sim.WaitDeliverResps(ctxT(t), 1)
	if err != nil || resps[0] != (smsctest.DeliverResp{MessageID: "earlier-id", Seq: seq, Status: 0}) {
		t.Fatalf("deliver_sm_resps %+v, %v", resps, err)
	}
}

func TestWindowBlocksRatherThanRejects(t *testing.T) {
	f := startFake(t)
	cfg := fastConfig(f.addr())
	cfg.Window = 2
	c := New(cfg, nil, nil)
	runClient(t, c)
	conn := f.accept()
	waitFor(t, "bind", c.Bound)

	const n = 10
	errs := make(chan error, n)
	ids := make(chan string, n)
	for range n {
		go func() {
			id, err := c.Submit(ctxT(t), hello)
			errs <- err
			ids <- id
		}()
	}
	first := []wire.PDU{conn.readSkipping(), conn.readSkipping()}
	if conn.closedByPeer(100 * time.Millisecond) {
		t.Fatal("connection closed")
	}
	// closedByPeer read nothing in 100ms: the third submit_sm waits for a slot.
	next := 0
	answer := func(p wire.PDU) {
		next++
		conn.write(p.Resp(0, wire.MessageIDBody(fmt.Sprintf(" id%d\x00", next))))
	}
	for _, p := range first {
		answer(p)
	}
	for range n - 2 {
		answer(conn.readSkipping())
	}
	seen := map[string]bool{}
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
		seen[<-ids] = true
	}
	if len(seen) != n || !seen["id1"] {
		t.Fatalf("ids %v: want %d distinct, trimmed", seen, n)
	}
}

func TestEnquireLinkKeepsAlive(t *testing.T) {
	sim := startSim(t, smsctest.Config{})
	cfg := fastConfig(sim.Addr())
	cfg.EnquireLink, cfg.RespTimeout = 20*time.Millisecond, 200*time.Millisecond
	c := New(cfg, nil, nil)
	runClient(t, c)
	waitFor(t, "bind", c.Bound)
	time.Sleep(300 * time.Millisecond)
	if n := sim.EnquireLinks(); n < 5 || sim.Binds() != 1 || !c.Bound() {
		t.Fatalf("%d enquire_links, %d binds, bound %v", n, sim.Binds(), c.Bound())
	}
}

func TestDeadLinkRebinds(t *testing.T) {
	f := startFake(t)
	cfg := fastConfig(f.addr())
	cfg.EnquireLink, cfg.RespTimeout = 20*time.Millisecond, 100*time.Millisecond
	c := New(cfg, nil, nil)
	runClient(t, c)
	conn := f.accept() // never answers enquire_link
	if !conn.closedByPeer(time.Second) {
		t.Fatal("client kept a dead link")
	}
	f.accept()
	waitFor(t, "rebind", c.Bound)
}

func TestReconnectAfterSMSCRestart(t *testing.T) {
	sim := startSim(t, smsctest.Config{})
	c := New(fastConfig(sim.Addr()), nil, nil)
	runClient(t, c)
	waitFor(t, "bind", c.Bound)
	sim.Stop()
	waitFor(t, "unbound", func() bool { return !c.Bound() })
	start := time.Now()
	if _, err := c.Submit(ctxT(t), hello); !errors.Is(err, ErrNotBound) || time.Since(start) > 100*time.Millisecond {
		t.Fatalf("Submit while down = %v after %v, want ErrNotBound at once", err, time.Since(start))
	}
	if err := sim.Start(sim.Addr()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "rebind", c.Bound)
	if _, err := c.Submit(ctxT(t), hello); err != nil {
		t.Fatal(err)
	}
	if sim.Binds() != 2 {
		t.Fatalf("%d binds, want 2", sim.Binds())
	}
}

func TestNotBoundBeforeRun(t *testing.T) {
	_, err := New(Config{Addr: "127.0.0.1:1"}, nil, nil).Submit(context.Background(), hello)
	if !errors.Is(err, ErrNotBound) || !Temporary(err) {
		t.Fatalf("err = %v", err)
	}
}

func TestMalformedFrameClosesSession(t *testing.T) {
	tests := []struct {
		name string
		raw  []byte
	}{
		{"command_length 4 GiB", []byte{0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 5}},
		{"command_length below header", []byte{0, 0, 0, 8, 0, 0, 0, 5}},
		{"command_length over 64 KiB", []byte{0, 1, 0, 1, 0, 0, 0, 5}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := startFake(t)
			c := New(fastConfig(f.addr()), nil, nil)
			runClient(t, c)
			conn := f.accept()
			waitFor(t, "bind", c.Bound)
			conn.writeRaw(tc.raw)
			if !conn.closedByPeer(time.Second) {
				t.Fatal("session kept after a bad frame")
			}
			f.accept()
			waitFor(t, "rebind", c.Bound)
		})
	}
}

// TestRequestsFromSMSC: what the client answers to each request an SMSC may send.
func TestRequestsFromSMSC(t *testing.T) {
	receiptBody, _ := wire.SM{ESMClass: 0x04, ShortMessage: []byte("id:r1 stat:DELIVRD err:000")}.Marshal()
	moBody, _ := wire.SM{Source: "491", Dest: "1234", ShortMessage: []byte("hi")}.Marshal()
	dataReceipt := wire.DataSMBody{ESMClass: 0x04}.Marshal(
		wire.TLV{Tag: wire.TagReceiptedMessageID, Value: []byte("r2\x00")}, wire.TLV{Tag: wire.TagMessageState, Value: []byte{5}})
	tests := []struct {
		name       string
		req        wire.PDU
		wantID     uint32
		wantStatus uint32
		receipt    string // message id the Handler must see
	}{
		{"enquire_link", wire.PDU{ID: wire.EnquireLink}, wire.EnquireLinkResp, 0, ""},
		{"deliver_sm receipt", wire.PDU{ID: wire.DeliverSM, Body: receiptBody}, wire.DeliverSMResp, 0, "r1"},
		{"deliver_sm MO", wire.PDU{ID: wire.DeliverSM, Body: moBody}, wire.DeliverSMResp, 0, ""},
		{"deliver_sm truncated body", wire.PDU{ID: wire.DeliverSM, Body: receiptBody[:5]}, wire.DeliverSMResp, 0x65, ""},
		{"data_sm receipt", wire.PDU{ID: wire.DataSM, Body: dataReceipt}, wire.DataSMResp, 0, "r2"},
		{"cancel_sm", wire.PDU{ID: 0x08}, wire.GenericNack, 0x03, ""},
		{"outbind", wire.PDU{ID: 0x0B}, wire.GenericNack, 0x03, ""},
		{"alert_notification", wire.PDU{ID: 0x102}, wire.GenericNack, 0x03, ""},
		{"unknown command", wire.PDU{ID: 0x1234}, wire.GenericNack, 0x03, ""},
	}
	f := startFake(t)
	got := make(chan Receipt, 1)
	c := New(fastConfig(f.addr()), func(ctx context.Context, r Receipt) error { got <- r; return nil }, nil)
	runClient(t, c)
	conn := f.accept()
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			conn.t = t
			tc.req.Seq = uint32(100 + i)
			conn.write(tc.req)
			p := conn.readSkipping()
			if p.ID != tc.wantID || p.Status != tc.wantStatus || p.Seq != tc.req.Seq {
				t.Fatalf("got 0x%08X status 0x%X seq %d; want 0x%08X status 0x%X seq %d",
					p.ID, p.Status, p.Seq, tc.wantID, tc.wantStatus, tc.req.Seq)
			}
			if tc.receipt != "" {
				if r := <-got; r.MessageID != tc.receipt {
					t.Fatalf("receipt %+v", r)
				}
			}
		})
	}
	conn.t = t
	t.Run("unbind", func(t *testing.T) {
		conn.t = t
		conn.write(wire.PDU{ID: wire.Unbind, Seq: 7})
		if p := conn.readSkipping(); p.ID != wire.UnbindResp || p.Seq != 7 {
			t.Fatalf("got 0x%08X seq %d", p.ID, p.Seq)
		}
		f.accept() // and it binds again
	})
}

func TestShutdownDrainsAndUnbinds(t *testing.T) {
	f := startFake(t)
	c := New(fastConfig(f.addr()), nil, nil)
	stop := runClient(t, c)
	conn := f.accept()
	waitFor(t, "bind", c.Bound)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if id, err := c.Submit(context.Background(), hello); err != nil || id != "late" {
			t.Errorf("in-flight Submit = %q, %v", id, err)
		}
	}()
	sub := conn.readSkipping()
	stopped := make(chan struct{})
	go func() { stop(); close(stopped) }()
	waitFor(t, "draining", func() bool { return !c.Bound() })
	if _, err := c.Submit(context.Background(), hello); !errors.Is(err, ErrNotBound) {
		t.Errorf("Submit while draining = %v", err)
	}
	conn.write(sub.Resp(0, wire.MessageIDBody("late")))
	p := conn.readSkipping()
	if p.ID != wire.Unbind {
		t.Fatalf("got 0x%08X, want unbind", p.ID)
	}
	conn.write(p.Resp(0, nil))
	<-stopped
	wg.Wait()
}

// TestSimulatorKeepsBounded: with MaxMessages the simulator keeps only the
// newest messages and deliver_sm_resps, and still counts them all.
func TestSimulatorKeepsBounded(t *testing.T) {
	sim := startSim(t, smsctest.Config{MaxMessages: 4})
	c := New(fastConfig(sim.Addr()), func(context.Context, Receipt) error { return nil }, nil)
	runClient(t, c)
	waitFor(t, "bind", c.Bound)
	for range 10 {
		if _, err := c.Submit(ctxT(t), hello); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := sim.WaitDeliverResps(ctxT(t), 10); err != nil {
		t.Fatal(err)
	}
	if n, m := len(sim.Messages()), len(sim.DeliverResps()); n > 4 || m > 4 || sim.Accepted() != 10 {
		t.Errorf("kept %d messages and %d responses (bound 4), accepted %d of 10", n, m, sim.Accepted())
	}
}

// TestSimulatorNoReceipts: with NoReceipts the simulator accepts submits
// and sends no receipt, though registered_delivery asks for one.
func TestSimulatorNoReceipts(t *testing.T) {
	sim := startSim(t, smsctest.Config{NoReceipts: true})
	got := make(chan Receipt, 1)
	c := New(fastConfig(sim.Addr()), func(_ context.Context, r Receipt) error { got <- r; return nil }, nil)
	runClient(t, c)
	waitFor(t, "bind", c.Bound)
	if _, err := c.Submit(ctxT(t), hello); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-got:
		t.Fatalf("receipt %+v", r)
	case <-time.After(200 * time.Millisecond):
	}
	if sim.Accepted() != 1 || sim.PendingReceipts() != 0 {
		t.Fatalf("accepted %d, pending receipts %d", sim.Accepted(), sim.PendingReceipts())
	}
}
