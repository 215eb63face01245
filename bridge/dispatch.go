package bridge

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/smsbridge/smsbridge/convert"
	"github.com/smsbridge/smsbridge/smppout"
	"github.com/smsbridge/smsbridge/store"
)

// boundPoll is how often a dispatcher without a bound SMSC looks again.
// Records stay queued meanwhile: taking them only to fail them with
// "not bound" would burn their attempts.
const boundPoll = 100 * time.Millisecond

// idleWait bounds a sleep when the store says nothing is due later.
const idleWait = time.Minute

func (b *Bridge) dispatchLoop(ctx context.Context) error {
	// The due queue's changes only: a record become final is the report
	// loop's business, and would only cost a scan here.
	changed := b.st.DueChanged()
	done := make(chan struct{}, 1)
	sem := make(chan struct{}, b.cfg.Workers)
	var wg sync.WaitGroup
	defer wg.Wait()
	// In-flight submits run on a context that outlives ctx: the SMPP client
	// drains its window on shutdown, and an id the SMSC gave us must be
	// written down, or the segment would be sent twice after a restart.
	subCtx := context.WithoutCancel(ctx)
	var lastOverdue time.Time
	unbound := newUnboundWait()
	for ctx.Err() == nil {
		if ids := unbound.bindsSince(b.routeList(), b.cfg.Now()); len(ids) > 0 {
			wg.Go(func() { b.wake(ids) })
		}
		if !b.anyBound() {
			if now := b.cfg.Now(); now.Sub(lastOverdue) >= overduePoll {
				b.endOverdue(now)
				lastOverdue = now
			}
			wait(ctx, nil, boundPoll)
			continue
		}
		now := b.cfg.Now()
		recs, next, err := b.st.DueExcept(now, dueBatch, b.inFlight)
		if err != nil {
			b.log.Error("dispatch: reading due records", "err", err)
			wait(ctx, nil, time.Second)
			continue
		}
		started := 0
		busy := map[string]bool{} // destinations skipped in this pass
		var resume time.Time      // when a resting route serves a skipped record again
		for _, rec := range recs {
			if rec.State == store.Submitted {
				b.receiptsOverdue(rec)
				continue
			}
			// Once a destination was skipped, its later records wait for
			// the next pass, even if the submit in flight ends meanwhile.
			if busy[rec.To] || !b.claim(rec) {
				busy[rec.To] = true
				continue
			}
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				b.release(rec)
				return nil
			}
			// Picked after a worker is free: a route may have started
			// resting while we waited.
			rt, at := b.pick(rec.To)
			if rt == nil {
				<-sem
				b.release(rec)
				if b.cfg.Now().Sub(rec.Created) > b.cfg.Validity {
					// No route took it in time (none serves the number, or
					// all were down): it ends here, and is reported.
					b.fail(rec.ID, store.Expired, statusExpired, "smpp; no route could take the message within its validity period")
					continue
				}
				// Out of the head of the queue until a route may take it,
				// or it would hide every record behind it.
				if next, ok := b.postpone(rec, at); ok && at.IsZero() && len(b.routesFor(rec.To)) > 0 {
					unbound.add(rec.ID, next) // a route serves it, none is bound
				}
				busy[rec.To] = true
				if !at.IsZero() && (resume.IsZero() || at.Before(resume)) {
					resume = at
				}
				continue
			}
			started++
			wg.Add(1)
			go func() {
				defer wg.Done()
				b.submitFresh(subCtx, rec, rt)
				b.release(rec)
				<-sem
				select {
				case done <- struct{}{}:
				default:
				}
			}()
		}
		d := idleWait
		if !next.IsZero() && (started > 0 || len(recs) == 0) {
			// When every due record was skipped (its destination busy),
			// only a finishing worker can change that: do not spin.
			d = max(next.Sub(now), 0)
		}
		if !resume.IsZero() {
			d = min(d, max(resume.Sub(b.cfg.Now()), 0))
		}
		if (started == 0 && len(recs) > 0) || unbound.waiting() {
			// Records wait for a route to bind: look again soon.
			d = min(d, boundPoll)
		}
		waitAny(ctx, changed, done, d)
	}
	return nil
}

// endOverdue, while no route is bound, still ends what needs no SMSC:
// submitted records whose receipts are overdue, and queued ones past their
// validity. A long outage ends them on time, with their reports, instead
// of when a bind comes back.
func (b *Bridge) endOverdue(now time.Time) {
	recs, _, err := b.st.DueExcept(now, dueBatch, b.inFlight)
	if err != nil {
		b.log.Error("dispatch: reading due records", "err", err)
		return
	}
	for _, rec := range recs {
		switch {
		case rec.State == store.Submitted:
			b.receiptsOverdue(rec)
		case now.Sub(rec.Created) > b.cfg.Validity && b.claim(rec):
			b.fail(rec.ID, store.Expired, statusExpired, "smpp; no SMSC connection within the message's validity period")
			b.release(rec)
		}
	}
}

// overduePoll is how often endOverdue looks while no route is bound.
const overduePoll = time.Second

// dueBatch is how many due records one pass looks at. Records whose
// destination has a submit in flight are skipped, so a burst to one number
// larger than this delays other numbers until it drains.
const dueBatch = 256

func waitAny(ctx context.Context, a, b <-chan struct{}, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-a:
	case <-b:
	case <-t.C:
	}
}

// claim takes rec for a worker unless it, or another record to the same
// number, is in flight: one submit at a time per destination keeps the
// order of its messages, as the due queue gives them oldest first.
func (b *Bridge) claim(rec *store.Record) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.inflight[rec.ID] || b.inflightTo[rec.To] {
		return false
	}
	b.inflight[rec.ID], b.inflightTo[rec.To] = true, true
	return true
}

// inFlight reports whether record id is claimed by a worker.
func (b *Bridge) inFlight(id string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.inflight[id]
}

func (b *Bridge) release(rec *store.Record) {
	b.mu.Lock()
	delete(b.inflight, rec.ID)
	delete(b.inflightTo, rec.To)
	b.mu.Unlock()
}

// errNotDue: the record changed since Due listed it.
var errNotDue = errors.New("record no longer due")

// submitFresh moves rec to Submitting, as the store has it now (the copy
// from Due may be stale), and submits it. A crash from here on leaves it in
// Submitting, which Recover puts back in the queue at start-up.
func (b *Bridge) submitFresh(ctx context.Context, rec *store.Record, rt *route) {
	now := b.cfg.Now()
	fresh, err := b.st.Update(rec.ID, func(r *store.Record) error {
		if r.State != store.Queued || r.NextAttempt.After(now) {
			return errNotDue
		}
		r.State = store.Submitting
		r.Events = append(r.Events, store.Event{At: now, What: "submitting",
			Detail: fmt.Sprintf("attempt %d", r.Attempts+1)})
		reencode(r, rt, now)
		return nil
	})
	switch {
	case errors.Is(err, errNotDue):
		return
	case err != nil:
		b.log.Error("dispatch: taking record", "id", rec.ID, "err", err)
		return
	}
	b.submit(ctx, fresh, rt)
}

// submit sends the segments of rec that the SMSC has not accepted yet, in
// order, recording each id as soon as it arrives.
func (b *Bridge) submit(ctx context.Context, rec *store.Record, rt *route) {
	if b.cfg.Now().Sub(rec.Created) > b.cfg.Validity {
		b.fail(rec.ID, store.Expired, statusExpired, "smpp; validity period passed before the SMSC accepted the message; last error: "+rec.LastError)
		return
	}
	// A late submit_sm_resp can only come for an earlier attempt, so a
	// record on its first attempt need not be read again per segment.
	mayBeLate := inDoubt(rec)
	settled := false
	for i, seg := range rec.Segments {
		if seg.SMSCID != "" || (mayBeLate && b.gotLate(rec.ID, i)) {
			continue
		}
		start := time.Now()
		id, err := rt.SMSC.Submit(ctx, b.submitSM(rec, i, rt))
		if err == nil && id == "" {
			// SMPP v3.4 §4.4.2 makes message_id mandatory; without one no
			// receipt can match. The SMSC has the segment: record it under
			// a unique placeholder, and the receipt deadline ends it.
			b.log.Warn("submit_sm_resp without a message_id", "id", rec.ID, "route", rt.Name, "seg", i+1)
			id = fmt.Sprintf("no-id-%s-%d", rec.ID, i+1)
		}
		b.cfg.Metrics.submitLatency.Observe(time.Since(start).Seconds())
		if err != nil {
			b.submitFailed(rec, i, err, rt)
			return
		}
		rt.healthy()
		id = smscKey(rt.IDScope(), id)
		b.cfg.Metrics.segments.Inc()
		b.log.Info("segment submitted", "id", rec.ID, "msgid", rec.MessageID, "route", rt.Name, "to", rec.To, "seg", i+1, "segments",
			len(rec.Segments), "smsc_id", id, "took", time.Since(start))
		state, err := b.recordSMSCID(rec.ID, i, id)
		if err != nil {
			// The SMSC has the segment but we could not write it down: it
			// will be sent again on the next attempt (at least once).
			b.log.Error("recording smsc id", "id", rec.ID, "seg", i+1, "smsc_id", id, "err", err)
			return
		}
		settled = state != store.Submitting && state != store.Queued
	}
	// Every segment has an id (some from late responses written while we
	// were at it): the record waits for its receipts. Usually the last id
	// written moved it there already.
	if !settled {
		b.settle(rec.ID)
	}
}

// gotLate reports whether segment i of record id got its SMSC id from a
// late response since this worker read the record: it is not sent again.
func (b *Bridge) gotLate(id string, i int) bool {
	r, err := b.st.Get(id)
	return err == nil && i < len(r.Segments) && r.Segments[i].SMSCID != ""
}

// settle moves a record whose segments all have an SMSC id to Submitted.
func (b *Bridge) settle(id string) {
	_, err := b.st.Update(id, func(r *store.Record) error {
		if !b.markSubmitted(r) {
			return errNotDue
		}
		return nil
	})
	if err != nil && !errors.Is(err, errNotDue) {
		b.log.Error("settling a submitted record", "id", id, "err", err)
	}
}

// markSubmitted moves r to Submitted when every segment has an SMSC id and
// it is not there yet, counting the attempt and setting the receipt
// deadline; it reports whether it did.
func (b *Bridge) markSubmitted(r *store.Record) bool {
	if (r.State != store.Submitting && r.State != store.Queued) || !allSubmitted(r) {
		return false
	}
	r.State = store.Submitted
	r.Attempts++
	r.LastError = ""
	// The SMSC keeps trying for the validity period we sent; a receipt
	// later than that, with some slack, is not coming.
	r.ReceiptsBy = b.cfg.Now().Add(b.cfg.Validity + b.cfg.ReceiptGrace)
	return true
}

func (b *Bridge) submitSM(rec *store.Record, i int, rt *route) smppout.Submit {
	seg := rec.Segments[i]
	source := b.cfg.SourceAddr
	if rt.Source != "" {
		source = rt.Source
	}
	if rec.Source != "" {
		source = rec.Source // the sender's own id (per user)
	}
	s := smppout.Submit{
		Source:             source,
		Dest:               rec.To,
		DataCoding:         rec.DataCoding,
		ShortMessage:       seg.Payload,
		RegisteredDelivery: 1, // a receipt for the final outcome, success or failure
		Tag:                lateTag{rec.ID, i},
		// What is left of our validity period, so the SMSC gives up when
		// we would: a report then tells the truth.
		Validity: max(b.cfg.Validity-b.cfg.Now().Sub(rec.Created), time.Minute),
	}
	concat := convert.Concat(rec.Concat)
	switch {
	case concat == convert.ConcatSAR && len(rec.Segments) > 1:
		s.SAR = &smppout.SAR{Ref: rec.Ref, Total: uint8(len(rec.Segments)), Seq: uint8(i + 1)}
	case concat == convert.ConcatPayload:
		s.Payload = true
	}
	h := convert.Header{Concat: concat, Ref: rec.Ref, Total: len(rec.Segments), Seq: i + 1,
		LockingShift: rec.LockingShift, SingleShift: rec.SingleShift}
	udh := h.UDH()
	if udh != nil {
		// SMPP v3.4 §5.2.12: esm_class bit 6 (UDHI) says short_message
		// starts with a user data header.
		s.ESMClass = 0x40
		s.ShortMessage = append(udh, seg.Payload...)
	}
	if rt.GSMPacked && rec.DataCoding == convert.GSM7.DataCoding() {
		s.ShortMessage = convert.PackSeptets(udh, seg.Payload)
	}
	return s
}

// recordSMSCID writes the SMSC id of segment i of record id, and returns
// the record's state after it.
func (b *Bridge) recordSMSCID(id string, i int, smscID string) (store.State, error) {
	written := false // this call wrote the id (a parked receipt may follow it)
	rec, err := b.st.Update(id, func(r *store.Record) error {
		written = false
		if i >= len(r.Segments) {
			return fmt.Errorf("segment %d of %d", i+1, len(r.Segments))
		}
		if prev := r.Segments[i].SMSCID; prev != "" && prev != smscID {
			// A late response wrote the first copy's id; keep it (its
			// receipt is as good) and say a second copy went out.
			r.Events = append(r.Events, store.Event{At: b.cfg.Now(), What: "duplicate",
				Detail: fmt.Sprintf("seg %d/%d sent twice: kept %s, also %s", i+1, len(r.Segments), prev, smscID)})
			return nil
		}
		r.Segments[i].SMSCID = smscID
		if r.Segments[i].State == store.SegPending {
			r.Segments[i].State = store.SegSubmitted
		}
		r.Events = append(r.Events, store.Event{At: b.cfg.Now(), What: "submitted",
			Detail: fmt.Sprintf("seg %d/%d smsc_id=%s", i+1, len(r.Segments), smscID)})
		b.markSubmitted(r)
		written = r.Segments[i].Stat == ""
		return nil
	})
	if err != nil {
		return "", err
	}
	if written {
		b.logParkedReceipt(rec, i)
	}
	if rec.State.Final() {
		b.logFinal(rec)
	}
	return rec.State, nil
}

// logParkedReceipt logs, with the record id, a receipt that came before
// segment i's submit_sm_resp and was applied when its id was written (the
// store does that in the same transaction): segment i has a receipt now.
func (b *Bridge) logParkedReceipt(rec *store.Record, i int) {
	if i >= len(rec.Segments) {
		return
	}
	seg := rec.Segments[i]
	if seg.Stat == "" {
		return
	}
	b.log.Info("receipt", "id", rec.ID, "smsc_id", seg.SMSCID, "stat", seg.Stat, "err", seg.Err,
		"state", rec.State, "parked", true)
}

func allSubmitted(r *store.Record) bool {
	for _, s := range r.Segments {
		if s.SMSCID == "" {
			return false
		}
	}
	return true
}

// submitFailed classifies a submit error: permanent ones fail the record,
// anything else (not bound, timeout, throttling, a dropped session) retries
// with backoff until the validity period ends.
func (b *Bridge) submitFailed(rec *store.Record, i int, err error, rt *route) {
	var se *smppout.StatusError
	isStatus := errors.As(err, &se)
	switch {
	case isStatus && !se.Temporary():
		b.cfg.Metrics.submitErrors.WithLabelValues("permanent").Inc()
		b.failAttempt(rec.ID, store.Failed, submitStatus(se.Status), fmt.Sprintf("smpp; submit_sm command_status=0x%08X", se.Status))
		return
	case errors.Is(err, smppout.ErrInvalidSubmit):
		// The PDU cannot be built (a bad address or sender id): no retry
		// can change that.
		b.cfg.Metrics.submitErrors.WithLabelValues("permanent").Inc()
		b.fail(rec.ID, store.Failed, "5.1.3", "smpp; "+err.Error())
		return
	case isStatus && throttling[se.Status]:
		// About the route, not the message: the route rests, the record
		// goes back to the queue without losing an attempt, and another
		// route serving the number takes it now if there is one.
		b.cfg.Metrics.submitErrors.WithLabelValues("throttled").Inc()
		b.cfg.Metrics.throttles.Inc()
		until := rt.pause(b.cfg.Now(), b.cfg.ThrottleMin, b.cfg.ThrottleMax)
		b.requeue(rec, i, err, rt.Name, until)
		return
	case errors.Is(err, smppout.ErrNotBound):
		// The bind dropped between pick and submit: no attempt lost, and
		// no rest either; pick skips the route until it is bound again,
		// and traffic comes back the moment it is.
		b.requeue(rec, i, err, rt.Name, b.cfg.Now())
		return
	}
	b.cfg.Metrics.submitErrors.WithLabelValues("temporary").Inc()
	now := b.cfg.Now()
	var expired, exhausted bool
	_, uerr := b.st.Update(rec.ID, func(r *store.Record) error {
		if b.markSubmitted(r) {
			return nil // a late response gave the missing id meanwhile
		}
		r.Attempts++
		r.LastError = err.Error()
		r.NextAttempt = now.Add(b.backoff(r.Attempts))
		expired = r.NextAttempt.Sub(r.Created) > b.cfg.Validity
		exhausted = r.Attempts >= b.cfg.MaxAttempts
		if expired || exhausted {
			return nil // fail below, in one place
		}
		if r.State == store.Submitting {
			r.State = store.Queued
		}
		r.Events = append(r.Events, store.Event{At: now, What: "retry",
			Detail: fmt.Sprintf("seg %d/%d: %v; next attempt %s", i+1, len(r.Segments), err, r.NextAttempt.Format(time.RFC3339))})
		return nil
	})
	if uerr != nil {
		b.log.Error("recording retry", "id", rec.ID, "err", uerr)
		return
	}
	switch {
	case expired:
		b.fail(rec.ID, store.Expired, statusExpired, "smpp; validity period ends before the next attempt; last error: "+err.Error())
		return
	case exhausted:
		b.fail(rec.ID, store.Failed, statusFailed, fmt.Sprintf("smpp; %d attempts failed; last error: %v", b.cfg.MaxAttempts, err))
		return
	}
	b.log.Warn("submit failed, will retry", "id", rec.ID, "to", rec.To, "seg", i+1, "err", err)
}

// throttling are the command_status values that say the SMSC is over its
// rate or its queue is full (§5.1.3): the route pauses, and the record waits
// for it without losing an attempt.
var throttling = map[uint32]bool{
	0x58: true, // ESME_RTHROTTLED
	0x14: true, // ESME_RMSGQFUL
}

// requeue puts rec back in the queue, due now, without counting an attempt:
// the dispatcher picks a route that is not resting, or waits for one.
func (b *Bridge) requeue(rec *store.Record, i int, cause error, routeName string, until time.Time) {
	at := b.cfg.Now()
	_, err := b.st.Update(rec.ID, func(r *store.Record) error {
		if b.markSubmitted(r) {
			return nil // a late response gave the missing id meanwhile
		}
		if r.State == store.Submitting {
			r.State = store.Queued
		}
		r.NextAttempt = at
		r.LastError = cause.Error()
		r.Events = append(r.Events, store.Event{At: b.cfg.Now(), What: "throttled",
			Detail: fmt.Sprintf("seg %d/%d: %v; route %s unavailable until %s", i+1, len(r.Segments), cause, routeName, until.Format(time.RFC3339Nano))})
		return nil
	})
	if err != nil {
		b.log.Error("recording throttle", "id", rec.ID, "err", err)
		return
	}
	b.log.Warn("route rests after a route-level error", "id", rec.ID, "route", routeName, "until", until, "err", cause)
}

// fail ends, as Failed or Expired, a record that the SMSC never fully
// accepted.
func (b *Bridge) fail(id string, state store.State, status, diag string) {
	b.end(id, state, status, diag, false)
}

// failAttempt is fail for a record whose submit the SMSC refused for good:
// that was an attempt, and it counts.
func (b *Bridge) failAttempt(id string, state store.State, status, diag string) {
	b.end(id, state, status, diag, true)
}

func (b *Bridge) end(id string, state store.State, status, diag string, attempted bool) {
	rec, err := b.st.Update(id, func(r *store.Record) error {
		if r.State.Final() {
			return nil
		}
		if attempted {
			r.Attempts++
		}
		r.State = state
		r.FailStatus = status
		r.LastError = diag
		r.Events = append(r.Events, store.Event{At: b.cfg.Now(), What: string(state), Detail: r.LastError})
		return nil
	})
	if err != nil {
		b.log.Error("recording failure", "id", id, "err", err)
		return
	}
	b.logFinal(rec)
}

func (b *Bridge) logFinal(rec *store.Record) {
	b.cfg.Metrics.final.WithLabelValues(string(rec.State)).Inc()
	b.log.Info("record "+string(rec.State), "id", rec.ID, "to", rec.To, "state", rec.State,
		"attempts", rec.Attempts, "err", rec.LastError)
}

// HandleReceipt applies a delivery receipt; it is the smppout.Handler. An
// error makes the SMSC send the receipt again later.
func (b *Bridge) HandleReceipt(_ context.Context, r smppout.Receipt) error {
	rec, matched, err := b.st.ApplyReceipt(store.Receipt{
		SMSCID: r.MessageID, Stat: r.Stat, Err: r.Err, At: b.cfg.Now(),
	})
	if err != nil {
		b.log.Error("applying receipt", "smsc_id", r.MessageID, "stat", r.Stat, "err", err)
		return err
	}
	b.cfg.Metrics.receipts.WithLabelValues(r.Stat, fmt.Sprint(matched)).Inc()
	if !matched {
		b.log.Info("receipt parked: smsc id not known yet", "smsc_id", r.MessageID, "stat", r.Stat)
		return nil
	}
	b.log.Info("receipt", "id", rec.ID, "smsc_id", r.MessageID, "stat", r.Stat, "err", r.Err, "state", rec.State)
	if rec.State.Final() {
		b.logFinal(rec)
	}
	return nil
}

// receiptsOverdue ends a submitted record whose receipts did not come by
// its deadline: the SMSC sent none, or they were lost. It is reported as
// expired, saying the SMS may have been delivered.
func (b *Bridge) receiptsOverdue(rec *store.Record) {
	now := b.cfg.Now()
	got, err := b.st.Update(rec.ID, func(r *store.Record) error {
		if r.State != store.Submitted || r.ReceiptsBy.After(now) {
			return errNotDue // a receipt came meanwhile
		}
		r.State = store.Expired
		r.FailStatus = statusExpired
		r.LastError = "smpp; no delivery receipt by " + r.ReceiptsBy.Format(time.RFC3339) +
			": the SMS may have been delivered"
		r.Events = append(r.Events, store.Event{At: now, What: "expired", Detail: r.LastError})
		return nil
	})
	switch {
	case errors.Is(err, errNotDue):
	case err != nil:
		b.log.Error("ending a record without receipts", "id", rec.ID, "err", err)
	default:
		b.logFinal(got)
	}
}

// postpone moves a record no route can take now out of the head of the
// queue, without counting an attempt: until the resting route that serves
// it resumes, or RetryMin when none is bound (the dispatcher wakes it
// earlier when a route binds; see unboundWait). It returns the record's
// new NextAttempt, and whether it was set.
func (b *Bridge) postpone(rec *store.Record, resume time.Time) (time.Time, bool) {
	now := b.cfg.Now()
	at := resume
	if at.IsZero() || at.Before(now) {
		at = now.Add(b.cfg.RetryMin)
	}
	_, err := b.st.Update(rec.ID, func(r *store.Record) error {
		if r.State != store.Queued {
			return errNotDue
		}
		r.NextAttempt = at
		return nil
	})
	if err != nil && !errors.Is(err, errNotDue) {
		b.log.Error("postponing a record without a route", "id", rec.ID, "err", err)
	}
	return at, err == nil
}

// maxUnboundWait bounds the records the dispatcher remembers to wake when
// a route binds; those beyond it wait RetryMin, as they do after a
// restart.
const maxUnboundWait = 10000

// wakeWorkers bounds the Updates that wake records at the same time.
const wakeWorkers = 32

// unboundWait remembers the records postponed because no route that
// serves them was bound (a reconnect, a reload), so that they are due again
// as soon as a route binds, not RetryMin later. Only the dispatch loop
// uses it.
type unboundWait struct {
	ids    map[string]time.Time // record → the NextAttempt postpone gave it
	latest time.Time            // the latest of those
	bound  map[*route]bool      // at the last look
}

func newUnboundWait() *unboundWait {
	return &unboundWait{ids: map[string]time.Time{}, bound: map[*route]bool{}}
}

func (u *unboundWait) add(id string, at time.Time) {
	if len(u.ids) < maxUnboundWait {
		u.ids[id] = at
		if at.After(u.latest) {
			u.latest = at
		}
	}
}

func (u *unboundWait) waiting() bool { return len(u.ids) > 0 }

// bindsSince notes which routes are bound now; if one was not at the last
// look, it returns the records to wake (all of them: a record whose
// routes are all still down is postponed again) and forgets them. Once
// every remembered record is due anyway (now is past the latest), it
// forgets them too, so that the dispatcher stops looking often.
func (u *unboundWait) bindsSince(routes []*route, now time.Time) map[string]time.Time {
	if len(u.ids) > 0 && now.After(u.latest) {
		clear(u.ids)
	}
	bound := make(map[*route]bool, len(routes))
	newly := false
	for _, r := range routes {
		if r.SMSC.Bound() {
			bound[r] = true
			newly = newly || !u.bound[r]
		}
	}
	u.bound = bound
	if !newly || len(u.ids) == 0 {
		return nil
	}
	ids := u.ids
	u.ids = map[string]time.Time{}
	return ids
}

// wake makes the records of ids due now, unless they changed since they
// were postponed.
func (b *Bridge) wake(ids map[string]time.Time) {
	sem := make(chan struct{}, wakeWorkers)
	var wg sync.WaitGroup
	for id, at := range ids {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			_, err := b.st.Update(id, func(r *store.Record) error {
				if r.State != store.Queued || !r.NextAttempt.Equal(at) {
					return errNotDue
				}
				r.NextAttempt = b.cfg.Now()
				return nil
			})
			if err != nil && !errors.Is(err, errNotDue) && !errors.Is(err, store.ErrNotFound) {
				b.log.Error("waking a record after a bind", "id", id, "err", err)
			}
		})
	}
	wg.Wait()
}

// lateTag names the segment a submit_sm was for, so that a response that
// comes after we gave up on it can still be written down.
type lateTag struct {
	id  string
	seg int
}

// LateHandler returns the smppout Config.Late of the route whose SMSCID (or
// name) is route: a
// submit_sm_resp that came after the timeout says the SMSC has the segment.
// If it has no id yet, it gets this one and is not sent again (the retry
// that the timeout scheduled finds it submitted).
func (b *Bridge) LateHandler(route string) func(tag any, smscID string) {
	return func(tag any, smscID string) {
		t, ok := tag.(lateTag)
		if !ok {
			return
		}
		key := smscKey(route, smscID)
		rec, err := b.st.Update(t.id, func(r *store.Record) error {
			if t.seg >= len(r.Segments) || r.Segments[t.seg].SMSCID != "" || r.State.Final() {
				return errNotDue // already resent, or over
			}
			r.Segments[t.seg].SMSCID, r.Segments[t.seg].State = key, store.SegSubmitted
			r.Events = append(r.Events, store.Event{At: b.cfg.Now(), What: "submitted",
				Detail: fmt.Sprintf("seg %d/%d smsc_id=%s (late response: not sent again)", t.seg+1, len(r.Segments), key)})
			b.markSubmitted(r)
			return nil
		})
		switch {
		case errors.Is(err, errNotDue):
		case err != nil:
			b.log.Error("recording a late submit_sm_resp", "id", t.id, "smsc_id", key, "err", err)
		default:
			b.log.Info("late submit_sm_resp recorded: no second copy", "id", rec.ID, "seg", t.seg+1, "smsc_id", key, "state", rec.State)
		}
	}
}

// reencode encodes r again for a route with its own encoding options, as
// long as no segment of r has been sent (parts of one message must agree).
// The text was accepted already, so a cap is met by truncating.
func reencode(r *store.Record, rt *route, now time.Time) {
	if rt.Encoding == nil || inDoubt(r) {
		return
	}
	for _, s := range r.Segments {
		if s.SMSCID != "" {
			return
		}
	}
	opt := *rt.Encoding
	opt.Overflow = convert.OverflowTruncate
	enc, err := convert.Encode(r.Text, opt)
	if err != nil {
		return // keep what was accepted
	}
	segs := make([]store.Segment, len(enc.Segments))
	same := len(segs) == len(r.Segments) && string(enc.Concat) == r.Concat &&
		enc.LockingShift == r.LockingShift && enc.SingleShift == r.SingleShift
	for i, sg := range enc.Segments {
		segs[i] = store.Segment{Payload: sg.Payload, Text: sg.Text}
		same = same && string(sg.Payload) == string(r.Segments[i].Payload)
	}
	if same {
		return
	}
	r.Segments, r.Concat = segs, string(enc.Concat)
	r.DataCoding, r.LockingShift, r.SingleShift = enc.Coding.DataCoding(), enc.LockingShift, enc.SingleShift
	r.Truncated = enc.Truncated
	r.Events = append(r.Events, store.Event{At: now, What: "encoded",
		Detail: fmt.Sprintf("for route %s: %d segments, concat %s", rt.Name, len(segs), enc.Concat)})
}

// inDoubt reports whether an earlier attempt may have reached an SMSC
// without our knowing: a failed attempt (a timeout or a lost session
// counts one) or a crash in the middle of one. Its parts may be out there,
// so the record keeps its encoding: parts of two encodings under one
// reference would not join on the phone.
func inDoubt(r *store.Record) bool {
	if r.Attempts > 0 {
		return true
	}
	for _, e := range r.Events {
		if e.What == "recovered" {
			return true
		}
	}
	return false
}
