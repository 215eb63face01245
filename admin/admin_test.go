package admin

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/smsbridge/smsbridge/store"
)

func setup(t *testing.T, cfg Config) (*httptest.Server, *store.Store, []*store.Record) {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "a.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	recs := []*store.Record{
		{From: "ops@x.test", Rcpt: "+14155550123@sms.test", To: "+14155550123", Text: "disk full", Segments: []store.Segment{{Payload: []byte("disk full")}}},
		{From: "erp@x.test", Rcpt: "+4915112345678@sms.test", To: "+4915112345678", Text: "<invoice>", Segments: []store.Segment{{Payload: []byte("x")}}},
	}
	if err := st.Add(context.Background(), recs); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(New(cfg, st, nil))
	t.Cleanup(srv.Close)
	return srv, st, recs
}

func do(t *testing.T, method, url, token string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestAPI(t *testing.T) {
	srv, _, recs := setup(t, Config{Routes: func() []RouteStatus {
		return []RouteStatus{{Name: "default", Addr: "smsc:2775", Bound: true, Binds: 1}}
	}})
	tests := []struct {
		name, method, path string
		code               int
		want               []string // substrings of the body
	}{
		{"health", "GET", "/healthz", 200, []string{"ok"}},
		{"ready", "GET", "/readyz", 200, []string{"ready"}},
		{"list all", "GET", "/api/records", 200, []string{recs[0].ID, recs[1].ID}},
		{"list by destination", "GET", "/api/records?to=%2B4915112345678", 200, []string{recs[1].ID}},
		{"bad limit", "GET", "/api/records?limit=x", 400, []string{"limit"}},
		{"bad time", "GET", "/api/records?since=yesterday", 400, []string{"since"}},
		{"show", "GET", "/api/records/" + recs[0].ID, 200, []string{`"text": "disk full"`, `"what": "accepted"`}},
		{"show unknown", "GET", "/api/records/nope", 404, []string{"not found"}},
		{"retry queued", "POST", "/api/records/" + recs[0].ID + "/retry", 200, []string{"requested by an operator"}},
		{"cancel", "POST", "/api/records/" + recs[1].ID + "/cancel", 200, []string{`"state": "cancelled"`}},
		{"cancel twice conflicts", "POST", "/api/records/" + recs[1].ID + "/cancel", 409, []string{"cancelled record cannot be cancelled"}},
		{"retry a final record conflicts", "POST", "/api/records/" + recs[1].ID + "/retry", 409, []string{"only a queued record"}},
		{"routes", "GET", "/api/routes", 200, []string{`"name": "default"`, `"bound": true`}},
		{"counts", "GET", "/api/counts", 200, []string{`"queued": 1`, `"cancelled": 1`}},
		{"status page", "GET", "/", 200, []string{"<h1>smsbridge</h1>", recs[0].ID, "smsc:2775", "cancelled"}},
		{"metrics", "GET", "/metrics", 200, []string{"go_goroutines"}},
		{"inbound, none yet", "GET", "/api/inbound", 200, []string{`"inbound": []`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, body := do(t, tc.method, srv.URL+tc.path, "")
			if code != tc.code {
				t.Fatalf("%s %s: %d, want %d\n%s", tc.method, tc.path, code, tc.code, body)
			}
			for _, w := range tc.want {
				if !strings.Contains(body, w) {
					t.Errorf("body lacks %q:\n%s", w, body)
				}
			}
		})
	}
	// The list of a cancelled destination no longer shows it queued.
	_, body := do(t, "GET", srv.URL+"/api/records?state=queued", "")
	var out struct{ Records []RecordSummary }
	json.Unmarshal([]byte(body), &out)
	if len(out.Records) != 1 || out.Records[0].ID != recs[0].ID {
		t.Errorf("queued records %+v", out.Records)
	}
}

func TestToken(t *testing.T) {
	srv, _, _ := setup(t, Config{Token: "s3cret"})
	for _, tc := range []struct {
		path, token string
		code        int
	}{
		{"/healthz", "", 200},
		{"/readyz", "", 200},
		{"/api/records", "", 401},
		{"/api/records", "wrong", 401},
		{"/api/records", "s3cret", 200},
		{"/metrics", "", 401},
	} {
		if code, _ := do(t, "GET", srv.URL+tc.path, tc.token); code != tc.code {
			t.Errorf("%s with token %q: %d, want %d", tc.path, tc.token, code, tc.code)
		}
	}
}

func TestNotReady(t *testing.T) {
	srv, _, _ := setup(t, Config{Ready: func() bool { return false }, Gatherer: prometheus.NewRegistry()})
	if code, _ := do(t, "GET", srv.URL+"/readyz", ""); code != 503 {
		t.Errorf("/readyz = %d while nothing is bound", code)
	}
}

// Profiles are served only when asked for, and behind the token.
func TestPprof(t *testing.T) {
	off, _, _ := setup(t, Config{Gatherer: prometheus.NewRegistry()})
	if code, _ := do(t, "GET", off.URL+"/debug/pprof/heap", ""); code != 404 {
		t.Errorf("/debug/pprof/heap without Pprof: %d, want 404", code)
	}
	on, _, _ := setup(t, Config{Pprof: true, Token: "s3cret", Gatherer: prometheus.NewRegistry()})
	for _, tc := range []struct {
		path, token string
		code        int
		has         string
	}{
		{"/debug/pprof/heap?debug=1", "", 401, ""},
		{"/debug/pprof/heap?debug=1", "s3cret", 200, "heap profile"},
		{"/debug/pprof/goroutine?debug=1", "s3cret", 200, "goroutine profile"},
		{"/debug/pprof/", "s3cret", 200, "allocs"},
		{"/debug/pprof/cmdline", "s3cret", 200, ""},
	} {
		code, body := do(t, "GET", on.URL+tc.path, tc.token)
		if code != tc.code || !strings.Contains(body, tc.has) {
			t.Errorf("%s with token %q: %d, want %d with %q", tc.path, tc.token, code, tc.code, tc.has)
		}
	}
}
