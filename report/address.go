package report

import "strings"

// Mailbox returns addr, an address as SMTP parsed it (local part unquoted,
// as go-smtp hands a reverse-path over), in the form that goes back on the
// wire and into a header: a local part that is not a dot-atom becomes a
// quoted-string again, with '"' and '\' escaped (RFC 5321 §4.1.2, RFC 5322
// §3.4.1). "john doe@example.com" becomes "\"john doe\"@example.com"; a
// dot-atom, UTF-8 included (RFC 6531 §3.3), is left alone. addr must be
// the unquoted form: `"x"@y` comes back as `"\"x\""@y`. An address without
// "@" is returned as it is.
func Mailbox(addr string) string {
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		return addr
	}
	local := addr[:at]
	if dotAtom(local) {
		return addr
	}
	var b strings.Builder
	b.Grow(len(addr) + 2)
	b.WriteByte('"')
	for i := 0; i < len(local); i++ {
		if c := local[i]; c == '"' || c == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(local[i])
	}
	b.WriteByte('"')
	b.WriteString(addr[at:])
	return b.String()
}

// dotAtom reports whether s is an RFC 5322 §3.2.3 dot-atom-text, with the
// UTF-8 characters RFC 6531 §3.3 adds to atext.
func dotAtom(s string) bool {
	if s == "" || s[0] == '.' || s[len(s)-1] == '.' || strings.Contains(s, "..") {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 0x80, c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9',
			c == '.', strings.IndexByte("!#$%&'*+-/=?^_`{|}~", c) >= 0:
		default:
			return false
		}
	}
	return true
}
