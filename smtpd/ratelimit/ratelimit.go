// Package ratelimit counts SMS messages and segments per key (a user, a
// client address) in fixed minute, hour and day windows, and refuses what
// would go over a limit.
//
// Windows are aligned to the clock (UTC): a minute window starts at :00
// seconds, a day window at 00:00 UTC. A burst may therefore reach twice a
// per-minute limit across a window boundary; the daily quota is exact.
package ratelimit

import (
	"fmt"
	"sync"
	"time"
)

// Limits are the most SMS messages (one per recipient of a mail) and
// segments that a key may send per window. Zero means no limit.
type Limits struct {
	MessagesPerMinute, MessagesPerHour, MessagesPerDay int
	SegmentsPerMinute, SegmentsPerHour, SegmentsPerDay int
}

// IsZero reports that no limit is set.
func (l Limits) IsZero() bool { return l == Limits{} }

// Or returns l with its unset fields taken from d.
func (l Limits) Or(d Limits) Limits {
	or := func(a, b int) int {
		if a != 0 {
			return a
		}
		return b
	}
	return Limits{
		MessagesPerMinute: or(l.MessagesPerMinute, d.MessagesPerMinute),
		MessagesPerHour:   or(l.MessagesPerHour, d.MessagesPerHour),
		MessagesPerDay:    or(l.MessagesPerDay, d.MessagesPerDay),
		SegmentsPerMinute: or(l.SegmentsPerMinute, d.SegmentsPerMinute),
		SegmentsPerHour:   or(l.SegmentsPerHour, d.SegmentsPerHour),
		SegmentsPerDay:    or(l.SegmentsPerDay, d.SegmentsPerDay),
	}
}

// Window is a counting period.
type Window int

const (
	Minute Window = iota
	Hour
	Day
	nWindows
)

func (w Window) String() string { return [...]string{"minute", "hour", "day"}[w] }

func (w Window) start(t time.Time) time.Time {
	t = t.UTC()
	switch w {
	case Minute:
		return t.Truncate(time.Minute)
	case Hour:
		return t.Truncate(time.Hour)
	}
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
}

func (w Window) length() time.Duration {
	return [...]time.Duration{time.Minute, time.Hour, 24 * time.Hour}[w]
}

func (l Limits) limit(w Window, segments bool) int {
	if segments {
		return [...]int{l.SegmentsPerMinute, l.SegmentsPerHour, l.SegmentsPerDay}[w]
	}
	return [...]int{l.MessagesPerMinute, l.MessagesPerHour, l.MessagesPerDay}[w]
}

// Claim is what one mail would use under one key.
type Claim struct {
	Key      string // "user:alice", "ip:192.0.2.1"
	Who      string // for the reply text: "user alice", "your address 192.0.2.1"
	Limits   Limits
	Messages int
	Segments int
}

// Exceeded is the error for a claim over a limit.
type Exceeded struct {
	Who      string
	Window   Window
	What     string // "SMS messages" or "SMS segments"
	Limit    int
	Used     int       // already used in the window
	Claimed  int       // what the mail needs
	Reset    time.Time // when the window ends
	TooLarge bool      // the claim alone is over the limit: retrying cannot help
}

func (e *Exceeded) Error() string {
	return fmt.Sprintf("ratelimit: %s over %d %s per %s", e.Who, e.Limit, e.What, e.Window)
}

// Permanent reports that retrying within the day cannot help: a daily quota
// is used up, or the mail alone is over a limit.
func (e *Exceeded) Permanent() bool { return e.TooLarge || e.Window == Day }

type counter struct {
	start [nWindows]time.Time
	msgs  [nWindows]int
	segs  [nWindows]int
}

// roll starts new windows that have begun since the last use.
func (c *counter) roll(now time.Time) {
	for w := Minute; w < nWindows; w++ {
		if s := w.start(now); !s.Equal(c.start[w]) {
			c.start[w], c.msgs[w], c.segs[w] = s, 0, 0
		}
	}
}

// Limiter holds the counters. The zero value is not usable: use New.
type Limiter struct {
	now       func() time.Time
	mu        sync.Mutex
	counters  map[string]*counter
	lastSweep time.Time
}

// New returns a limiter reading time from now (time.Now if nil).
func New(now func() time.Time) *Limiter {
	if now == nil {
		now = time.Now
	}
	return &Limiter{now: now, counters: make(map[string]*counter)}
}

// Check reports the first limit that the claims would exceed, without
// taking them. Daily quotas are checked before rates, so that the reply
// says the permanent reason when both apply.
func (l *Limiter) Check(claims ...Claim) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.check(l.now(), claims)
}

// Take takes all claims, or none and returns the *Exceeded of the first
// that does not fit. undo gives them back (for a mail that was then not
// queued) if their windows are still current.
func (l *Limiter) Take(claims ...Claim) (undo func(), err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if err := l.check(now, claims); err != nil {
		return func() {}, err
	}
	type taken struct {
		c     *counter
		start [nWindows]time.Time
		m, s  int
	}
	var done []taken
	for _, cl := range claims {
		if cl.Limits.IsZero() {
			continue
		}
		c := l.counter(cl.Key, now)
		for w := Minute; w < nWindows; w++ {
			c.msgs[w] += cl.Messages
			c.segs[w] += cl.Segments
		}
		done = append(done, taken{c, c.start, cl.Messages, cl.Segments})
	}
	return func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		for _, t := range done {
			for w := Minute; w < nWindows; w++ {
				if t.c.start[w].Equal(t.start[w]) {
					t.c.msgs[w] -= t.m
					t.c.segs[w] -= t.s
				}
			}
		}
	}, nil
}

func (l *Limiter) check(now time.Time, claims []Claim) error {
	for _, w := range []Window{Day, Hour, Minute} {
		for _, cl := range claims {
			if cl.Limits.IsZero() {
				continue
			}
			c := l.counter(cl.Key, now)
			for _, segments := range []bool{false, true} {
				limit := cl.Limits.limit(w, segments)
				used, claimed, what := c.msgs[w], cl.Messages, "SMS messages"
				if segments {
					used, claimed, what = c.segs[w], cl.Segments, "SMS segments"
				}
				if limit > 0 && used+claimed > limit {
					return &Exceeded{Who: cl.Who, Window: w, What: what, Limit: limit, Used: used,
						Claimed: claimed, Reset: c.start[w].Add(w.length()), TooLarge: claimed > limit}
				}
			}
		}
	}
	return nil
}

// counter returns the key's counter with its windows rolled to now, and
// now and then forgets counters whose day is over.
func (l *Limiter) counter(key string, now time.Time) *counter {
	if now.Sub(l.lastSweep) > time.Hour {
		day := Day.start(now)
		for k, c := range l.counters {
			if c.start[Day].Before(day) {
				delete(l.counters, k)
			}
		}
		l.lastSweep = now
	}
	c := l.counters[key]
	if c == nil {
		c = &counter{}
		l.counters[key] = c
	}
	c.roll(now)
	return c
}
