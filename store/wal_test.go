package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Tests of the write-ahead log (wal.go), its replay by Open, the checkpoints
// of the writer (writer.go) and the merge of overlays and bbolt (kv.go), on
// real files.
//
// A crash is simulated by copying the store file and its log files into a
// fresh directory while the store is open, at a moment when no checkpoint
// can write the store file: none is due (the triggers are set out of
// reach), or the test holds bbolt's write lock (holdCheckpoints), which
// stops a checkpoint before it writes anything. Writes answered before the
// copy started are on disk in one of the copied files; a round being
// written meanwhile may be copied torn, as a crash would leave it.
//
// None of these tests may run in parallel with another test of the package:
// they set ckptBytes, maxLogBytes and ckptAge.

// setCheckpoints sets the checkpoint triggers for the rest of the test. Call
// it before opening a store, so that the store's own cleanup (Close) runs
// before the triggers are restored: the writer goroutine reads them.
func setCheckpoints(t *testing.T, bytes, maxLog int64, age time.Duration) {
	t.Helper()
	b, m, a := ckptBytes, maxLogBytes, ckptAge
	ckptBytes, maxLogBytes, ckptAge = bytes, maxLog, age
	t.Cleanup(func() { ckptBytes, maxLogBytes, ckptAge = b, m, a })
}

// noCheckpoints puts the triggers out of reach: no checkpoint runs until
// Close.
func noCheckpoints(t *testing.T) { setCheckpoints(t, 1<<40, 1<<41, time.Hour) }

// openAt opens the store at path, closed at the end of the test.
func openAt(t testing.TB, path string, opt Options) *Store {
	t.Helper()
	s, err := Open(path, opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func mustClose(t testing.TB, s *Store) {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// logName is the name of log file gen of the store at path, as wal.go
// documents it (not computed with walName, which this checks).
func logName(path string, gen uint64) string {
	return path + "-wal." + strconv.FormatUint(gen, 10)
}

// logGens lists the generations of the log files beside path, oldest
// first, read from the directory (not with walFiles).
func logGens(t testing.TB, path string) []uint64 {
	t.Helper()
	ents, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	prefix := filepath.Base(path) + "-wal."
	var gens []uint64
	for _, e := range ents {
		rest, ok := strings.CutPrefix(e.Name(), prefix)
		if !ok {
			continue
		}
		if g, err := strconv.ParseUint(rest, 10, 64); err == nil && strconv.FormatUint(g, 10) == rest {
			gens = append(gens, g)
		}
	}
	slices.Sort(gens)
	return gens
}

func readFile(t testing.TB, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func writeFile(t testing.TB, name string, data []byte) {
	t.Helper()
	if err := os.WriteFile(name, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// crashFiles is what a crash leaves on disk: the store file and the log
// files by generation.
type crashFiles struct {
	db   []byte
	logs map[uint64][]byte
}

// snapshotFiles reads the files of the open store at path (see the comment
// at the top for when that is safe). A log file that a checkpoint that
// committed just before deletes meanwhile is left out: the store file holds
// its rounds.
func snapshotFiles(t testing.TB, path string) crashFiles {
	t.Helper()
	cf := crashFiles{db: readFile(t, path), logs: map[uint64][]byte{}}
	for _, g := range logGens(t, path) {
		data, err := os.ReadFile(logName(path, g))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		cf.logs[g] = data
	}
	return cf
}

// restore writes cf into a new directory and returns the store file's path
// there.
func (cf crashFiles) restore(t testing.TB) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "store.db")
	writeFile(t, path, cf.db)
	for g, data := range cf.logs {
		writeFile(t, logName(path, g), data)
	}
	return path
}

func (cf crashFiles) maxGen() uint64 {
	return slices.Max(slices.Collect(maps.Keys(cf.logs)))
}

// crashCopy copies the open store at path into a new directory, as a crash
// would leave it, and returns the copy's path.
func crashCopy(t testing.TB, path string) string {
	t.Helper()
	return snapshotFiles(t, path).restore(t)
}

// checkOnlyFreshLog checks that after Open only the writer's new log file
// is left beside path: empty, and newer than any generation replayed.
func checkOnlyFreshLog(t testing.TB, path string, replayed uint64) {
	t.Helper()
	gens := logGens(t, path)
	if len(gens) != 1 || gens[0] <= replayed {
		t.Fatalf("log files after Open: generations %v, want one newer than %d", gens, replayed)
	}
	if fi, err := os.Stat(logName(path, gens[0])); err != nil || fi.Size() != 0 {
		t.Fatalf("new log file: %v, %v", fi, err)
	}
}

func checkNoLogs(t testing.TB, path string) {
	t.Helper()
	if gens := logGens(t, path); len(gens) != 0 {
		t.Fatalf("log files left after Close: generations %v", gens)
	}
}

// dumpStore returns every key of every bucket as the store reads it
// (overlays over bbolt), keyed by bucket|key; the meta key wal_seq, which
// is bbolt's own, is left out.
func dumpStore(t testing.TB, s *Store) map[string]string {
	t.Helper()
	m := map[string]string{}
	err := s.w.view(func(tx *txn) error {
		for _, name := range allBuckets {
			err := tx.Bucket(name).ForEach(func(k, v []byte) error {
				if bytes.Equal(name, bucketMeta) && bytes.Equal(k, keyWALSeq) {
					return nil
				}
				m[string(name)+"|"+string(k)] = string(v)
				return nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// diffDumps describes how got differs from want ("" if it does not).
func diffDumps(want, got map[string]string) string {
	var diffs []string
	for _, k := range slices.Sorted(maps.Keys(want)) {
		if g, ok := got[k]; !ok {
			diffs = append(diffs, fmt.Sprintf("missing %q", k))
		} else if g != want[k] {
			diffs = append(diffs, fmt.Sprintf("%q differs", k))
		}
	}
	for _, k := range slices.Sorted(maps.Keys(got)) {
		if _, ok := want[k]; !ok {
			diffs = append(diffs, fmt.Sprintf("extra %q", k))
		}
	}
	if len(diffs) > 8 {
		diffs = append(diffs[:8], fmt.Sprintf("and %d more", len(diffs)-8))
	}
	return strings.Join(diffs, "; ")
}

func checkDump(t testing.TB, s *Store, want map[string]string) {
	t.Helper()
	if d := diffDumps(want, dumpStore(t, s)); d != "" {
		t.Fatalf("store content: %s", d)
	}
}

// walSeq returns the seq bbolt says it holds.
func walSeq(t testing.TB, s *Store) uint64 {
	t.Helper()
	var seq uint64
	err := s.w.view(func(tx *txn) error {
		if v := tx.Bucket(bucketMeta).Get(keyWALSeq); len(v) == 8 {
			seq = binary.BigEndian.Uint64(v)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return seq
}

// rawGet reads a key of a closed store file with bbolt itself.
func rawGet(t testing.TB, path string, bucket, key []byte) []byte {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var v []byte
	err = db.View(func(btx *bolt.Tx) error {
		if b := btx.Bucket(bucket); b != nil {
			if got := b.Get(key); got != nil {
				v = append([]byte{}, got...)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// --- The log format, encoded and decoded here from its description in
// wal.go, independently of the code under test.

var testCastagnoli = crc32.MakeTable(crc32.Castagnoli)

type logOp struct {
	del         bool
	bucket, key string
	val         string
}

func encodeOps(ops []logOp) []byte {
	var p []byte
	for _, op := range ops {
		if op.del {
			p = append(p, 2)
		} else {
			p = append(p, 1)
		}
		p = binary.AppendUvarint(p, uint64(len(op.bucket)))
		p = append(p, op.bucket...)
		p = binary.AppendUvarint(p, uint64(len(op.key)))
		p = append(p, op.key...)
		if !op.del {
			p = binary.AppendUvarint(p, uint64(len(op.val)))
			p = append(p, op.val...)
		}
	}
	return p
}

func decodeOps(p []byte) ([]logOp, error) {
	var ops []logOp
	next := func() (string, error) {
		n, w := binary.Uvarint(p)
		if w <= 0 || uint64(len(p)-w) < n {
			return "", errors.New("bad field")
		}
		f := string(p[w : w+int(n)])
		p = p[w+int(n):]
		return f, nil
	}
	for len(p) > 0 {
		code := p[0]
		p = p[1:]
		var op logOp
		var err error
		if op.bucket, err = next(); err != nil {
			return nil, err
		}
		if op.key, err = next(); err != nil {
			return nil, err
		}
		switch code {
		case 1:
			if op.val, err = next(); err != nil {
				return nil, err
			}
		case 2:
			op.del = true
		default:
			return nil, fmt.Errorf("operation %d", code)
		}
		ops = append(ops, op)
	}
	return ops, nil
}

// frame is one log record: length ‖ CRC-32C(seq ‖ payload) ‖ seq ‖ payload.
func frame(seq uint64, payload []byte) []byte {
	var sb [8]byte
	binary.BigEndian.PutUint64(sb[:], seq)
	crc := crc32.Update(crc32.Checksum(sb[:], testCastagnoli), testCastagnoli, payload)
	b := binary.BigEndian.AppendUint32(nil, uint32(len(payload)))
	b = binary.BigEndian.AppendUint32(b, crc)
	b = append(b, sb[:]...)
	return append(b, payload...)
}

type logRec struct {
	off, end int
	seq      uint64
	payload  []byte
}

// parseLog splits a log file into its records, and returns the offset
// where the valid ones end.
func parseLog(data []byte) (recs []logRec, end int) {
	for off := 0; len(data)-off >= 16; {
		n := int(binary.BigEndian.Uint32(data[off:]))
		if len(data)-off-16 < n {
			break
		}
		seq := binary.BigEndian.Uint64(data[off+8:])
		payload := data[off+16 : off+16+n]
		if !bytes.Equal(frame(seq, payload), data[off:off+16+n]) {
			break // CRC
		}
		recs = append(recs, logRec{off: off, end: off + 16 + n, seq: seq, payload: payload})
		off += 16 + n
		end = off
	}
	return recs, end
}

func mustParseLog(t testing.TB, data []byte) []logRec {
	t.Helper()
	recs, end := parseLog(data)
	if end != len(data) {
		t.Fatalf("log has %d bytes of %d in %d valid records", end, len(data), len(recs))
	}
	return recs
}

// --- Tests.

// TestWALRecordFormat checks the bytes the writer appends against the
// format documented in wal.go: one record per round that changed
// something, seqs without gaps after the one bbolt holds, the CRC over seq
// and payload, and the round's puts and deletes in order.
func TestWALRecordFormat(t *testing.T) {
	noCheckpoints(t)
	s, path := openTemp(t, Options{})
	mo := string(bucketMOParts)
	rounds := [][]logOp{
		{{bucket: mo, key: "a", val: "1"}, {bucket: mo, key: "b", val: ""}, {bucket: mo, key: "c", val: strings.Repeat("x", 300)}},
		{{del: true, bucket: mo, key: "a"}, {bucket: mo, key: "b", val: "2"}, {bucket: string(bucketInbound), key: "\x00\xff", val: "z"}},
		nil, // deletes a missing key: writes nothing, logs nothing
		{{bucket: mo, key: "a", val: "3"}, {bucket: mo, key: "a", val: "4"}, {del: true, bucket: mo, key: "a"}},
	}
	for i, ops := range rounds {
		err := s.w.do(func(tx *txn) error {
			if ops == nil {
				return tx.Bucket(bucketMOParts).Delete([]byte("missing"))
			}
			for _, op := range ops {
				b := tx.Bucket([]byte(op.bucket))
				var err error
				if op.del {
					err = b.Delete([]byte(op.key))
				} else {
					err = b.Put([]byte(op.key), []byte(op.val))
				}
				if err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
	}
	gens := logGens(t, path)
	if len(gens) != 1 {
		t.Fatalf("log generations %v, want one", gens)
	}
	recs := mustParseLog(t, readFile(t, logName(path, gens[0])))
	var want [][]logOp
	for _, ops := range rounds {
		if ops != nil {
			want = append(want, ops)
		}
	}
	if len(recs) != len(want) {
		t.Fatalf("%d log records, want %d", len(recs), len(want))
	}
	first := walSeq(t, s) + 1
	for i, rec := range recs {
		if rec.seq != first+uint64(i) {
			t.Errorf("record %d has seq %d, want %d", i, rec.seq, first+uint64(i))
		}
		got, err := decodeOps(rec.payload)
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		if !reflect.DeepEqual(got, want[i]) {
			t.Errorf("record %d holds %+v, want %+v", i, got, want[i])
		}
		if !bytes.Equal(rec.payload, encodeOps(want[i])) {
			t.Errorf("record %d payload %x, want %x", i, rec.payload, encodeOps(want[i]))
		}
	}
	if n := s.w.rounds.Load(); n != int64(len(want)) {
		t.Errorf("rounds counter %d, want %d", n, len(want))
	}
}

// receipt applies a receipt and checks whether it matched a segment.
func receipt(t testing.TB, s *Store, smscID, stat string, matched bool) {
	t.Helper()
	_, m, err := s.ApplyReceipt(Receipt{SMSCID: smscID, Stat: stat, At: t0})
	if err != nil {
		t.Fatal(err)
	}
	if m != matched {
		t.Fatalf("receipt %s matched %v, want %v", smscID, m, matched)
	}
}

// crashWorkload makes writes of every kind, one round each, and returns the
// ids it added by letter. See checkCrashWorkload for what they leave.
func crashWorkload(t testing.TB, s *Store) map[string]string {
	t.Helper()
	a, b, c := record("+491510000001", 1), record("+491510000002", 1), record("+491510000003", 2)
	mustAdd(t, s, a, b, c)
	d, e := record("+491510000004", 1), record("+491510000005", 1)
	mustAdd(t, s, d, e)
	f, g := record("+491510000006", 1), record("+491510000007", 1)
	mustAdd(t, s, f)
	mustAdd(t, s, g)
	mustUpdate(t, s, a.ID, func(r *Record) error { r.Attempts++; r.LastError = "throttled"; return nil })
	mustUpdate(t, s, b.ID, submit("B"))
	receipt(t, s, "B1", "DELIVRD", true)
	mustUpdate(t, s, c.ID, submit("C"))
	receipt(t, s, "C1", "DELIVRD", true)
	receipt(t, s, "C2", "UNDELIV", true)
	if _, err := s.Cancel(d.ID, "operator"); err != nil {
		t.Fatal(err)
	}
	mustUpdate(t, s, e.ID, func(r *Record) error { r.NextAttempt = t0.Add(time.Hour); return nil })
	mustUpdate(t, s, f.ID, func(r *Record) error {
		submit("F")(r)
		r.ReceiptsBy = t0.Add(30 * time.Minute)
		return nil
	})
	receipt(t, s, "ZZ9", "DELIVRD", false) // parked for good
	receipt(t, s, "G1", "DELIVRD", false)  // parked until g gets G1
	mustUpdate(t, s, g.ID, submit("G"))
	if err := s.AddMOPart(context.Background(), "mo-1", []byte("part one")); err != nil {
		t.Fatal(err)
	}
	return map[string]string{"a": a.ID, "b": b.ID, "c": c.ID, "d": d.ID, "e": e.ID, "f": f.ID, "g": g.ID}
}

// checkCrashWorkload checks what crashWorkload left, through the store's
// own queries: records, states, indexes, counts, parked receipts.
func checkCrashWorkload(t testing.TB, s *Store, id map[string]string, others int) {
	t.Helper()
	states := map[string]State{"a": Queued, "b": Delivered, "c": Failed, "d": Cancelled,
		"e": Queued, "f": Submitted, "g": Delivered}
	for name, st := range states {
		r := mustGet(t, s, id[name])
		if r.State != st {
			t.Errorf("%s is %s, want %s", name, r.State, st)
		}
	}
	if r := mustGet(t, s, id["a"]); r.Attempts != 1 || r.LastError != "throttled" {
		t.Errorf("a: attempts %d, last error %q", r.Attempts, r.LastError)
	}
	if r := mustGet(t, s, id["d"]); r.LastError != "operator" || r.Events[len(r.Events)-1].What != "cancelled" {
		t.Errorf("d: last error %q, events %v", r.LastError, whats(r.Events))
	}
	if r := mustGet(t, s, id["g"]); r.Segments[0].Stat != "DELIVRD" {
		t.Errorf("g: parked receipt not applied: %+v", r.Segments[0])
	}
	due, _, err := s.Due(t0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(due); !slices.Contains(got, id["a"]) || slices.Contains(got, id["e"]) || slices.Contains(got, id["f"]) {
		t.Errorf("due at t0: %v (a %s, e %s, f %s)", got, id["a"], id["e"], id["f"])
	}
	due, _, err = s.Due(t0.Add(2*time.Hour), 0)
	if err != nil {
		t.Fatal(err)
	}
	var mine []string
	for _, r := range due {
		if slices.Contains(slices.Collect(maps.Values(id)), r.ID) {
			mine = append(mine, r.ID)
		}
	}
	if want := []string{id["a"], id["f"], id["e"]}; !slices.Equal(mine, want) {
		t.Errorf("due in 2h: %v, want %v", mine, want)
	}
	reports, _, err := s.ReportsDue(t0, 0)
	if err != nil {
		t.Fatal(err)
	}
	got := ids(reports)
	for _, name := range []string{"b", "c", "d", "g"} {
		if !slices.Contains(got, id[name]) {
			t.Errorf("reports due %v lack %s (%s)", got, name, id[name])
		}
	}
	if slices.Contains(got, id["a"]) || slices.Contains(got, id["f"]) {
		t.Errorf("reports due %v hold a live record", got)
	}
	if n, err := s.Parked(); err != nil || n != 1 {
		t.Errorf("parked: %d, %v; want 1", n, err)
	}
	counts, err := s.Counts()
	if err != nil {
		t.Fatal(err)
	}
	want := map[State]int{Queued: 2, Submitted: 1, Delivered: 2, Failed: 1, Cancelled: 1}
	want[Queued] += others
	if !maps.Equal(counts, want) {
		t.Errorf("counts %v, want %v", counts, want)
	}
	parts, err := s.MOParts()
	if err != nil || string(parts["mo-1"]) != "part one" {
		t.Errorf("MO parts %q, %v", parts, err)
	}
}

// TestWALCrashRecovery: writes answered and never checkpointed into bbolt
// survive a crash (the process dies without Close) through the log alone,
// and the recovered store goes on: new ids follow the old ones, and a
// second crash keeps the writes made after the first recovery.
func TestWALCrashRecovery(t *testing.T) {
	cases := []struct {
		name string
		// before writes what the store held before, and returns how many
		// Queued records that is.
		before func(t *testing.T, path string, opt Options) int
		// checkpoint: the crash comes while a checkpoint of the first half
		// of the writes is under way and has not committed (two log files).
		checkpoint bool
	}{
		{name: "fresh store"},
		{name: "after a clean close", before: func(t *testing.T, path string, opt Options) int {
			s := openAt(t, path, opt)
			mustAdd(t, s, record("+491519999991", 1), record("+491519999992", 1))
			mustClose(t, s)
			return 2
		}},
		{name: "checkpoint not committed", checkpoint: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			setCheckpoints(t, 256<<10, 1<<40, time.Hour)
			clk := newClock()
			opt := Options{Now: clk.Now}
			path := filepath.Join(t.TempDir(), "store.db")
			others := 0
			if tc.before != nil {
				others = tc.before(t, path, opt)
			}
			s := openAt(t, path, opt)
			var id map[string]string
			var cf crashFiles
			if tc.checkpoint {
				x := record("+491518888881", 1)
				mustAdd(t, s, x)
				mustUpdate(t, s, x.ID, func(r *Record) error { r.LastError = "before the checkpoint"; return nil })
				release := holdCheckpoints(t, s)
				startCheckpoint(t, s)
				if !hasFrozen(s) {
					t.Fatal("no checkpoint under way")
				}
				id = crashWorkload(t, s)
				cf = snapshotFiles(t, path)
				release()
				others++
				if len(cf.logs) != 2 {
					t.Fatalf("log generations %v, want the frozen one and the active one", slices.Collect(maps.Keys(cf.logs)))
				}
			} else {
				id = crashWorkload(t, s)
				cf = snapshotFiles(t, path)
				if len(cf.logs) != 1 {
					t.Fatalf("log generations %v, want one", slices.Collect(maps.Keys(cf.logs)))
				}
			}
			checkCrashWorkload(t, s, id, others) // the store itself
			want := dumpStore(t, s)
			liveRecs := map[string]*Record{}
			for _, rid := range id {
				liveRecs[rid] = mustGet(t, s, rid)
			}

			copyPath := cf.restore(t)
			for name, rid := range id {
				if rawGet(t, copyPath, bucketRecords, []byte(rid)) != nil {
					t.Fatalf("bbolt holds %s already: the test proves nothing", name)
				}
			}
			c := openAt(t, copyPath, opt)
			checkOnlyFreshLog(t, copyPath, cf.maxGen())
			checkDump(t, c, want)
			for rid, live := range liveRecs {
				if got := mustGet(t, c, rid); !reflect.DeepEqual(got, live) {
					t.Errorf("%s after recovery:\n%+v\nwant\n%+v", rid, got, live)
				}
			}
			checkCrashWorkload(t, c, id, others)

			// The recovered store goes on: a new record gets a new id,
			// and survives a second crash.
			h := record("+491517777777", 1)
			mustAdd(t, c, h)
			for name, rid := range id {
				if h.ID <= rid {
					t.Errorf("new id %s not after %s's %s", h.ID, name, rid)
				}
			}
			mustUpdate(t, c, id["a"], func(r *Record) error { r.Attempts++; return nil })
			want2 := dumpStore(t, c)
			copy2 := crashCopy(t, copyPath)
			c2 := openAt(t, copy2, opt)
			checkDump(t, c2, want2)
			if r := mustGet(t, c2, id["a"]); r.Attempts != 2 {
				t.Errorf("a has %d attempts after the second crash, want 2", r.Attempts)
			}
			mustGet(t, c2, h.ID)
			mustClose(t, c2)
			checkNoLogs(t, copy2)
			c3 := openAt(t, copy2, opt)
			checkDump(t, c3, want2)
		})
	}
}

// TestWALTornTail: the last round of the log is cut short or damaged, or
// garbage or zeros follow it: Open replays the rounds before the torn one
// and drops it (a damaged record before good ones is another matter: see
// TestWALDamagedRecordBeforeGoodOnes), writes wal_seq accordingly, and the
// store goes on from there, through a second crash.
func TestWALTornTail(t *testing.T) {
	noCheckpoints(t)
	clk := newClock()
	opt := Options{Now: clk.Now}
	s, path := openTemp(t, opt)

	// One round per write; dumps[i] is the content after i rounds.
	dumps := []map[string]string{dumpStore(t, s)}
	var recs []*Record
	for i := range 4 {
		r := record("+49151000000"+strconv.Itoa(i), 2)
		mustAdd(t, s, r)
		recs = append(recs, r)
		dumps = append(dumps, dumpStore(t, s))
	}
	steps := []func(){
		func() { mustUpdate(t, s, recs[0].ID, submit("A")) },
		func() { receipt(t, s, "A1", "DELIVRD", true) },
		func() { mustUpdate(t, s, recs[1].ID, func(r *Record) error { r.LastError = "x"; return nil }) },
		func() { receipt(t, s, "NOPE", "DELIVRD", false) },
		func() {
			if _, err := s.Cancel(recs[2].ID, "stop"); err != nil {
				t.Fatal(err)
			}
		},
		func() { mustUpdate(t, s, recs[0].ID, func(r *Record) error { r.Attempts = 7; return nil }) },
	}
	for _, step := range steps {
		step()
		dumps = append(dumps, dumpStore(t, s))
	}
	cf := snapshotFiles(t, path)
	gen := cf.maxGen()
	log := cf.logs[gen]
	lrecs := mustParseLog(t, log)
	n := len(dumps) - 1
	if len(lrecs) != n {
		t.Fatalf("%d log records for %d rounds", len(lrecs), n)
	}
	last := lrecs[n-1]

	flip := func(at int) func([]byte) []byte {
		return func(b []byte) []byte { b[at] ^= 0x20; return b }
	}
	rng := rand.New(rand.NewPCG(1, 2))
	garbage := make([]byte, 100)
	for i := range garbage {
		garbage[i] = byte(rng.Uint32())
	}
	garbage[0] = 0x7f // a length beyond maxWALRecord
	smallGarbage := append(binary.BigEndian.AppendUint32(nil, 20), garbage[4:40]...)
	cases := []struct {
		name string
		edit func([]byte) []byte
		kept int // rounds replayed
	}{
		{"intact", func(b []byte) []byte { return b }, n},
		{"last record 1 byte short", func(b []byte) []byte { return b[:len(b)-1] }, n - 1},
		{"last record 7 bytes short", func(b []byte) []byte { return b[:len(b)-7] }, n - 1},
		{"last record header only", func(b []byte) []byte { return b[:last.off+16] }, n - 1},
		{"last record half a header", func(b []byte) []byte { return b[:last.off+9] }, n - 1},
		{"garbage after the last record", func(b []byte) []byte { return append(b, garbage...) }, n},
		{"garbage with a plausible length", func(b []byte) []byte { return append(b, smallGarbage...) }, n},
		{"zeroed header after the last record", func(b []byte) []byte { return append(b, make([]byte, 16)...) }, n},
		{"zeroed block after the last record", func(b []byte) []byte { return append(b, make([]byte, 4096)...) }, n},
		{"a byte short of a header after the last record", func(b []byte) []byte { return append(b, make([]byte, 15)...) }, n},
		{"last record payload flipped", flip(last.end - 3), n - 1},
		{"last record CRC flipped", flip(last.off + 5), n - 1},
		{"last record seq flipped", flip(last.off + 15), n - 1},
		{"last record length grown", flip(last.off + 3), n - 1},
		{"last record again", func(b []byte) []byte { return append(b, b[last.off:]...) }, n},
		{"next seq with a bad CRC", func(b []byte) []byte {
			r := frame(last.seq+1, encodeOps([]logOp{{bucket: "meta", key: "torn", val: "x"}}))
			r[len(r)-1] ^= 1
			return append(b, r...)
		}, n},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			edited := crashFiles{db: cf.db, logs: map[uint64][]byte{gen: tc.edit(slices.Clone(log))}}
			p := edited.restore(t)
			c := openAt(t, p, opt)
			checkOnlyFreshLog(t, p, gen)
			checkDump(t, c, dumps[tc.kept])
			if got := walSeq(t, c); got != lrecs[0].seq-1+uint64(tc.kept) {
				t.Errorf("bbolt holds seq %d, want %d", got, lrecs[0].seq-1+uint64(tc.kept))
			}
			// The next round follows the last one replayed, and survives
			// another crash.
			err := c.w.do(func(tx *txn) error { return tx.Bucket(bucketMOParts).Put([]byte("after"), []byte("torn")) })
			if err != nil {
				t.Fatal(err)
			}
			want := dumpStore(t, c)
			p2 := crashCopy(t, p)
			c2 := openAt(t, p2, opt)
			checkDump(t, c2, want)
		})
	}
}

// holdCheckpoints holds bbolt's write lock, so that a checkpoint starts (its
// overlay frozen, a new log file begun) but cannot write the store file;
// the returned function lets it go (and is called at the end of the test
// if need be, before the store's Close).
func holdCheckpoints(t testing.TB, s *Store) (release func()) {
	t.Helper()
	btx, err := s.db.Begin(true)
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	release = func() { once.Do(func() { btx.Rollback() }) }
	t.Cleanup(release)
	return release
}

func hasFrozen(s *Store) bool {
	s.w.omu.Lock()
	defer s.w.omu.Unlock()
	return s.w.frozen != nil
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// waitCheckpointed waits until no checkpoint is under way: the last one has
// committed, its log file is gone and its overlay dropped.
func waitCheckpointed(t testing.TB, s *Store) {
	t.Helper()
	waitFor(t, "the checkpoint", func() bool { return !hasFrozen(s) })
}

// startCheckpoint writes a round of ckptBytes, which makes the writer start
// a checkpoint after it, and waits until it has started.
func startCheckpoint(t testing.TB, s *Store) {
	t.Helper()
	waitCheckpointed(t, s)
	before := s.w.checkpoints.Load()
	err := s.w.do(func(tx *txn) error {
		return tx.Bucket(bucketMeta).Put([]byte("test-pad"), make([]byte, ckptBytes))
	})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a checkpoint to start", func() bool { return hasFrozen(s) || s.w.checkpoints.Load() > before })
}

// TestWALSkipsCheckpointedRounds: a log file whose rounds bbolt holds
// already, left beside the store file (as by a crash between a
// checkpoint's commit and the file's removal), is not applied again: its
// puts would bring back deleted keys and its deletes remove newer ones.
func TestWALSkipsCheckpointedRounds(t *testing.T) {
	mo := func(k string) []byte { return []byte(k) }
	put := func(kv ...string) func(*txn) error {
		return func(tx *txn) error {
			for i := 0; i < len(kv); i += 2 {
				if err := tx.Bucket(bucketMOParts).Put(mo(kv[i]), mo(kv[i+1])); err != nil {
					return err
				}
			}
			return nil
		}
	}
	del := func(ks ...string) func(*txn) error {
		return func(tx *txn) error {
			for _, k := range ks {
				if err := tx.Bucket(bucketMOParts).Delete(mo(k)); err != nil {
					return err
				}
			}
			return nil
		}
	}
	do := func(t *testing.T, s *Store, fns ...func(*txn) error) {
		t.Helper()
		for _, fn := range fns {
			if err := s.w.do(fn); err != nil {
				t.Fatal(err)
			}
		}
	}
	// stale writes rounds 1 and 2, whose file is kept; then rounds that
	// undo them.
	stale := func(t *testing.T, s *Store) *Record {
		r := record("+491511111111", 1)
		mustAdd(t, s, r)
		do(t, s, put("x", "x1", "y", "y1", "z", "z1"), del("y"))
		return r
	}
	later := func(t *testing.T, s *Store, r *Record) {
		do(t, s, del("x"), put("y", "y3", "z", "z3"))
		if _, err := s.Cancel(r.ID, "gone"); err != nil {
			t.Fatal(err)
		}
	}
	check := func(t *testing.T, s *Store, r *Record) {
		t.Helper()
		err := s.w.view(func(tx *txn) error {
			b := tx.Bucket(bucketMOParts)
			if v := b.Get(mo("x")); v != nil {
				t.Errorf("deleted key x is back: %q", v)
			}
			if v := b.Get(mo("y")); string(v) != "y3" {
				t.Errorf("y is %q, want y3", v)
			}
			if v := b.Get(mo("z")); string(v) != "z3" {
				t.Errorf("z is %q, want z3", v)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if got := mustGet(t, s, r.ID); got.State != Cancelled {
			t.Errorf("record is %s, want cancelled", got.State)
		}
		due, _, err := s.Due(t0.Add(time.Hour), 0)
		if err != nil || len(due) != 0 {
			t.Errorf("due: %v, %v", ids(due), err)
		}
		if counts, err := s.Counts(); err != nil || !maps.Equal(counts, map[State]int{Cancelled: 1}) {
			t.Errorf("counts %v, %v", counts, err)
		}
	}

	// checkpointFile checkpoints log file gen and returns what it held.
	checkpointFile := func(t *testing.T, s *Store, path string, gen uint64) []byte {
		release := holdCheckpoints(t, s)
		startCheckpoint(t, s)
		old := readFile(t, logName(path, gen)) // the rounds above and the pad round
		release()
		waitCheckpointed(t, s)
		if _, err := os.Stat(logName(path, gen)); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("log %d after its checkpoint: %v", gen, err)
		}
		return old
	}
	cases := []struct {
		name string
		// run returns the store file to open, with the stale file beside
		// it, and the content it must show.
		run func(t *testing.T, opt Options) (path string, want map[string]string, r *Record)
	}{
		{"after a clean close, same generation", func(t *testing.T, opt Options) (string, map[string]string, *Record) {
			path := filepath.Join(t.TempDir(), "store.db")
			s := openAt(t, path, opt)
			r := stale(t, s)
			gen := logGens(t, path)[0]
			old := readFile(t, logName(path, gen))
			later(t, s, r)
			want := dumpStore(t, s)
			mustClose(t, s)
			checkNoLogs(t, path)
			writeFile(t, logName(path, gen), old)
			return path, want, r
		}},
		{"after a clean close, newer generation", func(t *testing.T, opt Options) (string, map[string]string, *Record) {
			path := filepath.Join(t.TempDir(), "store.db")
			s := openAt(t, path, opt)
			r := stale(t, s)
			gen := logGens(t, path)[0]
			old := readFile(t, logName(path, gen))
			later(t, s, r)
			want := dumpStore(t, s)
			mustClose(t, s)
			writeFile(t, logName(path, gen+5), old)
			return path, want, r
		}},
		{"crash after a checkpoint, newer rounds in the next file", func(t *testing.T, opt Options) (string, map[string]string, *Record) {
			path := filepath.Join(t.TempDir(), "store.db")
			s := openAt(t, path, opt)
			r := stale(t, s)
			gen := logGens(t, path)[0]
			old := checkpointFile(t, s, path, gen)
			later(t, s, r)
			want := dumpStore(t, s)
			cf := snapshotFiles(t, path)
			cf.logs[gen] = old
			return cf.restore(t), want, r
		}},
		{"crash after a checkpoint, one file across it", func(t *testing.T, opt Options) (string, map[string]string, *Record) {
			path := filepath.Join(t.TempDir(), "store.db")
			s := openAt(t, path, opt)
			r := stale(t, s)
			gen := logGens(t, path)[0]
			old := checkpointFile(t, s, path, gen)
			later(t, s, r)
			want := dumpStore(t, s)
			cf := snapshotFiles(t, path)
			if len(cf.logs) != 1 {
				t.Fatalf("log generations %v", slices.Collect(maps.Keys(cf.logs)))
			}
			// The checkpointed rounds, then the newer ones, in one file.
			g := cf.maxGen()
			cf.logs[g] = append(slices.Clone(old), cf.logs[g]...)
			mustParseLog(t, cf.logs[g])
			return cf.restore(t), want, r
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			setCheckpoints(t, 64<<10, 1<<40, time.Hour)
			opt := Options{Now: newClock().Now}
			path, want, r := tc.run(t, opt)
			old := logGens(t, path)
			c := openAt(t, path, opt)
			checkOnlyFreshLog(t, path, slices.Max(old))
			checkDump(t, c, want)
			check(t, c, r)
			mustClose(t, c)
			checkNoLogs(t, path)
			c = openAt(t, path, opt)
			check(t, c, r)
		})
	}
}

// TestWALReplaySeqs: replay applies rounds while each seq follows the one
// before (the first after bbolt's), across files in the order of their
// generations (numeric, not lexical); the next round the writer logs
// follows the last one applied. A gap in the seqs, or a damaged record
// before the last file, stops replay: Open fails, applies nothing and
// leaves the files as they were, rather than drop answered rounds.
func TestWALReplaySeqs(t *testing.T) {
	type file struct {
		gen  uint64
		seqs []uint64
		torn bool // a record cut short after them
	}
	cases := []struct {
		name    string
		files   []file
		want    []uint64 // seqs applied
		wantErr bool
	}{
		{name: "one file", files: []file{{1, []uint64{1, 2, 3}, false}}, want: []uint64{1, 2, 3}},
		{name: "two files", files: []file{{1, []uint64{1, 2}, false}, {2, []uint64{3, 4}, false}}, want: []uint64{1, 2, 3, 4}},
		{name: "generations 9 and 10", files: []file{{9, []uint64{1, 2}, false}, {10, []uint64{3, 4}, false}}, want: []uint64{1, 2, 3, 4}},
		{name: "empty file between", files: []file{{1, []uint64{1}, false}, {2, nil, false}, {3, []uint64{2}, false}}, want: []uint64{1, 2}},
		{name: "torn tail of the last file", files: []file{{1, []uint64{1, 2}, false}, {2, []uint64{3}, true}}, want: []uint64{1, 2, 3}},
		{name: "gap in a file", files: []file{{1, []uint64{1, 2, 4, 5}, false}}, wantErr: true},
		{name: "gap between files", files: []file{{1, []uint64{1, 2}, false}, {2, []uint64{4, 5}, false}}, wantErr: true},
		{name: "gap, then the missing round in a later file", files: []file{{1, []uint64{1, 2}, false}, {2, []uint64{4}, false}, {3, []uint64{3}, false}}, wantErr: true},
		{name: "first round missing", files: []file{{1, []uint64{2, 3}, false}}, wantErr: true},
		{name: "torn record before the last file", files: []file{{1, []uint64{1, 2}, true}, {2, []uint64{3}, false}}, wantErr: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			noCheckpoints(t)
			opt := Options{Now: newClock().Now}
			path := filepath.Join(t.TempDir(), "store.db")
			mustClose(t, openAt(t, path, opt))
			if seq := rawGet(t, path, bucketMeta, keyWALSeq); binary.BigEndian.Uint64(seq) != 0 {
				t.Fatalf("wal_seq %x", seq)
			}
			logs := map[uint64][]byte{}
			for _, f := range tc.files {
				var data []byte
				for _, seq := range f.seqs {
					k := "k" + strconv.FormatUint(seq, 10)
					ops := []logOp{{bucket: "mo_parts", key: k, val: "v" + k}, {bucket: "mo_parts", key: "last", val: k}}
					if seq > 1 { // deleting what round 1 wrote
						ops = append(ops, logOp{del: true, bucket: "mo_parts", key: "first"})
					} else {
						ops = append(ops, logOp{bucket: "mo_parts", key: "first", val: "1"})
					}
					data = append(data, frame(seq, encodeOps(ops))...)
				}
				if f.torn {
					r := frame(99, encodeOps([]logOp{{bucket: "mo_parts", key: "torn", val: "x"}}))
					data = append(data, r[:len(r)-2]...)
				}
				writeFile(t, logName(path, f.gen), data)
				logs[f.gen] = data
			}
			writeFile(t, path+"-wal.notes", []byte("not a log")) // not ours: left alone
			writeFile(t, path+"-wal.07", []byte("not a log either"))
			maxGen := tc.files[len(tc.files)-1].gen

			if tc.wantErr {
				db := readFile(t, path)
				s, err := Open(path, opt)
				if err == nil {
					s.Close()
					t.Fatal("Open replayed a log that does not follow on")
				}
				t.Log(err)
				for g, data := range logs {
					if got, err := os.ReadFile(logName(path, g)); err != nil || !bytes.Equal(got, data) {
						t.Errorf("log %d changed by a failed Open: %v", g, err)
					}
				}
				if !bytes.Equal(readFile(t, path), db) {
					t.Error("store file changed by a failed Open")
				}
				return
			}
			c := openAt(t, path, opt)
			checkOnlyFreshLog(t, path, maxGen)
			for _, name := range []string{"-wal.notes", "-wal.07"} {
				if _, err := os.Stat(path + name); err != nil {
					t.Errorf("a file that is not a log: %v", err)
				}
			}
			want := map[string]string{}
			k := "k" + strconv.FormatUint(tc.want[len(tc.want)-1], 10)
			want["last"] = k
			if len(tc.want) == 1 {
				want["first"] = "1"
			}
			for _, seq := range tc.want {
				k := "k" + strconv.FormatUint(seq, 10)
				want[k] = "v" + k
			}
			parts, err := c.MOParts()
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]string{}
			for k, v := range parts {
				got[k] = string(v)
			}
			if !maps.Equal(got, want) {
				t.Errorf("replayed %v, want %v", got, want)
			}
			applied := uint64(len(tc.want))
			if seq := walSeq(t, c); seq != applied {
				t.Errorf("bbolt holds seq %d, want %d", seq, applied)
			}
			// The writer numbers its next round after the last applied.
			if err := c.AddMOPart(context.Background(), "next", []byte("x")); err != nil {
				t.Fatal(err)
			}
			gens := logGens(t, path)
			recs := mustParseLog(t, readFile(t, logName(path, gens[0])))
			if len(recs) != 1 || recs[0].seq != applied+1 {
				t.Errorf("next round: %+v, want seq %d", recs, applied+1)
			}
		})
	}
}

// TestWALDamagedRecordBeforeGoodOnes: a record of the last log file that
// fails its CRC but is followed by good records is no torn tail (the
// writer appends a round only once the one before is on disk): the rounds
// after it were answered. replay's comment says such a record is an error
// (Open fails and leaves the files alone, rather than drop acknowledged
// rounds), not the torn tail.
func TestWALDamagedRecordBeforeGoodOnes(t *testing.T) {
	cases := []struct {
		name string
		at   func(recs []logRec) int // the byte to flip
	}{
		{"first record", func(recs []logRec) int { return recs[0].off + walHeader + 2 }},
		{"middle record", func(recs []logRec) int { return recs[len(recs)/2].end - 1 }},
		{"crc of the one before the last", func(recs []logRec) int { return recs[len(recs)-2].off + 5 }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			noCheckpoints(t)
			opt := Options{Now: newClock().Now}
			s, path := openTemp(t, opt)
			for i := range 5 {
				mustAdd(t, s, record("+49151300000"+strconv.Itoa(i), 1))
			}
			cf := snapshotFiles(t, path)
			gen := cf.maxGen()
			recs := mustParseLog(t, cf.logs[gen])
			cf.logs[gen][tc.at(recs)] ^= 0x10
			p := cf.restore(t)
			damaged := slices.Clone(cf.logs[gen])
			c, err := Open(p, opt)
			if err == nil {
				n, _ := c.Counts()
				c.Close()
				t.Fatalf("Open succeeded with %v records of 5 answered", n)
			}
			if got := readFile(t, logName(p, gen)); !bytes.Equal(got, damaged) {
				t.Error("log changed by a failed Open")
			}
		})
	}
}

// TestWALReplayErrorKeepsLog: a record whose CRC is right but whose
// content the store cannot apply (an unknown bucket, a malformed
// operation) fails Open, and leaves the log and the store file as they
// were for someone to look at.
func TestWALReplayErrorKeepsLog(t *testing.T) {
	cases := []struct {
		name    string
		payload []byte
	}{
		{"unknown bucket", encodeOps([]logOp{{bucket: "nosuch", key: "k", val: "v"}})},
		{"unknown operation", []byte{9, 8, 'm', 'o', '_', 'p', 'a', 'r', 't', 's', 1, 'k'}},
		{"field longer than the payload", []byte{1, 8, 'm', 'o'}},
		{"put without its value", []byte{1, 8, 'm', 'o', '_', 'p', 'a', 'r', 't', 's', 1, 'k'}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			noCheckpoints(t)
			opt := Options{Now: newClock().Now}
			path := filepath.Join(t.TempDir(), "store.db")
			mustClose(t, openAt(t, path, opt))
			good := frame(1, encodeOps([]logOp{{bucket: "mo_parts", key: "good", val: "1"}}))
			data := append(slices.Clone(good), frame(2, tc.payload)...)
			writeFile(t, logName(path, 1), data)
			if s, err := Open(path, opt); err == nil {
				s.Close()
				t.Fatal("Open applied a log it cannot read")
			}
			if !bytes.Equal(readFile(t, logName(path, 1)), data) {
				t.Error("log changed by a failed Open")
			}
			if rawGet(t, path, bucketMOParts, []byte("good")) != nil {
				t.Error("a failed Open left part of the log in bbolt")
			}
			// Without the bad record, the log replays.
			writeFile(t, logName(path, 1), good)
			c := openAt(t, path, opt)
			if parts, err := c.MOParts(); err != nil || string(parts["good"]) != "1" {
				t.Errorf("MO parts %q, %v", parts, err)
			}
		})
	}
}

// TestWALCheckpointsUnderLoad: many writers with checkpoints every few
// KiB (and writes held back when the log outgrows the checkpoint): each
// writer reads its own writes at once, readers never see half a round, a
// crash in the middle keeps every write answered before it, and after
// Close everything is in bbolt alone.
func TestWALCheckpointsUnderLoad(t *testing.T) {
	setCheckpoints(t, 4<<10, 16<<10, time.Hour)
	clk := newClock()
	opt := Options{Now: clk.Now}
	path := filepath.Join(t.TempDir(), "store.db")
	s := openAt(t, path, opt)

	const workers, perWorker, iters = 8, 3, 24
	type worker struct {
		ids      [perWorker]string
		added    atomic.Bool
		attempts [perWorker]atomic.Int64 // answered
		deleted  atomic.Int64            // keys w<g>-<i>, i <= deleted, deleted and answered
		parked   atomic.Int64
	}
	ws := make([]*worker, workers)
	for g := range ws {
		ws[g] = &worker{}
	}
	var acked atomic.Int64
	var wg sync.WaitGroup
	for g, w := range ws {
		wg.Go(func() {
			var recs []*Record
			for j := range perWorker {
				recs = append(recs, record(fmt.Sprintf("+4915%03d%05d", g, j), 1+j%2))
			}
			if err := s.Add(context.Background(), recs); err != nil {
				t.Error(err)
				return
			}
			for j, r := range recs {
				w.ids[j] = r.ID
			}
			w.added.Store(true)
			key := func(i int) []byte { return fmt.Appendf(nil, "w%d-%d", g, i) }
			for i := 1; i <= iters; i++ {
				j := i % perWorker
				id := w.ids[j]
				want := w.attempts[j].Load() + 1
				r, err := s.Update(id, func(r *Record) error { r.Attempts++; r.LastError = strconv.Itoa(i); return nil })
				if err != nil {
					t.Error(err)
					return
				}
				if int64(r.Attempts) != want {
					t.Errorf("update %s: %d attempts, want %d", id, r.Attempts, want)
					return
				}
				w.attempts[j].Store(want)
				if got, err := s.Get(id); err != nil || int64(got.Attempts) != want || got.LastError != strconv.Itoa(i) {
					t.Errorf("%s read after its write: %v, %+v, want %d attempts", id, err, got, want)
					return
				}
				if err := s.w.do(func(tx *txn) error { return tx.Bucket(bucketMOParts).Put(key(i), key(i)) }); err != nil {
					t.Error(err)
					return
				}
				if err := s.w.do(func(tx *txn) error { return tx.Bucket(bucketMOParts).Delete(key(i - 1)) }); err != nil {
					t.Error(err)
					return
				}
				w.deleted.Store(int64(i - 1))
				err = s.w.view(func(tx *txn) error {
					b := tx.Bucket(bucketMOParts)
					if v := b.Get(key(i)); !bytes.Equal(v, key(i)) {
						t.Errorf("%s read after its put: %q", key(i), v)
					}
					if v := b.Get(key(i - 1)); v != nil {
						t.Errorf("%s read after its delete: %q", key(i-1), v)
					}
					return nil
				})
				if err != nil {
					t.Error(err)
					return
				}
				if i%4 == 0 {
					due, _, err := s.Due(t0, 0)
					if err != nil || !slices.Contains(ids(due), id) {
						t.Errorf("%s not due after its update: %v", id, err)
						return
					}
					if _, m, err := s.ApplyReceipt(Receipt{SMSCID: fmt.Sprintf("P%d-%d", g, i), Stat: "DELIVRD"}); err != nil || m {
						t.Errorf("park: %v, matched %v", err, m)
						return
					}
					w.parked.Add(1)
				}
				acked.Add(1)
			}
		})
	}

	// A reader checks that every view shows whole rounds: one record
	// counted per record stored, one due entry per (Queued) record.
	done := make(chan struct{})
	var views atomic.Int64
	var rg sync.WaitGroup
	rg.Go(func() {
		for {
			select {
			case <-done:
				return
			default:
			}
			err := s.w.view(func(tx *txn) error {
				n := tx.Bucket(bucketRecords).KeyN()
				var sum uint64
				tx.Bucket(bucketCounts).ForEach(func(_, v []byte) error {
					sum += binary.BigEndian.Uint64(v)
					return nil
				})
				if due := tx.Bucket(bucketDue).KeyN(); uint64(n) != sum || due != n {
					return fmt.Errorf("%d records, counted %d, %d due", n, sum, due)
				}
				return nil
			})
			if err != nil {
				t.Error(err)
				return
			}
			views.Add(1)
		}
	})

	// A crash in the middle: with checkpoints held, copy the files; every
	// write answered by then must be in the copy.
	waitFor(t, "half the writes", func() bool { return acked.Load() >= workers*iters/2 || t.Failed() })
	release := holdCheckpoints(t, s)
	type snap struct {
		added    bool
		attempts [perWorker]int64
		deleted  int64
		parked   int64
	}
	snaps := make([]snap, workers)
	for g, w := range ws {
		snaps[g].added = w.added.Load()
		for j := range perWorker {
			snaps[g].attempts[j] = w.attempts[j].Load()
		}
		snaps[g].deleted = w.deleted.Load()
		snaps[g].parked = w.parked.Load()
	}
	cf := snapshotFiles(t, path)
	release()

	wg.Wait()
	close(done)
	rg.Wait()
	if t.Failed() {
		return
	}
	ckpts := s.w.checkpoints.Load()
	t.Logf("%d rounds, %d checkpoints, %d views; crash copy with log generations %v",
		s.w.rounds.Load(), ckpts, views.Load(), slices.Sorted(maps.Keys(cf.logs)))
	if ckpts < 5 {
		t.Errorf("only %d checkpoints: the test does not test them", ckpts)
	}

	check := func(t *testing.T, s *Store, live func(g int) bool, min func(g, j int) int64, minParked int64, deleted func(g int) int64, exact bool) {
		t.Helper()
		var parked int64
		for g, w := range ws {
			for j, id := range w.ids {
				if !live(g) {
					continue
				}
				r, err := s.Get(id)
				if err != nil {
					t.Errorf("worker %d record %d: %v", g, j, err)
					continue
				}
				if a := int64(r.Attempts); a < min(g, j) || (exact && a != min(g, j)) {
					t.Errorf("%s has %d attempts, want %d", id, a, min(g, j))
				}
			}
			parked += w.parked.Load()
			err := s.w.view(func(tx *txn) error {
				b := tx.Bucket(bucketMOParts)
				for i := int64(0); i <= deleted(g); i++ {
					if v := b.Get(fmt.Appendf(nil, "w%d-%d", g, i)); v != nil {
						t.Errorf("deleted key w%d-%d is back", g, i)
					}
				}
				if exact && b.KeyN() != workers {
					t.Errorf("%d MO keys, want %d", b.KeyN(), workers)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		n, err := s.Parked()
		if err != nil || int64(n) < minParked || (exact && int64(n) != parked) {
			t.Errorf("%d parked, %v; want %d", n, err, minParked)
		}
		counts, err := s.Counts()
		if err != nil {
			t.Fatal(err)
		}
		recs, err := s.List("", 0)
		if err != nil {
			t.Fatal(err)
		}
		if counts[Queued] != len(recs) || len(counts) != 1 {
			t.Errorf("counts %v for %d records", counts, len(recs))
		}
		due, _, err := s.Due(t0, 0)
		if err != nil || len(due) != len(recs) {
			t.Errorf("%d due of %d records: %v", len(due), len(recs), err)
		}
	}
	final := func(g, j int) int64 { return ws[g].attempts[j].Load() }
	all := func(int) bool { return true }
	var totalParked int64
	for _, w := range ws {
		totalParked += w.parked.Load()
	}
	check(t, s, all, final, totalParked, func(g int) int64 { return iters - 1 }, true)
	mustClose(t, s)
	checkNoLogs(t, path)
	s = openAt(t, path, opt)
	check(t, s, all, final, totalParked, func(g int) int64 { return iters - 1 }, true)

	t.Run("crash copy", func(t *testing.T) {
		p := cf.restore(t)
		c := openAt(t, p, opt)
		checkOnlyFreshLog(t, p, cf.maxGen())
		var minParked int64
		for _, sn := range snaps {
			minParked += sn.parked
		}
		check(t, c, func(g int) bool { return snaps[g].added }, func(g, j int) int64 { return snaps[g].attempts[j] }, minParked,
			func(g int) int64 { return snaps[g].deleted }, false)
	})
}

// --- The merge of layers (kv.go), against a model.

// keySet is the keys a differential test writes, and those it reads
// besides them: between them, before the first and after the last.
type keySet struct {
	keys, probes []string
	seekEvery    int // Seek from every nth key (probes: all); 0: no Seek
}

// fewKeys are prefixes of each other, and the smallest and largest bytes.
var fewKeys = keySet{
	keys:      []string{"\x00", "a", "a\x00", "aa", "ab", "b", "ba", "c", "m", "z", "\xff", "\xff\xff"},
	probes:    []string{"", "\x00\x00", "a\x00\x00", "a\x01", "aa\x00", "b\x00", "bb", "d", "y", "\xfe", "\xff\x00", "\xff\xff\xff"},
	seekEvery: 1,
}

// fewKeysNoSeek reads fewKeys without seeking (a cheaper check).
var fewKeysNoSeek = keySet{keys: fewKeys.keys, probes: fewKeys.probes}

// manyKeys are several times as many as an overlay iterator loads at once,
// so that runs of values and of tombstones cross its batches.
var manyKeys = func() keySet {
	ks := keySet{probes: []string{"", "j", "k", "k050\x00", "k1", "k2995", "l"}, seekEvery: 7}
	for i := range 300 {
		ks.keys = append(ks.keys, fmt.Sprintf("k%03d", i))
	}
	return ks
}()

// mergeBuckets are neighbours by id, so that a cursor that strays out of
// its bucket in an overlay shows.
var mergeBuckets = [][]byte{bucketOriginals, bucketInbound, bucketMOParts}

func randValue(rng *rand.Rand) string {
	switch rng.IntN(6) {
	case 0:
		return ""
	case 1:
		return strings.Repeat("v", 1+rng.IntN(200))
	}
	return "v" + strconv.Itoa(rng.IntN(1000))
}

// checkMerged compares bucket name of tx with model: Get, First/Next,
// Last/Prev, Seek then Next, Prev (a turn) and Prev again, KeyN.
func checkMerged(tx *txn, name []byte, model map[string]string, ks keySet) error {
	b := tx.Bucket(name)
	keys := slices.Sorted(maps.Keys(model))
	for _, k := range append(slices.Clone(ks.keys), ks.probes...) {
		v := b.Get([]byte(k))
		want, ok := model[k]
		if (v != nil) != ok || string(v) != want {
			return fmt.Errorf("%s: Get(%q) = %q, want %q (present %v)", name, k, v, want, ok)
		}
	}
	var fwd, bwd []string
	c := b.Cursor()
	for k, v := c.First(); k != nil && len(fwd) <= len(keys); k, v = c.Next() {
		if want, ok := model[string(k)]; !ok || string(v) != want {
			return fmt.Errorf("%s: forward: %q = %q, want %q (present %v)", name, k, v, want, ok)
		}
		fwd = append(fwd, string(k))
	}
	if k, _ := c.Next(); k != nil {
		return fmt.Errorf("%s: Next after the end gives %q", name, k)
	}
	c = b.Cursor()
	for k, v := c.Last(); k != nil && len(bwd) <= len(keys); k, v = c.Prev() {
		if want, ok := model[string(k)]; !ok || string(v) != want {
			return fmt.Errorf("%s: backward: %q = %q, want %q (present %v)", name, k, v, want, ok)
		}
		bwd = append(bwd, string(k))
	}
	slices.Reverse(bwd)
	if !slices.Equal(fwd, keys) || !slices.Equal(bwd, keys) {
		return fmt.Errorf("%s: forward %q, backward %q, want %q", name, fwd, bwd, keys)
	}
	at := func(i int) string {
		if i < 0 || i >= len(keys) {
			return "<nil>"
		}
		return keys[i]
	}
	str := func(k []byte) string {
		if k == nil {
			return "<nil>"
		}
		return string(k)
	}
	var seeks []string
	for i, k := range ks.keys {
		if ks.seekEvery > 0 && i%ks.seekEvery == 0 {
			seeks = append(seeks, k)
		}
	}
	if ks.seekEvery > 0 {
		seeks = append(seeks, ks.probes...)
	}
	for _, p := range seeks {
		i := sort.SearchStrings(keys, p)
		c := b.Cursor()
		k, v := c.Seek([]byte(p))
		if str(k) != at(i) || (k != nil && string(v) != model[string(k)]) {
			return fmt.Errorf("%s: Seek(%q) = %q, %q; want %q", name, p, k, v, at(i))
		}
		if k == nil {
			continue
		}
		k, _ = c.Next()
		if str(k) != at(i+1) {
			return fmt.Errorf("%s: Seek(%q), Next = %q; want %q", name, p, str(k), at(i+1))
		}
		if k != nil {
			if k, v := c.Prev(); str(k) != at(i) || string(v) != model[at(i)] {
				return fmt.Errorf("%s: Seek(%q), Next, Prev = %q, %q; want %q", name, p, str(k), v, at(i))
			}
		}
		c = b.Cursor()
		c.Seek([]byte(p))
		if k, v := c.Prev(); str(k) != at(i-1) || (k != nil && string(v) != model[at(i-1)]) {
			return fmt.Errorf("%s: Seek(%q), Prev = %q, %q; want %q", name, p, str(k), v, at(i-1))
		}
		if k, _ := c.Prev(); i >= 1 && str(k) != at(i-2) {
			return fmt.Errorf("%s: Seek(%q), Prev, Prev = %q; want %q", name, p, str(k), at(i-2))
		}
	}
	if n := b.KeyN(); n != len(keys) {
		return fmt.Errorf("%s: KeyN %d, want %d", name, n, len(keys))
	}
	return nil
}

type mergeModel map[string]map[string]string // bucket → key → value

func newMergeModel() mergeModel {
	m := mergeModel{}
	for _, b := range mergeBuckets {
		m[string(b)] = map[string]string{}
	}
	return m
}

func (m mergeModel) clone() mergeModel {
	c := mergeModel{}
	for b, kv := range m {
		c[b] = maps.Clone(kv)
	}
	return c
}

// check returns a function that compares a txn with the model.
func (m mergeModel) check(ks keySet) func(tx *txn) error {
	return func(tx *txn) error {
		for _, b := range mergeBuckets {
			if err := checkMerged(tx, b, m[string(b)], ks); err != nil {
				return err
			}
		}
		return nil
	}
}

// TestMergeLayersDirect builds random bbolt contents and two random
// overlays (values and tombstones, scattered or in runs, over keys present
// below or not; either overlay may be missing), and compares what a txn
// over them reads with the model.
func TestMergeLayersDirect(t *testing.T) {
	cases := []struct {
		name  string
		ks    keySet
		iters int
	}{
		{"few keys", fewKeys, 60},
		{"many keys", manyKeys, 8},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			db, err := bolt.Open(filepath.Join(t.TempDir(), "merge.db"), 0o600, &bolt.Options{NoSync: true})
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			ids := newBucketIDs(allBuckets)
			rng := rand.New(rand.NewPCG(7, uint64(len(tc.ks.keys))))
			keys := tc.ks.keys
			for iter := range tc.iters {
				model := newMergeModel()
				err := db.Update(func(btx *bolt.Tx) error {
					for _, name := range allBuckets {
						kv := model[string(name)]
						if kv == nil && btx.Bucket(name) != nil {
							continue
						}
						btx.DeleteBucket(name)
						b, err := btx.CreateBucket(name)
						if err != nil {
							return err
						}
						for _, k := range keys {
							if kv != nil && rng.IntN(3) == 0 {
								v := randValue(rng)
								kv[k] = v
								if err := b.Put([]byte(k), []byte(v)); err != nil {
									return err
								}
							}
						}
					}
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
				// frozen, then active over it.
				var layers [2]*overlay
				for l := 1; l >= 0; l-- {
					if rng.IntN(5) == 0 {
						continue
					}
					o := newOverlay(0)
					for _, name := range mergeBuckets {
						id := ids.byName[string(name)]
						set := func(k string, del bool) {
							full := string(append([]byte{id}, k...))
							if del {
								o.set(full, item{del: true})
								delete(model[string(name)], k)
								return
							}
							v := randValue(rng)
							o.set(full, item{v: []byte(v)})
							model[string(name)][k] = v
						}
						switch rng.IntN(3) {
						case 0: // scattered
							for _, k := range keys {
								if r := rng.IntN(4); r < 2 {
									set(k, r == 1)
								}
							}
						default: // a run of tombstones or of values, and a few others
							lo := rng.IntN(len(keys))
							hi := min(len(keys), lo+1+rng.IntN(160))
							del := rng.IntN(2) == 0
							for _, k := range keys[lo:hi] {
								set(k, del)
							}
							for range 1 + len(keys)/20 {
								set(keys[rng.IntN(len(keys))], rng.IntN(2) == 0)
							}
						}
					}
					layers[l] = o
				}
				btx, err := db.Begin(false)
				if err != nil {
					t.Fatal(err)
				}
				tx := &txn{ids: ids, layers: []*overlay{layers[0], layers[1]}, base: btx}
				err = model.check(tc.ks)(tx)
				btx.Rollback()
				if err != nil {
					t.Fatalf("iteration %d (active %v, frozen %v): %v", iter, layers[0] != nil, layers[1] != nil, err)
				}
			}
		})
	}
}

// TestMergeThroughCheckpoints: random puts and deletes on a few keys, bulk
// rounds of many keys, and deletes by cursor while iterating, in rounds of
// the writer, with checkpoints started, held and let go at random in
// between, so that keys live in the active overlay, the frozen one and
// bbolt in every combination. Every read, in the write transaction and in
// views, matches a map model, and so do bbolt alone after Close and the
// store reopened.
func TestMergeThroughCheckpoints(t *testing.T) {
	for _, seed := range []uint64{1, 2} {
		t.Run("seed "+strconv.FormatUint(seed, 10), func(t *testing.T) {
			setCheckpoints(t, 64<<10, 1<<40, time.Hour)
			path := filepath.Join(t.TempDir(), "store.db")
			s := openAt(t, path, Options{})
			rng := rand.New(rand.NewPCG(seed, 99))
			model := newMergeModel()
			var release func()
			var withFrozen int
			view := func(step int) {
				t.Helper()
				if hasFrozen(s) {
					withFrozen++
				}
				if err := s.w.view(model.check(fewKeys)); err != nil {
					t.Fatalf("step %d: view: %v", step, err)
				}
			}
			type op struct {
				bucket []byte
				key    string
				val    string
				del    bool
			}
			round := func(step int, ops []op) {
				t.Helper()
				next := model.clone()
				for _, o := range ops {
					if o.del {
						delete(next[string(o.bucket)], o.key)
					} else {
						next[string(o.bucket)][o.key] = o.val
					}
				}
				err := s.w.do(func(tx *txn) error {
					for _, o := range ops {
						b := tx.Bucket(o.bucket)
						var err error
						if o.del {
							err = b.Delete([]byte(o.key))
						} else {
							err = b.Put([]byte(o.key), []byte(o.val))
						}
						if err != nil {
							return err
						}
					}
					return next.check(fewKeysNoSeek)(tx)
				})
				if err != nil {
					t.Fatalf("step %d: %v", step, err)
				}
				model = next
			}
			for step := range 80 {
				switch r := rng.IntN(100); {
				case r < 50: // a round of puts and deletes
					var ops []op
					for range 1 + rng.IntN(5) {
						o := op{bucket: mergeBuckets[rng.IntN(len(mergeBuckets))], key: fewKeys.keys[rng.IntN(len(fewKeys.keys))]}
						if rng.IntN(3) == 0 {
							o.del = true
						} else {
							o.val = randValue(rng)
						}
						ops = append(ops, o)
					}
					round(step, ops)
				case r < 56: // many keys in one bucket, put or deleted
					b := mergeBuckets[rng.IntN(len(mergeBuckets))]
					del := rng.IntN(3) == 0
					var ops []op
					for i := range 70 + rng.IntN(60) {
						ops = append(ops, op{bucket: b, key: fmt.Sprintf("n%03d", i), val: randValue(rng), del: del})
					}
					round(step, ops)
				case r < 65: // delete by cursor while iterating, either way
					next := model.clone()
					name := mergeBuckets[rng.IntN(len(mergeBuckets))]
					kv := next[string(name)]
					doomed := map[string]bool{}
					for k := range kv {
						if rng.IntN(2) == 0 {
							doomed[k] = true
							delete(kv, k)
						}
					}
					want := slices.Sorted(maps.Keys(model[string(name)]))
					back := rng.IntN(2) == 0
					if back {
						slices.Reverse(want)
					}
					err := s.w.do(func(tx *txn) error {
						c := tx.Bucket(name).Cursor()
						first, move := c.First, c.Next
						if back {
							first, move = c.Last, c.Prev
						}
						var seen []string
						for k, _ := first(); k != nil && len(seen) <= len(want); k, _ = move() {
							seen = append(seen, string(k))
							if doomed[string(k)] {
								if err := c.Delete(); err != nil {
									return err
								}
							}
						}
						if !slices.Equal(seen, want) {
							return fmt.Errorf("deleting while iterating %s (backward %v) saw %q, want %q", name, back, seen, want)
						}
						return next.check(fewKeysNoSeek)(tx)
					})
					if err != nil {
						t.Fatalf("step %d: %v", step, err)
					}
					model = next
				case r < 72: // a checkpoint, not waited for
					if release == nil {
						startCheckpoint(t, s)
					}
				case r < 82: // a checkpoint held before it writes bbolt
					if release == nil {
						waitCheckpointed(t, s)
						release = holdCheckpoints(t, s)
						startCheckpoint(t, s)
					}
				case r < 95:
					if release != nil {
						view(step)
						release()
						release = nil
						waitCheckpointed(t, s)
					}
				default:
					if release == nil {
						waitCheckpointed(t, s)
					}
				}
				view(step)
			}
			if release != nil {
				release()
			}
			if withFrozen == 0 {
				t.Error("no read with a frozen overlay: the test does not test it")
			}
			t.Logf("%d rounds, %d checkpoints, %d views with a frozen overlay",
				s.w.rounds.Load(), s.w.checkpoints.Load(), withFrozen)
			mustClose(t, s)

			// bbolt alone holds the model.
			got := newMergeModel()
			db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
			if err != nil {
				t.Fatal(err)
			}
			err = db.View(func(btx *bolt.Tx) error {
				for _, name := range mergeBuckets {
					btx.Bucket(name).ForEach(func(k, v []byte) error {
						got[string(name)][string(k)] = string(v)
						return nil
					})
				}
				return nil
			})
			db.Close()
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, model) {
				t.Errorf("bbolt after Close:\n%q\nwant\n%q", got, model)
			}
			s = openAt(t, path, Options{})
			if err := s.w.view(model.check(fewKeys)); err != nil {
				t.Errorf("reopened: %v", err)
			}
		})
	}
}

// TestWALKeySizeLimit: a key bbolt would refuse is refused at the write,
// not at the checkpoint: logged and answered, it would fail every
// checkpoint, and every Open's replay. A key of bbolt's largest size goes
// through the log, replay and checkpoint.
func TestWALKeySizeLimit(t *testing.T) {
	noCheckpoints(t)
	opt := Options{}
	s, path := openTemp(t, opt)
	err := s.w.do(func(tx *txn) error {
		return tx.Bucket(bucketMOParts).Put(make([]byte, bolt.MaxKeySize+1), []byte("v"))
	})
	if err == nil {
		t.Fatal("a key too large for bbolt was accepted")
	}
	big := bytes.Repeat([]byte("k"), bolt.MaxKeySize)
	if err := s.w.do(func(tx *txn) error { return tx.Bucket(bucketMOParts).Put(big, []byte("v")) }); err != nil {
		t.Fatal(err)
	}
	if err := s.AddMOPart(context.Background(), "after", []byte("x")); err != nil {
		t.Fatal(err)
	}
	want := dumpStore(t, s)
	p := crashCopy(t, path)
	c := openAt(t, p, opt)
	checkDump(t, c, want)
	mustClose(t, c)
	mustClose(t, s)
	for _, f := range []string{path, p} {
		if v := rawGet(t, f, bucketMOParts, big); string(v) != "v" {
			t.Errorf("%s: largest key holds %q", f, v)
		}
	}
}

// TestWALReplayPathNotAsGiven: the log files of a store file whose path is
// not in clean form, relative, or whose directory has glob metacharacters
// in its name, are replayed like the others. (walFiles once found them
// with filepath.Glob(path+"-wal.*") and trimmed path+"-wal." off the
// names: such a store lost its answered writes in a crash.)
func TestWALReplayPathNotAsGiven(t *testing.T) {
	cases := []struct {
		name string
		path func(t *testing.T, dir string) string
	}{
		{"clean path", func(t *testing.T, dir string) string { return filepath.Join(dir, "store.db") }},
		{"dot in the path", func(t *testing.T, dir string) string { return dir + "/./store.db" }},
		{"double slash", func(t *testing.T, dir string) string { return dir + "//store.db" }},
		{"brackets in the directory", func(t *testing.T, dir string) string {
			d := filepath.Join(dir, "queue[1]")
			if err := os.Mkdir(d, 0o700); err != nil {
				t.Fatal(err)
			}
			return filepath.Join(d, "store.db")
		}},
		{"relative path", func(t *testing.T, dir string) string {
			t.Chdir(dir)
			return "./store.db"
		}},
		{"star in the directory", func(t *testing.T, dir string) string {
			d := filepath.Join(dir, "q*")
			if err := os.Mkdir(d, 0o700); err != nil {
				t.Fatal(err)
			}
			return filepath.Join(d, "store.db")
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			noCheckpoints(t)
			opt := Options{Now: newClock().Now}
			path := tc.path(t, t.TempDir())
			s := openAt(t, path, opt)
			r := record("+491512222222", 1)
			mustAdd(t, s, r)
			mustUpdate(t, s, r.ID, submit("Q"))
			cf := snapshotFiles(t, path)
			if len(cf.logs) != 1 {
				t.Fatalf("log generations %v", slices.Collect(maps.Keys(cf.logs)))
			}
			// The crash copy goes to a directory of the same kind.
			p := tc.path(t, t.TempDir())
			writeFile(t, p, cf.db)
			for g, data := range cf.logs {
				writeFile(t, logName(p, g), data)
			}
			c := openAt(t, p, opt)
			got, err := c.Get(r.ID)
			if err != nil {
				t.Fatalf("answered write lost in the crash: %v", err)
			}
			if got.State != Submitted {
				t.Errorf("record is %s, want submitted", got.State)
			}
		})
	}
}
