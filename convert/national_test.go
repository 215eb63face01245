package convert

import (
	"bytes"
	"testing"
)

// TestNationalLanguages checks the choice and the septets of the national
// language tables, TS 23.038 §6.2.1.2.4 and Annex A.
func TestNationalLanguages(t *testing.T) {
	tests := []struct {
		name         string
		text         string
		langs        []string
		coding       Coding
		lock, single uint8
		payload      []byte // start of the first segment, when set
		segments     int
	}{
		{"Turkish letters in the locking shift table (A.3.1)", "ışığ İŞĞÇç€" + rep("ış", 75), []string{"tr"}, GSM7, 1, 0,
			[]byte{0x07, 0x1D, 0x07, 0x0C, 0x20, 0x40, 0x1C, 0x0B, 0x09, 0x60, 0x04}, 2},
		{"Turkish single shift (A.2.1) preferred when as cheap as locking", "ışığ" + rep("a", 100), []string{"tr"},
			GSM7, 0, 1, []byte{0x1B, 0x69, 0x1B, 0x73, 0x1B, 0x69, 0x1B, 0x67, 'a'}, 1},
		{"without the language Turkish is UCS-2", "ışığ", nil, UCS2, 0, 0, nil, 1},
		{"Portuguese locking shift table (A.3.3)", "Ação ê à" + rep("ã", 150), []string{"pt"}, GSM7, 3, 0,
			[]byte{0x41, 0x09, 0x7B, 0x6F, 0x20, 0x04, 0x20, 0x7F}, 2},
		{"Portuguese single shift (A.2.3) when a default-only character (è) is needed",
			rep("ã"+rep("e", 9), 16) + "è", []string{"pt"}, GSM7, 0, 3, []byte{0x1B, 0x7B, 'e'}, 2},
		{"national table not used when UCS-2 needs no more segments", "èã", []string{"pt"}, UCS2, 0, 0,
			nil, 1},
		{"Spanish has only a single shift table (A.2.2)", rep("Canción ", 20), []string{"es"}, GSM7, 0, 2,
			nil, 2},
		{"Spanish not used when UCS-2 needs no more segments", "Canción", []string{"es"}, UCS2, 0, 0, nil, 1},
		{"default alphabet kept when it fits as cheaply", "hello", []string{"tr", "es", "pt"}, GSM7, 0, 0,
			[]byte("hello"), 1},
		{"Turkish locking shift makes € one septet: cheaper than the extension", rep("€", 100), []string{"tr"},
			GSM7, 1, 0, bytes.Repeat([]byte{0x04}, 100), 1},
		{"a text no table holds is UCS-2", "ış 😀", []string{"tr"}, UCS2, 0, 0, nil, 1},
		{"language codes are case-insensitive", "ışığ" + rep("a", 100), []string{"TR"}, GSM7, 0, 1, nil, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := mustEncode(t, tc.text, Options{Languages: tc.langs, Transliterate: TranslitNone})
			if e.Coding != tc.coding || e.LockingShift != tc.lock || e.SingleShift != tc.single {
				t.Fatalf("coding %v shifts %d/%d, want %v %d/%d", e.Coding, e.LockingShift, e.SingleShift, tc.coding, tc.lock, tc.single)
			}
			if len(e.Segments) != tc.segments {
				t.Errorf("%d segments, want %d", len(e.Segments), tc.segments)
			}
			if tc.payload != nil && !bytes.HasPrefix(e.Segments[0].Payload, tc.payload) {
				t.Errorf("payload % x, want % x", e.Segments[0].Payload, tc.payload)
			}
			if got := checkSegments(t, e); got != tc.text {
				t.Errorf("segments decode to %q, want %q", got, tc.text)
			}
		})
	}
}

func TestNationalTablesRoundTrip(t *testing.T) {
	// Every character of every table encodes to its position and back.
	for _, l := range languages {
		for _, lk := range []uint8{0, l.id} {
			cs, ok := charsetFor(lk, l.id)
			if !ok {
				continue // Spanish: no locking shift table
			}
			for code, r := range cs.locking.chars {
				if code == gsmEscape || r == '\r' {
					continue
				}
				got, ok := cs.appendSeptets(nil, r)
				if !ok || len(got) != 1 || got[0] != byte(code) {
					t.Errorf("%s lock %d: %q encodes to % x, want %02x", l.code, lk, r, got, code)
				}
			}
			for code, r := range cs.shifted.chars {
				if r == 0 {
					continue
				}
				got, _ := cs.appendSeptets(nil, r)
				if s, err := cs.decode(got); err != nil || s != string(r) {
					t.Errorf("%s single %#x: %q round trips to %q, %v", l.code, code, r, s, err)
				}
			}
		}
	}
}

func TestKnownLanguages(t *testing.T) {
	for _, l := range []string{"tr", "es", "pt"} {
		if err := (Options{Languages: []string{l}}).Validate(); err != nil {
			t.Errorf("%s: %v", l, err)
		}
	}
	if err := (Options{Languages: []string{"hi"}}).Validate(); err == nil {
		t.Error("Hindi accepted but not built in")
	}
}
