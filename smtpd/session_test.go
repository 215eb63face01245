package smtpd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emersion/go-smtp"

	"github.com/smsbridge/smsbridge/convert"
	"github.com/smsbridge/smsbridge/store"
)

// serve starts a server on 127.0.0.1:0 over q and returns its address.
func serve(t *testing.T, cfg Config, q Queue) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := New(cfg, q, nil)
	go s.Serve(l)
	t.Cleanup(func() { s.Shutdown(context.Background()) })
	return l.Addr().String()
}

func openStore(t *testing.T) *store.Store {
	st, err := store.Open(filepath.Join(t.TempDir(), "s.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

var loopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}

func baseConfig() Config {
	return Config{Domains: []string{"sms.test"}, DefaultRegion: "US", TrustedNetworks: loopback}
}

// transaction runs one mail transaction and returns the reply to the first
// command that failed ("" if all succeeded) and the final 250 text.
func transaction(t *testing.T, addr, from string, rcpts []string, body string) (failed string, ok string) {
	t.Helper()
	c, err := smtp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("client.test"); err != nil {
		t.Fatal(err)
	}
	reply := func(err error) string {
		var se *smtp.SMTPError
		if errors.As(err, &se) {
			e := se.EnhancedCode
			return fmt.Sprintf("%d %d.%d.%d", se.Code, e[0], e[1], e[2])
		}
		return err.Error()
	}
	if err := c.Mail(from, nil); err != nil {
		return reply(err), ""
	}
	for _, r := range rcpts {
		if err := c.Rcpt(r, nil); err != nil {
			return reply(err), ""
		}
	}
	w, err := c.Data()
	if err != nil {
		return reply(err), ""
	}
	io.WriteString(w, body)
	resp, err := w.CloseWithResponse()
	if err != nil {
		return reply(err), ""
	}
	return "", strings.TrimPrefix(resp.StatusText, "2.0.0 ")
}

type failingQueue struct{}

func (failingQueue) Add(context.Context, []*store.Record) error { return errors.New("disk on fire") }

func TestReplies(t *testing.T) {
	const mail = "Subject: hi\r\n\r\nhello\r\n"
	tests := []struct {
		name  string
		cfg   func(*Config)
		q     Queue
		from  string
		rcpts []string
		body  string
		want  string // failing reply, "" for success
	}{
		{"accepted", nil, nil, "a@x.test", []string{"+14155550123@sms.test"}, mail, ""},
		{"null sender accepted", nil, nil, "", []string{"+14155550123@sms.test"}, mail, ""},
		{"untrusted client must authenticate", func(c *Config) { c.TrustedNetworks = nil }, nil,
			"a@x.test", []string{"+14155550123@sms.test"}, mail, "530 5.7.0"},
		{"relay refused", nil, nil, "a@x.test", []string{"+14155550123@example.com"}, mail, "550 5.7.1"},
		{"not a number", nil, nil, "a@x.test", []string{"bob@sms.test"}, mail, "550 5.1.3"},
		{"no text no subject", nil, nil, "a@x.test", []string{"+14155550123@sms.test"}, "From: a@x.test\r\n\r\n\r\n", "550 5.6.0"},
		{"too many recipients", func(c *Config) { c.MaxRecipients = 1 }, nil, "a@x.test",
			[]string{"+14155550123@sms.test", "+14155550124@sms.test"}, mail, "452 4.5.3"},
		{"too large", func(c *Config) { c.MaxMessageBytes = 100 }, nil, "a@x.test", []string{"+14155550123@sms.test"},
			"Subject: hi\r\n\r\n" + strings.Repeat("x", 200) + "\r\n", "552 5.3.4"},
		{"too deeply nested", nil, nil, "a@x.test", []string{"+14155550123@sms.test"}, nested(50), "552 5.3.4"},
		{"over the segment cap with reject", func(c *Config) {
			c.Convert = convert.Options{MaxSegments: 1, Overflow: convert.OverflowReject}
		}, nil, "a@x.test", []string{"+14155550123@sms.test"},
			"Subject: hi\r\n\r\n" + strings.Repeat("long text ", 20) + "\r\n", "550 5.3.4"},
		{"over the segment cap with truncate", func(c *Config) {
			c.Convert = convert.Options{MaxSegments: 1, Overflow: convert.OverflowTruncate}
		}, nil, "a@x.test", []string{"+14155550123@sms.test"},
			"Subject: hi\r\n\r\n" + strings.Repeat("long text ", 20) + "\r\n", ""},
		{"mobile only refuses a fixed line", func(c *Config) { c.MobileOnly = true }, nil, "a@x.test",
			[]string{"+4930123456@sms.test"}, mail, "550 5.1.3"},
		{"mobile only takes a mobile", func(c *Config) { c.MobileOnly = true }, nil, "a@x.test",
			[]string{"+4915112345678@sms.test"}, mail, ""},
		{"mobile only gives NANP numbers the benefit of the doubt", func(c *Config) { c.MobileOnly = true }, nil, "a@x.test",
			[]string{"+14155550123@sms.test"}, mail, ""},
		{"store failure is temporary", nil, failingQueue{}, "a@x.test", []string{"+14155550123@sms.test"}, mail, "451 4.3.0"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := baseConfig()
			if tc.cfg != nil {
				tc.cfg(&cfg)
			}
			q := tc.q
			if q == nil {
				q = openStore(t)
			}
			failed, ok := transaction(t, serve(t, cfg, q), tc.from, tc.rcpts, tc.body)
			if failed != tc.want {
				t.Fatalf("reply %q, want %q (250 text %q)", failed, tc.want, ok)
			}
			if tc.want == "" && !strings.HasPrefix(ok, "OK: queued as ") {
				t.Fatalf("250 text %q has no queue id", ok)
			}
		})
	}
}

func nested(depth int) string {
	var b strings.Builder
	b.WriteString("Subject: deep\r\n")
	for i := range depth {
		b.WriteString(fmt.Sprintf("Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n", i, i))
	}
	b.WriteString("Content-Type: text/plain\r\n\r\ndeep\r\n")
	return b.String()
}

// TestRecordsPerRecipient: one record per distinct phone number, each with
// the envelope, committed before the 250 that names them.
func TestRecordsPerRecipient(t *testing.T) {
	st := openStore(t)
	addr := serve(t, baseConfig(), st)
	body := "From: A <a@x.test>\r\nSubject: Alarm\r\nMessage-ID: <m1@x.test>\r\n\r\nPump 3 stopped\r\n"
	failed, ok := transaction(t, addr, "a@x.test",
		[]string{"+14155550123@sms.test", "14155550123@SMS.TEST", "+4915112345678@sms.test"}, body)
	if failed != "" {
		t.Fatal(failed)
	}
	ids := strings.Fields(strings.TrimPrefix(ok, "OK: queued as "))
	if len(ids) != 2 {
		t.Fatalf("ids %v, want 2 (the same number twice is one SMS)", ids)
	}
	want := []struct{ rcpt, to string }{{"+14155550123@sms.test", "+14155550123"}, {"+4915112345678@sms.test", "+4915112345678"}}
	for i, id := range ids {
		rec, err := st.Get(id)
		if err != nil {
			t.Fatal(err)
		}
		if rec.From != "a@x.test" || rec.Rcpt != want[i].rcpt || rec.To != want[i].to || rec.State != store.Queued {
			t.Errorf("record %d: from %q rcpt %q to %q state %s", i, rec.From, rec.Rcpt, rec.To, rec.State)
		}
		if rec.Text != "Pump 3 stopped" || rec.Subject != "Alarm" || rec.MessageID != "<m1@x.test>" || rec.DataCoding != 0 {
			t.Errorf("record %d: text %q subject %q msgid %q dcs %d", i, rec.Text, rec.Subject, rec.MessageID, rec.DataCoding)
		}
		if len(rec.Segments) != 1 || string(rec.Segments[0].Payload) != "Pump 3 stopped" || rec.Segments[0].Text != "Pump 3 stopped" {
			t.Errorf("record %d segments %+v", i, rec.Segments)
		}
		if hdr, err := st.Header(rec); err != nil || !strings.Contains(string(hdr), "Message-ID: <m1@x.test>") {
			t.Errorf("record %d header %q, %v", i, hdr, err)
		}
	}
}

// TestBareNewlineRefused speaks raw SMTP: client libraries turn a bare LF
// into CRLF, and smuggling attempts do not use them.
func TestBareNewlineRefused(t *testing.T) {
	for _, body := range []string{"Subject: x\r\n\r\nhello\nworld\r\n", "Subject: x\r\n\r\nhello\rworld\r\n",
		"Subject: x\r\n\r\nfirst\r\n\n.\nMAIL FROM:<evil@x.test>\r\n"} {
		addr := serve(t, baseConfig(), openStore(t))
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		script := "EHLO c.test\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<+14155550123@sms.test>\r\nDATA\r\n" + body + ".\r\nQUIT\r\n"
		io.WriteString(conn, script)
		out, _ := io.ReadAll(conn)
		conn.Close()
		if !strings.Contains(string(out), "550 5.5.2") || strings.Contains(string(out), "queued") {
			t.Errorf("body %q: server said\n%s", body, out)
		}
	}
}

// TestDuplicateMailGetsNoSecondSMS: a client that retries after a lost
// reply (same Message-ID, same recipient) gets 250 with the first queue id,
// and the store holds one record.
func TestDuplicateMailGetsNoSecondSMS(t *testing.T) {
	st := openStore(t)
	addr := serve(t, baseConfig(), st)
	body := "Subject: Alarm\r\nMessage-ID: <retry-1@x.test>\r\n\r\nPump 3 stopped\r\n"
	_, first := transaction(t, addr, "a@x.test", []string{"+14155550123@sms.test"}, body)
	_, second := transaction(t, addr, "a@x.test", []string{"+14155550123@sms.test"}, body)
	if first == "" || first != second {
		t.Fatalf("replies %q and %q, want the same queue id", first, second)
	}
	recs, _, err := st.Query(store.Query{})
	if err != nil || len(recs) != 1 {
		t.Fatalf("%d records (%v), want 1", len(recs), err)
	}
	_, third := transaction(t, addr, "a@x.test", []string{"+14155550124@sms.test"}, body)
	if third == first {
		t.Errorf("another recipient of the same Message-ID was taken for a duplicate")
	}
}

// TestQueuedAsFits: the 250 to a message for many recipients stays within
// a 512-octet reply line (RFC 5321 section 4.5.3.1.5), listing the ids that
// fit and how many more there are.
func TestQueuedAsFits(t *testing.T) {
	for _, n := range []int{1, 2, 18, 19, 20, 100, 1000} {
		recs := make([]*store.Record, n)
		for i := range recs {
			recs[i] = &store.Record{ID: fmt.Sprintf("18ea399ae6bf0813%08x", i)}
		}
		text := queuedAs(recs)
		if l := len("250 2.0.0 " + text + "\r\n"); l > 512 {
			t.Errorf("%d records: reply of %d octets", n, l)
		}
		listed := strings.Count(text, "18ea399ae6bf0813")
		more := 0
		fmt.Sscanf(text[strings.LastIndex(text, " and ")+len(" and "):], "%d more", &more)
		if !strings.Contains(text, " and ") {
			more = 0
		}
		if listed+more != n || !strings.Contains(text, recs[0].ID) {
			t.Errorf("%d records: %d listed + %d more in %q", n, listed, more, text)
		}
	}
}
