package admin

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/smsbridge/smsbridge/store"
)

// queueCollector reads the queue at scrape time: records by state come
// from the store's counts, which it keeps in its own transactions.
type queueCollector struct {
	q        Queue
	routes   func() []RouteStatus
	states   *prometheus.Desc
	oldest   *prometheus.Desc
	bound    *prometheus.Desc
	binds    *prometheus.Desc
	window   *prometheus.Desc
	counters map[string]*prometheus.Desc
	now      func() time.Time
}

// NewCollector returns the metrics that describe the queue and the routes
// as they are now; register it with the registry /metrics serves.
func NewCollector(q Queue, routes func() []RouteStatus) prometheus.Collector {
	if routes == nil {
		routes = func() []RouteStatus { return nil }
	}
	return &queueCollector{
		q: q, routes: routes,
		states: prometheus.NewDesc("smsbridge_records",
			"Records in the store, by state (queued, submitting, submitted, delivered, failed, expired, cancelled).",
			[]string{"state"}, nil),
		bound: prometheus.NewDesc("smsbridge_route_bound",
			"1 when the route has at least one bound SMPP session, else 0.", []string{"route"}, nil),
		binds: prometheus.NewDesc("smsbridge_route_binds",
			"SMPP sessions of the route bound now.", []string{"route"}, nil),
		window: prometheus.NewDesc("smsbridge_route_window_in_use",
			"submit_sm waiting for their response on the route.", []string{"route"}, nil),
		oldest: prometheus.NewDesc("smsbridge_queue_oldest_seconds",
			"Age of the queued record that is due first (0 when none is queued).", nil, nil),
		counters: map[string]*prometheus.Desc{
			"submitted": prometheus.NewDesc("smsbridge_route_submitted_total", "submit_sm accepted by the route's SMSC.", []string{"route"}, nil),
			"throttled": prometheus.NewDesc("smsbridge_route_throttled_total", "submit_sm answered ESME_RTHROTTLED by the route's SMSC.", []string{"route"}, nil),
			"in_doubt":  prometheus.NewDesc("smsbridge_route_in_doubt_total", "submit_sm with no response in time: the SMSC may have the message, a retry may duplicate it.", []string{"route"}, nil),
			"receipts":  prometheus.NewDesc("smsbridge_route_receipts_total", "Delivery receipts received on the route.", []string{"route"}, nil),
			"mo":        prometheus.NewDesc("smsbridge_route_mo_total", "Mobile-originated messages (parts) received on the route.", []string{"route"}, nil),
		},
		now: time.Now,
	}
}

func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.states
	ch <- c.oldest
	ch <- c.bound
	ch <- c.binds
	ch <- c.window
	for _, d := range c.counters {
		ch <- d
	}
}

func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	if counts, err := c.q.Counts(); err == nil {
		for _, st := range store.States {
			ch <- prometheus.MustNewConstMetric(c.states, prometheus.GaugeValue, float64(counts[st]), string(st))
		}
	}
	now := c.now()
	age := 0.0
	if recs, _, err := c.q.Due(now.Add(100*365*24*time.Hour), 1); err == nil && len(recs) == 1 {
		age = now.Sub(recs[0].Created).Seconds()
	}
	ch <- prometheus.MustNewConstMetric(c.oldest, prometheus.GaugeValue, age)
	for _, r := range c.routes() {
		up := 0.0
		if r.Bound {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(c.bound, prometheus.GaugeValue, up, r.Name)
		ch <- prometheus.MustNewConstMetric(c.binds, prometheus.GaugeValue, float64(r.Binds), r.Name)
		ch <- prometheus.MustNewConstMetric(c.window, prometheus.GaugeValue, float64(r.WindowInUse), r.Name)
		for key, v := range map[string]uint64{"submitted": r.Submitted, "throttled": r.Throttled,
			"in_doubt": r.InDoubt, "receipts": r.Receipts, "mo": r.MO} {
			ch <- prometheus.MustNewConstMetric(c.counters[key], prometheus.CounterValue, float64(v), r.Name)
		}
	}
}
