package bridge

import (
	"cmp"
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/smsbridge/smsbridge/convert"
	"github.com/smsbridge/smsbridge/smppout"
)

// Route is one way to the phones: an SMPP client and the numbers it serves.
type Route struct {
	Name string
	// SMSCID names the SMSC account in the store's message ids (see
	// smscKey and IDScope); empty means Name.
	SMSCID string
	// Prefixes are the E.164 prefixes it serves ("+49", "+4915"); none, or
	// "+", serves every number.
	Prefixes []string
	// Priority orders routes that match a number equally well: lower first.
	Priority int
	// Source, if set, is the sender id of this route's SMS unless the
	// record has its own (per user).
	Source string
	// GSMPacked sends GSM 7-bit text packed eight septets to seven octets
	// (TS 23.038 §6.1.2.1.1), as some SMSCs want, instead of one septet per
	// octet; the data_coding to go with it is the SMPP client's.
	GSMPacked bool
	// Encoding, if set, is how this route's SMSC wants texts encoded
	// (concatenation method, national shift tables), when that differs
	// between routes: a record not yet sent in part is encoded again for
	// the route that takes it.
	Encoding *convert.Options
	SMSC     SMSC
}

// route is a Route and its pause: when the SMSC throttles or the route
// answers a route-level error, it rests and others take its traffic.
type route struct {
	Route
	mu         sync.Mutex
	pauseUntil time.Time
	throttles  int // route-level errors in a row
}

// match is how well r serves number: the length of its longest matching
// prefix, or -1.
func (r *route) match(number string) int {
	if len(r.Prefixes) == 0 {
		return 0
	}
	best := -1
	for _, p := range r.Prefixes {
		if p == "+" || p == "" {
			best = max(best, 0)
		} else if strings.HasPrefix(number, p) {
			best = max(best, len(p))
		}
	}
	return best
}

func (r *route) pausedUntil() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.pauseUntil
}

// pause rests the route, doubling the rest while route-level errors go on,
// and returns when it may be used again.
func (r *route) pause(now time.Time, minD, maxD time.Duration) time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.throttles++
	d := minD
	for i := 1; i < r.throttles && d < maxD; i++ {
		d *= 2
	}
	if until := now.Add(min(d, maxD)); until.After(r.pauseUntil) {
		r.pauseUntil = until
	}
	return r.pauseUntil
}

func (r *route) healthy() {
	r.mu.Lock()
	r.throttles = 0
	r.mu.Unlock()
}

// usable reports whether r can take a submit now.
func (r *route) usable(now time.Time) bool {
	return r.SMSC.Bound() && !now.Before(r.pausedUntil())
}

// routesFor returns the routes serving number, best first: the longest
// matching prefix, then the lowest priority, then the order configured.
func (b *Bridge) routesFor(number string) []*route {
	var rs []*route
	for _, r := range b.routeList() {
		if r.match(number) >= 0 {
			rs = append(rs, r)
		}
	}
	slices.SortStableFunc(rs, func(x, y *route) int {
		if c := cmp.Compare(y.match(number), x.match(number)); c != 0 {
			return c
		}
		return cmp.Compare(x.Priority, y.Priority)
	})
	return rs
}

// pick returns the best usable route for number (failover: a better one
// that is down or resting is passed over, and takes its traffic back once
// it is usable again), or nil and when a resting one resumes (zero if none
// serves the number or all are unbound).
func (b *Bridge) pick(number string) (*route, time.Time) {
	now := b.cfg.Now()
	var resume time.Time
	for _, r := range b.routesFor(number) {
		if r.usable(now) {
			return r, time.Time{}
		}
		if u := r.pausedUntil(); r.SMSC.Bound() && (resume.IsZero() || u.Before(resume)) {
			resume = u
		}
	}
	return nil, resume
}

// anyBound reports whether some route is bound.
func (b *Bridge) anyBound() bool {
	for _, r := range b.routeList() {
		if r.SMSC.Bound() {
			return true
		}
	}
	return false
}

// smscKey is how a route's message id is stored: ids are unique only per
// SMSC, so the route's SMSCID (its name by default) comes first.
func smscKey(smscID, id string) string { return smscID + ":" + id }

// IDScope is the first part of the route's SMSC id keys: SMSCID, or Name
// without one. Its ReceiptHandler and LateHandler are made with it.
func (r Route) IDScope() string { return cmp.Or(r.SMSCID, r.Name) }

// ReceiptHandler returns the smppout.Handler of the route whose SMSCID (or,
// without one, whose name) is route.
func (b *Bridge) ReceiptHandler(route string) smppout.Handler {
	return func(ctx context.Context, r smppout.Receipt) error {
		r.MessageID = smscKey(route, r.MessageID)
		return b.HandleReceipt(ctx, r)
	}
}

func (b *Bridge) routeList() []*route {
	b.routesMu.RLock()
	defer b.routesMu.RUnlock()
	return b.routes
}

// SetRoutes replaces the routes (a reload). A route kept with the same
// name and SMSC client keeps its rest; submits in flight finish on the
// route they started on.
func (b *Bridge) SetRoutes(routes []Route) {
	b.routesMu.Lock()
	defer b.routesMu.Unlock()
	old := map[string]*route{}
	for _, r := range b.routes {
		old[r.Name] = r
	}
	next := make([]*route, 0, len(routes))
	for _, r := range routes {
		if o := old[r.Name]; o != nil && o.SMSC == r.SMSC {
			o.mu.Lock()
			n := &route{Route: r, pauseUntil: o.pauseUntil, throttles: o.throttles}
			o.mu.Unlock()
			next = append(next, n)
			continue
		}
		next = append(next, &route{Route: r})
	}
	b.routes = next
}
