package sidecar

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/azdo-sidecar/azdo-sidecar/secret"
)

func testOptions(t *testing.T) Options {
	t.Helper()
	dir := t.TempDir()
	return Options{
		Listen:        "127.0.0.1:0",
		MetricsListen: "127.0.0.1:0",
		Socket:        filepath.Join(dir, "run", "sock"),
		StateDir:      filepath.Join(dir, "state"),
		Mode:          ModePAT,
		PAT:           secret.New("sidecar-test-PAT-value"),
		DrainTimeout:  time.Second,
	}
}

func TestStartServesAndWritesCA(t *testing.T) {
	opts := testOptions(t)
	s, err := Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown(t.Context())
	r := s.Ready()
	if strings.HasSuffix(r.Proxy, ":0") || strings.HasSuffix(r.Metrics, ":0") {
		t.Errorf("Ready() = %+v; want real bound ports", r)
	}
	fi, err := os.Stat(r.CAFile)
	if err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("ca.pem mode = %v, %v; want 0644", fi.Mode(), err)
	}
	di, err := os.Stat(opts.StateDir)
	if err != nil || di.Mode().Perm() != 0o700 {
		t.Errorf("state dir mode = %v, %v; want 0700", di.Mode(), err)
	}
	for path, want := range map[string]string{"/healthz": "ok", "/metrics": "azdo_sidecar_proxy_requests_total", "/status": `"mode": "pat"`} {
		resp, err := http.Get("http://" + r.Metrics + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(b), want) {
			t.Errorf("GET %s = %q; want it to contain %q", path, b, want)
		}
		if strings.Contains(string(b), opts.PAT.Reveal()) {
			t.Errorf("GET %s shows the PAT", path)
		}
	}
}

func TestRefusesNonLoopbackListen(t *testing.T) {
	tests := []struct {
		name   string
		listen string
		any    bool
		ok     bool
	}{
		{"loopback v4", "127.0.0.1:0", false, true},
		{"loopback v6", "[::1]:0", false, true},
		{"localhost", "localhost:0", false, true},
		{"all interfaces", ":0", false, false},
		{"0.0.0.0", "0.0.0.0:0", false, false},
		{"0.0.0.0 with --insecure-listen-any", "0.0.0.0:0", true, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := checkLoopback(tc.listen, tc.any)
			if (err == nil) != tc.ok {
				t.Errorf("checkLoopback(%q, %v) = %v; want ok=%v", tc.listen, tc.any, err, tc.ok)
			}
			if err != nil && !errors.Is(err, ErrNotLoopback) {
				t.Errorf("checkLoopback(%q) = %v; want ErrNotLoopback", tc.listen, err)
			}
		})
	}
	opts := testOptions(t)
	opts.Listen = "0.0.0.0:0"
	if _, err := Start(opts); !errors.Is(err, ErrNotLoopback) {
		t.Errorf("Start with --listen 0.0.0.0:0 = %v; want ErrNotLoopback", err)
	}
}

func TestUpstreamProxyToItselfRefused(t *testing.T) {
	opts := testOptions(t)
	opts.Listen = "127.0.0.1:0"
	s, err := Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	addr := s.Ready().Proxy
	s.Shutdown(t.Context())
	opts = testOptions(t)
	opts.Listen = addr
	opts.UpstreamProxy = "http://" + addr
	if _, err := Start(opts); err == nil || !strings.Contains(err.Error(), "this proxy itself") {
		t.Errorf("Start with --upstream-proxy pointing at itself = %v; want a refusal", err)
	}
}

func TestRunPrintsOneReadyLineAndStopsOnCancel(t *testing.T) {
	opts := testOptions(t)
	pr, pw := io.Pipe()
	ctx, cancel := contextWithCancel(t)
	done := make(chan error, 1)
	go func() { done <- Run(ctx, opts, pw); pw.Close() }()
	dec := json.NewDecoder(pr)
	var r Ready
	if err := dec.Decode(&r); err != nil {
		t.Fatalf("ready line: %v", err)
	}
	if r.Proxy == "" || r.Socket != opts.Socket || r.CAFile == "" || r.Metrics == "" {
		t.Errorf("ready = %+v; want every field", r)
	}
	cancel()
	rest, _ := io.ReadAll(pr)
	if err := <-done; err != nil {
		t.Errorf("Run after cancel = %v; want nil", err)
	}
	if len(strings.TrimSpace(string(rest))) != 0 {
		t.Errorf("stdout after the ready line = %q; want nothing", rest)
	}
}

// TestRunLogsDurationsReadably: with --log-format json the drain timeout
// reads "1s", not nanoseconds.
func TestRunLogsDurationsReadably(t *testing.T) {
	opts := testOptions(t)
	var logs syncBuffer
	opts.Logger = slog.New(slog.NewJSONHandler(&logs, nil))
	ctx, cancel := contextWithCancel(t)
	cancel()
	if err := Run(ctx, opts, io.Discard); err != nil {
		t.Fatalf("Run = %v", err)
	}
	if want := `"timeout":"1s"`; !strings.Contains(logs.String(), want) {
		t.Errorf("logs = %s; want %s", logs.String(), want)
	}
}

// syncBuffer is a bytes.Buffer safe for the sidecar's goroutines.
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

func TestUnconfiguredSourceExplains(t *testing.T) {
	_, err := unconfigured{}.Token(t.Context(), tokenKey())
	if err == nil || !strings.Contains(err.Error(), "--pat-file") || !strings.Contains(err.Error(), "--vault-url") {
		t.Errorf("unconfigured Token() = %v; want it to say how to configure a source", err)
	}
}

func TestEnvironmentProxyToItselfRefused(t *testing.T) {
	opts := testOptions(t)
	s, err := Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	addr := s.Ready().Proxy
	s.Shutdown(t.Context())
	t.Setenv("HTTPS_PROXY", "http://"+addr)
	opts = testOptions(t)
	opts.Listen = addr
	if _, err := Start(opts); err == nil || !strings.Contains(err.Error(), "HTTPS_PROXY points at this proxy itself") {
		t.Errorf("Start with HTTPS_PROXY at itself = %v; want a refusal", err)
	}
}

// TestStatusRefusesUnknownUIDOffLoopback: /status answers a connection
// whose uid cannot be learned only on a loopback address; on another
// address (--insecure-listen-any: another machine or network namespace)
// it is refused. /metrics stays open to a scraper.
func TestStatusRefusesUnknownUIDOffLoopback(t *testing.T) {
	s, err := Start(testOptions(t))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown(t.Context())
	h := s.mux(prometheus.NewRegistry())
	for _, tt := range []struct {
		name, local, remote string
		want                int
	}{
		// Addresses in no socket table: the uid is unknown.
		{"non-loopback, unknown uid", "192.0.2.10:9464", "192.0.2.20:40000", http.StatusForbidden},
		{"loopback, unknown uid", "127.0.0.1:1", "127.0.0.1:2", http.StatusOK},
	} {
		r := httptest.NewRequest("GET", "/status", nil)
		r.RemoteAddr = tt.remote
		r = r.WithContext(context.WithValue(r.Context(), http.LocalAddrContextKey, net.TCPAddrFromAddrPort(netip.MustParseAddrPort(tt.local))))
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != tt.want {
			t.Errorf("%s: /status = %d %q; want %d", tt.name, w.Code, w.Body, tt.want)
		}
		r = httptest.NewRequest("GET", "/metrics", nil)
		r.RemoteAddr = tt.remote
		w = httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != http.StatusOK {
			t.Errorf("%s: /metrics = %d; want 200", tt.name, w.Code)
		}
	}
}
