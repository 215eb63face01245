package store

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// benchRecord is a record shaped like the ones smtpd makes: a header block
// of about 600 bytes, a two-line text, one or two segments.
func benchRecord(i, segs int) *Record {
	r := &Record{
		From:      "alice@example.org",
		Rcpt:      fmt.Sprintf("+4915%08d@sms.localhost", i),
		To:        fmt.Sprintf("+4915%08d", i),
		MessageID: fmt.Sprintf("<%d.bench@example.org>", i),
		Subject:   "Your parcel is on its way",
		Header:    []byte(benchHeader),
		Text:      "Your parcel 123456 is on its way and will arrive today between 10:00 and 12:00.",
	}
	for range segs {
		r.Segments = append(r.Segments, Segment{Text: r.Text, Payload: []byte(strings.Repeat("x", 140))})
	}
	return r
}

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
	cpu0 := cpuTime()
	defer func() { b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(n), "cpu-µs/op") }()
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

// BenchmarkLifecycle is one message's whole life, 64 at a time: Add, mark
// submitting, record the SMSC id (submitted), a DELIVRD receipt (delivered):
// four durable writes in a row per message.
func BenchmarkLifecycle(b *testing.B) {
	s, _ := openTemp(b, Options{})
	before := commits(b, s)
	b.ResetTimer()
	d := runConcurrent(b, 64, b.N, func(i int) error {
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
