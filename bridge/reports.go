package bridge

import (
	"context"
	"fmt"
	"time"

	"github.com/smsbridge/smsbridge/report"
	"github.com/smsbridge/smsbridge/store"
)

// RFC 3463 status codes for final outcomes.
const (
	statusDelivered = "2.0.0"
	statusExpired   = "5.4.7" // delivery time expired
	statusFailed    = "5.0.0"
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

// submitStatus maps a permanent submit_sm_resp command_status to RFC 3463.
func submitStatus(cs uint32) string {
	switch cs {
	case 0x0B: // ESME_RINVDSTADR
		return "5.1.1"
	case 0x0A: // ESME_RINVSRCADR
		return "5.1.7"
	}
	return statusFailed
}

// reportBatch is how many final records one pass of the report loop takes.
const reportBatch = 100

func (b *Bridge) reportLoop(ctx context.Context) error {
	changed := b.st.Changed()
	for ctx.Err() == nil {
		recs, err := b.st.Reportable(reportBatch)
		if err != nil {
			b.log.Error("report: reading final records", "err", err)
		}
		next := idleWait
		for _, rec := range recs {
			if ctx.Err() != nil {
				break
			}
			now := b.cfg.Now()
			if at, ok := b.retryAt(rec.ID); ok && now.Before(at) {
				next = min(next, at.Sub(now))
				continue
			}
			if d := b.report(ctx, rec); d > 0 {
				next = min(next, d)
			}
		}
		wait(ctx, changed, next)
	}
	return nil
}

func (b *Bridge) retryAt(id string) (time.Time, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	at, ok := b.reportAt[id]
	return at, ok
}

// report sends the report a final record calls for, if any, and marks the
// record so it is not reported twice. After a temporary failure it returns
// the delay until the next attempt.
func (b *Bridge) report(ctx context.Context, rec *store.Record) time.Duration {
	switch {
	case rec.From == "":
		// RFC 3464 §2 / RFC 5321 §4.5.5: never report on a mail from <>,
		// or reports could loop.
		b.cfg.Metrics.reports.WithLabelValues("skipped").Inc()
		b.markReported(rec.ID, "no report: null sender")
		return 0
	case rec.State == store.Delivered && !b.cfg.ReportSuccess:
		b.cfg.Metrics.reports.WithLabelValues("skipped").Inc()
		b.markReported(rec.ID, "no report: success reports are off")
		return 0
	}
	msg, err := report.Build(b.reportFor(rec))
	if err != nil {
		b.log.Error("report: building", "id", rec.ID, "err", err)
		b.markReported(rec.ID, "no report: "+err.Error())
		return 0
	}
	err = b.out.Send(ctx, rec.From, msg)
	switch {
	case err == nil:
		b.cfg.Metrics.reports.WithLabelValues("sent").Inc()
		b.markReported(rec.ID, "report sent to "+rec.From)
	case report.IsPermanent(err):
		b.cfg.Metrics.reports.WithLabelValues("refused").Inc()
		b.log.Warn("report refused", "id", rec.ID, "to", rec.From, "err", err)
		b.markReported(rec.ID, "report refused: "+err.Error())
	default:
		b.cfg.Metrics.reports.WithLabelValues("failed").Inc()
		d := b.backoff(b.bumpReportTries(rec.ID))
		b.log.Warn("report failed, will retry", "id", rec.ID, "to", rec.From, "err", err, "in", d)
		b.mu.Lock()
		b.reportAt[rec.ID] = b.cfg.Now().Add(d)
		b.mu.Unlock()
		return d
	}
	return 0
}

func (b *Bridge) bumpReportTries(id string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.reportTries[id]++
	return b.reportTries[id]
}

func (b *Bridge) markReported(id, what string) {
	_, err := b.st.Update(id, func(r *store.Record) error {
		r.ReportDone = true
		r.Events = append(r.Events, store.Event{At: b.cfg.Now(), What: "reported", Detail: what})
		return nil
	})
	b.mu.Lock()
	delete(b.reportAt, id)
	delete(b.reportTries, id)
	b.mu.Unlock()
	if err != nil {
		b.log.Error("report: marking record", "id", id, "err", err)
		return
	}
	b.log.Info("report done", "id", id, "detail", what)
}

func (b *Bridge) reportFor(rec *store.Record) report.Report {
	action, status, diag := outcome(rec)
	last := rec.Created
	if n := len(rec.Events); n > 0 {
		last = rec.Events[n-1].At
	}
	return report.Report{
		ReportingMTA:  b.cfg.ReportingMTA,
		From:          "Mail Delivery System <" + b.cfg.Postmaster + ">",
		To:            rec.From,
		Arrival:       rec.Created,
		Now:           b.cfg.Now(),
		OrigMessageID: rec.MessageID,
		OrigSubject:   rec.Subject,
		OrigHeader:    rec.Header,
		FinalRcpt:     rec.Rcpt,
		Number:        rec.To,
		Text:          rec.Text,
		Segments:      len(rec.Segments),
		Action:        action,
		Status:        status,
		Diagnostic:    diag,
		LastAttempt:   last,
	}
}

// outcome is the RFC 3464 action, status and diagnostic of a final record:
// that of its first failed segment, else of the submit failure, else
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
	if rec.State == store.Failed || rec.State == store.Expired {
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
