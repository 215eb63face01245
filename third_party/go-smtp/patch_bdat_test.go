package smtp_test

// Tests for the smsbridge patch to BDAT (see PATCHES.md, change 11).

import (
	"io"
	"strings"
	"testing"
)

// TestPatchBdatResetThenNewMail: a transfer aborted by RSET never answers
// for the next message. Its Data returned ErrDataReset onto the channel
// the next BDAT had made, so the next BDAT LAST could reply 554 for a
// message the backend took (2 in 3 tries, found with a raw-socket client).
// Pipelined, as a client would send it, many times over.
func TestPatchBdatResetThenNewMail(t *testing.T) {
	be, s, c, scanner := testServerAuthenticated(t)
	defer s.Close()
	defer c.Close()
	const rounds = 50
	for i := 0; i < rounds; i++ {
		io.WriteString(c, "MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nBDAT 5\r\nold\r\n"+
			"RSET\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<c@y.test>\r\nBDAT 5 LAST\r\nnew\r\n")
		for j, want := range []string{"250 ", "250 ", "250 ", "250 ", "250 ", "250 ", "250 "} {
			if !scanner.Scan() {
				t.Fatalf("round %d: connection closed", i)
			}
			if !strings.HasPrefix(scanner.Text(), want) {
				t.Fatalf("round %d, reply %d: %q, want %s…", i, j+1, scanner.Text(), want)
			}
		}
	}
	if len(be.messages) != rounds {
		t.Fatalf("%d messages, want %d", len(be.messages), rounds)
	}
	for _, m := range be.messages {
		if len(m.To) != 1 || m.To[0] != "c@y.test" || string(m.Data) != "new\r\n" {
			t.Fatalf("message to %v: %q", m.To, m.Data)
		}
	}
}
