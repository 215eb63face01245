package store

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
	"unsafe"

	bolt "go.etcd.io/bbolt"
)

// boltOptions are the options of the bbolt file. With 1,000,000 queued
// records (a 2.5 GB file) Open takes under a millisecond and the process
// stays at a few MB of RSS after Open, Recover and Due (TestLargeQueue),
// because Open maps the file without reading it and the start-up paths read
// indexes, not records. NoSync and NoFreelistSync stay off: the first
// trades durability, the second makes Open read the whole file to rebuild
// the freelist.
//
// InitialMmapSize is 1 GiB on 64-bit targets. It is address space, not
// memory. Each time the file outgrows the mapping, bbolt maps it anew, and
// the checkpoint in progress first copies out every page it holds. While
// a queue grows from empty that cost a fifth of the allocations per Add
// (BenchmarkEnqueue64: 111 → 87 allocations per record). Past 1 GiB, bbolt
// grows the mapping 1 GiB at a time anyway. 32-bit targets keep bbolt's
// default: their address space is 4 GiB in all.
func boltOptions() *bolt.Options {
	o := &bolt.Options{Timeout: lockTimeout}
	if strconv.IntSize == 64 {
		o.InitialMmapSize = 1 << 30
	}
	return o
}

// Records are stored in a compact binary form: JSON cost about 20 µs to
// decode and 8 µs to encode a typical record, and the single writer decodes
// and encodes every record it changes, which capped the write rate at a few
// thousand changes per second. The binary form takes about a microsecond.
//
// The first byte tells the forms apart: '{' is JSON (written by layout 1),
// codecV1 the binary form below. Its fields follow the Record struct in
// order. Once records in this form exist in the field, a field added to
// Record goes at the end of the encoding: a decoder that meets the end of
// the data early leaves the remaining fields zero, so old records stay
// readable without a migration. TestCodecRoundTrip fails for a Record
// field that the codec does not carry.
//
//	string, []byte   uvarint(len+1) then the bytes; 0 is a nil []byte
//	int, uint        zigzag varint / uvarint
//	bool, byte       one byte
//	time.Time        uvarint(0) for the zero time, else
//	                 uvarint(nanoseconds+1) ‖ varint(Unix seconds); decoded in UTC
//	slices           uvarint(len+1) then the elements; 0 is nil
const codecV1 = 0x01

func encode(r *Record) ([]byte, error) {
	n := 64 + len(r.ID) + len(r.From) + len(r.Rcpt) + len(r.User) + len(r.Source) + len(r.To) + len(r.MessageID) +
		len(r.Subject) + len(r.Header) + len(r.Text) + len(r.Concat) + len(r.LastError) +
		len(r.FailStatus) + 16*len(r.Segments) + 24*len(r.Events) +
		len(r.Notify) + len(r.ORcpt) + len(r.Ret) + len(r.EnvID) + len(r.Original) +
		len(r.ReportPolicy) + len(r.NoReport) + len(r.OriginalRef) + len(r.HeaderRef) + 32
	for _, s := range r.Segments {
		n += len(s.Text) + len(s.Payload) + len(s.SMSCID) + len(s.State) + len(s.Stat) + len(s.Err)
	}
	for _, e := range r.Events {
		n += len(e.What) + len(e.Detail)
	}
	b := make([]byte, 0, n)
	b = append(b, codecV1)
	b = putString(b, r.ID)
	b = putTime(b, r.Created)
	b = putString(b, r.From)
	b = putString(b, r.Rcpt)
	b = putString(b, r.User)
	b = putString(b, r.Source)
	b = putString(b, r.To)
	b = putString(b, r.MessageID)
	b = putString(b, r.Subject)
	b = putBytes(b, r.Header)
	b = putString(b, r.Text)
	b = append(b, r.DataCoding)
	b = putString(b, r.Concat)
	b = binary.AppendUvarint(b, uint64(r.Ref))
	b = append(b, r.LockingShift, r.SingleShift, boolByte(r.Truncated))
	b = putLen(b, r.Segments == nil, len(r.Segments))
	for _, s := range r.Segments {
		b = putString(b, s.Text)
		b = putBytes(b, s.Payload)
		b = putString(b, s.SMSCID)
		b = putString(b, s.State)
		b = putString(b, s.Stat)
		b = putString(b, s.Err)
	}
	b = putString(b, string(r.State))
	b = binary.AppendVarint(b, int64(r.Attempts))
	b = putTime(b, r.NextAttempt)
	b = putString(b, r.LastError)
	b = putString(b, r.FailStatus)
	b = append(b, boolByte(r.ReportDone))
	b = putTime(b, r.FinalAt)
	b = putLen(b, r.Events == nil, len(r.Events))
	for _, e := range r.Events {
		b = putTime(b, e.At)
		b = putString(b, e.What)
		b = putString(b, e.Detail)
	}
	b = putString(b, r.Notify)
	b = putString(b, r.ORcpt)
	b = putString(b, r.Ret)
	b = putString(b, r.EnvID)
	b = append(b, boolByte(r.UTF8))
	b = putBytes(b, r.Original)
	b = putString(b, r.ReportPolicy)
	b = putString(b, r.NoReport)
	b = append(b, boolByte(r.DelayDone))
	b = binary.AppendVarint(b, int64(r.ReportAttempts))
	b = putTime(b, r.ReportNextAttempt)
	b = putTime(b, r.ReceiptsBy)
	b = putString(b, r.OriginalRef)
	b = putString(b, r.HeaderRef)
	return b, nil
}

func decode(v []byte) (*Record, error) {
	return decodeFrom(v, false)
}

// maxShared bounds the records whose strings decodeFrom shares with the
// value (a typical record is about 1 KB).
const maxShared = 4 << 10

// decodeFrom is decode; stable says that v never changes nor goes away (a
// value of an overlay). The record's strings then share v's bytes instead
// of a copy; its byte slices are copies all the same, since their owner
// may change them. A large record (one that carries its mail, RET=FULL to
// one recipient) is copied whole instead: its strings would keep all of v
// alive beside the copied bytes.
func decodeFrom(v []byte, stable bool) (*Record, error) {
	if len(v) > 0 && v[0] == '{' {
		rec := new(Record)
		if err := json.Unmarshal(v, rec); err != nil {
			return nil, fmt.Errorf("decode: %w", err)
		}
		return rec, nil
	}
	if len(v) == 0 || v[0] != codecV1 {
		return nil, fmt.Errorf("decode: unknown record encoding %q", v[:min(len(v), 1)])
	}
	d := decoder{data: v[1:], copyBytes: stable && len(v) <= maxShared}
	if !d.copyBytes {
		// One copy of the data backs every string and byte slice of
		// the record: one allocation instead of one per field. The
		// strings and the byte slices cover disjoint ranges of it, and
		// the slices are capped, so a caller that changes or appends to
		// a byte slice never changes a string.
		d.data = append([]byte(nil), d.data...)
	}
	if len(d.data) > 0 {
		d.str = unsafe.String(&d.data[0], len(d.data))
	}
	r := new(Record)
	r.ID = d.string()
	r.Created = d.time()
	r.From = d.string()
	r.Rcpt = d.string()
	r.User = d.string()
	r.Source = d.string()
	r.To = d.string()
	r.MessageID = d.string()
	r.Subject = d.string()
	r.Header = d.bytes()
	r.Text = d.string()
	r.DataCoding = d.byte()
	r.Concat = d.string()
	r.Ref = uint16(d.uvarint())
	r.LockingShift = d.byte()
	r.SingleShift = d.byte()
	r.Truncated = d.byte() != 0
	if n, isNil := d.len(); !isNil {
		r.Segments = make([]Segment, n)
		for i := range r.Segments {
			s := &r.Segments[i]
			s.Text = d.string()
			s.Payload = d.bytes()
			s.SMSCID = d.string()
			s.State = d.string()
			s.Stat = d.string()
			s.Err = d.string()
		}
	}
	r.State = State(d.string())
	r.Attempts = int(d.varint())
	r.NextAttempt = d.time()
	r.LastError = d.string()
	r.FailStatus = d.string()
	r.ReportDone = d.byte() != 0
	r.FinalAt = d.time()
	if n, isNil := d.len(); !isNil {
		r.Events = make([]Event, n)
		for i := range r.Events {
			e := &r.Events[i]
			e.At = d.time()
			e.What = d.string()
			e.Detail = d.string()
		}
	}
	r.Notify = d.string()
	r.ORcpt = d.string()
	r.Ret = d.string()
	r.EnvID = d.string()
	r.UTF8 = d.byte() != 0
	r.Original = d.bytes()
	r.ReportPolicy = d.string()
	r.NoReport = d.string()
	r.DelayDone = d.byte() != 0
	r.ReportAttempts = int(d.varint())
	r.ReportNextAttempt = d.time()
	r.ReceiptsBy = d.time()
	r.OriginalRef = d.string()
	r.HeaderRef = d.string()
	if d.err != nil {
		return nil, fmt.Errorf("decode: %w", d.err)
	}
	return r, nil
}

func boolByte(b bool) byte {
	if b {
		return 1
	}
	return 0
}

func putString(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))+1), s...)
}

func putBytes(b, p []byte) []byte {
	if p == nil {
		return append(b, 0)
	}
	return append(binary.AppendUvarint(b, uint64(len(p))+1), p...)
}

func putLen(b []byte, isNil bool, n int) []byte {
	if isNil {
		return append(b, 0)
	}
	return binary.AppendUvarint(b, uint64(n)+1)
}

func putTime(b []byte, t time.Time) []byte {
	if t.IsZero() {
		return append(b, 0)
	}
	b = binary.AppendUvarint(b, uint64(t.Nanosecond())+1)
	return binary.AppendVarint(b, t.Unix())
}

var errShort = errors.New("record data ends early")

// decoder reads the binary form. Reading past the end gives zero values:
// the fields of a newer layout that this record does not have. Data that
// is cut inside a field is an error.
type decoder struct {
	data []byte
	str  string // the same bytes as data
	off  int
	err  error
	// copyBytes makes bytes return copies: data is not the decoder's own.
	copyBytes bool
}

func (d *decoder) fail(err error) {
	if d.err == nil {
		d.err = err
	}
	d.off = len(d.data)
}

func (d *decoder) uvarint() uint64 {
	if d.off >= len(d.data) {
		return 0
	}
	v, n := binary.Uvarint(d.data[d.off:])
	if n <= 0 {
		d.fail(errShort)
		return 0
	}
	d.off += n
	return v
}

func (d *decoder) varint() int64 {
	if d.off >= len(d.data) {
		return 0
	}
	v, n := binary.Varint(d.data[d.off:])
	if n <= 0 {
		d.fail(errShort)
		return 0
	}
	d.off += n
	return v
}

func (d *decoder) byte() byte {
	if d.off >= len(d.data) {
		return 0
	}
	d.off++
	return d.data[d.off-1]
}

// span reads a length-prefixed field and returns its bounds (ok false for
// the nil marker or the end of the data).
func (d *decoder) span() (start, end int, ok bool) {
	n := d.uvarint()
	if n == 0 {
		return 0, 0, false
	}
	n--
	if n > uint64(len(d.data)-d.off) {
		d.fail(errShort)
		return 0, 0, false
	}
	start, end = d.off, d.off+int(n)
	d.off = end
	return start, end, true
}

func (d *decoder) string() string {
	start, end, ok := d.span()
	if !ok {
		return ""
	}
	return d.str[start:end]
}

func (d *decoder) bytes() []byte {
	start, end, ok := d.span()
	if !ok {
		return nil
	}
	if d.copyBytes {
		return bytes.Clone(d.data[start:end]) // empty, not nil, for an empty field
	}
	return d.data[start:end:end]
}

// len reads the length of a slice; isNil for a nil slice (or the end of the
// data). A length that the remaining data cannot hold is an error.
func (d *decoder) len() (n int, isNil bool) {
	v := d.uvarint()
	if v == 0 {
		return 0, true
	}
	if v-1 > uint64(len(d.data)-d.off) {
		d.fail(errShort)
		return 0, true
	}
	return int(v - 1), false
}

func (d *decoder) time() time.Time {
	ns := d.uvarint()
	if ns == 0 {
		return time.Time{}
	}
	if ns-1 >= uint64(time.Second) {
		d.fail(errors.New("bad nanoseconds"))
		return time.Time{}
	}
	sec := d.varint()
	return time.Unix(sec, int64(ns-1)).UTC()
}
