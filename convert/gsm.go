package convert

// The GSM 7-bit default alphabet and its extension table, 3GPP TS 23.038
// §6.2.1 and §6.2.1.1. Index = septet value.
var gsmDefault = [128]rune{
	'@', '£', '$', '¥', 'è', 'é', 'ù', 'ì', 'ò', 'Ç', '\n', 'Ø', 'ø', '\r', 'Å', 'å',
	'Δ', '_', 'Φ', 'Γ', 'Λ', 'Ω', 'Π', 'Ψ', 'Σ', 'Θ', 'Ξ', 0x1B, 'Æ', 'æ', 'ß', 'É',
	' ', '!', '"', '#', '¤', '%', '&', '\'', '(', ')', '*', '+', ',', '-', '.', '/',
	'0', '1', '2', '3', '4', '5', '6', '7', '8', '9', ':', ';', '<', '=', '>', '?',
	'¡', 'A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'I', 'J', 'K', 'L', 'M', 'N', 'O',
	'P', 'Q', 'R', 'S', 'T', 'U', 'V', 'W', 'X', 'Y', 'Z', 'Ä', 'Ö', 'Ñ', 'Ü', '§',
	'¿', 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l', 'm', 'n', 'o',
	'p', 'q', 'r', 's', 't', 'u', 'v', 'w', 'x', 'y', 'z', 'ä', 'ö', 'ñ', 'ü', 'à',
}

// gsmEscape is the escape septet that announces a character of the single
// shift table: the default extension table (TS 23.038 §6.2.1.1) or a
// national single shift table (§6.2.1.2.2).
const gsmEscape = 0x1B

// gsmExtension is the default alphabet extension table, TS 23.038
// §6.2.1.1: the septet that follows the escape, and its character.
var gsmExtension = map[byte]rune{
	0x0A: '\f', 0x14: '^', 0x28: '{', 0x29: '}', 0x2F: '\\',
	0x3C: '[', 0x3D: '~', 0x3E: ']', 0x40: '|', 0x65: '€',
}

// table is one GSM 7-bit character table, built once and never written
// after: chars by septet (0 where the table has none), and the reverse.
type table struct {
	chars [128]rune
	latin [256]int16 // septet of runes below 256, -1 if none: the common case without a map
	codes map[rune]byte
}

func newTable(chars [128]rune) *table {
	t := &table{chars: chars, codes: make(map[rune]byte)}
	for i := range t.latin {
		t.latin[i] = -1
	}
	for c, r := range chars {
		if r == 0 || c == gsmEscape && r == gsmEscape {
			continue // no character there, or the escape itself
		}
		if r < 256 {
			t.latin[r] = int16(c)
		} else {
			t.codes[r] = byte(c)
		}
	}
	return t
}

// septet returns the septet of r in t.
func (t *table) septet(r rune) (byte, bool) {
	if r >= 0 && r < 256 {
		c := t.latin[r]
		return byte(c), c >= 0
	}
	c, ok := t.codes[r]
	return c, ok
}

// shiftTable builds a single shift table from its characters.
func shiftTable(m map[byte]rune) *table {
	var chars [128]rune
	for c, r := range m {
		chars[c] = r
	}
	return newTable(chars)
}

// withChanges returns base with the given positions replaced: the national
// locking shift tables of Annex A.3 differ from the default alphabet in a
// few positions only.
func withChanges(base [128]rune, changes map[byte]rune) [128]rune {
	for c, r := range changes {
		base[c] = r
	}
	return base
}

// withExtension returns the default extension table plus a national single
// shift table's own characters (Annex A.2 tables all carry the default
// extension characters at the same positions).
func withExtension(own map[byte]rune) map[byte]rune {
	m := make(map[byte]rune, len(gsmExtension)+len(own))
	for c, r := range gsmExtension {
		m[c] = r
	}
	for c, r := range own {
		m[c] = r
	}
	return m
}

var (
	defaultLocking = newTable(gsmDefault)
	defaultShift   = shiftTable(gsmExtension)
)

// charset is a pair of tables in use: the locking shift table (the default
// alphabet when lock is 0) and the single shift table reached by the escape
// (the default extension table when single is 0), TS 23.038 §6.2.1.2.
type charset struct {
	lock, single     uint8 // national language identifiers, 0 default
	locking, shifted *table
}

var defaultCharset = charset{locking: defaultLocking, shifted: defaultShift}

// appendSeptets appends the septets of r to dst: one from the locking
// table, or the escape and one from the single shift table. ok is false
// when r is in neither.
func (cs charset) appendSeptets(dst []byte, r rune) (out []byte, ok bool) {
	if c, ok := cs.locking.septet(r); ok {
		return append(dst, c), true
	}
	if c, ok := cs.shifted.septet(r); ok {
		return append(dst, gsmEscape, c), true
	}
	return dst, false
}

// encode returns the septets of text, or ok false when a character is in
// neither table. dst is reused.
func (cs charset) encode(dst []byte, text string) ([]byte, bool) {
	if cap(dst) < len(text) {
		dst = make([]byte, 0, len(text)+len(text)/8)
	}
	var ok bool
	for _, r := range text {
		if r < 256 { // inline fast path: most text is Latin
			if c := cs.locking.latin[r]; c >= 0 {
				dst = append(dst, byte(c))
				continue
			}
		}
		if dst, ok = cs.appendSeptets(dst, r); !ok {
			return dst[:0], false
		}
	}
	return dst, true
}

// gsmSeptets appends the septets of r in the default alphabet to dst.
func gsmSeptets(dst []byte, r rune) (out []byte, ok bool) {
	return defaultCharset.appendSeptets(dst, r)
}

// Septets returns how many septets text costs in the GSM 7-bit default
// alphabet after the same normalisation as Encode (CR dropped); a character
// of the extension table costs two. ok is false when some character does
// not fit, and the text would be sent as UCS-2 (or with a national table).
func Septets(text string) (n int, ok bool) {
	var buf [2]byte
	for _, r := range text {
		if r == '\r' {
			continue
		}
		s, ok := gsmSeptets(buf[:0], r)
		if !ok {
			return 0, false
		}
		n += len(s)
	}
	return n, true
}
