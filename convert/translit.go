package convert

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// lookalikes are characters outside the GSM 7-bit tables (TS 23.038
// §6.2.1) that mail clients and word processors put where a GSM character
// was meant: typographic quotes, dashes, spaces, bullets. Read-only.
var lookalikes = map[rune]string{
	// Single quotes, apostrophes, primes, accents used as apostrophes.
	'‘': "'", '’': "'", '‚': "'", '‛': "'", '′': "'", '‵': "'", 'ʼ': "'", 'ʹ': "'",
	'´': "'", '`': "'", '‹': "<", '›': ">",
	// Double quotes and guillemets.
	'“': `"`, '”': `"`, '„': `"`, '‟': `"`, '″': `"`, '‶': `"`, '«': `"`, '»': `"`,
	// Hyphens, dashes and the minus sign.
	'‐': "-", '‑': "-", '‒': "-", '–': "-", '—': "-", '―': "-", '−': "-", '⁃': "-",
	// Ellipsis, bullets, slashes, arithmetic.
	'…': "...", '•': "*", '◦': "*", '‣': "*", '∙': "*", '·': ".", '⁄': "/", '∕': "/",
	'×': "x", '÷': "/", '¦': "|", '≤': "<=", '≥': ">=",
	'©': "(c)", '®': "(R)", '™': "TM",
	// Spaces: tab, no-break, the typographic widths, ideographic.
	'\t': " ", '\u00A0': " ", '\u2000': " ", '\u2001': " ", '\u2002': " ", '\u2003': " ",
	'\u2004': " ", '\u2005': " ", '\u2006': " ", '\u2007': " ", '\u2008': " ",
	'\u2009': " ", '\u200A': " ", '\u202F': " ", '\u205F': " ", '\u3000': " ",
	// Invisible: soft hyphen, zero-width space and joiners, word joiner.
	'\u00AD': "", '\u200B': "", '\u200C': "", '\u200D': "", '\u2060': "", '\uFEFF': "",
	// Greek capitals drawn like Latin ones: GSM has only the others
	// (Δ Φ Γ Λ Ω Π Ψ Σ Θ Ξ), and Greek phones write the rest this way.
	'Α': "A", 'Β': "B", 'Ε': "E", 'Ζ': "Z", 'Η': "H", 'Ι': "I", 'Κ': "K", 'Μ': "M",
	'Ν': "N", 'Ο': "O", 'Ρ': "P", 'Τ': "T", 'Υ': "Y", 'Χ': "X",
}

// letters are letters that decomposition does not reduce to ASCII.
var letters = map[rune]string{
	'ß': "ss", 'ẞ': "SS", 'æ': "ae", 'Æ': "AE", 'ø': "o", 'Ø': "O", 'œ': "oe", 'Œ': "OE",
	'ł': "l", 'Ł': "L", 'đ': "d", 'Đ': "D", 'ð': "d", 'Ð': "D", 'þ': "th", 'Þ': "Th",
	'ı': "i", 'ħ': "h", 'Ħ': "H", 'ŋ': "n", 'Ŋ': "N", 'ſ': "s", 'ĸ': "k", 'ŀ': "l", 'Ŀ': "L",
	'¡': "!", '¿': "?",
}

// lookalike replaces the look-alike characters of text.
func lookalike(text string) string {
	return translit(text, false)
}

// fold is lookalike plus accents and special letters folded to ASCII
// (é→e, ß→ss, Ł→L): TranslitASCII.
func fold(text string) string {
	return translit(text, true)
}

func translit(text string, ascii bool) string {
	i := strings.IndexFunc(text, func(r rune) bool { return r >= 0x80 || r == '`' || r == '\t' })
	if i < 0 {
		return text // ASCII with nothing to replace: the common case
	}
	var b strings.Builder
	b.Grow(len(text))
	b.WriteString(text[:i])
	for _, r := range text[i:] {
		if s, ok := lookalikes[r]; ok {
			b.WriteString(s)
			continue
		}
		if r >= 0xFF01 && r <= 0xFF5E {
			b.WriteRune(r - 0xFF01 + '!') // fullwidth ASCII forms, U+FF01-FF5E
			continue
		}
		if r < 0x80 || !ascii {
			b.WriteRune(r)
			continue
		}
		foldRune(&b, r)
	}
	return b.String()
}

// foldRune writes r without its accents: the canonical decomposition (NFD)
// less its nonspacing marks, or a spelling for letters that have none.
func foldRune(b *strings.Builder, r rune) {
	if s, ok := letters[r]; ok {
		b.WriteString(s)
		return
	}
	var buf [utf8.UTFMax]byte
	for _, c := range string(norm.NFD.Bytes(utf8.AppendRune(buf[:0], r))) {
		if !unicode.Is(unicode.Mn, c) { // a stray combining mark goes too
			b.WriteRune(c)
		}
	}
}
