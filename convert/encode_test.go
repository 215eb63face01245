package convert

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func rep(s string, n int) string { return strings.Repeat(s, n) }

// septets repeats one septet value n times.
func septets(b byte, n int) []byte { return bytes.Repeat([]byte{b}, n) }

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func mustEncode(t *testing.T, text string, opt Options) *Encoded {
	t.Helper()
	e, err := Encode(text, opt)
	if err != nil {
		t.Fatalf("Encode(%.40q): %v", text, err)
	}
	return e
}

func payloads(e *Encoded) [][]byte {
	var ps [][]byte
	for _, s := range e.Segments {
		ps = append(ps, s.Payload)
	}
	return ps
}

// TestEncode checks the default alphabet, UCS-2 and their split with the
// default UDH 8-bit concatenation (TS 23.040 §9.2.3.24.1).
func TestEncode(t *testing.T) {
	euro := []byte{0x1B, 0x65}
	ya := []byte{0x04, 0x4F}                // я U+044F
	smile := []byte{0xD8, 0x3D, 0xDE, 0x00} // 😀 U+1F600
	tests := []struct {
		name   string
		text   string
		coding Coding
		segs   [][]byte
	}{
		{"empty text is one empty SMS", "", GSM7, [][]byte{{}}},
		{"exactly 160 GSM septets is one SMS (§9.2.3.16)", rep("a", 160), GSM7, [][]byte{septets('a', 160)}},
		{"161 GSM septets is two, 153 in the first", rep("a", 161), GSM7, [][]byte{septets('a', 153), septets('a', 8)}},
		{"three parts carry 153, 153 and the rest", rep("a", 400), GSM7,
			[][]byte{septets('a', 153), septets('a', 153), septets('a', 94)}},
		{"€ costs two septets (§6.2.1.1)", "€", GSM7, [][]byte{euro}},
		{"80 € fill one SMS exactly", rep("€", 80), GSM7, [][]byte{bytes.Repeat(euro, 80)}},
		{"escape pair at septet 153 moves to next segment", rep("a", 152) + "€" + rep("b", 10), GSM7,
			[][]byte{septets('a', 152), cat(euro, septets('b', 10))}},
		{"escape pair ending at septet 153 stays", rep("a", 151) + "€" + rep("b", 10), GSM7,
			[][]byte{cat(septets('a', 151), euro), septets('b', 10)}},
		{"81 € split 76 and 5", rep("€", 81), GSM7, [][]byte{bytes.Repeat(euro, 76), bytes.Repeat(euro, 5)}},
		{"CR dropped and LF kept as 0x0A", "a\r\nb\rc", GSM7, [][]byte{{'a', 0x0A, 'b', 'c'}}},
		{"default alphabet positions (§6.2.1)", "@£$¥èéùìòÇØøÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ¤¡ÄÖÑÜ§¿äöñüà", GSM7, [][]byte{{
			0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0B, 0x0C, 0x0E, 0x0F,
			0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1A, 0x1C, 0x1D, 0x1E, 0x1F,
			0x24, 0x40, 0x5B, 0x5C, 0x5D, 0x5E, 0x5F, 0x60, 0x7B, 0x7C, 0x7D, 0x7E, 0x7F}}},
		{"extension table is escape plus code (§6.2.1.1)", "\f^{}\\[~]|€", GSM7, [][]byte{{
			0x1B, 0x0A, 0x1B, 0x14, 0x1B, 0x28, 0x1B, 0x29, 0x1B, 0x2F,
			0x1B, 0x3C, 0x1B, 0x3D, 0x1B, 0x3E, 0x1B, 0x40, 0x1B, 0x65}}},
		{"decomposed e and acute compose to GSM é", "e\u0301", GSM7, [][]byte{{0x05}}},
		{"one character outside GSM makes it all UCS-2", "ça", UCS2, [][]byte{{0x00, 0xE7, 0x00, 0x61}}},
		{"70 UCS-2 units one SMS", rep("я", 70), UCS2, [][]byte{bytes.Repeat(ya, 70)}},
		{"71 UCS-2 units two, 67 in the first", rep("я", 71), UCS2, [][]byte{bytes.Repeat(ya, 67), bytes.Repeat(ya, 4)}},
		{"rune above U+FFFF is a surrogate pair", "😀", UCS2, [][]byte{smile}},
		{"surrogate pair at unit 67 moves to next part", rep("я", 66) + "😀" + rep("я", 5), UCS2,
			[][]byte{bytes.Repeat(ya, 66), cat(smile, bytes.Repeat(ya, 5))}},
		{"surrogate pair ending at unit 67 stays", rep("я", 65) + "😀" + rep("я", 5), UCS2,
			[][]byte{cat(bytes.Repeat(ya, 65), smile), bytes.Repeat(ya, 5)}},
		{"35 surrogate pairs fill one SMS", rep("😀", 35), UCS2, [][]byte{bytes.Repeat(smile, 35)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := mustEncode(t, tc.text, Options{Transliterate: TranslitNone})
			if got.Coding != tc.coding {
				t.Fatalf("coding %v, want %v", got.Coding, tc.coding)
			}
			if got.Needed != len(tc.segs) {
				t.Errorf("Needed %d, want %d", got.Needed, len(tc.segs))
			}
			checkPayloads(t, got, tc.segs)
		})
	}
}

func checkPayloads(t *testing.T, got *Encoded, want [][]byte) {
	t.Helper()
	if len(got.Segments) != len(want) {
		t.Fatalf("%d segments, want %d", len(got.Segments), len(want))
	}
	for i, s := range got.Segments {
		if !bytes.Equal(s.Payload, want[i]) {
			t.Errorf("segment %d payload (%d octets) % x, want (%d) % x", i+1, len(s.Payload), s.Payload, len(want[i]), want[i])
		}
	}
}

// TestEncodeSegmentSizes checks that the units per segment follow from
// the octets the header leaves (TS 23.040 §9.2.3.24, fill bits included).
func TestEncodeSegmentSizes(t *testing.T) {
	tests := []struct {
		name   string
		concat Concat
		langs  []string
		text   string
		sizes  []int // units per segment
		needed int
	}{
		{"udh8: 6-octet UDH leaves 153 septets (§9.2.3.24.1)", ConcatUDH8, nil, rep("a", 306), []int{153, 153}, 2},
		{"udh8: 6-octet UDH leaves 67 UCS-2 units", ConcatUDH8, nil, rep("я", 134), []int{67, 67}, 2},
		{"udh16: 7-octet UDH leaves 152 septets (§9.2.3.24.8)", ConcatUDH16, nil, rep("a", 304), []int{152, 152}, 2},
		{"udh16: 161 septets are 152 and 9", ConcatUDH16, nil, rep("a", 161), []int{152, 9}, 2},
		{"udh16: 7-octet UDH leaves 66 UCS-2 units", ConcatUDH16, nil, rep("я", 71), []int{66, 5}, 2},
		{"udh16: single SMS still holds 160", ConcatUDH16, nil, rep("a", 160), []int{160}, 1},
		{"sar: parts leave room for the 16-bit element the SMSC adds (152 septets)", ConcatSAR, nil, rep("a", 400), []int{152, 152, 96}, 3},
		{"sar: parts leave room for the 16-bit element the SMSC adds (66 units)", ConcatSAR, nil, rep("я", 141), []int{66, 66, 9}, 3},
		{"sar: a lone SMS is a whole 160 septets", ConcatSAR, nil, rep("a", 160), []int{160}, 1},
		{"payload: one segment, counted as 153-septet parts", ConcatPayload, nil, rep("a", 400), []int{400}, 3},
		{"payload: one segment, counted as 67-unit parts", ConcatPayload, nil, rep("я", 135), []int{135}, 3},
		{"single shift element (§9.2.3.24.15) leaves 155 in a lone SMS", ConcatUDH8, []string{"es"},
			rep("á", 77) + "a", []int{155}, 1},
		{"concatenation plus single shift leaves 149 septets, escape pair kept whole", ConcatUDH8, []string{"es"},
			rep("a", 148) + rep("á", 4), []int{148, 8}, 2},
		{"locking shift (§9.2.3.24.16) leaves 155 in a lone SMS", ConcatUDH8, []string{"tr"},
			rep("ş", 155), []int{155}, 1},
		{"concatenation plus locking shift leaves 149 septets", ConcatUDH8, []string{"tr"},
			rep("ş", 156), []int{149, 7}, 2},
		{"udh16 plus locking shift leaves 148 septets", ConcatUDH16, []string{"tr"},
			rep("ş", 156), []int{148, 8}, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := mustEncode(t, tc.text, Options{Concat: tc.concat, Languages: tc.langs})
			var sizes []int
			for _, s := range got.Segments {
				n := len(s.Payload)
				if got.Coding == UCS2 {
					n /= 2
				}
				sizes = append(sizes, n)
			}
			if !equalInts(sizes, tc.sizes) || got.Needed != tc.needed {
				t.Errorf("sizes %v needed %d, want %v needed %d (coding %v, shifts %d/%d)",
					sizes, got.Needed, tc.sizes, tc.needed, got.Coding, got.LockingShift, got.SingleShift)
			}
			for i := range got.Segments {
				checkFits(t, got, i)
			}
		})
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// checkFits checks that segment i with the UDH its Header gives fits the
// 140 octets of TS 23.040 §9.2.3.16, and that a full GSM segment uses them.
func checkFits(t *testing.T, e *Encoded, i int) {
	t.Helper()
	if e.Concat == ConcatPayload {
		return // the SMSC splits message_payload
	}
	udh := e.Header(i, 0xBEEF).UDH()
	if n := UserDataOctets(e.Coding, udh, e.Segments[i].Payload); n > 140 {
		t.Errorf("segment %d: %d octets of user data with UDH % x", i+1, n, udh)
	}
	if e.Coding == GSM7 {
		if n := len(PackSeptets(udh, e.Segments[i].Payload)); n > 140 {
			t.Errorf("segment %d packs into %d octets", i+1, n)
		}
	}
}

// TestHeaderUDH checks the information elements of TS 23.040 §9.2.3.24.
func TestHeaderUDH(t *testing.T) {
	tests := []struct {
		name string
		h    Header
		want []byte
	}{
		{"lone SMS in the default alphabet has no UDH", Header{Concat: ConcatUDH8, Total: 1, Seq: 1}, nil},
		{"8-bit reference (§9.2.3.24.1)", Header{Concat: ConcatUDH8, Ref: 0x12A7, Total: 3, Seq: 2},
			[]byte{0x05, 0x00, 0x03, 0xA7, 0x03, 0x02}},
		{"16-bit reference (§9.2.3.24.8)", Header{Concat: ConcatUDH16, Ref: 0x12A7, Total: 3, Seq: 2},
			[]byte{0x06, 0x08, 0x04, 0x12, 0xA7, 0x03, 0x02}},
		{"SAR parts carry no concatenation element", Header{Concat: ConcatSAR, Ref: 1, Total: 3, Seq: 2}, nil},
		{"lone SMS with single shift (§9.2.3.24.15)", Header{Concat: ConcatUDH8, Total: 1, Seq: 1, SingleShift: 2},
			[]byte{0x03, 0x24, 0x01, 0x02}},
		{"8-bit reference with both shifts (§9.2.3.24.16)",
			Header{Concat: ConcatUDH8, Ref: 7, Total: 2, Seq: 1, LockingShift: 1, SingleShift: 3},
			[]byte{0x0B, 0x00, 0x03, 0x07, 0x02, 0x01, 0x24, 0x01, 0x03, 0x25, 0x01, 0x01}},
		{"SAR part keeps its locking shift", Header{Concat: ConcatSAR, Total: 2, Seq: 1, LockingShift: 1},
			[]byte{0x03, 0x25, 0x01, 0x01}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.h.UDH(); !bytes.Equal(got, tc.want) {
				t.Errorf("UDH % x, want % x", got, tc.want)
			}
		})
	}
}

func TestEncodeHeaderNumbersTheParts(t *testing.T) {
	e := mustEncode(t, rep("x", 2*153+1), Options{})
	for i := range e.Segments {
		want := []byte{0x05, 0x00, 0x03, 0xA7, 0x03, byte(i + 1)}
		if got := e.Header(i, 0xA7).UDH(); !bytes.Equal(got, want) {
			t.Errorf("part %d UDH % x, want % x", i+1, got, want)
		}
	}
}

// TestEncodeSegmentCap checks Options.MaxSegments with both policies.
func TestEncodeSegmentCap(t *testing.T) {
	tests := []struct {
		name   string
		text   string
		opt    Options
		sizes  []int
		last   string // text of the last segment, suffix
		needed int
	}{
		{"GSM cut to 2 parts ends with ... inside the cap", rep("a", 400), Options{MaxSegments: 2},
			[]int{153, 153}, rep("a", 150) + "...", 3},
		{"GSM cut to 1 part keeps the lone-SMS size of 160", rep("a", 400), Options{MaxSegments: 1},
			[]int{160}, rep("a", 157) + "...", 3},
		{"UCS-2 cut to 1 part ends with an ellipsis", rep("я", 200), Options{MaxSegments: 1},
			[]int{70}, rep("я", 69) + "…", 3},
		{"UCS-2 cut to 2 parts", rep("я", 200), Options{MaxSegments: 2},
			[]int{67, 67}, rep("я", 66) + "…", 3},
		{"space before the marker is trimmed", rep("a", 155) + "  " + rep("b", 20), Options{MaxSegments: 1},
			[]int{158}, rep("a", 155) + "...", 2},
		{"escape pair not split by the marker", rep("a", 156) + "€€€", Options{MaxSegments: 1},
			[]int{159}, rep("a", 156) + "...", 2},
		{"surrogate pair not split by the marker", rep("я", 68) + "😀😀", Options{MaxSegments: 1},
			[]int{69}, rep("я", 68) + "…", 2},
		{"payload cut to the cap is one segment of 2 parts' worth", rep("a", 400),
			Options{MaxSegments: 2, Concat: ConcatPayload}, []int{306}, rep("a", 3) + "...", 3},
		{"text within the cap is not cut", rep("a", 306), Options{MaxSegments: 2}, []int{153, 153}, "aaa", 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := mustEncode(t, tc.text, tc.opt)
			var sizes []int
			for _, s := range got.Segments {
				n := len(s.Payload)
				if got.Coding == UCS2 {
					n /= 2
				}
				sizes = append(sizes, n)
			}
			last := got.Segments[len(got.Segments)-1].Text
			if !equalInts(sizes, tc.sizes) || !strings.HasSuffix(last, tc.last) || got.Needed != tc.needed {
				t.Errorf("sizes %v needed %d last %q; want %v needed %d last ending %q", sizes, got.Needed, last, tc.sizes, tc.needed, tc.last)
			}
			if got.Truncated != (tc.needed > tc.opt.MaxSegments) {
				t.Errorf("Truncated %v", got.Truncated)
			}
			for i := range got.Segments {
				checkFits(t, got, i)
			}
		})
	}
}

func TestEncodeRejectsOverCap(t *testing.T) {
	_, err := Encode(rep("a", 400), Options{MaxSegments: 2, Overflow: OverflowReject})
	var se *SegmentsError
	if !errors.As(err, &se) || se.Needed != 3 || se.Max != 2 {
		t.Fatalf("err = %v, want *SegmentsError{Needed: 3, Max: 2}", err)
	}
	if _, err := Encode(rep("a", 306), Options{MaxSegments: 2, Overflow: OverflowReject}); err != nil {
		t.Errorf("text at the cap refused: %v", err)
	}
}

func TestEncodeNeededBeyond255(t *testing.T) {
	e := mustEncode(t, rep("a", 153*300), Options{MaxSegments: MaxSegments})
	if e.Needed != 300 || len(e.Segments) != MaxSegments || !e.Truncated {
		t.Errorf("Needed %d, %d segments, truncated %v; want 300, 255, true", e.Needed, len(e.Segments), e.Truncated)
	}
}

func TestEncodeRefusesBadOptions(t *testing.T) {
	for _, opt := range []Options{{Concat: "udh9"}, {MaxSegments: 256}, {Languages: []string{"xx"}}, {Transliterate: "latin"}} {
		if _, err := Encode("hi", opt); err == nil {
			t.Errorf("Encode with %+v succeeded", opt)
		}
	}
}

func TestSeptets(t *testing.T) {
	tests := []struct {
		name string
		text string
		n    int
		ok   bool
	}{
		{"plain ASCII costs one each", "hello", 5, true},
		{"€ costs two septets", "€", 2, true},
		{"brackets cost two each", "[x]", 5, true},
		{"CR is free", "a\r\nb", 3, true},
		{"emoji does not fit", "hi 🙂", 0, false},
		{"small c cedilla does not fit (only capital Ç does)", "ç", 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n, ok := Septets(tc.text)
			if n != tc.n || ok != tc.ok {
				t.Errorf("Septets(%q) = %d, %v; want %d, %v", tc.text, n, ok, tc.n, tc.ok)
			}
		})
	}
}

func TestDecodeRejects(t *testing.T) {
	tests := []struct {
		name    string
		coding  Coding
		payload []byte
		lock    uint8
	}{
		{"octet above 0x7F in GSM7", GSM7, []byte{0x80}, 0},
		{"escape at the end", GSM7, []byte{'a', 0x1B}, 0},
		{"escape escape is reserved (§6.2.1.1)", GSM7, []byte{0x1B, 0x1B, 'a'}, 0},
		{"odd UCS-2 length", UCS2, []byte{0x00, 0x61, 0x00}, 0},
		{"Spanish has no locking shift table (A.3.2)", GSM7, []byte{'a'}, 2},
		{"unknown national language", GSM7, []byte{'a'}, 99},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := DecodeWith(tc.coding, tc.payload, tc.lock, 0); !errors.Is(err, ErrBadPayload) {
				t.Errorf("DecodeWith(% x) err = %v, want ErrBadPayload", tc.payload, err)
			}
		})
	}
}

func TestDecodeUnknownExtensionShowsLockingCharacter(t *testing.T) {
	// TS 23.038 §6.2.1.1 note: a receiver shows the default (or locking
	// shift) character of the same code.
	got, err := DecodeWith(GSM7, []byte{0x1B, 0x41}, 0, 0)
	if err != nil || got != "A" {
		t.Errorf("got %q, %v; want \"A\"", got, err)
	}
	got, err = DecodeWith(GSM7, []byte{0x1B, 0x40}, 1, 0) // 0x40 is İ in Turkish locking
	if err != nil || got != "|" {
		t.Errorf("got %q, %v; want \"|\" from the default extension", got, err)
	}
}

func TestDataCoding(t *testing.T) {
	if GSM7.DataCoding() != 0x00 || UCS2.DataCoding() != 0x08 {
		t.Errorf("data_coding GSM7 %#x UCS2 %#x, want 0x00 0x08", GSM7.DataCoding(), UCS2.DataCoding())
	}
}

// TestPackSeptets checks packing against TS 23.038 §6.1.2.1.1 and the fill
// bits of TS 23.040 §9.2.3.24.
func TestPackSeptets(t *testing.T) {
	tests := []struct {
		name    string
		udh     []byte
		septets string
		want    []byte
	}{
		{"hellohello packs to the textbook octets", nil, "hellohello",
			[]byte{0xE8, 0x32, 0x9B, 0xFD, 0x46, 0x97, 0xD9, 0xEC, 0x37}},
		{"8 septets pack into 7 octets", nil, "12345678", []byte{0x31, 0xD9, 0x8C, 0x56, 0xB3, 0xDD, 0x70}},
		{"after a 6-octet UDH one fill bit, then the septets", []byte{5, 0, 3, 1, 2, 1}, "A",
			[]byte{5, 0, 3, 1, 2, 1, 0x82}},
		{"after a 7-octet UDH no fill bit", []byte{6, 8, 4, 0, 1, 2, 1}, "A",
			[]byte{6, 8, 4, 0, 1, 2, 1, 0x41}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := PackSeptets(tc.udh, []byte(tc.septets)); !bytes.Equal(got, tc.want) {
				t.Errorf("PackSeptets = % x, want % x", got, tc.want)
			}
		})
	}
	full := PackSeptets([]byte{5, 0, 3, 1, 2, 1}, septets('a', 153))
	if len(full) != 140 {
		t.Errorf("153 septets after the 8-bit concatenation UDH pack into %d octets, want 140", len(full))
	}
}

// TestPackPadsWithCR: TS 23.038 §6.1.2.3.1, when 7 bits of the last octet
// are spare, a phone that counts septets from octets reads one more: it must
// be CR, not "@" (septet 0).
func TestPackPadsWithCR(t *testing.T) {
	udh := []byte{5, 0, 3, 1, 2, 1}                           // 48 bits, 1 fill bit: septets start at bit 49
	septets := []byte{'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'} // 49 + 56 = 105 bits: 7 spare in octet 14
	out := PackSeptets(udh, septets)
	if len(out) != 14 {
		t.Fatalf("%d octets, want 14", len(out))
	}
	extra := (out[13] >> 1) & 0x7F
	if extra != 0x0D {
		t.Errorf("the spare septet is %#x, want CR (0x0d)", extra)
	}
	// With one spare bit there is nothing to fill.
	if out := PackSeptets(nil, septets[:1]); len(out) != 1 || out[0] != 'a' {
		t.Errorf("one septet packs to % x", out)
	}
}
