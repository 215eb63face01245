package bridge

import (
	"testing"

	"github.com/smsbridge/smsbridge/report"
	"github.com/smsbridge/smsbridge/store"
)

func TestReportWants(t *testing.T) {
	off := false
	tests := []struct {
		name string
		cfg  Config
		rec  store.Record
		kind reportKind
		want bool
	}{
		{"default: failures", Config{}, store.Record{From: "a@x"}, kindFailure, true},
		{"default: no successes", Config{}, store.Record{From: "a@x"}, kindSuccess, false},
		{"default: no delays", Config{}, store.Record{From: "a@x"}, kindDelay, false},
		{"server: successes on (demo)", Config{ReportSuccess: true}, store.Record{From: "a@x"}, kindSuccess, true},
		{"server: delays on", Config{ReportDelays: true}, store.Record{From: "a@x"}, kindDelay, true},
		{"server: failures off", Config{ReportFailures: &off}, store.Record{From: "a@x"}, kindFailure, false},
		{"user none beats the server", Config{ReportSuccess: true}, store.Record{From: "a@x", ReportPolicy: "none"}, kindFailure, false},
		{"user failures: no success", Config{ReportSuccess: true}, store.Record{From: "a@x", ReportPolicy: "failures"}, kindSuccess, false},
		{"user all: delays too", Config{}, store.Record{From: "a@x", ReportPolicy: "all"}, kindDelay, true},
		{"NOTIFY beats the user's none", Config{}, store.Record{From: "a@x", ReportPolicy: "none", Notify: "SUCCESS"}, kindSuccess, true},
		{"NOTIFY=SUCCESS: no failure report", Config{}, store.Record{From: "a@x", Notify: "SUCCESS"}, kindFailure, false},
		{"NOTIFY=DELAY", Config{}, store.Record{From: "a@x", Notify: "FAILURE,DELAY"}, kindDelay, true},
		{"NOTIFY=NEVER", Config{ReportSuccess: true}, store.Record{From: "a@x", Notify: "NEVER", ReportPolicy: "all"}, kindFailure, false},
		{"null sender beats NOTIFY", Config{}, store.Record{Notify: "FAILURE"}, kindFailure, false},
		{"auto-submitted beats NOTIFY", Config{}, store.Record{From: "a@x", Notify: "FAILURE", NoReport: "Auto-Submitted: auto-replied"}, kindFailure, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := New(tc.cfg, nil, nil, nil, nil)
			if got, why := b.wants(&tc.rec, tc.kind); got != tc.want {
				t.Errorf("wants %s = %v (%s), want %v", tc.kind, got, why, tc.want)
			}
		})
	}
}

func TestReportStatusMapping(t *testing.T) {
	seg := func(state, stat, err string) []store.Segment {
		return []store.Segment{{State: state, Stat: stat, Err: err}}
	}
	tests := []struct {
		name   string
		rec    store.Record
		delay  bool
		action report.Action
		status string
		diag   string
	}{
		{"DELIVRD", store.Record{State: store.Delivered, Segments: seg(store.SegDelivered, "DELIVRD", "000")}, false, report.ActionDelivered, "2.0.0", "smpp; stat=DELIVRD err=000"},
		{"UNDELIV", store.Record{State: store.Failed, Segments: seg(store.SegFailed, "UNDELIV", "001")}, false, report.ActionFailed, "5.0.0", "smpp; stat=UNDELIV err=001"},
		{"REJECTD", store.Record{State: store.Failed, Segments: seg(store.SegFailed, "REJECTD", "011")}, false, report.ActionFailed, "5.7.1", "smpp; stat=REJECTD err=011"},
		{"EXPIRED receipt", store.Record{State: store.Failed, Segments: seg(store.SegFailed, "EXPIRED", "000")}, false, report.ActionFailed, "5.4.7", "smpp; stat=EXPIRED err=000"},
		{"submit refused", store.Record{State: store.Failed, FailStatus: submitStatus(0x0B), LastError: "smpp; submit_sm command_status=0x0000000B"}, false, report.ActionFailed, "5.1.1", "smpp; submit_sm command_status=0x0000000B"},
		{"cancelled is a failure", store.Record{State: store.Cancelled, LastError: "cancelled by operator"}, false, report.ActionFailed, "5.0.0", "cancelled by operator"},
		{"delayed waiting for a receipt", store.Record{State: store.Submitted, Segments: seg(store.SegSubmitted, "ENROUTE", "000"),
			Events: []store.Event{{What: "submitted"}, {What: "receipt"}}}, true, report.ActionDelayed, "4.4.7", "smpp; stat=ENROUTE err=000"},
		{"delayed by throttling", store.Record{State: store.Queued, LastError: "throttled",
			Events: []store.Event{{What: "accepted"}, {What: "throttled"}, {What: "report-failed"}}}, true, report.ActionDelayed, "4.4.5", "throttled"},
		{"delayed by a temporary submit error", store.Record{State: store.Queued, LastError: "timeout",
			Events: []store.Event{{What: "accepted"}, {What: "retry"}}}, true, report.ActionDelayed, "4.4.1", "timeout"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := outcome
			if tc.delay {
				f = delayOutcome
			}
			a, s, d := f(&tc.rec)
			if a != tc.action || s != tc.status || d != tc.diag {
				t.Errorf("got %s %s %q, want %s %s %q", a, s, d, tc.action, tc.status, tc.diag)
			}
		})
	}
}
