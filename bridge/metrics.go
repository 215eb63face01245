package bridge

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the dispatcher's Prometheus metrics.
type Metrics struct {
	segments      prometheus.Counter
	submitErrors  *prometheus.CounterVec
	submitLatency prometheus.Histogram
	throttles     prometheus.Counter
	receipts      *prometheus.CounterVec
	final         *prometheus.CounterVec
	reports       *prometheus.CounterVec
}

// NewMetrics creates the metrics and registers them with reg (nil: not
// registered, for tests and tools).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		segments: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "smsbridge_segments_submitted_total",
			Help: "SMS segments the SMSC accepted (submit_sm_resp with status 0).",
		}),
		submitErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "smsbridge_submit_errors_total",
			Help: "submit_sm that failed, by kind: permanent (the record fails), temporary (retried), throttled (route paused).",
		}, []string{"kind"}),
		submitLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "smsbridge_submit_seconds",
			Help:    "Time from sending submit_sm to its response, successful or not.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}),
		throttles: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "smsbridge_throttles_total",
			Help: "Times the SMSC answered ESME_RTHROTTLED or ESME_RMSGQFUL and the route paused.",
		}),
		receipts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "smsbridge_receipts_total",
			Help: "Delivery receipts received, by stat (DELIVRD, UNDELIV…); matched=false when parked for an id not yet known.",
		}, []string{"stat", "matched"}),
		final: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "smsbridge_records_final_total",
			Help: "Records that reached a final state, by state.",
		}, []string{"state"}),
		reports: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "smsbridge_reports_total",
			Help: "Report mails, by result: sent, refused (permanent error), failed (temporary, retried), skipped (none due).",
		}, []string{"result"}),
	}
	if reg != nil {
		reg.MustRegister(m.segments, m.submitErrors, m.submitLatency, m.throttles, m.receipts, m.final, m.reports)
	}
	return m
}
