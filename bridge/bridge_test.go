package bridge

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"github.com/smsbridge/smsbridge/convert"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/smsbridge/smsbridge/internal/smtpsink"
	"github.com/smsbridge/smsbridge/report"
	"github.com/smsbridge/smsbridge/smppout"
	"github.com/smsbridge/smsbridge/smppout/smsctest"
	"github.com/smsbridge/smsbridge/store"
)

// harness is a bridge on a real store, a real SMPP client, the simulator
// and an SMTP sink for reports.
type harness struct {
	st   *store.Store
	sim  *smsctest.Server
	sink *smtpsink.Sink
	smsc *smppout.Client
	b    *Bridge
}

func newHarness(t *testing.T, cfg Config, sc smsctest.Config) *harness {
	t.Helper()
	return newHarnessAt(t, filepath.Join(t.TempDir(), "test.db"), cfg, sc)
}

func newHarnessAt(t *testing.T, path string, cfg Config, sc smsctest.Config) *harness {
	t.Helper()
	st, err := store.Open(path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	sc.SystemID, sc.Password = "b", "pw"
	if sc.ReceiptDelay == 0 {
		sc.ReceiptDelay = 10 * time.Millisecond
	}
	sim := smsctest.New(sc)
	if err := sim.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	sink, err := smtpsink.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sink.Close() })
	h := &harness{st: st, sim: sim, sink: sink}
	log := slog.New(slog.DiscardHandler)
	h.smsc = smppout.New(smppout.Config{
		Addr: sim.Addr(), SystemID: "b", Password: "pw",
		RespTimeout: 2 * time.Second, BackoffMin: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond,
		MO: func(ctx context.Context, m smppout.MO) error { return h.b.MOHandler("default")(ctx, m) },
	}, func(ctx context.Context, r smppout.Receipt) error { return h.b.ReceiptHandler("default")(ctx, r) }, log)
	if cfg.RetryMin == 0 {
		cfg.RetryMin, cfg.RetryMax = 10*time.Millisecond, 40*time.Millisecond
	}
	if cfg.ThrottleMin == 0 {
		cfg.ThrottleMin, cfg.ThrottleMax = 10*time.Millisecond, 40*time.Millisecond
	}
	cfg.ReportingMTA = "gw.test"
	h.b = New(cfg, st, []Route{{Name: "default", SMSC: h.smsc}}, report.SMTP{Addr: sink.Addr(), Helo: "gw.test"}, log)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 2)
	go func() { h.smsc.Run(ctx); done <- struct{}{} }()
	go func() { h.b.Run(ctx); done <- struct{}{} }()
	t.Cleanup(func() { cancel(); <-done; <-done })
	return h
}

func (h *harness) add(t *testing.T, from, to string, parts ...string) string {
	t.Helper()
	rec := &store.Record{From: from, Rcpt: to + "@sms.test", To: to, Subject: "s", Text: strings.Join(parts, "")}
	rec.Ref = 7
	for _, p := range parts {
		rec.Segments = append(rec.Segments, store.Segment{Payload: []byte(p), Text: p})
	}
	if err := h.st.Add(context.Background(), []*store.Record{rec}); err != nil {
		t.Fatal(err)
	}
	return rec.ID
}

func (h *harness) waitFinal(t *testing.T, id string) *store.Record {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		rec, err := h.st.Get(id)
		if err != nil {
			t.Fatal(err)
		}
		if rec.State.Final() && rec.ReportDone {
			return rec
		}
		if time.Now().After(deadline) {
			t.Fatalf("record %s: state %s, reported %v; events %+v", id, rec.State, rec.ReportDone, rec.Events)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func dsnField(t *testing.T, msg []byte, name string) string {
	t.Helper()
	p, err := report.Parse(msg)
	if err != nil {
		t.Fatalf("report does not parse: %v", err)
	}
	_ = p
	// The per-recipient block is the last header block of the
	// message/delivery-status part; scanning lines is enough here.
	sc := bufio.NewScanner(bytes.NewReader(msg))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.EqualFold(k, name) {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func TestSubmitOutcomes(t *testing.T) {
	tests := []struct {
		name        string
		status      uint32 // submit_sm_resp status for the first submits
		refusals    int32  // how many submits get it; -1: all
		validity    time.Duration
		wantState   store.State
		wantStatus  string // Status of the report
		wantEvent   string // "retry", "throttled" or "" (neither)
		wantAttempt int
	}{
		{"accepted and delivered", 0, 0, 0, store.Delivered, "2.0.0", "", 1},
		// The SMSC had the submit and refused it: one attempt.
		{"invalid destination fails at once", 0x0B, -1, 0, store.Failed, "5.1.1", "", 1},
		{"other permanent status fails at once", 0x61, -1, 0, store.Failed, "5.0.0", "", 1},
		{"system error twice then accepted", 0x08, 2, 0, store.Delivered, "2.0.0", "retry", 3},
		{"throttled twice pauses, no attempt lost", 0x58, 2, 0, store.Delivered, "2.0.0", "throttled", 1},
		{"queue full twice pauses, no attempt lost", 0x14, 2, 0, store.Delivered, "2.0.0", "throttled", 1},
		{"temporary error past the validity period expires", 0x08, -1, 150 * time.Millisecond, store.Expired, "5.4.7", "retry", -1},
		{"throttled past the validity period expires", 0x58, -1, 150 * time.Millisecond, store.Expired, "5.4.7", "throttled", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var n atomic.Int32
			h := newHarness(t, Config{ReportSuccess: true, Validity: tc.validity}, smsctest.Config{
				SubmitStatus: func(smsctest.Message) uint32 {
					if tc.refusals < 0 || n.Add(1) <= tc.refusals {
						return tc.status
					}
					return 0
				},
			})
			id := h.add(t, "s@corp.test", "+14155550123", "hello")
			rec := h.waitFinal(t, id)
			if rec.State != tc.wantState {
				t.Fatalf("state %s, want %s; events %+v", rec.State, tc.wantState, rec.Events)
			}
			seen := map[string]bool{}
			for _, e := range rec.Events {
				seen[e.What] = true
			}
			for _, ev := range []string{"retry", "throttled"} {
				if seen[ev] != (ev == tc.wantEvent) {
					t.Errorf("event %q seen = %v; events %+v", ev, seen[ev], rec.Events)
				}
			}
			if tc.wantAttempt >= 0 && rec.Attempts != tc.wantAttempt {
				t.Errorf("attempts %d, want %d", rec.Attempts, tc.wantAttempt)
			}
			msgs, err := h.sink.Wait(ctxFor(t), 1)
			if err != nil {
				t.Fatal(err)
			}
			if got := dsnField(t, msgs[0].Data, "Status"); got != tc.wantStatus {
				t.Errorf("report Status %q, want %q", got, tc.wantStatus)
			}
			if msgs[0].From != "" {
				t.Errorf("report envelope sender %q, want <>", msgs[0].From)
			}
		})
	}
}

func TestReportPolicy(t *testing.T) {
	tests := []struct {
		name          string
		from          string
		successReport bool
		undeliv       bool
		wantReport    bool
	}{
		{"success reported when asked", "a@x.test", true, false, true},
		{"success not reported by default", "a@x.test", false, false, false},
		{"failure always reported", "a@x.test", false, true, true},
		{"never a report to the null sender", "", true, true, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sc := smsctest.Config{}
			if tc.undeliv {
				sc.Outcomes = []smsctest.Outcome{{Stat: "UNDELIV", Err: "001"}}
			}
			h := newHarness(t, Config{ReportSuccess: tc.successReport}, sc)
			id := h.add(t, tc.from, "+14155550123", "hi")
			rec := h.waitFinal(t, id)
			time.Sleep(50 * time.Millisecond)
			if got := len(h.sink.Messages()) == 1; got != tc.wantReport {
				t.Fatalf("report sent = %v, want %v; events %+v", got, tc.wantReport, rec.Events)
			}
		})
	}
}

func TestReportRetriedAfterTemporaryRefusal(t *testing.T) {
	h := newHarness(t, Config{}, smsctest.Config{Outcomes: []smsctest.Outcome{{Stat: "UNDELIV", Err: "001"}}})
	h.sink.Reject(&smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try later"})
	id := h.add(t, "a@x.test", "+14155550123", "hi")
	deadline := time.Now().Add(5 * time.Second)
	for {
		rec, _ := h.st.Get(id)
		if rec.State == store.Failed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("record never failed")
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // a few refused attempts
	if rec, _ := h.st.Get(id); rec.ReportDone {
		t.Fatal("report marked done though the smarthost refused it temporarily")
	}
	h.sink.Reject(nil)
	rec := h.waitFinal(t, id)
	if n := len(h.sink.Messages()); n != 1 {
		t.Fatalf("%d reports after the smarthost recovered, want 1; events %+v", n, rec.Events)
	}
}

func TestReportPermanentRefusalIsNotRetried(t *testing.T) {
	h := newHarness(t, Config{}, smsctest.Config{Outcomes: []smsctest.Outcome{{Stat: "UNDELIV", Err: "001"}}})
	h.sink.Reject(&smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"})
	id := h.add(t, "gone@x.test", "+14155550123", "hi")
	rec := h.waitFinal(t, id)
	last := rec.Events[len(rec.Events)-1]
	if last.What != "reported" || !strings.Contains(last.Detail, "refused") {
		t.Errorf("last event %+v, want a refused report", last)
	}
}

func TestMultipartReceiptsInAnyOrder(t *testing.T) {
	h := newHarness(t, Config{ReportSuccess: true}, smsctest.Config{})
	id := h.add(t, "a@x.test", "+14155550123", "part one ", "part two ", "part three")
	rec := h.waitFinal(t, id)
	if rec.State != store.Delivered {
		t.Fatalf("state %s", rec.State)
	}
	msgs := h.sim.Messages()
	if len(msgs) != 3 {
		t.Fatalf("%d submits, want 3", len(msgs))
	}
	for i, m := range msgs {
		if m.ESMClass&0x40 == 0 || m.ShortMessage[5] != byte(i+1) {
			t.Errorf("part %d: esm_class %#x, UDH % x", i+1, m.ESMClass, m.ShortMessage[:6])
		}
		if seg := rec.Segments[i]; seg.SMSCID != "default:"+m.ID || seg.State != store.SegDelivered {
			t.Errorf("segment %d: %+v, simulator id %s", i+1, seg, m.ID)
		}
	}
}

func TestWaitsForBindWithoutBurningAttempts(t *testing.T) {
	h := newHarness(t, Config{}, smsctest.Config{})
	h.sim.Stop()
	time.Sleep(50 * time.Millisecond)
	id := h.add(t, "a@x.test", "+14155550123", "hi")
	time.Sleep(300 * time.Millisecond)
	rec, _ := h.st.Get(id)
	if rec.State != store.Queued || rec.Attempts > 1 {
		t.Fatalf("while unbound: state %s attempts %d", rec.State, rec.Attempts)
	}
	if err := h.sim.Start(h.sim.Addr()); err != nil {
		t.Fatal(err)
	}
	if rec := h.waitFinal(t, id); rec.State != store.Delivered {
		t.Fatalf("state %s", rec.State)
	}
}

func TestBackoff(t *testing.T) {
	b := New(Config{RetryMin: time.Second, RetryMax: 8 * time.Second}, nil, nil, nil, nil)
	for attempts, want := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second, 4: 8 * time.Second, 10: 8 * time.Second} {
		for range 100 {
			d := b.backoff(attempts)
			if d < want/2 || d > want {
				t.Fatalf("backoff(%d) = %v, want in [%v, %v]", attempts, d, want/2, want)
			}
		}
	}
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestReceiptBeforeSubmitResp: the SMSC sends the final receipt before its
// submit_sm_resp (SMSCs do, under load). The receipt is parked, acknowledged
// and applied once the id is written; the simulator's own later receipt is
// only ENROUTE, so nothing else could end the record.
func TestReceiptBeforeSubmitResp(t *testing.T) {
	var h *harness
	h = newHarness(t, Config{ReportSuccess: true}, smsctest.Config{
		Outcomes: []smsctest.Outcome{{Stat: "ENROUTE", Err: "000"}},
		OnSubmit: func(m smsctest.Message, _ uint32) {
			if err := h.sim.InjectReceipt("b", 0, m.ID, "DELIVRD"); err != nil {
				t.Errorf("inject: %v", err)
			}
			// Hold submit_sm_resp until the receipt is in the store, so
			// the order on our side is certain.
			for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
				if n, _ := h.st.Parked(); n > 0 {
					return
				}
			}
			t.Errorf("the early receipt was never parked")
		},
	})
	id := h.add(t, "a@x.test", "+14155550123", "early")
	rec := h.waitFinal(t, id)
	if rec.State != store.Delivered {
		t.Fatalf("state %s; events %+v", rec.State, rec.Events)
	}
	var order []string
	for _, e := range rec.Events {
		order = append(order, e.What)
	}
	if got := strings.Join(order, ","); !strings.HasPrefix(got, "accepted,submitting,submitted,receipt,delivered") {
		t.Errorf("events %s", got)
	}
}

// TestConcatMethods: how the parts of a long message are tied together
// follows the record's method (TS 23.040 §9.2.3.24.1 and .8; SMPP v3.4
// §5.3.2.22-24 and §5.3.2.32).
func TestConcatMethods(t *testing.T) {
	tests := []struct {
		concat string
		check  func(t *testing.T, i int, ref uint16, m smsctest.Message)
	}{
		{"udh8", func(t *testing.T, i int, ref uint16, m smsctest.Message) {
			if want := []byte{5, 0, 3, byte(ref), 2, byte(i + 1)}; m.ESMClass != 0x40 || !bytes.Equal(m.ShortMessage[:6], want) {
				t.Errorf("part %d: esm %#x UDH % x, want % x", i+1, m.ESMClass, m.ShortMessage[:6], want)
			}
		}},
		{"udh16", func(t *testing.T, i int, ref uint16, m smsctest.Message) {
			if want := []byte{6, 8, 4, byte(ref >> 8), byte(ref), 2, byte(i + 1)}; m.ESMClass != 0x40 || !bytes.Equal(m.ShortMessage[:7], want) {
				t.Errorf("part %d: esm %#x UDH % x, want % x", i+1, m.ESMClass, m.ShortMessage[:7], want)
			}
		}},
		{"sar", func(t *testing.T, i int, ref uint16, m smsctest.Message) {
			if m.ESMClass != 0 || !bytes.Equal(m.TLVs[0x020C], []byte{byte(ref >> 8), byte(ref)}) ||
				!bytes.Equal(m.TLVs[0x020E], []byte{2}) || !bytes.Equal(m.TLVs[0x020F], []byte{byte(i + 1)}) {
				t.Errorf("part %d: esm %#x TLVs %v", i+1, m.ESMClass, m.TLVs)
			}
		}},
		{"payload", func(t *testing.T, i int, _ uint16, m smsctest.Message) {
			if m.ESMClass != 0 || m.TLVs[0x0424] == nil {
				t.Errorf("part %d: esm %#x TLVs %v", i+1, m.ESMClass, m.TLVs)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.concat, func(t *testing.T) {
			h := newHarness(t, Config{}, smsctest.Config{})
			rec := &store.Record{From: "a@x.test", Rcpt: "+14155550123@sms.test", To: "+14155550123",
				Concat: tc.concat, Ref: 0x1234, Segments: []store.Segment{{Payload: []byte("one")}, {Payload: []byte("two")}}}
			if tc.concat == "payload" {
				rec.Segments = rec.Segments[:1]
			}
			if err := h.st.Add(context.Background(), []*store.Record{rec}); err != nil {
				t.Fatal(err)
			}
			msgs, err := h.sim.WaitMessages(ctxFor(t), len(rec.Segments))
			if err != nil {
				t.Fatal(err)
			}
			stored, err := h.st.Get(rec.ID) // the store may assign the reference
			if err != nil {
				t.Fatal(err)
			}
			for i, m := range msgs {
				tc.check(t, i, stored.Ref, m)
				if m.Validity == "" || !strings.HasSuffix(m.Validity, "R") {
					t.Errorf("validity_period %q, want a relative time", m.Validity)
				}
			}
		})
	}
}

// TestThrottlePausesRoute: ESME_RTHROTTLED is about the route, so nothing
// is submitted until the pause is over, whatever the record.
func TestThrottlePausesRoute(t *testing.T) {
	var refusedAt atomic.Int64
	h := newHarness(t, Config{Workers: 1, ThrottleMin: 150 * time.Millisecond, ThrottleMax: time.Second}, smsctest.Config{
		SubmitStatus: func(smsctest.Message) uint32 {
			if refusedAt.CompareAndSwap(0, time.Now().UnixNano()) {
				return 0x58
			}
			return 0
		},
	})
	var ids []string
	for i := range 4 {
		ids = append(ids, h.add(t, "a@x.test", fmt.Sprintf("+1415555012%d", i), "hi"))
	}
	for _, id := range ids {
		h.waitFinal(t, id)
	}
	paused := time.Unix(0, refusedAt.Load()).Add(140 * time.Millisecond)
	for _, m := range h.sim.Messages() {
		if m.At.Before(paused) {
			t.Errorf("submit to %s at %s, during the pause that ends %s", m.Dest, m.At.Format("15:04:05.000"), paused.Format("15:04:05.000"))
		}
	}
}

// TestOrderPerDestination: messages to one number reach the SMSC in the
// order they were accepted, though many workers run.
func TestOrderPerDestination(t *testing.T) {
	h := newHarness(t, Config{Workers: 8}, smsctest.Config{})
	var ids []string
	for i := range 20 {
		ids = append(ids, h.add(t, "a@x.test", "+14155550123", fmt.Sprintf("msg %02d", i)))
		h.add(t, "a@x.test", fmt.Sprintf("+1415555%04d", 200+i), "other")
	}
	for _, id := range ids {
		h.waitFinal(t, id)
	}
	var got []string
	for _, m := range h.sim.Messages() {
		if m.Dest == "14155550123" {
			got = append(got, string(m.ShortMessage))
		}
	}
	for i, text := range got {
		if want := fmt.Sprintf("msg %02d", i); text != want {
			t.Fatalf("message %d to the number is %q, want %q (order %v)", i, text, want, got)
		}
	}
}

// TestRecoverAfterCrash: a record a crash left in Submitting, one of its two
// segments accepted, is queued again at start-up and only the segment
// without an SMSC id is sent.
func TestRecoverAfterCrash(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.db")
	st, err := store.Open(path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	rec := &store.Record{From: "a@x.test", Rcpt: "+14155550123@sms.test", To: "+14155550123",
		Segments: []store.Segment{{Payload: []byte("one")}, {Payload: []byte("two")}}}
	if err := st.Add(context.Background(), []*store.Record{rec}); err != nil {
		t.Fatal(err)
	}
	_, err = st.Update(rec.ID, func(r *store.Record) error {
		r.State = store.Submitting
		r.Segments[0].SMSCID, r.Segments[0].State = "earlier-1", store.SegSubmitted
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	st.Close()

	// Restart: a harness over the same file.
	h := newHarnessAt(t, path, Config{}, smsctest.Config{})
	msgs, err := h.sim.WaitMessages(ctxFor(t), 1)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	if msgs = h.sim.Messages(); len(msgs) != 1 || !bytes.HasSuffix(msgs[0].ShortMessage, []byte("two")) {
		t.Fatalf("after recovery the SMSC got %d submits: %+v", len(msgs), msgs)
	}
	got, _ := h.st.Get(rec.ID)
	if got.State != store.Submitted || got.Segments[0].SMSCID != "earlier-1" || got.Segments[1].SMSCID == "" {
		t.Errorf("record %s segments %+v", got.State, got.Segments)
	}
}

// routedHarness is a bridge over several routes, each with its own simulator.
type routedHarness struct {
	st   *store.Store
	sims map[string]*smsctest.Server
	b    *Bridge
}

func newRouted(t *testing.T, routes []Route) *routedHarness {
	t.Helper()
	return newRoutedConfig(t, routes, Config{RetryMin: 10 * time.Millisecond, RetryMax: 40 * time.Millisecond})
}

// newRoutedConfig is newRouted with the dispatcher's retry delays of cfg.
func newRoutedConfig(t *testing.T, routes []Route, cfg Config) *routedHarness {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "r.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	h := &routedHarness{st: st, sims: map[string]*smsctest.Server{}}
	log := slog.New(slog.DiscardHandler)
	ctx, cancel := context.WithCancel(context.Background())
	var runs sync.WaitGroup
	for i := range routes {
		sim := smsctest.New(smsctest.Config{SystemID: "b", Password: "pw", ReceiptDelay: 10 * time.Millisecond})
		if err := sim.Start("127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { sim.Close() })
		name := routes[i].Name
		h.sims[name] = sim
		cl := smppout.New(smppout.Config{Addr: sim.Addr(), SystemID: "b", Password: "pw",
			RespTimeout: 2 * time.Second, BackoffMin: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond},
			func(ctx context.Context, r smppout.Receipt) error { return h.b.ReceiptHandler(name)(ctx, r) }, log)
		routes[i].SMSC = cl
		runs.Add(1)
		go func() { defer runs.Done(); cl.Run(ctx) }()
	}
	cfg.ThrottleMin, cfg.ThrottleMax = 20*time.Millisecond, 50*time.Millisecond
	h.b = New(cfg, st, routes, report.Outbox{Dir: t.TempDir()}, log)
	runs.Add(1)
	go func() { defer runs.Done(); h.b.Run(ctx) }()
	t.Cleanup(func() { cancel(); runs.Wait() })
	// Every route bound before the test sends: a record that found only
	// the backup bound would go by it.
	deadline := time.Now().Add(10 * time.Second)
	for _, r := range routes {
		for !r.SMSC.Bound() {
			if time.Now().After(deadline) {
				t.Fatalf("route %s never bound", r.Name)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	return h
}

func (h *routedHarness) send(t *testing.T, to string) *store.Record {
	t.Helper()
	rec := &store.Record{From: "a@x.test", Rcpt: to + "@sms.test", To: to, Segments: []store.Segment{{Payload: []byte("hi")}}}
	if err := h.st.Add(context.Background(), []*store.Record{rec}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, _ := h.st.Get(rec.ID)
		if got.State == store.Delivered {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("record to %s: %s %+v", to, got.State, got.Events)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// routeOf is the route that carried rec's segment, from its stored id.
func routeOf(rec *store.Record) string {
	name, _, _ := strings.Cut(rec.Segments[0].SMSCID, ":")
	return name
}

// TestBindWakesPostponed: a record whose only route is down while another
// is bound is postponed by RetryMin (an hour here), and goes as soon as
// its route binds again.
func TestBindWakesPostponed(t *testing.T) {
	h := newRoutedConfig(t, []Route{
		{Name: "us", Prefixes: []string{"+1"}},
		{Name: "uk", Prefixes: []string{"+44"}},
	}, Config{RetryMin: time.Hour, RetryMax: 2 * time.Hour})
	uk := h.sims["uk"]
	uk.Stop()
	waitUntil(t, "route uk down", func() bool {
		for _, r := range h.b.routeList() {
			if r.Name == "uk" {
				return !r.SMSC.Bound()
			}
		}
		return false
	})
	rec := &store.Record{From: "a@x.test", Rcpt: "+447700900123@sms.test", To: "+447700900123",
		Segments: []store.Segment{{Payload: []byte("hi")}}}
	if err := h.st.Add(context.Background(), []*store.Record{rec}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the record postponed", func() bool {
		got, _ := h.st.Get(rec.ID)
		return got.NextAttempt.After(time.Now().Add(30 * time.Minute))
	})
	if err := uk.Start(uk.Addr()); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the record delivered after the bind", func() bool {
		got, _ := h.st.Get(rec.ID)
		return got.State == store.Delivered
	})
	if got, _ := h.st.Get(rec.ID); routeOf(got) != "uk" || got.Attempts != 1 {
		t.Errorf("went by %q after %d attempts", routeOf(got), got.Attempts)
	}
}

// waitUntil polls cond for up to 10 s.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestRoutingAndFailover(t *testing.T) {
	h := newRouted(t, []Route{
		{Name: "primary", Prefixes: []string{"+1"}, Priority: 0},
		{Name: "backup", Prefixes: []string{"+1"}, Priority: 1},
		{Name: "germany", Prefixes: []string{"+49"}},
		{Name: "mobile-de", Prefixes: []string{"+4915", "+4916", "+4917"}},
	})
	for _, tc := range []struct{ to, want string }{
		{"+14155550123", "primary"},
		{"+4930123456", "germany"},
		{"+4915112345678", "mobile-de"}, // the longest prefix wins
	} {
		if got := routeOf(h.send(t, tc.to)); got != tc.want {
			t.Errorf("%s went by %s, want %s", tc.to, got, tc.want)
		}
	}

	h.sims["primary"].Stop() // the primary SMSC goes away
	time.Sleep(100 * time.Millisecond)
	if got := routeOf(h.send(t, "+14155550124")); got != "backup" {
		t.Errorf("with the primary down, traffic went by %s", got)
	}
	if err := h.sims["primary"].Start(h.sims["primary"].Addr()); err != nil {
		t.Fatal(err)
	}
	if err := h.sims["primary"].WaitBinds(ctxFor(t), 2); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // the bind is seen by the client
	if got := routeOf(h.send(t, "+14155550125")); got != "primary" {
		t.Errorf("with the primary back, traffic went by %s", got)
	}
	// No route serves +33: the record waits in the queue.
	rec := &store.Record{From: "a@x.test", Rcpt: "+33612345678@sms.test", To: "+33612345678", Segments: []store.Segment{{Payload: []byte("x")}}}
	h.st.Add(context.Background(), []*store.Record{rec})
	time.Sleep(200 * time.Millisecond)
	if got, _ := h.st.Get(rec.ID); got.State != store.Queued || got.Attempts != 0 {
		t.Errorf("unroutable record: %s after %d attempts", got.State, got.Attempts)
	}
}

// TestPackedRoute: a route that wants packed GSM gets the septets packed
// after the UDH and its fill bits (TS 23.040 §9.2.3.24, TS 23.038 §6.1.2.1.1).
func TestPackedRoute(t *testing.T) {
	h := newRouted(t, []Route{{Name: "packed", GSMPacked: true}})
	rec := h.send(t, "+14155550123")
	msgs := h.sims["packed"].Messages()
	if len(msgs) != 1 {
		t.Fatalf("%d submits", len(msgs))
	}
	// "hi" = septets 0x68 0x69 → packed 0xE8 0x34.
	if got := msgs[0].ShortMessage; !bytes.Equal(got, []byte{0xE8, 0x34}) {
		t.Errorf("packed short_message % x, want e8 34", got)
	}
	_ = rec
}

// TestNoFinalReceiptExpires: an SMSC that never sends a final receipt must
// not leave the record waiting forever: past the validity period and the
// grace it expires, and the sender hears that the SMS may have arrived.
// TestOutageEndsOverdueRecords: while no SMSC is bound at all, a record
// waiting for its receipts past the deadline and a queued record past its
// validity still end (Expired) and are reported, without a bind.
func TestOutageEndsOverdueRecords(t *testing.T) {
	h := newHarness(t, Config{Validity: 400 * time.Millisecond, ReceiptGrace: 100 * time.Millisecond},
		smsctest.Config{Outcomes: []smsctest.Outcome{{Stat: "ENROUTE", Err: "000"}}})
	submitted := h.add(t, "a@x.test", "+14155550123", "hi")
	deadline := time.Now().Add(5 * time.Second)
	for {
		if rec, _ := h.st.Get(submitted); rec.State == store.Submitted {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("never submitted")
		}
		time.Sleep(5 * time.Millisecond)
	}
	h.sim.Stop() // and it stays down
	queued := h.add(t, "a@x.test", "+14155550124", "ho")
	for _, id := range []string{submitted, queued} {
		rec := h.waitFinal(t, id)
		if rec.State != store.Expired {
			t.Errorf("%s: state %s; events %+v", id, rec.State, rec.Events)
		}
	}
	if rec, _ := h.st.Get(queued); !strings.Contains(rec.LastError, "no SMSC connection") {
		t.Errorf("queued record's error %q", rec.LastError)
	}
	if _, err := h.sink.Wait(ctxFor(t), 2); err != nil {
		t.Fatal(err)
	}
}

func TestNoFinalReceiptExpires(t *testing.T) {
	h := newHarness(t, Config{Validity: 300 * time.Millisecond, ReceiptGrace: 100 * time.Millisecond},
		smsctest.Config{Outcomes: []smsctest.Outcome{{Stat: "ENROUTE", Err: "000"}}})
	id := h.add(t, "a@x.test", "+14155550123", "hi")
	rec := h.waitFinal(t, id)
	if rec.State != store.Expired || !strings.Contains(rec.LastError, "no delivery receipt") {
		t.Fatalf("state %s, error %q; events %+v", rec.State, rec.LastError, rec.Events)
	}
	msgs, err := h.sink.Wait(ctxFor(t), 1)
	if err != nil {
		t.Fatal(err)
	}
	if got := dsnField(t, msgs[0].Data, "Status"); got != "5.4.7" {
		t.Errorf("report Status %q", got)
	}
}

// TestUnroutableDoNotBlockOthers: hundreds of records whose only route is
// down must not hide a record for a healthy route behind them.
func TestUnroutableDoNotBlockOthers(t *testing.T) {
	h := newRouted(t, []Route{
		{Name: "de", Prefixes: []string{"+49"}},
		{Name: "fr", Prefixes: []string{"+33"}},
	})
	h.sims["de"].Stop()
	time.Sleep(100 * time.Millisecond)
	var recs []*store.Record
	for i := range 300 {
		recs = append(recs, &store.Record{From: "a@x.test", To: fmt.Sprintf("+49151%07d", i),
			Segments: []store.Segment{{Payload: []byte("x")}}})
	}
	if err := h.st.Add(context.Background(), recs); err != nil {
		t.Fatal(err)
	}
	if got := routeOf(h.send(t, "+33612345678")); got != "fr" {
		t.Errorf("went by %s", got)
	}
	if got, _ := h.st.Get(recs[0].ID); got.State != store.Queued || got.Attempts != 0 {
		t.Errorf("a record for the down route: %s after %d attempts", got.State, got.Attempts)
	}
}

// TestMOStored: an MO on its own, and one in three parts sent out of
// order, are stored as inbound messages (and acknowledged only then).
func TestMOStored(t *testing.T) {
	h := newHarness(t, Config{}, smsctest.Config{})
	if err := h.sim.WaitBinds(ctxFor(t), 1); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	h.sim.SendMO(smsctest.MO{SystemID: "b", From: "4915112345678", To: "12345", Text: []byte("STOP")})
	for _, seq := range []byte{3, 1, 2} {
		text := map[byte]string{1: "one ", 2: "two ", 3: "three"}[seq]
		h.sim.SendMO(smsctest.MO{SystemID: "b", From: "4915112345678", To: "12345",
			UDH: []byte{5, 0, 3, 0x42, 3, seq}, Text: []byte(text)})
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		in, err := h.st.ListInbound(10)
		if err != nil {
			t.Fatal(err)
		}
		if len(in) == 2 {
			texts := in[0].Text + "|" + in[1].Text
			if texts != "one two three|STOP" && texts != "STOP|one two three" {
				t.Errorf("inbound texts %q", texts)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("inbound: %+v", in)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if parts, _ := h.st.MOParts(); len(parts) != 0 {
		t.Errorf("%d parts left unjoined", len(parts))
	}
}

// TestLateResponseNotSentTwice: a submit_sm_resp that comes after the
// timeout still writes the id down, and the retry the timeout scheduled
// does not send the segment again.
func TestLateResponseNotSentTwice(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "l.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	sim := smsctest.New(smsctest.Config{SystemID: "b", Password: "pw", ReceiptDelay: 10 * time.Millisecond,
		RespDelay: 400 * time.Millisecond})
	if err := sim.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	var b *Bridge
	log := slog.New(slog.DiscardHandler)
	cl := smppout.New(smppout.Config{Addr: sim.Addr(), SystemID: "b", Password: "pw", RespTimeout: 150 * time.Millisecond,
		EnquireLink: time.Hour, BackoffMin: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond,
		Late: func(tag any, id string) { b.LateHandler("default")(tag, id) }},
		func(ctx context.Context, r smppout.Receipt) error { return b.ReceiptHandler("default")(ctx, r) }, log)
	b = New(Config{RetryMin: 2 * time.Second, RetryMax: 2 * time.Second}, st, []Route{{Name: "default", SMSC: cl}},
		report.Outbox{Dir: t.TempDir()}, log)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); cl.Run(ctx) }()
	go func() { defer wg.Done(); b.Run(ctx) }()
	defer func() { cancel(); wg.Wait() }()

	rec := &store.Record{From: "a@x.test", To: "+14155550123", Segments: []store.Segment{{Payload: []byte("once")}}}
	if err := st.Add(context.Background(), []*store.Record{rec}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, _ := st.Get(rec.ID)
		if got.State == store.Delivered {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("state %s; events %+v", got.State, got.Events)
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(2500 * time.Millisecond) // past the retry the timeout scheduled
	if n := len(sim.Messages()); n != 1 {
		t.Errorf("the SMSC got the segment %d times, want once", n)
	}
}

// TestPerRouteEncoding: a route whose SMSC wants SAR instead of a
// concatenation UDH gets the record encoded again for it.
func TestPerRouteEncoding(t *testing.T) {
	sar := convert.Options{Concat: convert.ConcatSAR}
	h := newRouted(t, []Route{{Name: "sar", Encoding: &sar}})
	text := strings.Repeat("0123456789", 20) // 200 septets: 2 parts either way
	enc, _ := convert.Encode(text, convert.Options{})
	rec := &store.Record{From: "a@x.test", To: "+14155550123", Text: text, Concat: string(enc.Concat)}
	for _, sg := range enc.Segments {
		rec.Segments = append(rec.Segments, store.Segment{Payload: sg.Payload, Text: sg.Text})
	}
	if err := h.st.Add(context.Background(), []*store.Record{rec}); err != nil {
		t.Fatal(err)
	}
	msgs, err := h.sims["sar"].WaitMessages(ctxFor(t), 2)
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range msgs {
		if m.ESMClass&0x40 != 0 || m.TLVs[0x020F] == nil || m.TLVs[0x020F][0] != byte(i+1) {
			t.Errorf("part %d: esm_class %#x TLVs %v, want SAR and no UDH", i+1, m.ESMClass, m.TLVs)
		}
	}
	got, _ := h.st.Get(rec.ID)
	if got.Concat != "sar" {
		t.Errorf("record concat %q after the route took it", got.Concat)
	}
}

// TestUnstick: a record left in Submitting while no worker holds it (a
// store write failed) goes back to the queue without a restart.
func TestUnstick(t *testing.T) {
	h := newHarness(t, Config{PurgeEvery: 50 * time.Millisecond}, smsctest.Config{})
	h.sim.Stop() // nothing gets submitted meanwhile
	rec := &store.Record{From: "a@x.test", To: "+14155550123", Segments: []store.Segment{{Payload: []byte("x")}}}
	if err := h.st.Add(context.Background(), []*store.Record{rec}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.st.Update(rec.ID, func(r *store.Record) error { r.State = store.Submitting; return nil }); err != nil {
		t.Fatal(err)
	}
	if err := h.sim.Start(h.sim.Addr()); err != nil {
		t.Fatal(err)
	}
	if got := h.waitFinal(t, rec.ID); got.State != store.Delivered {
		t.Fatalf("state %s; events %+v", got.State, got.Events)
	}
}

// TestReencodedIntoPartsKeepsAReference: a text accepted as one SMS (here
// GSM with the Turkish shift table) that a route must send in UCS-2 becomes
// two parts, and they carry the record's own reference, not 0.
func TestReencodedIntoPartsKeepsAReference(t *testing.T) {
	plain := convert.Options{}
	h := newRouted(t, []Route{{Name: "no-shift", Encoding: &plain}})
	text := strings.Repeat("Şu an sistem çalışıyor. ", 4) // 96 characters
	enc, err := convert.Encode(text, convert.Options{Languages: []string{"tr"}})
	if err != nil || len(enc.Segments) != 1 {
		t.Fatalf("with the Turkish table: %d segments, %v", len(enc.Segments), err)
	}
	rec := &store.Record{From: "a@x.test", To: "+905321234567", Text: text, Concat: string(enc.Concat),
		DataCoding: enc.Coding.DataCoding(), SingleShift: enc.SingleShift, LockingShift: enc.LockingShift,
		Segments: []store.Segment{{Payload: enc.Segments[0].Payload, Text: enc.Segments[0].Text}}}
	if err := h.st.Add(context.Background(), []*store.Record{rec}); err != nil {
		t.Fatal(err)
	}
	if rec.Ref == 0 {
		t.Fatalf("the store gave reference 0")
	}
	msgs, err := h.sims["no-shift"].WaitMessages(ctxFor(t), 2)
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range msgs {
		if m.DataCoding != 8 || m.ShortMessage[3] != byte(rec.Ref) || m.ShortMessage[4] != 2 {
			t.Errorf("part %d: data_coding %d UDH % x, want UCS-2 with reference %#x of 2", i+1, m.DataCoding, m.ShortMessage[:6], byte(rec.Ref))
		}
	}
}

// TestUnboundWaitForgetsWhatIsDue: records remembered for a bind are
// forgotten once they are all due anyway, so that the dispatcher stops
// looking every boundPoll when no route comes back.
func TestUnboundWaitForgetsWhatIsDue(t *testing.T) {
	t0 := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	u := newUnboundWait()
	u.add("a", t0.Add(30*time.Second))
	u.add("b", t0.Add(40*time.Second))
	if ids := u.bindsSince(nil, t0.Add(35*time.Second)); ids != nil || !u.waiting() {
		t.Fatalf("at 35 s: woke %v, waiting %v; want nothing woken, still waiting", ids, u.waiting())
	}
	if u.bindsSince(nil, t0.Add(41*time.Second)); u.waiting() {
		t.Error("still waiting once every record is due")
	}
}
