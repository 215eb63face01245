package smppout

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/smsbridge/smsbridge/smppout/internal/wire"
)

// ErrInvalidSubmit: the Submit cannot be encoded (bad address, too long);
// retrying cannot help.
var ErrInvalidSubmit = errors.New("smppout: invalid submit")

// Address limits: source_addr and destination_addr are C-Octet Strings
// of at most 21 octets with the NUL (§4.4.1); an alphanumeric sender is
// at most 11 characters on GSM networks (3GPP TS 23.040 §9.1.2.5).
const (
	maxAddr  = 20
	maxAlpha = 11
)

// sourceAddr derives source_addr_ton/npi (§5.2.5, §5.2.6):
//
//	""            0/0  (the SMSC's default sender)
//	"+4915112345" 1/1  international, ISDN; "+" stripped
//	"12345"       3/0  network specific: a short code (3 to 8 digits)
//	"0301234567"  0/1  unknown, ISDN: a national number (more digits)
//	"Shop"        5/0  alphanumeric (anything with a non-digit), ≤ 11 chars
//
// A non-nil field of over replaces the derived pair for its kind.
func sourceAddr(s string, over SourceTypes) (ton, npi byte, addr string, err error) {
	pick := func(o *AddrType, ton, npi byte) (byte, byte) {
		if o != nil {
			return o.TON, o.NPI
		}
		return ton, npi
	}
	switch {
	case s == "":
		return 0, 0, "", nil
	case strings.HasPrefix(s, "+") && isDigits(s[1:]):
		ton, npi = pick(over.International, 1, 1)
		return ton, npi, s[1:], checkLen("source", s[1:], maxAddr)
	case isDigits(s) && len(s) <= maxShortCode:
		ton, npi = pick(over.ShortCode, 3, 0)
		return ton, npi, s, nil
	case isDigits(s):
		ton, npi = pick(over.National, 0, 1)
		return ton, npi, s, checkLen("source", s, maxAddr)
	default:
		ton, npi = pick(over.Alphanumeric, 5, 0)
		return ton, npi, s, checkLen("alphanumeric source", s, maxAlpha)
	}
}

// maxShortCode: a digit sender this short is a short code, not a number.
const maxShortCode = 8

// maxE164 is the most digits of an international number (ITU-T E.164 §6.1).
const maxE164 = 15

// ValidSource reports whether s is a sender id that the configuration may
// set: "+" and up to 15 digits (an E.164 number), up to 20 digits (a
// national number or a short code: what source_addr holds), or up to 11
// letters, digits, spaces and ". - _ &" (an alphanumeric sender, which
// must also be sayable in the GSM 7-bit alphabet: TS 23.040 §9.1.2.5). The
// empty string, the SMSC's default sender, is valid too. sourceAddr takes
// more (any short enough text); this is the rule for what we write down.
func ValidSource(s string) bool {
	switch {
	case s == "":
		return true
	case strings.HasPrefix(s, "+"):
		return isDigits(s[1:]) && len(s)-1 <= maxE164
	case isDigits(s):
		return len(s) <= maxAddr
	}
	return len(s) <= maxAlpha && strings.Trim(s, alphaSource) == ""
}

// alphaSource are the characters of an alphanumeric sender.
const alphaSource = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 .-_&"

// destAddr is always international ISDN, 1/1, digits without "+".
func destAddr(s string) (string, error) {
	d := strings.TrimPrefix(s, "+")
	if !isDigits(d) {
		return "", fmt.Errorf("%w: destination %q is not +digits", ErrInvalidSubmit, s)
	}
	return d, checkLen("destination", d, maxAddr)
}

func checkLen(what, s string, max int) error {
	if len(s) > max {
		return fmt.Errorf("%w: %s %q longer than %d", ErrInvalidSubmit, what, s, max)
	}
	return nil
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// submitBody encodes a submit_sm body (§4.4.1). service_type is empty
// (SMSC default); text over 254 octets goes in message_payload
// (§5.3.2.32) with sm_length 0.
func submitBody(s Submit, cfg Config) ([]byte, error) {
	ston, snpi, src, err := sourceAddr(s.Source, cfg.SourceTypes)
	if err != nil {
		return nil, err
	}
	dst, err := destAddr(s.Dest)
	if err != nil {
		return nil, err
	}
	sm := wire.SM{
		SourceTON: ston, SourceNPI: snpi, Source: src,
		DestTON: 1, DestNPI: 1, Dest: dst,
		ESMClass: s.ESMClass, RegisteredDelivery: s.RegisteredDelivery, DataCoding: s.DataCoding,
		ShortMessage: s.ShortMessage,
		Validity:     relativeValidity(s.Validity),
	}
	if sm.DataCoding == 0 {
		sm.DataCoding = cfg.GSMDataCoding
	}
	if s.Payload || len(s.ShortMessage) > 254 {
		sm.ShortMessage = nil
		sm.TLVs = []wire.TLV{{Tag: wire.TagMessagePayload, Value: s.ShortMessage}}
	}
	if s.SAR != nil {
		sm.TLVs = append(sm.TLVs,
			wire.TLV{Tag: wire.TagSARMsgRefNum, Value: []byte{byte(s.SAR.Ref >> 8), byte(s.SAR.Ref)}},
			wire.TLV{Tag: wire.TagSARTotalSegments, Value: []byte{s.SAR.Total}},
			wire.TLV{Tag: wire.TagSARSegmentSeqnum, Value: []byte{s.SAR.Seq}})
	}
	body, err := sm.Marshal()
	if err != nil {
		return nil, fmt.Errorf("%w: submit_sm to %s: %v", ErrInvalidSubmit, s.Dest, err)
	}
	return body, nil
}

// relativeValidity formats d as a relative time (§7.1.1): "YYMMDDhhmmss000R",
// each field a count of that unit. Days above 99 are written as months of
// 30 days, and the whole is capped at 99 years; "" (the SMSC's default)
// for 0.
func relativeValidity(d time.Duration) string {
	if d <= 0 {
		return ""
	}
	secs := int64(d / time.Second)
	days := secs / 86400
	months := int64(0)
	if days > 99 {
		months, days = days/30, days%30
	}
	years := months / 12
	months %= 12
	if years > 99 {
		years, months, days, secs = 99, 11, 29, 86399
	}
	return fmt.Sprintf("%02d%02d%02d%02d%02d%02d000R", years, months, days,
		secs%86400/3600, secs%3600/60, secs%60)
}

// segments is what s costs in TPS tokens: Segments when set; else one
// per submit_sm, or for message_payload the parts the SMSC will cut it
// into (3GPP TS 23.040: 160 septets or 140 octets alone, 153 or 134 with
// a concatenation UDH; GSM text here is one septet per octet).
func (s Submit) segments() int {
	if s.Segments > 0 {
		return s.Segments
	}
	n := len(s.ShortMessage)
	if !s.Payload && n <= 254 {
		return 1
	}
	single, part := 140, 134
	if s.DataCoding == 0 || s.DataCoding == 1 {
		single, part = 160, 153
	}
	if n <= single {
		return 1
	}
	return (n + part - 1) / part
}
