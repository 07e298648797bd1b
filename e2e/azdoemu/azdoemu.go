// Package azdoemu is an Azure DevOps Services (and Server) emulator for
// end-to-end tests: real git smart HTTP over TLS, served by `git
// http-backend`, behind Azure DevOps' URL layouts, authentication and
// quirks as described in docs/azure-devops.md.
//
// It is strict on purpose: wherever the emulator is more lenient than the
// real service, tests against it prove nothing. It answers the real 401 (three
// challenges, X-VSS-ResourceTenant, X-TFS-ServiceError), the 203 sign-in page
// on REST calls without "X-TFS-FedAuthRedirect: Suppress", HTTP 400 TF401041
// for upload-pack clients without multi_ack, speaks git protocol v1 only and
// does not strip a ".git" suffix.
//
// The admin API is Go, not HTTP: tests create repositories and PATs, plug in
// the Entra ID emulator's token check, read the request log (which holds a
// hash of each credential, never the credential) and inject faults.
package azdoemu

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/azdo-sidecar/azdo-sidecar/e2e/internal/testca"
)

// AzureDevOpsResource is the application ID of Azure DevOps in Entra ID: the
// audience of its access tokens.
const AzureDevOpsResource = "499b84ac-1321-427f-aa17-267ca6975798"

// MSATenant is the resource tenant of an organization backed by Microsoft
// accounts.
const MSATenant = "00000000-0000-0000-0000-000000000000"

// DefaultNames are the DNS names every emulator leaf certificate carries.
var DefaultNames = []string{"dev.azure.com", "*.visualstudio.com", "ssh.dev.azure.com", "localhost"}

// Config configures a Server. The zero value is usable.
type Config struct {
	// Listen is the TCP address to listen on; default "127.0.0.1:0".
	Listen string
	// TenantID is the organization's Entra ID tenant, announced in 401s;
	// default a random GUID.
	TenantID string
	// SelfHosted are host names of Azure DevOps Server instances served
	// with the self-hosted layout (and put into the certificate).
	// localhost and loopback addresses always use that layout.
	SelfHosted []string
	// VirtualDir is the self-hosted virtual directory (e.g. "tfs"); empty
	// means none: /{collection}/{project}/_git/{repo}.
	VirtualDir string
	// Dir holds the repositories and the CA file; default a temporary
	// directory removed by Close.
	Dir string
	// GitHTTPBackend is the path of git-http-backend; default from
	// `git --exec-path`.
	GitHTTPBackend string
	// Clock tells the time for PAT expiry; default time.Now.
	Clock func() time.Time
	// Logf receives diagnostics (git-http-backend's stderr, server
	// errors); default discards them. Pass t.Logf in tests.
	Logf func(format string, args ...any)
	// HTTP1Only turns HTTP/2 off.
	HTTP1Only bool
	// EchoHeaders adds EchoPath, which Azure DevOps does not have: a
	// stand-in for any server on a configured host that reflects what it
	// receives (a debugging endpoint, an error page quoting the request,
	// TRACE), to test that the proxy never hands its credential back.
	EchoHeaders bool
}

// EchoPath answers any method, before authentication, with the request's
// headers in the body; with ?in=header it puts the Authorization header in
// the response header X-Echo-Authorization instead. Only with
// Config.EchoHeaders.
const EchoPath = "/_echo"

// BearerVerifier checks an Entra ID access token (signature against the
// JWKS, aud, iss, exp) and returns its subject.
type BearerVerifier func(token string) (subject string, err error)

// Server is a running emulator. Its methods are safe for concurrent use.
type Server struct {
	cfg        Config
	selfHosted map[string]bool
	ca         *testca.CA
	caFile     string
	ownDir     bool
	backend    string
	clock      func() time.Time
	logf       func(string, ...any)

	ln  net.Listener
	srv *http.Server

	mu       sync.Mutex
	repos    map[repoKey]*repo
	nextRepo int
	pats     map[[32]byte]*patRecord
	verifier BearerVerifier
	requests []Request
	faults   []*Fault
}

type repoKey struct{ org, project, repo string }

type repo struct {
	org, project, name string
	dir                string // absolute path of the bare repository
	rel                string // path below Dir, for GIT_PROJECT_ROOT
}

// New creates a server, its CA and leaf certificate, and binds its listener.
// Call Start to serve and Close to stop.
func New(cfg Config) (*Server, error) {
	s := &Server{
		cfg:        cfg,
		selfHosted: map[string]bool{},
		repos:      map[repoKey]*repo{},
		pats:       map[[32]byte]*patRecord{},
		clock:      cfg.Clock,
		logf:       cfg.Logf,
	}
	if s.clock == nil {
		s.clock = time.Now
	}
	if s.logf == nil {
		s.logf = func(string, ...any) {}
	}
	if s.cfg.Listen == "" {
		s.cfg.Listen = "127.0.0.1:0"
	}
	if s.cfg.TenantID == "" {
		s.cfg.TenantID = NewGUID()
	}
	for _, h := range cfg.SelfHosted {
		s.selfHosted[hostName(h)] = true
	}
	s.backend = cfg.GitHTTPBackend
	if s.backend == "" {
		out, err := exec.Command("git", "--exec-path").Output()
		if err != nil {
			return nil, fmt.Errorf("azdoemu: git --exec-path: %w", err)
		}
		s.backend = filepath.Join(strings.TrimSpace(string(out)), "git-http-backend")
	}
	if _, err := os.Stat(s.backend); err != nil {
		return nil, fmt.Errorf("azdoemu: git-http-backend: %w", err)
	}
	if s.cfg.Dir == "" {
		d, err := os.MkdirTemp("", "azdoemu-")
		if err != nil {
			return nil, fmt.Errorf("azdoemu: %w", err)
		}
		s.cfg.Dir, s.ownDir = d, true
	}
	if err := os.MkdirAll(filepath.Join(s.cfg.Dir, "repos"), 0o755); err != nil {
		return nil, fmt.Errorf("azdoemu: %w", err)
	}

	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		s.cleanupDir()
		return nil, fmt.Errorf("azdoemu: listen: %w", err)
	}
	s.ln = ln
	names := append([]string{}, DefaultNames...)
	names = append(names, "127.0.0.1", "::1")
	names = append(names, cfg.SelfHosted...)
	if tcp, ok := ln.Addr().(*net.TCPAddr); ok {
		names = append(names, tcp.IP.String())
	}
	for i, n := range names {
		names[i] = hostName(n)
	}
	if s.ca, err = testca.New("azdoemu CA "+NewGUID()[:8], names, time.Now()); err != nil {
		ln.Close()
		s.cleanupDir()
		return nil, err
	}
	s.caFile = filepath.Join(s.cfg.Dir, "ca.pem")
	if err := os.WriteFile(s.caFile, s.ca.PEM, 0o644); err != nil {
		ln.Close()
		s.cleanupDir()
		return nil, fmt.Errorf("azdoemu: %w", err)
	}

	tlsCfg := &tls.Config{
		Certificates: []tls.Certificate{s.ca.Leaf},
		MinVersion:   tls.VersionTLS12,
		NextProtos:   []string{"h2", "http/1.1"},
	}
	if cfg.HTTP1Only {
		tlsCfg.NextProtos = []string{"http/1.1"}
	}
	s.srv = &http.Server{
		Handler:           s,
		TLSConfig:         tlsCfg,
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          log.New(logfWriter{s.logf}, "azdoemu: ", 0),
	}
	if cfg.HTTP1Only {
		s.srv.TLSNextProto = map[string]func(*http.Server, *tls.Conn, http.Handler){}
	}
	return s, nil
}

// Start serves in a goroutine owned by the server until Close.
func (s *Server) Start() {
	go func() {
		if err := s.srv.ServeTLS(s.ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.logf("azdoemu: serve: %v", err)
		}
	}()
}

// Close stops the server, cuts open connections and, when the server made
// its directory itself, removes the repositories.
func (s *Server) Close() error {
	err := s.srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = s.srv.Shutdown(ctx)
	s.cleanupDir()
	return err
}

func (s *Server) cleanupDir() {
	if s.ownDir {
		os.RemoveAll(s.cfg.Dir)
	}
}

// Addr returns the address the server listens on, e.g. "127.0.0.1:41234".
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Port returns the port the server listens on.
func (s *Server) Port() int { return s.ln.Addr().(*net.TCPAddr).Port }

// IP returns the IP address the server listens on.
func (s *Server) IP() string { return s.ln.Addr().(*net.TCPAddr).IP.String() }

// TenantID returns the tenant announced in 401 answers.
func (s *Server) TenantID() string { return s.cfg.TenantID }

// Dir returns the directory holding the repositories and the CA file.
func (s *Server) Dir() string { return s.cfg.Dir }

// CAPEM returns the emulator's CA certificate in PEM.
func (s *Server) CAPEM() []byte { return append([]byte(nil), s.ca.PEM...) }

// CAFile returns the path of a file holding CAPEM.
func (s *Server) CAFile() string { return s.caFile }

// CertPool returns a pool holding only the emulator's CA.
func (s *Server) CertPool() *x509.CertPool { return s.ca.Pool.Clone() }

// Client returns an HTTP client that trusts the emulator and dials it for
// every host (dev.azure.com, *.visualstudio.com, self-hosted names), with
// timeouts. It never follows redirects, so tests see them.
func (s *Server) Client() *http.Client {
	addr := s.Addr()
	d := &net.Dialer{Timeout: 10 * time.Second}
	return &http.Client{
		Timeout: 2 * time.Minute,
		Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: s.CertPool()},
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return d.DialContext(ctx, network, addr)
			},
			ForceAttemptHTTP2:     true,
			TLSHandshakeTimeout:   10 * time.Second,
			ResponseHeaderTimeout: time.Minute,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// SetBearerVerifier plugs in the check for Entra ID access tokens. Without
// one, every bearer token is rejected.
func (s *Server) SetBearerVerifier(v BearerVerifier) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.verifier = v
}

// NewGUID returns a random GUID in its canonical lower-case form.
func NewGUID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

type logfWriter struct{ logf func(string, ...any) }

func (w logfWriter) Write(p []byte) (int, error) {
	w.logf("%s", strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

var _ io.Writer = logfWriter{}
