package convert

import (
	"strings"
	"testing"
)

func TestClean(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"CRLF and lone CR become LF", "a\r\nb\rc", "a\nb\nc"},
		{"trailing spaces trimmed per line", "a  \t\nb ", "a\nb"},
		{"signature line and below removed", "text\n-- \nAnn\n+49 151", "text"},
		{"signature separator after CRLF", "text\r\n-- \r\nAnn", "text"},
		{"dashes without the space are no signature", "a\n--\nb", "a\n--\nb"},
		{"quoted lines removed with their attribution", "ok\n\nOn Mon, 1 Jan 2026, Ann wrote:\n> hi\n>> older\nthanks", "ok\n\nthanks"},
		{"attribution wrapped on two lines", "ok\nOn Mon, 1 Jan 2026, Ann <a@b.c>\nwrote:\n> hi", "ok"},
		{"attribution separated by a blank line", "ok\nOn Mon, Ann wrote:\n\n> hi", "ok"},
		{"a line ending in wrote: without quote stays", "I wrote:\nthe letter", "I wrote:\nthe letter"},
		{"blank lines collapse to one", "a\n\n\n\n \nb", "a\n\nb"},
		{"leading and trailing white space trimmed", "\n\n  a\n\n", "a"},
		{"indentation kept", "list:\n  one", "list:\n  one"},
		{"controls and BOM dropped, tab kept", "\uFEFFa\x00b\tc\x07", "ab\tc"},
		{"German attribution (Am … schrieb …:)", "ok\n\nAm 01.01.2026 um 10:00 schrieb Ann <a@b.c>:\n> hi", "ok"},
		{"French attribution with no-break space before the colon", "ok\nLe lun. 1 janv. 2026, Ann a écrit\u00a0:\n> hi", "ok"},
		{"Spanish attribution (El … escribió:)", "ok\nEl lun, 1 ene 2026 a las 10:00, Ann escribió:\n> hi", "ok"},
		{"Portuguese attribution (Em … escreveu:)", "ok\nEm seg., 1 de jan. de 2026, Ann escreveu:\n> hi", "ok"},
		{"wrapped German attribution", "ok\nAm 01.01.2026 um 10:00 schrieb Ann\n<a@b.c>:\n> hi", "ok"},
		{"Outlook Original Message and below removed", "Yes.\n\n-----Original Message-----\nFrom: Ann\nSent: Monday\n\nold", "Yes."},
		{"German Outlook Ursprüngliche Nachricht removed", "Ja.\n-----Ursprüngliche Nachricht-----\nVon: Ann\nalt", "Ja."},
		{"Outlook From/Sent header after underscores removed", "Yes.\n\n________________________________\nFrom: Ann <a@b.c>\nSent: Monday, 1 January 2026 10:00\nTo: Bob\nSubject: Q\n\nold", "Yes."},
		{"bold Outlook From/Sent header removed", "Yes.\n*From:* Ann\n*Sent:* Monday\nold", "Yes."},
		{"German Outlook Von/Gesendet header removed", "Ja.\nVon: Ann\nGesendet: Montag\nalt", "Ja."},
		{"From/Date block (a forward) kept", "FYI\n\nFrom: Ann\nDate: Mon\n\nDisk full", "FYI\n\nFrom: Ann\nDate: Mon\n\nDisk full"},
		{"Original Message kept when nothing is above it", "-----Original Message-----\nFrom: Ann\nSent: Mon\nold", "-----Original Message-----\nFrom: Ann\nSent: Mon\nold"},
		{"Sent from my iPhone footer removed", "See you at 5\n\nSent from my iPhone", "See you at 5"},
		{"footer removed with what follows it", "See you\nSent from my iPhone\n\nsome tracking line", "See you"},
		{"footer above a quoted reply removed", "Thanks!\n\nSent from my iPhone\n\nOn Mon, Ann wrote:\n> q", "Thanks!"},
		{"Get Outlook for Android footer removed", "ok\n\nGet Outlook for Android<https://aka.ms/ghei36>", "ok"},
		{"German iPhone footer removed", "Bis gleich\n\nVon meinem iPhone gesendet", "Bis gleich"},
		{"body that starts with the footer words is kept", "Sent from my iPhone", "Sent from my iPhone"},
		{"footer words far above the end are text", "Sent from my iPhone is what it says\nline 2\nline 3\nline 4\nline 5\nline 6\nline 7", "Sent from my iPhone is what it says\nline 2\nline 3\nline 4\nline 5\nline 6\nline 7"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := clean(tc.in); got != tc.want {
				t.Errorf("clean(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestUnflow(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		delSp bool
		want  string
	}{
		{"soft break joins lines", "a \nb\n", false, "a b\n"},
		{"DelSp removes the soft-break space", "a \nb\n", true, "ab\n"},
		{"space-stuffing removed", " From x\n", false, "From x\n"},
		{"signature separator is no soft break", "a\n-- \nsig\n", false, "a\n-- \nsig\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := unflow(tc.in, tc.delSp); got != tc.want {
				t.Errorf("unflow(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestHTMLToText(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"script, style and head dropped", "<head><title>T</title><style>x{}</style></head><body>a<script>b()</script>c</body>", "ac"},
		{"entities decoded", "<p>&lt;b&gt; &amp; &eacute; &#8364;</p>", "<b> & é €"},
		{"br is a line break", "a<br>b<br/><br>c", "a\nb\n\nc"},
		{"paragraphs separated by a blank line", "<p>a</p><p>b</p>", "a\n\nb"},
		{"divs on their own lines", "<div>a</div><div>b</div>", "a\nb"},
		{"link text kept, address dropped", `see <a href="https://x.example/">the site</a>.`, "see the site."},
		{"white space collapsed", "a \n\t  b", "a b"},
		{"pre keeps its lines", "<pre>a  b\n c</pre>", "a  b\n c"},
		{"nbsp becomes a plain space", "a&nbsp;b", "a b"},
		{"list items bulleted", "<ul><li>a</li><li>b</li></ul>", "- a\n- b"},
		{"table cells spaced", "<table><tr><td>a</td><td>b</td></tr><tr><td>c</td></tr></table>", "a b\nc"},
		{"blockquote dropped as a quoted reply", "<div>yes</div><div>On Mon, Ann wrote:</div><blockquote><p>q?</p></blockquote>", "yes"},
		{"signature separator survives", "hi<br>-- <br>Ann", "hi"},
		{"markup nested deeper than the parser allows still gives its text",
			strings.Repeat("<div>", 600) + "deep &amp; text<script>x()</script><br>end", "deep & text\nend"},
		{"unclosed head ends at body in the fallback",
			"<head><title>t</title>" + strings.Repeat("<div>", 600) + "<body>b", "b"},
		{"preheader hidden by inline style dropped", `<div style="display: none; max-height:0">preview</div><p>body</p>`, "body"},
		{"visibility hidden dropped", `a<span style="VISIBILITY:hidden">b</span>c`, "ac"},
		{"noscript shown, as a mail reader runs no script", "<noscript><b>x</b></noscript>", "x"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := clean(htmlToText(tc.in)); got != tc.want {
				t.Errorf("clean(htmlToText(%q)) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestCleanCustomFooters(t *testing.T) {
	c, err := newCleaner([]string{`^-- ?Nagios`, `^Confidential`})
	if err != nil {
		t.Fatal(err)
	}
	in := "PROBLEM: disk full\n\nConfidential: this mail is for the addressee only."
	if got := c.clean(in); got != "PROBLEM: disk full" {
		t.Errorf("clean = %q", got)
	}
	none, _ := newCleaner([]string{})
	if got := none.clean("ok\n\nSent from my iPhone"); got != "ok\n\nSent from my iPhone" {
		t.Errorf("with no footers, clean = %q", got)
	}
	if _, err := newCleaner([]string{"("}); err == nil {
		t.Error("bad pattern accepted")
	}
}
