package convert

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"
)

// cleaner turns a decoded body into the text worth sending.
type cleaner struct {
	footers []footer
}

// footer is a compiled footer pattern and the literal text any match
// contains: checking for it first spares most regexp runs.
type footer struct {
	re  *regexp.Regexp
	lit string
}

func (f footer) match(line string) bool {
	return strings.Contains(line, f.lit) && f.re.MatchString(line)
}

// newCleaner compiles the footer patterns; the default ones are compiled
// once, as most callers use them.
func newCleaner(footers []string) (cleaner, error) {
	if slices.Equal(footers, defaultFooterPatterns) {
		return cleaner{footers: defaultFooters}, nil
	}
	// A server's footers are the same for every mail: compile them once.
	key := strings.Join(footers, "\x00")
	if fs, ok := compiledFooters.Load(key); ok {
		return cleaner{footers: fs.([]footer)}, nil
	}
	fs, err := compileFooters(footers)
	if err == nil {
		compiledFooters.Store(key, fs)
	}
	return cleaner{footers: fs}, err
}

// compiledFooters caches compileFooters by pattern list. It only grows by
// the footer lists a process is configured with (one or two).
var compiledFooters sync.Map

func compileFooters(patterns []string) ([]footer, error) {
	fs := make([]footer, 0, len(patterns))
	for _, p := range patterns {
		re, err := regexp.Compile(p)
		if err != nil {
			return nil, fmt.Errorf("convert: footer %q: %w", p, err)
		}
		lit, _ := re.LiteralPrefix()
		fs = append(fs, footer{re: re, lit: lit})
	}
	return fs, nil
}

// defaultFooters are defaultFooterPatterns compiled. Read-only.
var defaultFooters, _ = compileFooters(defaultFooterPatterns)

// clean cleans with the default footers.
func clean(s string) string {
	return cleaner{footers: defaultFooters}.clean(s)
}

// clean returns LF line ends, no signature, no quoted reply, no footer, no
// trailing blanks, at most one blank line in a row, no leading or trailing
// white space.
func (c cleaner) clean(s string) string {
	lines := strings.Split(normalizeLines(s), "\n")
	lines = cutSignature(lines)
	for i, l := range lines {
		lines[i] = strings.TrimRightFunc(l, unicode.IsSpace)
	}
	lines = dropQuotes(lines)
	lines = cutReplyHeader(lines)
	lines = c.cutFooter(lines)
	lines = collapseBlank(lines)
	return strings.TrimSpace(strings.Join(lines, "\n"))
}

// normalizeLines makes every line end LF (CRLF and lone CR alike) and drops
// control characters but tab, and the byte order mark: none has a meaning in
// an SMS, and any of them would force UCS-2.
func normalizeLines(s string) string {
	if strings.IndexFunc(s, needsNormalizing) < 0 {
		return s // the common case: no copy
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf { // ASCII: most of any mail, copied a byte at a time
			switch {
			case c == '\r' && i+1 < len(s) && s[i+1] == '\n':
			case c == '\r':
				b.WriteByte('\n')
			case !needsNormalizing(rune(c)):
				b.WriteByte(c)
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			b.WriteRune(utf8.RuneError) // an invalid byte, as range would give it
		case !needsNormalizing(r):
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

// needsNormalizing: CR, and the characters normalizeLines drops.
func needsNormalizing(r rune) bool {
	return r < 0x20 && r != '\n' && r != '\t' || r >= 0x7F && (r == '\uFEFF' || unicode.IsControl(r))
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
// that introduces them ("On Mon, 1 Jan 2026, Ann <a@b> wrote:", "Am … schrieb
// Ann:"), also when a client wrapped it over two lines.
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
		case j > 0 && strings.HasSuffix(out[j], ":") && isAttribution(out[j-1]+" "+out[j]):
			out = out[:j-1]
		}
	}
	return out
}

// isAttribution reports whether l introduces a quoted reply, in the words
// of the common mail clients in English, German, French, Spanish,
// Portuguese, Italian and Dutch.
func isAttribution(l string) bool {
	for _, re := range attributions {
		if re.MatchString(l) {
			return true
		}
	}
	return false
}

// attributions are the "On … wrote:" lines of mail clients. Read-only.
var attributions = func() []*regexp.Regexp {
	const colon = `[\s\x{00A0}\x{202F}]*:$` // French puts a (no-break) space before it
	var res []*regexp.Regexp
	for _, p := range []string{
		`^On .+ wrote` + colon,
		`^Am .+ schrieb.*` + colon,
		`^Le .+ a écrit` + colon,
		`^El .+ escribió` + colon,
		`^Em .+ escreveu` + colon,
		`^Il .+ ha scritto` + colon,
		`^Op .+ schreef.*` + colon,
	} {
		res = append(res, regexp.MustCompile(p))
	}
	return res
}()

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

// cutReplyHeader removes the reply header that Outlook puts above the
// message replied to, and everything below it: "-----Original Message-----"
// (and its translations), or a "From:" line followed by "Sent:" (Outlook
// without the dashes, often after a line of underscores). It is kept when
// nothing would be left above it: then it is what was sent.
func cutReplyHeader(lines []string) []string {
	for i, l := range lines {
		if !isReplyHeader(strings.TrimSpace(l), lines[i+1:]) {
			continue
		}
		above := i
		if above > 0 && underscores.MatchString(strings.TrimSpace(lines[above-1])) {
			above--
		}
		if hasText(lines[:above]) {
			return lines[:above]
		}
		return lines
	}
	return lines
}

var (
	originalMessage = regexp.MustCompile(`^-{3,}\s*(Original Message|Ursprüngliche Nachricht|Message d'origine|Mensaje original|Mensagem original|Messaggio originale|Oorspronkelijk bericht)\s*-{3,}$`)
	replyFrom       = regexp.MustCompile(`^\*?(From|Von|De|Da|Van)\s*:\*?\s`)
	replySent       = regexp.MustCompile(`^\*?(Sent|Gesendet|Envoyé|Enviado|Enviado el|Inviato|Verzonden)\s*:\*?\s`)
	underscores     = regexp.MustCompile(`^_{10,}$`)
)

// isReplyHeader reports whether line starts a reply header; the cheap
// checks first, as they run on every line.
func isReplyHeader(line string, below []string) bool {
	switch {
	case strings.HasPrefix(line, "---"):
		return originalMessage.MatchString(line)
	case strings.IndexByte(line[:min(len(line), 8)], ':') < 0:
		return false
	}
	return replyFrom.MatchString(line) && sentFollows(below)
}

// sentFollows reports whether one of the next three lines is Outlook's
// "Sent:" line of a reply header.
func sentFollows(lines []string) bool {
	for _, l := range lines[:min(3, len(lines))] {
		if replySent.MatchString(strings.TrimSpace(l)) {
			return true
		}
	}
	return false
}

func hasText(lines []string) bool {
	for _, l := range lines {
		if strings.TrimSpace(l) != "" {
			return true
		}
	}
	return false
}

// footerWindow is how many non-blank lines from the end a footer may start:
// "Sent from my iPhone" is the last thing a client adds, while the same
// words at the top of a mail are its text.
const footerWindow = 5

// cutFooter removes the first line that matches a footer pattern among the
// last footerWindow non-blank lines, and everything below it, when text is
// left above it.
func (c cleaner) cutFooter(lines []string) []string {
	if len(c.footers) == 0 {
		return lines
	}
	seen, first := 0, len(lines)
	for i := len(lines) - 1; i >= 0 && seen < footerWindow; i-- {
		t := strings.TrimSpace(lines[i])
		if t == "" {
			continue
		}
		seen++
		if c.isFooter(t) {
			first = i
		}
	}
	if first < len(lines) && hasText(lines[:first]) {
		return lines[:first]
	}
	return lines
}

func (c cleaner) isFooter(line string) bool {
	for _, f := range c.footers {
		if f.match(line) {
			return true
		}
	}
	return false
}
