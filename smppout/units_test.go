package smppout

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/smsbridge/smsbridge/smppout/internal/wire"
)

func TestCanonicalID(t *testing.T) {
	tests := []struct {
		name, id string
		base     int
		want     string
		ok       bool
	}{
		{"hex upper", "1A2B", 16, "6699", true},
		{"hex lower", "1a2b", 16, "6699", true},
		{"hex leading zeros", "00001A2B", 16, "6699", true},
		{"hex 0x prefix", "0x1a2b", 16, "6699", true},
		{"decimal", "6699", 10, "6699", true},
		{"decimal leading zeros", "0000006699", 10, "6699", true},
		{"zero", "0000", 10, "0", true},
		{"NUL and spaces trimmed", " 1A2B\x00", 16, "6699", true},
		{"128-bit hex", "ffffffffffffffffffffffffffffffff", 16, "340282366920938463463374607431768211455", true},
		{"long decimal", "000012345678901234567890", 10, "12345678901234567890", true},
		{"not decimal kept", "1A2B", 10, "1A2B", false},
		{"not hex kept", "msg-77", 16, "msg-77", false},
		{"sign refused", "+12", 10, "+12", false},
		{"as sent", "00ab", 0, "00ab", false},
		{"empty", "", 16, "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := CanonicalID(tc.id, tc.base)
			if got != tc.want || ok != tc.ok {
				t.Fatalf("CanonicalID(%q, %d) = %q, %v; want %q, %v", tc.id, tc.base, got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestIDFormat(t *testing.T) {
	tests := []struct {
		name             string
		f                IDFormat
		submit, receipt  string
		wantSub, wantRcp string
	}{
		{"hex resp, decimal receipt", IDHexDec, "1A2B", "6699", "6699", "6699"},
		{"both hex, case differs", IDHex, "00AB", "ab", "171", "171"},
		{"both decimal, padding differs", IDDec, "42", "0000000042", "42", "42"},
		{"decimal resp, hex receipt", IDDecHex, "255", "FF", "255", "255"},
		{"as sent keeps case and zeros", IDAsSent, "00AB", " 00AB\x00", "00AB", "00AB"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.f.validate(); err != nil {
				t.Fatal(err)
			}
			if s, r := tc.f.SubmitID(tc.submit), tc.f.ReceiptID(tc.receipt); s != tc.wantSub || r != tc.wantRcp {
				t.Fatalf("SubmitID %q, ReceiptID %q; want %q, %q", s, r, tc.wantSub, tc.wantRcp)
			}
		})
	}
	if err := IDFormat("octal").validate(); err == nil {
		t.Fatal("octal accepted")
	}
}

// TestReceiptIDFormat: the receipt side base applies to the TLV and to the
// text; a TLV id that does not parse gives way to a text id that does.
func TestReceiptIDFormat(t *testing.T) {
	tlv := func(id string) map[uint16][]byte {
		return map[uint16][]byte{wire.TagReceiptedMessageID: []byte(id + "\x00")}
	}
	tests := []struct {
		name string
		text string
		tlvs map[uint16][]byte
		f    IDFormat
		want string
	}{
		{"decimal text", "id:0000006699 stat:DELIVRD", nil, IDHexDec, "6699"},
		{"decimal TLV", "", tlv("6699"), IDHexDec, "6699"},
		{"hex TLV in a decimal format gives way to text", "id:0000006699 stat:DELIVRD", tlv("1A2B"), IDHexDec, "6699"},
		{"unparsable TLV and no text id kept", "stat:DELIVRD", tlv("x-1"), IDHexDec, "x-1"},
		{"hex both", "id:00001a2b", tlv("1A2B"), IDHex, "6699"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := receiptFromTLVs(tc.text, tc.tlvs, tc.f)
			if err != nil || r.MessageID != tc.want {
				t.Fatalf("got %q, %v; want %q", r.MessageID, err, tc.want)
			}
		})
	}
}

func TestBucket(t *testing.T) {
	t0 := time.Unix(1000, 0)
	ms := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }
	tests := []struct {
		name  string
		tps   int
		steps []struct {
			at, n int
			wait  time.Duration
		}
	}{
		{"burst is a tenth of a second, then the rate", 100, []struct {
			at, n int
			wait  time.Duration
		}{{0, 10, 0}, {0, 1, 10 * time.Millisecond}, {0, 1, 20 * time.Millisecond}, {30, 2, 10 * time.Millisecond}}},
		{"segments cost one token each", 10, []struct {
			at, n int
			wait  time.Duration
		}{{0, 1, 0}, {0, 3, 300 * time.Millisecond}}},
		{"idle time refills up to the burst only", 100, []struct {
			at, n int
			wait  time.Duration
		}{{0, 10, 0}, {10_000, 10, 0}, {10_000, 1, 10 * time.Millisecond}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := newBucket(tc.tps, t0)
			for i, s := range tc.steps {
				if got := b.reserve(ms(s.at), s.n); got != s.wait {
					t.Fatalf("step %d: wait %v, want %v", i, got, s.wait)
				}
			}
		})
	}
	t.Run("cancel gives tokens back", func(t *testing.T) {
		b := newBucket(10, t0)
		b.reserve(t0, 1)
		if d := b.reserve(t0, 5); d != 500*time.Millisecond {
			t.Fatalf("wait %v", d)
		}
		b.cancel(5)
		if d := b.reserve(t0, 1); d != 100*time.Millisecond {
			t.Fatalf("after cancel: wait %v", d)
		}
	})
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"defaults", Config{Addr: "x:1"}, true},
		{"window 1000", Config{Addr: "x:1", Window: 1000}, true},
		{"window 1001", Config{Addr: "x:1", Window: 1001}, false},
		{"no addr", Config{}, false},
		{"transmitter+receiver", Config{Addr: "x:1", BindMode: BindTransmitterReceiver, Binds: 4}, true},
		{"unknown bind mode", Config{Addr: "x:1", BindMode: "receiver"}, false},
		{"too many binds", Config{Addr: "x:1", Binds: 65}, false},
		{"negative TPS", Config{Addr: "x:1", TPS: -1}, false},
		{"bad id format", Config{Addr: "x:1", IDFormat: "b64"}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrConfig)) {
				t.Fatalf("Validate = %v, want ok %v", err, tc.ok)
			}
		})
	}
	if d := (Config{}).withDefaults(); d.Window != 10 || d.Binds != 1 || d.BindMode != BindTransceiver || d.InterfaceVersion != 0x34 {
		t.Fatalf("defaults %+v", d)
	}
}

func TestSubmitBodyRouteSettings(t *testing.T) {
	short := &AddrType{TON: 3, NPI: 0}
	tests := []struct {
		name         string
		s            Submit
		cfg          Config
		ton, npi, dc byte
	}{
		{"short code derived", Submit{Source: "12345"}, Config{}, 3, 0, 0},
		{"short code overridden", Submit{Source: "12345"}, Config{SourceTypes: SourceTypes{ShortCode: &AddrType{0, 1}}}, 0, 1, 0},
		{"national not a short code", Submit{Source: "0301234567"}, Config{SourceTypes: SourceTypes{ShortCode: short}}, 0, 1, 0},
		{"alphanumeric overridden", Submit{Source: "Shop"}, Config{SourceTypes: SourceTypes{Alphanumeric: &AddrType{5, 9}}}, 5, 9, 0},
		{"international overridden", Submit{Source: "+4930"}, Config{SourceTypes: SourceTypes{International: &AddrType{1, 0}}}, 1, 0, 0},
		{"GSM data coding", Submit{Source: "Shop"}, Config{GSMDataCoding: 1}, 5, 0, 1},
		{"UCS-2 unchanged", Submit{Source: "Shop", DataCoding: 8}, Config{GSMDataCoding: 1}, 5, 0, 8},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.s.Dest, tc.s.ShortMessage = "+491", []byte("x")
			body, err := submitBody(tc.s, tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			sm, _ := wire.ParseSM(body)
			if sm.SourceTON != tc.ton || sm.SourceNPI != tc.npi || sm.DataCoding != tc.dc {
				t.Fatalf("got %d/%d dc %d", sm.SourceTON, sm.SourceNPI, sm.DataCoding)
			}
		})
	}
}

func TestSegments(t *testing.T) {
	tests := []struct {
		name string
		s    Submit
		want int
	}{
		{"short_message", Submit{ShortMessage: make([]byte, 140)}, 1},
		{"explicit", Submit{Segments: 3}, 3},
		{"GSM payload 160", Submit{Payload: true, ShortMessage: make([]byte, 160)}, 1},
		{"GSM payload 161", Submit{Payload: true, ShortMessage: make([]byte, 161)}, 2},
		{"GSM payload 459", Submit{Payload: true, ShortMessage: make([]byte, 459)}, 3},
		{"UCS-2 payload 270", Submit{Payload: true, DataCoding: 8, ShortMessage: make([]byte, 270)}, 3},
		{"long text goes to payload", Submit{ShortMessage: make([]byte, 300)}, 2},
	}
	for _, tc := range tests {
		if got := tc.s.segments(); got != tc.want {
			t.Errorf("%s: %d segments, want %d", tc.name, got, tc.want)
		}
	}
}

func udh8(ref, total, seq byte) []byte { return []byte{5, 0, 3, ref, total, seq} }

func TestNewMO(t *testing.T) {
	sar := map[uint16][]byte{wire.TagSARMsgRefNum: {1, 2}, wire.TagSARTotalSegments: {3}, wire.TagSARSegmentSeqnum: {2}}
	tests := []struct {
		name     string
		sm       wire.SM
		from     string
		part     *SAR
		udh, pay string
	}{
		{"single", wire.SM{SourceTON: 1, Source: "4915", ShortMessage: []byte("hi")}, "+4915", nil, "", "hi"},
		{"national sender kept", wire.SM{SourceTON: 2, Source: "0151", ShortMessage: []byte("hi")}, "0151", nil, "", "hi"},
		{"UDH 8-bit ref", wire.SM{ESMClass: 0x40, ShortMessage: append(udh8(7, 2, 1), "ab"...)}, "", &SAR{7, 2, 1}, string(udh8(7, 2, 1)), "ab"},
		{"UDH 16-bit ref after another IE", wire.SM{ESMClass: 0x40, ShortMessage: []byte{9, 0x24, 1, 1, 8, 4, 1, 2, 3, 3, 'x'}},
			"", &SAR{0x0102, 3, 3}, "\x09\x24\x01\x01\x08\x04\x01\x02\x03\x03", "x"},
		{"UDH seq out of range ignored", wire.SM{ESMClass: 0x40, ShortMessage: append(udh8(7, 2, 3), "ab"...)}, "", nil, string(udh8(7, 2, 3)), "ab"},
		{"UDHI with a broken UDH keeps all", wire.SM{ESMClass: 0x40, ShortMessage: []byte{9, 0, 3}}, "", nil, "", "\x09\x00\x03"},
		{"SAR TLVs", wire.SM{ShortMessage: []byte("p2"), TLVMap: sar}, "", &SAR{0x0102, 3, 2}, "", "p2"},
		{"message_payload", wire.SM{TLVMap: map[uint16][]byte{wire.TagMessagePayload: []byte("long")}}, "", nil, "", "long"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := newMO("deliver_sm", tc.sm)
			if m.From != tc.from || string(m.UDH) != tc.udh || string(m.Payload) != tc.pay ||
				(m.Part == nil) != (tc.part == nil) || (m.Part != nil && *m.Part != *tc.part) {
				t.Fatalf("got from %q part %+v udh %x payload %q", m.From, m.Part, m.UDH, m.Payload)
			}
		})
	}
}

func TestReassembler(t *testing.T) {
	part := func(from string, ref uint16, total, seq uint8, text string) MO {
		return MO{From: from, To: "1234", Part: &SAR{Ref: ref, Total: total, Seq: seq}, Payload: []byte(text)}
	}
	t0 := time.Unix(0, 0)
	tests := []struct {
		name       string
		in         []MO
		want       []string // payloads completed, in order of completion
		dups       int
		pendingEnd int
	}{
		{"in order", []MO{part("a", 1, 3, 1, "x"), part("a", 1, 3, 2, "y"), part("a", 1, 3, 3, "z")}, []string{"xyz"}, 0, 0},
		{"reversed", []MO{part("a", 1, 3, 3, "z"), part("a", 1, 3, 2, "y"), part("a", 1, 3, 1, "x")}, []string{"xyz"}, 0, 0},
		{"duplicate part counted, first kept", []MO{part("a", 1, 2, 1, "x"), part("a", 1, 2, 1, "X"), part("a", 1, 2, 2, "y")}, []string{"xy"}, 1, 0},
		{"interleaved senders with the same ref", []MO{part("a", 1, 2, 2, "b"), part("b", 1, 2, 1, "1"), part("a", 1, 2, 1, "a"), part("b", 1, 2, 2, "2")}, []string{"ab", "12"}, 0, 0},
		{"single message passes through", []MO{{From: "a", Payload: []byte("solo")}}, []string{"solo"}, 0, 0},
		{"missing part waits", []MO{part("a", 9, 3, 1, "x"), part("a", 9, 3, 3, "z")}, nil, 0, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := NewReassembler(time.Minute)
			var got []string
			for i, m := range tc.in {
				if a, ok := r.Add(t0.Add(time.Duration(i)*time.Second), m); ok {
					if !a.Complete() || len(a.Missing()) != 0 {
						t.Fatalf("incomplete %+v", a)
					}
					got = append(got, string(a.Payload()))
				}
			}
			if len(got) != len(tc.want) || (len(got) > 0 && !equalStrings(got, tc.want)) || r.Duplicates != tc.dups || r.Pending() != tc.pendingEnd {
				t.Fatalf("got %q dups %d pending %d; want %q %d %d", got, r.Duplicates, r.Pending(), tc.want, tc.dups, tc.pendingEnd)
			}
		})
	}
	t.Run("timeout gives up with what is there", func(t *testing.T) {
		r := NewReassembler(time.Minute)
		r.Add(t0, part("a", 9, 3, 3, "z"))
		r.Add(t0.Add(30*time.Second), part("a", 9, 3, 1, "x"))
		if out := r.Expire(t0.Add(time.Minute)); len(out) != 0 {
			t.Fatal("expired too early")
		}
		out := r.Expire(t0.Add(61 * time.Second))
		if len(out) != 1 || out[0].Complete() || !bytes.Equal(out[0].Payload(), []byte("xz")) ||
			len(out[0].Missing()) != 1 || out[0].Missing()[0] != 2 || r.Pending() != 0 {
			t.Fatalf("expired %+v", out)
		}
	})
}

func equalStrings(a, b []string) bool {
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return len(a) == len(b)
}
