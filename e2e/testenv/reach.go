package testenv

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/azdo-sidecar/azdo-sidecar/e2e/azdoemu"
)

// StartAzDO starts an Azure DevOps emulator for the test and stops it at its
// end. Unless cfg.Listen is set, it listens on port 443 of a random
// 127.x.y.z address so that git's http.curloptResolve can reach it under
// real host names, and on 127.0.0.1:0 when that port cannot be bound.
// cfg.Logf defaults to t.Logf.
func StartAzDO(t testing.TB, cfg azdoemu.Config) *azdoemu.Server {
	t.Helper()
	if cfg.Logf == nil {
		cfg.Logf = t.Logf
	}
	s, err := NewAzDO(cfg)
	if err != nil {
		t.Fatalf("azdoemu: %v", err)
	}
	s.Start()
	t.Cleanup(func() { s.Close() })
	return s
}

// NewAzDO creates (but does not start) an emulator as StartAzDO does, for
// servers that outlive one test (TestMain, cmd/emulators).
func NewAzDO(cfg azdoemu.Config) (*azdoemu.Server, error) {
	if cfg.Listen != "" {
		return azdoemu.New(cfg)
	}
	for range 8 {
		c := cfg
		c.Listen = RandomLoopback() + ":443"
		s, err := azdoemu.New(c)
		if err == nil {
			return s, nil
		}
	}
	cfg.Listen = "127.0.0.1:0"
	return azdoemu.New(cfg)
}

// RandomLoopback returns a random address in 127.0.0.0/8, avoiding
// 127.0.0.0/16 where other services tend to live.
func RandomLoopback() string {
	return fmt.Sprintf("127.%d.%d.%d", 1+rand.IntN(254), 1+rand.IntN(254), 1+rand.IntN(254))
}

// DefaultHosts are the host names Reach maps when given none.
var DefaultHosts = []string{"dev.azure.com"}

// Reach configures g to reach the emulator s directly under hosts (default
// dev.azure.com), trusting only its CA for them: http.sslCAInfo (with
// GIT_SSL_CAINFO removed from the environment, since it would override it)
// and either http.curloptResolve (s on port 443) or a CONNECT tunnel to s
// as http.proxy.
func Reach(t testing.TB, g *Git, s *azdoemu.Server, hosts ...string) {
	t.Helper()
	if len(hosts) == 0 {
		hosts = DefaultHosts
	}
	g.Unsetenv("GIT_SSL_CAINFO")
	g.SetConfig(t, "http.sslCAInfo", s.CAFile())
	if s.Port() == 443 {
		for _, h := range hosts {
			g.AddConfig(t, "http.curloptResolve", h+":443:"+s.IP())
		}
		return
	}
	tun := StartTunnel(t, s.Addr())
	g.SetConfig(t, "http.proxy", "http://"+tun.Addr())
}

// ResolveFlag returns the sidecar's --resolve value that sends host's
// HTTPS traffic to the emulator: "host:443:IP:PORT".
func ResolveFlag(host string, s *azdoemu.Server) string {
	return host + ":443:" + net.JoinHostPort(s.IP(), strconv.Itoa(s.Port()))
}

// Tunnel is an HTTP proxy that answers every CONNECT by opening a blind
// tunnel to one fixed address, whatever host the client named.
type Tunnel struct {
	ln     net.Listener
	target string
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
}

// StartTunnel starts a tunnel to target on 127.0.0.1:0, stopped at the end
// of the test.
func StartTunnel(t testing.TB, target string) *Tunnel {
	t.Helper()
	tun, err := NewTunnel(target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tun.Close)
	return tun
}

// NewTunnel starts a tunnel to target; Close stops it.
func NewTunnel(target string) (*Tunnel, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("testenv: tunnel: %w", err)
	}
	tun := &Tunnel{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	tun.wg.Add(1)
	go tun.serve()
	return tun, nil
}

// Addr returns the tunnel's address.
func (t *Tunnel) Addr() string { return t.ln.Addr().String() }

func (t *Tunnel) serve() {
	defer t.wg.Done()
	srv := &http.Server{Handler: http.HandlerFunc(t.handle), ReadHeaderTimeout: 10 * time.Second}
	_ = srv.Serve(t.ln)
}

// track registers a tunnel's two connections and its goroutine, unless
// the tunnel is closing.
func (t *Tunnel) track(a, b net.Conn) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return false
	}
	t.conns[a] = struct{}{}
	t.conns[b] = struct{}{}
	t.wg.Add(1)
	return true
}

func (t *Tunnel) handle(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodConnect {
		http.Error(w, "only CONNECT", http.StatusMethodNotAllowed)
		return
	}
	up, err := net.DialTimeout("tcp", t.target, 10*time.Second)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	down, rw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		up.Close()
		return
	}
	if !t.track(up, down) {
		up.Close()
		down.Close()
		return
	}
	_, _ = io.WriteString(down, "HTTP/1.1 200 Connection established\r\n\r\n")
	go func() {
		defer t.wg.Done()
		done := make(chan struct{})
		go func() {
			// Bytes the client sent after CONNECT may sit in rw's buffer.
			_, _ = io.Copy(up, rw)
			if tc, ok := up.(*net.TCPConn); ok {
				_ = tc.CloseWrite()
			}
			close(done)
		}()
		_, _ = io.Copy(down, up)
		down.Close()
		<-done
		up.Close()
		t.mu.Lock()
		delete(t.conns, up)
		delete(t.conns, down)
		t.mu.Unlock()
	}()
}

// Close stops the tunnel and cuts its connections.
func (t *Tunnel) Close() {
	t.mu.Lock()
	t.closed = true
	for c := range t.conns {
		c.Close()
	}
	t.mu.Unlock()
	if err := t.ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		return
	}
	t.wg.Wait()
}
