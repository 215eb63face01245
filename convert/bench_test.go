package convert

import (
	"bytes"
	"os"
	"testing"
)

// BenchmarkConvert extracts and encodes a typical 3 KB multipart/alternative
// mail (Gmail-shaped: DKIM and Received headers, quoted-printable text and
// HTML parts, a signature) with the default options.
func BenchmarkConvert(b *testing.B) {
	mail, err := os.ReadFile("testdata/typical-3k-alternative.eml")
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(mail)))
	b.ReportAllocs()
	for b.Loop() {
		m, err := Extract(bytes.NewReader(mail), Options{})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := Encode(m.Text, Options{}); err != nil {
			b.Fatal(err)
		}
	}
}
