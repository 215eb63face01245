package smppout

import (
	"fmt"
	"math/big"
	"strconv"
	"strings"
)

// IDFormat says how an SMSC writes message ids (§5.2.23: a C-Octet String
// of up to 65 octets, format unspecified), as "submit/receipt": the base
// of the id in submit_sm_resp, then of the id in receipts
// (receipted_message_id TLV and the "id:" of the text alike, as Kannel's
// msg-id-type does). "hex" is "hex/hex", "dec" is "dec/dec".
//
// With a format, ids are compared in one canonical form: the number in
// decimal digits without leading zeros. So "0001A2B" and "1a2b" in hex
// and "006699" in decimal are all "6699". An id that does not parse in its
// declared base is only trimmed (NormalizeMessageID), so it still matches
// itself. The zero IDFormat keeps ids as sent, trimmed.
type IDFormat string

// The formats SMSCs use.
const (
	IDAsSent IDFormat = ""
	IDDec    IDFormat = "dec"     // both decimal
	IDHex    IDFormat = "hex"     // both hexadecimal
	IDHexDec IDFormat = "hex/dec" // submit_sm_resp hex, receipts decimal: the common mixed case
	IDDecHex IDFormat = "dec/hex" // submit_sm_resp decimal, receipts hex
)

// bases returns the submit and receipt bases; 0 keeps ids as sent.
func (f IDFormat) bases() (submit, receipt int, err error) {
	base := func(s string) (int, error) {
		switch s {
		case "dec":
			return 10, nil
		case "hex":
			return 16, nil
		}
		return 0, fmt.Errorf("IDFormat %q: want \"\", dec, hex, hex/dec or dec/hex", string(f))
	}
	if f == IDAsSent {
		return 0, 0, nil
	}
	s, r, pair := strings.Cut(string(f), "/")
	if !pair {
		r = s
	}
	if submit, err = base(s); err != nil {
		return 0, 0, err
	}
	receipt, err = base(r)
	return submit, receipt, err
}

func (f IDFormat) validate() error {
	_, _, err := f.bases()
	return err
}

// SubmitID normalises the message_id of a submit_sm_resp.
func (f IDFormat) SubmitID(id string) string {
	b, _, _ := f.bases()
	out, _ := CanonicalID(id, b)
	return capID(out)
}

// ReceiptID normalises the id of a receipt (TLV or text).
func (f IDFormat) ReceiptID(id string) string {
	_, b, _ := f.bases()
	out, _ := CanonicalID(id, b)
	return capID(out)
}

// maxIDLen is the longest message id kept: SMPP v3.4 gives message_id and
// receipted_message_id 65 octets with the NUL (§4.4.2, §5.3.2.12).
const maxIDLen = 64

// capID cuts an id longer than SMPP allows to maxIDLen octets. A peer that
// sends longer ones is out of spec; cut the same way on both sides, its
// submit and receipt ids still match, and no id can be too long to store.
func capID(id string) string {
	if len(id) > maxIDLen {
		return id[:maxIDLen]
	}
	return id
}

// CanonicalID returns id read as a number in base (10 or 16; any case,
// leading zeros, an optional "0x" in hex) written in decimal without
// leading zeros, and true. When base is 0 or id is not a number in that
// base it returns NormalizeMessageID(id) and false. Ids of any length
// work: some SMSCs use 128-bit ids.
func CanonicalID(id string, base int) (string, bool) {
	id = NormalizeMessageID(id)
	digits := id
	if base == 16 && len(digits) > 2 && (digits[:2] == "0x" || digits[:2] == "0X") {
		digits = digits[2:]
	}
	if base == 0 || digits == "" || strings.ContainsAny(digits, "+-_") {
		return id, false
	}
	if len(digits) <= 15 { // fits in a uint64: the common case without big.Int
		var n uint64
		for i := 0; i < len(digits); i++ {
			d, ok := digitValue(digits[i], base)
			if !ok {
				return id, false
			}
			n = n*uint64(base) + uint64(d)
		}
		return strconv.FormatUint(n, 10), true
	}
	n, ok := new(big.Int).SetString(digits, base)
	if !ok {
		return id, false
	}
	return n.String(), true
}

func digitValue(c byte, base int) (int, bool) {
	var d int
	switch {
	case '0' <= c && c <= '9':
		d = int(c - '0')
	case 'a' <= c && c <= 'f':
		d = int(c-'a') + 10
	case 'A' <= c && c <= 'F':
		d = int(c-'A') + 10
	default:
		return 0, false
	}
	return d, d < base
}
