package smtp_test

// Tests for the smsbridge patch to MAIL and RCPT parameters (see
// PATCHES.md, change 12).

import (
	"io"
	"strings"
	"testing"

	"github.com/emersion/go-smtp"
)

func TestPatchParams(t *testing.T) {
	conf := func(s *smtp.Server) { s.MaxMessageBytes = 1 << 20; s.EnableDSN = true }
	for _, tc := range []struct{ mail, rcpt, want string }{
		{"SIZE=4294967296", "", "552 5.3.4"},            // 2^32: was 501
		{"SIZE=99999999999999999999", "", "552 5.3.4"},  // 20 digits, past uint64
		{"SIZE=123456789012345678901", "", "501 5.5.4"}, // 21 digits
		{"SIZE=12a", "", "501 5.5.4"},
		{"SIZE=", "", "501 5.5.4"},
		{"SIZE=1000", "", "250 "},
		{"SIZE=100 SIZE=200", "", "501 5.5.4 Duplicate MAIL parameter SIZE"},
		{"ENVID=first RET=HDRS envid=second", "", "501 5.5.4 Duplicate MAIL parameter ENVID"},
		{"RET=HDRS RET=FULL", "", "501 5.5.4"},
		{"", "NOTIFY=NEVER NOTIFY=SUCCESS", "501 5.5.4 Duplicate RCPT parameter NOTIFY"},
		{"", "ORCPT=rfc822;one@x ORCPT=rfc822;two@x", "501 5.5.4"},
		{"", "NOTIFY=SUCCESS ORCPT=rfc822;one@x", "250 "},
		{"SMTPUTF8=yes", "", "501 5.5.4"},
	} {
		_, s, c, scanner, _ := testServerEhlo(t, conf)
		cmd := "MAIL FROM:<a@x.test> " + tc.mail
		if tc.rcpt != "" {
			io.WriteString(c, cmd+"\r\n")
			scanner.Scan()
			cmd = "RCPT TO:<b@y.test> " + tc.rcpt
		}
		io.WriteString(c, cmd+"\r\n")
		scanner.Scan()
		if !strings.HasPrefix(scanner.Text(), tc.want) {
			t.Errorf("%s: %q, want %s…", cmd, scanner.Text(), tc.want)
		}
		c.Close()
		s.Close()
	}
}

// TestPatchSyntaxErrorsCount: MAIL and RCPT syntax errors count toward the
// error limit like unknown commands, and the command over the limit gets
// the 421 as its only reply.
func TestPatchSyntaxErrorsCount(t *testing.T) {
	_, s, c, scanner, _ := testServerEhlo(t, func(s *smtp.Server) { s.EnableDSN = true })
	defer s.Close()
	defer c.Close()
	for _, step := range []struct{ send, want string }{
		{"MAIL FROM:<a@x.test", "501 5.5.2"},
		{"MAIL FROM:<a@x.test> RET=NONE", "501 5.5.4"},
		{"MAIL FROM:<a@x.test>", "250 "},
		{"RCPT TO:<b@y.test> NOTIFY=SOMETIMES", "501 5.5.4"},
		{"RCPT TO:<b@y.test", "421 4.7.0"},
	} {
		io.WriteString(c, step.send+"\r\n")
		if !scanner.Scan() {
			t.Fatalf("%s: connection closed", step.send)
		}
		if !strings.HasPrefix(scanner.Text(), step.want) {
			t.Fatalf("%s: %q, want %s…", step.send, scanner.Text(), step.want)
		}
	}
	if scanner.Scan() {
		t.Fatalf("a reply after the 421: %q", scanner.Text())
	}
}

// TestPatchReplyLineCap: no reply line is longer than RFC 5321's 512
// octets, even one that echoes a long address.
func TestPatchReplyLineCap(t *testing.T) {
	_, s, c, scanner, _ := testServerEhlo(t)
	defer s.Close()
	defer c.Close()
	long := strings.Repeat("a", 600) + "@example.com"
	io.WriteString(c, "MAIL FROM:<"+long+">\r\n")
	scanner.Scan()
	if got := scanner.Text(); !strings.HasPrefix(got, "250 2.0.0 ") || len(got)+2 > 512 || !strings.HasSuffix(got, "...") {
		t.Fatalf("reply of %d octets: %q", len(got)+2, got)
	}
}

// TestPatchRcptPostmaster: "RCPT TO:<Postmaster>" without a domain reaches
// the backend (RFC 5321 section 4.1.1.3); other bare names stay errors.
func TestPatchRcptPostmaster(t *testing.T) {
	be, s, c, scanner, _ := testServerEhlo(t)
	defer s.Close()
	defer c.Close()
	for _, step := range []struct{ send, want string }{
		{"MAIL FROM:<a@x.test>", "250 "},
		{"RCPT TO:<Postmaster>", "250 "},
		{"RCPT TO:<postmasterx>", "501 5.5.2"},
		{"RCPT TO:<alice>", "501 5.5.2"},
		{"DATA", "354 "},
		{"Subject: hi\r\n\r\nhello\r\n.", "250 "},
	} {
		io.WriteString(c, step.send+"\r\n")
		scanner.Scan()
		if !strings.HasPrefix(scanner.Text(), step.want) {
			t.Fatalf("%q: %q, want %s…", step.send, scanner.Text(), step.want)
		}
	}
	if len(be.anonmsgs) != 1 || len(be.anonmsgs[0].To) != 1 || be.anonmsgs[0].To[0] != "Postmaster" {
		t.Fatalf("messages %+v", be.anonmsgs)
	}
}

// TestPatchRsetArgument: RSET takes no argument (RFC 5321 4.1.1.5).
func TestPatchRsetArgument(t *testing.T) {
	_, s, c, scanner, _ := testServerEhlo(t)
	defer s.Close()
	defer c.Close()
	for _, step := range []struct{ send, want string }{
		{"MAIL FROM:<a@x.test>", "250 "},
		{"RSET now", "501 5.5.4"},
		{"RCPT TO:<b@y.test>", "250 "}, // the transaction is still open
		{"RSET", "250 "},
		{"RCPT TO:<b@y.test>", "503 5.5.1"},
	} {
		io.WriteString(c, step.send+"\r\n")
		scanner.Scan()
		if !strings.HasPrefix(scanner.Text(), step.want) {
			t.Fatalf("%q: %q, want %s…", step.send, scanner.Text(), step.want)
		}
	}
}
