package smppout

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/smsbridge/smsbridge/smppout/smsctest"
)

// BenchmarkSubmit measures submit_sm throughput against smsctest on
// loopback: enough concurrent callers to keep every window full, no
// receipts asked for. Reported as submits/s.
func BenchmarkSubmit(b *testing.B) {
	for _, tc := range []struct{ binds, window int }{{1, 100}, {10, 100}} {
		b.Run(fmt.Sprintf("binds=%d/window=%d", tc.binds, tc.window), func(b *testing.B) {
			benchSubmit(b, tc.binds, tc.window)
		})
	}
}

func benchSubmit(b *testing.B, binds, window int) {
	sim := smsctest.New(smsctest.Config{MaxMessages: 10000})
	if err := sim.Start("127.0.0.1:0"); err != nil {
		b.Fatal(err)
	}
	defer sim.Close()
	c := New(Config{Addr: sim.Addr(), Binds: binds, Window: window}, nil, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	for c.Stats().Bound < binds {
		time.Sleep(time.Millisecond)
	}
	s := Submit{Source: "Shop", Dest: "+4915112345", ShortMessage: []byte("hello")}
	procs := runtime.GOMAXPROCS(0)
	b.SetParallelism((binds*window + procs - 1) / procs) // callers ≥ window slots
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := c.Submit(ctx, s); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "submits/s")
}
