package convert

import (
	"bytes"
	"strings"
	"testing"
)

// udh is the concatenation header for part seq of total, reference ref.
func udh(ref, total, seq byte) []byte { return []byte{0x05, 0x00, 0x03, ref, total, seq} }

func rep(s string, n int) string { return strings.Repeat(s, n) }

// septets repeats one septet value n times.
func septets(b byte, n int) []byte { return bytes.Repeat([]byte{b}, n) }

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func TestEncode(t *testing.T) {
	euro := []byte{0x1B, 0x65}
	ya := []byte{0x04, 0x4F}                // я U+044F
	smile := []byte{0xD8, 0x3D, 0xDE, 0x00} // 😀 U+1F600
	tests := []struct {
		name   string
		text   string
		coding Coding
		segs   []Segment
	}{
		{"empty text is one empty SMS", "", GSM7, []Segment{{Payload: []byte{}}}},
		{"exactly 160 GSM septets is one SMS", rep("a", 160), GSM7,
			[]Segment{{Payload: septets('a', 160)}}},
		{"161 GSM septets is two, 153 in the first", rep("a", 161), GSM7, []Segment{
			{UDH: udh(7, 2, 1), Payload: septets('a', 153)},
			{UDH: udh(7, 2, 2), Payload: septets('a', 8)}}},
		{"three parts carry 153, 153 and the rest", rep("a", 400), GSM7, []Segment{
			{UDH: udh(7, 3, 1), Payload: septets('a', 153)},
			{UDH: udh(7, 3, 2), Payload: septets('a', 153)},
			{UDH: udh(7, 3, 3), Payload: septets('a', 94)}}},
		{"€ costs two septets", "€", GSM7, []Segment{{Payload: euro}}},
		{"80 € fill one SMS exactly", rep("€", 80), GSM7,
			[]Segment{{Payload: bytes.Repeat(euro, 80)}}},
		{"escape pair at septet 153 moves to next segment", rep("a", 152) + "€" + rep("b", 10), GSM7, []Segment{
			{UDH: udh(7, 2, 1), Payload: septets('a', 152)},
			{UDH: udh(7, 2, 2), Payload: cat(euro, septets('b', 10))}}},
		{"escape pair ending at septet 153 stays", rep("a", 151) + "€" + rep("b", 10), GSM7, []Segment{
			{UDH: udh(7, 2, 1), Payload: cat(septets('a', 151), euro)},
			{UDH: udh(7, 2, 2), Payload: septets('b', 10)}}},
		{"81 € split 76 and 5", rep("€", 81), GSM7, []Segment{
			{UDH: udh(7, 2, 1), Payload: bytes.Repeat(euro, 76)},
			{UDH: udh(7, 2, 2), Payload: bytes.Repeat(euro, 5)}}},
		{"CR dropped and LF kept as 0x0A", "a\r\nb\rc", GSM7, []Segment{{Payload: []byte{'a', 0x0A, 'b', 'c'}}}},
		{"default alphabet positions", "@£$¥èéùìòÇØøÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ¤¡ÄÖÑÜ§¿äöñüà", GSM7, []Segment{{Payload: []byte{
			0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0B, 0x0C, 0x0E, 0x0F,
			0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1A, 0x1C, 0x1D, 0x1E, 0x1F,
			0x24, 0x40, 0x5B, 0x5C, 0x5D, 0x5E, 0x5F, 0x60, 0x7B, 0x7C, 0x7D, 0x7E, 0x7F}}}},
		{"extension table is escape plus code", "\f^{}\\[~]|€", GSM7, []Segment{{Payload: []byte{
			0x1B, 0x0A, 0x1B, 0x14, 0x1B, 0x28, 0x1B, 0x29, 0x1B, 0x2F,
			0x1B, 0x3C, 0x1B, 0x3D, 0x1B, 0x3E, 0x1B, 0x40, 0x1B, 0x65}}}},
		{"one character outside GSM makes it all UCS-2", "ça", UCS2, []Segment{{Payload: []byte{0x00, 0xE7, 0x00, 0x61}}}},
		{"70 UCS-2 units one SMS", rep("я", 70), UCS2, []Segment{{Payload: bytes.Repeat(ya, 70)}}},
		{"71 UCS-2 units two, 67 in the first", rep("я", 71), UCS2, []Segment{
			{UDH: udh(7, 2, 1), Payload: bytes.Repeat(ya, 67)},
			{UDH: udh(7, 2, 2), Payload: bytes.Repeat(ya, 4)}}},
		{"rune above U+FFFF is a surrogate pair", "😀", UCS2, []Segment{{Payload: smile}}},
		{"surrogate pair at unit 67 moves to next part", rep("я", 66) + "😀" + rep("я", 5), UCS2, []Segment{
			{UDH: udh(7, 2, 1), Payload: bytes.Repeat(ya, 66)},
			{UDH: udh(7, 2, 2), Payload: cat(smile, bytes.Repeat(ya, 5))}}},
		{"surrogate pair ending at unit 67 stays", rep("я", 65) + "😀" + rep("я", 5), UCS2, []Segment{
			{UDH: udh(7, 2, 1), Payload: cat(bytes.Repeat(ya, 65), smile)},
			{UDH: udh(7, 2, 2), Payload: bytes.Repeat(ya, 5)}}},
		{"35 surrogate pairs fill one SMS", rep("😀", 35), UCS2, []Segment{{Payload: bytes.Repeat(smile, 35)}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Encode(tc.text, 7)
			if got.Coding != tc.coding {
				t.Fatalf("coding %v, want %v", got.Coding, tc.coding)
			}
			if len(got.Segments) != len(tc.segs) {
				t.Fatalf("%d segments, want %d", len(got.Segments), len(tc.segs))
			}
			for i, s := range got.Segments {
				w := tc.segs[i]
				if !bytes.Equal(s.UDH, w.UDH) || (s.UDH == nil) != (w.UDH == nil) {
					t.Errorf("segment %d UDH % x, want % x", i+1, s.UDH, w.UDH)
				}
				if !bytes.Equal(s.Payload, w.Payload) {
					t.Errorf("segment %d payload (%d octets) % x, want (%d) % x", i+1, len(s.Payload), s.Payload, len(w.Payload), w.Payload)
				}
			}
		})
	}
}

func TestEncodeUDHOfThreeParts(t *testing.T) {
	got := Encode(rep("x", 2*153+1), 0xA7)
	want := [][]byte{
		{0x05, 0x00, 0x03, 0xA7, 0x03, 0x01},
		{0x05, 0x00, 0x03, 0xA7, 0x03, 0x02},
		{0x05, 0x00, 0x03, 0xA7, 0x03, 0x03},
	}
	if len(got.Segments) != len(want) {
		t.Fatalf("%d segments, want 3", len(got.Segments))
	}
	for i, s := range got.Segments {
		if !bytes.Equal(s.UDH, want[i]) {
			t.Errorf("part %d UDH % x, want % x", i+1, s.UDH, want[i])
		}
	}
}

func TestEncodeCapsAt255Parts(t *testing.T) {
	got := Encode(rep("a", 153*256), 1)
	if n := len(got.Segments); n != MaxSegments {
		t.Fatalf("%d segments, want %d", n, MaxSegments)
	}
	last := got.Segments[MaxSegments-1].UDH
	if last[4] != 255 || last[5] != 255 {
		t.Errorf("last UDH % x, want total and sequence 255", last)
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
	}{
		{"octet above 0x7F in GSM7", GSM7, []byte{0x80}},
		{"escape at the end", GSM7, []byte{'a', 0x1B}},
		{"odd UCS-2 length", UCS2, []byte{0x00, 0x61, 0x00}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Decode(tc.coding, tc.payload); err == nil {
				t.Errorf("Decode(% x) succeeded", tc.payload)
			}
		})
	}
}

func TestDataCoding(t *testing.T) {
	if GSM7.DataCoding() != 0x00 || UCS2.DataCoding() != 0x08 {
		t.Errorf("data_coding GSM7 %#x UCS2 %#x, want 0x00 0x08", GSM7.DataCoding(), UCS2.DataCoding())
	}
}
