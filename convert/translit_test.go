package convert

import "testing"

// TestTransliterate checks that look-alikes and folding are used only when
// they make the whole text 7-bit (TS 23.038 §6.2.1), and never touch a
// character the GSM alphabet has.
func TestTransliterate(t *testing.T) {
	tests := []struct {
		name   string
		mode   Transliteration
		in     string
		coding Coding
		out    string
	}{
		{"typographic quotes, dashes and ellipsis become GSM", TranslitLookalike,
			"“Hi” – it’s ‘ok’ — really…", GSM7, `"Hi" - it's 'ok' - really...`},
		{"low and reversed quotes and primes", TranslitLookalike, "„a‟ ‚b‛ 5′ 6″", GSM7, `"a" 'b' 5' 6"`},
		{"no-break, thin and narrow spaces and tab become spaces", TranslitLookalike,
			"a\u00A0b\u2009c\u202Fd\te", GSM7, "a b c d e"},
		{"fullwidth forms become ASCII", TranslitLookalike, "ＯＫ！１２３", GSM7, "OK!123"},
		{"bullets become asterisks", TranslitLookalike, "• one\n◦ two", GSM7, "* one\n* two"},
		{"zero-width and soft hyphen vanish", TranslitLookalike, "a\u200Bb\u00ADc\uFEFF", GSM7, "abc"},
		{"Greek capitals drawn like Latin ones", TranslitLookalike, "ΑΘΗΝΑ", GSM7, "AΘHNA"},
		{"GSM letters are kept in lookalike mode", TranslitLookalike, "Café Ñoño Über straße “x”", GSM7,
			`Café Ñoño Über straße "x"`},
		{"look-alikes kept when the text stays UCS-2", TranslitLookalike, "“Hi” 😀", UCS2, "“Hi” 😀"},
		{"accents outside GSM stay in lookalike mode", TranslitLookalike, "“ça”", UCS2, "“ça”"},
		{"none keeps typographic quotes", TranslitNone, "“Hi”", UCS2, "“Hi”"},
		{"ascii folds accents, even GSM ones", TranslitASCII, "Crème brûlée, ça, Ñoño", GSM7, "Creme brulee, ca, Nono"},
		{"ascii spells letters without a decomposition", TranslitASCII, "Łódź straße Æsir Ørsted œuvre Þór",
			GSM7, "Lodz strasse AEsir Orsted oeuvre Thor"},
		{"ascii applies the look-alikes too", TranslitASCII, "“Ångström”…", GSM7, `"Angstrom"...`},
		{"ascii leaves a text that stays UCS-2 untouched", TranslitASCII, "Crème 😀", UCS2, "Crème 😀"},
		{"default is lookalike", "", "it’s", GSM7, "it's"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := mustEncode(t, tc.in, Options{Transliterate: tc.mode})
			if e.Coding != tc.coding {
				t.Fatalf("coding %v, want %v", e.Coding, tc.coding)
			}
			if got := checkSegments(t, e); got != tc.out {
				t.Errorf("sent %q, want %q", got, tc.out)
			}
		})
	}
}

func TestTransliterateWithNationalTables(t *testing.T) {
	// The look-alike quote is replaced so that the Turkish table can carry
	// the rest: cheaper than UCS-2.
	in := "İstanbul’da kar yağıyor. " + rep("ş", 100)
	e := mustEncode(t, in, Options{Languages: []string{"tr"}})
	if e.Coding != GSM7 || e.LockingShift != 1 {
		t.Fatalf("coding %v lock %d, want GSM7 with Turkish locking shift", e.Coding, e.LockingShift)
	}
	if got, want := checkSegments(t, e), "İstanbul'da kar yağıyor. "+rep("ş", 100); got != want {
		t.Errorf("sent %q, want %q", got, want)
	}
}
