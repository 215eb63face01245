package convert

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf16"
)

// Capacities of one SMS user data (140 octets), TS 23.040 §9.2.3.16 and
// §9.2.3.24. With the 6-octet concatenation UDH, 48 bits of header plus one
// fill bit take 7 septets, leaving 153; in UCS-2, 134 octets leave 67 units.
const (
	singleSeptets = 160
	partSeptets   = 153
	singleUnits   = 70
	partUnits     = 67

	// MaxSegments is the most parts an 8-bit concatenation reference can
	// number. Encode drops text beyond it; callers cap far lower by policy.
	MaxSegments = 255
)

// Encode encodes text in the cheapest alphabet that holds it and splits it
// into segments for opt.Concat. Segment headers are made by Header.UDH once
// the reference is known.
//
// CR characters are dropped; LF stays (it is 0x0A in the GSM alphabet). A
// text that fits one SMS gives one segment, an empty text one empty segment.
// A text over opt.MaxSegments is truncated, or refused with *SegmentsError.
func Encode(text string, opt Options) (*Encoded, error) {
	opt = opt.withDefaults()
	text = normalizeForEncode(text)
	e := &Encoded{Coding: UCS2, Concat: opt.Concat}
	if septets, ok := encodeGSM(text); ok {
		e.Coding, e.Segments = GSM7, splitGSM(septets)
	} else {
		e.Segments = splitUCS2(utf16.Encode([]rune(text)))
	}
	e.Needed = len(e.Segments)
	if e.Needed > opt.MaxSegments {
		if opt.Overflow == OverflowReject {
			return nil, &SegmentsError{Needed: e.Needed, Max: opt.MaxSegments}
		}
		e.Segments, e.Truncated = e.Segments[:opt.MaxSegments], true
	}
	for i := range e.Segments {
		e.Segments[i].Text, _ = Decode(e.Coding, e.Segments[i].Payload)
	}
	return e, nil
}

// normalizeForEncode drops CR and replaces invalid UTF-8 by U+FFFD, one
// per bad byte as range does, so Decode gives back exactly this string.
func normalizeForEncode(text string) string {
	var b strings.Builder
	b.Grow(len(text))
	for _, r := range text {
		if r != '\r' {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// encodeGSM returns the unpacked septets of text, or ok false when a
// character is in neither GSM table.
func encodeGSM(text string) (septets []byte, ok bool) {
	septets = make([]byte, 0, len(text))
	for _, r := range text {
		if septets, ok = gsmSeptets(septets, r); !ok {
			return nil, false
		}
	}
	return septets, true
}

func splitGSM(septets []byte) []Segment {
	// A cut right after an escape would split the pair: TS 23.038 §6.2.1.1
	// characters are two septets and must travel in one part.
	canCut := func(p int) bool { return septets[p-1] != gsmEscape }
	ends := cuts(len(septets), singleSeptets, partSeptets, canCut)
	segs := make([]Segment, len(ends))
	start := 0
	for i, end := range ends {
		segs[i] = Segment{Payload: septets[start:end:end]}
		start = end
	}
	return segs
}

func splitUCS2(units []uint16) []Segment {
	// A cut after a high surrogate would split a character above U+FFFF.
	canCut := func(p int) bool { return !isHighSurrogate(units[p-1]) }
	ends := cuts(len(units), singleUnits, partUnits, canCut)
	segs := make([]Segment, len(ends))
	start := 0
	for i, end := range ends {
		segs[i] = Segment{Payload: utf16BE(units[start:end])}
		start = end
	}
	return segs
}

// cuts returns the end offsets of the parts of a text of n units: one part
// when it fits single, else parts of at most multi units, moved one unit
// back where canCut forbids the cut (pairs are two units, so one step is
// enough). At most MaxSegments parts.
func cuts(n, single, multi int, canCut func(p int) bool) []int {
	if n <= single {
		return []int{n}
	}
	var ends []int
	for start := 0; start < n && len(ends) < MaxSegments; {
		end := min(start+multi, n)
		if end < n && !canCut(end) {
			end--
		}
		ends = append(ends, end)
		start = end
	}
	return ends
}

func isHighSurrogate(u uint16) bool { return u >= 0xD800 && u < 0xDC00 }

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
// GSM7 payloads are unpacked septets, UCS2 payloads UTF-16BE.
func Decode(c Coding, payload []byte) (string, error) {
	if c == UCS2 {
		return decodeUCS2(payload)
	}
	return decodeGSM(payload)
}

func decodeGSM(septets []byte) (string, error) {
	var b strings.Builder
	for i := 0; i < len(septets); i++ {
		s := septets[i]
		if s > 0x7F {
			return "", fmt.Errorf("%w: octet %#x at %d is not a septet", ErrBadPayload, s, i)
		}
		if s != gsmEscape {
			b.WriteRune(gsmDefault[s])
			continue
		}
		i++
		if i == len(septets) || septets[i] > 0x7F || septets[i] == gsmEscape {
			return "", fmt.Errorf("%w: escape at %d not followed by a character", ErrBadPayload, i-1)
		}
		if r, ok := gsmExtChars[septets[i]]; ok {
			b.WriteRune(r)
		} else {
			// TS 23.038 §6.2.1.1: an unknown extension shows as the
			// default-alphabet character of the same code.
			b.WriteRune(gsmDefault[septets[i]])
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
