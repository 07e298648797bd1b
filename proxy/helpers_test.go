package proxy

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/azdo-sidecar/azdo-sidecar/azdo"
	"github.com/azdo-sidecar/azdo-sidecar/secret"
	"github.com/azdo-sidecar/azdo-sidecar/token"
)

// testPAT is the secret the leak checks look for.
const testPAT = "pat-SECRET-0123456789abcdef"

// upstreamCA issues server certificates for the fake upstreams.
type upstreamCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newUpstreamCA(t testing.TB) *upstreamCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test upstream CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &upstreamCA{cert: cert, key: key, pool: pool}
}

func (u *upstreamCA) serverTLS(t testing.TB, names ...string) *tls.Config {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		NotBefore:    time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, u.cert, &key.PublicKey, u.key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
}

// startUpstream starts an HTTPS server for names with handler h.
func (u *upstreamCA) startUpstream(t testing.TB, h http.Handler, names ...string) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	srv.TLS = u.serverTLS(t, names...)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

// recorder is an upstream handler that remembers requests.
type recorder struct {
	mu   sync.Mutex
	reqs []*http.Request
	h    http.HandlerFunc
}

func (r *recorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	r.reqs = append(r.reqs, req.Clone(context.Background()))
	r.mu.Unlock()
	if r.h != nil {
		r.h(w, req)
		return
	}
	w.Write([]byte("ok"))
}

func (r *recorder) requests() []*http.Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*http.Request(nil), r.reqs...)
}

// harness is a running proxy with its logs and metrics.
type harness struct {
	p       *Proxy
	addr    string
	logs    *syncBuffer
	reg     *prometheus.Registry
	tokens  *countingSource
	roots   *x509.CertPool // trusts the proxy's CA
	upRoots *x509.CertPool // trusts the upstreams
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// countingSource serves tokens from a function and counts calls.
type countingSource struct {
	mu    sync.Mutex
	calls int
	keys  []token.Key
	f     func(n int, key token.Key) (token.Token, error)
}

func (s *countingSource) Token(_ context.Context, key token.Key) (token.Token, error) {
	s.mu.Lock()
	s.calls++
	n := s.calls
	s.keys = append(s.keys, key)
	s.mu.Unlock()
	return s.f(n, key)
}

func (s *countingSource) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

func patSource() *countingSource {
	return &countingSource{f: func(int, token.Key) (token.Token, error) {
		return token.Token{Kind: token.Basic, Secret: secret.New(testPAT)}, nil
	}}
}

type harnessOpts struct {
	src        token.Source
	counting   *countingSource
	selfHosted []string
	resolve    []string
	audit      AuditSink
	auditIdle  time.Duration
	auth       *Auth
	plainHosts []string
	tunnelPort []int
}

func startProxy(t testing.TB, up *upstreamCA, o harnessOpts) *harness {
	t.Helper()
	hosts, err := azdo.NewHosts(o.selfHosted)
	if err != nil {
		t.Fatal(err)
	}
	if o.counting == nil {
		o.counting = patSource()
	}
	src := o.src
	if src == nil {
		src = o.counting
	}
	res, err := ParseResolve(o.resolve)
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	reg := prometheus.NewRegistry()
	p, err := New(Config{
		Hosts:          hosts,
		OrgFor:         hosts.OrgFor,
		SelfHosted:     hosts.SelfHosted(),
		Source:         src,
		UpstreamRoots:  up.pool,
		Resolve:        res,
		UpstreamProxy:  nil,
		Logger:         slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Registerer:     reg,
		Auth:           o.auth,
		PlainHTTPHosts: o.plainHosts,
		TunnelPorts:    o.tunnelPort,
		Audit:          o.audit,
		AuditIdle:      o.auditIdle,
	})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = p.Shutdown(ctx)
		if err := <-done; err != http.ErrServerClosed {
			t.Errorf("Serve() = %v; want http.ErrServerClosed", err)
		}
	})
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(p.CA().CertPEM())
	return &harness{p: p, addr: l.Addr().String(), logs: logs, reg: reg, tokens: o.counting, roots: roots, upRoots: up.pool}
}

// client returns an HTTP client that uses the proxy and trusts roots.
func (h *harness) client(roots *x509.CertPool) *http.Client {
	pu := &url.URL{Scheme: "http", Host: h.addr}
	return &http.Client{
		Timeout: 20 * time.Second,
		Transport: &http.Transport{
			Proxy:           http.ProxyURL(pu),
			TLSClientConfig: &tls.Config{RootCAs: roots},
			// Tests close connections between cases.
			DisableKeepAlives: true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// both trusts the proxy CA and the upstream CA.
func (h *harness) both(up *upstreamCA) *x509.CertPool {
	pool := h.roots.Clone()
	pool.AddCert(up.cert)
	return pool
}

func portOf(t testing.TB, srv *httptest.Server) string {
	t.Helper()
	u, _ := url.Parse(srv.URL)
	return u.Port()
}

// value reads a counter or gauge.
func value(c prometheus.Metric) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	}
	return 0
}
