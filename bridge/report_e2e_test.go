package bridge

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/smsbridge/smsbridge/internal/smtpsink"
	"github.com/smsbridge/smsbridge/smppout/smsctest"
	"github.com/smsbridge/smsbridge/store"
)

// Numbers starting +141555502 are UNDELIV at the simulator; the others
// are delivered.
var failing = []smsctest.Outcome{{Prefix: "141555502", Stat: "UNDELIV", Err: "001"}}

// TestReportsEndToEnd sends, for every RET × ENVID, one mail whose
// recipients cover every NOTIFY (absent, NEVER, SUCCESS, FAILURE, both,
// DELAY) × outcome (delivered, failed) × ORCPT (given or not), through a
// real SMTP client, the front door, the simulator and the bridge, and
// checks every report the sink receives: exactly the recipients that asked
// (or the server's default: failures only), with their Action, Status,
// Original-Recipient, the mail's Original-Envelope-Id, and the original
// returned whole only for RET=FULL failures.
func TestReportsEndToEnd(t *testing.T) {
	g := startGateway(t, gatewayOpts{sc: smsctest.Config{Outcomes: failing}})
	notifies := []struct {
		name   string
		notify []smtp.DSNNotify
		succ   bool // a success report is wanted
		fail   bool // a failure report is wanted
	}{
		{"absent", nil, false, true}, // the server's default: failures only
		{"NEVER", []smtp.DSNNotify{smtp.DSNNotifyNever}, false, false},
		{"SUCCESS", []smtp.DSNNotify{smtp.DSNNotifySuccess}, true, false},
		{"FAILURE", []smtp.DSNNotify{smtp.DSNNotifyFailure}, false, true},
		{"SUCCESS,FAILURE", []smtp.DSNNotify{smtp.DSNNotifySuccess, smtp.DSNNotifyFailure}, true, true},
		{"DELAY", []smtp.DSNNotify{smtp.DSNNotifyDelayed}, false, false},
	}
	type expect struct {
		mail   int
		wanted bool
		failed bool
		orcpt  string
	}
	want := map[string]expect{} // by RCPT address
	type mailCase struct {
		ret   smtp.DSNReturn
		envID string
	}
	var mails []mailCase
	for _, ret := range []smtp.DSNReturn{"", smtp.DSNReturnHeaders, smtp.DSNReturnFull} {
		for _, env := range []string{"", "ENV-1"} {
			mails = append(mails, mailCase{ret, env})
		}
	}
	total := 0
	for m, mc := range mails {
		var rcpts []dsnRcpt
		n := 0
		for _, nc := range notifies {
			for _, failed := range []bool{false, true} {
				n++
				prefix := "+141555501"
				if failed {
					prefix = "+141555502"
				}
				addr := fmt.Sprintf("%s%02d@sms.test", prefix, n)
				opts := &smtp.RcptOptions{Notify: nc.notify}
				e := expect{mail: m, failed: failed, wanted: (failed && nc.fail) || (!failed && nc.succ)}
				if n%2 == 0 {
					opts.OriginalRecipientType, opts.OriginalRecipient = smtp.DSNAddressTypeRFC822, fmt.Sprintf("orig%d@corp.test", n)
					e.orcpt = "rfc822;" + opts.OriginalRecipient
				}
				rcpts = append(rcpts, dsnRcpt{addr, opts})
				want[fmt.Sprint(m, addr)] = e
			}
		}
		total += len(rcpts)
		body := fmt.Sprintf("From: s%d@corp.test\r\nSubject: combo %d\r\nMessage-ID: <combo-%d@corp.test>\r\n\r\nhello %d\r\n", m, m, m, m)
		g.mail(t, fmt.Sprintf("s%d@corp.test", m), &smtp.MailOptions{Return: mc.ret, EnvelopeID: mc.envID}, rcpts, body)
	}
	recs := g.settle(t, total)
	for _, r := range recs {
		if r.Original != nil || r.OriginalRef != "" {
			t.Errorf("%s: original kept after the report (%q)", r.Rcpt, r.OriginalRef)
		}
	}
	got := blocks(t, g.sink.Messages())
	for key, e := range want {
		var m int
		var addr string
		fmt.Sscan(strings.Replace(key, "+", " +", 1), &m, &addr)
		mc := mails[e.mail]
		var mine []reportBlock
		for _, b := range got[addr] {
			if b.envTo[0] == fmt.Sprintf("s%d@corp.test", m) {
				mine = append(mine, b)
			}
		}
		name := fmt.Sprintf("RET=%s ENVID=%q %s", mc.ret, mc.envID, addr)
		if !e.wanted {
			if len(mine) != 0 {
				t.Errorf("%s: %d reports, want none", name, len(mine))
			}
			continue
		}
		if len(mine) != 1 {
			t.Errorf("%s: %d reports, want 1", name, len(mine))
			continue
		}
		b := mine[0]
		action, status := "delivered", "2.0.0"
		if e.failed {
			action, status = "failed", "5.0.0"
		}
		if b.fields["Action"] != action || b.fields["Status"] != status || b.fields["Original-Recipient"] != e.orcpt {
			t.Errorf("%s: %v, want Action %s Status %s Original-Recipient %q", name, b.fields, action, status, e.orcpt)
		}
		if b.envID != mc.envID {
			t.Errorf("%s: Original-Envelope-Id %q, want %q", name, b.envID, mc.envID)
		}
		if b.envFrom != "" || b.header["Auto-Submitted"] != "auto-replied" ||
			b.header["In-Reply-To"] != fmt.Sprintf("<combo-%d@corp.test>", m) {
			t.Errorf("%s: envelope from %q, header %v", name, b.envFrom, b.header)
		}
		// RET=FULL returns the whole mail in a report that says failed
		// (RFC 3461 §4.3); a report on successes only gets the header.
		full := mc.ret == smtp.DSNReturnFull && strings.HasPrefix(b.header["Subject"], "Undeliverable")
		switch {
		case full && (b.thirdType != "message/rfc822" || !strings.Contains(b.third, fmt.Sprintf("hello %d", m))):
			t.Errorf("%s: third part %s %q, want the whole mail", name, b.thirdType, b.third)
		case !full && (b.thirdType != "text/rfc822-headers" || strings.Contains(b.third, "hello") ||
			!strings.Contains(b.third, fmt.Sprintf("<combo-%d@corp.test>", m))):
			t.Errorf("%s: third part %s %q, want the original's header", name, b.thirdType, b.third)
		}
	}
}

// TestNoReportLoops: no report, whatever NOTIFY asks, on a mail from <>,
// an Auto-Submitted mail or a report.
func TestNoReportLoops(t *testing.T) {
	g := startGateway(t, gatewayOpts{sc: smsctest.Config{Outcomes: failing}})
	fail := []dsnRcpt{{"+14155550291@sms.test", &smtp.RcptOptions{Notify: []smtp.DSNNotify{smtp.DSNNotifyFailure, smtp.DSNNotifySuccess}}}}
	full := &smtp.MailOptions{Return: smtp.DSNReturnFull}
	g.mail(t, "", full, fail, "From: a@corp.test\r\nSubject: from null\r\nMessage-ID: <l1@corp.test>\r\n\r\nhi\r\n")
	g.mail(t, "cron@corp.test", full, fail, "From: cron@corp.test\r\nSubject: auto\r\nAuto-Submitted: auto-generated\r\nMessage-ID: <l2@corp.test>\r\n\r\nhi\r\n")
	g.mail(t, "mailer@corp.test", full, fail, "From: mailer@corp.test\r\nSubject: a report\r\nMessage-ID: <l3@corp.test>\r\n"+
		"MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n"+
		"--b\r\nContent-Type: text/plain\r\n\r\nyour mail\r\n--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; x\r\n\r\nFinal-Recipient: rfc822; a@b\r\nAction: failed\r\nStatus: 5.0.0\r\n--b--\r\n")
	// A fourth, ordinary mail proves reports do go out.
	g.mail(t, "a@corp.test", full, fail, "From: a@corp.test\r\nSubject: ok\r\nMessage-ID: <l4@corp.test>\r\n\r\nhi\r\n")
	recs := g.settle(t, 4)
	if _, err := g.sink.Wait(waitCtx(t), 1); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	if msgs := g.sink.Messages(); len(msgs) != 1 || msgs[0].To[0] != "a@corp.test" {
		t.Fatalf("%d reports (%v), want only the one to a@corp.test", len(msgs), msgs)
	}
	for _, r := range recs[:3] {
		if r.State != store.Failed || !hasEvent(r, "reported", "no report: ") {
			t.Errorf("%s from %q: state %s, events %+v", r.ID, r.From, r.State, r.Events)
		}
	}
}

// TestReportToQuotedSender: a sender whose local part needed quotes gets
// its report at the same mailbox, quoted again in the envelope and in To
// (go-smtp hands us the local part unquoted).
func TestReportToQuotedSender(t *testing.T) {
	g := startGateway(t, gatewayOpts{sc: smsctest.Config{Outcomes: failing}})
	fail := []dsnRcpt{{"+14155550291@sms.test", &smtp.RcptOptions{Notify: []smtp.DSNNotify{smtp.DSNNotifyFailure}}}}
	g.mail(t, `"john doe"@corp.test`, nil, fail, "From: John <x@corp.test>\r\nSubject: q\r\nMessage-ID: <q1@corp.test>\r\n\r\nhi\r\n")
	g.settle(t, 1)
	msgs, err := g.sink.Wait(waitCtx(t), 1)
	if err != nil {
		t.Fatal(err)
	}
	if got := msgs[0].To; len(got) != 1 || got[0] != "john doe@corp.test" {
		t.Errorf("report to %q, want the mailbox john doe@corp.test", got)
	}
	if want := "\r\nTo: \"john doe\"@corp.test\r\n"; !strings.Contains(string(msgs[0].Data), want) {
		t.Errorf("report header lacks %q:\n%s", want, msgs[0].Data)
	}
}

// TestReportsOfOneMailShareOneReport: recipients of one mail that are
// final together get one report with a block each.
func TestReportsOfOneMailShareOneReport(t *testing.T) {
	var ids []string
	g := startGateway(t, gatewayOpts{cfg: Config{GroupReports: true}, setup: func(st *store.Store) {
		var recs []*store.Record
		for i := range 3 {
			recs = append(recs, &store.Record{From: "a@corp.test", Rcpt: fmt.Sprintf("+1415555019%d@sms.test", i),
				To: fmt.Sprintf("+1415555019%d", i), MessageID: "<g@corp.test>", Subject: "group", Text: "hi",
				Notify: "FAILURE", Segments: []store.Segment{{Payload: []byte("hi")}}})
		}
		if err := st.Add(context.Background(), recs); err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			ids = append(ids, r.ID)
			_, err := st.Update(r.ID, func(r *store.Record) error {
				r.State, r.FailStatus, r.LastError = store.Failed, "5.1.1", "smpp; submit_sm command_status=0x0000000B"
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		}
	}})
	g.settle(t, 3)
	msgs := g.sink.Messages()
	if len(msgs) != 1 {
		t.Fatalf("%d reports, want 1", len(msgs))
	}
	got := blocks(t, msgs)
	for i := range 3 {
		b := got[fmt.Sprintf("+1415555019%d@sms.test", i)]
		if len(b) != 1 || b[0].fields["Status"] != "5.1.1" {
			t.Errorf("recipient %d: %+v", i, b)
		}
	}
	r, _ := g.st.Get(ids[2])
	if !hasEvent(r, "reported", "one report for 3 recipients") {
		t.Errorf("events %+v", r.Events)
	}
}

// TestEveryReportOnce: more reports than one pass takes (reportBatch) and
// than there are workers go out while new passes start: each exactly
// once, though passes no longer wait for each other.
func TestEveryReportOnce(t *testing.T) {
	const n = 3*reportBatch + 7
	g := startGateway(t, gatewayOpts{cfg: Config{ReportWorkers: 3}, setup: func(st *store.Store) {
		for i := range n {
			rec := &store.Record{From: "a@corp.test", Rcpt: fmt.Sprintf("+1415555%04d@sms.test", i),
				To: fmt.Sprintf("+1415555%04d", i), MessageID: fmt.Sprintf("<%d@corp.test>", i), Text: "hi",
				Notify: "FAILURE", Segments: []store.Segment{{Payload: []byte("hi")}}}
			if err := st.Add(context.Background(), []*store.Record{rec}); err != nil {
				t.Fatal(err)
			}
			_, err := st.Update(rec.ID, func(r *store.Record) error {
				r.State, r.FailStatus, r.LastError = store.Failed, "5.1.1", "smpp; submit_sm command_status=0x0000000B"
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		}
	}})
	for _, r := range g.settle(t, n) {
		reported := 0
		for _, e := range r.Events {
			if e.What == "reported" {
				reported++
			}
		}
		if reported != 1 {
			t.Errorf("%s: reported %d times", r.ID, reported)
		}
	}
	if msgs := g.sink.Messages(); len(msgs) != n {
		t.Errorf("%d reports for %d records", len(msgs), n)
	}
}

// TestDelayReport: a record still waiting after DelayAfter gets one delay
// report if NOTIFY asks for DELAY, none by default.
func TestDelayReport(t *testing.T) {
	g := startGateway(t, gatewayOpts{
		cfg: Config{DelayAfter: 300 * time.Millisecond, Validity: 48 * time.Hour},
		sc:  smsctest.Config{Outcomes: []smsctest.Outcome{{Stat: "ENROUTE", Err: "000"}}},
	})
	body := "From: a@corp.test\r\nSubject: slow\r\nMessage-ID: <d1@corp.test>\r\n\r\nhi\r\n"
	g.mail(t, "a@corp.test", &smtp.MailOptions{EnvelopeID: "D-1"}, []dsnRcpt{
		{"+14155550101@sms.test", &smtp.RcptOptions{Notify: []smtp.DSNNotify{smtp.DSNNotifyDelayed, smtp.DSNNotifyFailure}}},
		{"+14155550102@sms.test", nil},
	}, body)
	recs, _ := g.st.List("", 0)
	if len(recs) != 2 {
		t.Fatalf("%d records", len(recs))
	}
	asked := g.waitRecord(t, recs[0].ID, "delay-reported", func(r *store.Record) bool { return r.DelayDone })
	quiet := g.waitRecord(t, recs[1].ID, "delay-decided", func(r *store.Record) bool { return r.DelayDone })
	if !hasEvent(asked, "delay-reported", "delay report sent") || !hasEvent(quiet, "delay-reported", "no delay report: delay reports are off") {
		t.Errorf("events:\n%+v\n%+v", asked.Events, quiet.Events)
	}
	time.Sleep(400 * time.Millisecond) // past DelayAfter again: still one
	msgs := g.sink.Messages()
	if len(msgs) != 1 {
		t.Fatalf("%d reports, want 1 delay report", len(msgs))
	}
	b := blocks(t, msgs)["+14155550101@sms.test"]
	if len(b) != 1 {
		t.Fatalf("blocks %+v", b)
	}
	wantUntil := asked.Created.Add(48 * time.Hour).Format("Mon, 02 Jan 2006 15:04:05 -0700")
	f := b[0].fields
	if f["Action"] != "delayed" || f["Status"] != "4.4.7" || f["Will-Retry-Until"] != wantUntil ||
		f["Diagnostic-Code"] != "X-SMPP; stat=ENROUTE err=000" || b[0].envID != "D-1" ||
		!strings.HasPrefix(b[0].header["Subject"], "Delayed: slow") || b[0].thirdType != "text/rfc822-headers" {
		t.Errorf("delay report %+v, want Will-Retry-Until %s", b[0], wantUntil)
	}
	if asked.State.Final() {
		t.Errorf("state %s", asked.State)
	}
}

// TestReportRetryAcrossRestart: the smarthost answers 451; the attempts
// are recorded in the store, the gateway restarts, and the report goes out
// once, when the smarthost accepts.
func TestReportRetryAcrossRestart(t *testing.T) {
	sink, err := smtpsink.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sink.Close() })
	sink.Reject(&smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try later"})
	o := gatewayOpts{sink: sink, sc: smsctest.Config{Outcomes: failing},
		cfg: Config{RetryMin: 50 * time.Millisecond, RetryMax: 100 * time.Millisecond}}
	g := startGateway(t, o)
	g.mail(t, "a@corp.test", nil, []dsnRcpt{{"+14155550291@sms.test", nil}},
		"From: a@corp.test\r\nSubject: r\r\nMessage-ID: <r1@corp.test>\r\n\r\nhi\r\n")
	recs, _ := g.st.List("", 0)
	id := recs[0].ID
	r := g.waitRecord(t, id, "retried twice", func(r *store.Record) bool { return r.ReportAttempts >= 2 })
	if r.ReportDone || r.ReportNextAttempt.IsZero() {
		t.Fatalf("after refusals: done %v next %v", r.ReportDone, r.ReportNextAttempt)
	}
	g.stop()

	sink.Reject(nil)
	o.path = g.path
	g2 := startGateway(t, o)
	r = g2.waitRecord(t, id, "reported", func(r *store.Record) bool { return r.ReportDone })
	if !hasEvent(r, "report-failed", "451") || !hasEvent(r, "reported", "report sent") {
		t.Errorf("events %+v", r.Events)
	}
	time.Sleep(100 * time.Millisecond)
	if n := len(sink.Messages()); n != 1 {
		t.Errorf("%d reports, want 1", n)
	}
}

// TestReportGivenUp: a report refused for longer than ReportGiveUp is
// given up, with an event.
func TestReportGivenUp(t *testing.T) {
	g := startGateway(t, gatewayOpts{sc: smsctest.Config{Outcomes: failing},
		cfg: Config{ReportGiveUp: 200 * time.Millisecond}})
	g.sink.Reject(&smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try later"})
	g.mail(t, "a@corp.test", nil, []dsnRcpt{{"+14155550291@sms.test", nil}},
		"From: a@corp.test\r\nSubject: r\r\nMessage-ID: <r2@corp.test>\r\n\r\nhi\r\n")
	r := g.settle(t, 1)[0]
	if !hasEvent(r, "reported", "given up after") || r.ReportAttempts < 1 {
		t.Errorf("attempts %d events %+v", r.ReportAttempts, r.Events)
	}
}
