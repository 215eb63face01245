package admin

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/smsbridge/smsbridge/store"
)

// queueCollector reads the queue at scrape time: records by state come
// from the store's counts, which it keeps in its own transactions.
type queueCollector struct {
	q      Queue
	routes func() []RouteStatus
	states *prometheus.Desc
	bound  *prometheus.Desc
	window *prometheus.Desc
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
		window: prometheus.NewDesc("smsbridge_route_window_in_use",
			"submit_sm waiting for their response on the route.", []string{"route"}, nil),
	}
}

func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.states
	ch <- c.bound
	ch <- c.window
}

func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	if counts, err := c.q.Counts(); err == nil {
		for _, st := range store.States {
			ch <- prometheus.MustNewConstMetric(c.states, prometheus.GaugeValue, float64(counts[st]), string(st))
		}
	}
	for _, r := range c.routes() {
		up := 0.0
		if r.Bound {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(c.bound, prometheus.GaugeValue, up, r.Name)
		ch <- prometheus.MustNewConstMetric(c.window, prometheus.GaugeValue, float64(r.WindowInUse), r.Name)
	}
}
