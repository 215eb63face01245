package convert

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the .golden.json files of testdata")

// golden is what a sample mail gives: the Mail, or the error, and how its
// text encodes with the default options.
type golden struct {
	Error     string   `json:"error,omitempty"`
	Subject   string   `json:"subject,omitempty"`
	MessageID string   `json:"message_id,omitempty"`
	Header    string   `json:"header,omitempty"`
	Text      string   `json:"text,omitempty"`
	Coding    string   `json:"coding,omitempty"`
	Needed    int      `json:"needed,omitempty"`
	Truncated bool     `json:"truncated,omitempty"`
	Segments  []string `json:"segments,omitempty"` // the text of each segment
}

// Samples that must fail, and with what.
var wantErr = map[string]error{
	"empty":        ErrNoText,
	"deep-nesting": ErrTooComplex,
}

func TestExtractGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/*.eml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no samples: %v", err)
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".eml")
		t.Run(name, func(t *testing.T) {
			got := extractGolden(t, file)
			if want := wantErr[name]; want != nil || got.Error != "" {
				checkErr(t, got.Error, want, file)
			}
			compareGolden(t, strings.TrimSuffix(file, ".eml")+".golden.json", got)
		})
	}
}

func extractGolden(t *testing.T, file string) golden {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := Extract(f, Options{})
	if err != nil {
		return golden{Error: err.Error()}
	}
	enc, err := Encode(m.Text, Options{})
	if err != nil {
		t.Fatalf("Encode: %v", err)
	}
	g := golden{Subject: m.Subject, MessageID: m.MessageID, Header: string(m.Header), Text: m.Text,
		Coding: codingName(enc.Coding), Needed: enc.Needed, Truncated: enc.Truncated}
	for i, s := range enc.Segments {
		checkFits(t, enc, i)
		g.Segments = append(g.Segments, s.Text)
	}
	return g
}

func checkErr(t *testing.T, got string, want error, file string) {
	t.Helper()
	if want == nil {
		t.Fatalf("Extract(%s): unexpected error %s", file, got)
	}
	// Re-run to check the error's identity, not only its text.
	f, _ := os.Open(file)
	defer f.Close()
	if _, err := Extract(f, Options{}); !errors.Is(err, want) {
		t.Fatalf("Extract(%s) = %v, want %v", file, err, want)
	}
}

func compareGolden(t *testing.T, path string, got golden) {
	t.Helper()
	data, err := json.MarshalIndent(got, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	data = append(data, '\n')
	if *update {
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./convert -update)", err)
	}
	if !bytes.Equal(data, want) {
		t.Errorf("%s differs (go test ./convert -update, then review the diff)\ngot:\n%s\nwant:\n%s", path, data, want)
	}
}

func codingName(c Coding) string {
	if c == UCS2 {
		return "UCS2"
	}
	return "GSM7"
}

// nested builds a mail whose body is depth multiparts inside each other.
func nested(depth int) string {
	var b strings.Builder
	b.WriteString("Subject: deep\r\nContent-Type: multipart/mixed; boundary=\"b0\"\r\n\r\n")
	for i := 1; i < depth; i++ {
		fmt.Fprintf(&b, "--b%d\r\nContent-Type: multipart/mixed; boundary=\"b%d\"\r\n\r\n", i-1, i)
	}
	fmt.Fprintf(&b, "--b%d\r\nContent-Type: text/plain\r\n\r\ndeep text\r\n", depth-1)
	for i := depth - 1; i >= 0; i-- {
		fmt.Fprintf(&b, "--b%d--\r\n", i)
	}
	return b.String()
}

func TestExtractLimits(t *testing.T) {
	manyParts := "Subject: s\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n" +
		strings.Repeat("--x\r\nContent-Type: image/png\r\n\r\n.\r\n", 200) + "--x--\r\n"
	tests := []struct {
		name string
		mail string
		lim  Limits
		want error
	}{
		{"depth at the limit is read", nested(3), Limits{MaxDepth: 3}, nil},
		{"one level deeper than the limit is refused", nested(4), Limits{MaxDepth: 3}, ErrTooComplex},
		{"10,000 levels are refused at the default depth", nested(10000), Limits{MaxParts: 1 << 20}, ErrTooComplex},
		{"more parts than the limit are refused", manyParts, Limits{}, ErrTooComplex},
		{"parts up to the limit are read", manyParts, Limits{MaxParts: 201}, nil},
		{"text over the byte limit is refused", "Subject: s\r\n\r\n" + strings.Repeat("a", 101), Limits{MaxBytes: 100}, ErrTooComplex},
		{"text at the byte limit is read", "Subject: s\r\n\r\n" + strings.Repeat("a", 100), Limits{MaxBytes: 100}, nil},
		{"alternating quotes and blank lines are handled in linear time",
			"Subject: s\r\n\r\nhi\n" + strings.Repeat("> q\n\n", 90000), Limits{}, nil},
		{"header over 1 MiB is refused", "Subject: " + strings.Repeat("a", 1<<20) + "\r\n\r\nhi", Limits{}, ErrTooComplex},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			_, err := Extract(strings.NewReader(tc.mail), Options{Limits: tc.lim})
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			// go-message alone needs seconds for 10,000 levels.
			if d := time.Since(start); d > time.Second {
				t.Errorf("took %v", d)
			}
		})
	}
}

// errAfter yields data, then fails like a dropped connection.
type errAfter struct {
	data string
	err  error
}

func (e *errAfter) Read(p []byte) (int, error) {
	if e.data == "" {
		return 0, e.err
	}
	n := copy(p, e.data)
	e.data = e.data[n:]
	return n, nil
}

func TestExtractReaderErrorIsNotSalvaged(t *testing.T) {
	boom := errors.New("connection reset")
	_, err := Extract(&errAfter{data: "Subject: hi\r\n\r\nsome text", err: boom}, Options{})
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want %v", err, boom)
	}
}

func TestExtractHeaderBlock(t *testing.T) {
	tests := []struct {
		name, mail, header, text string
	}{
		{"CRLF header kept byte for byte", "Subject: a\r\nX-Folded: b\r\n c\r\n\r\nbody\r\n", "Subject: a\r\nX-Folded: b\r\n c\r\n", "body"},
		{"LF header kept byte for byte", "Subject: a\n\nbody\n", "Subject: a\n", "body"},
		{"header without body", "Subject: only", "Subject: only", "only"},
		{"no header at all", "\r\nbody", "", "body"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Extract(strings.NewReader(tc.mail), Options{})
			if err != nil {
				t.Fatal(err)
			}
			if string(m.Header) != tc.header || m.Text != tc.text {
				t.Errorf("Header %q Text %q, want %q %q", m.Header, m.Text, tc.header, tc.text)
			}
		})
	}
}

func TestExtractSubjectPolicy(t *testing.T) {
	withBody := "Subject: Disk full\r\n\r\n/var is at 99%\r\n"
	noBody := "Subject: Disk full\r\n\r\n\r\n"
	tests := []struct {
		name string
		mail string
		opt  Options
		text string
		err  error
	}{
		{"if-empty (default) sends the body", withBody, Options{}, "/var is at 99%", nil},
		{"if-empty sends the subject when the body is empty", noBody, Options{}, "Disk full", nil},
		{"prefix puts subject and separator first", withBody, Options{Subject: SubjectPrefix}, "Disk full: /var is at 99%", nil},
		{"prefix with a custom separator", withBody, Options{Subject: SubjectPrefix, SubjectSeparator: "\n"}, "Disk full\n/var is at 99%", nil},
		{"prefix with an empty body is the subject alone", noBody, Options{Subject: SubjectPrefix}, "Disk full", nil},
		{"none never sends the subject", withBody, Options{Subject: SubjectNone}, "/var is at 99%", nil},
		{"none with an empty body has no text", noBody, Options{Subject: SubjectNone}, "", ErrNoText},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Extract(strings.NewReader(tc.mail), tc.opt)
			if !errors.Is(err, tc.err) {
				t.Fatalf("err = %v, want %v", err, tc.err)
			}
			if err == nil && m.Text != tc.text {
				t.Errorf("text %q, want %q", m.Text, tc.text)
			}
		})
	}
}
