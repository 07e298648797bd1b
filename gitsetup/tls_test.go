package gitsetup

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/azdo-sidecar/azdo-sidecar/azdo"
)

// newCA returns a CA certificate (PEM) and a TLS leaf for 127.0.0.1 it
// signed, with the name in the SAN only, like the sidecar's leaves.
func newCA(t *testing.T, name string) ([]byte, tls.Certificate) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	leafKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leafTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		NotBefore:    time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:    x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, ca, &leafKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		tls.Certificate{Certificate: [][]byte{leafDER}, PrivateKey: leafKey}
}

// connectProxy is a minimal CONNECT proxy that records the targets.
type connectProxy struct {
	mu      sync.Mutex
	targets []string
	wg      sync.WaitGroup
}

func (p *connectProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodConnect {
		http.Error(w, "CONNECT only", http.StatusMethodNotAllowed)
		return
	}
	p.mu.Lock()
	p.targets = append(p.targets, r.Host)
	p.mu.Unlock()
	up, err := net.DialTimeout("tcp", r.Host, 5*time.Second)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	conn, buf, err := w.(http.Hijacker).Hijack()
	if err != nil {
		up.Close()
		return
	}
	conn.Write([]byte("HTTP/1.1 200 Connection Established\r\n\r\n"))
	p.wg.Add(2)
	go func() { defer p.wg.Done(); io.Copy(up, buf); up.(*net.TCPConn).CloseWrite() }()
	go func() { defer p.wg.Done(); io.Copy(conn, up); conn.Close() }()
}

func (p *connectProxy) seen() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.targets...)
}

// TestProxyModeWithGitSSLCAINFO runs real git through a CONNECT proxy to
// a TLS server whose certificate comes from the "sidecar" CA in
// <state-dir>/ca.pem, with GIT_SSL_CAINFO pointing at an unrelated bundle as
// on these machines: the sslCAPath line setup writes is what makes it work.
func TestProxyModeWithGitSSLCAINFO(t *testing.T) {
	g := newGitEnv(t)

	// A bare repository served by the real git http-backend over TLS.
	root := filepath.Join(g.home, "srv")
	work := filepath.Join(g.home, "work")
	for _, args := range [][]string{
		{"init", "-q", "-b", "main", work},
		{"-C", work, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "--allow-empty", "-m", "first"},
		{"clone", "-q", "--bare", work, filepath.Join(root, "repo.git")},
	} {
		if out, err := g.git(g.env, args...); err != nil {
			t.Fatalf("git %v: %v: %s", args, err, out)
		}
	}
	execPath, err := g.git(g.env, "--exec-path")
	if err != nil {
		t.Fatal(err)
	}
	caPEM, leaf := newCA(t, "azdo-sidecar test CA")
	srv := httptest.NewUnstartedServer(&cgi.Handler{
		Path: filepath.Join(execPath, "git-http-backend"),
		Env:  []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1"},
	})
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{leaf}}
	srv.StartTLS()
	defer srv.Close()
	proxy := &connectProxy{}
	psrv := httptest.NewServer(proxy)
	defer func() { psrv.CloseClientConnections(); psrv.Close(); proxy.wg.Wait() }()

	hostport := strings.TrimPrefix(srv.URL, "https://")
	state := filepath.Join(g.home, "state")
	os.MkdirAll(state, 0o700)
	os.WriteFile(filepath.Join(state, "ca.pem"), caPEM, 0o644)
	unrelated, _ := newCA(t, "unrelated system bundle")
	bundle := filepath.Join(g.home, "system-bundle.pem")
	os.WriteFile(bundle, unrelated, 0o644)

	hosts, err := azdo.NewHosts([]string{hostport})
	if err != nil {
		t.Fatal(err)
	}
	opts := Options{
		Mode: ModeProxy, Listen: strings.TrimPrefix(psrv.URL, "http://"), StateDir: state, Hosts: hosts,
		Env: g.with("GIT_SSL_CAINFO=" + bundle),
	}
	lsRemote := func(env []string) error {
		_, err := g.git(env, "ls-remote", srv.URL+"/repo.git")
		return err
	}
	withCAINFO := g.with("GIT_SSL_CAINFO=" + bundle)

	if err := lsRemote(withCAINFO); err == nil {
		t.Fatal("git ls-remote without setup succeeded; the test cannot tell anything")
	}
	res := mustApply(t, opts)
	if len(res.Notes) == 0 || !strings.Contains(res.Notes[0], "GIT_SSL_CAINFO") {
		t.Errorf("Apply notes = %q; want the GIT_SSL_CAINFO explanation", res.Notes)
	}
	tests := []struct {
		name string
		env  []string
	}{
		{"GIT_SSL_CAINFO set", withCAINFO},
		{"GIT_SSL_CAINFO unset", g.env},
	}
	for _, tt := range tests {
		before := len(proxy.seen())
		if _, err := g.git(tt.env, "ls-remote", srv.URL+"/repo.git"); err != nil {
			out, _ := g.git(tt.env, "ls-remote", srv.URL+"/repo.git")
			t.Fatalf("%s: git ls-remote through the proxy: %v: %s", tt.name, err, out)
		}
		if seen := proxy.seen(); len(seen) == before || seen[len(seen)-1] != hostport {
			t.Errorf("%s: proxy saw %q; want a CONNECT to %s", tt.name, seen, hostport)
		}
	}

	// Without the sslCAPath line, GIT_SSL_CAINFO wins and git fails: the
	// line is what makes it work.
	capath := Setting{"http.https://" + hostport + ".sslCAPath", filepath.Join(state, TrustDir)}
	if _, err := g.git(g.env, "config", "--global", "--unset", capath.Key); err != nil {
		t.Fatal(err)
	}
	if err := lsRemote(withCAINFO); err == nil {
		t.Error("git ls-remote with GIT_SSL_CAINFO and no sslCAPath succeeded; want a certificate failure")
	}
	if _, err := Undo(context.Background(), opts); err != nil {
		t.Fatal(err)
	}
}
