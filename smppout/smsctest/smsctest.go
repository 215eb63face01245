// Package smsctest is an SMSC simulator speaking SMPP v3.4 over TCP, for
// tests and smsbridge's demo mode.
package smsctest

import (
	"crypto/tls"
	"log/slog"
	"time"
)

// Outcome decides the receipt for destinations starting with Prefix.
type Outcome struct {
	Prefix string // matched against destination_addr digits (no "+"); "" matches all
	Stat   string // DELIVRD, UNDELIV, EXPIRED, REJECTD…
	Err    string // 3 digits, e.g. "000", "001"
}

// Config configures a Server; zero values mean defaults.
type Config struct {
	SystemID     string // required system_id; "" accepts any
	Password     string
	ReceiptDelay time.Duration
	// NoReceipts: no delivery receipt is ever sent, whatever
	// registered_delivery asks (a benchmark of submits alone, without
	// the cost of holding receipts back).
	NoReceipts bool
	Outcomes   []Outcome // first match wins; DELIVRD/000 when none matches
	Log        *slog.Logger

	// SubmitStatus, if set, may refuse a submit_sm: a non-zero status is
	// sent in submit_sm_resp and the message is not recorded.
	SubmitStatus func(Message) uint32
	// OnSubmit, if set, runs before submit_sm_resp is written, on the
	// session's read goroutine (e.g. to InjectReceipt with seq first).
	OnSubmit func(m Message, seq uint32)
	// ReceiptRetry is the wait before resending a receipt whose
	// deliver_sm_resp was an error or did not come; default 1s.
	ReceiptRetry time.Duration
	// RespTimeout bounds the wait for deliver_sm_resp; default 10s.
	RespTimeout time.Duration
	// TLS, when set, serves SMPP over TLS.
	TLS *tls.Config
	// MaxMessages keeps only the newest accepted messages and
	// deliver_sm_resps (0: all), so a long demo or a benchmark does not
	// grow without bound; Accepted and WaitDeliverResps count them all.
	MaxMessages int

	// Faults, for tests. See also SubmitStatus, DropConnections,
	// InjectReceipt and InjectCommand.

	// ThrottleFraction refuses this fraction of submit_sm with
	// ESME_RTHROTTLED, evenly spread (0.25: every fourth).
	ThrottleFraction float64
	// MaxTPS refuses submit_sm with ESME_RTHROTTLED past this many in
	// one second (counted per calendar second, as many SMSCs do); 0: no cap.
	MaxTPS int
	// RespDelay delays every submit_sm_resp, plus a random part up to
	// RespJitter (responses then come out of order). The message is
	// recorded at once: a connection lost meanwhile leaves it in doubt.
	RespDelay, RespJitter time.Duration
	// ReceiptJitter adds a random delay up to this to each receipt:
	// receipts come out of order.
	ReceiptJitter time.Duration
	// DuplicateReceipts sends each receipt once more after its first
	// ESME_ROK, as SMSCs do after a lost deliver_sm_resp.
	DuplicateReceipts bool
	// ReceiptBeforeResp sends the receipt before the submit_sm_resp.
	ReceiptBeforeResp bool
	// EnquireLink, when set, sends enquire_link on every bound session
	// at this interval (SMSC-initiated keepalive, §4.11).
	EnquireLink time.Duration
	// IDStyle is how ids are written: "" the same lowercase hex in
	// submit_sm_resp and receipts; "hex/dec" upper-case zero-padded hex
	// in submit_sm_resp and decimal zero-padded to 20 digits in
	// receipts (TLV and text); "dec" decimal in submit_sm_resp, padded
	// the same in receipts.
	// Message.ID is the lowercase hex form in every style.
	IDStyle string
}

func (c Config) withDefaults() Config {
	if c.ReceiptRetry <= 0 {
		c.ReceiptRetry = time.Second
	}
	if c.RespTimeout <= 0 {
		c.RespTimeout = 10 * time.Second
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	return c
}

// Message is a submit_sm the simulator accepted. Source and Dest are the
// addresses as sent (no "+"); ShortMessage is short_message with its UDH,
// or message_payload when short_message is empty.
type Message struct {
	ID                 string
	SystemID           string // of the session that submitted it
	Conn               uint64 // the connection it came on, numbered from 1 in accept order
	Source, Dest       string
	ESMClass           byte
	DataCoding         byte
	RegisteredDelivery byte
	ShortMessage       []byte // or the message_payload TLV when short_message is empty
	Validity           string // validity_period as sent
	TLVs               map[uint16][]byte
	At                 time.Time
}

// Response is a response to a request sent with InjectCommand.
type Response struct {
	CommandID, Status, Seq uint32
}

// MO is a mobile-originated message for SendMO.
type MO struct {
	SystemID   string // the ESME it goes to
	From, To   string // digits; From is sent as international (TON 1)
	DataCoding byte
	UDH        []byte // with its length octet; sets esm_class UDHI (0x40)
	Text       []byte // user data after the UDH
	TLVs       map[uint16][]byte
	DataSM     bool // send data_sm with message_payload instead of deliver_sm
}

// DeliverResp is a deliver_sm_resp the simulator received.
type DeliverResp struct {
	MessageID string // the receipt's message id
	Seq       uint32
	Status    uint32
}
