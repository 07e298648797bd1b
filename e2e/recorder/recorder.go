// Package recorder is a TLS server standing for "any other host" in leak
// tests: it answers every request with 200 and keeps every header it
// received (Authorization included: that is what a leak test looks for)
// and the size of every body.
package recorder

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/azdo-sidecar/azdo-sidecar/e2e/azdoemu"
	"github.com/azdo-sidecar/azdo-sidecar/e2e/internal/testca"
)

// DefaultNames are the names the recorder's certificate carries besides
// the ones in Config.Names.
var DefaultNames = []string{"example.com", "*.example.com", "github.com", "localhost", "127.0.0.1", "::1"}

// Config configures a Server.
type Config struct {
	Listen string   // default "127.0.0.1:0"
	Names  []string // extra DNS names or IPs for the certificate
}

// Request is one recorded request.
type Request struct {
	Time      time.Time
	Host      string
	Method    string
	URI       string // request URI as sent (path and query)
	Proto     string
	Header    http.Header // everything, Authorization included
	BodyBytes int64
	// Body is the start of the body, up to maxKeptBody bytes, for
	// Contains.
	Body []byte
}

// maxKeptBody bounds how much of each request body is kept.
const maxKeptBody = 1 << 20

// Server is a running recorder.
type Server struct {
	ln     net.Listener
	srv    *http.Server
	ca     *testca.CA
	caFile string
	dir    string

	mu   sync.Mutex
	reqs []Request
}

// New starts a recorder; Close stops it.
func New(cfg Config) (*Server, error) {
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, err
	}
	names := append(append([]string{}, DefaultNames...), cfg.Names...)
	names = append(names, ln.Addr().(*net.TCPAddr).IP.String())
	ca, err := testca.New("recorder CA "+azdoemu.NewGUID()[:8], names, time.Now())
	if err != nil {
		ln.Close()
		return nil, err
	}
	dir, err := os.MkdirTemp("", "recorder-")
	if err != nil {
		ln.Close()
		return nil, err
	}
	s := &Server{ln: ln, ca: ca, dir: dir, caFile: filepath.Join(dir, "ca.pem")}
	if err := os.WriteFile(s.caFile, ca.PEM, 0o644); err != nil {
		ln.Close()
		os.RemoveAll(dir)
		return nil, err
	}
	s.srv = &http.Server{
		Handler:           s,
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{ca.Leaf}, MinVersion: tls.VersionTLS12},
		ReadHeaderTimeout: 30 * time.Second,
	}
	// The serving goroutine ends when Close closes the listener.
	go func() { _ = s.srv.ServeTLS(ln, "", "") }()
	return s, nil
}

// ServeHTTP records r and answers 200 "ok".
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var kept bytes.Buffer
	n, _ := io.Copy(io.Discard, io.TeeReader(r.Body, &limitedWriter{w: &kept, n: maxKeptBody}))
	s.mu.Lock()
	s.reqs = append(s.reqs, Request{
		Time: time.Now(), Host: r.Host, Method: r.Method, URI: r.RequestURI,
		Proto: r.Proto, Header: r.Header.Clone(), BodyBytes: n, Body: kept.Bytes(),
	})
	s.mu.Unlock()
	w.Header().Set("Content-Type", "text/plain")
	io.WriteString(w, "ok\n")
}

// Close stops the recorder.
func (s *Server) Close() error {
	err := s.srv.Close()
	os.RemoveAll(s.dir)
	return err
}

// Addr returns the listening address.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// URL returns "https://" + Addr().
func (s *Server) URL() string { return "https://" + s.Addr() }

// CertPool returns a pool holding the recorder's CA.
func (s *Server) CertPool() *x509.CertPool { return s.ca.Pool.Clone() }

// CAPEM returns the recorder's CA certificate in PEM.
func (s *Server) CAPEM() []byte { return append([]byte(nil), s.ca.PEM...) }

// CAFile returns the path of a file holding CAPEM.
func (s *Server) CAFile() string { return s.caFile }

// Requests returns a copy of everything recorded, oldest first.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Request, len(s.reqs))
	for i, r := range s.reqs {
		r.Header = r.Header.Clone()
		out[i] = r
	}
	return out
}

// Contains reports whether any recorded request URI, header, Basic
// credential (decoded from base64, in any header) or kept body contains
// needle, e.g. a token that must not have leaked.
func (s *Server) Contains(needle string) bool {
	if needle == "" {
		return false
	}
	for _, r := range s.Requests() {
		if strings.Contains(r.URI, needle) || bytes.Contains(r.Body, []byte(needle)) {
			return true
		}
		for k, vs := range r.Header {
			if strings.Contains(k, needle) {
				return true
			}
			for _, v := range vs {
				if strings.Contains(v, needle) || strings.Contains(basicCredential(v), needle) {
					return true
				}
			}
		}
	}
	return false
}

// basicCredential decodes the "user:password" of a "Basic …" header value;
// "" for anything else.
func basicCredential(v string) string {
	scheme, rest, ok := strings.Cut(strings.TrimSpace(v), " ")
	if !ok || !strings.EqualFold(scheme, "Basic") {
		return ""
	}
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(rest))
	if err != nil {
		return ""
	}
	return string(b)
}

// limitedWriter keeps the first n bytes written to it and drops the rest
// without failing.
type limitedWriter struct {
	w io.Writer
	n int64
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	if l.n > 0 {
		k := min(int64(len(p)), l.n)
		_, _ = l.w.Write(p[:k])
		l.n -= k
	}
	return len(p), nil
}
