package store

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// benchRecord is a record shaped like the ones smtpd makes: a header block
// of about 600 bytes, a two-line text, one or two segments.
func benchRecord(i, segs int) *Record {
	// strconv, not fmt: the callers share the 2 cores with the writer, and
	// their cost is not the store's.
	n := strconv.Itoa(100000000 + i)[1:]
	r := &Record{
		From:      "alice@example.org",
		Rcpt:      "+4915" + n + "@sms.localhost",
		To:        "+4915" + n,
		MessageID: "<" + n + ".bench@example.org>",
		Subject:   "Your parcel is on its way",
		Header:    benchHeaderBytes,
		Text:      "Your parcel 123456 is on its way and will arrive today between 10:00 and 12:00.",
	}
	for range segs {
		r.Segments = append(r.Segments, Segment{Text: r.Text, Payload: benchPayload})
	}
	return r
}

var (
	benchHeaderBytes = []byte(benchHeader)
	benchPayload     = []byte(strings.Repeat("x", 140))
)

var benchHeader = "Received: from mail.example.org (mail.example.org [192.0.2.1])\r\n" +
	"\tby sms.localhost with ESMTPS id 4Xyz123 for <+491511234567@sms.localhost>;\r\n" +
	"\tTue, 03 Nov 2026 10:00:00 +0000\r\n" +
	"From: Alice <alice@example.org>\r\nTo: +491511234567@sms.localhost\r\n" +
	"Subject: Your parcel is on its way\r\nDate: Tue, 03 Nov 2026 10:00:00 +0000\r\n" +
	"Message-ID: <1.bench@example.org>\r\nMIME-Version: 1.0\r\n" +
	"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n" +
	"DKIM-Signature: v=1; a=rsa-sha256; d=example.org; s=s1; c=relaxed/relaxed;\r\n" +
	"\th=from:to:subject:date:message-id; bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=;\r\n" +
	"\tb=dzdVyOfAKCdLXdJOc9G2q8LoXSlEniSbav+yuU4zGeeruD00lszZVoG4ZHRNiYzR\r\n\r\n"

// runConcurrent runs op(i) for i in [0, n) on workers goroutines and returns
// the elapsed time.
func runConcurrent(b *testing.B, workers, n int, op func(i int) error) time.Duration {
	cpu0, w0 := cpuTime(), writeBytes()
	defer func() {
		b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(n), "cpu-µs/op")
		b.ReportMetric(float64(writeBytes()-w0)/float64(n), "disk-B/op")
	}()
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if err := op(i); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	return time.Since(start)
}

// writeBytes is what the process has caused to be written to disk so far
// (Linux's /proc/self/io; 0 elsewhere): unlike rates and CPU, it does not
// depend on what else the machine runs.
func writeBytes() int64 {
	data, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "write_bytes: "); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	return 0
}

// cpuTime is the process's user and system CPU time so far: on a shared
// machine, CPU per operation varies less than operations per second.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkEnqueue64 is the SMTP side: 64 sessions, each adding one record
// per Add, every Add durable before it returns.
func BenchmarkEnqueue64(b *testing.B) {
	s, _ := openTemp(b, Options{})
	before := commits(b, s)
	b.ResetTimer()
	d := runConcurrent(b, 64, b.N, func(i int) error {
		return s.Add(context.Background(), []*Record{benchRecord(i, 2)})
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/d.Seconds(), "records/s")
	b.ReportMetric(float64(commits(b, s)-before)/float64(b.N), "commits/op")
}

// BenchmarkLifecycle is one message's whole life, 64 or 256 at a time: Add,
// mark submitting, record the SMSC id (submitted), a DELIVRD receipt
// (delivered): four durable writes in a row per message. With 64 messages
// in flight each waits for four group commits in a row, and the rate is
// bound by their latency as much as by the store's work; 256 in flight (an
// SMSC window of a few hundred, receipts that come later) shows what the
// store itself can carry.
func BenchmarkLifecycle(b *testing.B) {
	for _, n := range []int{64, 256} {
		b.Run(fmt.Sprint(n), func(b *testing.B) { benchLifecycle(b, n) })
	}
}

func benchLifecycle(b *testing.B, workers int) {
	s, _ := openTemp(b, Options{})
	before := commits(b, s)
	b.ResetTimer()
	d := runConcurrent(b, workers, b.N, func(i int) error {
		r := benchRecord(i, 1)
		if err := s.Add(context.Background(), []*Record{r}); err != nil {
			return err
		}
		if _, err := s.Update(r.ID, func(r *Record) error {
			r.State = Submitting
			r.Events = append(r.Events, Event{At: time.Now(), What: "submitting"})
			return nil
		}); err != nil {
			return err
		}
		smscID := fmt.Sprint("M", i)
		if _, err := s.Update(r.ID, func(r *Record) error {
			r.Segments[0].SMSCID, r.Segments[0].State = smscID, SegSubmitted
			r.State = Submitted
			r.Events = append(r.Events, Event{At: time.Now(), What: "submitted", Detail: "seg 1/1 smsc_id=" + smscID})
			return nil
		}); err != nil {
			return err
		}
		rec, _, err := s.ApplyReceipt(Receipt{SMSCID: smscID, Stat: "DELIVRD", Err: "000"})
		if err != nil {
			return err
		}
		if rec.State != Delivered {
			return fmt.Errorf("state %s", rec.State)
		}
		return nil
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/d.Seconds(), "msgs/s")
	b.ReportMetric(float64(commits(b, s)-before)/float64(b.N), "commits/op")
}

// BenchmarkWriterCeiling is what the writer itself allows with 64
// callers, each call one durable round share: one put of a 1.5 KB record
// and three puts of small index entries (a record's Add does those plus
// the dedup and refs reads and writes), logged and checkpointed into bbolt.
// It bounds what the store can reach on a machine.
func BenchmarkWriterCeiling(b *testing.B) {
	path := filepath.Join(b.TempDir(), "ceiling.db")
	db, err := bolt.Open(path, 0o600, boltOptions())
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	names := [][]byte{bucketMeta, []byte("records"), []byte("a"), []byte("b"), []byte("c")}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, n := range names {
			if _, err := tx.CreateBucket(n); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	var w writer
	if err := w.start(db, path, newBucketIDs(names), 1, 0); err != nil {
		b.Fatal(err)
	}
	record, index := []byte(strings.Repeat("r", 1500)), []byte{}
	b.ResetTimer()
	d := runConcurrent(b, 64, b.N, func(i int) error {
		key := binary.BigEndian.AppendUint64(nil, uint64(i))
		return w.do(func(tx *txn) error {
			for j, n := range names[1:] {
				v := index
				if j == 0 {
					v = record
				}
				if err := tx.Bucket(n).Put(key, v); err != nil {
					return err
				}
			}
			return nil
		})
	})
	b.StopTimer()
	if err := w.stop(); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/d.Seconds(), "calls/s")
}
