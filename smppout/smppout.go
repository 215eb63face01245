// Package smppout is smsbridge's SMPP v3.4 client: its own session layer
// (binds, windows, sequence matching, receipts) over go-smpp's PDU codec.
//
// A Client is one route: Config.Binds sessions to one SMSC account, a TPS
// cap counted in segments, one receipt id format. Receipts and MO parts
// are acknowledged only after their handler returns nil, so what the SMSC
// was told we have, we stored; concatenated MO is joined by whoever
// stores the parts, with a Reassembler. Choosing between routes is the
// caller's job.
package smppout

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Submit is one submit_sm.
type Submit struct {
	Source             string // source_addr; TON/NPI derived, see sourceAddr
	Dest               string // E.164 with "+"; sent as TON 1 NPI 1 without "+"
	ESMClass           byte   // 0x40 when ShortMessage starts with a UDH
	DataCoding         byte
	ShortMessage       []byte
	RegisteredDelivery byte // 1: receipt on final outcome
	// Validity is the relative validity_period (§7.1.1); 0 leaves it to the SMSC.
	Validity time.Duration
	// SAR, when set, ties this part to the others with the sar_* TLVs
	// (§5.3.2.22-24) instead of a concatenation UDH.
	SAR *SAR
	// Payload sends ShortMessage in the message_payload TLV (§5.3.2.32),
	// which lets the SMSC split a long text itself. Text over 254 octets
	// always goes there.
	Payload bool
	// Segments is what this submit counts against Config.TPS; 0 lets
	// the client work it out (1, or more for a long message_payload).
	Segments int
	// Tag is the caller's, handed back to Config.Late if the response
	// comes after Submit gave up.
	Tag any
}

// SAR is the segmentation and reassembly information of one part.
type SAR struct {
	Ref        uint16
	Total, Seq uint8
}

// Receipt is a delivery receipt from deliver_sm (or data_sm).
type Receipt struct {
	MessageID string // normalised by Config.IDFormat like the ids Submit returns
	Stat      string // DELIVRD, UNDELIV, …
	Err       string
	Text      string // the short_message text as received
}

// Handler receives receipts. deliver_sm_resp is sent only after it returns:
// ESME_ROK when it returns nil, ESME_RX_T_APPN (temporary) otherwise.
type Handler func(ctx context.Context, r Receipt) error

// ErrNotBound: no bound session to submit on (temporary).
var ErrNotBound = errors.New("smppout: not bound")

// ErrTimeout: no submit_sm_resp in time; the SMSC may have accepted it.
var ErrTimeout = errors.New("smppout: response timeout")

// StatusError is a non-zero command_status in a response.
type StatusError struct{ Status uint32 }

func (e *StatusError) Error() string { return fmt.Sprintf("smpp: command_status 0x%08X", e.Status) }

// Temporary reports whether retrying later may succeed (throttled, queue full, system error…).
// The statuses it accepts are listed in temporaryStatus.
func (e *StatusError) Temporary() bool { return temporaryStatus[e.Status] }

// temporaryStatus is the one table of command_status values (§5.1.3) that
// the dispatcher retries; every other non-zero status is permanent.
var temporaryStatus = map[uint32]bool{
	0x04: true, // ESME_RINVBNDSTS: the SMSC thinks we are not bound; a rebind fixes it
	0x08: true, // ESME_RSYSERR: SMSC system error
	0x14: true, // ESME_RMSGQFUL: message queue full
	0x45: true, // ESME_RSUBMITFAIL: generic; SMSCs use it for transient routing faults too
	0x58: true, // ESME_RTHROTTLED: over the SMSC's rate
	0x64: true, // ESME_RX_T_APPN: temporary application error
}

// ErrSessionLost: the session closed while a request waited for its
// response. errors.Is(err, ErrTimeout) holds too: the SMSC may have
// accepted the request.
var ErrSessionLost = fmt.Errorf("%w: session lost before the response", ErrTimeout)

// BindError is a bind_resp with a non-zero command_status. It unwraps to
// a *StatusError.
type BindError struct{ Status uint32 }

func (e *BindError) Error() string {
	return fmt.Sprintf("smppout: bind refused: command_status 0x%08X", e.Status)
}

func (e *BindError) Unwrap() error { return &StatusError{Status: e.Status} }

// Credentials reports whether the SMSC refused our system_id or password
// (ESME_RBINDFAIL, ESME_RINVPASWD, ESME_RINVSYSID): retrying soon is
// pointless and may get the account locked.
func (e *BindError) Credentials() bool {
	return e.Status == 0x0D || e.Status == 0x0E || e.Status == 0x0F
}

// Temporary reports whether err is worth retrying later: not bound, timed
// out, session lost, or a temporary command_status.
func Temporary(err error) bool {
	var se *StatusError
	switch {
	case errors.Is(err, ErrNotBound), errors.Is(err, ErrTimeout):
		return true
	case errors.As(err, &se):
		return se.Temporary()
	}
	return false
}
