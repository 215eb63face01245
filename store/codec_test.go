package store

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"
	"unsafe"

	bolt "go.etcd.io/bbolt"
)

// fullRecord has every field set to something other than its zero value.
func fullRecord() *Record {
	at := time.Date(2026, 11, 3, 10, 0, 0, 123456789, time.UTC)
	return &Record{
		ID: "0123456789abcdef01234567", Created: at, From: "a@x", Rcpt: "+49151@sms", User: "alice", Source: "ACME", To: "+49151",
		MessageID: "<m@x>", Subject: "Grüße", Header: []byte("Subject: x\r\n\r\n"), Text: "héllo €",
		DataCoding: 8, Concat: "8bit", Ref: 300, LockingShift: 1, SingleShift: 2, Truncated: true,
		Segments: []Segment{
			{Text: "hé", Payload: []byte{0, 1, 2}, SMSCID: "A1", State: SegDelivered, Stat: "DELIVRD", Err: "000"},
			{Text: "", Payload: []byte{}, SMSCID: "A2", State: SegFailed, Stat: "UNDELIV", Err: "001"},
		},
		State: Failed, Attempts: 3, NextAttempt: at.Add(-time.Hour), LastError: "stat=UNDELIV",
		FailStatus: "5.0.0", ReportDone: true, FinalAt: at.Add(time.Minute),
		Events: []Event{{At: at, What: "accepted"}, {At: time.Unix(-5, 7).UTC(), What: "x", Detail: "d"}},
		Notify: "SUCCESS,FAILURE", ORcpt: "rfc822;+49151@sms", Ret: "FULL", EnvID: "QQ314159", UTF8: true,
		Original: []byte("Subject: x\r\n\r\nbody\r\n"), ReportPolicy: "all", NoReport: "auto-submitted",
		DelayDone: true, ReportAttempts: 2, ReportNextAttempt: at.Add(2 * time.Minute), ReceiptsBy: at.Add(49 * time.Hour), OriginalRef: "0123456789abcdef01234567", HeaderRef: "0123456789abcdef01234568",
		DuplicateOf: "", // never stored
	}
}

func TestCodecRoundTrip(t *testing.T) {
	full := fullRecord()
	// Every stored field is set: a field added to Record but not to the
	// codec fails here.
	v := reflect.ValueOf(full).Elem()
	for i := range v.NumField() {
		if name := v.Type().Field(i).Name; name != "DuplicateOf" && v.Field(i).IsZero() {
			t.Fatalf("fullRecord leaves %s zero", name)
		}
	}
	tests := []struct {
		name string
		rec  *Record
	}{
		{"every field", full},
		{"zero record", &Record{}},
		{"nil and empty slices differ", &Record{Header: []byte{}, Segments: []Segment{}, Events: []Event{}}},
		{"times before 1970 and far ahead", &Record{Created: time.Date(1600, 1, 1, 0, 0, 0, 1, time.UTC),
			NextAttempt: time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			data, err := encode(tc.rec)
			if err != nil {
				t.Fatal(err)
			}
			for _, stable := range []bool{false, true} {
				got, err := decodeFrom(data, stable)
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(got, tc.rec) {
					t.Errorf("decodeFrom(encode(r), %v) =\n%+v\nwant\n%+v", stable, got, tc.rec)
				}
			}
		})
	}
}

// TestDecodeStableKeepsValue: a record decoded from an overlay's value
// shares its strings with it, but a caller that changes the record's byte
// slices must not change the value (the overlay's, and bbolt's after the
// checkpoint).
func TestDecodeStableKeepsValue(t *testing.T) {
	data, err := encode(fullRecord())
	if err != nil {
		t.Fatal(err)
	}
	before := bytes.Clone(data)
	rec, err := decodeFrom(data, true)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range [][]byte{rec.Header, rec.Original, rec.Segments[0].Payload} {
		for i := range b {
			b[i] ^= 0xff
		}
	}
	rec.Segments[0].Payload = append(rec.Segments[0].Payload, "more"...)
	if !bytes.Equal(data, before) {
		t.Fatal("changing a decoded record's bytes changed the value it came from")
	}
}

func TestCodecDecodesJSON(t *testing.T) {
	full := fullRecord()
	data, err := json.Marshal(full)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decode(data)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, full) {
		t.Errorf("JSON record decoded as %+v", got)
	}
}

// TestCodecShortData: a record cut at a field boundary reads as an older
// layout (later fields zero); cut inside a field it is an error; it never
// panics.
func TestCodecShortData(t *testing.T) {
	data, _ := encode(fullRecord())
	for n := range len(data) {
		rec, err := decode(data[:n])
		if err == nil && rec == nil {
			t.Fatalf("decode of %d bytes: nil record and no error", n)
		}
	}
	if _, err := decode(nil); err == nil {
		t.Error("empty data decoded")
	}
	if _, err := decode([]byte{0x7f}); err == nil {
		t.Error("unknown encoding decoded")
	}
	if _, err := decode([]byte{codecV1, 200}); err == nil { // a length beyond the data
		t.Error("truncated string decoded")
	}
}

func FuzzDecode(f *testing.F) {
	data, _ := encode(fullRecord())
	f.Add(data)
	f.Add([]byte(`{"ID":"x"}`))
	f.Add([]byte{codecV1})
	f.Fuzz(func(t *testing.T, data []byte) {
		rec, err := decode(data)
		if err != nil || len(data) == 0 || data[0] != codecV1 {
			return
		}
		again, err := encode(rec)
		if err != nil {
			t.Fatal(err)
		}
		rec2, err := decode(again)
		if err != nil || !reflect.DeepEqual(rec, rec2) {
			t.Fatalf("re-encoded record differs: %v", err)
		}
		shared, err := decodeFrom(data, true)
		if err != nil || !reflect.DeepEqual(rec, shared) {
			t.Fatalf("decoding in place differs: %v", err)
		}
	})
}

// TestMigrateLayout1 opens a file written by the first layout (JSON
// records, no counts, final, submitting, dedup or refs buckets).
func TestMigrateLayout1(t *testing.T) {
	path := filepath.Join(t.TempDir(), "v1.db")
	queued := &Record{ID: "000000000000000000000001", Created: t0, To: "+49151", State: Queued,
		NextAttempt: t0, Segments: []Segment{{Payload: []byte("a")}},
		Events: []Event{{At: t0, What: "accepted"}}}
	final := &Record{ID: "000000000000000000000002", Created: t0, To: "+49151", State: Delivered,
		ReportDone: true, Segments: []Segment{{SMSCID: "X1", State: SegDelivered}},
		Events: []Event{{At: t0, What: "accepted"}, {At: t0.Add(time.Hour), What: "delivered"}}}
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, name := range []string{"meta", "records", "due", "smscid", "report", "parked", "parked_age"} {
			if _, err := tx.CreateBucket([]byte(name)); err != nil {
				return err
			}
		}
		tx.Bucket(bucketMeta).Put(keyVersion, []byte("1"))
		for _, r := range []*Record{queued, final} {
			v, _ := json.Marshal(r)
			tx.Bucket(bucketRecords).Put([]byte(r.ID), v)
		}
		tx.Bucket(bucketDue).Put(timeIDKey(t0, queued.ID), []byte{})
		return tx.Bucket(bucketSMSC).Put([]byte("X1"), segRef(final.ID, 0))
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}

	s, err := Open(path, Options{Now: newClock().Now})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if counts, _ := s.Counts(); !reflect.DeepEqual(counts, map[State]int{Queued: 1, Delivered: 1}) {
		t.Errorf("Counts = %v", counts)
	}
	got := mustGet(t, s, final.ID)
	if want := t0.Add(time.Hour); !got.FinalAt.Equal(want) {
		t.Errorf("FinalAt %v, want %v", got.FinalAt, want)
	}
	if keys := indexKeys(t, s, bucketFinal); !slices.Equal(keys, []string{string(timeIDKey(t0.Add(time.Hour), final.ID))}) {
		t.Errorf("final index %q", keys)
	}
	due, _, _ := s.Due(t0, 0)
	if !slices.Equal(ids(due), []string{queued.ID}) {
		t.Errorf("Due = %v", ids(due))
	}
	r := mustUpdate(t, s, queued.ID, submit("Q")) // written in the new encoding
	if got := mustGet(t, s, r.ID); got.State != Submitted {
		t.Errorf("state %s", got.State)
	}
	var version string
	s.w.view(func(tx *txn) error { version = string(tx.Bucket(bucketMeta).Get(keyVersion)); return nil })
	if version != layoutVersion {
		t.Errorf("version %q", version)
	}
}

// TestDecodeSharesOnlySmallRecords: a typical record read from an overlay
// shares the value's bytes (the point of decodeFrom), a large one does not
// (it would pin the value beside its copied byte slices).
func TestDecodeSharesOnlySmallRecords(t *testing.T) {
	tests := []struct {
		name     string
		original int
		shares   bool
	}{
		{"typical", 20, true},
		{"carries its mail", 64 << 10, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := fullRecord()
			r.Original = bytes.Repeat([]byte("x"), tc.original)
			data, err := encode(r)
			if err != nil {
				t.Fatal(err)
			}
			rec, err := decodeFrom(data, true)
			if err != nil {
				t.Fatal(err)
			}
			p := uintptr(unsafe.Pointer(unsafe.StringData(rec.ID)))
			start := uintptr(unsafe.Pointer(&data[0]))
			if shares := p >= start && p < start+uintptr(len(data)); shares != tc.shares {
				t.Errorf("record of %d bytes shares the value's bytes: %v, want %v", len(data), shares, tc.shares)
			}
		})
	}
}
