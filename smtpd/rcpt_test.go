package smtpd

import (
	"errors"
	"fmt"
	"github.com/nyaruka/phonenumbers"
	"testing"

	"github.com/emersion/go-smtp"
)

func TestRecipient(t *testing.T) {
	domains := []string{"sms.example.com", "sms.localhost"}
	tests := []struct {
		name, addr, region string
		want               string
		code               smtp.EnhancedCode // zero when accepted
	}{
		{"E.164 with plus", "+14155550123@sms.example.com", "US", "+14155550123", smtp.EnhancedCode{}},
		{"national with trunk 1 in US", "14155550123@sms.example.com", "US", "+14155550123", smtp.EnhancedCode{}},
		{"national without country code", "4155550123@sms.example.com", "US", "+14155550123", smtp.EnhancedCode{}},
		{"00 international prefix", "004915112345678@sms.example.com", "US", "+4915112345678", smtp.EnhancedCode{}},
		{"dots and dashes as separators", "+1-415-555.0123@sms.example.com", "US", "+14155550123", smtp.EnhancedCode{}},
		{"German national number in region DE", "015112345678@sms.localhost", "DE", "+4915112345678", smtp.EnhancedCode{}},
		{"domain is case-insensitive", "+14155550123@SMS.Example.COM", "US", "+14155550123", smtp.EnhancedCode{}},
		{"trailing dot of a FQDN", "+14155550123@sms.example.com.", "US", "+14155550123", smtp.EnhancedCode{}},
		{"other domain is relaying", "+14155550123@example.com", "US", "", smtp.EnhancedCode{5, 7, 1}},
		{"subdomain is not ours", "+14155550123@x.sms.example.com", "US", "", smtp.EnhancedCode{5, 7, 1}},
		{"no domain", "+14155550123", "US", "", smtp.EnhancedCode{5, 7, 1}},
		{"letters in number", "+1415555012x@sms.example.com", "US", "", smtp.EnhancedCode{5, 1, 3}},
		{"a name, not a number", "john@sms.example.com", "US", "", smtp.EnhancedCode{5, 1, 3}},
		{"too short", "123@sms.example.com", "US", "", smtp.EnhancedCode{5, 1, 3}},
		{"empty local part", "@sms.example.com", "US", "", smtp.EnhancedCode{5, 1, 3}},
		{"plus alone", "+@sms.example.com", "US", "", smtp.EnhancedCode{5, 1, 3}},
		{"plus inside", "1+4155550123@sms.example.com", "US", "", smtp.EnhancedCode{5, 1, 3}},
		{"overlong", "+1415555012300000000000000000000000000@sms.example.com", "US", "", smtp.EnhancedCode{5, 1, 3}},
		{"quoted local part", `"+14155550123"@sms.example.com`, "US", "", smtp.EnhancedCode{5, 1, 3}},
		{"unassigned country code", "+9991234567@sms.example.com", "US", "", smtp.EnhancedCode{5, 1, 3}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Recipient(tc.addr, domains, tc.region)
			if tc.code == (smtp.EnhancedCode{}) {
				if err != nil || got != tc.want {
					t.Fatalf("Recipient(%q) = %q, %v; want %q", tc.addr, got, err, tc.want)
				}
				return
			}
			var se *smtp.SMTPError
			if !errors.As(err, &se) || se.Code != 550 || se.EnhancedCode != tc.code {
				t.Fatalf("Recipient(%q) = %q, %v; want 550 %v", tc.addr, got, err, tc.code)
			}
		})
	}
}

func FuzzRecipient(f *testing.F) {
	for _, s := range []string{"+14155550123@sms.localhost", "004915112345678@sms.localhost", "@", "+@x", "a@b@sms.localhost"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, addr string) {
		got, err := Recipient(addr, []string{"sms.localhost"}, "US")
		if err == nil && (len(got) < 2 || got[0] != '+') {
			t.Fatalf("Recipient(%q) accepted as %q, not E.164", addr, got)
		}
	})
}

func TestHasBareNewline(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"a\r\nb\r\n", false},
		{"", false},
		{"a\nb\r\n", true},
		{"\n", true},
		{"a\rb\r\n", true},
		{"a\r\n\r\n", false},
		{"ends in CR\r", true},
	}
	for _, tc := range tests {
		if got := hasBareNewline([]byte(tc.in)); got != tc.want {
			t.Errorf("hasBareNewline(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestNumberInfo(t *testing.T) {
	tests := []struct{ number, region, kind string }{
		{"+4915112345678", "DE", "mobile"},
		{"+4930123456", "DE", "fixed_line"},
		{"+14155550123", "US", "fixed_line_or_mobile"},
		{"+18005550199", "US", "toll_free"},
		{"+447400123456", "GB", "mobile"},
	}
	for _, tc := range tests {
		region, kind := NumberInfo(tc.number)
		if region != tc.region || kind != tc.kind {
			t.Errorf("NumberInfo(%s) = %s %s, want %s %s", tc.number, region, kind, tc.region, tc.kind)
		}
	}
}

func TestNumberCache(t *testing.T) {
	var c numberCache
	for range 2 { // the second round comes from the cache
		e, err := c.recipient("004915112345678@sms.test", []string{"sms.test"}, "US")
		if err != nil || e.e164 != "+4915112345678" || c.region(e) != "DE" || e.kind != "mobile" {
			t.Fatalf("got %+v %v", e, err)
		}
		if _, err := c.recipient("john@sms.test", []string{"sms.test"}, "US"); err != errBadNumber {
			t.Fatalf("a name: %v", err)
		}
		if _, err := c.recipient("+4915112345678@other.test", []string{"sms.test"}, "US"); err != errNotOurDomain {
			t.Fatalf("another domain, though the number is cached: %v", err)
		}
	}
	c.max = 50
	for i := range c.max + 5 {
		c.recipient(fmt.Sprintf("+1415555%04d@sms.test", i), []string{"sms.test"}, "US")
	}
	if n := len(c.entries); n > c.max {
		t.Errorf("cache holds %d entries, bound %d", n, c.max)
	}
}

// TestValidIsTyped pins what parseRecipient relies on: libphonenumber's
// IsValidNumber is "the number has a type" (UNKNOWN: invalid), for valid
// and invalid numbers of many plans, geographic and not.
func TestValidIsTyped(t *testing.T) {
	numbers := []string{
		"+14155550123", "+18005550199", "+12015550123", "+16135550123", "+18765550123",
		"+4915112345678", "+4930123456", "+491234", "+447400123456", "+442071234567",
		"+447000000000", "+33612345678", "+390612345678", "+393123456789", "+861012345678",
		"+8613812345678", "+81312345678", "+919876543210", "+5511987654321", "+61412345678",
		"+79161234567", "+74951234567", "+80012345678", "+882345678901", "+979123456789",
		"+2341234567890", "+12345", "+999123456", "+3901", "+4915112345678901234",
	}
	for cc := 1; cc < 1000; cc += 7 {
		numbers = append(numbers, fmt.Sprintf("+%d123456789", cc), fmt.Sprintf("+%d6123456", cc))
	}
	for _, s := range numbers {
		n, err := phonenumbers.Parse(s, "")
		if err != nil {
			continue
		}
		valid, typed := phonenumbers.IsValidNumber(n), phonenumbers.GetNumberType(n) != phonenumbers.UNKNOWN
		if valid != typed {
			t.Errorf("%s: IsValidNumber %v, GetNumberType %v", s, valid, phonenumbers.GetNumberType(n))
		}
	}
}
