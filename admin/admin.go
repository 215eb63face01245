// Package admin serves smsbridge's operations listener: health checks,
// Prometheus metrics, a JSON API over the queue, a read-only status page,
// and, if asked for, Go's profiles (net/http/pprof).
package admin

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/smsbridge/smsbridge/store"
)

// Queue is what the admin listener needs of the store.
type Queue interface {
	Get(id string) (*store.Record, error)
	Query(q store.Query) ([]*store.Record, string, error)
	Counts() (map[store.State]int, error)
	Due(now time.Time, limit int) ([]*store.Record, time.Time, error)
	Update(id string, fn func(*store.Record) error) (*store.Record, error)
	Cancel(id, reason string) (*store.Record, error)
}

// RouteStatus is one SMSC route as the API shows it.
type RouteStatus struct {
	Name        string  `json:"name"`
	Addr        string  `json:"addr"`
	Bound       bool    `json:"bound"`
	Binds       int     `json:"binds"`
	WindowInUse int     `json:"window_in_use"`
	TPS         float64 `json:"tps"`
	// Counters since start.
	Submitted uint64 `json:"submitted"`
	Throttled uint64 `json:"throttled"`
	InDoubt   uint64 `json:"in_doubt"`
	Receipts  uint64 `json:"receipts"`
	MO        uint64 `json:"mo"`
}

// Config of the admin listener.
type Config struct {
	// Token, if set, must come as "Authorization: Bearer <token>" on every
	// request but the probes, /healthz and /readyz.
	Token string
	// Routes reports the SMSC routes; nil shows none.
	Routes func() []RouteStatus
	// Ready reports whether the gateway can send: store open and at
	// least one route bound.
	Ready func() bool
	// Gatherer is what /metrics serves; nil serves the default registry.
	Gatherer prometheus.Gatherer
	// Pprof serves Go's runtime profiles under /debug/pprof/ (heap, CPU,
	// goroutines, allocations), behind the same token as the rest: what an
	// operator needs to tell why the process grows or spins. Off by
	// default: a CPU profile costs the gateway while it runs.
	Pprof bool
	Now   func() time.Time
}

// Server is the admin HTTP handler.
type Server struct {
	cfg Config
	q   Queue
	log *slog.Logger
	mux *http.ServeMux
}

// New returns the handler.
func New(cfg Config, q Queue, log *slog.Logger) *Server {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Routes == nil {
		cfg.Routes = func() []RouteStatus { return nil }
	}
	if cfg.Ready == nil {
		cfg.Ready = func() bool { return true }
	}
	if cfg.Gatherer == nil {
		cfg.Gatherer = prometheus.DefaultGatherer
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{cfg: cfg, q: q, log: log, mux: http.NewServeMux()}
	s.routes()
	return s
}

func (s *Server) routes() {
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte("ok\n"))
	})
	s.mux.HandleFunc("GET /readyz", s.readyz)
	s.mux.Handle("GET /metrics", promhttp.HandlerFor(s.cfg.Gatherer, promhttp.HandlerOpts{}))
	s.mux.HandleFunc("GET /api/records", s.listRecords)
	s.mux.HandleFunc("GET /api/records/{id}", s.showRecord)
	s.mux.HandleFunc("POST /api/records/{id}/retry", s.retryRecord)
	s.mux.HandleFunc("POST /api/records/{id}/cancel", s.cancelRecord)
	s.mux.HandleFunc("GET /api/routes", s.listRoutes)
	s.mux.HandleFunc("GET /api/counts", s.counts)
	s.mux.HandleFunc("GET /api/inbound", s.listInbound)
	s.mux.HandleFunc("GET /{$}", s.statusPage)
	if s.cfg.Pprof {
		// Registered on our mux: importing net/http/pprof also puts them
		// on http.DefaultServeMux, which nothing here serves.
		s.mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		s.mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
		s.mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		s.mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
		s.mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	}
}

// ServeHTTP checks the bearer token, then serves. The two probes never ask
// for it: they tell only whether the process runs and whether a route is
// bound, and the callers that need them (Docker's HEALTHCHECK through
// `smsbridge healthcheck`, a load balancer, a readiness probe) seldom can
// send a header.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Token != "" && !probe(r.URL.Path) && !s.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="smsbridge"`)
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	s.mux.ServeHTTP(w, r)
}

func probe(path string) bool { return path == "/healthz" || path == "/readyz" }

func (s *Server) authorized(r *http.Request) bool {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && constantTimeEqual(tok, s.cfg.Token)
}

func (s *Server) readyz(w http.ResponseWriter, _ *http.Request) {
	if !s.cfg.Ready() {
		http.Error(w, "not ready: no SMSC route bound", http.StatusServiceUnavailable)
		return
	}
	w.Write([]byte("ready\n"))
}

func (s *Server) listRecords(w http.ResponseWriter, r *http.Request) {
	q, err := parseQuery(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	recs, next, err := s.q.Query(q)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err)
		return
	}
	out := struct {
		Records []RecordSummary `json:"records"`
		Next    string          `json:"next,omitempty"`
	}{Records: []RecordSummary{}, Next: next}
	for _, rec := range recs {
		out.Records = append(out.Records, summarize(rec))
	}
	writeJSON(w, http.StatusOK, out)
}

// parseQuery reads ?state=&to=&from=&since=&until=&before=&limit=; times
// are RFC 3339.
func parseQuery(r *http.Request) (store.Query, error) {
	v := r.URL.Query()
	q := store.Query{State: store.State(v.Get("state")), To: v.Get("to"), From: v.Get("from"), Before: v.Get("before")}
	var err error
	if s := v.Get("limit"); s != "" {
		if q.Limit, err = strconv.Atoi(s); err != nil || q.Limit < 1 {
			return q, errors.New("limit: not a positive number")
		}
	}
	for name, dst := range map[string]*time.Time{"since": &q.Since, "until": &q.Until} {
		if s := v.Get(name); s != "" {
			if *dst, err = time.Parse(time.RFC3339, s); err != nil {
				return q, errors.New(name + ": not an RFC 3339 time")
			}
		}
	}
	return q, nil
}

func (s *Server) showRecord(w http.ResponseWriter, r *http.Request) {
	rec, err := s.q.Get(r.PathValue("id"))
	if err != nil {
		writeStoreError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, detail(rec))
}

// retryRecord makes a queued record due now, as `postqueue -i` does.
func (s *Server) retryRecord(w http.ResponseWriter, r *http.Request) {
	id, now := r.PathValue("id"), s.cfg.Now()
	rec, err := s.q.Update(id, func(rec *store.Record) error {
		if rec.State != store.Queued {
			return errConflict{"only a queued record can be retried; it is " + string(rec.State)}
		}
		rec.NextAttempt = now
		rec.Events = append(rec.Events, store.Event{At: now, What: "retry", Detail: "requested by an operator"})
		return nil
	})
	if err != nil {
		writeStoreError(w, err)
		return
	}
	s.log.Info("record retried by an operator", "id", id)
	writeJSON(w, http.StatusOK, detail(rec))
}

// cancelRecord ends a record that is not final yet. Segments the SMSC has
// already accepted may still be delivered; the record no longer waits, and
// the sender gets a failure report saying an operator cancelled it.
func (s *Server) cancelRecord(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	rec, err := s.q.Cancel(id, "cancelled by an operator")
	if err != nil {
		writeStoreError(w, err)
		return
	}
	s.log.Info("record cancelled by an operator", "id", id)
	writeJSON(w, http.StatusOK, detail(rec))
}

func (s *Server) listRoutes(w http.ResponseWriter, _ *http.Request) {
	routes := s.cfg.Routes()
	if routes == nil {
		routes = []RouteStatus{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"routes": routes})
}

func (s *Server) counts(w http.ResponseWriter, _ *http.Request) {
	c, err := s.q.Counts()
	if err != nil {
		writeError(w, http.StatusInternalServerError, err)
		return
	}
	writeJSON(w, http.StatusOK, c)
}

type errConflict struct{ msg string }

func (e errConflict) Error() string { return e.msg }

func writeStoreError(w http.ResponseWriter, err error) {
	var c errConflict
	switch {
	case errors.Is(err, store.ErrNotFound):
		writeError(w, http.StatusNotFound, err)
	case errors.As(err, &c):
		writeError(w, http.StatusConflict, c)
	case errors.Is(err, store.ErrBadTransition):
		writeError(w, http.StatusConflict, err)
	default:
		writeError(w, http.StatusInternalServerError, err)
	}
}

func writeError(w http.ResponseWriter, code int, err error) {
	writeJSON(w, code, map[string]string{"error": err.Error()})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	e := json.NewEncoder(w)
	e.SetIndent("", "  ")
	e.Encode(v)
}

// inboundLister is the store's MO listing, when it keeps MO.
type inboundLister interface {
	ListInbound(limit int) ([]*store.Inbound, error)
}

// listInbound is GET /api/inbound?limit=N: MO messages, newest first.
func (s *Server) listInbound(w http.ResponseWriter, r *http.Request) {
	l, ok := s.q.(inboundLister)
	if !ok {
		writeError(w, http.StatusNotFound, errors.New("no MO store"))
		return
	}
	limit := 50
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			writeError(w, http.StatusBadRequest, errors.New("limit: not a positive number"))
			return
		}
		limit = min(n, 1000)
	}
	in, err := l.ListInbound(limit)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err)
		return
	}
	if in == nil {
		in = []*store.Inbound{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"inbound": in})
}
