package convert

// layout is how many units (GSM septets or UTF-16 code units) one SMS can
// carry: alone, and as a part of a concatenated message.
type layout struct{ single, multi int }

// udhOctets is the length, with its length octet, of the user data header
// that Header.UDH gives a message of total parts in these tables.
func udhOctets(concat Concat, total int, lock, single uint8) int {
	return len(Header{Concat: concat, Total: total, Seq: 1, LockingShift: lock, SingleShift: single}.UDH())
}

// capacity is the number of units left in the 140 octets of user data (TS
// 23.040 §9.2.3.16) after a header of udh octets. In GSM 7-bit the header
// is followed by fill bits up to the next septet boundary (§9.2.3.24), so
// it costs ceil(8·udh/7) septets of the 160.
func capacity(c Coding, udh int) int {
	if c == UCS2 {
		return (140 - udh) / 2
	}
	return (140*8 - 8*udh) / 7
}

// layoutFor derives the segment sizes from the headers the segments will
// carry. With ConcatSAR the concatenation travels in TLVs, but the SMSC
// turns them into a concatenation element inside the 140 octets on the air
// (TS 23.040 §9.2.3.24; sar_msg_ref_num is 16-bit, SMPP v3.4 §5.3.2.22), so
// the parts leave room for the 16-bit one; ConcatPayload is one SM that the
// SMSC splits, counted as the UDH 8-bit parts it will need.
func layoutFor(c Coding, concat Concat, lock, single uint8) layout {
	one := udhOctets(concat, 1, lock, single)
	many := udhOctets(concat, 2, lock, single)
	switch concat {
	case ConcatPayload:
		many = udhOctets(ConcatUDH8, 2, lock, single)
	case ConcatSAR:
		many = udhOctets(ConcatUDH16, 2, lock, single)
	}
	return layout{single: capacity(c, one), multi: capacity(c, many)}
}

// splitter cuts n units into parts. hard(p) says a cut before unit p keeps
// every character whole (no escape or surrogate pair split); soft(p), when
// set, that it also keeps grapheme clusters whole; space(p) that unit p is
// white space, trimmed before a truncation marker.
type splitter struct {
	n     int
	lay   layout
	hard  func(p int) bool
	soft  func(p int) bool
	space func(p int) bool
}

// needed is the least number of parts: cutting as late as each part allows
// is optimal when only pairs constrain the cuts.
func (s *splitter) needed() int {
	if s.n <= s.lay.single {
		return 1
	}
	return s.greedyParts(0)
}

func (s *splitter) greedyParts(from int) int {
	k := 0
	for p := from; p < s.n; k++ {
		p = s.hardCut(p, p+s.lay.multi)
	}
	return k
}

// hardCut is the latest cut in (start, end] that splits no character.
func (s *splitter) hardCut(start, end int) int {
	if end >= s.n {
		return s.n
	}
	for end > start+1 && !s.hard(end) {
		end--
	}
	return end
}

// softCut is the latest cut in (start, end] that splits no grapheme
// cluster, if any.
func (s *splitter) softCut(start, end int) (int, bool) {
	if end >= s.n {
		return s.n, true
	}
	if s.soft == nil {
		return s.hardCut(start, end), true
	}
	for p := end; p > start; p-- {
		if s.hard(p) && s.soft(p) {
			return p, true
		}
	}
	return 0, false
}

// split returns the end of each part, at most max parts. A grapheme
// cluster is kept whole when that costs no extra part. When the text needs
// more than max parts, the last kept part leaves marker units free and
// truncated is true.
func (s *splitter) split(needed, max, marker int) (ends []int, truncated bool) {
	if s.n <= s.lay.single {
		return []int{s.n}, false
	}
	truncated = needed > max
	keep := min(needed, max)
	capacity := s.lay.multi
	if keep == 1 {
		capacity = s.lay.single // a lone SMS has no concatenation header
	}
	ends = make([]int, 0, keep)
	for start, i := 0, 0; i < keep; i++ {
		room := capacity
		if truncated && i == keep-1 {
			room -= marker
		}
		end := s.cut(start, start+room, i, needed, truncated)
		if truncated && i == keep-1 {
			end = s.trimSpace(start, end)
		}
		ends = append(ends, end)
		start = end
	}
	return ends, truncated
}

// cut ends part i (from 0) at or before end: at a cluster boundary when the
// rest still fits in needed parts (always, when truncating: the number of
// parts is then fixed), else at the latest character boundary.
func (s *splitter) cut(start, end, i, needed int, truncated bool) int {
	hard := s.hardCut(start, end)
	soft, ok := s.softCut(start, end)
	if !ok || soft == hard {
		return hard
	}
	if truncated || i+1+s.greedyParts(soft) <= needed {
		return soft
	}
	return hard
}

// trimSpace drops white space before a truncation marker: "word..." rather
// than "word ...".
func (s *splitter) trimSpace(start, end int) int {
	for end > start && s.space != nil && s.space(end-1) {
		end--
	}
	return end
}
