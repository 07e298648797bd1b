package proxy

import (
	"io"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// Host classes, the only values of the "class" label.
const (
	classAzdo    = "azdo"    // intercepted request to an Azure DevOps host
	classOther   = "other"   // blind tunnel or plain-http request to any other host
	classRefused = "refused" // refused: plain http to Azure DevOps, wrong Host, ...
)

// metrics are the proxy's Prometheus collectors. Labels carry classes and
// kinds only: never a host, a path, a user name or a secret.
type metrics struct {
	requests       *prometheus.CounterVec // class
	bytes          *prometheus.CounterVec // class, direction
	injections     *prometheus.CounterVec // kind
	upstreamStatus *prometheus.CounterVec // code class
	tokenFetches   *prometheus.CounterVec // result
	tokenLatency   prometheus.Histogram   //
	retries        prometheus.Counter     //
	inflight       prometheus.Gauge       //
	tunnels        prometheus.Gauge       //
	leaves         prometheus.Counter     //
	all            []prometheus.Collector
	counts         *counters // mirrors for the status endpoint
}

// counters mirror a few metrics for the status endpoint.
type counters struct {
	requests   [3]atomic.Int64 // azdo, other, refused
	injections atomic.Int64
	retries    atomic.Int64
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	const ns = "azdo_sidecar_proxy"
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Name: "requests_total",
			Help: "Requests and tunnels handled, by host class (azdo, other, refused).",
		}, []string{"class"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Name: "bytes_total",
			Help: "Body bytes relayed, by host class and direction (in: from upstream, out: to upstream).",
		}, []string{"class", "direction"}),
		injections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Name: "injections_total",
			Help: "Credentials injected into upstream requests, by token kind.",
		}, []string{"kind"}),
		upstreamStatus: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Name: "upstream_responses_total",
			Help: "Upstream answers to intercepted requests, by status class (2xx..5xx, error).",
		}, []string{"code"}),
		tokenFetches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Name: "token_fetches_total",
			Help: "Token source calls, by result (ok, connect_required, unauthorized, no_credential, unavailable, error).",
		}, []string{"result"}),
		tokenLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: ns, Name: "token_fetch_seconds",
			Help:    "Latency of token source calls.",
			Buckets: []float64{.0001, .001, .005, .025, .1, .5, 2, 10},
		}),
		retries: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Name: "auth_retries_total",
			Help: "Requests retried with a fresh token after an upstream 401.",
		}),
		inflight: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: ns, Name: "inflight_requests",
			Help: "Intercepted requests in flight.",
		}),
		tunnels: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: ns, Name: "open_tunnels",
			Help: "Blind tunnels open.",
		}),
		leaves: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Name: "leaf_certificates_issued_total",
			Help: "Leaf certificates issued by the interception CA.",
		}),
		counts: &counters{},
	}
	m.all = []prometheus.Collector{m.requests, m.bytes, m.injections, m.upstreamStatus,
		m.tokenFetches, m.tokenLatency, m.retries, m.inflight, m.tunnels, m.leaves}
	for _, class := range []string{classAzdo, classOther, classRefused} {
		m.requests.WithLabelValues(class)
		m.bytes.WithLabelValues(class, "in")
		m.bytes.WithLabelValues(class, "out")
	}
	if reg != nil {
		for _, c := range m.all {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

func (m *metrics) request(class string) {
	m.requests.WithLabelValues(class).Inc()
	switch class {
	case classAzdo:
		m.counts.requests[0].Add(1)
	case classOther:
		m.counts.requests[1].Add(1)
	default:
		m.counts.requests[2].Add(1)
	}
}

func statusClass(code int) string {
	switch {
	case code >= 500:
		return "5xx"
	case code >= 400:
		return "4xx"
	case code >= 300:
		return "3xx"
	case code >= 200:
		return "2xx"
	default:
		return "1xx"
	}
}

// countingReader counts bytes read into a counter.
type countingReader struct {
	io.ReadCloser
	c     prometheus.Counter
	close func()
	once  sync.Once
}

func (r *countingReader) Read(p []byte) (int, error) {
	n, err := r.ReadCloser.Read(p)
	if n > 0 {
		r.c.Add(float64(n))
	}
	return n, err
}

// Close closes the body and runs the close hook once.
func (r *countingReader) Close() error {
	err := r.ReadCloser.Close()
	r.once.Do(func() {
		if r.close != nil {
			r.close()
		}
	})
	return err
}
