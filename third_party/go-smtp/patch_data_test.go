package smtp

// Tests for the smsbridge patch to the DATA reader (see PATCHES.md).

import (
	"bufio"
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
