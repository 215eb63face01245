package smtp

// Tests for the smsbridge patch to the DATA reader (see PATCHES.md).

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestPatchDataReaderDotCR(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"end of data", "a\r\n.\r\n", "a\r\n"},
		{"dot-stuffing", "a\r\n..b\r\n.\r\n", "a\r\n.b\r\n"},
		{"dot-stuffed end marker", "a\r\n..\r\n.\r\n", "a\r\n.\r\n"},
		{"dot at the start of the data", ".\r\n", ""},
		// The patch: "." CR without LF keeps its CR, so it shows as a bare
		// CR; upstream gave "a\r\nb\r\n".
		{"dot CR without LF", "a\r\n.\rb\r\n.\r\n", "a\r\n\rb\r\n"},
		{"dot CR CR LF", "a\r\n.\r\r\n.\r\n", "a\r\n\r\r\n"},
		{"dot CR dot is no end marker", "a\r\n.\r.\r\n.\r\n", "a\r\n\r.\r\n"},
		{"bare LF dot LF is data", "a\n.\nb\r\n.\r\n", "a\n.\nb\r\n"},
		// Change 4: CR CR LF . CR LF holds CRLF . CRLF, the end.
		{"CR CR LF dot CR LF ends the data", "a\r\r\n.\r\n", "a\r\r\n"},
	}
	for _, tc := range tests {
		for _, size := range []int{1, 2, 4096} {
			dr := &dataReader{r: bufio.NewReader(strings.NewReader(tc.in + "NEXT"))}
			var got []byte
			buf := make([]byte, size)
			var err error
			for err == nil {
				var n int
				n, err = dr.Read(buf)
				got = append(got, buf[:n]...)
			}
			if !errors.Is(err, io.EOF) {
				t.Fatalf("%s (reads of %d): error %v", tc.name, size, err)
			}
			if string(got) != tc.want {
				t.Fatalf("%s (reads of %d): got %q, want %q", tc.name, size, got, tc.want)
			}
			// Nothing after the end marker was read.
			rest, _ := io.ReadAll(dr.r)
			if string(rest) != "NEXT" {
				t.Fatalf("%s (reads of %d): left %q", tc.name, size, rest)
			}
		}
	}
}

// TestPatchDataReaderLimit: the CR handed on counts toward
// MaxMessageBytes like any other byte.
func TestPatchDataReaderLimit(t *testing.T) {
	dr := &dataReader{r: bufio.NewReader(strings.NewReader("a\r\n.\rbc\r\n.\r\n")), limited: true, n: 5}
	got, err := io.ReadAll(dr)
	if err != ErrDataTooLarge {
		t.Fatalf("error %v", err)
	}
	if string(got) != "a\r\n\rb" {
		t.Fatalf("got %q", got)
	}
}

// PatchTestKeyPair lends client_test.go's localhost certificate to the
// external tests of the patches (export_test idiom).
var PatchTestKeyPair = [2][]byte{localhostCert, localhostKey}

// FuzzPatchDataReader: the DATA reader reads outside input. For any input
// it stops at the first CRLF.CRLF without reading past it; its output has
// a bare CR or LF exactly when the data before the end marker has one, so
// that a backend refusing bare newlines (smsbridge's smuggling check)
// sees every one; and proper lines, dot-stuffed, come back unchanged.
func FuzzPatchDataReader(f *testing.F) {
	f.Add([]byte("a\r\n.\rb"), byte(1))
	f.Add([]byte("a\n.\nb"), byte(7))
	f.Add([]byte(".x\r\n..\r\n"), byte(0))
	f.Add([]byte("\r\n.\r\r\n"), byte(3))
	f.Fuzz(func(t *testing.T, raw []byte, size byte) {
		in := append(bytes.Clone(raw), "\r\n.\r\nNEXT"...)
		got, rest := readData(t, in, int(size)%64+1)
		content := in[:len(in)-len(rest)]
		content = content[:len(content)-3] // ".\r\n" of the end marker
		if !bytes.HasSuffix(content, []byte("\r\n")) && len(content) > 0 {
			t.Fatalf("stopped inside a line: content %q", content)
		}
		if hasBare(content) != hasBare(got) {
			t.Fatalf("bare CR/LF in the data %v, in the output %v: data %q, output %q", hasBare(content), hasBare(got), content, got)
		}
		// The same text as proper lines, dot-stuffed, comes back whole.
		var lines []string
		for _, l := range strings.Split(strings.NewReplacer("\r\n", "\n", "\r", "\n").Replace(string(raw)), "\n") {
			lines = append(lines, l)
		}
		want := strings.Join(lines, "\r\n") + "\r\n"
		var stuffed strings.Builder
		for _, l := range lines {
			if strings.HasPrefix(l, ".") {
				stuffed.WriteString(".")
			}
			stuffed.WriteString(l + "\r\n")
		}
		stuffed.WriteString(".\r\nNEXT")
		got, rest = readData(t, []byte(stuffed.String()), int(size)%64+1)
		if string(got) != want || string(rest) != "NEXT" {
			t.Fatalf("stuffed %q: got %q (left %q), want %q", stuffed.String(), got, rest, want)
		}
	})
}

// readData reads in through a dataReader in reads of size bytes, and
// returns what it gave and what it left unread.
func readData(t *testing.T, in []byte, size int) (got, rest []byte) {
	dr := &dataReader{r: bufio.NewReader(bytes.NewReader(in))}
	buf := make([]byte, size)
	var err error
	for err == nil {
		var n int
		n, err = dr.Read(buf)
		got = append(got, buf[:n]...)
	}
	if !errors.Is(err, io.EOF) {
		t.Fatalf("error %v", err)
	}
	rest, _ = io.ReadAll(dr.r)
	return got, rest
}

// hasBare reports a CR not followed by LF or an LF not preceded by CR.
func hasBare(b []byte) bool {
	for i, c := range b {
		if (c == '\r' && (i+1 == len(b) || b[i+1] != '\n')) || (c == '\n' && (i == 0 || b[i-1] != '\r')) {
			return true
		}
	}
	return false
}

// TestPatchDataReaderExactLimit: a message of exactly MaxMessageBytes is
// taken (upstream refused it), one byte more is not, and nothing after the
// end marker is read.
func TestPatchDataReaderExactLimit(t *testing.T) {
	for _, tc := range []struct {
		in    string
		limit int64
		want  error
	}{
		{"abc\r\n.\r\nNEXT", 5, nil},
		{"abc\r\n.\r\nNEXT", 4, ErrDataTooLarge},
		{"..b\r\n.\r\nNEXT", 4, nil}, // the stuffing dot does not count
		{"abc\r\n..\r\n.\r\nNEXT", 5, ErrDataTooLarge},
	} {
		dr := &dataReader{r: bufio.NewReader(strings.NewReader(tc.in)), limited: true, n: tc.limit}
		_, err := io.ReadAll(dr)
		if err != tc.want {
			t.Errorf("%q, limit %d: error %v, want %v", tc.in, tc.limit, err, tc.want)
			continue
		}
		if rest, _ := io.ReadAll(dr.r); err == nil && string(rest) != "NEXT" {
			t.Errorf("%q, limit %d: left %q", tc.in, tc.limit, rest)
		}
		if n, err := dr.Read(make([]byte, 8)); tc.want == nil && (n != 0 || err != io.EOF) {
			t.Errorf("%q: a Read after the end gave %d, %v", tc.in, n, err)
		}
	}
}
