// Package smppout is smsbridge's SMPP v3.4 client: its own session layer
// (binds, windows, sequence matching, receipts) over go-smpp's PDU codec.
package smppout

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Config describes one SMSC bind.
type Config struct {
	Addr        string // host:port
	SystemID    string
	Password    string
	SystemType  string
	EnquireLink time.Duration // default 30s
	RespTimeout time.Duration // default 30s
	Window      int           // in-flight requests, default 10; Submit blocks when full
	BackoffMin  time.Duration // reconnect backoff, default 1s
	BackoffMax  time.Duration // default 60s
}

// Submit is one submit_sm.
type Submit struct {
	Source             string // source_addr; TON/NPI derived (alphanumeric 5/0, "+digits" 1/1, else 0/1?)
	Dest               string // E.164 with "+"; sent as TON 1 NPI 1 without "+"
	ESMClass           byte   // 0x40 when ShortMessage starts with a UDH
	DataCoding         byte
	ShortMessage       []byte
	RegisteredDelivery byte // 1: receipt on final outcome
}

// Receipt is a delivery receipt from deliver_sm (or data_sm).
type Receipt struct {
	MessageID string // normalised like the ids Submit returns
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
func (e *StatusError) Temporary() bool { panic("TODO") }

// Client keeps one bind to an SMSC.
type Client struct{}

// New returns a client; Run starts it.
func New(cfg Config, h Handler, log *slog.Logger) *Client { panic("TODO") }

// Run binds, keeps the session alive and rebinds with backoff until ctx is
// done; then it unbinds after draining in-flight requests.
func (c *Client) Run(ctx context.Context) error { panic("TODO") }

// Bound reports whether a session is bound now.
func (c *Client) Bound() bool { panic("TODO") }

// Submit sends s and returns the SMSC's message id.
func (c *Client) Submit(ctx context.Context, s Submit) (string, error) { panic("TODO") }
