// Package sidecar runs `azdo-sidecar serve`: the HTTPS proxy, the credential
// socket and the metrics/health/status endpoint, around one token cache. It
// prints the JSON ready line once everything listens and drains gracefully
// when its context ends.
package sidecar

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/net/http/httpproxy"

	"github.com/azdo-sidecar/azdo-sidecar/audit"
	"github.com/azdo-sidecar/azdo-sidecar/azdo"
	"github.com/azdo-sidecar/azdo-sidecar/credential"
	"github.com/azdo-sidecar/azdo-sidecar/internal/certpool"
	"github.com/azdo-sidecar/azdo-sidecar/internal/proxycred"
	"github.com/azdo-sidecar/azdo-sidecar/internal/statedir"
	"github.com/azdo-sidecar/azdo-sidecar/proxy"
	"github.com/azdo-sidecar/azdo-sidecar/secret"
	"github.com/azdo-sidecar/azdo-sidecar/token"
	"github.com/azdo-sidecar/azdo-sidecar/token/vaultsource"
	"github.com/azdo-sidecar/azdo-sidecar/vaultapi"
)

// Mode is where tokens come from.
type Mode string

// Token source modes.
const (
	ModeNone  Mode = "none"  // unconfigured: every Azure DevOps request is answered with an explanation
	ModePAT   Mode = "pat"   // standalone: one static PAT
	ModeVault Mode = "vault" // the runner's vault
)

// Options configure a sidecar. Secrets are secret.String from the moment
// they were read.
type Options struct {
	Listen            string // proxy address, e.g. 127.0.0.1:3128 (port 0 picks one)
	MetricsListen     string // /metrics, /healthz, /status
	Socket            string // credential socket path
	StateDir          string // where ca.pem is written
	InsecureListenAny bool   // allow non-loopback listen addresses
	// InsecureNoProxyAuth lets clients use the proxy without its credential
	// (the check of the client's uid stays where it is possible).
	InsecureNoProxyAuth bool
	// ProxyOnly: the credential socket never hands out a token (serve
	// --proxy-only); the environment's policy can also ask for it, this
	// flag can only tighten.
	ProxyOnly bool
	// ProxyClientUIDs are uids, besides the sidecar's own, whose
	// connections may use the proxy (with its credential): the development
	// user when the sidecar runs as a user of its own (--proxy-client-uid).
	ProxyClientUIDs []int

	Mode        Mode
	PAT         secret.String // ModePAT
	VaultURL    string        // ModeVault
	EnvToken    secret.String // ModeVault
	VaultCAFile string        // ModeVault, optional

	SelfHosted     []string // --host
	TunnelPorts    []int    // --tunnel-port
	PlainHTTPHosts []string // --plain-http-host
	Resolve        []string // --resolve, HOST:PORT:ADDR
	UpstreamCAFile string
	UpstreamProxy  string
	RefreshMargin  time.Duration // 0: token.DefaultMargin
	DrainTimeout   time.Duration // 0: DefaultDrainTimeout

	Logger *slog.Logger
	Now    func() time.Time
}

// DefaultDrainTimeout is how long SIGTERM waits for requests in flight and
// open tunnels before cutting them; Kubernetes allows 30 s by default.
const DefaultDrainTimeout = 20 * time.Second

// Ready is the JSON line printed on stdout once the sidecar serves.
type Ready struct {
	Proxy   string `json:"proxy"`
	Socket  string `json:"socket"`
	CAFile  string `json:"ca_file"`
	Metrics string `json:"metrics"`
	// ProxyURLFile holds the proxy URL with its credential (mode 0600).
	ProxyURLFile string `json:"proxy_url_file"`
}

// ErrNotLoopback is returned for a non-loopback listen address without
// InsecureListenAny.
var ErrNotLoopback = errors.New("sidecar: listen address is not loopback")

// Sidecar is a running sidecar.
type Sidecar struct {
	opts    Options
	log     *slog.Logger
	hosts   *azdo.Hosts
	cache   *token.Cache
	proxy   *proxy.Proxy
	cred    *credential.Server
	audit   *audit.Shipper // vault mode only
	po      *proxyOnlyHandler
	metrics *http.Server
	ready   Ready
	started time.Time
	// vault is what the start-up probe of the vault found: "" before it
	// answered, "reachable", or why not.
	vault atomic.Pointer[string]

	wg     sync.WaitGroup
	errMu  sync.Mutex
	errs   []error
	closed chan struct{}
}

// Start builds and starts every part; on error nothing is left running.
func Start(opts Options) (s *Sidecar, err error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.DrainTimeout <= 0 {
		opts.DrainTimeout = DefaultDrainTimeout
	}
	if opts.RefreshMargin <= 0 {
		opts.RefreshMargin = token.DefaultMargin
	}
	for _, a := range []string{opts.Listen, opts.MetricsListen} {
		if err := checkLoopback(a, opts.InsecureListenAny); err != nil {
			return nil, err
		}
	}
	hosts, err := azdo.NewHosts(opts.SelfHosted)
	if err != nil {
		return nil, err
	}
	resolve, err := proxy.ParseResolve(opts.Resolve)
	if err != nil {
		return nil, err
	}
	roots, err := upstreamRoots(opts.UpstreamCAFile)
	if err != nil {
		return nil, err
	}
	var upstreamProxy *url.URL
	if opts.UpstreamProxy != "" {
		if upstreamProxy, err = url.Parse(opts.UpstreamProxy); err != nil || upstreamProxy.Host == "" {
			return nil, fmt.Errorf("sidecar: --upstream-proxy must be a URL like http://proxy.example:8080")
		}
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	sm := newSourceMetrics(reg)

	src, err := baseSource(opts)
	if err != nil {
		return nil, err
	}
	s = &Sidecar{opts: opts, log: opts.Logger, hosts: hosts, started: opts.Now(), closed: make(chan struct{})}
	// In vault mode the audit trail also goes to the vault, in batches.
	var sink proxy.AuditSink
	if vs, ok := src.(*vaultsource.Source); ok {
		if s.audit, err = audit.New(auditSender{vs}, audit.Options{Logger: opts.Logger, Registerer: reg}); err != nil {
			return nil, err
		}
		sink = s.audit
		defer func() {
			if err != nil {
				_ = s.audit.Close(canceled())
			}
		}()
	}
	cache := token.NewCache(src, token.CacheOptions{Margin: opts.RefreshMargin, Now: opts.Now, OnFetch: sm.observe})
	s.cache = cache
	// On failure, undo what was started (s itself is nil by then).
	var cleanup []func()
	defer func() {
		if err != nil {
			for i := len(cleanup) - 1; i >= 0; i-- {
				cleanup[i]()
			}
			cache.Close()
		}
	}()

	if err := checkStateDir(opts.StateDir); err != nil {
		return nil, err
	}
	urlFile := proxycred.Path(opts.StateDir)
	proxyPass := proxyPassword(urlFile, opts.Logger)
	auth := &proxy.Auth{User: proxycred.User, Password: proxyPass, PeerUID: proxy.PeerUID, UID: os.Getuid()}
	if opts.InsecureNoProxyAuth {
		if len(opts.ProxyClientUIDs) > 0 {
			return nil, errors.New("sidecar: --proxy-client-uid lets other users use the proxy with its credential; it cannot be combined with --insecure-no-proxy-auth")
		}
		auth.Password = secret.String{}
	}
	for _, uid := range opts.ProxyClientUIDs {
		if uid < 0 {
			return nil, fmt.Errorf("sidecar: --proxy-client-uid %d is not a uid", uid)
		}
	}
	auth.ClientUIDs = opts.ProxyClientUIDs

	var advice string
	if opts.Mode == ModePAT {
		// Standalone: no vault, nothing to connect; the PAT is the user's.
		advice = "check that the PAT given with --pat-file or AZDO_PAT is valid, not expired and has the Code (read & write) scope; replace it and restart azdo-sidecar serve."
	}
	s.proxy, err = proxy.New(proxy.Config{
		RejectedAdvice: advice,
		Hosts:          hosts,
		OrgFor:         hosts.OrgFor,
		SelfHosted:     hosts.SelfHosted(),
		Source:         s.cache,
		UpstreamRoots:  roots,
		Resolve:        resolve,
		UpstreamProxy:  upstreamProxy,
		Logger:         opts.Logger,
		Registerer:     reg,
		Now:            opts.Now,
		Auth:           auth,
		TunnelPorts:    opts.TunnelPorts,
		PlainHTTPHosts: opts.PlainHTTPHosts,
		Audit:          sink,
	})
	if err != nil {
		return nil, err
	}

	proxyLn, err := net.Listen("tcp", opts.Listen)
	if err != nil {
		return nil, fmt.Errorf("sidecar: proxy listen: %w", err)
	}
	cleanup = append(cleanup, func() { proxyLn.Close() })
	if err := checkNotSelf(upstreamProxy, proxyLn.Addr().String()); err != nil {
		return nil, err
	}
	metricsLn, err := net.Listen("tcp", opts.MetricsListen)
	if err != nil {
		return nil, fmt.Errorf("sidecar: metrics listen: %w", err)
	}
	cleanup = append(cleanup, func() { metricsLn.Close() })
	credLn, err := credential.Listen(opts.Socket)
	if err != nil {
		return nil, err
	}
	cleanup = append(cleanup, func() { credLn.Close() })

	// Only now that every listener is ours does anything change on disk: a
	// second sidecar that cannot bind must leave the running one's CA and
	// proxy URL alone.
	caFile, err := writeCA(opts.StateDir, s.proxy.CA().CertPEM())
	if err != nil {
		return nil, err
	}
	if err := proxycred.Write(urlFile, "http://"+proxyLn.Addr().String(), proxyPass); err != nil {
		return nil, fmt.Errorf("sidecar: write the proxy URL file: %w", err)
	}

	s.po = &proxyOnlyHandler{next: credential.NewTokenHandler(s.cache, hosts), src: s.cache, hosts: hosts, always: opts.ProxyOnly}
	s.cred = &credential.Server{
		Handler: s.po,
		Logger:  opts.Logger,
		// `azdo-sidecar status` asks here first: the socket's path is known
		// to it, the metrics port may be random (--metrics-listen :0).
		Status: func() ([]byte, error) { return json.Marshal(s.Status()) },
	}
	s.metrics = &http.Server{
		Handler:           s.mux(reg),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		ErrorLog:          slog.NewLogLogger(opts.Logger.Handler(), slog.LevelDebug),
	}
	s.ready = Ready{Proxy: proxyLn.Addr().String(), Socket: opts.Socket, CAFile: caFile, Metrics: metricsLn.Addr().String(), ProxyURLFile: urlFile}

	s.serve("proxy", func() error { return s.proxy.Serve(proxyLn) }, http.ErrServerClosed)
	s.serve("credential", func() error { return s.cred.Serve(credLn) }, credential.ErrServerClosed)
	s.serve("metrics", func() error { return s.metrics.Serve(metricsLn) }, http.ErrServerClosed)
	s.log.Info("sidecar: serving", "mode", string(opts.Mode), "proxy", s.ready.Proxy, "socket", s.ready.Socket,
		"ca_file", s.ready.CAFile, "metrics", s.ready.Metrics, "proxy_url_file", s.ready.ProxyURLFile, "hosts", s.hostList())
	if vs, ok := src.(*vaultsource.Source); ok {
		s.wg.Add(1)
		go s.probeVault(vs)
	}
	return s, nil
}

// probeVault checks once, at start, that the vault answers, so that a
// wrong --vault-url shows in the log and in status before git fails.
func (s *Sidecar) probeVault(vs *vaultsource.Source) {
	defer s.wg.Done()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	go func() {
		select {
		case <-s.closed:
			cancel()
		case <-ctx.Done():
		}
	}()
	state := "reachable"
	if err := vs.Probe(ctx); err != nil {
		if ctx.Err() != nil && isClosed(s.closed) {
			return
		}
		state = err.Error()
		s.log.Error("sidecar: "+state, "vault_url", s.opts.VaultURL)
	}
	s.vault.Store(&state)
}

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// serve runs one server in a goroutine the Sidecar owns.
func (s *Sidecar) serve(name string, f func() error, closed error) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := f(); err != nil && !errors.Is(err, closed) {
			s.log.Error("sidecar: server stopped", "server", name, "err", err)
			s.errMu.Lock()
			s.errs = append(s.errs, fmt.Errorf("%s: %w", name, err))
			s.errMu.Unlock()
			select {
			case <-s.closed:
			default:
				close(s.closed)
			}
		}
	}()
}

// Ready returns the addresses the sidecar serves on.
func (s *Sidecar) Ready() Ready { return s.ready }

// Failed is closed when one of the servers stopped on its own.
func (s *Sidecar) Failed() <-chan struct{} { return s.closed }

// Shutdown drains the proxy (requests in flight, open tunnels) and the
// credential socket until ctx is done, then stops everything and waits for
// every goroutine the sidecar started.
func (s *Sidecar) Shutdown(ctx context.Context) error {
	var errs []error
	if err := s.proxy.Shutdown(ctx); err != nil {
		errs = append(errs, fmt.Errorf("proxy drain: %w", err))
	}
	if err := s.cred.Shutdown(ctx); err != nil {
		errs = append(errs, fmt.Errorf("credential drain: %w", err))
	}
	if err := s.metrics.Shutdown(ctx); err != nil {
		s.metrics.Close()
	}
	if s.audit != nil {
		// The proxy has recorded its last events: deliver them while
		// the drain time lasts.
		if err := s.audit.Close(ctx); err != nil {
			s.log.Warn("sidecar: audit events left undelivered", "events", s.audit.Len())
		}
	}
	s.wg.Wait()
	s.cache.Close()
	s.errMu.Lock()
	errs = append(errs, s.errs...)
	s.errMu.Unlock()
	return errors.Join(errs...)
}

// Run starts the sidecar, prints the ready line on stdout, serves until ctx
// ends (SIGTERM), then drains for at most DrainTimeout. A drain cut short is
// logged, not an error: the process still exits 0.
func Run(ctx context.Context, opts Options, stdout io.Writer) error {
	s, err := Start(opts)
	if err != nil {
		return err
	}
	line, _ := json.Marshal(s.Ready())
	if _, err := fmt.Fprintf(stdout, "%s\n", line); err != nil {
		s.log.Warn("sidecar: cannot write the ready line", "err", err)
	}
	// Start-up garbage (flag and config parsing, the CA key, TLS and
	// Prometheus set-up) would otherwise stay mapped until the runtime's
	// scavenger gets to it: a collection now takes the idle sidecar's
	// private memory from ~7 to ~4.5 MiB (BENCHMARKS.md).
	debug.FreeOSMemory()
	var failed bool
	select {
	case <-ctx.Done():
		s.log.Info("sidecar: shutting down, draining connections", "timeout", s.opts.DrainTimeout.String())
	case <-s.Failed():
		failed = true
	}
	dctx, cancel := context.WithTimeout(context.Background(), s.opts.DrainTimeout)
	defer cancel()
	err = s.Shutdown(dctx)
	if failed {
		return err
	}
	if err != nil {
		s.log.Warn("sidecar: drain cut short", "err", err)
	} else {
		s.log.Info("sidecar: stopped")
	}
	return nil
}

// baseSource is the token source of opts.Mode, before the cache.
func baseSource(opts Options) (token.Source, error) {
	switch opts.Mode {
	case ModePAT:
		if opts.PAT.IsZero() {
			return nil, errors.New("sidecar: standalone mode without a PAT")
		}
		return token.NewStatic(opts.PAT), nil
	case ModeVault:
		return vaultsource.New(vaultsource.Options{
			URL:      opts.VaultURL,
			EnvToken: opts.EnvToken,
			CAFile:   opts.VaultCAFile,
			MinValid: opts.RefreshMargin,
		})
	case ModeNone, "":
		return unconfigured{}, nil
	}
	return nil, fmt.Errorf("sidecar: unknown mode %q", opts.Mode)
}

// auditSender sends audit batches through the vault source, telling the
// shipper which refusals are for good.
type auditSender struct{ vs *vaultsource.Source }

func (a auditSender) SendAudit(ctx context.Context, evs []vaultapi.AuditEvent) error {
	err := a.vs.SendAudit(ctx, evs)
	if errors.Is(err, vaultsource.ErrAuditRefused) {
		return fmt.Errorf("%w: %w", audit.ErrDrop, err)
	}
	return err
}

// canceled returns a context that is already done.
func canceled() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}

// unconfigured answers every token request with an explanation.
type unconfigured struct{}

func (unconfigured) Token(_ context.Context, key token.Key) (token.Token, error) {
	return token.Token{}, fmt.Errorf("azdo-sidecar runs without a token source for %s (start it with --pat-file or AZDO_PAT, or --vault-url and --env-token-file): %w", key, token.ErrNoCredential)
}

// checkLoopback refuses addresses reachable from other machines.
func checkLoopback(addr string, insecureAny bool) error {
	if insecureAny {
		return nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("sidecar: listen address %q: %w", addr, err)
	}
	if strings.EqualFold(host, "localhost") {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("%w: %q (anyone who reaches it gets your Azure DevOps access; pass --insecure-listen-any to allow it)", ErrNotLoopback, addr)
}

// checkNotSelf refuses an upstream proxy (--upstream-proxy, or HTTPS_PROXY
// and HTTP_PROXY when it is not set) that is this proxy: every request
// would loop. Images that export HTTPS_PROXY for the whole environment
// must exempt the sidecar's own process.
func checkNotSelf(upstream *url.URL, self string) error {
	if upstream != nil {
		if sameAddr(hostPort(upstream), self) {
			return fmt.Errorf("sidecar: --upstream-proxy %s is this proxy itself", upstream.Redacted())
		}
		return nil
	}
	env := httpproxy.FromEnvironment()
	for name, v := range map[string]string{"HTTPS_PROXY": env.HTTPSProxy, "HTTP_PROXY": env.HTTPProxy} {
		if v == "" {
			continue
		}
		u, err := url.Parse(v)
		if err != nil || u.Host == "" {
			u, err = url.Parse("http://" + v)
		}
		if err == nil && sameAddr(hostPort(u), self) {
			return fmt.Errorf("sidecar: %s points at this proxy itself (%s); unset it for the sidecar's process or pass --upstream-proxy", name, u.Redacted())
		}
	}
	return nil
}

func hostPort(u *url.URL) string {
	if u.Port() != "" {
		return u.Host
	}
	if u.Scheme == "https" {
		return net.JoinHostPort(u.Hostname(), "443")
	}
	return net.JoinHostPort(u.Hostname(), "80")
}

func sameAddr(a, b string) bool {
	ha, pa, err1 := net.SplitHostPort(a)
	hb, pb, err2 := net.SplitHostPort(b)
	if err1 != nil || err2 != nil || pa != pb {
		return false
	}
	ia, ib := net.ParseIP(ha), net.ParseIP(hb)
	if strings.EqualFold(ha, "localhost") {
		ia = net.IPv4(127, 0, 0, 1)
	}
	return ia != nil && ib != nil && (ia.Equal(ib) || (ia.IsLoopback() && ib.IsLoopback()))
}

// upstreamRoots is the system pool plus the PEM file, if any.
func upstreamRoots(file string) (*x509.CertPool, error) {
	pool, err := certpool.Load(file)
	if err != nil {
		return nil, fmt.Errorf("sidecar: --upstream-ca-file: %w", err)
	}
	return pool, nil
}

// proxyPassword returns the proxy credential in file when there is a
// trustworthy one (a restarted sidecar keeps the credential that git's
// configuration carries), else a new one.
func proxyPassword(file string, log *slog.Logger) secret.String {
	pass, err := proxycred.Load(file)
	switch {
	case err == nil:
		log.Debug("sidecar: reusing the proxy credential", "file", file)
		return pass
	case errors.Is(err, fs.ErrNotExist):
	case errors.Is(err, proxycred.ErrInsecure):
		log.Warn("sidecar: the proxy URL file could have been read by someone else; replacing its credential (run azdo-sidecar setup again)", "err", err)
	default:
		log.Warn("sidecar: replacing an unreadable proxy URL file (run azdo-sidecar setup again)", "err", err)
	}
	return proxycred.NewPassword()
}

// checkStateDir creates the state directory (and its missing parents) with
// mode 0700, or checks an existing one: a directory others may write to
// is refused, never chmod-ed (it may be shared on purpose, like /tmp).
func checkStateDir(dir string) error {
	if dir == "" {
		return errors.New("sidecar: no state directory")
	}
	return statedir.Ensure(dir)
}

// writeCA writes the CA certificate to dir/ca.pem (0644), atomically, and
// returns its path.
func writeCA(dir string, pem []byte) (string, error) {
	path := filepath.Join(dir, "ca.pem")
	tmp, err := os.CreateTemp(dir, ".ca-*.pem")
	if err != nil {
		return "", fmt.Errorf("sidecar: write CA: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(pem); err != nil {
		tmp.Close()
		return "", fmt.Errorf("sidecar: write CA: %w", err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return "", fmt.Errorf("sidecar: write CA: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return "", fmt.Errorf("sidecar: write CA: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return "", fmt.Errorf("sidecar: write CA: %w", err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return path, nil
	}
	return abs, nil
}

func (s *Sidecar) hostList() []string {
	return append([]string{azdo.ServicesHost, "*" + ".visualstudio.com"}, s.hosts.Entries()...)
}

// sourceMetrics observe calls to the real token source (behind the cache).
type sourceMetrics struct {
	fetches *prometheus.CounterVec
	latency prometheus.Histogram
}

func newSourceMetrics(reg prometheus.Registerer) *sourceMetrics {
	m := &sourceMetrics{
		fetches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "azdo_sidecar_token_source_fetches_total",
			Help: "Calls from the token cache to the token source (vault or PAT), by result.",
		}, []string{"result"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "azdo_sidecar_token_source_fetch_seconds",
			Help:    "Latency of calls to the token source.",
			Buckets: []float64{.001, .005, .025, .1, .5, 2, 10, 30},
		}),
	}
	reg.MustRegister(m.fetches, m.latency)
	return m
}

func (m *sourceMetrics) observe(_ token.Key, took time.Duration, err error) {
	m.latency.Observe(took.Seconds())
	result := "ok"
	var ce *token.ConnectError
	var fe *token.ForbiddenError
	switch {
	case err == nil:
	case errors.As(err, &ce):
		result = "connect_required"
	case errors.As(err, &fe):
		result = "forbidden_by_policy"
	case errors.Is(err, token.ErrUnauthorized):
		result = "unauthorized"
	case errors.Is(err, token.ErrNoCredential):
		result = "no_credential"
	case errors.Is(err, token.ErrUnavailable):
		result = "unavailable"
	default:
		result = "error"
	}
	m.fetches.WithLabelValues(result).Inc()
}

// peerUID returns the uid owning the client's end of r's connection, when
// it can be learned (proxy.PeerUID).
func peerUID(r *http.Request) (int, bool) {
	local, _ := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	remote, err := net.ResolveTCPAddr("tcp", r.RemoteAddr)
	if local == nil || err != nil {
		return 0, false
	}
	return proxy.PeerUID(local, remote)
}

// loopbackConn reports whether r came in on a loopback address.
func loopbackConn(r *http.Request) bool {
	local, _ := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	if local == nil {
		return false
	}
	ap, err := netip.ParseAddrPort(local.String())
	return err == nil && ap.Addr().Unmap().IsLoopback()
}

// mux serves /metrics, /healthz and /status.
func (s *Sidecar) mux(reg *prometheus.Registry) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		// /metrics is for a scraper, which may run as anyone; /status
		// (organizations, token kinds and expiry) is for the owner.
		uid, ok := peerUID(r)
		switch {
		case ok && uid != os.Getuid():
			s.log.Warn("sidecar: refused /status to a client of another user", "client_uid", uid)
			http.Error(w, "azdo-sidecar: /status is for the user who runs the sidecar", http.StatusForbidden)
			return
		case !ok && !loopbackConn(r):
			// Another machine or network namespace: nobody can tell who
			// asks. (On loopback an unknown uid is a system without
			// /proc/net/tcp, where the loopback listener is the limit.)
			s.log.Warn("sidecar: refused /status to a client whose uid is unknown, on a non-loopback address", "client", r.RemoteAddr)
			http.Error(w, "azdo-sidecar: /status is for the user who runs the sidecar, and this connection's user cannot be learned; ask on a loopback address", http.StatusForbidden)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(s.Status())
	})
	return mux
}
