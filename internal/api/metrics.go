package api

import (
	"context"
	"crypto/subtle"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/redflaghq/redflag/internal/store"
)

// Metrics is the server's own Prometheus registry (no global default).
type Metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

// NewMetrics registers request metrics, Go runtime metrics, database pool
// figures and agents by status.
func NewMetrics(st *store.Store, now func() time.Time) *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "redflag_http_requests_total", Help: "HTTP requests by route pattern and status code.",
		}, []string{"route", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "redflag_http_request_duration_seconds", Help: "HTTP request latency by route pattern.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"route"}),
	}
	m.reg.MustRegister(m.requests, m.latency, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	for name, db := range st.DBs() {
		m.reg.MustRegister(collectors.NewDBStatsCollector(db, name))
	}
	m.reg.MustRegister(&agentCollector{st: st, now: now, desc: prometheus.NewDesc("redflag_agents",
		"Registered agents by status.", []string{"status"}, nil)})
	m.reg.MustRegister(&updateCollector{st: st,
		pending: prometheus.NewDesc("redflag_updates_pending",
			"Updates not yet installed, rejected, ignored or resolved (statuses pending, approved, needs_confirmation, failed), by severity.",
			[]string{"severity"}, nil),
		byStatus: prometheus.NewDesc("redflag_updates_open", "Updates not yet installed, rejected, ignored or resolved, by status.",
			[]string{"status"}, nil)})
	return m
}

func (m *Metrics) observe(route string, code int, d time.Duration) {
	m.requests.WithLabelValues(route, strconv.Itoa(code)).Inc()
	m.latency.WithLabelValues(route).Observe(d.Seconds())
}

// Handler serves the Prometheus text format, behind a bearer token when one
// is configured.
func (m *Metrics) Handler(token string) http.Handler {
	h := promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
	if token == "" {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if subtle.ConstantTimeCompare([]byte(bearer(r)), []byte(token)) != 1 {
			writeError(w, errf(http.StatusUnauthorized, "unauthorized", "/metrics needs the metrics token in the Authorization header."))
			return
		}
		h.ServeHTTP(w, r)
	})
}

type agentCollector struct {
	st   *store.Store
	now  func() time.Time
	desc *prometheus.Desc
}

func (c *agentCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *agentCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	counts, err := c.st.AgentStatusCounts(ctx, c.now())
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.desc, err)
		return
	}
	for status, n := range counts {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(n), status)
	}
}

// updateCollector reads the per-agent update counts the store keeps
// current, summed at scrape time (a few rows per agent).
type updateCollector struct {
	st                *store.Store
	pending, byStatus *prometheus.Desc
}

func (c *updateCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.pending; ch <- c.byStatus }

func (c *updateCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	counts, err := c.st.PendingUpdatesBySeverity(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.pending, err)
		return
	}
	bySev := map[string]int{}
	for _, sev := range store.Severities {
		bySev[sev] = 0
	}
	for status, m := range counts {
		total := 0
		for sev, n := range m {
			bySev[sev] += n
			total += n
		}
		ch <- prometheus.MustNewConstMetric(c.byStatus, prometheus.GaugeValue, float64(total), status)
	}
	for sev, n := range bySev {
		ch <- prometheus.MustNewConstMetric(c.pending, prometheus.GaugeValue, float64(n), sev)
	}
}
