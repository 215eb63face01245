package convert

import (
	"slices"
	"strings"
)

// National language shift tables, 3GPP TS 23.038 §6.2.1.2.4 and Annex A.
// Cross-checked against Android's GsmAlphabet (from TS 23.038 V9.1.1) and
// CyberChef's GSM-7 tables (V16.0.0); Nokia's converter tables (V8.1.0)
// confirm ê at 0x05 of the Portuguese single shift table.

// language is one national language of Annex A, by its national language
// identifier (TS 23.038 §6.2.1.2.4) as carried in the UDH elements 0x24 and
// 0x25 (TS 23.040 §9.2.3.24.15-16).
type language struct {
	id      uint8
	code    string // ISO 639-1
	locking *table // A.3; nil where Annex A defines none (Spanish)
	single  *table // A.2
}

// languages are the tables built in, by identifier. Read-only.
var languages = []language{
	{id: 1, code: "tr", locking: newTable(turkishLocking), single: shiftTable(turkishSingle)},
	{id: 2, code: "es", single: shiftTable(spanishSingle)},
	{id: 3, code: "pt", locking: newTable(portugueseLocking), single: shiftTable(portugueseSingle)},
}

// A.3.1 Turkish National Language Locking Shift Table.
var turkishLocking = withChanges(gsmDefault, map[byte]rune{
	0x04: '€', 0x07: 'ı', 0x0B: 'Ğ', 0x0C: 'ğ', 0x1C: 'Ş', 0x1D: 'ş', 0x40: 'İ', 0x60: 'ç',
})

// A.3.3 Portuguese National Language Locking Shift Table.
var portugueseLocking = withChanges(gsmDefault, map[byte]rune{
	0x04: 'ê', 0x06: 'ú', 0x07: 'í', 0x08: 'ó', 0x09: 'ç', 0x0B: 'Ô', 0x0C: 'ô',
	0x0E: 'Á', 0x0F: 'á', 0x12: 'ª', 0x13: 'Ç', 0x14: 'À', 0x15: '∞', 0x16: '^',
	0x17: '\\', 0x18: '€', 0x19: 'Ó', 0x1A: '|', 0x1C: 'Â', 0x1D: 'â', 0x1E: 'Ê',
	0x24: 'º', 0x40: 'Í', 0x5B: 'Ã', 0x5C: 'Õ', 0x5D: 'Ú', 0x60: '~', 0x7B: 'ã',
	0x7C: 'õ', 0x7D: '`',
})

// A.2.1 Turkish National Language Single Shift Table.
var turkishSingle = withExtension(map[byte]rune{
	0x47: 'Ğ', 0x49: 'İ', 0x53: 'Ş', 0x63: 'ç', 0x67: 'ğ', 0x69: 'ı', 0x73: 'ş',
})

// A.2.2 Spanish National Language Single Shift Table.
var spanishSingle = withExtension(map[byte]rune{
	0x09: 'ç', 0x41: 'Á', 0x49: 'Í', 0x4F: 'Ó', 0x55: 'Ú',
	0x61: 'á', 0x69: 'í', 0x6F: 'ó', 0x75: 'ú',
})

// A.2.3 Portuguese National Language Single Shift Table.
var portugueseSingle = withExtension(map[byte]rune{
	0x05: 'ê', 0x09: 'ç', 0x0B: 'Ô', 0x0C: 'ô', 0x0E: 'Á', 0x0F: 'á',
	0x12: 'Φ', 0x13: 'Γ', 0x15: 'Ω', 0x16: 'Π', 0x17: 'Ψ', 0x18: 'Σ', 0x19: 'Θ',
	0x1F: 'Ê', 0x41: 'À', 0x49: 'Í', 0x4F: 'Ó', 0x55: 'Ú', 0x5B: 'Ã', 0x5C: 'Õ',
	0x61: 'Â', 0x69: 'í', 0x6F: 'ó', 0x75: 'ú', 0x7B: 'ã', 0x7C: 'õ', 0x7F: 'â',
})

// languageByCode finds a built-in language by ISO 639-1 code.
func languageByCode(code string) (language, bool) {
	for _, l := range languages {
		if strings.EqualFold(l.code, code) {
			return l, true
		}
	}
	return language{}, false
}

// languageByID finds a built-in language by national language identifier.
func languageByID(id uint8) (language, bool) {
	for _, l := range languages {
		if l.id == id {
			return l, true
		}
	}
	return language{}, false
}

// knownLanguage reports whether a national language shift table for ISO
// 639-1 code l is built in.
func knownLanguage(l string) bool {
	_, ok := languageByCode(l)
	return ok
}

// charsetFor returns the tables for a locking and a single shift identifier
// (0 for the default ones); ok is false for an identifier we do not have,
// or a locking shift table Annex A does not define.
func charsetFor(lock, single uint8) (charset, bool) {
	cs := charset{lock: lock, single: single, locking: defaultLocking, shifted: defaultShift}
	if lock != 0 {
		l, ok := languageByID(lock)
		if !ok || l.locking == nil {
			return charset{}, false
		}
		cs.locking = l.locking
	}
	if single != 0 {
		l, ok := languageByID(single)
		if !ok {
			return charset{}, false
		}
		cs.shifted = l.single
	}
	return cs, true
}

// charsets lists every combination of tables the allowed languages give
// (TS 23.038 §6.2.1.2.4 allows any pair), in the order a tie in segments is
// settled: the default tables, then a single shift table alone (a handset
// without it still shows the rest right), then a locking shift table, then
// both.
func charsets(codes []string) []charset {
	locks, singles := []uint8{0}, []uint8{0}
	for _, c := range codes {
		l, ok := languageByCode(c)
		if !ok || slices.Contains(singles, l.id) {
			continue
		}
		if l.locking != nil {
			locks = append(locks, l.id)
		}
		singles = append(singles, l.id)
	}
	out := make([]charset, 0, len(locks)*len(singles))
	for _, lk := range locks {
		for _, sg := range singles {
			if cs, ok := charsetFor(lk, sg); ok {
				out = append(out, cs)
			}
		}
	}
	// Stable: keeps default-then-single before locking-then-both.
	slices.SortStableFunc(out, func(a, b charset) int { return rank(a) - rank(b) })
	return out
}

// rank orders pairs of tables for a tie: default, single shift only,
// locking shift only, both.
func rank(cs charset) int {
	r := 0
	if cs.single != 0 {
		r++
	}
	if cs.lock != 0 {
		r += 2
	}
	return r
}
