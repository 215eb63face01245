package smtpd

import (
	"strings"
	"testing"

	"github.com/emersion/go-smtp"

	"github.com/smsbridge/smsbridge/smtpd/users"
	"github.com/smsbridge/smsbridge/store"
)

// sendDSN sends one mail with go-smtp's client and the given DSN options.
func sendDSN(t *testing.T, addr, from string, mo *smtp.MailOptions, rcpts []string, ro []*smtp.RcptOptions, body string) {
	t.Helper()
	c, err := smtp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("client.test"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := c.Extension("DSN"); !ok {
		t.Fatal("DSN not advertised")
	}
	if err := c.Mail(from, mo); err != nil {
		t.Fatal(err)
	}
	for i, r := range rcpts {
		if err := c.Rcpt(r, ro[i]); err != nil {
			t.Fatal(err)
		}
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte(body)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Quit(); err != nil {
		t.Fatal(err)
	}
}

func allRecords(t *testing.T, st *store.Store) []*store.Record {
	t.Helper()
	recs, err := st.List("", 0)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

const plainMail = "From: a@corp.test\r\nSubject: hi\r\nMessage-ID: <m1@corp.test>\r\n\r\nhello\r\n"

// TestDSNParametersStored: NOTIFY and ORCPT per recipient, RET and ENVID
// per mail, end up in each record.
func TestDSNParametersStored(t *testing.T) {
	ts := start(t, baseConfig(), nil, plainSMTP)
	mo := &smtp.MailOptions{Return: smtp.DSNReturnFull, EnvelopeID: "QQ314159"}
	ro := []*smtp.RcptOptions{
		{Notify: []smtp.DSNNotify{smtp.DSNNotifyDelayed, smtp.DSNNotifySuccess}, OriginalRecipientType: smtp.DSNAddressTypeRFC822, OriginalRecipient: "boss@corp.test"},
		{Notify: []smtp.DSNNotify{smtp.DSNNotifyNever}},
		nil,
	}
	sendDSN(t, ts.addr, "a@corp.test", mo, []string{"+14155550101@sms.test", "+14155550102@sms.test", "+14155550103@sms.test"}, ro, plainMail)
	recs := allRecords(t, ts.st)
	if len(recs) != 3 {
		t.Fatalf("%d records", len(recs))
	}
	want := []struct{ notify, orcpt string }{
		{"SUCCESS,DELAY", "rfc822;boss@corp.test"},
		{"NEVER", ""},
		{"", ""},
	}
	for i, r := range recs {
		if r.Notify != want[i].notify || r.ORcpt != want[i].orcpt {
			t.Errorf("record %d: Notify %q ORcpt %q, want %q %q", i, r.Notify, r.ORcpt, want[i].notify, want[i].orcpt)
		}
		// One copy of the mail for the three records (store.Original).
		orig, err := ts.st.Original(r)
		if r.Ret != "FULL" || r.EnvID != "QQ314159" || string(orig) != plainMail || err != nil || r.NoReport != "" {
			t.Errorf("record %d: Ret %q EnvID %q NoReport %q Original %q, %v", i, r.Ret, r.EnvID, r.NoReport, orig, err)
		}
		if r.Original != nil || r.OriginalRef != recs[0].ID {
			t.Errorf("record %d: its own copy (%d bytes), OriginalRef %q, want the shared one %q", i, len(r.Original), r.OriginalRef, recs[0].ID)
		}
	}
}

func TestRetFullSizeCap(t *testing.T) {
	cfg := baseConfig()
	cfg.MaxReturnBytes = int64(len(plainMail) - 1)
	ts := start(t, cfg, nil, plainSMTP)
	sendDSN(t, ts.addr, "a@corp.test", &smtp.MailOptions{Return: smtp.DSNReturnFull},
		[]string{"+14155550101@sms.test"}, []*smtp.RcptOptions{nil}, plainMail)
	r := allRecords(t, ts.st)[0]
	hdr, err := ts.st.Header(r)
	if r.Ret != "FULL" || r.Original != nil || r.OriginalRef != "" || len(hdr) == 0 || err != nil {
		t.Errorf("over the cap: Ret %q, Original %d bytes, Header %d bytes (%v); want the header only", r.Ret, len(r.Original), len(hdr), err)
	}
}

// TestLoopPrevention: mails that must never get a report are marked at DATA.
func TestLoopPrevention(t *testing.T) {
	tests := []struct {
		name, from, header string
		want               string // "" for reports allowed
	}{
		{"ordinary mail", "a@corp.test", "", ""},
		{"Auto-Submitted: no allows reports", "a@corp.test", "Auto-Submitted: no\r\n", ""},
		{"null sender", "", "", "null sender"},
		{"Auto-Submitted: auto-generated", "a@corp.test", "Auto-Submitted: auto-generated\r\n", "Auto-Submitted: auto-generated"},
		{"Auto-Submitted: auto-replied with a parameter", "a@corp.test", "Auto-Submitted: Auto-Replied; owner-email=x@y\r\n", "Auto-Submitted: auto-replied"},
		{"a report", "mailer@corp.test", "MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=b\r\n", "the mail is a report (multipart/report)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := baseConfig()
			cfg.TrustedSenders = nil
			ts := start(t, cfg, nil, plainSMTP)
			body := "From: x@corp.test\r\nSubject: hi\r\n" + tc.header + "\r\nhello\r\n"
			if strings.Contains(tc.header, "multipart/report") {
				body = "From: x@corp.test\r\nSubject: hi\r\n" + tc.header + "\r\n--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n--b--\r\n"
			}
			sendDSN(t, ts.addr, tc.from, &smtp.MailOptions{Return: smtp.DSNReturnFull},
				[]string{"+14155550101@sms.test"}, []*smtp.RcptOptions{{Notify: []smtp.DSNNotify{smtp.DSNNotifyFailure}}}, body)
			r := allRecords(t, ts.st)[0]
			if r.NoReport != tc.want {
				t.Errorf("NoReport %q, want %q", r.NoReport, tc.want)
			}
			if tc.want != "" && r.Original != nil {
				t.Error("original kept for a mail that gets no report")
			}
		})
	}
}

// TestUserReportPolicyCarried: the users file's report= goes into the record.
func TestUserReportPolicyCarried(t *testing.T) {
	ts := start(t, baseConfig(), nil, plainSMTP)
	s := &session{srv: ts.Server}
	env := envelope{from: "a@corp.test", user: &users.User{Name: "bob", Report: users.ReportFailures},
		rcpts: []rcpt{{addrs: []string{"+14155550101@sms.test"}, number: "+14155550101"}}}
	recs, _, err := s.records(env, []byte(plainMail))
	if err != nil {
		t.Fatal(err)
	}
	if recs[0].ReportPolicy != "failures" || recs[0].User != "bob" {
		t.Errorf("ReportPolicy %q User %q", recs[0].ReportPolicy, recs[0].User)
	}
}
