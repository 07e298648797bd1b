package vault

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics are the vault's Prometheus series. Labels are bounded and never
// secret: configured hosts, HTTP codes, error classes — never a user, an
// environment or a token.
type metrics struct {
	requests        *prometheus.CounterVec
	latency         *prometheus.HistogramVec
	refreshes       *prometheus.CounterVec
	refreshFailures *prometheus.CounterVec
	refreshAttempts *prometheus.CounterVec
	cacheHits       prometheus.Counter
	connectWaits    prometheus.Gauge
	eventPolls      prometheus.Counter
	providerUp      *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "azdo_vault_token_requests_total",
			Help: "POST /v1/token requests by HTTP status code.",
		}, []string{"code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "azdo_vault_token_request_duration_seconds",
			Help:    "Latency of POST /v1/token by HTTP status code.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"code"}),
		refreshes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "azdo_vault_refreshes_total",
			Help: "OAuth refreshes by host and result (ok, permanent, transient, misconfigured).",
		}, []string{"host", "result"}),
		refreshFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "azdo_vault_refresh_failures_total",
			Help: "Failed OAuth refresh attempts by host and reason (error class and OAuth error code).",
		}, []string{"host", "reason"}),
		refreshAttempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "azdo_vault_refresh_attempts_total",
			Help: "Calls to the identity provider's token endpoint, retries included.",
		}, []string{"host"}),
		cacheHits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "azdo_vault_token_cache_hits_total",
			Help: "Token requests answered from the in-memory access token cache.",
		}),
		connectWaits: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "azdo_vault_connect_waits",
			Help: "Environments waiting on this replica for their user to connect (POST /v1/connect/wait).",
		}),
		providerUp: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "azdo_vault_provider_up",
			Help: "1 when a configured provider method (oauth, pat) serves; 0 when it is disabled (its verification failed, see /healthz).",
		}, []string{"host", "method"}),
		eventPolls: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "azdo_vault_connect_event_queries_total",
			Help: "Queries of the store for connect outcomes (one per poll interval while environments wait).",
		}),
	}
	reg.MustRegister(m.requests, m.latency, m.refreshes, m.refreshFailures, m.refreshAttempts, m.cacheHits, m.connectWaits, m.eventPolls, m.providerUp,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}
