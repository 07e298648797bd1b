package proxy

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/azdo-sidecar/azdo-sidecar/azdo"
)

// connectProxy is an upstream proxy stand-in: it answers every CONNECT by
// tunnelling to target and records the CONNECT lines and their
// Proxy-Authorization.
type connectProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	seen   []string
	auth   []string
	wg     sync.WaitGroup
}

func startConnectProxy(t *testing.T, target string) *connectProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cp := &connectProxy{ln: ln, target: target}
	cp.wg.Add(1)
	go func() {
		defer cp.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			cp.wg.Add(1)
			go func() {
				defer cp.wg.Done()
				cp.handle(c)
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); cp.wg.Wait() })
	return cp
}

func (cp *connectProxy) handle(c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(c)
	req, err := http.ReadRequest(br)
	if err != nil {
		return
	}
	cp.mu.Lock()
	cp.seen = append(cp.seen, req.Host)
	cp.auth = append(cp.auth, req.Header.Get("Proxy-Authorization"))
	cp.mu.Unlock()
	if req.Method != http.MethodConnect {
		return
	}
	up, err := net.Dial("tcp", cp.target)
	if err != nil {
		io.WriteString(c, "HTTP/1.1 502 Bad Gateway\r\n\r\n")
		return
	}
	defer up.Close()
	io.WriteString(c, "HTTP/1.1 200 OK\r\n\r\n")
	done := make(chan struct{})
	go func() { io.Copy(up, br); up.Close(); close(done) }()
	io.Copy(c, up)
	c.Close()
	<-done
}

func (cp *connectProxy) targets() []string {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	return append([]string(nil), cp.seen...)
}

func TestUpstreamProxyChaining(t *testing.T) {
	up := newUpstreamCA(t)
	rec := &recorder{}
	srv := up.startUpstream(t, rec, "dev.azure.com", "example.com")
	cp := startConnectProxy(t, srv.Listener.Addr().String())
	hosts, _ := azdo.NewHosts(nil)
	p, err := New(Config{
		Hosts: hosts, OrgFor: hosts.OrgFor, Source: patSource(), UpstreamRoots: up.pool,
		UpstreamProxy: &url.URL{Scheme: "http", Host: cp.ln.Addr().String(), User: url.UserPassword("corp", "proxy-pass")},
		Registerer:    prometheus.NewRegistry(),
	})
	if err != nil {
		t.Fatal(err)
	}
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	go p.Serve(l)
	defer p.Shutdown(t.Context())
	h := &harness{p: p, addr: l.Addr().String()}
	roots := up.pool.Clone()
	roots.AddCert(p.CA().Certificate())

	for _, u := range []string{"https://dev.azure.com/contoso/p/_git/r/info/refs", "https://example.com/x"} {
		resp, err := h.client(roots).Get(u)
		if err != nil {
			t.Fatalf("GET %s via upstream proxy: %v", u, err)
		}
		resp.Body.Close()
	}
	got := strings.Join(cp.targets(), ",")
	if got != "dev.azure.com:443,example.com:443" {
		t.Errorf("upstream proxy saw CONNECT %s; want dev.azure.com:443,example.com:443", got)
	}
	for i, a := range cp.auth {
		if a == "" {
			t.Errorf("CONNECT %d carried no Proxy-Authorization; want the proxy URL's credentials", i)
		}
	}
	reqs := rec.requests()
	if len(reqs) != 2 || reqs[0].Header.Get("Authorization") != wantBasic || reqs[1].Header.Get("Authorization") != "" {
		t.Errorf("upstream requests = %d; want the Azure DevOps one injected and the other bare", len(reqs))
	}
	for _, r := range reqs {
		if r.Header.Get("Proxy-Authorization") != "" {
			t.Errorf("the upstream proxy's credentials reached the origin")
		}
	}
}

// TestNoGoroutinesLeftAfterShutdown: goproxy starts goroutines per tunnel
// and per intercepted connection, and Serve its idle memory release check;
// Shutdown must end them all.
func TestNoGoroutinesLeftAfterShutdown(t *testing.T) {
	up := newUpstreamCA(t)
	rec := &recorder{}
	srv := up.startUpstream(t, rec, "dev.azure.com", "example.com")
	h := startProxy(t, up, harnessOpts{resolve: []string{
		"dev.azure.com:443:127.0.0.1:" + portOf(t, srv),
		"example.com:443:127.0.0.1:" + portOf(t, srv),
	}})
	roots := up.pool.Clone()
	roots.AddCert(h.p.CA().Certificate())
	c := h.client(roots)
	c.Transport.(*http.Transport).DisableKeepAlives = false // leave idle connections open
	for _, u := range []string{"https://dev.azure.com/contoso/p/_git/r/info/refs", "https://example.com/x"} {
		resp, err := c.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	if n := goproxyGoroutines(); n == 0 {
		t.Fatalf("no goproxy goroutines while connections are open; the check would prove nothing")
	}
	if n := goroutinesWith(releaseLoopFrame); n != 1 {
		t.Fatalf("%d release loops while serving; want 1", n)
	}
	// The open blind tunnel holds the drain until the deadline.
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	if err := h.p.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown = %v; want DeadlineExceeded (a tunnel stayed open)", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for (goproxyGoroutines() > 0 || goroutinesWith(releaseLoopFrame) > 0) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := goproxyGoroutines(); n > 0 {
		buf := make([]byte, 1<<20)
		t.Errorf("%d goproxy goroutines left after Shutdown:\n%s", n, buf[:runtime.Stack(buf, true)])
	}
	if n := goroutinesWith(releaseLoopFrame); n > 0 {
		t.Errorf("%d release loops left after Shutdown", n)
	}
}

// releaseLoopFrame is the stack frame of the idle memory release check.
const releaseLoopFrame = "proxy.(*Proxy).releaseLoop"

func goproxyGoroutines() int { return goroutinesWith("elazarl/goproxy") }

// goroutinesWith counts the goroutines whose stack mentions s.
func goroutinesWith(s string) int {
	buf := make([]byte, 4<<20)
	n := runtime.Stack(buf, true)
	count := 0
	for _, g := range strings.Split(string(buf[:n]), "\n\n") {
		if strings.Contains(g, s) {
			count++
		}
	}
	return count
}
