package proxy

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// signUnchecked issues a leaf for host with ca's key without Issue's own
// constraint check: what a stolen or buggy signer could produce, for the
// verifiers to refuse.
func signUnchecked(t *testing.T, ca *CA, host string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := randomSerial()
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		NotBefore:    time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		DNSNames:              []string{host},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

func writePEM(t *testing.T, path string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestCANameConstraintsEnforced: with the extension not critical (for
// mbedTLS), a leaf signed by the CA for a name outside its constraints
// still fails verification in Go, in OpenSSL (`openssl verify`) and in git
// (GnuTLS on Debian), while a leaf inside them passes in each.
func TestCANameConstraintsEnforced(t *testing.T) {
	ca, err := NewCA(nil, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	if ca.cert.PermittedDNSDomainsCritical {
		t.Fatal("name constraints are critical; mbedTLS (libgit2) refuses such a CA")
	}
	dir := t.TempDir()
	caFile := filepath.Join(dir, "ca.pem")
	writePEM(t, caFile, ca.cert.Raw)
	roots := x509.NewCertPool()
	roots.AddCert(ca.cert)

	tests := []struct {
		host string
		ok   bool
	}{
		{"dev.azure.com", true},
		{"contoso.visualstudio.com", true},
		{"evil.example.test", false},
		{"dev.azure.com.evil.test", false},
	}
	for _, tc := range tests {
		t.Run(tc.host, func(t *testing.T) {
			leaf := signUnchecked(t, ca, tc.host)

			// Go's verifier.
			_, err := leaf.Leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: tc.host})
			var inv x509.CertificateInvalidError
			switch {
			case tc.ok && err != nil:
				t.Errorf("Go: Verify(%s) = %v; want ok", tc.host, err)
			case !tc.ok && (!errors.As(err, &inv) || inv.Reason != x509.CANotAuthorizedForThisName):
				t.Errorf("Go: Verify(%s) = %v; want a name-constraint violation", tc.host, err)
			}

			// OpenSSL.
			leafFile := filepath.Join(t.TempDir(), "leaf.pem")
			writePEM(t, leafFile, leaf.Certificate[0])
			out, err := exec.Command("openssl", "verify", "-CAfile", caFile, leafFile).CombinedOutput()
			switch {
			case errors.Is(err, exec.ErrNotFound):
				t.Skip("openssl not installed")
			case tc.ok && err != nil:
				t.Errorf("openssl verify %s: %v\n%s; want OK", tc.host, err, out)
			case !tc.ok && (err == nil || !strings.Contains(string(out), "subtree violation")):
				t.Errorf("openssl verify %s: %v\n%s; want a permitted subtree violation", tc.host, err, out)
			}

			// git, through libcurl (GnuTLS on Debian).
			srv := httptest.NewUnstartedServer(http.NotFoundHandler())
			srv.TLS = &tls.Config{Certificates: []tls.Certificate{leaf}}
			srv.StartTLS()
			defer srv.Close()
			_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
			home := t.TempDir()
			cmd := exec.Command("git", "-c", "http.sslCAInfo="+caFile,
				"-c", "http.curloptResolve="+tc.host+":"+port+":127.0.0.1",
				"ls-remote", "https://"+tc.host+":"+port+"/org/_git/repo")
			cmd.Env = []string{"HOME=" + home, "PATH=" + os.Getenv("PATH"), "GIT_CONFIG_NOSYSTEM=1", "GIT_TERMINAL_PROMPT=0", "GIT_SSL_CAINFO=" + caFile}
			out, err = cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("git ls-remote against a 404 server succeeded:\n%s", out)
			}
			certErr := strings.Contains(string(out), "certificate") || strings.Contains(string(out), "SSL")
			if tc.ok && certErr {
				t.Errorf("git %s: TLS refused a permitted name:\n%s", tc.host, out)
			}
			if !tc.ok && !certErr {
				t.Errorf("git %s: got past TLS with a name outside the constraints:\n%s", tc.host, out)
			}
		})
	}
}

// TestLeafChainIsLeafOnly: the proxy sends its leaf without the CA (the
// client has it as trust anchor already), and Go clients still verify.
func TestLeafChainIsLeafOnly(t *testing.T) {
	up := newUpstreamCA(t)
	srv := up.startUpstream(t, &recorder{}, "dev.azure.com")
	h := startProxy(t, up, harnessOpts{resolve: []string{"dev.azure.com:443:127.0.0.1:" + portOf(t, srv)}})
	resp, err := h.client(h.roots).Get("https://dev.azure.com/contoso/p/_git/r/info/refs")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if n := len(resp.TLS.PeerCertificates); n != 1 {
		t.Errorf("certificates sent = %d; want 1 (the leaf)", n)
	}
}

// TestNoUserAgentAdded: a client that sends no User-Agent (isomorphic-git)
// reaches the upstream without one, not as Go-http-client/1.1; one that
// sends it keeps it; both for intercepted and plain-http requests.
func TestNoUserAgentAdded(t *testing.T) {
	up := newUpstreamCA(t)
	rec := &recorder{}
	srv := up.startUpstream(t, rec, "dev.azure.com")
	plainRec := &recorder{}
	plain := httptest.NewServer(plainRec)
	defer plain.Close()
	h := startProxy(t, up, harnessOpts{resolve: []string{"dev.azure.com:443:127.0.0.1:" + portOf(t, srv)}, plainHosts: []string{strings.TrimPrefix(plain.URL, "http://")}})
	tests := []struct {
		name, url string
		rec       *recorder
		ua        []string // nil: header absent on the wire
	}{
		{"intercepted, none", "https://dev.azure.com/contoso/p/_git/r/info/refs", rec, nil},
		{"intercepted, git", "https://dev.azure.com/contoso/p/_git/r/info/refs", rec, []string{"git/2.39.5"}},
		{"plain http, none", plain.URL + "/x", plainRec, nil},
		{"plain http, curl", plain.URL + "/x", plainRec, []string{"curl/7.88.1"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest("GET", tc.url, nil)
			if err != nil {
				t.Fatal(err)
			}
			// An empty value makes Go's client send no User-Agent at all,
			// as isomorphic-git does.
			req.Header["User-Agent"] = []string{""}
			if tc.ua != nil {
				req.Header["User-Agent"] = tc.ua
			}
			resp, err := h.client(h.roots).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			reqs := tc.rec.requests()
			if len(reqs) == 0 {
				t.Fatal("upstream saw no request")
			}
			got, ok := reqs[len(reqs)-1].Header["User-Agent"]
			if tc.ua == nil && ok {
				t.Errorf("upstream User-Agent = %q; want none (the client sent none)", got)
			}
			if tc.ua != nil && (len(got) != 1 || got[0] != tc.ua[0]) {
				t.Errorf("upstream User-Agent = %q; want %q", got, tc.ua)
			}
		})
	}
}
