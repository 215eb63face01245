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

// gsmEscape is the escape septet that announces a character of the
// extension table (TS 23.038 §6.2.1.1).
const gsmEscape = 0x1B

// gsmExtension maps the characters of the default extension table to the
// septet that follows the escape.
var gsmExtension = map[rune]byte{
	'\f': 0x0A,
	'^':  0x14,
	'{':  0x28,
	'}':  0x29,
	'\\': 0x2F,
	'[':  0x3C,
	'~':  0x3D,
	']':  0x3E,
	'|':  0x40,
	'€':  0x65,
}

// gsmCodes maps each character of the default alphabet to its septet. Built
// once from gsmDefault; never written after.
var gsmCodes = func() map[rune]byte {
	m := make(map[rune]byte, len(gsmDefault))
	for i, r := range gsmDefault {
		if i == gsmEscape {
			continue // the escape is not a character
		}
		m[r] = byte(i)
	}
	return m
}()

// gsmExtChars is gsmExtension reversed, for decoding.
var gsmExtChars = func() map[byte]rune {
	m := make(map[byte]rune, len(gsmExtension))
	for r, c := range gsmExtension {
		m[c] = r
	}
	return m
}()

// gsmSeptets appends the septets of r to dst. ok is false when r is in
// neither table.
func gsmSeptets(dst []byte, r rune) (out []byte, ok bool) {
	if c, ok := gsmCodes[r]; ok {
		return append(dst, c), true
	}
	if c, ok := gsmExtension[r]; ok {
		return append(dst, gsmEscape, c), true
	}
	return dst, false
}

// Septets returns how many septets text costs in the GSM 7-bit alphabet
// after the same normalisation as Encode (CR dropped); a character of the
// extension table costs two. ok is false when some character does not fit,
// and the text would be sent as UCS-2.
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
