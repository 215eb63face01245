package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestConvertCommand(t *testing.T) {
	long := strings.Repeat("0123456789", 20) // 200 GSM septets
	tests := []struct {
		name       string
		args       []string
		stdin      string
		wantStatus int
		check      func(t *testing.T, out convertOutput)
		wantError  string // prefix of the "error" reply
	}{
		{name: "GSM text in two parts", args: []string{"--text", long}, check: func(t *testing.T, out convertOutput) {
			if out.Encoding != "gsm7" || out.DataCoding != 0 || len(out.Segments) != 2 || out.Needed != 2 {
				t.Errorf("%+v", out)
			}
			if out.Segments[0].UDH != "050003000201" || out.Segments[1].UDH != "050003000202" {
				t.Errorf("UDHs %s %s", out.Segments[0].UDH, out.Segments[1].UDH)
			}
			if out.Segments[0].Text+out.Segments[1].Text != long {
				t.Errorf("segments do not join to the text")
			}
		}},
		{name: "emoji needs UCS-2", args: []string{"--text", "ok 👍"}, check: func(t *testing.T, out convertOutput) {
			if out.Encoding != "ucs2" || out.DataCoding != 8 || len(out.Segments) != 1 || out.Segments[0].UDH != "" {
				t.Errorf("%+v", out)
			}
			if out.Segments[0].Payload != "006f006b0020d83ddc4d" {
				t.Errorf("payload %s", out.Segments[0].Payload)
			}
		}},
		{name: "16-bit reference", args: []string{"--concat", "udh16", "--text", long}, check: func(t *testing.T, out convertOutput) {
			if len(out.Segments) != 2 || out.Segments[0].UDH != "06080400000201" {
				t.Errorf("%+v", out.Segments)
			}
		}},
		{name: "truncated to the cap", args: []string{"--max-segments", "1", "--text", long}, check: func(t *testing.T, out convertOutput) {
			if !out.Truncated || len(out.Segments) != 1 || out.Needed != 2 {
				t.Errorf("%+v", out)
			}
		}},
		{name: "rejected over the cap", args: []string{"--max-segments", "1", "--overflow", "reject", "--text", long},
			wantStatus: 2, wantError: "550 5.3.4"},
		{name: "mail from stdin", args: []string{"-"}, stdin: "Subject: Alarm\r\n\r\nPump 3 stopped\r\n",
			check: func(t *testing.T, out convertOutput) {
				if out.Text != "Pump 3 stopped" {
					t.Errorf("text %q", out.Text)
				}
			}},
		{name: "subject prefix", args: []string{"--subject", "prefix", "-"}, stdin: "Subject: Alarm\r\n\r\nPump 3 stopped\r\n",
			check: func(t *testing.T, out convertOutput) {
				if out.Text != "Alarm: Pump 3 stopped" {
					t.Errorf("text %q", out.Text)
				}
			}},
		{name: "mail with no text is refused", args: []string{"-"}, stdin: "From: a@b.test\r\n\r\n\r\n",
			wantStatus: 2, wantError: "550 5.6.0"},
		{name: "bad option", args: []string{"--concat", "smoke", "--text", "x"}, wantStatus: 2},
		{name: "missing file", args: []string{"/nonexistent/mail.eml"}, wantStatus: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			status := runConvert(tc.args, strings.NewReader(tc.stdin), &stdout, &stderr)
			if status != tc.wantStatus {
				t.Fatalf("status %d, want %d; stdout %s stderr %s", status, tc.wantStatus, &stdout, &stderr)
			}
			if tc.wantError != "" {
				var e struct{ Error string }
				if err := json.Unmarshal(stdout.Bytes(), &e); err != nil || !strings.HasPrefix(e.Error, tc.wantError) {
					t.Fatalf("output %s, want error %q", &stdout, tc.wantError)
				}
			}
			if tc.check != nil {
				var out convertOutput
				if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
					t.Fatalf("output is not JSON: %v\n%s", err, &stdout)
				}
				tc.check(t, out)
			}
		})
	}
}
