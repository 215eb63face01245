package bridge

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/smsbridge/smsbridge/report"
	"github.com/smsbridge/smsbridge/store"
)

// The RFC 3463 status of a report, by outcome. This table is the mapping
// the reports promise; README and tests refer to it.
//
//	outcome                                   Action     Status
//	receipt DELIVRD (every segment)           delivered  2.0.0
//	receipt UNDELIV, DELETED, UNKNOWN         failed     5.0.0 (err codes are SMSC-specific:
//	                                                           no finer code can be derived)
//	receipt REJECTD                           failed     5.7.1 delivery not authorised
//	receipt EXPIRED                           failed     5.4.7 delivery time expired
//	validity over before the SMSC took it     failed     5.4.7
//	submit_sm refused for good, command_status:          submitStatus below
//	too many failed attempts, cancelled       failed     5.0.0
//	not final after Config.DelayAfter         delayed    4.4.5 if the SMSC throttled last,
//	                                                     4.4.1 after a temporary submit error,
//	                                                     else 4.4.7 (waiting for a receipt)
//
// The Diagnostic-Code is "smpp; stat=UNDELIV err=001" from the receipt,
// "smpp; submit_sm command_status=0x0000000B" from the submit, or the
// last error.
const (
	statusDelivered = "2.0.0"
	statusExpired   = "5.4.7" // delivery time expired
	statusFailed    = "5.0.0"

	statusDelayed    = "4.4.7" // not delivered yet, still trying
	statusCongestion = "4.4.5" // the SMSC throttles or its queue is full
	statusNoAnswer   = "4.4.1" // the last submit failed temporarily
)

// receiptStatus maps a receipt's stat (SMPP v3.4 Appendix B) to RFC 3463.
var receiptStatus = map[string]string{
	"DELIVRD": statusDelivered,
	"EXPIRED": statusExpired,
	"REJECTD": "5.7.1", // delivery not authorised, message refused
	"UNDELIV": statusFailed,
	"DELETED": statusFailed,
	"UNKNOWN": statusFailed,
}

// submitStatus maps a permanent submit_sm_resp command_status (SMPP v3.4
// §5.1.3) to RFC 3463.
func submitStatus(cs uint32) string {
	switch cs {
	case 0x0B: // ESME_RINVDSTADR
		return "5.1.1" // bad destination mailbox address
	case 0x50, 0x51: // ESME_RINVDSTTON, ESME_RINVDSTNPI
		return "5.1.3" // bad destination mailbox address syntax
	case 0x0A, 0x48, 0x49: // ESME_RINVSRCADR, ESME_RINVSRCTON, ESME_RINVSRCNPI
		return "5.1.7" // bad sender's mailbox address syntax
	case 0x01: // ESME_RINVMSGLEN
		return "5.3.4" // message too big for system
	}
	return statusFailed
}

// reportBatch is how many records one pass of the report loop takes from
// each index.
const reportBatch = 100

// reportTimeout bounds one attempt to send a report.
const reportTimeout = 2 * time.Minute

// reportLoop sends the reports the store says are due: final records
// whose report is not done (with Config.GroupReports, several recipients
// of one mail that are due together share one report), delay reports
// being retried, and records
// that have waited longer than Config.DelayAfter. Every decision is
// written to the record, so a restart resumes where it stopped: a report
// that failed for a temporary reason is retried with backoff from
// ReportNextAttempt, and given up Config.ReportGiveUp after it was due.
func (b *Bridge) reportLoop(ctx context.Context) error {
	changed := b.st.Changed()
	w := &reporters{sem: make(chan struct{}, b.cfg.ReportWorkers), done: make(chan struct{}, 1)}
	defer w.wg.Wait()
	for ctx.Err() == nil {
		start := time.Now()
		next, started, ok := b.reportPass(ctx, b.cfg.Now(), w)
		d := idleWait
		if !next.IsZero() {
			// Not after now only when a listing was cut short by its
			// limit, and then the pass started what it listed: the
			// records in flight are skipped inside the listings.
			d = min(max(next.Sub(b.cfg.Now()), 0), idleWait)
		}
		if !ok {
			d = max(d, time.Second) // the store failed: do not spin
		}
		waitAny(ctx, changed, w.done, d)
		// Under load the store changes all the time: a pass at most
		// every minPass, or the loop would scan for a report or two
		// per pass, each scan holding off the store's writer.
		if started < reportBatch {
			wait(ctx, nil, minPass-time.Since(start))
		}
	}
	return nil
}

// minPass spaces out the report loop's passes; a report waits that much
// longer at most.
const minPass = 10 * time.Millisecond

// delayScan spaces out the scans for delay reports, which are due hours
// after a mail came (Config.DelayAfter).
const delayScan = time.Second

// reporters are the report loop's workers: Config.ReportWorkers reports
// go at a time, each waiting on a smarthost round trip and a commit, which
// others share meanwhile. The loop does not wait for a whole pass to end:
// it starts the next report as soon as a worker is free, and skips the
// records whose report is in flight (Bridge.reporting), so that none is
// taken twice.
type reporters struct {
	sem  chan struct{}
	done chan struct{} // a report ended
	wg   sync.WaitGroup
	// delayScanned is when the loop last looked for delay reports.
	delayScanned time.Time
}

// startReport runs fn on a worker for the records of group, once one is free;
// it returns false, having started nothing, when ctx ends first.
func (b *Bridge) startReport(ctx context.Context, w *reporters, group []*store.Record, fn func()) bool {
	select {
	case w.sem <- struct{}{}:
	case <-ctx.Done():
		return false
	}
	b.mu.Lock()
	for _, r := range group {
		b.reporting[r.ID] = true
	}
	b.mu.Unlock()
	w.wg.Go(func() {
		fn()
		b.mu.Lock()
		for _, r := range group {
			delete(b.reporting, r.ID)
		}
		b.mu.Unlock()
		<-w.sem
		select {
		case w.done <- struct{}{}:
		default:
		}
	})
	return true
}

// isReporting reports whether record id's report is being sent now.
func (b *Bridge) isReporting(id string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.reporting[id]
}

// reportPass starts the reports due at now that are not in flight, and
// returns when the next thing is due (zero: nothing known), how many it
// started, and false if the store failed.
func (b *Bridge) reportPass(ctx context.Context, now time.Time, w *reporters) (next time.Time, started int, ok bool) {
	earliest := func(t time.Time) {
		if !t.IsZero() && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	ok = true
	recs, due, err := b.st.ReportsDueExcept(now, reportBatch, b.isReporting)
	if err != nil {
		b.log.Error("report: reading due reports", "err", err)
		ok = false
	}
	earliest(due)
	groups := groupByMail(recs)
	if !b.cfg.GroupReports {
		groups = groups[:0]
		for _, r := range recs {
			groups = append(groups, []*store.Record{r})
		}
	}
	for _, g := range groups {
		run := func() { b.finalReport(ctx, g) }
		if !g[0].State.Final() {
			run = func() { b.delayReport(ctx, g[0]) }
		}
		if !b.startReport(ctx, w, g, run) {
			return next, started, ok
		}
		started++
	}
	if now.Sub(w.delayScanned) < delayScan && now.After(w.delayScanned) {
		earliest(w.delayScanned.Add(delayScan))
		return next, started, ok
	}
	w.delayScanned = now
	delayed, first, err := b.st.DelayDueExcept(now.Add(-b.cfg.DelayAfter), reportBatch, b.isReporting)
	if err != nil {
		b.log.Error("report: reading records waiting for a delay report", "err", err)
		ok = false
	}
	if !first.IsZero() {
		earliest(first.Add(b.cfg.DelayAfter))
	}
	for _, rec := range delayed {
		if !b.startReport(ctx, w, []*store.Record{rec}, func() { b.delayReport(ctx, rec) }) {
			return next, started, ok
		}
		started++
	}
	return next, started, ok
}

// groupByMail groups final records of one mail: the recipients of one SMTP
// transaction, which the store gave the same Created time, with the same
// sender and Message-ID. Other records are alone. Order is kept.
func groupByMail(recs []*store.Record) [][]*store.Record {
	var groups [][]*store.Record
	index := map[string]int{}
	for _, r := range recs {
		if !r.State.Final() {
			groups = append(groups, []*store.Record{r})
			continue
		}
		key := r.From + "\x00" + r.MessageID + "\x00" + r.Created.Format(time.RFC3339Nano)
		if i, ok := index[key]; ok {
			groups[i] = append(groups[i], r)
			continue
		}
		index[key] = len(groups)
		groups = append(groups, []*store.Record{r})
	}
	return groups
}

// errSkip: the record changed since it was listed; leave it.
var errSkip = errors.New("record changed")

// finalReport sends one report for the final records of one mail that
// want one, and marks every record of the group done (or due again later).
func (b *Bridge) finalReport(ctx context.Context, group []*store.Record) {
	var send []*store.Record
	for _, rec := range group {
		if ok, why := b.wants(rec, finalKind(rec)); !ok {
			b.cfg.Metrics.reports.WithLabelValues("skipped").Inc()
			b.markReported(rec.ID, "no report: "+why)
			continue
		}
		send = append(send, rec)
	}
	if len(send) == 0 {
		return
	}
	first := send[0]
	rep := b.finalReportFor(send)
	err := b.deliver(ctx, first.From, rep)
	switch {
	case err == nil:
		b.cfg.Metrics.reports.WithLabelValues("sent").Inc()
		what := "report sent to " + first.From
		if len(send) > 1 {
			what += fmt.Sprintf(" (one report for %d recipients)", len(send))
		}
		for _, rec := range send {
			b.markReported(rec.ID, what)
		}
	case report.IsPermanent(err):
		// Logged, never bounced: a report on a report would loop.
		b.cfg.Metrics.reports.WithLabelValues("refused").Inc()
		b.log.Warn("report refused", "id", first.ID, "to", first.From, "err", err)
		for _, rec := range send {
			b.markReported(rec.ID, "report refused: "+err.Error())
		}
	default:
		b.cfg.Metrics.reports.WithLabelValues("failed").Inc()
		// One delay for the group, so that it is due again together.
		d := b.backoff(first.ReportAttempts + 1)
		for _, rec := range send {
			b.reportFailed(rec, err, rec.FinalAt, d)
		}
	}
}

// deliver builds rep and sends it to rcpt. A report that the server cannot
// take as it is goes again as it can: without 8BITMIME, with the
// original's header only and its UTF-8 parts quoted-printable (RFC 6533
// §6); without SMTPUTF8, with the original's header only.
func (b *Bridge) deliver(ctx context.Context, rcpt string, rep report.Report) error {
	rcpt = report.Mailbox(rcpt) // a quoted local part gets its quotes back
	msg, err := report.Build(rep)
	if err != nil {
		return err // ErrInvalid: permanent
	}
	ctx, cancel := context.WithTimeout(ctx, reportTimeout)
	defer cancel()
	err = b.out.Send(ctx, rcpt, msg)
	no8bit := errors.Is(err, report.ErrNo8BitMIME)
	if (no8bit && !rep.SevenBit) || (rep.Original != nil && errors.Is(err, report.ErrNoSMTPUTF8)) {
		b.log.Info("report: the server cannot take it as it is, sending it 7-bit or with the original's header only", "to", rcpt, "err", err)
		rep.Original, rep.SevenBit = nil, rep.SevenBit || no8bit
		if msg, err = report.Build(rep); err != nil {
			return err
		}
		err = b.out.Send(ctx, rcpt, msg)
	}
	return err
}

// reportFailed records a temporary failure to send rec's pending report
// (final, or the delay report if rec is not final): the attempt as an
// event and the next attempt delay from now, or, once the report would
// have been due for longer than Config.ReportGiveUp, gives it up.
func (b *Bridge) reportFailed(rec *store.Record, cause error, dueSince time.Time, delay time.Duration) {
	now := b.cfg.Now()
	var attempts int
	var giveUp bool
	var next time.Time
	_, err := b.st.Update(rec.ID, func(r *store.Record) error {
		if pendingKind(r) != pendingKind(rec) {
			return errSkip
		}
		r.ReportAttempts++
		attempts = r.ReportAttempts
		next = now.Add(delay)
		giveUp = next.Sub(dueSince) > b.cfg.ReportGiveUp
		what := "report"
		if !r.State.Final() {
			what = "delay report"
		}
		if giveUp {
			r.ReportNextAttempt = time.Time{}
			detail := fmt.Sprintf("%s given up after %d attempts over %s: %v", what, r.ReportAttempts,
				now.Sub(dueSince).Round(time.Second), cause)
			if r.State.Final() {
				r.ReportDone = true
				r.Events = append(r.Events, store.Event{At: now, What: "reported", Detail: detail})
			} else {
				r.DelayDone = true
				r.Events = append(r.Events, store.Event{At: now, What: "delay-reported", Detail: detail})
			}
			return nil
		}
		r.ReportNextAttempt = next
		r.Events = append(r.Events, store.Event{At: now, What: "report-failed",
			Detail: fmt.Sprintf("%s attempt %d: %v; next attempt %s", what, r.ReportAttempts, cause, next.Format(time.RFC3339))})
		return nil
	})
	switch {
	case errors.Is(err, errSkip):
	case err != nil:
		b.log.Error("report: recording a failed attempt", "id", rec.ID, "err", err)
	case giveUp:
		b.cfg.Metrics.reports.WithLabelValues("given_up").Inc()
		b.log.Error("report given up", "id", rec.ID, "to", rec.From, "attempts", attempts, "err", cause)
	default:
		b.log.Warn("report failed, will retry", "id", rec.ID, "to", rec.From, "attempt", attempts, "err", cause, "next", next)
	}
}

// pendingKind is which report of r is pending: "final" or "delay".
func pendingKind(r *store.Record) string {
	switch {
	case r.State.Final() && !r.ReportDone:
		return "final"
	case !r.State.Final() && !r.DelayDone:
		return "delay"
	}
	return ""
}

// markReported ends the final report of record id: done, with an event.
func (b *Bridge) markReported(id, what string) {
	_, err := b.st.Update(id, func(r *store.Record) error {
		if r.ReportDone {
			return errSkip
		}
		r.ReportDone = true
		r.ReportNextAttempt = time.Time{}
		r.Events = append(r.Events, store.Event{At: b.cfg.Now(), What: "reported", Detail: what})
		return nil
	})
	switch {
	case errors.Is(err, errSkip):
	case err != nil:
		b.log.Error("report: marking record", "id", id, "err", err)
	default:
		b.log.Info("report done", "id", id, "detail", what)
	}
}

// delayReport sends the one delay report of a record that has waited
// longer than Config.DelayAfter, if it wants one, and marks it.
func (b *Bridge) delayReport(ctx context.Context, rec *store.Record) {
	// The listing may be stale by now (the loop waited for a worker): the
	// record may have become final, or had its delay report.
	rec, err := b.st.Get(rec.ID)
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			b.log.Error("report: reading a record for its delay report", "err", err)
		}
		return
	}
	if rec.State.Final() || rec.DelayDone {
		return
	}
	if ok, why := b.wants(rec, kindDelay); !ok {
		b.markDelay(rec.ID, "no delay report: "+why)
		return
	}
	err = b.deliver(ctx, rec.From, b.delayReportFor(rec))
	switch {
	case err == nil:
		b.cfg.Metrics.reports.WithLabelValues("sent").Inc()
		b.markDelay(rec.ID, "delay report sent to "+rec.From)
	case report.IsPermanent(err):
		b.cfg.Metrics.reports.WithLabelValues("refused").Inc()
		b.log.Warn("delay report refused", "id", rec.ID, "to", rec.From, "err", err)
		b.markDelay(rec.ID, "delay report refused: "+err.Error())
	default:
		b.cfg.Metrics.reports.WithLabelValues("failed").Inc()
		b.reportFailed(rec, err, rec.Created.Add(b.cfg.DelayAfter), b.backoff(rec.ReportAttempts+1))
	}
}

// markDelay ends the delay report of record id, with an event.
func (b *Bridge) markDelay(id, what string) {
	_, err := b.st.Update(id, func(r *store.Record) error {
		if r.DelayDone || r.State.Final() {
			return errSkip
		}
		r.DelayDone = true
		r.ReportAttempts, r.ReportNextAttempt = 0, time.Time{}
		r.Events = append(r.Events, store.Event{At: b.cfg.Now(), What: "delay-reported", Detail: what})
		return nil
	})
	switch {
	case errors.Is(err, errSkip):
	case err != nil:
		b.log.Error("report: marking delay report", "id", id, "err", err)
	default:
		b.log.Info("delay report done", "id", id, "detail", what)
	}
}

// baseReport is what every report on the mail of rec says.
func (b *Bridge) baseReport(rec *store.Record) report.Report {
	header, err := b.st.Header(rec)
	if err != nil {
		// The report still goes, without the original's header.
		b.log.Error("report: reading the original's header", "id", rec.ID, "err", err)
	}
	return report.Report{
		ReportingMTA:  b.cfg.ReportingMTA,
		From:          "Mail Delivery System <" + b.cfg.Postmaster + ">",
		To:            report.Mailbox(rec.From),
		EnvID:         rec.EnvID,
		Arrival:       rec.Created,
		Now:           b.cfg.Now(),
		OrigMessageID: rec.MessageID,
		OrigSubject:   rec.Subject,
		OrigHeader:    header,
	}
}

// finalReportFor is the report on the final records of one mail (at least
// one). The whole original goes with it only if some recipient failed and
// the sender asked RET=FULL (RFC 3461 §4.3: otherwise only the headers).
func (b *Bridge) finalReportFor(recs []*store.Record) report.Report {
	r := b.baseReport(recs[0])
	failed := false
	for i, rec := range recs {
		rc := recipientFor(rec)
		rc.Action, rc.Status, rc.Diagnostic = outcome(rec)
		failed = failed || rc.Action == report.ActionFailed
		if i == 0 {
			setFirst(&r, rc)
			continue
		}
		r.Also = append(r.Also, rc)
	}
	if failed {
		for _, rec := range recs {
			if rec.Ret != "FULL" {
				continue
			}
			orig, err := b.st.Original(rec)
			if err != nil {
				// The report still goes, with the header only.
				b.log.Error("report: reading the original", "id", rec.ID, "err", err)
			}
			if orig != nil {
				r.Original, r.OrigUTF8 = orig, rec.UTF8
				break
			}
		}
	}
	return r
}

// delayReportFor is the delay report of rec (headers only, RFC 3461 §4.3).
func (b *Bridge) delayReportFor(rec *store.Record) report.Report {
	r := b.baseReport(rec)
	rc := recipientFor(rec)
	rc.Action, rc.Status, rc.Diagnostic = delayOutcome(rec)
	rc.WillRetryUntil = rec.Created.Add(b.cfg.Validity)
	setFirst(&r, rc)
	return r
}

func recipientFor(rec *store.Record) report.Recipient {
	last := rec.Created
	for _, e := range rec.Events {
		if isAttemptEvent(e.What) {
			last = e.At
		}
	}
	return report.Recipient{
		OrigRcpt:    rec.ORcpt,
		FinalRcpt:   rec.Rcpt,
		Number:      rec.To,
		Text:        rec.Text,
		Segments:    len(rec.Segments),
		LastAttempt: last,
	}
}

// isAttemptEvent reports events about the SMS itself (not about reports),
// whose time is the Last-Attempt-Date.
func isAttemptEvent(what string) bool {
	return !strings.HasPrefix(what, "report") && !strings.HasPrefix(what, "delay-report")
}

func setFirst(r *report.Report, rc report.Recipient) {
	r.OrigRcpt, r.FinalRcpt, r.Number, r.Text, r.Segments = rc.OrigRcpt, rc.FinalRcpt, rc.Number, rc.Text, rc.Segments
	r.Action, r.Status, r.Diagnostic = rc.Action, rc.Status, rc.Diagnostic
	r.LastAttempt, r.WillRetryUntil = rc.LastAttempt, rc.WillRetryUntil
}

// outcome is the RFC 3464 action, status and diagnostic of a final record:
// that of its first failed segment, else of the failure without a failed
// receipt (refused or expired submit, too many attempts, cancelled), else
// delivered.
func outcome(rec *store.Record) (report.Action, string, string) {
	for _, s := range rec.Segments {
		if s.State == store.SegFailed {
			st, ok := receiptStatus[s.Stat]
			if !ok || st == statusDelivered {
				st = statusFailed
			}
			return report.ActionFailed, st, fmt.Sprintf("smpp; stat=%s err=%s", s.Stat, s.Err)
		}
	}
	if rec.State != store.Delivered {
		status := rec.FailStatus
		if status == "" {
			status = statusFailed
		}
		return report.ActionFailed, status, rec.LastError
	}
	stat, errc := "DELIVRD", "000"
	if n := len(rec.Segments); n > 0 && rec.Segments[n-1].Stat != "" {
		stat, errc = rec.Segments[n-1].Stat, rec.Segments[n-1].Err
	}
	return report.ActionDelivered, statusDelivered, fmt.Sprintf("smpp; stat=%s err=%s", stat, errc)
}

// delayOutcome is the status and diagnostic of a record not final yet, by
// the last thing that happened to it (see the table at the top).
func delayOutcome(rec *store.Record) (report.Action, string, string) {
	status := statusDelayed
	switch lastSubmitEvent(rec) {
	case "throttled":
		status = statusCongestion
	case "retry":
		status = statusNoAnswer
	}
	diag := rec.LastError
	for _, s := range rec.Segments {
		if s.Stat != "" && s.State == store.SegSubmitted {
			diag = fmt.Sprintf("smpp; stat=%s err=%s", s.Stat, s.Err)
			break
		}
	}
	if diag == "" && rec.State == store.Submitted {
		diag = "smpp; accepted by the SMSC, no receipt yet"
	}
	return report.ActionDelayed, status, diag
}

// lastSubmitEvent is the What of the last event about submitting rec.
func lastSubmitEvent(rec *store.Record) string {
	for i := len(rec.Events) - 1; i >= 0; i-- {
		switch w := rec.Events[i].What; w {
		case "throttled", "retry", "submitted", "receipt", "recovered", "accepted":
			return w
		}
	}
	return ""
}
