package convert

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

func FuzzExtract(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.eml")
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(nested(30)))
	lim := Limits{MaxDepth: 5, MaxParts: 30, MaxBytes: 8 << 10}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Extract(bytes.NewReader(data), lim)
		if err != nil {
			if !errors.Is(err, ErrNoText) && !errors.Is(err, ErrTooComplex) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		if m.Text == "" {
			t.Fatal("no error and no text")
		}
		if !utf8.ValidString(m.Text) || !utf8.ValidString(m.Subject) {
			t.Fatalf("invalid UTF-8: text %q subject %q", m.Text, m.Subject)
		}
		if m.Text != strings.TrimSpace(m.Text) {
			t.Fatalf("text not trimmed: %q", m.Text)
		}
		if !bytes.HasPrefix(data, m.Header) {
			t.Fatalf("header %q is not the start of the mail", m.Header)
		}
	})
}

func FuzzEncode(f *testing.F) {
	for _, s := range []string{
		"", "hello", "€", strings.Repeat("a", 152) + "€€", strings.Repeat("я", 66) + "😀😀",
		"a\r\nb", "\xff\xfe", strings.Repeat("[]", 90), strings.Repeat("😀", 40),
	} {
		f.Add(s, byte(0))
	}
	f.Fuzz(func(t *testing.T, text string, ref byte) {
		enc := Encode(text, ref)
		_, gsm := Septets(text)
		if gsm != (enc.Coding == GSM7) {
			t.Fatalf("coding %v, but Septets says GSM fits: %v", enc.Coding, gsm)
		}
		var got strings.Builder
		n := len(enc.Segments)
		for i, s := range enc.Segments {
			checkSegment(t, enc.Coding, s, i, n, ref)
			d, err := Decode(enc.Coding, s.Payload)
			if err != nil {
				t.Fatalf("part %d: %v", i+1, err)
			}
			got.WriteString(d)
		}
		want := normalizeForEncode(text)
		if n < MaxSegments && got.String() != want || !strings.HasPrefix(want, got.String()) {
			t.Fatalf("round trip: got %q, want %q", got.String(), want)
		}
	})
}

// checkSegment checks part i of n against TS 23.040: 140 octets of user
// data at most, the concatenation UDH, and no pair split at its end.
func checkSegment(t *testing.T, c Coding, s Segment, i, n int, ref byte) {
	t.Helper()
	if n == 1 && s.UDH != nil {
		t.Fatalf("single SMS has UDH % x", s.UDH)
	}
	if n > 1 && !bytes.Equal(s.UDH, []byte{5, 0, 3, ref, byte(n), byte(i + 1)}) {
		t.Fatalf("part %d of %d: UDH % x", i+1, n, s.UDH)
	}
	last := i == n-1
	if c == GSM7 {
		// The UDH is padded to a septet boundary (fill bits), then the
		// septets are packed.
		septets := (len(s.UDH)*8+6)/7 + len(s.Payload)
		if octets := (septets*7 + 7) / 8; octets > 140 {
			t.Fatalf("part %d packs into %d octets", i+1, octets)
		}
		if len(s.Payload) > 0 && s.Payload[len(s.Payload)-1] == gsmEscape {
			t.Fatalf("part %d ends in an escape", i+1)
		}
		if !last && len(s.Payload) < partSeptets-1 {
			t.Fatalf("part %d of %d carries only %d septets", i+1, n, len(s.Payload))
		}
		return
	}
	if len(s.UDH)+len(s.Payload) > 140 {
		t.Fatalf("part %d has %d octets", i+1, len(s.UDH)+len(s.Payload))
	}
	if p := s.Payload; len(p) >= 2 && isHighSurrogate(uint16(p[len(p)-2])<<8|uint16(p[len(p)-1])) {
		t.Fatalf("part %d ends in a high surrogate", i+1)
	}
	if !last && len(s.Payload) < 2*(partUnits-1) {
		t.Fatalf("part %d of %d carries only %d octets", i+1, n, len(s.Payload))
	}
}
