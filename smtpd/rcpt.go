package smtpd

import (
	"strings"

	"github.com/emersion/go-smtp"
	"github.com/nyaruka/phonenumbers"
)

var (
	errNotOurDomain = &smtp.SMTPError{
		Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1},
		Message: "Relaying denied: recipient domain is not an SMS domain of this server",
	}
	errBadNumber = &smtp.SMTPError{
		Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 3},
		Message: "Recipient local part is not a valid phone number (use +<country code><number>@domain)",
	}
)

// maxLocalLen bounds the local part we try to parse: E.164 has at most 15
// digits; the rest is room for "+", "00" and separators.
const maxLocalLen = 32

// Recipient judges an RCPT TO address: its domain must be one of domains
// (compared case-insensitively) and its local part a valid phone number.
// It returns the number in E.164 form ("+14155550123"), or an *smtp.SMTPError
// with the reply to give.
//
// The local part may be written "+14155550123", "14155550123" or
// "004915112345678" (00 is the ITU-T E.164 international prefix, used in
// most of the world); "." and "-" are allowed as digit separators. A number
// without a country code is read in the default region. Anything else, even
// what libphonenumber would tolerate ("+1415555012x"), is refused: the local
// part is an address, and a typo must not reach someone else's phone.
func Recipient(addr string, domains []string, region string) (string, error) {
	at := strings.LastIndexByte(addr, '@')
	if at < 0 || !ourDomain(addr[at+1:], domains) {
		return "", errNotOurDomain
	}
	local := addr[:at]
	digits, ok := cleanLocal(local)
	if !ok {
		return "", errBadNumber
	}
	n, err := phonenumbers.Parse(digits, region)
	if err != nil || !phonenumbers.IsValidNumber(n) {
		return "", errBadNumber
	}
	return phonenumbers.Format(n, phonenumbers.E164), nil
}

func ourDomain(d string, domains []string) bool {
	d = strings.TrimSuffix(d, ".") // a fully qualified "sms.example.com." is the same domain
	for _, o := range domains {
		if strings.EqualFold(d, o) {
			return true
		}
	}
	return false
}

// cleanLocal strips separators and turns a leading "00" into "+". It accepts
// only an optional leading "+" followed by digits, "." and "-".
func cleanLocal(local string) (string, bool) {
	if local == "" || len(local) > maxLocalLen {
		return "", false
	}
	var b strings.Builder
	for i, r := range local {
		switch {
		case r >= '0' && r <= '9':
			b.WriteRune(r)
		case r == '+' && i == 0:
			b.WriteRune(r)
		case r == '.' || r == '-':
		default:
			return "", false
		}
	}
	s := b.String()
	if strings.HasPrefix(s, "00") {
		s = "+" + s[2:]
	}
	if strings.TrimPrefix(s, "+") == "" {
		return "", false
	}
	return s, true
}
