package convert

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf16"
	"unicode/utf8"
)

// FuzzExtract: no mail makes Extract panic, hang or return something else
// than text, ErrNoText or ErrTooComplex; the caps hold. Interesting inputs
// live in testdata/fuzz/FuzzExtract; go test runs them with the samples.
func FuzzExtract(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.eml")
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, byte(0))
	}
	f.Add([]byte(nested(30)), byte(1))
	f.Fuzz(func(t *testing.T, data []byte, policy byte) {
		lim := Limits{MaxDepth: 5, MaxParts: 30, MaxBytes: 8 << 10}
		opt := Options{Limits: lim, Subject: []SubjectPolicy{SubjectIfEmpty, SubjectNone, SubjectPrefix}[policy%3]}
		m, err := Extract(bytes.NewReader(data), opt)
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
		// Decoded text is capped; a byte salvaged as Windows-1252 takes
		// at most 3 in UTF-8, and subjects come from headers.
		if len(m.Text) > 3*int(lim.MaxBytes)+len(data)+len(opt.SubjectSeparator)+2 {
			t.Fatalf("text of %d bytes from a mail of %d", len(m.Text), len(data))
		}
		if _, err := Encode(m.Text, Options{}); err != nil {
			t.Fatalf("Encode of extracted text: %v", err)
		}
	})
}

// FuzzEncode checks Encode against TS 23.038/23.040 for any text and
// options: segments decode back to the whole text (no truncation with 255
// segments, no transliteration); a GSM-representable text stays GSM; no
// segment exceeds 140 octets with the UDH its Header gives (septets packed
// after the fill bits); no escape or surrogate pair is split; the number of
// segments is the least possible.
func FuzzEncode(f *testing.F) {
	for _, s := range []string{
		"", "hello", "€", rep("a", 152) + "€€", rep("я", 66) + "😀😀",
		"a\r\nb", "\xff\xfe", rep("[]", 90), rep("😀", 40), rep("ş", 160),
		rep("á", 80) + "ç", rep("ã", 100) + "€", rep("я", 65) + "🇩🇪🇫🇷" + rep("я", 10),
		rep("a", 66) + "👍🏽" + rep("b", 10) + "é", rep("x", 60) + "👨‍👩‍👧‍👦" + rep("y", 60) + "ç",
		"e\u0301" + rep("a", 170), "İstanbul’da “kar” yağıyor…",
	} {
		f.Add(s, byte(0), byte(0))
		f.Add(s, byte(1), byte(7))
	}
	f.Fuzz(func(t *testing.T, text string, concat, langs byte) {
		opt := Options{
			Transliterate: TranslitNone,
			Concat:        []Concat{ConcatUDH8, ConcatUDH16, ConcatSAR, ConcatPayload}[concat%4],
			Languages:     languageSubset(langs),
			MaxSegments:   MaxSegments,
		}
		enc, err := Encode(text, opt)
		if err != nil {
			t.Fatal(err)
		}
		want := normalizeForEncode(text)
		if _, gsm := Septets(want); gsm && (enc.Coding != GSM7 || enc.LockingShift != 0 || enc.SingleShift != 0) {
			t.Fatalf("GSM text %q sent as %v with shifts %d/%d", want, enc.Coding, enc.LockingShift, enc.SingleShift)
		}
		got := checkSegments(t, enc)
		switch {
		case !enc.Truncated && got != want:
			t.Fatalf("round trip: got %q, want %q", got, want)
		case enc.Truncated && (enc.Needed <= MaxSegments || len(enc.Segments) > MaxSegments):
			t.Fatalf("truncated with Needed %d and %d segments", enc.Needed, len(enc.Segments))
		case !enc.Truncated && opt.Concat != ConcatPayload && len(enc.Segments) != enc.Needed:
			t.Fatalf("%d segments, but Needed %d", len(enc.Segments), enc.Needed)
		}
	})
}

func languageSubset(b byte) []string {
	var l []string
	for i, code := range []string{"tr", "es", "pt"} {
		if b&(1<<i) != 0 {
			l = append(l, code)
		}
	}
	return l
}

// checkSegments checks each segment and returns their texts joined.
func checkSegments(t *testing.T, e *Encoded) string {
	t.Helper()
	var all strings.Builder
	for i, s := range e.Segments {
		checkFits(t, e, i)
		d, err := DecodeWith(e.Coding, s.Payload, e.LockingShift, e.SingleShift)
		if err != nil {
			t.Fatalf("segment %d: %v", i+1, err)
		}
		if d != s.Text {
			t.Fatalf("segment %d: Text %q, payload decodes to %q", i+1, s.Text, d)
		}
		all.WriteString(d)
		p := s.Payload
		if e.Coding == GSM7 {
			if len(p) > 0 && p[len(p)-1] == gsmEscape {
				t.Fatalf("segment %d ends in an escape (TS 23.038 §6.2.1.1)", i+1)
			}
			continue
		}
		if len(p) >= 2 && isHigh(uint16(p[len(p)-2])<<8|uint16(p[len(p)-1])) {
			t.Fatalf("segment %d ends in a high surrogate", i+1)
		}
		if len(p) >= 2 && isLow(uint16(p[0])<<8|uint16(p[1])) {
			t.Fatalf("segment %d starts with a low surrogate", i+1)
		}
	}
	return all.String()
}

func isHigh(u uint16) bool { return utf16.IsSurrogate(rune(u)) && u < 0xDC00 }
func isLow(u uint16) bool  { return utf16.IsSurrogate(rune(u)) && u >= 0xDC00 }
