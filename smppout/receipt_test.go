package smppout

import (
	"errors"
	"strings"
	"testing"

	"github.com/smsbridge/smsbridge/smppout/internal/wire"
)

func TestParseReceiptText(t *testing.T) {
	tests := []struct {
		name, in      string
		id, stat, err string
		wantErrNoID   bool
	}{
		{"appendix B", "id:0123456789 sub:001 dlvrd:001 submit date:2611211200 done date:2611211201 stat:DELIVRD err:000 text:Hello",
			"0123456789", "DELIVRD", "000", false},
		{"uppercase keys", "ID:abc SUB:001 DLVRD:000 SUBMIT DATE:2611211200 DONE DATE:2611211201 STAT:UNDELIV ERR:001 TEXT:x",
			"abc", "UNDELIV", "001", false},
		{"odd spacing", "  id : 77   sub:001  stat:  expired   err:  5 ", "77", "EXPIRED", "5", false},
		{"underscore dates", "id:9 submit_date:2611211200 done_date:2611211201 stat:DELIVRD", "9", "DELIVRD", "", false},
		{"missing fields", "id:42", "42", "", "", false},
		{"keys reordered", "stat:REJECTD err:099 id:x1", "x1", "REJECTD", "099", false},
		{"text holds keys", "id:1 stat:DELIVRD err:000 text:id:2 stat:UNDELIV", "1", "DELIVRD", "000", false},
		{"id padded with NUL", "id:00ff\x00 stat:DELIVRD", "00ff", "DELIVRD", "", false},
		{"key inside a word is no key", "xid:5 id:6", "6", "", "", false},
		{"no id", "sub:001 stat:DELIVRD", "", "DELIVRD", "", true},
		{"empty", "", "", "", "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := ParseReceiptText(tc.in)
			if tc.wantErrNoID != errors.Is(err, ErrNoReceiptID) {
				t.Fatalf("err = %v", err)
			}
			if r.MessageID != tc.id || r.Stat != tc.stat || r.Err != tc.err || r.Text != tc.in {
				t.Fatalf("got %+v, want id %q stat %q err %q", r, tc.id, tc.stat, tc.err)
			}
		})
	}
}

func TestReceiptFromTLVs(t *testing.T) {
	text := "id:0000000010 sub:001 dlvrd:001 submit date:2611211200 done date:2611211201 stat:DELIVRD err:000 text:"
	tests := []struct {
		name          string
		text          string
		tlvs          map[uint16][]byte
		id, stat, err string
	}{
		{"text only", text, nil, "0000000010", "DELIVRD", "000"},
		{"TLV id wins over text id", text, map[uint16][]byte{wire.TagReceiptedMessageID: []byte("a\x00")}, "a", "DELIVRD", "000"},
		{"TLVs only", "", map[uint16][]byte{
			wire.TagReceiptedMessageID: []byte(" b \x00"), wire.TagMessageState: {5},
			wire.TagNetworkErrorCode: {3, 0, 21}}, "b", "UNDELIV", "021"},
		{"text stat wins over message_state", "id:c stat:EXPIRED", map[uint16][]byte{wire.TagMessageState: {2}}, "c", "EXPIRED", ""},
		// Over SMPP's 64 octets (§5.3.2.12): cut as SubmitID cuts, so that
		// an out-of-spec SMSC's ids still match and can always be stored.
		{"long TLV id cut to 64", text, map[uint16][]byte{wire.TagReceiptedMessageID: []byte(strings.Repeat("x", 40000) + "\x00")},
			strings.Repeat("x", 64), "DELIVRD", "000"},
		{"long text id cut to 64", "id:" + strings.Repeat("y", 70) + " stat:DELIVRD", nil, strings.Repeat("y", 64), "DELIVRD", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := receiptFromTLVs(tc.text, tc.tlvs, "")
			if err != nil || r.MessageID != tc.id || r.Stat != tc.stat || r.Err != tc.err {
				t.Fatalf("got %+v, %v; want %q %q %q", r, err, tc.id, tc.stat, tc.err)
			}
			if sub := IDFormat("").SubmitID(tc.id + "zz"); len(tc.id) == maxIDLen && sub != tc.id {
				t.Errorf("SubmitID of the long id = %q, want it cut like the receipt's", sub)
			}
		})
	}
}

func FuzzReceiptText(f *testing.F) {
	f.Add("id:0123456789 sub:001 dlvrd:001 submit date:2611211200 done date:2611211201 stat:DELIVRD err:000 text:Hello")
	f.Add("ID : x STAT:undeliv")
	f.Add("text:id:1")
	f.Add("submit  date")
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseReceiptText(s)
		if err == nil && r.MessageID == "" {
			t.Fatal("no error and no id")
		}
		if r.MessageID != NormalizeMessageID(r.MessageID) {
			t.Fatalf("id %q not normalised", r.MessageID)
		}
	})
}

func TestStatusTemporary(t *testing.T) {
	tests := []struct {
		status uint32
		want   bool
	}{
		{0x58, true}, {0x14, true}, {0x08, true}, {0x64, true}, {0x45, true}, {0x04, true},
		{0x0B, false}, {0x0A, false}, {0x65, false}, {0x01, false}, {0xFF, false},
	}
	for _, tc := range tests {
		if got := (&StatusError{Status: tc.status}).Temporary(); got != tc.want {
			t.Errorf("0x%02X: Temporary() = %v, want %v", tc.status, got, tc.want)
		}
	}
	if !Temporary(ErrSessionLost) || !errors.Is(ErrSessionLost, ErrTimeout) || !Temporary(ErrNotBound) {
		t.Error("ErrSessionLost/ErrNotBound not temporary")
	}
}

func TestSourceAddr(t *testing.T) {
	tests := []struct {
		in       string
		ton, npi byte
		addr     string
		bad      bool
	}{
		{"", 0, 0, "", false},
		{"+4915112345", 1, 1, "4915112345", false},
		{"12345", 3, 0, "12345", false},
		{"0301234567", 0, 1, "0301234567", false},
		{"Shop", 5, 0, "Shop", false},
		{"Shop 24", 5, 0, "Shop 24", false},
		{"TwelveChars!", 0, 0, "", true},
		{"+123456789012345678901", 0, 0, "", true},
	}
	for _, tc := range tests {
		ton, npi, addr, err := sourceAddr(tc.in, SourceTypes{})
		if (err != nil) != tc.bad || (tc.bad && !errors.Is(err, ErrInvalidSubmit)) || (!tc.bad && (ton != tc.ton || npi != tc.npi || addr != tc.addr)) {
			t.Errorf("sourceAddr(%q) = %d/%d %q %v", tc.in, ton, npi, addr, err)
		}
	}
}

// ValidSource is the configuration's rule, and everything it lets through
// encodes.
func TestValidSource(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want bool
	}{
		{"", true},
		{"+491511234567", true},
		{"+123456789012345", true},   // 15 digits: E.164's most
		{"+1234567890123456", false}, // 16
		{"+", false},
		{"+49 151", false},
		{"12345", true},
		{"12345678901234567890", true},   // 20 digits: source_addr's most
		{"123456789012345678901", false}, // 21
		{"ACME", true},
		{"Shop 24", true},
		{"A.B-C_D&E", true},
		{"ABCDEFGHIJK", true},   // 11
		{"ABCDEFGHIJKL", false}, // 12
		{"Café", false},
		{"ACME!", false},
		{"a\x00b", false},
	} {
		if got := ValidSource(tc.in); got != tc.want {
			t.Errorf("ValidSource(%q) = %v, want %v", tc.in, got, tc.want)
		}
		if _, _, _, err := sourceAddr(tc.in, SourceTypes{}); tc.want && err != nil {
			t.Errorf("ValidSource(%q), but sourceAddr: %v", tc.in, err)
		}
	}
}

func TestSubmitBodyLongUsesMessagePayload(t *testing.T) {
	long := make([]byte, 300)
	body, err := submitBody(Submit{Dest: "+491", ShortMessage: long}, Config{})
	if err != nil {
		t.Fatal(err)
	}
	sm, err := wire.ParseSM(body)
	if err != nil || len(sm.ShortMessage) != 0 || len(sm.TLVMap[wire.TagMessagePayload]) != 300 || sm.DestTON != 1 || sm.Dest != "491" {
		t.Fatalf("got %+v, %v", sm, err)
	}
}
