package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/smsbridge/smsbridge/admin"
	"github.com/smsbridge/smsbridge/store"
)

const queueUsage = `usage: smsbridge queue [flags] list [--state S] [--to NUMBER] [--from ADDR] [--since T] [--until T] [--limit N] [--before ID]
       smsbridge queue [flags] show ID
       smsbridge queue [flags] retry ID    make a queued record due now
       smsbridge queue [flags] cancel ID   end a record that is not final

Talks to a running server's admin API (--admin-addr, --token or
SMSBRIDGE_ADMIN_TOKEN); with --data-dir it opens the store itself, which
works only while the server is stopped (the file is locked). Flags may
come before or after the subcommand.

flags:
`

// runQueue is `smsbridge queue`. Flags may come before or after the
// subcommand and its arguments (`queue list --data-dir D` as well as
// `queue --data-dir D list`).
func runQueue(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("queue", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, queueUsage); fs.PrintDefaults() }
	adminAddr := fs.String("admin-addr", "127.0.0.1:8025", "admin listener of the running server")
	token := fs.String("token", os.Getenv("SMSBRIDGE_ADMIN_TOKEN"), "admin bearer token")
	dataDir := fs.String("data-dir", "", "open the store in this directory instead (server stopped)")
	asJSON := fs.Bool("json", false, "print JSON instead of a table")
	filters := url.Values{}
	for _, name := range []string{"state", "to", "from", "limit", "before", "since", "until"} {
		fs.Func(name, "list: filter by "+name, func(v string) error { filters.Set(name, v); return nil })
	}
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return 2
	}
	if len(pos) < 1 {
		fs.Usage()
		return 2
	}
	cmd, rest := pos[0], pos[1:]
	switch {
	case cmd == "list" && len(rest) == 0 || cmd != "list" && len(filters) == 0 && len(rest) == 1 &&
		(cmd == "show" || cmd == "retry" || cmd == "cancel"):
	default:
		fs.Usage()
		return 2
	}
	cl, closeFn, err := queueClient(*adminAddr, *token, *dataDir)
	if err != nil {
		fmt.Fprintln(stderr, "smsbridge queue:", err)
		return 1
	}
	defer closeFn()
	var out any
	if cmd == "list" {
		out, err = cl.list(filters)
	} else {
		method, path := "GET", "/api/records/"+url.PathEscape(rest[0])
		if cmd != "show" {
			method, path = "POST", path+"/"+cmd
		}
		var d admin.RecordDetail
		err = cl.call(method, path, &d)
		out = d
	}
	if err != nil {
		fmt.Fprintln(stderr, "smsbridge queue:", err)
		return 1
	}
	if *asJSON {
		e := json.NewEncoder(stdout)
		e.SetIndent("", "  ")
		e.Encode(out)
		return 0
	}
	printQueue(stdout, out)
	return 0
}

// apiClient speaks the admin API, over TCP or to a handler in process.
type apiClient struct {
	http  *http.Client
	base  string
	token string
}

// queueClient returns a client of the running server's API, or, with
// dataDir, of an admin handler over the store opened here.
func queueClient(addr, token, dataDir string) (*apiClient, func(), error) {
	if dataDir == "" {
		return &apiClient{http: &http.Client{Timeout: 30 * time.Second}, base: "http://" + addr, token: token}, func() {}, nil
	}
	st, err := store.Open(filepath.Join(dataDir, "smsbridge.db"), store.Options{})
	if err != nil {
		return nil, nil, fmt.Errorf("%w (is the server running? then use --admin-addr)", err)
	}
	h := admin.New(admin.Config{}, st, nil)
	return &apiClient{http: &http.Client{Transport: handlerTransport{h}}, base: "http://local"},
		func() { st.Close() }, nil
}

// handlerTransport answers requests with an http.Handler in this process.
type handlerTransport struct{ h http.Handler }

func (t handlerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	w := httptest.NewRecorder()
	t.h.ServeHTTP(w, r)
	return w.Result(), nil
}

func (c *apiClient) call(method, path string, out any) error {
	req, err := http.NewRequest(method, c.base+path, nil)
	if err != nil {
		return err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		var e struct{ Error string }
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			return errors.New(e.Error)
		}
		return fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	return json.Unmarshal(body, out)
}

type recordList struct {
	Records []admin.RecordSummary `json:"records"`
	Next    string                `json:"next,omitempty"`
}

func (c *apiClient) list(filters url.Values) (recordList, error) {
	var out recordList
	err := c.call("GET", "/api/records?"+filters.Encode(), &out)
	return out, err
}

// parseInterleaved parses args with fs, flags and positional arguments in
// any order (flag.Parse stops at the first positional one), and returns
// the positional ones.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

func printQueue(w io.Writer, out any) {
	switch o := out.(type) {
	case recordList:
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tCREATED\tSTATE\tFROM\tTO\tPARTS\tATTEMPTS\tLAST ERROR")
		for _, r := range o.Records {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\n", r.ID, r.Created.Format("2006-01-02 15:04:05"),
				r.State, r.From, r.To, r.Segments, r.Attempts, r.LastError)
		}
		tw.Flush()
		if o.Next != "" {
			fmt.Fprintf(w, "more: --before %s\n", o.Next)
		}
	case admin.RecordDetail:
		fmt.Fprintf(w, "id:        %s\nstate:     %s\nfrom:      %s\nto:        %s (%s)\nmessage:   %s\nsubject:   %s\ncreated:   %s\nattempts:  %d\n",
			o.ID, o.State, o.From, o.To, o.Rcpt, o.MessageID, o.Subject, o.Created.Format(time.RFC3339), o.Attempts)
		if o.LastError != "" {
			fmt.Fprintf(w, "error:     %s\n", o.LastError)
		}
		fmt.Fprintf(w, "text:      %q\n", o.Text)
		for i, p := range o.Parts {
			fmt.Fprintf(w, "part %d/%d:  %s smsc_id=%s stat=%s err=%s\n", i+1, len(o.Parts), p.State, p.SMSCID, p.Stat, p.Err)
		}
		fmt.Fprintln(w, "history:")
		for _, e := range o.Events {
			fmt.Fprintf(w, "  %s  %-10s %s\n", e.At.Format("2006-01-02 15:04:05.000"), e.What, e.Detail)
		}
	}
}
