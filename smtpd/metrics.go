package smtpd

import (
	"context"
	"errors"
	"io"
	"strconv"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/smsbridge/smsbridge/store"
)

// Metrics are the front door's Prometheus metrics.
type Metrics struct {
	sessions *prometheus.CounterVec
	replies  *prometheus.CounterVec
	mails    prometheus.Counter
	records  prometheus.Counter
	commit   prometheus.Histogram
}

// NewMetrics creates the metrics and registers them with reg (nil: not
// registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		sessions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "smsbridge_smtp_sessions_total",
			Help: "SMTP (and LMTP) sessions opened, by protocol.",
		}, []string{"protocol"}),
		replies: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "smsbridge_smtp_replies_total",
			Help: "Replies to MAIL, RCPT and DATA, by command and reply code (250, 451, 550…).",
		}, []string{"command", "code"}),
		mails: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "smsbridge_mails_accepted_total",
			Help: "Mails answered 250 after DATA (their records committed).",
		}),
		records: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "smsbridge_records_accepted_total",
			Help: "Records (one per mail and recipient) committed to the store by the front door.",
		}),
		commit: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "smsbridge_commit_seconds",
			Help:    "Time for the store to commit (fsync) the records of one mail before its 250.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}),
	}
	if reg != nil {
		reg.MustRegister(m.sessions, m.replies, m.mails, m.records, m.commit)
	}
	return m
}

// metered counts what a session answers; it forwards every optional
// interface go-smtp looks for.
type metered struct {
	*session
	m *Metrics
}

func (x metered) count(cmd string, err error) error {
	code := 250
	var se *smtp.SMTPError
	switch {
	case errors.As(err, &se):
		code = se.Code
	case err != nil:
		code = 554 // go-smtp's reply to any other error
	}
	x.m.replies.WithLabelValues(cmd, strconv.Itoa(code)).Inc()
	return err
}

func (x metered) Mail(from string, opts *smtp.MailOptions) error {
	return x.count("MAIL", x.session.Mail(from, opts))
}

func (x metered) Rcpt(to string, opts *smtp.RcptOptions) error {
	return x.count("RCPT", x.session.Rcpt(to, opts))
}

func (x metered) Data(r io.Reader) error { return x.count("DATA", x.session.Data(r)) }

func (x metered) LMTPData(r io.Reader, status smtp.StatusCollector) error {
	return x.count("DATA", x.session.LMTPData(r, status))
}

func (x metered) AuthMechanisms() []string { return x.session.AuthMechanisms() }

func (x metered) Auth(mech string) (sasl.Server, error) { return x.session.Auth(mech) }

// timedQueue measures the commits of the front door.
type timedQueue struct {
	q Queue
	m *Metrics
}

func (t timedQueue) Add(ctx context.Context, recs []*store.Record) error {
	start := time.Now()
	err := t.q.Add(ctx, recs)
	t.m.commit.Observe(time.Since(start).Seconds())
	if err == nil {
		t.m.mails.Inc()
		t.m.records.Add(float64(len(recs)))
	}
	return err
}
