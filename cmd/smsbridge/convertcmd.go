package main

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/smsbridge/smsbridge/convert"
	"github.com/smsbridge/smsbridge/smtpd"
)

// convertUsage is printed by `smsbridge convert -h`.
const convertUsage = `usage: smsbridge convert [flags] FILE|-     a whole mail (- for stdin)
       smsbridge convert [flags] --text STRING  plain text, encoded exactly as given

Prints what the server would send: the text, its encoding and its segments,
as JSON (or a table with --pretty). A mail the server would refuse exits 2
with {"error": "<the SMTP reply>"}. UDHs are shown with reference 00: the
real reference is assigned per destination when a mail is queued.

flags:
`

// convertOutput is the JSON of `smsbridge convert`.
type convertOutput struct {
	Text       string          `json:"text"`
	Encoding   string          `json:"encoding"`
	Languages  []string        `json:"languages"`
	DataCoding byte            `json:"data_coding"`
	Concat     string          `json:"concat"`
	Needed     int             `json:"needed"`
	Truncated  bool            `json:"truncated"`
	Segments   []segmentOutput `json:"segments"`
}

type segmentOutput struct {
	Text    string `json:"text"`
	UDH     string `json:"udh"`
	Payload string `json:"payload"`
}

// languageCodes names the national language identifiers of TS 23.038
// §6.2.1.2.4 by their ISO 639-1 codes.
var languageCodes = map[uint8]string{
	1: "tr", 2: "es", 3: "pt", 4: "bn", 5: "gu", 6: "hi", 7: "kn",
	8: "ml", 9: "or", 10: "pa", 11: "ta", 12: "te", 13: "ur",
}

func runConvert(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("convert", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, convertUsage); fs.PrintDefaults() }
	var (
		file, text, translit, subject, overflow, concat string
		languages                                       listFlag
		maxSegs                                         int
		pretty, textSet                                 bool
	)
	fs.StringVar(&file, "config", "", "read the [convert] and [smsc] options of this config file")
	fs.Func("text", "encode this text instead of reading a mail", func(s string) error {
		text, textSet = s, true
		return nil
	})
	fs.StringVar(&translit, "transliterate", "", "none, lookalike or ascii")
	fs.StringVar(&subject, "subject", "", "none, prefix or if-empty")
	fs.IntVar(&maxSegs, "max-segments", 0, "segment cap (1..255)")
	fs.StringVar(&overflow, "overflow", "", "truncate or reject")
	fs.Var(&languages, "languages", "national language shift tables allowed (tr, es, pt), comma-separated")
	fs.StringVar(&concat, "concat", "", "udh8, udh16, sar or payload")
	fs.BoolVar(&pretty, "pretty", false, "print a table instead of JSON")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	c := defaultConfig()
	if file != "" {
		if err := loadFile(file, &c); err != nil { // strict here too
			fmt.Fprintln(stderr, "smsbridge convert:", err)
			return 2
		}
	}
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "transliterate":
			c.Convert.Transliterate = translit
		case "subject":
			c.Convert.Subject = subject
		case "max-segments":
			c.Convert.MaxSegments = maxSegs
		case "overflow":
			c.Convert.Overflow = overflow
		case "languages":
			c.SMSC.Languages = languages
		case "concat":
			c.SMSC.Concat = concat
		}
	})
	opt := c.convertOptions()
	if err := opt.Validate(); err != nil {
		fmt.Fprintln(stderr, "smsbridge convert:", err)
		return 2
	}
	if !textSet {
		if fs.NArg() != 1 {
			fs.Usage()
			return 2
		}
		var err error
		if text, err = extractFile(fs.Arg(0), stdin, opt); err != nil {
			return refuse(stdout, stderr, err)
		}
	} else if fs.NArg() != 0 {
		fmt.Fprintln(stderr, "smsbridge convert: --text takes no file")
		return 2
	}
	enc, err := convert.Encode(text, opt)
	if err != nil {
		return refuse(stdout, stderr, err)
	}
	out := describe(text, enc)
	if pretty {
		printTable(stdout, out)
		return 0
	}
	e := json.NewEncoder(stdout)
	e.SetIndent("", "  ")
	e.Encode(out)
	return 0
}

// extractFile reads a mail from path ("-": stdin) and returns its text. A
// failure to read is not a refusal of the mail: it is returned wrapped in
// readError.
func extractFile(path string, stdin io.Reader, opt convert.Options) (string, error) {
	r := stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return "", readError{err}
		}
		defer f.Close()
		r = f
	}
	m, err := convert.Extract(r, opt)
	if err != nil {
		return "", err
	}
	return m.Text, nil
}

type readError struct{ error }

// refuse prints what the server would answer, or a plain error when the
// input could not be read at all, and returns the exit status.
func refuse(stdout, stderr io.Writer, err error) int {
	var re readError
	if errors.As(err, &re) {
		fmt.Fprintln(stderr, "smsbridge convert:", re.error)
		return 1
	}
	r := smtpd.ConvertReply(err)
	e := r.EnhancedCode
	reply := fmt.Sprintf("%d %d.%d.%d %s", r.Code, e[0], e[1], e[2], r.Message)
	json.NewEncoder(stdout).Encode(map[string]string{"error": reply})
	return 2
}

func describe(text string, enc *convert.Encoded) convertOutput {
	out := convertOutput{
		Text:       text,
		Encoding:   "gsm7",
		Languages:  []string{},
		DataCoding: enc.Coding.DataCoding(),
		Concat:     string(enc.Concat),
		Needed:     enc.Needed,
		Truncated:  enc.Truncated,
	}
	if enc.Coding == convert.UCS2 {
		out.Encoding = "ucs2"
	}
	for _, id := range []uint8{enc.LockingShift, enc.SingleShift} {
		if id != 0 {
			out.Languages = appendUnique(out.Languages, languageCodes[id])
		}
	}
	for i, s := range enc.Segments {
		out.Segments = append(out.Segments, segmentOutput{
			Text:    s.Text,
			UDH:     hex.EncodeToString(enc.Header(i, 0).UDH()),
			Payload: hex.EncodeToString(s.Payload),
		})
	}
	return out
}

func appendUnique(l []string, s string) []string {
	for _, x := range l {
		if x == s {
			return l
		}
	}
	return append(l, s)
}

func printTable(w io.Writer, out convertOutput) {
	langs := strings.Join(out.Languages, ",")
	if langs == "" {
		langs = "-"
	}
	fmt.Fprintf(w, "encoding %s (data_coding %d), shift tables %s, concat %s: %d SMS", out.Encoding,
		out.DataCoding, langs, out.Concat, len(out.Segments))
	if out.Truncated {
		fmt.Fprintf(w, " (truncated; the whole text needs %d)", out.Needed)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "#\tchars\tudh\ttext")
	for i, s := range out.Segments {
		fmt.Fprintf(tw, "%d\t%d\t%s\t%q\n", i+1, len([]rune(s.Text)), s.UDH, s.Text)
	}
	tw.Flush()
}
