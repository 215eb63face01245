package main

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func writeFile(t *testing.T, body string) string {
	p := filepath.Join(t.TempDir(), "c.toml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestExampleConfigIsTheDefault(t *testing.T) {
	c, err := parseServeFlags([]string{"--config", "../../smsbridge.example.toml"})
	if err != nil {
		t.Fatal(err)
	}
	if want := defaultConfig(); !reflect.DeepEqual(c, want) {
		t.Errorf("example config differs from defaults:\n got %+v\nwant %+v", c, want)
	}
}

func TestConfigErrors(t *testing.T) {
	tests := []struct {
		name, file string
		args       []string
		wantErr    string
	}{
		{"unknown key is named with its line", "smtp_adr = \"x\"\n", nil, "c.toml:1: smtp_adr: unknown key"},
		{"unknown nested key is named with its line", "# comment\n[smsc]\nwindw = 3\n", nil, "c.toml:3: smsc.windw: unknown key"},
		{"bad value has its line", "domains = [\"a\"]\n[convert]\nsubject = \"maybe\"\n", nil, "c.toml:3: convert.subject"},
		{"route option filed under smsc", "[smsc]\nconcat = \"udh9\"\n", nil, "c.toml:2: smsc.concat"},
		{"window out of range", "[smsc]\nwindow = 0\n", nil, "smsc.window: 0 is not in 1..1000"},
		{"route without address", "[[routes]]\nname = \"de\"\nprefixes = [\"+49\"]\n", nil, "routes[0].addr"},
		{"route named twice", "[[routes]]\nname = \"default\"\naddr = \"a:1\"\n", nil, "used twice"},
		{"route smsc_id with a colon", "[[routes]]\nname = \"de\"\nsmsc_id = \"a:b\"\naddr = \"a:1\"\n", nil, "routes[0].smsc_id"},
		{"smsc_id of another SMSC account", "[[routes]]\nname = \"de\"\nsmsc_id = \"default\"\naddr = \"a:1\"\n", nil, "routes[0].smsc_id"},
		{"smsc_id with a space", "[smsc]\nsmsc_id = \"a b\"\n", nil, "smsc.smsc_id"},
		{"route prefix not E.164", "[[routes]]\nname = \"de\"\naddr = \"a:1\"\nprefixes = [\"49\"]\n", nil, "routes[0].prefixes"},
		{"sender id too long", "source_addr = \"ACME Corporation\"\n", nil, "c.toml:1: source_addr"},
		{"smarthost tls mode", "smarthost_tls = \"maybe\"\n", nil, "smarthost_tls"},
		{"bad TON/NPI", "[smsc]\nton_npi_short_code = \"3-0\"\n", nil, "ton_npi_short_code"},
		{"every error is reported", "default_region = \"XX\"\nlog_format = \"xml\"\n", nil, "log_format"},
		{"syntax error has a line", "domains = [\n", nil, "line"},
		{"bad duration", "[retry]\nmin = \"soon\"\n", nil, "soon"},
		{"bad CIDR", "", []string{"--trusted-networks", "10.0.0.0/33"}, "trusted_networks"},
		{"bad region", "default_region = \"USA\"\n", nil, "default_region"},
		{"dedup window over a day", "[store]\ndedup_window = \"25h\"\n", nil, "store.dedup_window"},
		{"stray argument", "", []string{"extra"}, "unexpected arguments"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"--config", writeFile(t, tc.file)}, tc.args...)
			_, err := parseServeFlags(args)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.wantErr)
			}
		})
	}
}

// TestSharedSMSCID: routes that bind the same SMSC account may store
// their ids under one smsc_id (a renamed route beside its old name, or two
// prefixes sets over one account).
func TestSharedSMSCID(t *testing.T) {
	file := writeFile(t, "[smsc]\naddr = \"smsc:2775\"\nsystem_id = \"acme\"\n"+
		"[[routes]]\nname = \"de\"\nsmsc_id = \"default\"\naddr = \"smsc:2775\"\nsystem_id = \"acme\"\nprefixes = [\"+49\"]\n")
	if _, err := parseServeFlags([]string{"--config", file}); err != nil {
		t.Fatal(err)
	}
}

func TestFlagsOverrideFile(t *testing.T) {
	file := writeFile(t, "smtp_addr = \"0.0.0.0:25\"\ndomains = [\"a.test\"]\n[smsc]\naddr = \"smsc:2775\"\nwindow = 50\n[retry]\nmin = \"5s\"\n")
	c, err := parseServeFlags([]string{"--config", file, "--domain", "b.test", "--domain", "c.test",
		"--smsc", "other:2775", "--trusted-networks", "10.0.0.0/8,192.168.0.0/16"})
	if err != nil {
		t.Fatal(err)
	}
	if c.SMTPAddr != "0.0.0.0:25" || c.SMSC.Window != 50 || c.Retry.Min.Duration != 5*time.Second {
		t.Errorf("file values lost: %+v", c)
	}
	if !reflect.DeepEqual(c.Domains, []string{"b.test", "c.test"}) || c.SMSC.Addr != "other:2775" {
		t.Errorf("flags did not override: domains %v smsc %q", c.Domains, c.SMSC.Addr)
	}
	if !reflect.DeepEqual(c.TrustedNetworks, []string{"10.0.0.0/8", "192.168.0.0/16"}) {
		t.Errorf("trusted networks %v", c.TrustedNetworks)
	}
}

func TestCheckConfig(t *testing.T) {
	var out, errOut strings.Builder
	bad := writeFile(t, "default_region = \"XX\"\n[smsc]\npassword = \"hunter2\"\nwindw = 3\n")
	if status := runCheckConfig([]string{bad}, &out, &errOut); status != 1 {
		t.Fatalf("status %d for a broken file", status)
	}
	for _, want := range []string{"c.toml:4: smsc.windw: unknown key", "c.toml:1: default_region"} {
		if !strings.Contains(errOut.String(), want) {
			t.Errorf("errors %q lack %q", errOut.String(), want)
		}
	}
	out.Reset()
	good := writeFile(t, "smarthost_password = \"pw3\"\n[smsc]\npassword = \"hunter2\"\nwindow = 50\n[[routes]]\nname = \"b\"\naddr = \"b:1\"\npassword = \"routesecret\"\n")
	if status := runCheckConfig([]string{good}, &out, &errOut); status != 0 {
		t.Fatalf("status %d for a good file", status)
	}
	if strings.Contains(out.String(), "hunter2") || strings.Contains(out.String(), "routesecret") ||
		strings.Contains(out.String(), "pw3") || !strings.Contains(out.String(), "window = 50") {
		t.Errorf("effective config:\n%s", out.String())
	}
}

// --help is help, and another flag a usage error, not a file to read.
func TestCheckConfigFlags(t *testing.T) {
	for _, tc := range []struct {
		args   []string
		status int
		out    string // in stdout, or else in stderr
	}{
		{[]string{"--help"}, 0, "usage: smsbridge check-config"},
		{[]string{"-h"}, 0, "usage: smsbridge check-config"},
		{[]string{"--config"}, 2, "usage: smsbridge check-config"},
		{[]string{"a.toml", "b.toml"}, 2, "usage: smsbridge check-config"},
	} {
		var out, errOut strings.Builder
		status := runCheckConfig(tc.args, &out, &errOut)
		got := errOut.String()
		if tc.status == 0 {
			got = out.String()
		}
		if status != tc.status || !strings.Contains(got, tc.out) {
			t.Errorf("check-config %q: status %d, stdout %q, stderr %q", tc.args, status, out.String(), errOut.String())
		}
	}
}

func TestMaskNumber(t *testing.T) {
	for in, want := range map[string]string{
		"+14155550123":             "+1415555xxxx",
		"+14155550123@sms.example": "+1415555xxxx@sms.example",
		"123":                      "xxx",
		"ops@example.com":          "ops@example.com",
	} {
		if got := maskNumber(in); got != want {
			t.Errorf("maskNumber(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestRoutablePrefixes(t *testing.T) {
	c := defaultConfig()
	if got := c.routablePrefixes(); len(got) != 0 {
		t.Errorf("demo: %v", got)
	}
	c.Routes = []RouteConfig{{Name: "de", Prefixes: []string{"+49"}}, {Name: "fr", Prefixes: []string{"+33"}}}
	if got := c.routablePrefixes(); !reflect.DeepEqual(got, []string{"+49", "+33"}) {
		t.Errorf("routes only: %v", got)
	}
	c.SMSC.Addr = "smsc:2775"
	if got := c.routablePrefixes(); len(got) != 0 {
		t.Errorf("with a default route: %v", got)
	}
}
