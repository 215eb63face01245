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
	n, _, err := parseRecipient(addr[:at], region)
	if err != nil {
		return "", err
	}
	return phonenumbers.Format(n, phonenumbers.E164), nil
}

// parseRecipient parses and validates the local part of a recipient, and
// returns the number with its type.
//
// The number is valid when the plan gives it a type: that is what
// phonenumbers.IsValidNumber does (IsValidNumberForRegion tests the type
// against UNKNOWN, for the region of the number), and asking for the type
// once instead of validity then type halves the cost, the largest of a
// RCPT. TestValidIsTyped pins the equivalence.
func parseRecipient(local, region string) (*phonenumbers.PhoneNumber, phonenumbers.PhoneNumberType, error) {
	digits, ok := cleanLocal(local)
	if !ok {
		return nil, phonenumbers.UNKNOWN, errBadNumber
	}
	n, err := phonenumbers.Parse(digits, region)
	if err != nil {
		return nil, phonenumbers.UNKNOWN, errBadNumber
	}
	typ := phonenumbers.GetNumberType(n)
	if typ == phonenumbers.UNKNOWN {
		return nil, typ, errBadNumber
	}
	return n, typ, nil
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

// NumberInfo is what the numbering plan says of an E.164 number: its region
// (ISO 3166-1, "US", "DE") and its type ("mobile", "fixed_line",
// "fixed_line_or_mobile", "toll_free"…), from libphonenumber's metadata.
// The type is by number range: after porting it can be wrong, which is fine
// for logs and a coarse rule, not for routing.
func NumberInfo(e164 string) (region, kind string) {
	n, err := phonenumbers.Parse(e164, "")
	if err != nil {
		return "", "unknown"
	}
	return phonenumbers.GetRegionCodeForNumber(n), numberTypes[phonenumbers.GetNumberType(n)]
}

var numberTypes = map[phonenumbers.PhoneNumberType]string{
	phonenumbers.FIXED_LINE:           "fixed_line",
	phonenumbers.MOBILE:               "mobile",
	phonenumbers.FIXED_LINE_OR_MOBILE: "fixed_line_or_mobile",
	phonenumbers.TOLL_FREE:            "toll_free",
	phonenumbers.PREMIUM_RATE:         "premium_rate",
	phonenumbers.SHARED_COST:          "shared_cost",
	phonenumbers.VOIP:                 "voip",
	phonenumbers.PERSONAL_NUMBER:      "personal_number",
	phonenumbers.PAGER:                "pager",
	phonenumbers.UAN:                  "uan",
	phonenumbers.VOICEMAIL:            "voicemail",
	phonenumbers.UNKNOWN:              "unknown",
}

// cannotReceiveSMS are the types that are surely not a phone that takes an
// SMS. Where the plan cannot tell (the NANP's fixed_line_or_mobile, VoIP,
// personal numbers, unknown) the number is given the benefit of the doubt.
var cannotReceiveSMS = map[string]bool{
	"fixed_line": true, "toll_free": true, "premium_rate": true,
	"shared_cost": true, "uan": true, "voicemail": true,
}
