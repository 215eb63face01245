package convert

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/rivo/uniseg"
	"golang.org/x/text/unicode/norm"
)

// MaxSegments is the most parts a concatenation can number (TS 23.040
// §9.2.3.24.1: total and sequence are one octet). Options.MaxSegments caps
// far lower by policy.
const MaxSegments = 255

// Truncation markers: what ends the last kept segment of a text cut to the
// segment cap. "..." costs three septets; U+2026 one UCS-2 unit.
const (
	gsmMarker  = "..."
	ucs2Marker = "…"
)

// Encode encodes text at the lowest cost the allowed alphabets give and
// splits it into segments for opt.Concat. Segment headers are made by
// Header.UDH once the concatenation reference is known.
//
// CR characters are dropped and the text is put in Unicode NFC; LF stays (it
// is 0x0A in the GSM alphabet). Transliteration (opt.Transliterate) is used
// only when it makes the whole text 7-bit; national language tables
// (opt.Languages) only when cheaper than UCS-2. A text that fits one SMS
// gives one segment, an empty text one empty segment. A text over
// opt.MaxSegments is truncated, or refused with *SegmentsError.
func Encode(text string, opt Options) (*Encoded, error) {
	opt = opt.withDefaults()
	if err := opt.validateEncoding(); err != nil {
		return nil, err
	}
	p := choose(normalizeForEncode(text), opt)
	if p.needed > opt.MaxSegments && opt.Overflow == OverflowReject {
		return nil, &SegmentsError{Needed: p.needed, Max: opt.MaxSegments}
	}
	return p.encoded(opt), nil
}

// validateEncoding checks the options Encode uses, without compiling the
// footer patterns that only Extract needs.
func (o Options) validateEncoding() error {
	v := Options{Transliterate: o.Transliterate, Concat: o.Concat, Overflow: o.Overflow,
		MaxSegments: o.MaxSegments, Languages: o.Languages}
	if err := v.Validate(); err != nil {
		return fmt.Errorf("convert: options: %w", err)
	}
	return nil
}

// normalizeForEncode drops CR, replaces invalid UTF-8 by U+FFFD (one per
// bad byte, as range does) and composes the text (NFC), so that "e" and a
// combining acute become the GSM "é". NFC leaves any text that is already
// GSM unchanged (no GSM character decomposes), so Decode gives back exactly
// a GSM text.
func normalizeForEncode(text string) string {
	if strings.IndexByte(text, '\r') >= 0 || !utf8.ValidString(text) {
		var b strings.Builder
		b.Grow(len(text))
		for _, r := range text {
			if r != '\r' {
				b.WriteRune(r)
			}
		}
		text = b.String()
	}
	if !norm.NFC.IsNormalString(text) {
		text = norm.NFC.String(text)
	}
	return text
}

// plan is one way to encode a text: its alphabet, tables and units.
type plan struct {
	coding  Coding
	cs      charset // GSM7 only
	septets []byte  // GSM7: one septet per unit
	units   []uint16
	text    string // what is encoded, after any transliteration
	lay     layout
	needed  int
}

func (p *plan) n() int {
	if p.coding == UCS2 {
		return len(p.units)
	}
	return len(p.septets)
}

// choose picks the cheapest encoding: the 7-bit alphabet when the text, or
// its transliteration, fits the default tables or national tables that
// beat UCS-2 in segments; UCS-2 of the untouched text otherwise.
func choose(text string, opt Options) *plan {
	var ucs *plan
	ucs2 := func() *plan {
		if ucs == nil {
			ucs = planUCS2(text, opt.Concat)
		}
		return ucs
	}
	sets := charsets(opt.Languages)
	for i := 0; i < 2; i++ {
		cand, ok := candidate(text, opt.Transliterate, i)
		if !ok {
			continue
		}
		p, ok := bestGSM(cand, sets, opt.Concat)
		if ok && (p.cs.lock == 0 && p.cs.single == 0 || p.needed < ucs2().needed) {
			return p
		}
	}
	return ucs2()
}

// candidate returns the i-th text worth trying in GSM, in order of
// preference; ok is false when there is no such text. The transliteration
// is made only when asked for.
func candidate(text string, mode Transliteration, i int) (string, bool) {
	switch {
	case mode == TranslitASCII && i == 0:
		return fold(text), true
	case mode == TranslitASCII:
		return text, true
	case i == 0:
		return text, true
	case mode == TranslitLookalike:
		l := lookalike(text)
		return l, l != text
	}
	return "", false
}

// bestGSM encodes text with each allowed pair of tables and keeps the one
// that needs the fewest segments; on a tie the earlier (fewer shift-table
// elements, the default alphabet first).
func bestGSM(text string, sets []charset, concat Concat) (*plan, bool) {
	var best *plan
	var buf []byte
	for _, cs := range sets {
		septets, ok := cs.encode(buf[:0], text)
		if !ok {
			buf = septets
			continue
		}
		p := &plan{coding: GSM7, cs: cs, septets: septets, text: text,
			lay: layoutFor(GSM7, concat, cs.lock, cs.single)}
		p.needed = p.splitter().needed()
		if best == nil || p.needed < best.needed {
			best, buf = p, nil
		} else {
			buf = septets
		}
	}
	return best, best != nil
}

func planUCS2(text string, concat Concat) *plan {
	p := &plan{coding: UCS2, units: utf16.Encode([]rune(text)), text: text,
		lay: layoutFor(UCS2, concat, 0, 0)}
	p.needed = p.splitter().needed()
	return p
}

// splitter says where p's units may be cut: never inside an escape pair
// (TS 23.038 §6.2.1.1) or a surrogate pair; in UCS-2 preferably not inside
// a grapheme cluster.
func (p *plan) splitter() *splitter {
	s := &splitter{n: p.n(), lay: p.lay}
	if p.coding == GSM7 {
		sp := p.septets
		s.hard = func(i int) bool { return sp[i-1] != gsmEscape }
		s.space = func(i int) bool {
			return (sp[i] == 0x20 || sp[i] == 0x0A) && (i == 0 || sp[i-1] != gsmEscape)
		}
		return s
	}
	u := p.units
	s.hard = func(i int) bool { return !utf16.IsSurrogate(rune(u[i-1])) || u[i-1] >= 0xDC00 }
	s.space = func(i int) bool { return u[i] == ' ' || u[i] == '\n' }
	if s.n > s.lay.single {
		starts := clusterStarts(p.text, len(u))
		s.soft = func(i int) bool { return starts[i] }
	}
	return s
}

// clusterStarts marks the UTF-16 offsets where an extended grapheme cluster
// (Unicode UAX #29) starts, and the end.
func clusterStarts(text string, n int) []bool {
	starts := make([]bool, n+1)
	starts[n] = true
	off, state := 0, -1
	for text != "" {
		var c string
		c, text, _, state = uniseg.FirstGraphemeClusterInString(text, state)
		starts[off] = true
		for _, r := range c {
			off += utf16.RuneLen(r)
		}
	}
	return starts
}

// encoded cuts the plan into segments within the cap.
func (p *plan) encoded(opt Options) *Encoded {
	e := &Encoded{Coding: p.coding, Concat: opt.Concat, Needed: p.needed}
	if p.coding == GSM7 {
		e.LockingShift, e.SingleShift = p.cs.lock, p.cs.single
	}
	marker, markerText := p.marker()
	ends, truncated := p.splitter().split(p.needed, opt.MaxSegments, len(marker)/p.unitSize())
	e.Truncated = truncated
	e.Segments = make([]Segment, len(ends))
	start, rest := 0, p.text
	for i, end := range ends {
		seg := &e.Segments[i]
		seg.Payload = p.payload(start, end)
		seg.Text, rest = p.take(rest, end-start)
		if truncated && i == len(ends)-1 {
			seg.Payload = append(seg.Payload, marker...) // copies: the payload's capacity ends at end
			seg.Text += markerText
		}
		start = end
	}
	if opt.Concat == ConcatPayload && len(e.Segments) > 1 {
		e.Segments = []Segment{joinSegments(e.Segments)}
	}
	return e
}

// joinSegments makes the one message_payload of ConcatPayload: the parts
// were only counted.
func joinSegments(segs []Segment) Segment {
	var all Segment
	var text strings.Builder
	for _, s := range segs {
		all.Payload = append(all.Payload, s.Payload...)
		text.WriteString(s.Text)
	}
	all.Text = text.String()
	return all
}

// take returns the characters at the start of text that cost n units, and
// the rest. It mirrors the encoding: a GSM character costs one septet in
// the locking table, else two.
func (p *plan) take(text string, n int) (head, rest string) {
	i := 0
	for n > 0 && i < len(text) {
		r, size := utf8.DecodeRuneInString(text[i:])
		switch {
		case p.coding == UCS2:
			n -= utf16.RuneLen(r)
		case p.inLocking(r):
			n--
		default:
			n -= 2
		}
		i += size
	}
	return text[:i], text[i:]
}

func (p *plan) inLocking(r rune) bool {
	_, ok := p.cs.locking.septet(r)
	return ok
}

func (p *plan) unitSize() int {
	if p.coding == UCS2 {
		return 2
	}
	return 1
}

// payload returns units [start, end) as segment octets: unpacked septets
// (shared with the plan, capacity ending at end), or UTF-16BE.
func (p *plan) payload(start, end int) []byte {
	if p.coding == GSM7 {
		return p.septets[start:end:end]
	}
	return utf16BE(p.units[start:end])
}

// marker is the truncation marker in p's alphabet and tables, and its text.
func (p *plan) marker() ([]byte, string) {
	if p.coding == UCS2 {
		return utf16BE(utf16.Encode([]rune(ucs2Marker))), ucs2Marker
	}
	m, _ := p.cs.encode(nil, gsmMarker) // '.' is 0x2E in every table
	return m, gsmMarker
}

func utf16BE(units []uint16) []byte {
	b := make([]byte, 0, 2*len(units))
	for _, u := range units {
		b = append(b, byte(u>>8), byte(u))
	}
	return b
}

// ErrBadPayload: Decode was given bytes that no Encode could produce.
var ErrBadPayload = errors.New("convert: malformed SMS payload")

// Decode turns the payload of one segment (without its UDH) back into text:
// GSM7 payloads are unpacked septets of the default alphabet, UCS2 payloads
// UTF-16BE.
func Decode(c Coding, payload []byte) (string, error) {
	return DecodeWith(c, payload, 0, 0)
}

// DecodeWith is Decode for a GSM7 payload in national language tables
// (TS 23.038 §6.2.1.2.4): lockingShift and singleShift are the national
// language identifiers of the UDH elements 0x25 and 0x24, 0 for the default
// alphabet and extension table. They are ignored for UCS2.
func DecodeWith(c Coding, payload []byte, lockingShift, singleShift uint8) (string, error) {
	if c == UCS2 {
		return decodeUCS2(payload)
	}
	cs, ok := charsetFor(lockingShift, singleShift)
	if !ok {
		return "", fmt.Errorf("%w: no shift tables for languages %d/%d", ErrBadPayload, lockingShift, singleShift)
	}
	return cs.decode(payload)
}

func (cs charset) decode(septets []byte) (string, error) {
	var b strings.Builder
	b.Grow(len(septets))
	for i := 0; i < len(septets); i++ {
		s := septets[i]
		if s > 0x7F {
			return "", fmt.Errorf("%w: octet %#x at %d is not a septet", ErrBadPayload, s, i)
		}
		if s != gsmEscape {
			b.WriteRune(cs.locking.chars[s])
			continue
		}
		i++
		if i == len(septets) || septets[i] > 0x7F || septets[i] == gsmEscape {
			return "", fmt.Errorf("%w: escape at %d not followed by a character", ErrBadPayload, i-1)
		}
		if r := cs.shifted.chars[septets[i]]; r != 0 {
			b.WriteRune(r)
		} else {
			// TS 23.038 §6.2.1.1: an unknown extension shows as the
			// character of the same code in the locking shift table.
			b.WriteRune(cs.locking.chars[septets[i]])
		}
	}
	return b.String(), nil
}

func decodeUCS2(p []byte) (string, error) {
	if len(p)%2 != 0 {
		return "", fmt.Errorf("%w: odd UCS-2 length %d", ErrBadPayload, len(p))
	}
	units := make([]uint16, len(p)/2)
	for i := range units {
		units[i] = uint16(p[2*i])<<8 | uint16(p[2*i+1])
	}
	return string(utf16.Decode(units)), nil
}
