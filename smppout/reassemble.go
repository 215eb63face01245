package smppout

import (
	"bytes"
	"sort"
	"time"
)

// Reassembler joins the parts of concatenated MO messages, in whatever
// order they come, and gives up on those still incomplete after Timeout
// since their first part. It is pure: no goroutines, no clock (callers
// pass now), no I/O, and not safe for concurrent use.
//
// It is meant for the side that stores MO parts: store each part as the
// MOHandler gets it (so it is acknowledged only once stored), feed it to
// Add, and at start feed it the stored parts not yet joined.
type Reassembler struct {
	timeout time.Duration
	msgs    map[moKey]*Assembled
	// Duplicates counts parts added twice (an SMSC resending a part
	// whose acknowledgement it did not get); the first copy is kept.
	Duplicates int
}

// moKey identifies a concatenated message: parts share sender,
// recipient, reference and total (3GPP TS 23.040 §9.2.3.24.1).
type moKey struct {
	from, to string
	ref      uint16
	total    uint8
}

// Assembled is a concatenated message, whole or given up.
type Assembled struct {
	From, To   string
	DataCoding byte // of the first part
	Ref        uint16
	Total      int
	Parts      []MO // by sequence number: Parts[i] is part i+1, zero when missing
	First      time.Time
	have       int
	present    []bool
}

// NewReassembler returns a Reassembler that gives up on a message
// timeout after its first part.
func NewReassembler(timeout time.Duration) *Reassembler {
	return &Reassembler{timeout: timeout, msgs: make(map[moKey]*Assembled)}
}

// Add adds m, received at now. It returns the message and true when m
// completes one; a message without Part is complete on its own.
func (r *Reassembler) Add(now time.Time, m MO) (Assembled, bool) {
	if m.Part == nil {
		return Assembled{From: m.From, To: m.To, DataCoding: m.DataCoding, Total: 1,
			Parts: []MO{m}, First: now, have: 1, present: []bool{true}}, true
	}
	k := moKey{m.From, m.To, m.Part.Ref, m.Part.Total}
	a := r.msgs[k]
	if a == nil {
		a = &Assembled{From: m.From, To: m.To, DataCoding: m.DataCoding, Ref: m.Part.Ref,
			Total: int(m.Part.Total), Parts: make([]MO, m.Part.Total), First: now,
			present: make([]bool, m.Part.Total)}
		r.msgs[k] = a
	}
	i := int(m.Part.Seq) - 1
	if a.present[i] {
		r.Duplicates++
		return Assembled{}, false
	}
	a.Parts[i], a.present[i] = m, true
	a.have++
	if a.have < a.Total {
		return Assembled{}, false
	}
	delete(r.msgs, k)
	return *a, true
}

// Expire removes and returns the messages whose first part came more
// than Timeout before now, oldest first, so the caller can deliver what
// it has or drop it.
func (r *Reassembler) Expire(now time.Time) []Assembled {
	var out []Assembled
	for k, a := range r.msgs {
		if now.Sub(a.First) > r.timeout {
			out = append(out, *a)
			delete(r.msgs, k)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].First.Before(out[j].First) })
	return out
}

// Pending counts the messages waiting for parts.
func (r *Reassembler) Pending() int { return len(r.msgs) }

// Complete reports whether every part is there.
func (a Assembled) Complete() bool { return a.have == a.Total }

// Payload joins the user data of the parts present, in order. Joining
// octets before decoding keeps a character split across parts (a UCS-2
// surrogate pair, a GSM escape) whole.
func (a Assembled) Payload() []byte {
	var b bytes.Buffer
	for _, p := range a.Parts {
		b.Write(p.Payload)
	}
	return b.Bytes()
}

// Missing lists the sequence numbers of the parts not received.
func (a Assembled) Missing() []int {
	var out []int
	for i, ok := range a.present {
		if !ok {
			out = append(out, i+1)
		}
	}
	return out
}
