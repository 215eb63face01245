package report

import "testing"

func TestMailbox(t *testing.T) {
	for in, want := range map[string]string{
		"alice@example.com":          "alice@example.com",
		"first.last+tag@example.com": "first.last+tag@example.com",
		"john doe@example.com":       `"john doe"@example.com`,
		`a"b@example.com`:            `"a\"b"@example.com`,
		`a\b@example.com`:            `"a\\b"@example.com`,
		"a@b@example.com":            `"a@b"@example.com`, // "a@b"@example.com, unquoted
		".dot@example.com":           `".dot"@example.com`,
		"two..dots@example.com":      `"two..dots"@example.com`,
		"dot.@example.com":           `"dot."@example.com`,
		"jösé@exämple.com":           "jösé@exämple.com",
		`"x"@example.com`:            `"\"x\""@example.com`, // unquoted: the quotes are the local part's
		"postmaster":                 "postmaster",
		"a(b)@example.com":           `"a(b)"@example.com`,
	} {
		if got := Mailbox(in); got != want {
			t.Errorf("Mailbox(%q) = %s, want %s", in, got, want)
		}
	}
}
