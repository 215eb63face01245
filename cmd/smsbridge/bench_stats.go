package main

import (
	"bufio"
	"bytes"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// latencies collects samples in microseconds. Appends take a mutex and
// amortise to no allocation; the samples are sorted once, at the end.
// 400,000 samples (20 s at 20,000/s) are 1.6 MB.
type latencies struct {
	mu sync.Mutex
	us []uint32
}

func (l *latencies) add(d time.Duration) {
	us := d.Microseconds()
	if us < 0 {
		us = 0
	}
	if us > 1<<32-1 {
		us = 1<<32 - 1
	}
	l.mu.Lock()
	l.us = append(l.us, uint32(us))
	l.mu.Unlock()
}

// addUS appends one sample in microseconds.
func (l *latencies) addUS(us uint32) {
	l.mu.Lock()
	l.us = append(l.us, us)
	l.mu.Unlock()
}

// addBatch appends a session's local samples at once.
func (l *latencies) addBatch(us []uint32) {
	l.mu.Lock()
	l.us = append(l.us, us...)
	l.mu.Unlock()
}

// latencySummary is what the table shows of one latency, in milliseconds.
type latencySummary struct {
	N   int     `json:"n"`
	P50 float64 `json:"p50_ms"`
	P95 float64 `json:"p95_ms"`
	P99 float64 `json:"p99_ms"`
	Max float64 `json:"max_ms"`
}

func (l *latencies) summary() latencySummary {
	l.mu.Lock()
	s := slices.Clone(l.us)
	l.mu.Unlock()
	if len(s) == 0 {
		return latencySummary{}
	}
	slices.Sort(s)
	q := func(p float64) float64 {
		i := int(p*float64(len(s))+0.5) - 1
		i = max(0, min(i, len(s)-1))
		return float64(s[i]) / 1000
	}
	return latencySummary{N: len(s), P50: q(0.50), P95: q(0.95), P99: q(0.99), Max: float64(s[len(s)-1]) / 1000}
}

// mailTimes remembers, by token, when each mail's DATA was sent (ns since
// the run's start, 0: not measured), so that the simulator's and the
// sink's hooks can turn a token into a latency. Chunks are allocated as
// tokens grow; lookups take no lock.
type mailTimes struct {
	mu     sync.Mutex
	chunks [1 << 12]atomic.Pointer[[1 << 14]atomic.Int64] // 64 M mails
}

func (m *mailTimes) slot(token uint64, create bool) *atomic.Int64 {
	ci, i := token>>14, token&(1<<14-1)
	if ci >= uint64(len(m.chunks)) {
		return nil
	}
	c := m.chunks[ci].Load()
	if c == nil {
		if !create {
			return nil
		}
		m.mu.Lock()
		if c = m.chunks[ci].Load(); c == nil {
			c = new([1 << 14]atomic.Int64)
			m.chunks[ci].Store(c)
		}
		m.mu.Unlock()
	}
	return &c[i]
}

func (m *mailTimes) set(token uint64, at int64) {
	if s := m.slot(token, true); s != nil {
		s.Store(at)
	}
}

func (m *mailTimes) get(token uint64) int64 {
	if s := m.slot(token, false); s != nil {
		return s.Load()
	}
	return 0
}

// cpuTime is this process's user+system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// memStatus reads VmRSS and VmHWM (the peak RSS) from /proc/self/status,
// in bytes; zeros where there is no /proc.
func memStatus() (rss, hwm int64) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, 0
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Bytes()
		var dst *int64
		switch {
		case bytes.HasPrefix(line, []byte("VmRSS:")):
			dst = &rss
		case bytes.HasPrefix(line, []byte("VmHWM:")):
			dst = &hwm
		default:
			continue
		}
		f := bytes.Fields(line)
		if len(f) >= 2 {
			kb, _ := strconv.ParseInt(string(f[1]), 10, 64)
			*dst = kb << 10
		}
	}
	return rss, hwm
}

// timeSince is the time from at (ns on g's clock) to now.
func timeSince(g *generator, at int64) time.Duration { return time.Duration(g.now() - at) }
