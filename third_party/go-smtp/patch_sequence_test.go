package smtp_test

// Tests for the smsbridge patches (see PATCHES.md): bad sequence of
// commands is 503 5.5.1, unimplemented commands stay 502.

import (
	"bufio"
	"crypto/tls"
	"io"
	"net"
	"strings"
	"testing"

	"github.com/emersion/go-smtp"
)

// patchReply reads one reply, all its lines.
func patchReply(t *testing.T, r *bufio.Reader) string {
	t.Helper()
	var lines []string
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("reading reply: %v (got %q)", err, lines)
		}
		line = strings.TrimRight(line, "\r\n")
		lines = append(lines, line)
		if len(line) < 4 || line[3] != '-' {
			return strings.Join(lines, "\n")
		}
	}
}

func TestPatchBadSequence503(t *testing.T) {
	type step struct{ send, want string }
	binarymime := func(s *smtp.Server) { s.EnableBINARYMIME = true }
	tests := []struct {
		name  string
		conf  []serverConfigureFunc
		steps []step
	}{
		{"MAIL before EHLO", nil, []step{{"MAIL FROM:<a@x>\r\n", "503 5.5.1 "}}},
		{"AUTH before EHLO", nil, []step{{"AUTH PLAIN\r\n", "503 5.5.1 "}}},
		{"RCPT before MAIL", nil, []step{
			{"EHLO localhost\r\n", "250"},
			{"RCPT TO:<b@x>\r\n", "503 5.5.1 "},
		}},
		{"DATA before MAIL", nil, []step{
			{"EHLO localhost\r\n", "250"},
			{"DATA\r\n", "503 5.5.1 "},
		}},
		{"DATA before RCPT", nil, []step{
			{"EHLO localhost\r\n", "250"},
			{"MAIL FROM:<a@x>\r\n", "250"},
			{"DATA\r\n", "503 5.5.1 "},
		}},
		{"BDAT before RCPT, chunk discarded", nil, []step{
			{"EHLO localhost\r\n", "250"},
			{"MAIL FROM:<a@x>\r\n", "250"},
			{"BDAT 4 LAST\r\nNOOP", "503 5.5.1 "},
			{"NOOP\r\n", "250"},
		}},
		{"DATA for BINARYMIME (RFC 3030)", []serverConfigureFunc{binarymime}, []step{
			{"EHLO localhost\r\n", "250"},
			{"MAIL FROM:<a@x> BODY=BINARYMIME\r\n", "250"},
			{"RCPT TO:<b@x>\r\n", "250"},
			{"DATA\r\n", "503 5.5.1 "},
		}},
		// Not implemented is still 502.
		{"HELP not implemented", nil, []step{{"HELP\r\n", "502 5.5.1 "}}},
		{"STARTTLS without TLS config", nil, []step{
			{"EHLO localhost\r\n", "250"},
			{"STARTTLS\r\n", "502 5.5.1 "},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, s, c, _ := testServer(t, tc.conf...)
			defer s.Close()
			defer c.Close()
			r := bufio.NewReader(c)
			if g := patchReply(t, r); !strings.HasPrefix(g, "220 ") {
				t.Fatalf("greeting %q", g)
			}
			for _, st := range tc.steps {
				io.WriteString(c, st.send)
				if got := patchReply(t, r); !strings.HasPrefix(got, st.want) {
					t.Fatalf("%q: reply %q, want %q", st.send, got, st.want)
				}
			}
		})
	}
}

// TestPatchSTARTTLSSequence: after STARTTLS the client must EHLO again
// (RFC 3207 section 4.2), and a second STARTTLS is out of sequence.
func TestPatchSTARTTLSSequence(t *testing.T) {
	keypair, err := tls.X509KeyPair(smtp.PatchTestKeyPair[0], smtp.PatchTestKeyPair[1])
	if err != nil {
		t.Fatal(err)
	}
	_, s, c, _ := testServer(t, func(s *smtp.Server) {
		s.TLSConfig = &tls.Config{Certificates: []tls.Certificate{keypair}}
	})
	defer s.Close()
	defer c.Close()
	r := bufio.NewReader(c)
	expect := func(c net.Conn, send, want string) {
		t.Helper()
		io.WriteString(c, send)
		if got := patchReply(t, r); !strings.HasPrefix(got, want) {
			t.Fatalf("%q: reply %q, want %q", send, got, want)
		}
	}
	patchReply(t, r)
	expect(c, "EHLO localhost\r\n", "250")
	expect(c, "STARTTLS\r\n", "220")
	tc := tls.Client(c, &tls.Config{InsecureSkipVerify: true})
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	r = bufio.NewReader(tc)
	expect(tc, "MAIL FROM:<a@x>\r\n", "503 5.5.1 ")
	expect(tc, "EHLO localhost\r\n", "250")
	expect(tc, "STARTTLS\r\n", "503 5.5.1 ")
	expect(tc, "MAIL FROM:<a@x>\r\n", "250")
}

// TestPatchSTARTTLSFailure: STARTTLS with a parameter is a 501 (RFC 3207
// section 4), and a failed handshake ends the session instead of going on
// in plain text.
func TestPatchSTARTTLSFailure(t *testing.T) {
	keypair, err := tls.X509KeyPair(smtp.PatchTestKeyPair[0], smtp.PatchTestKeyPair[1])
	if err != nil {
		t.Fatal(err)
	}
	be, s, c, _ := testServer(t, func(s *smtp.Server) {
		s.TLSConfig = &tls.Config{Certificates: []tls.Certificate{keypair}}
	})
	defer s.Close()
	defer c.Close()
	r := bufio.NewReader(c)
	patchReply(t, r)
	for _, step := range []struct{ send, want string }{
		{"EHLO localhost\r\n", "250"},
		{"STARTTLS now\r\n", "501 5.5.4 "},
		{"STARTTLS\r\n", "220"},
		// Not a ClientHello: the handshake fails on it.
		{"NOOP\r\n", "421 4.7.0 "},
	} {
		io.WriteString(c, step.send)
		if got := patchReply(t, r); !strings.HasPrefix(got, step.want) {
			t.Fatalf("%q: reply %q, want %q", step.send, got, step.want)
		}
	}
	io.WriteString(c, "MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\nhi\r\n.\r\n")
	if line, err := r.ReadString('\n'); err == nil {
		t.Fatalf("the session went on after the failed handshake: %q", line)
	}
	if len(be.messages)+len(be.anonmsgs) != 0 {
		t.Fatal("a message was taken after the failed handshake")
	}
}
