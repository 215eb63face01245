package smppout

import (
	"context"
	"sync"
	"time"
)

// bucket is a token bucket: rate tokens a second, at most burst saved up.
// Callers reserve tokens and then wait until their reservation is due, so
// the average rate holds even when timers fire late. The clock is
// injected: every method takes now.
type bucket struct {
	mu     sync.Mutex
	rate   float64 // tokens per second
	burst  float64
	tokens float64 // may go negative: tokens reserved ahead
	last   time.Time
}

// newBucket returns a full bucket of tps tokens a second. The burst is a
// tenth of a second of traffic (at least one token): an SMSC counting
// over any one-second window sees at most 1.1 × tps.
func newBucket(tps int, now time.Time) *bucket {
	burst := max(1, float64(tps)/10)
	return &bucket{rate: float64(tps), burst: burst, tokens: burst, last: now}
}

// reserve takes n tokens at now and returns how long to wait before
// using them (0 when they were there).
func (b *bucket) reserve(now time.Time, n int) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	if el := now.Sub(b.last); el > 0 {
		b.tokens = min(b.burst, b.tokens+el.Seconds()*b.rate)
		b.last = now
	}
	b.tokens -= float64(n)
	if b.tokens >= 0 {
		return 0
	}
	return time.Duration(-b.tokens / b.rate * float64(time.Second))
}

// cancel gives back n tokens reserved but not used.
func (b *bucket) cancel(n int) {
	b.mu.Lock()
	b.tokens = min(b.burst, b.tokens+float64(n))
	b.mu.Unlock()
}

// wait reserves n tokens and sleeps until they are due or ctx is done;
// on ctx done it gives them back. It reports whether it had to wait.
func (b *bucket) wait(ctx context.Context, now time.Time, n int) (waited bool, err error) {
	d := b.reserve(now, n)
	if d <= 0 {
		return false, nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true, nil
	case <-ctx.Done():
		b.cancel(n)
		return true, ctx.Err()
	}
}
