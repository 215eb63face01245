package report

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-message"
	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-message/textproto"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden.eml from Build")

var (
	arrival = time.Date(2025, 3, 14, 9, 26, 53, 0, time.UTC)
	attempt = arrival.Add(42 * time.Second)
	now     = attempt.Add(time.Second)
)

const origHeader = "Return-Path: <alice@example.com>\n" +
	"From: Alice <alice@example.com>\n" +
	"To: +14155550123@sms.localhost\n" +
	"Subject: Lunch?\n" +
	"Message-ID: <orig-1@example.com>\n" +
	"\n"

// base is a delivered report; cases change what they test.
func base() Report {
	return Report{
		ReportingMTA:  "sms.localhost",
		From:          "Mail Delivery System <postmaster@sms.localhost>",
		To:            "alice@example.com",
		Arrival:       arrival,
		Now:           now,
		MessageID:     "<fixed-1@sms.localhost>",
		OrigMessageID: "<orig-1@example.com>",
		OrigSubject:   "Lunch?",
		OrigHeader:    []byte(origHeader),
		FinalRcpt:     "+14155550123@sms.localhost",
		Number:        "+14155550123",
		Text:          "Lunch at noon?",
		Segments:      1,
		Action:        ActionDelivered,
		Status:        "2.0.0",
		Diagnostic:    "smpp; stat=DELIVRD err=000",
		LastAttempt:   attempt,
	}
}

func failedWithEnvelope() Report {
	r := base()
	r.MessageID = "<fixed-2@sms.localhost>"
	r.EnvID = "QQ314159"
	r.OrigRcpt = "rfc822;+14155550123@sms.localhost"
	r.Action = ActionFailed
	r.Status = "5.0.0"
	r.Diagnostic = "smpp; stat=UNDELIV err=001"
	return r
}

func delayedNonASCII() Report {
	r := base()
	r.MessageID = "<fixed-3@sms.localhost>"
	r.OrigSubject = "Grüße aus Köln – 東京"
	r.Text = strings.Repeat("Ça va? Ünïcödé ✓ ", 12) // 204 characters
	r.Segments = 3
	r.Action = ActionDelayed
	r.Status = "4.4.1"
	r.Diagnostic = "smpp; submit_sm_resp status=0x58 (throttled)"
	return r
}

func failedUTF8Rcpt() Report {
	r := failedWithEnvelope()
	r.MessageID = "<fixed-4@sms.localhost>"
	r.FinalRcpt = "jörg@sms.localhost"
	r.OrigRcpt = ""
	r.OrigSubject = ""
	r.OrigHeader = []byte("From: Jörg <jörg@example.de>\r\nSubject: Hallo\r\n")
	return r
}

var goldenCases = []struct {
	name string
	r    Report
}{
	{"delivered", base()},
	{"failed-orcpt-envid", failedWithEnvelope()},
	{"delayed-non-ascii", delayedNonASCII()},
	{"failed-utf8-rcpt", failedUTF8Rcpt()},
}

func TestBuildGolden(t *testing.T) {
	for _, tc := range goldenCases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Build(tc.r)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", tc.name+".golden.eml")
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test ./report -update)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("Build differs from %s (rerun with -update and review the diff):\n%s", path, got)
			}
		})
	}
}

func TestBuildWireFormat(t *testing.T) {
	long := base()
	long.Text = strings.Repeat("x", 3000)
	long.OrigHeader = []byte("X-Long: " + strings.Repeat("y", 1500) + "\n")
	long.Diagnostic = "smpp; " + strings.Repeat("word ", 300)
	cases := append(goldenCases, struct {
		name string
		r    Report
	}{"long lines", long})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, sevenBit := range []bool{false, true} {
				r := tc.r
				r.SevenBit = sevenBit
				msg, err := Build(r)
				if err != nil {
					t.Fatal(err)
				}
				checkWire(t, msg, sevenBit)
			}
		})
	}
}

// checkWire asserts CRLF line ends, lines of at most 998 octets, and 7-bit
// content (our test reports have ASCII From and To) unless the report says
// 8bit at the top, as it must when it has 8-bit octets (RFC 2045 §6.4);
// with sevenBit (the path is 7-bit only), 7-bit content in any case. Every
// part with 8-bit octets must be labelled 8bit too.
func checkWire(t *testing.T, msg []byte, sevenBit bool) {
	t.Helper()
	if !bytes.HasSuffix(msg, []byte("\r\n")) {
		t.Error("message does not end in CRLF")
	}
	head, _, _ := bytes.Cut(msg, []byte("\r\n\r\n"))
	eightBit := bytes.Contains(head, []byte("\r\nContent-Transfer-Encoding: 8bit"))
	if sevenBit && eightBit {
		t.Error("a report for a 7-bit path says 8bit")
	}
	for i, line := range bytes.Split(msg, []byte("\r\n")) {
		if bytes.ContainsAny(line, "\r\n") {
			t.Errorf("line %d has a bare CR or LF: %q", i+1, line)
		}
		if len(line) > maxLine {
			t.Errorf("line %d is %d octets long", i+1, len(line))
		}
		if !eightBit && !isASCII(string(line)) {
			t.Errorf("line %d is not ASCII, and the report does not say 8bit: %q", i+1, line)
		}
	}
	if !eightBit {
		return
	}
	// Each part's own label: 8-bit octets only under "8bit".
	boundary := msgBoundary(t, head)
	for _, p := range bytes.Split(msg, []byte("\r\n--"+boundary))[1:] {
		ph, body, _ := bytes.Cut(p, []byte("\r\n\r\n"))
		if !isASCII(string(body)) && !bytes.Contains(ph, []byte("Content-Transfer-Encoding: 8bit")) {
			t.Errorf("a part has 8-bit octets and is not labelled 8bit:\n%s", ph)
		}
	}
}

func msgBoundary(t *testing.T, head []byte) string {
	t.Helper()
	_, rest, ok := bytes.Cut(head, []byte("boundary="))
	if !ok {
		t.Fatalf("no boundary in\n%s", head)
	}
	b, _, _ := bytes.Cut(rest, []byte("\r\n"))
	return strings.Trim(strings.TrimSuffix(strings.TrimSpace(string(b)), ";"), `"`)
}

// TestBuildStructure reads the report with go-message alone (not Parse).
func TestBuildStructure(t *testing.T) {
	cases := []struct {
		name          string
		r             Report
		action, stat  string
		final, orcpt  string
		envID         string
		statusType    string
		headersType   string
		textContains  []string
		headerContain string
	}{
		{"delivered", base(), "delivered", "2.0.0", "rfc822; +14155550123@sms.localhost", "", "",
			"message/delivery-status", "text/rfc822-headers",
			[]string{"was delivered", "Lunch at noon?", "Segments:     1"}, "Subject: Lunch?"},
		{"failed with ORCPT and ENVID", failedWithEnvelope(), "failed", "5.0.0",
			"rfc822; +14155550123@sms.localhost", "rfc822;+14155550123@sms.localhost", "QQ314159",
			"message/delivery-status", "text/rfc822-headers",
			[]string{"could not be delivered", "X-SMPP; stat=UNDELIV err=001"}, "Message-ID: <orig-1@example.com>"},
		{"non-ASCII text survives quoted-printable", delayedNonASCII(), "delayed", "4.4.1",
			"rfc822; +14155550123@sms.localhost", "", "",
			"message/delivery-status", "text/rfc822-headers",
			[]string{"not been delivered yet", "Ça va? Ünïcödé ✓", "Ünïcödé ✓ Ça va?…"}, "From: Alice"},
		{"UTF-8 recipient uses the global types", failedUTF8Rcpt(), "failed", "5.0.0",
			"utf-8; jörg@sms.localhost", "", "QQ314159",
			"message/global-delivery-status", "message/global-headers",
			[]string{"could not be delivered"}, "From: Jörg <jörg@example.de>"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			msg, err := Build(tc.r)
			if err != nil {
				t.Fatal(err)
			}
			parts := readReport(t, msg, strings.TrimPrefix(tc.statusType, "message/"))
			checkType(t, parts[0], "text/plain")
			for _, s := range tc.textContains {
				if !strings.Contains(string(parts[0].body), s) {
					t.Errorf("text part lacks %q:\n%s", s, parts[0].body)
				}
			}
			checkType(t, parts[1], tc.statusType)
			perMsg, perRcpt := readStatus(t, parts[1].body)
			want := map[string]string{
				"Reporting-MTA": "dns; sms.localhost", "Original-Envelope-Id": tc.envID,
				"Arrival-Date": "Fri, 14 Mar 2025 09:26:53 +0000",
			}
			checkFields(t, "per-message", perMsg, want)
			want = map[string]string{
				"Original-Recipient": tc.orcpt, "Final-Recipient": tc.final,
				"Action": tc.action, "Status": tc.stat, "Diagnostic-Code": "X-SMPP" + strings.TrimPrefix(tc.r.Diagnostic, "smpp"),
				"Last-Attempt-Date": "Fri, 14 Mar 2025 09:27:35 +0000",
			}
			checkFields(t, "per-recipient", perRcpt, want)
			checkType(t, parts[2], tc.headersType)
			if !strings.Contains(string(parts[2].body), tc.headerContain) {
				t.Errorf("headers part lacks %q:\n%s", tc.headerContain, parts[2].body)
			}
		})
	}
}

type readPart struct {
	typ  string
	body []byte
}

// readReport checks the top-level header and returns the decoded parts.
func readReport(t *testing.T, msg []byte, reportType string) []readPart {
	t.Helper()
	e, err := message.Read(bytes.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	typ, params, err := e.Header.ContentType()
	if err != nil || typ != "multipart/report" || params["report-type"] != reportType {
		t.Fatalf("Content-Type %q %v (%v), want multipart/report; report-type=%s", typ, params, err, reportType)
	}
	if got := e.Header.Get("Auto-Submitted"); got != "auto-replied" {
		t.Errorf("Auto-Submitted %q", got)
	}
	var parts []readPart
	mr := e.MultipartReader()
	for {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		typ, _, _ := p.Header.ContentType()
		body, err := io.ReadAll(p.Body)
		if err != nil {
			t.Fatal(err)
		}
		parts = append(parts, readPart{typ, body})
	}
	if len(parts) != 3 {
		t.Fatalf("%d parts, want 3", len(parts))
	}
	return parts
}

func checkType(t *testing.T, p readPart, want string) {
	t.Helper()
	if p.typ != want {
		t.Errorf("part type %q, want %q", p.typ, want)
	}
}

// readStatus reads the two RFC 3464 §2.1 field blocks.
func readStatus(t *testing.T, body []byte) (perMsg, perRcpt textproto.Header) {
	t.Helper()
	br := bufio.NewReader(bytes.NewReader(body))
	perMsg, err := textproto.ReadHeader(br)
	if err != nil {
		t.Fatalf("per-message fields: %v\n%s", err, body)
	}
	perRcpt, err = textproto.ReadHeader(br)
	if err != nil {
		t.Fatalf("per-recipient fields: %v\n%s", err, body)
	}
	if rest, _ := io.ReadAll(br); len(bytes.TrimSpace(rest)) > 0 {
		t.Errorf("unexpected content after the per-recipient fields: %q", rest)
	}
	return perMsg, perRcpt
}

// checkFields compares fields; a "" value means the field must be absent.
func checkFields(t *testing.T, block string, h textproto.Header, want map[string]string) {
	t.Helper()
	for k, v := range want {
		if got := h.Get(k); got != v {
			t.Errorf("%s %s = %q, want %q", block, k, got, v)
		}
	}
}

func TestBuildHeader(t *testing.T) {
	cases := []struct {
		name    string
		r       func(*Report)
		subject string
	}{
		{"delivered", func(r *Report) {}, "Delivered: Lunch?"},
		{"failed", func(r *Report) { r.Action, r.Status = ActionFailed, "5.0.0" }, "Undeliverable: Lunch?"},
		{"delayed", func(r *Report) { r.Action, r.Status = ActionDelayed, "4.0.0" }, "Delayed: Lunch?"},
		{"empty subject names the number", func(r *Report) { r.OrigSubject = "" }, "Delivered: SMS to +14155550123"},
		{"non-ASCII subject round-trips", func(r *Report) { r.OrigSubject = "Grüße 東京" }, "Delivered: Grüße 東京"},
		{"CRLF in subject cannot inject a field", func(r *Report) { r.OrigSubject = "a\r\nBcc: x@y" }, "Delivered: a  Bcc: x@y"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := base()
			tc.r(&r)
			msg, err := Build(r)
			if err != nil {
				t.Fatal(err)
			}
			e, err := message.Read(bytes.NewReader(msg))
			if err != nil {
				t.Fatal(err)
			}
			h := mail.Header{Header: e.Header}
			if got, err := h.Subject(); err != nil || got != tc.subject {
				t.Errorf("Subject %q (%v), want %q", got, err, tc.subject)
			}
			if h.Has("Bcc") {
				t.Error("a Bcc field was injected")
			}
			checkTopHeader(t, h)
		})
	}
}

func checkTopHeader(t *testing.T, h mail.Header) {
	t.Helper()
	if d, err := h.Date(); err != nil || !d.Equal(now) {
		t.Errorf("Date %v (%v), want %v", d, err, now)
	}
	if id, err := h.MessageID(); err != nil || id != "fixed-1@sms.localhost" {
		t.Errorf("Message-ID %q (%v)", id, err)
	}
	for _, k := range []string{"In-Reply-To", "References"} {
		if got := h.Get(k); got != "<orig-1@example.com>" {
			t.Errorf("%s %q", k, got)
		}
	}
	if got := h.Get("From"); got != "Mail Delivery System <postmaster@sms.localhost>" {
		t.Errorf("From %q", got)
	}
	if got := h.Get("To"); got != "alice@example.com" {
		t.Errorf("To %q", got)
	}
	if got := h.Get("MIME-Version"); got != "1.0" {
		t.Errorf("MIME-Version %q", got)
	}
}

func TestBuildOptionalParts(t *testing.T) {
	r := base()
	r.OrigHeader, r.OrigMessageID, r.Arrival, r.LastAttempt, r.Diagnostic = nil, "", time.Time{}, time.Time{}, ""
	msg, err := Build(r)
	if err != nil {
		t.Fatal(err)
	}
	p, err := Parse(msg)
	if err != nil {
		t.Fatal(err)
	}
	if p.OrigHeader != nil {
		t.Errorf("headers part present: %q", p.OrigHeader)
	}
	for _, k := range []string{"In-Reply-To", "References"} {
		if p.Header.Has(k) {
			t.Errorf("%s present without OrigMessageID", k)
		}
	}
	if p.Message.Has("Arrival-Date") || p.Recipients[0].Has("Last-Attempt-Date") || p.Recipients[0].Has("Diagnostic-Code") {
		t.Errorf("optional fields present:\n%v\n%v", p.Message.Map(), p.Recipients[0].Map())
	}
}

func TestBuildGeneratesMessageID(t *testing.T) {
	r := base()
	r.MessageID = ""
	a, errA := Build(r)
	b, errB := Build(r)
	if errA != nil || errB != nil {
		t.Fatal(errA, errB)
	}
	idA, idB := messageID(t, a), messageID(t, b)
	if idA == idB {
		t.Errorf("two reports share Message-ID %s", idA)
	}
	if !strings.HasSuffix(idA, "@sms.localhost") {
		t.Errorf("Message-ID %s is not @ReportingMTA", idA)
	}
}

func messageID(t *testing.T, msg []byte) string {
	t.Helper()
	p, err := Parse(msg)
	if err != nil {
		t.Fatal(err)
	}
	id, err := (&mail.Header{Header: p.Header}).MessageID()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestBuildBoundaryAvoidsBodyText(t *testing.T) {
	r := base()
	first := boundaryFor(r.MessageID, nil)
	r.OrigHeader = []byte("X-Trap: --" + first + "--\r\n")
	msg, err := Build(r)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(msg, []byte("boundary=\""+first+"\"")) {
		t.Fatal("boundary occurs in the headers part")
	}
	p, err := Parse(msg)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(p.OrigHeader, r.OrigHeader) {
		t.Errorf("headers part %q, want %q", p.OrigHeader, r.OrigHeader)
	}
}

func TestBuildRejectsInvalid(t *testing.T) {
	cases := []struct {
		name string
		r    func(*Report)
	}{
		{"no Reporting-MTA", func(r *Report) { r.ReportingMTA = "" }},
		{"Reporting-MTA with a space", func(r *Report) { r.ReportingMTA = "a b" }},
		{"no Final-Recipient", func(r *Report) { r.FinalRcpt = "" }},
		{"CRLF in Final-Recipient", func(r *Report) { r.FinalRcpt = "a@b\r\nAction: delivered" }},
		{"LF in To", func(r *Report) { r.To = "a@b\nBcc: c@d" }},
		{"unknown action", func(r *Report) { r.Action = "relayed" }},
		{"status not RFC 3463", func(r *Report) { r.Status = "250" }},
		{"zero Now", func(r *Report) { r.Now = time.Time{} }},
		{"Message-ID without brackets", func(r *Report) { r.MessageID = "x@y" }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := base()
			tc.r(&r)
			if _, err := Build(r); !errors.Is(err, ErrInvalid) {
				t.Errorf("Build error %v, want ErrInvalid", err)
			}
		})
	}
}

func TestBuildRepairsOptionalFields(t *testing.T) {
	cases := []struct {
		name         string
		r            func(*Report)
		envID, orcpt string
		diagnostic   string
	}{
		{"CRLF in ENVID drops it", func(r *Report) { r.EnvID = "a\r\nAction: delivered" }, "", "", "X-SMPP; stat=DELIVRD err=000"},
		{"non-ASCII ENVID drops it", func(r *Report) { r.EnvID = "é" }, "", "", "X-SMPP; stat=DELIVRD err=000"},
		{"LF in ORCPT drops it", func(r *Report) { r.OrigRcpt = "rfc822;a@b\nStatus: 2.0.0" }, "", "", "X-SMPP; stat=DELIVRD err=000"},
		{"CRLF in Diagnostic becomes spaces", func(r *Report) { r.Diagnostic = "smpp; x\r\nStatus: 2.0.0" }, "", "", "X-SMPP; x  Status: 2.0.0"},
		{"Diagnostic without a type gets one", func(r *Report) { r.Diagnostic = "submit: connection refused" }, "", "", "X-Smsbridge; submit: connection refused"},
		{"an unregistered type gets X-", func(r *Report) { r.Diagnostic = "foo ; bar" }, "", "", "X-FOO ; bar"},
		{"smtp is registered", func(r *Report) { r.Diagnostic = "smtp; 550 5.1.1 no such user" }, "", "", "smtp; 550 5.1.1 no such user"},
		{"an X- type is kept", func(r *Report) { r.Diagnostic = "x-local; y" }, "", "", "x-local; y"},
		{"valid fields kept", func(r *Report) { r.EnvID, r.OrigRcpt = "E1", "rfc822;a@b" }, "E1", "rfc822;a@b", "X-SMPP; stat=DELIVRD err=000"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := base()
			tc.r(&r)
			msg, err := Build(r)
			if err != nil {
				t.Fatal(err)
			}
			p, err := Parse(msg)
			if err != nil {
				t.Fatal(err)
			}
			if len(p.Recipients) != 1 || p.Recipients[0].Get("Status") != "2.0.0" {
				t.Fatalf("per-recipient blocks %d, Status %q", len(p.Recipients), p.Recipients[0].Get("Status"))
			}
			checkFields(t, "per-message", p.Message, map[string]string{"Original-Envelope-Id": tc.envID})
			checkFields(t, "per-recipient", p.Recipients[0], map[string]string{
				"Original-Recipient": tc.orcpt, "Diagnostic-Code": tc.diagnostic,
			})
		})
	}
}

func TestPreview(t *testing.T) {
	cases := []struct{ name, in, want string }{
		{"short text unchanged", "hi", "hi"},
		{"160 characters unchanged", strings.Repeat("é", 160), strings.Repeat("é", 160)},
		{"161 characters cut with an ellipsis", strings.Repeat("é", 161), strings.Repeat("é", 160) + "…"},
		{"CRLF becomes LF", "a\r\nb\rc", "a\nb\nc"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := preview(tc.in); got != tc.want {
				t.Errorf("preview = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestParseReadsBuild(t *testing.T) {
	r := failedWithEnvelope()
	msg, err := Build(r)
	if err != nil {
		t.Fatal(err)
	}
	p, err := Parse(msg)
	if err != nil {
		t.Fatal(err)
	}
	if p.ReportType != "delivery-status" || len(p.Recipients) != 1 {
		t.Fatalf("report-type %q, %d recipients", p.ReportType, len(p.Recipients))
	}
	if got := p.Recipients[0].Get("Status"); got != "5.0.0" {
		t.Errorf("Status %q", got)
	}
	if got := p.Message.Get("Original-Envelope-Id"); got != "QQ314159" {
		t.Errorf("Original-Envelope-Id %q", got)
	}
	if !strings.Contains(p.Text, "could not be delivered") {
		t.Errorf("text %q", p.Text)
	}
	if _, err := Parse([]byte("Subject: x\r\n\r\nhello\r\n")); err == nil {
		t.Error("Parse accepted a plain message")
	}
}

// BenchmarkBuild is one success report, the kind a gateway sends most.
func BenchmarkBuild(b *testing.B) {
	r := base()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Build(r); err != nil {
			b.Fatal(err)
		}
	}
}
