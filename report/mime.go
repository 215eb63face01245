package report

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"mime"
	"net/textproto"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/emersion/go-message"
)

// dateLayout is the RFC 5322 §3.3 date-time format.
const dateLayout = "Mon, 02 Jan 2006 15:04:05 -0700"

// preferredLine is the RFC 5322 §2.1.1 recommended line length.
const preferredLine = 78

// maxLine is the RFC 5322 §2.1.1 limit on a line, without its CRLF.
const maxLine = 998

// part is one body part of the report before encoding.
type part struct {
	header message.Header
	body   []byte
}

func (p part) mediaType() string {
	t, _, _ := p.header.ContentType()
	return t
}

// newHeader returns a header with the given key, value pairs in order.
// go-message writes fields last-added first, so they are added in reverse.
func newHeader(kv ...string) message.Header {
	var h message.Header
	for i := len(kv) - 2; i >= 0; i -= 2 {
		addField(&h, kv[i], kv[i+1])
	}
	return h
}

// addField adds k: v. go-message would write the key in canonical MIME
// form ("Reporting-Mta"); a short one-line field whose usual spelling
// differs ("Reporting-MTA", "Message-ID") is added raw to keep it.
func addField(h *message.Header, k, v string) {
	raw := k + ": " + v + "\r\n"
	if textproto.CanonicalMIMEHeaderKey(k) == k || len(raw) > preferredLine+2 || strings.ContainsAny(v, "\r\n") {
		h.Add(k, v)
		return
	}
	h.AddRaw([]byte(raw))
}

func mediaType(t string, params map[string]string) string {
	return mime.FormatMediaType(t, params)
}

func (r Report) topHeader(id, boundary, reportType string) message.Header {
	kv := []string{
		"From", r.From,
		"To", r.To,
		"Subject", r.subject(),
		"Date", formatDate(r.Now),
		"Message-ID", id,
	}
	if validMsgID(r.OrigMessageID) {
		kv = append(kv, "In-Reply-To", r.OrigMessageID, "References", r.OrigMessageID)
	}
	kv = append(kv,
		"Auto-Submitted", "auto-replied", // RFC 3834 §5
		"MIME-Version", "1.0",
		"Content-Type", mediaType("multipart/report", map[string]string{
			"report-type": reportType, "boundary": boundary,
		}),
	)
	return newHeader(kv...)
}

// eightBit reports whether a part is 8bit, which makes the multipart that
// holds it 8bit too (RFC 2045 §6.4).
func eightBit(parts []part) bool {
	for _, p := range parts {
		if strings.EqualFold(p.header.Get("Content-Transfer-Encoding"), "8bit") {
			return true
		}
	}
	return false
}

// reportType is the RFC 6522 report-type: the subtype of the second part.
func reportType(parts []part) string {
	return strings.TrimPrefix(parts[1].mediaType(), "message/")
}

// boundaryFor derives the MIME boundary from the Message-ID, skipping any
// candidate that occurs in a part body (RFC 2046 §5.1.1). Quoted-printable
// output never contains "=_", so only unencoded bodies could collide.
func boundaryFor(id string, parts []part) string {
	for i := 0; ; i++ {
		sum := sha256.Sum256([]byte(id + "/" + strconv.Itoa(i)))
		b := "=_report_" + hex.EncodeToString(sum[:12])
		if !inAnyBody(parts, b) {
			return b
		}
	}
}

func inAnyBody(parts []part, s string) bool {
	for _, p := range parts {
		if bytes.Contains(p.body, []byte(s)) {
			return true
		}
	}
	return false
}

func newMessageID(host string) (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("report: message-id: %w", err)
	}
	return "<" + hex.EncodeToString(b[:]) + "@" + host + ">", nil
}

// msgIDRe is a simplified RFC 5322 §3.6.4 msg-id: no whitespace, no
// brackets inside, one "@".
var msgIDRe = regexp.MustCompile(`^<[^<>@\s]+@[^<>@\s]+>$`)

func validMsgID(id string) bool {
	return isASCII(id) && msgIDRe.MatchString(id)
}

// hostRe is a DNS name or an address literal, enough for Reporting-MTA.
var hostRe = regexp.MustCompile(`^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?)$`)

// statusRe is an RFC 3463 §2 status code.
var statusRe = regexp.MustCompile(`^[245]\.[0-9]{1,3}\.[0-9]{1,3}$`)

func (r Report) validate() error {
	switch {
	case !hostRe.MatchString(r.ReportingMTA):
		return fmt.Errorf("%w: Reporting-MTA %q is not a host name", ErrInvalid, r.ReportingMTA)
	case r.From == "" || r.To == "":
		return fmt.Errorf("%w: From and To are required", ErrInvalid)
	case r.Now.IsZero():
		return fmt.Errorf("%w: Now (the Date) is zero", ErrInvalid)
	case r.MessageID != "" && !validMsgID(r.MessageID):
		return fmt.Errorf("%w: Message-ID %q is malformed", ErrInvalid, r.MessageID)
	}
	for _, rc := range r.recipients() {
		if err := rc.validate(); err != nil {
			return err
		}
	}
	return r.validateFields()
}

func (r Recipient) validate() error {
	switch {
	case r.FinalRcpt == "":
		return fmt.Errorf("%w: Final-Recipient is required", ErrInvalid)
	case r.Action != ActionDelivered && r.Action != ActionFailed && r.Action != ActionDelayed:
		return fmt.Errorf("%w: action %q", ErrInvalid, r.Action)
	case !statusRe.MatchString(r.Status):
		return fmt.Errorf("%w: status %q is not an RFC 3463 code", ErrInvalid, r.Status)
	}
	return nil
}

// cleaned drops or repairs the optional fields that come from the
// original mail or from SMPP, so that a malformed one costs a field, not
// the whole report.
func (r Report) cleaned() Report {
	if !printableASCII(r.EnvID) {
		r.EnvID = ""
	}
	r.OrigRcpt, r.Diagnostic = cleanOrigRcpt(r.OrigRcpt), cleanDiagnostic(r.Diagnostic)
	r.Also = append([]Recipient(nil), r.Also...)
	for i := range r.Also {
		a := &r.Also[i]
		a.OrigRcpt, a.Diagnostic = cleanOrigRcpt(a.OrigRcpt), cleanDiagnostic(a.Diagnostic)
	}
	return r
}

func cleanOrigRcpt(s string) string {
	if !utf8.ValidString(s) || strings.IndexFunc(s, unicode.IsControl) >= 0 {
		return ""
	}
	return s
}

// cleanDiagnostic makes s an RFC 3464 §2.3.6 Diagnostic-Code: one line,
// starting with a diagnostic-type. IANA registers only "smtp"; any other
// type, such as the "smpp" of our SMSC's answers, takes the "X-" that
// RFC 3464 keeps for types not registered with IANA ("X-SMPP; stat=UNDELIV";
// sendmail says "X-Unix" for its local deliveries),
// and a text without a type becomes "X-Smsbridge; text".
func cleanDiagnostic(s string) string {
	s = oneLine(s)
	m := diagTypeRe.FindStringSubmatch(s)
	switch {
	case s == "":
	case m == nil:
		s = "X-Smsbridge; " + s
	case !strings.EqualFold(m[1], "smtp") && !strings.HasPrefix(strings.ToUpper(m[1]), "X-"):
		s = "X-" + strings.ToUpper(m[1]) + s[len(m[1]):]
	}
	return s
}

// diagTypeRe matches the "diagnostic-type ;" start of an RFC 3464 §2.3.6
// Diagnostic-Code.
var diagTypeRe = regexp.MustCompile(`^([A-Za-z0-9-]+) *;`)

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}

// validateFields refuses control characters (CR and LF above all) in the
// values copied into header fields verbatim.
func (r Report) validateFields() error {
	fields := []struct{ name, v string }{
		{"From", r.From}, {"To", r.To},
	}
	for _, rc := range r.recipients() {
		fields = append(fields, struct{ name, v string }{"FinalRcpt", rc.FinalRcpt})
	}
	for _, f := range fields {
		if strings.IndexFunc(f.v, unicode.IsControl) >= 0 || !utf8.ValidString(f.v) {
			return fmt.Errorf("%w: %s %q has a control character or invalid UTF-8", ErrInvalid, f.name, f.v)
		}
	}
	return nil
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// oneLine makes s safe for an unstructured header field or a line of text:
// valid UTF-8, control characters turned into spaces, trimmed.
func oneLine(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	return strings.TrimSpace(s)
}

// crlfLines normalises CRLF, CR and LF line ends to CRLF and drops trailing
// blank lines; the result ends in exactly one CRLF (or is empty).
func crlfLines(b []byte) []byte {
	s := strings.ReplaceAll(string(b), "\r\n", "\n")
	s = strings.ReplaceAll(s, "\r", "\n")
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return nil
	}
	return []byte(strings.ReplaceAll(s, "\n", "\r\n") + "\r\n")
}

// needsEncoding reports whether b cannot go as 7bit (RFC 2045 §2.7): it
// has 8-bit or NUL octets or a line longer than 998 octets.
func needsEncoding(b []byte) bool {
	for _, line := range bytes.Split(b, []byte("\r\n")) {
		if len(line) > maxLine || bytes.IndexByte(line, 0) >= 0 || !isASCII(string(line)) {
			return true
		}
	}
	return false
}

func formatDate(t time.Time) string { return t.Format(dateLayout) }
