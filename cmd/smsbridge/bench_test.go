package main

import (
	"bytes"
	"context"
	"encoding/json"
	"github.com/smsbridge/smsbridge/smppout"
	"log/slog"
	"math"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/smsbridge/smsbridge/smppout/smsctest"
)

// TestBenchInProcess runs smsbridge bench briefly against the in-process
// gateway and checks that its numbers add up: every mail accepted, one
// submit_sm per recipient and segment, a receipt for each, and a report
// per recipient when reports are on.
func TestBenchInProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole gateway")
	}
	tests := []struct {
		name       string
		args       []string
		mails      uint64
		rcpts      int
		segs       int // per recipient
		reports    bool
		perMailCon bool
	}{
		{"reused sessions, gsm, reports", []string{"--sessions", "2", "--count", "50"}, 50, 1, 1, true, false},
		{"two recipients of a 3-part text", []string{"--sessions", "2", "--count", "20", "--rcpts", "2", "--mix", "long"}, 20, 2, 3, true, false},
		{"one connection per mail, ucs2, padded, no pipelining",
			[]string{"--sessions", "3", "--count", "30", "--mix", "ucs2", "--conn-per-mail", "--no-pipelining", "--size", "4000"}, 30, 1, 1, true, true},
		{"no reports", []string{"--sessions", "2", "--count", "20", "--reports", "off"}, 20, 1, 1, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, out := runBenchJSON(t, tc.args...)
			sms := int64(tc.mails) * int64(tc.rcpts*tc.segs)
			switch {
			case !r.Complete:
				t.Errorf("run not complete: %s", out)
			case r.Mails != tc.mails || r.TotalMails != tc.mails:
				t.Errorf("mails accepted %d (whole run %d), want %d", r.Mails, r.TotalMails, tc.mails)
			case r.TempFail+r.PermFail+r.IOErrors != 0:
				t.Errorf("errors: %d 4xx, %d 5xx, %d i/o (%s)", r.TempFail, r.PermFail, r.IOErrors, r.LastError)
			case r.SMS != sms || r.TotalSMS != sms || r.ExpectedSMS != uint64(sms):
				t.Errorf("SMS submitted %d (whole run %d, expected %d), want %d", r.SMS, r.TotalSMS, r.ExpectedSMS, sms)
			case r.ReceiptsN != sms:
				t.Errorf("receipts %d, want %d", r.ReceiptsN, sms)
			case r.Data250.N != int(tc.mails) || r.Data250.P50 <= 0 || r.Data250.P99 < r.Data250.P50:
				t.Errorf("DATA→250 %+v", r.Data250)
			case r.DataSubmit.N != int(tc.mails)*tc.rcpts || r.DataSubmit.P50 < r.Data250.P50:
				t.Errorf("DATA→submit_sm %+v, want %d samples after DATA→250 %+v", r.DataSubmit, int(tc.mails)*tc.rcpts, r.Data250)
			case r.MailsPerS <= 0 || r.CPUSeconds <= 0 || r.RSSMB <= 0:
				t.Errorf("mails/s %.0f, CPU %.2f s, RSS %.0f MB", r.MailsPerS, r.CPUSeconds, r.RSSMB)
			case math.Abs(r.CPUPerMail-r.CPUSeconds*1e6/float64(r.Mails)) > 1:
				t.Errorf("CPU per mail %.0f µs, want %.2f s / %d mails", r.CPUPerMail, r.CPUSeconds, r.Mails)
			}
			wantReports := int64(0)
			if tc.reports {
				wantReports = int64(tc.mails) * int64(tc.rcpts)
			}
			if r.ReportsN != wantReports || r.DataReport.N != int(r.ReportMails) {
				t.Errorf("records reported %d, want %d; %d report mails, %d timed", r.ReportsN, wantReports, r.ReportMails, r.DataReport.N)
			}
			if tc.reports && (r.ReportMails < int64(tc.mails) || r.ReportMails > wantReports) {
				t.Errorf("%d report mails for %d mails to %d recipients", r.ReportMails, tc.mails, tc.rcpts)
			}
			if tc.reports && r.DataReport.P50 < r.DataSubmit.P50 {
				t.Errorf("DATA→report p50 %.2f ms before DATA→submit_sm %.2f ms", r.DataReport.P50, r.DataSubmit.P50)
			}
			if conns := r.Connections; tc.perMailCon && conns != tc.mails || !tc.perMailCon && conns > 3 {
				t.Errorf("%d connections for %d mails", conns, tc.mails)
			}
		})
	}
}

// TestBenchTable checks the human table has every row.
// runBenchJSON runs smsbridge bench with args after quick settings (no
// warm-up, receipts after 5 ms) and returns its --json result and output.
func runBenchJSON(t *testing.T, args ...string) (benchResult, *bytes.Buffer) {
	t.Helper()
	args = append([]string{"--json", "--warmup", "0", "--receipt-delay", "5ms", "--drain", "20s",
		"--log-level", "error"}, args...)
	var out, errOut bytes.Buffer
	if code := runBench(args, &out, &errOut); code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, &out, &errOut)
	}
	var r benchResult
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatalf("--json output: %v\n%s", err, &out)
	}
	return r, &out
}

// TestBenchSlices: with --slice, DATA→250 is also given per slice of the
// window, and the slices hold every measured mail once.
func TestBenchSlices(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole gateway")
	}
	r, _ := runBenchJSON(t, "--sessions", "2", "--duration", "1s", "--rate", "100", "--slice", "250ms")
	n := 0
	for i, sl := range r.Data250Slices {
		if want := float64(i) * 0.25; math.Abs(sl.FromS-want) > 1e-9 {
			t.Errorf("slice %d from %v s, want %v", i, sl.FromS, want)
		}
		n += sl.N
	}
	if len(r.Data250Slices) < 3 || n != r.Data250.N || n == 0 {
		t.Errorf("%d slices holding %d mails; %d measured", len(r.Data250Slices), n, r.Data250.N)
	}
}

func TestBenchTable(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole gateway")
	}
	var out, errOut bytes.Buffer
	if code := runBench([]string{"--sessions", "2", "--count", "10", "--warmup", "0", "--receipt-delay", "1ms", "--log-level", "error"},
		&out, &errOut); code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, &out, &errOut)
	}
	for _, want := range []string{"mails accepted", "SMS submitted", "receipts applied", "records reported", "end to end",
		"DATA→250", "DATA→submit_sm", "DATA→report", "CPU:", "µs per mail accepted", "RSS:", "2-core"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table has no %q:\n%s", want, &out)
		}
	}
}

func TestSubmitToken(t *testing.T) {
	ucs2 := func(s string) []byte {
		var b []byte
		for _, r := range s {
			b = append(b, byte(r>>8), byte(r))
		}
		return b
	}
	tests := []struct {
		name string
		m    smsctest.Message
		tok  uint64
		ok   bool
	}{
		{"gsm single", smsctest.Message{ShortMessage: []byte("BENCH42 Disk full")}, 42, true},
		{"ucs2", smsctest.Message{DataCoding: 8, ShortMessage: ucs2("BENCH7 Авария")}, 7, true},
		{"a 20-digit token is refused", smsctest.Message{ESMClass: 0x40,
			ShortMessage: append([]byte{5, 0, 3, 9, 3, 1}, "BENCH18446744073709551615 x"...)}, 0, false}, // 20 digits: too long
		{"first of three", smsctest.Message{ESMClass: 0x40, ShortMessage: append([]byte{5, 0, 3, 9, 3, 1}, "BENCH123 Alarm"...)}, 123, true},
		{"second segment has no token", smsctest.Message{ESMClass: 0x40, ShortMessage: append([]byte{5, 0, 3, 9, 3, 2}, "pump North"...)}, 0, false},
		{"udh longer than the message", smsctest.Message{ESMClass: 0x40, ShortMessage: []byte{9, 0}}, 0, false},
		{"not ours", smsctest.Message{ShortMessage: []byte("hello")}, 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tok, ok := submitToken(&tc.m)
			if tok != tc.tok || ok != tc.ok {
				t.Errorf("submitToken = %d, %v; want %d, %v", tok, ok, tc.tok, tc.ok)
			}
		})
	}
	if tok, ok := reportToken([]byte("In-Reply-To: <b981.smsbench@bench.test>\r\n")); tok != 981 || !ok {
		t.Errorf("reportToken = %d, %v", tok, ok)
	}
}

func TestParseMix(t *testing.T) {
	kinds, err := parseMix("gsm:8,ucs2=1,long")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, k := range kinds {
		got = append(got, k.name+":"+string(rune('0'+k.weight)))
	}
	if s := strings.Join(got, ","); s != "gsm:8,ucs2:1,long:1" {
		t.Errorf("parseMix = %s", s)
	}
	for _, bad := range []string{"sms", "gsm:x", "gsm:0"} {
		if _, err := parseMix(bad); err == nil {
			t.Errorf("parseMix(%q) took it", bad)
		}
	}
}

// TestPhaseSpreadsSessions: under --rate the sessions' first sends are
// spread evenly over one interval, so that the server sees the rate asked
// for, not a burst of one mail per session.
func TestPhaseSpreadsSessions(t *testing.T) {
	tests := []struct {
		n        int
		interval time.Duration
	}{
		{1, time.Second},
		{4, 100 * time.Millisecond},
		{50, 62500 * time.Microsecond}, // 800 mails/s over 50 sessions
	}
	for _, tc := range tests {
		gap := tc.interval / time.Duration(tc.n)
		for i := range tc.n {
			got := phase(i, tc.n, tc.interval)
			if want := time.Duration(i) * gap; got < want-time.Microsecond || got > want+time.Microsecond {
				t.Errorf("phase(%d, %d, %v) = %v, want %v", i, tc.n, tc.interval, got, want)
			}
			if got < 0 || got >= tc.interval {
				t.Errorf("phase(%d, %d, %v) = %v, outside one interval", i, tc.n, tc.interval, got)
			}
		}
	}
	if got := phase(3, 10, 0); got != 0 {
		t.Errorf("without --rate, phase = %v, want 0", got)
	}
}

// TestExternalWaitsForBind: against a running smsbridge, the load starts
// only once smsbridge has bound to the bench's simulator (mails accepted
// before would wait out its reconnect back-off, and DATA→submit_sm would
// measure that), and a smsbridge that never binds is an error.
func TestExternalWaitsForBind(t *testing.T) {
	old := bindWait
	bindWait = 300 * time.Millisecond
	t.Cleanup(func() { bindWait = old })

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	o := benchOptions{smtp: "127.0.0.1:1", simListen: addr, receipts: true}

	if _, err := startExternal(o, newGenerator(o.smtp, nil)); err == nil || !strings.Contains(err.Error(), "did not bind") {
		t.Fatalf("nobody binds: startExternal = %v, want a bind error", err)
	}

	bindWait = 10 * time.Second
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// The client's first dial fails (nothing listens yet); it binds after
	// its back-off, well after startExternal starts the simulator.
	c := smppout.New(smppout.Config{Addr: addr, SystemID: "bench", Password: "bench",
		BackoffMin: 300 * time.Millisecond, BackoffMax: 300 * time.Millisecond},
		func(context.Context, smppout.Receipt) error { return nil }, slog.New(slog.DiscardHandler))
	go c.Run(ctx)
	time.Sleep(50 * time.Millisecond)
	tg, err := startExternal(o, newGenerator(o.smtp, nil))
	if err != nil {
		t.Fatalf("a client binds: %v", err)
	}
	defer tg.close()
	// The simulator counts the bind as it answers it; the client notes
	// it a moment later.
	for deadline := time.Now().Add(50 * time.Millisecond); !c.Bound(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("startExternal returned before the client bound")
		}
	}
}
