package convert

import (
	"strings"

	"golang.org/x/net/html"
	"golang.org/x/net/html/atom"
)

// htmlToText renders an HTML body as plain text: what a reader sees, with
// line breaks for <br> and block elements, links reduced to their text, and
// blockquotes marked with "> " so that clean drops them like a quoted reply.
func htmlToText(src string) string {
	// Scripting off: <noscript> content is then parsed as markup, which is
	// what a mail reader (that runs no script) shows.
	var t textWriter
	t.newlines = 2
	doc, err := html.ParseWithOptions(strings.NewReader(src), html.ParseOptionEnableScripting(false))
	if err != nil {
		// The parser refuses markup nested deeper than 512 elements,
		// which unclosed tags in real newsletters reach.
		t.tokens(src)
		return t.b.String()
	}
	walkHTML(doc, t.enter, t.exit)
	return t.b.String()
}

// tokens renders src from its tokens alone, without a tree: cruder about
// misnested markup, but it has no depth to exceed.
func (t *textWriter) tokens(src string) {
	z := html.NewTokenizer(strings.NewReader(src))
	hidden := 0
	for {
		switch z.Next() {
		case html.ErrorToken:
			return // io.EOF: a strings.Reader has no other error
		case html.TextToken:
			if hidden == 0 {
				t.text(string(z.Text())) // Text unescapes entities
			}
		case html.StartTagToken:
			n := tagNode(z)
			switch {
			case n.DataAtom == atom.Body:
				hidden = 0 // whatever an unclosed <head> hid ends here
			case htmlHidden[n.DataAtom]:
				hidden++
			case hidden == 0:
				t.enter(n)
			}
		case html.SelfClosingTagToken:
			if n := tagNode(z); hidden == 0 && !htmlHidden[n.DataAtom] {
				t.enter(n)
				t.exit(n)
			}
		case html.EndTagToken:
			n := tagNode(z)
			if htmlHidden[n.DataAtom] {
				hidden = max(hidden-1, 0)
			} else if hidden == 0 {
				t.exit(n)
			}
		}
	}
}

func tagNode(z *html.Tokenizer) *html.Node {
	name, _ := z.TagName()
	return &html.Node{Type: html.ElementNode, DataAtom: atom.Lookup(name), Data: string(name)}
}

// walkHTML visits the tree in document order without recursion, so that
// deeply nested markup cannot exhaust the stack. enter returns whether to
// descend into the node; exit is called for every node entered.
func walkHTML(root *html.Node, enter func(*html.Node) bool, exit func(*html.Node)) {
	n := root
	for {
		if enter(n) && n.FirstChild != nil {
			n = n.FirstChild
			continue
		}
		for {
			exit(n)
			if n == root {
				return
			}
			if n.NextSibling != nil {
				n = n.NextSibling
				break
			}
			n = n.Parent
		}
	}
}

// Elements whose content a reader does not see as text.
var htmlHidden = map[atom.Atom]bool{
	atom.Head: true, atom.Script: true, atom.Style: true, atom.Title: true,
	atom.Template: true, atom.Iframe: true, atom.Object: true, atom.Svg: true,
	atom.Math: true, atom.Noembed: true, atom.Noframes: true, atom.Select: true,
}

// Elements that start on a new line (1) or a new paragraph (2).
var htmlBreaks = map[atom.Atom]int{
	atom.Address: 1, atom.Article: 1, atom.Aside: 1, atom.Center: 1,
	atom.Dd: 1, atom.Details: 1, atom.Dialog: 1, atom.Div: 1, atom.Dl: 1,
	atom.Dt: 1, atom.Fieldset: 1, atom.Figcaption: 1, atom.Figure: 1,
	atom.Footer: 1, atom.Form: 1, atom.Header: 1, atom.Hr: 1, atom.Li: 1,
	atom.Main: 1, atom.Nav: 1, atom.Ol: 1, atom.Section: 1, atom.Summary: 1,
	atom.Table: 1, atom.Tr: 1, atom.Ul: 1, atom.Caption: 1,
	atom.P: 2, atom.H1: 2, atom.H2: 2, atom.H3: 2, atom.H4: 2, atom.H5: 2,
	atom.H6: 2, atom.Blockquote: 2, atom.Pre: 2,
}

// textWriter accumulates rendered text, collapsing white space as a browser
// does outside <pre>.
type textWriter struct {
	b        strings.Builder
	pre      int  // depth of <pre>
	quote    int  // depth of <blockquote>
	newlines int  // line breaks at the end of b; 0 when mid-line
	space    bool // white space seen and not yet written
}

func (t *textWriter) enter(n *html.Node) bool {
	switch n.Type {
	case html.TextNode:
		t.text(n.Data)
		return false
	case html.DocumentNode:
		return true
	case html.ElementNode:
	default:
		return false // comments, doctype
	}
	if htmlHidden[n.DataAtom] || styleHidden(n) {
		return false
	}
	t.breakLines(htmlBreaks[n.DataAtom])
	switch n.DataAtom {
	case atom.Br:
		t.newline()
	case atom.Pre:
		t.pre++
	case atom.Blockquote:
		t.quote++
	case atom.Li:
		t.write("- ")
	case atom.Td, atom.Th:
		t.space = true
	}
	return true
}

func (t *textWriter) exit(n *html.Node) {
	if n.Type != html.ElementNode || htmlHidden[n.DataAtom] || styleHidden(n) {
		return
	}
	switch n.DataAtom {
	case atom.Pre:
		t.pre = max(t.pre-1, 0) // stray end tags reach here from tokens
	case atom.Blockquote:
		t.quote = max(t.quote-1, 0)
	case atom.Td, atom.Th:
		t.space = true
	}
	t.breakLines(htmlBreaks[n.DataAtom])
}

func (t *textWriter) text(s string) {
	for _, r := range s {
		switch {
		case t.pre > 0 && r == '\n':
			t.newline()
		case t.pre == 0 && (r == ' ' || r == '\t' || r == '\n' || r == '\r' || r == '\f'):
			t.space = true
		case r == '\u00A0':
			// &nbsp; is layout, not content; as U+00A0 it would cost
			// the whole message the GSM alphabet.
			t.write(" ")
		default:
			t.write(string(r))
		}
	}
}

// write writes s, preceded by a pending space and, at the start of a line,
// by the quote marks of the enclosing blockquotes.
func (t *textWriter) write(s string) {
	if t.newlines > 0 {
		t.b.WriteString(strings.Repeat("> ", t.quote))
		t.space = false
	}
	if t.space {
		t.b.WriteByte(' ')
		t.space = false
	}
	t.b.WriteString(s)
	t.newlines = 0
}

// newline ends the line. A pending space is kept, so that a signature
// separator "-- " followed by <br> stays recognisable.
func (t *textWriter) newline() {
	if t.space && t.newlines == 0 {
		t.b.WriteByte(' ')
	}
	t.space = false
	t.b.WriteByte('\n')
	t.newlines++
}

// breakLines ends the line (n=1) or the paragraph (n=2) unless the output
// already does.
func (t *textWriter) breakLines(n int) {
	for t.newlines < n {
		t.newline()
	}
}

// styleHidden reports whether an element's inline style hides it, as mail
// templates do with preheader text meant for the inbox preview only.
func styleHidden(n *html.Node) bool {
	for _, a := range n.Attr {
		if a.Key != "style" {
			continue
		}
		st := strings.ToLower(strings.Join(strings.Fields(a.Val), ""))
		return strings.Contains(st, "display:none") || strings.Contains(st, "visibility:hidden")
	}
	return false
}
