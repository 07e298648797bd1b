package proxy

import (
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/azdo-sidecar/azdo-sidecar/azdo"
)

func TestTunnelPorts(t *testing.T) {
	up := newUpstreamCA(t)
	srv := up.startUpstream(t, &recorder{}, "example.com")
	addr := srv.Listener.Addr().String()
	h := startProxy(t, up, harnessOpts{
		selfHosted: []string{"tfs.example:8443"},
		tunnelPort: []int{2222},
		resolve:    []string{"example.com:443:" + addr, "example.com:8443:" + addr, "example.com:2222:" + addr, "example.com:22:" + addr, "dev.azure.com:22:" + addr},
	})
	for _, tt := range []struct {
		target string
		want   int
	}{
		{"example.com:443", 200},
		{"example.com:8443", 200}, // a --host's port
		{"example.com:2222", 200}, // --tunnel-port
		{"example.com:22", 403},
		{"example.com:25", 403},
		{"dev.azure.com:22", 403}, // not intercepted on that port, so a blind tunnel: refused
		{"127.0.0.1:6379", 403},
	} {
		t.Run(tt.target, func(t *testing.T) {
			resp, body := rawProxyRequest(t, h.addr, "CONNECT", tt.target, "")
			if resp.StatusCode != tt.want {
				t.Fatalf("CONNECT %s = %d %q; want %d", tt.target, resp.StatusCode, body, tt.want)
			}
			if tt.want == 403 && (!strings.Contains(body, "443, 2222, 8443") || !strings.Contains(body, "--tunnel-port")) {
				t.Errorf("403 body %q; want the allowed ports and --tunnel-port", body)
			}
		})
	}
}

func TestPlainHTTPOnlyToListedHosts(t *testing.T) {
	up := newUpstreamCA(t)
	rec := &recorder{}
	plain := strings.TrimPrefix(startPlain(t, rec), "http://")
	_, port, _ := net.SplitHostPort(plain)
	h := startProxy(t, up, harnessOpts{plainHosts: []string{"LISTED.example:" + port}, resolve: []string{"listed.example:" + port + ":" + plain, "other.example:" + port + ":" + plain}})
	for _, tt := range []struct {
		url  string
		want int
	}{
		{"http://listed.example:" + port + "/x", 200},
		{"http://other.example:" + port + "/x", 403},
		{"http://listed.example/x", 403}, // another port
		{"http://" + plain + "/x", 403},
	} {
		t.Run(tt.url, func(t *testing.T) {
			before := len(rec.requests())
			resp, body := rawProxyRequest(t, h.addr, "GET", tt.url, "")
			if resp.StatusCode != tt.want {
				t.Fatalf("GET %s = %d %q; want %d", tt.url, resp.StatusCode, body, tt.want)
			}
			if tt.want == 403 {
				if !strings.Contains(body, "--plain-http-host") {
					t.Errorf("403 body %q; want it to name --plain-http-host", body)
				}
				if len(rec.requests()) != before {
					t.Errorf("a refused request reached the server")
				}
			}
		})
	}
}

// TestUpstreamProxyCredentialsOnlyAfterChecks: requests the proxy refuses
// (no proxy credential, a port not allowed, plain http not listed) never
// reach the upstream proxy, so its credentials serve none of them.
func TestUpstreamProxyCredentialsOnlyAfterChecks(t *testing.T) {
	up := newUpstreamCA(t)
	srv := up.startUpstream(t, &recorder{}, "example.com")
	cp := startConnectProxy(t, srv.Listener.Addr().String())
	hosts, _ := azdo.NewHosts(nil)
	p, err := New(Config{
		Hosts: hosts, OrgFor: hosts.OrgFor, Source: patSource(), UpstreamRoots: up.pool,
		UpstreamProxy: &url.URL{Scheme: "http", Host: cp.ln.Addr().String(), User: url.UserPassword("corp", "proxy-pass")},
		Registerer:    prometheus.NewRegistry(),
		Auth:          testAuth(sameUID),
	})
	if err != nil {
		t.Fatal(err)
	}
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	go p.Serve(l)
	defer p.Shutdown(t.Context())
	good := basicProxyAuth("azdo-sidecar", testProxyPass)
	for _, r := range []struct{ method, target, auth string }{
		{"CONNECT", "example.com:443", ""},
		{"CONNECT", "example.com:22", good},
		{"GET", "http://example.com/", good},
		{"GET", "http://example.com/", ""},
	} {
		if resp, body := rawProxyRequest(t, l.Addr().String(), r.method, r.target, r.auth); resp.StatusCode != http.StatusProxyAuthRequired && resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s %s = %d %q; want a refusal", r.method, r.target, resp.StatusCode, body)
		}
	}
	if got := cp.targets(); len(got) != 0 {
		t.Errorf("the upstream proxy saw %v; want nothing", got)
	}
	if resp, _ := rawProxyRequest(t, l.Addr().String(), "CONNECT", "example.com:443", good); resp.StatusCode != 200 {
		t.Errorf("allowed CONNECT = %d; want 200", resp.StatusCode)
	}
	if got := cp.targets(); len(got) != 1 {
		t.Errorf("the upstream proxy saw %v; want the one allowed tunnel", got)
	}
}
