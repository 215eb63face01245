// Package smsctest is an SMSC simulator speaking SMPP v3.4 over TCP, for
// tests and smsbridge's demo mode.
package smsctest

import (
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
	Outcomes     []Outcome // first match wins; DELIVRD/000 when none matches
	Log          *slog.Logger

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
	Source, Dest       string
	ESMClass           byte
	DataCoding         byte
	RegisteredDelivery byte
	ShortMessage       []byte // or the message_payload TLV when short_message is empty
	Validity           string // validity_period as sent
	TLVs               map[uint16][]byte
	At                 time.Time
}

// DeliverResp is a deliver_sm_resp the simulator received.
type DeliverResp struct {
	MessageID string // the receipt's message id
	Seq       uint32
	Status    uint32
}
