package smppout

import (
	"errors"
	"fmt"
	"strings"

	"github.com/smsbridge/smsbridge/smppout/internal/wire"
)

// ErrNoReceiptID: a receipt text without an id: field.
var ErrNoReceiptID = errors.New("smppout: receipt text has no id")

// receiptKeys are the fields of the SMPP v3.4 Appendix B receipt text
//
//	id:IIIIIIIIII sub:SSS dlvrd:DDD submit date:YYMMDDhhmm done date:YYMMDDhhmm stat:DDDDDDD err:E text:...
//
// with the underscore spellings some SMSCs use. Matching is ASCII
// case-insensitive; "submit date" matches any run of spaces inside.
var receiptKeys = []string{"id", "sub", "dlvrd", "submit date", "submit_date", "done date", "done_date", "stat", "err", "text"}

// ParseReceiptText extracts id, stat and err from a receipt text (Appendix
// B). It is tolerant: keys in any case and order, missing fields, extra
// spaces around keys, colons and values. text: runs to the end of s, so a
// text containing "id:" cannot fool it. Only a missing id is an error.
// Text holds s unchanged.
func ParseReceiptText(s string) (Receipt, error) {
	r := Receipt{Text: s}
	fields := receiptFields(s)
	r.MessageID = NormalizeMessageID(fields["id"])
	r.Stat = strings.ToUpper(strings.TrimSpace(fields["stat"]))
	r.Err = strings.TrimSpace(fields["err"])
	if r.MessageID == "" {
		return r, fmt.Errorf("%w: %.60q", ErrNoReceiptID, s)
	}
	return r, nil
}

// receiptFields maps each key found (first occurrence) to its raw value.
func receiptFields(s string) map[string]string {
	out := make(map[string]string)
	key, start := "", -1
	for i := 0; i < len(s); i++ {
		if i > 0 && !isSpace(s[i-1]) {
			continue
		}
		k, end := matchKey(s, i)
		if k == "" {
			continue
		}
		if key != "" {
			setOnce(out, key, s[start:i])
		}
		key, start = k, end
		if k == "text" {
			break
		}
		i = end - 1
	}
	if key != "" {
		setOnce(out, key, s[start:])
	}
	return out
}

func setOnce(m map[string]string, k, v string) {
	if _, ok := m[k]; !ok {
		m[k] = strings.TrimSpace(v)
	}
}

// matchKey reports the key starting at s[i] ("submit_date" reported as
// "submit date") and the index just past its colon.
func matchKey(s string, i int) (string, int) {
	for _, k := range receiptKeys {
		end, ok := matchFold(s, i, k)
		if !ok {
			continue
		}
		for end < len(s) && isSpace(s[end]) {
			end++
		}
		if end < len(s) && s[end] == ':' {
			return strings.ReplaceAll(k, "_", " "), end + 1
		}
	}
	return "", 0
}

// matchFold matches key at s[i:] ASCII case-insensitively; a space in key
// matches one or more spaces.
func matchFold(s string, i int, key string) (int, bool) {
	for j := 0; j < len(key); j++ {
		if key[j] == ' ' {
			if i >= len(s) || !isSpace(s[i]) {
				return 0, false
			}
			for i < len(s) && isSpace(s[i]) {
				i++
			}
			continue
		}
		if i >= len(s) || lower(s[i]) != key[j] {
			return 0, false
		}
		i++
	}
	return i, true
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// NormalizeMessageID is how message ids are compared: submit_sm_resp ids
// and receipt ids (TLV or text) are trimmed of spaces and NULs, nothing
// else. Case and hex/decimal form are kept as the SMSC sent them.
func NormalizeMessageID(id string) string {
	return strings.Trim(id, " \t\r\n\x00")
}

// messageStates names message_state values (§5.2.28) as receipt stat: words.
var messageStates = map[byte]string{
	1: "ENROUTE", 2: "DELIVRD", 3: "EXPIRED", 4: "DELETED",
	5: "UNDELIV", 6: "ACCEPTD", 7: "UNKNOWN", 8: "REJECTD",
}

// receiptFromTLVs builds a receipt from the text and the optional
// parameters of a deliver_sm or data_sm. MessageID prefers the
// receipted_message_id TLV (§5.3.2.12): the text's id is often truncated
// or converted; but with an IDFormat, a TLV id that does not parse in the
// receipt base gives way to a text id that does. Stat and Err prefer the
// text and fall back on message_state (§5.3.2.35) and network_error_code
// (§5.3.2.31).
func receiptFromTLVs(text string, tlvs map[uint16][]byte, f IDFormat) (Receipt, error) {
	r, err := ParseReceiptText(text)
	_, base, _ := f.bases()
	textID, textOK := CanonicalID(r.MessageID, base)
	r.MessageID = textID
	if v, ok := tlvs[wire.TagReceiptedMessageID]; ok {
		id, idOK := CanonicalID(wire.CStringValue(v), base)
		if id != "" && (idOK || !textOK || base == 0) {
			r.MessageID, err = id, nil
		}
	}
	r.MessageID = capID(r.MessageID)
	if v, ok := tlvs[wire.TagMessageState]; ok && r.Stat == "" && len(v) == 1 {
		r.Stat = messageStates[v[0]]
	}
	if v, ok := tlvs[wire.TagNetworkErrorCode]; ok && r.Err == "" {
		if code, ok := wire.NetworkErrorCode(v); ok {
			r.Err = fmt.Sprintf("%03d", code)
		}
	}
	return r, err
}
