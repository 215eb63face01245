package smppout

import (
	"crypto/tls"
	"errors"
	"fmt"
	"time"
)

// Config describes one route: an SMSC account and the sessions a Client
// keeps to it. Zero values mean the defaults set in withDefaults.
type Config struct {
	Addr        string // host:port
	SystemID    string
	Password    string
	SystemType  string
	EnquireLink time.Duration // default 30s
	RespTimeout time.Duration // default 30s
	// Window is the number of submit_sm in flight per session, default
	// 10, at most MaxWindow; Submit blocks when every window is full.
	Window     int
	BackoffMin time.Duration // reconnect backoff, default 1s
	BackoffMax time.Duration // default 60s

	// BindMode is how each session binds (§4.1): BindTransceiver (the
	// default) or BindTransmitterReceiver.
	BindMode BindMode
	// Binds is the number of sessions of BindMode, default 1: that many
	// transceivers, or that many transmitters and as many receivers.
	// Submits go to the bound session with the fewest in flight.
	Binds int
	// AddressRange is the bind's address_range (§5.2.7), a regular
	// expression of the MO destinations this ESME serves; "" for any.
	AddressRange string
	// InterfaceVersion is the bind's interface_version (§5.2.4), default
	// 0x34. Some SMSCs want 0x33 from older ESMEs.
	InterfaceVersion byte
	// TLS, when set, dials the SMSC with TLS (SMPP over TLS, usually
	// port 3550); a nil ServerName is filled from Addr.
	TLS *tls.Config

	// SourceTypes overrides the source_addr_ton/npi derived from each
	// kind of sender (sourceAddr).
	SourceTypes SourceTypes
	// GSMDataCoding is the data_coding sent for GSM 7-bit text: the
	// bridge encodes GSM text as 0x00 (SMSC default alphabet), and a
	// Submit with DataCoding 0x00 goes out with GSMDataCoding instead
	// when it is set, for SMSCs whose default alphabet is not GSM and
	// that want 0x01 (IA5) for GSM text (§5.2.19). A bridge may also set
	// Submit.DataCoding itself: any non-zero value is sent unchanged.
	GSMDataCoding byte

	// TPS caps the submit rate of the whole route, counted in segments
	// (Submit.Segments): the unit SMSCs bill and throttle in. 0: no cap.
	// Submit waits for a token, within its ctx.
	TPS int

	// IDFormat says how the SMSC writes message ids, so the ids Submit
	// returns and those in receipts compare equal; see IDFormat.
	IDFormat IDFormat

	// MO receives mobile-originated messages: deliver_sm and data_sm that
	// are not receipts (§4.6, §4.7). nil acknowledges and drops them.
	MO MOHandler

	// Late, if set, is told of a submit_sm_resp with ESME_ROK that came
	// after Submit returned ErrTimeout: the SMSC has the message, and
	// smsc_id is its id (normalised like Submit's). tag is Submit.Tag.
	Late func(tag any, smscID string)
}

// BindMode is how a session binds (§4.1).
type BindMode string

const (
	// BindTransceiver: one session submits and receives (§4.1.5, v3.4).
	BindTransceiver BindMode = "transceiver"
	// BindTransmitterReceiver: two sessions, submits on the transmitter
	// (§4.1.1), receipts and MO on the receiver (§4.1.3), for SMSCs that
	// do not offer transceivers or that deliver only to receivers.
	BindTransmitterReceiver BindMode = "transmitter+receiver"
)

// AddrType is a TON/NPI pair (§5.2.5, §5.2.6).
type AddrType struct{ TON, NPI byte }

// SourceTypes overrides the TON/NPI sourceAddr derives for each kind of
// sender; a nil field keeps the derivation.
type SourceTypes struct {
	Alphanumeric  *AddrType // letters, ≤ 11 characters; derived 5/0
	International *AddrType // "+digits"; derived 1/1
	ShortCode     *AddrType // 3 to 8 digits; derived 3/0 (network specific)
	National      *AddrType // more digits, no "+"; derived 0/1
}

// Limits of Config values.
const (
	MaxWindow = 1000
	maxBinds  = 64
)

// withDefaults fills the zero fields of c; defaults live here only.
func (c Config) withDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.EnquireLink, 30*time.Second)
	def(&c.RespTimeout, 30*time.Second)
	def(&c.BackoffMin, time.Second)
	def(&c.BackoffMax, 60*time.Second)
	if c.BackoffMax < c.BackoffMin {
		c.BackoffMax = c.BackoffMin
	}
	if c.Window <= 0 {
		c.Window = 10
	}
	if c.Binds <= 0 {
		c.Binds = 1
	}
	if c.BindMode == "" {
		c.BindMode = BindTransceiver
	}
	if c.InterfaceVersion == 0 {
		c.InterfaceVersion = 0x34
	}
	return c
}

// ErrConfig is a Config the client cannot use.
var ErrConfig = errors.New("smppout: invalid config")

// Validate reports the first problem of c (after defaults), wrapping
// ErrConfig. Run returns it too.
func (c Config) Validate() error {
	c = c.withDefaults()
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrConfig}, a...)...)
	}
	switch {
	case c.Addr == "":
		return bad("Addr is empty")
	case c.Window > MaxWindow:
		return bad("Window %d above %d", c.Window, MaxWindow)
	case c.Binds > maxBinds:
		return bad("Binds %d above %d", c.Binds, maxBinds)
	case c.BindMode != BindTransceiver && c.BindMode != BindTransmitterReceiver:
		return bad("BindMode %q (want %q or %q)", c.BindMode, BindTransceiver, BindTransmitterReceiver)
	case c.TPS < 0:
		return bad("TPS %d is negative", c.TPS)
	case len(c.AddressRange) > 40: // §4.1.1: 41 octets with the NUL
		return bad("AddressRange longer than 40 octets")
	}
	if err := c.IDFormat.validate(); err != nil {
		return bad("%v", err)
	}
	return nil
}
