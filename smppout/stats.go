package smppout

import "sync/atomic"

// Stats is a snapshot of a Client's counters (since New) and gauges (now).
type Stats struct {
	Bound       int // sessions bound now, of any kind
	WindowInUse int // submit_sm in flight now, over all sessions
	WindowSize  int // window slots of the sessions that may submit now

	Binds     uint64 // successful binds
	Submitted uint64 // submit_sm answered ESME_ROK
	Refused   uint64 // submit_sm answered with an error status, Throttled included
	Throttled uint64 // submit_sm answered ESME_RTHROTTLED (0x58)
	// InDoubt counts submit_sm sent without a response: timed out, the
	// session lost, or the caller gave up. The SMSC may have accepted
	// them; a retry may duplicate the message.
	InDoubt uint64
	// LateResponses counts submit_sm_resp that came after their
	// request was given up: the SMSC did have those (logged with smsc_id).
	LateResponses uint64
	RateWaits     uint64 // submits that waited for a TPS token
	Receipts      uint64 // receipts acknowledged ESME_ROK
	MO            uint64 // MO parts acknowledged ESME_ROK
	HandlerErrors uint64 // receipts and MO refused (ESME_RX_T_APPN) because a handler failed
	Malformed     uint64 // deliver_sm/data_sm refused as malformed (ESME_RX_P_APPN)
}

// counters are the Client's cumulative Stats, shared with its sessions.
type counters struct {
	binds, submitted, refused, throttled, inDoubt, late, rateWaits atomic.Uint64
	receipts, mo, handlerErrors, malformed                         atomic.Uint64
}

// Stats returns the current counters and gauges.
func (c *Client) Stats() Stats {
	st := Stats{
		Binds: c.stats.binds.Load(), Submitted: c.stats.submitted.Load(),
		Refused: c.stats.refused.Load(), Throttled: c.stats.throttled.Load(),
		InDoubt: c.stats.inDoubt.Load(), LateResponses: c.stats.late.Load(),
		RateWaits: c.stats.rateWaits.Load(), Receipts: c.stats.receipts.Load(),
		MO: c.stats.mo.Load(), HandlerErrors: c.stats.handlerErrors.Load(),
		Malformed: c.stats.malformed.Load(),
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range c.sessions {
		if !s.open() {
			continue
		}
		st.Bound++
		if s.canSubmit {
			st.WindowInUse += len(s.window)
			st.WindowSize += cap(s.window)
		}
	}
	return st
}
