package convert

import (
	"strings"
	"unicode"
)

// clean turns a decoded body into the text worth sending: LF line ends, no
// signature, no quoted reply, no trailing blanks, at most one blank line in a
// row, no leading or trailing white space.
func clean(s string) string {
	lines := strings.Split(normalizeLines(s), "\n")
	lines = cutSignature(lines)
	for i, l := range lines {
		lines[i] = strings.TrimRightFunc(l, unicode.IsSpace)
	}
	lines = dropQuotes(lines)
	lines = collapseBlank(lines)
	return strings.TrimSpace(strings.Join(lines, "\n"))
}

// normalizeLines makes every line end LF (CRLF and lone CR alike) and drops
// control characters but tab, and the byte order mark: none has a meaning in
// an SMS, and any of them would force UCS-2.
func normalizeLines(s string) string {
	s = strings.ReplaceAll(s, "\r\n", "\n")
	return strings.Map(func(r rune) rune {
		switch {
		case r == '\r':
			return '\n'
		case r == '\n' || r == '\t':
			return r
		case r == '\uFEFF' || unicode.IsControl(r):
			return -1
		}
		return r
	}, s)
}

// cutSignature drops the signature: the line "-- " (RFC 3676 §4.3) and all
// below it.
func cutSignature(lines []string) []string {
	for i, l := range lines {
		if l == "-- " {
			return lines[:i]
		}
	}
	return lines
}

// dropQuotes drops quoted lines (starting with ">") and the attribution line
// that introduces them ("On Mon, 1 Jan 2026, Ann <a@b> wrote:"), also when a
// client wrapped it over two lines.
func dropQuotes(lines []string) []string {
	out := lines[:0]
	inQuote := false
	for _, l := range lines {
		wasQuote := inQuote
		inQuote = strings.HasPrefix(l, ">")
		if !inQuote {
			out = append(out, l)
			continue
		}
		if wasQuote {
			continue
		}
		// Blank lines before a quote go with it; popping them keeps this
		// linear however many quotes and blanks alternate.
		for len(out) > 0 && out[len(out)-1] == "" {
			out = out[:len(out)-1]
		}
		j := len(out) - 1
		switch {
		case j < 0:
		case isAttribution(out[j]):
			out = out[:j]
		case j > 0 && strings.HasSuffix(out[j], "wrote:") && isAttribution(out[j-1]+" "+out[j]):
			out = out[:j-1]
		}
	}
	return out
}

func isAttribution(l string) bool {
	return strings.HasPrefix(l, "On ") && strings.HasSuffix(l, "wrote:")
}

// collapseBlank keeps at most one empty line in a row.
func collapseBlank(lines []string) []string {
	out := lines[:0]
	for _, l := range lines {
		if l == "" && len(out) > 0 && out[len(out)-1] == "" {
			continue
		}
		out = append(out, l)
	}
	return out
}

// unflow joins the soft line breaks of format=flowed text (RFC 3676 §4.2):
// a line ending in a space continues on the next. Quoted lines and the
// signature separator are left alone; quoted lines are dropped later anyway.
func unflow(s string, delSp bool) string {
	lines := strings.Split(normalizeLines(s), "\n")
	var b strings.Builder
	for i, l := range lines {
		if strings.HasPrefix(l, " ") {
			l = l[1:] // space-stuffing, §4.4
		}
		soft := strings.HasSuffix(l, " ") && l != "-- " && !strings.HasPrefix(l, ">") && i < len(lines)-1
		if soft && delSp {
			l = l[:len(l)-1]
		}
		b.WriteString(l)
		if !soft && i < len(lines)-1 {
			b.WriteByte('\n')
		}
	}
	return b.String()
}
