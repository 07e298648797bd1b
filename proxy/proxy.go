package proxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/elazarl/goproxy"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/azdo-sidecar/azdo-sidecar/azdo"
	"github.com/azdo-sidecar/azdo-sidecar/token"
)

// Matcher decides which hosts are Azure DevOps hosts. azdo.Hosts implements
// it. Match gets "host" for the default port or "host:port" otherwise, lower
// case.
type Matcher interface {
	Match(hostport string) bool
}

// OrgFunc returns the organization (or collection) a request is for, from
// its host, URL path and the non-secret user name git sent, or "" when
// unknown. (*azdo.Hosts).OrgFor is one.
type OrgFunc func(host, path, username string) string

// Config configures a Proxy.
type Config struct {
	// Hosts decides which CONNECT targets are intercepted. Required.
	Hosts Matcher
	// RejectedAdvice ends the message git shows when Azure DevOps rejects
	// the injected credential (default: "check that it is valid and has
	// the Code (read & write) scope, or connect again."); standalone mode
	// has nothing to connect, so it says which PAT to replace.
	RejectedAdvice string
	// OrgFor finds the organization of a request; nil: always "".
	OrgFor OrgFunc
	// SelfHosted lists the self-hosted hosts (HOST[:PORT]) the CA's name
	// constraints must permit besides Azure DevOps Services.
	SelfHosted []string
	// Source hands out the tokens to inject. Required. When it also
	// implements token.Invalidator, an upstream 401 invalidates the token.
	Source token.Source
	// UpstreamRoots verifies upstream TLS; nil means the system roots.
	UpstreamRoots *x509.CertPool
	// Resolve overrides upstream addresses (--resolve).
	Resolve Resolve
	// UpstreamProxy chains to another proxy; nil reads HTTPS_PROXY,
	// HTTP_PROXY and NO_PROXY from the environment.
	UpstreamProxy *url.URL
	// ResponseHeaderTimeout bounds the wait for upstream response headers
	// after the request body was sent; 0 means 5 minutes.
	ResponseHeaderTimeout time.Duration
	// TokenTimeout bounds one token fetch; 0 means 30 seconds.
	TokenTimeout time.Duration
	// LeafCacheSize bounds the leaf certificate cache; 0 means 256.
	LeafCacheSize int
	// Logger receives logs; nil discards them.
	Logger *slog.Logger
	// Registerer receives the proxy's metrics; nil registers nowhere.
	Registerer prometheus.Registerer
	// Now is the clock for certificates and status; nil is time.Now.
	Now func() time.Time
	// Audit receives an event per git operation and per other intercepted
	// request (see AuditSink); nil: events go to Logger only.
	Audit AuditSink
	// AuditIdle is how long a tunnel is quiet before its git operation is
	// recorded; 0 means DefaultAuditIdle.
	AuditIdle time.Duration
	// Auth says who may use the proxy (see Auth); nil: anyone who reaches
	// the listener, with a WARN at New.
	Auth *Auth
	// TunnelPorts are the ports blind tunnels may go to besides 443 and
	// the ports of the SelfHosted hosts (--tunnel-port).
	TunnelPorts []int
	// PlainHTTPHosts are the HOST[:PORT] plain-http requests are forwarded
	// to (--plain-http-host); no other is.
	PlainHTTPHosts []string
}

// Proxy is the sidecar's HTTP proxy. Create it with New, run it with Serve,
// stop it with Shutdown.
type Proxy struct {
	hosts        Matcher
	orgFor       OrgFunc
	src          token.Source
	tokenTimeout time.Duration
	log          *slog.Logger
	now          func() time.Time
	advice       string // Config.RejectedAdvice

	ca     *CA
	leaves *leafCache
	up     *upstream
	tr     *http.Transport
	m      *metrics
	gp     *goproxy.ProxyHttpServer
	srv    *http.Server
	conns  *tracker

	inflight atomic.Int64
	tunnels  atomic.Int64

	admission admission

	tokMu  sync.Mutex
	tokens map[token.Key]TokenStatus

	// The policy hook (policy.go) and the audit trail (audit.go).
	enf          *enforcer
	audit        AuditSink
	auditIdle    time.Duration
	auditPending sync.Map // *tunnelAudit with an operation not yet recorded
}

// maxReplayBody is the largest request body buffered so that the request
// can be retried after an upstream 401 (git's probe POST and negotiation
// requests are small; packs are streamed and never retried).
const maxReplayBody = 64 << 10

// releaseIdle is how often the proxy checks whether it is idle after
// traffic, and then returns the memory of the last burst to the system
// (tracker.releaseIfIdle): the runtime's own scavenger would take minutes.
const releaseIdle = 15 * time.Second

// maxStatusTokens bounds the per-key token metadata kept for status.
const maxStatusTokens = 256

// New builds a proxy and its CA.
func New(cfg Config) (*Proxy, error) {
	if cfg.Hosts == nil || cfg.Source == nil {
		return nil, errors.New("proxy: Config.Hosts and Config.Source are required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.OrgFor == nil {
		cfg.OrgFor = func(string, string, string) string { return "" }
	}
	if cfg.TokenTimeout <= 0 {
		cfg.TokenTimeout = 30 * time.Second
	}
	if cfg.LeafCacheSize <= 0 {
		cfg.LeafCacheSize = 256
	}
	roots := cfg.UpstreamRoots
	if roots == nil {
		var err error
		if roots, err = x509.SystemCertPool(); err != nil {
			return nil, fmt.Errorf("proxy: system roots: %w", err)
		}
	}
	ca, err := NewCA(cfg.SelfHosted, cfg.Now)
	if err != nil {
		return nil, err
	}
	adm, err := newAdmission(cfg.TunnelPorts, cfg.SelfHosted, cfg.PlainHTTPHosts)
	if err != nil {
		return nil, err
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, fmt.Errorf("proxy: metrics: %w", err)
	}
	enf, err := newEnforcer(cfg.Hosts, cfg.Registerer)
	if err != nil {
		return nil, fmt.Errorf("proxy: metrics: %w", err)
	}
	if cfg.AuditIdle <= 0 {
		cfg.AuditIdle = DefaultAuditIdle
	}
	p := &Proxy{
		hosts:        cfg.Hosts,
		orgFor:       cfg.OrgFor,
		src:          cfg.Source,
		tokenTimeout: cfg.TokenTimeout,
		advice:       cfg.RejectedAdvice,
		log:          cfg.Logger,
		now:          cfg.Now,
		ca:           ca,
		m:            m,
		conns:        newTracker(debug.FreeOSMemory),
		admission:    adm,
		tokens:       make(map[token.Key]TokenStatus),
		enf:          enf,
		audit:        cfg.Audit,
		auditIdle:    cfg.AuditIdle,
	}
	p.leaves = newLeafCache(cfg.LeafCacheSize, cfg.Now, ca.Issue)
	p.leaves.generated = m.leaves.Inc
	p.up = newUpstream(cfg.Resolve, cfg.UpstreamProxy, roots)
	p.tr = p.up.transport(roots, cfg.ResponseHeaderTimeout)

	gp := goproxy.NewProxyHttpServer()
	gp.Logger = goproxyLogger{p.log}
	gp.Tr = p.tr // never goproxy's default, which skips verification
	gp.AllowHTTP2 = false
	gp.KeepAcceptEncoding = true // send sets it to identity
	gp.ConnectDial = nil
	gp.ConnectDialWithReq = p.dialTunnel
	gp.ConnectionErrHandler = p.connectError
	gp.NonproxyHandler = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "azdo-sidecar: this is an HTTP proxy; it answers only proxy requests", http.StatusBadRequest)
	})
	gp.OnRequest().HandleConnectFunc(p.onConnect)
	gp.OnRequest().DoFunc(p.onRequest)
	p.gp = gp
	logAuth(p.log, cfg.Auth)
	p.srv = &http.Server{
		Handler:           p.authorize(cfg.Auth, gp),
		ConnContext:       connContext,
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       5 * time.Minute,
		ErrorLog:          slog.NewLogLogger(p.log.Handler(), slog.LevelDebug),
		// The proxy listener speaks HTTP/1.1 only.
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){},
	}
	return p, nil
}

// CA returns the interception CA.
func (p *Proxy) CA() *CA { return p.ca }

// Serve accepts proxy connections on l until Shutdown. It returns
// http.ErrServerClosed after Shutdown.
func (p *Proxy) Serve(l net.Listener) error {
	// The release check lives exactly as long as Serve: Shutdown closes the
	// listener first, so it has stopped before Shutdown closes the last
	// connections (no release after Shutdown), and no goroutine outlives
	// the proxy.
	stop, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		p.releaseLoop(stop, releaseIdle)
	}()
	defer func() {
		close(stop)
		<-stopped
	}()
	return p.srv.Serve(&trackingListener{Listener: l, t: p.conns})
}

// releaseLoop checks every period whether the proxy is idle after traffic
// and returns the memory of that traffic to the system, until stop closes.
func (p *Proxy) releaseLoop(stop <-chan struct{}, period time.Duration) {
	tick := time.NewTicker(period)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
			p.conns.releaseIfIdle()
		}
	}
}

// drainQuiet is how long Shutdown waits with nothing in flight before it
// closes idle intercepted connections: one git command is several requests
// on one connection (GET info/refs, then POST upload-pack), and the next
// one follows within milliseconds.
const drainQuiet = time.Second

// Shutdown stops accepting connections and lets intercepted requests and
// open tunnels finish until ctx is done: it returns once nothing has been
// in flight for drainQuiet, then closes every connection. Requests keep
// being served on connections already open, so a git command in progress
// completes. It returns ctx's error when it had to cut connections short.
func (p *Proxy) Shutdown(ctx context.Context) error {
	err := p.srv.Shutdown(ctx)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var quietSince time.Time
	for err == nil {
		if p.inflight.Load() > 0 || p.tunnels.Load() > 0 {
			quietSince = time.Time{}
		} else if quietSince.IsZero() {
			quietSince = time.Now()
		} else if time.Since(quietSince) >= drainQuiet || p.conns.len() == 0 {
			break
		}
		select {
		case <-ctx.Done():
			err = ctx.Err()
		case <-tick.C:
		}
	}
	p.conns.closeAll()
	p.tr.CloseIdleConnections()
	p.flushAudit()
	return err
}

// connectInfo travels from a CONNECT to the requests inside its tunnel.
type connectInfo struct {
	host  string       // canonical CONNECT target
	audit *tunnelAudit // gathers the tunnel's requests into git operations
}

// onConnect intercepts CONNECT to Azure DevOps hosts and tunnels the rest.
func (p *Proxy) onConnect(host string, ctx *goproxy.ProxyCtx) (*goproxy.ConnectAction, string) {
	target := canonicalHost(host, "443")
	if p.hosts.Match(target) {
		ctx.UserData = &connectInfo{host: target, audit: &tunnelAudit{p: p}}
		return &goproxy.ConnectAction{Action: goproxy.ConnectMitm, TLSConfig: p.tlsConfig}, host
	}
	p.m.request(classOther)
	return &goproxy.ConnectAction{Action: goproxy.ConnectAccept}, host
}

// tlsConfig serves the intercepted side of a tunnel with a leaf for host,
// HTTP/1.1 only (goproxy's request handlers do not run on HTTP/2).
func (p *Proxy) tlsConfig(host string, _ *goproxy.ProxyCtx) (*tls.Config, error) {
	leaf, err := p.leaves.get(hostOnly(canonicalHost(host, "443")))
	if err != nil {
		p.log.Warn("proxy: cannot issue leaf certificate", "host", hostOnly(host), "err", err)
		return nil, err
	}
	return &tls.Config{
		Certificates: []tls.Certificate{*leaf},
		NextProtos:   []string{"http/1.1"},
		MinVersion:   tls.VersionTLS12,
	}, nil
}

// dialTunnel opens the upstream side of a blind tunnel and counts it.
func (p *Proxy) dialTunnel(req *http.Request, _, addr string) (net.Conn, error) {
	c, err := p.up.dialTunnel(req.Context(), addr)
	if err != nil {
		return nil, err
	}
	p.tunnels.Add(1)
	p.m.tunnels.Inc()
	return wrapCountedConn(c, func(net.Conn) {
		p.tunnels.Add(-1)
		p.m.tunnels.Dec()
	}, nil, p.m.bytes.WithLabelValues(classOther, "in"), p.m.bytes.WithLabelValues(classOther, "out")), nil
}

// connectError answers a CONNECT whose upstream could not be reached.
func (p *Proxy) connectError(w io.Writer, ctx *goproxy.ProxyCtx, err error) {
	p.log.Info("proxy: tunnel dial failed", "target", ctx.Req.Host, "err", err)
	msg := "azdo-sidecar: cannot reach " + ctx.Req.Host + "\n"
	_, _ = fmt.Fprintf(w, "HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", len(msg), msg)
}

// onRequest handles every request: those inside intercepted tunnels and
// plain-http proxy requests. It always answers itself, so goproxy never
// sends a request we did not vet.
func (p *Proxy) onRequest(req *http.Request, ctx *goproxy.ProxyCtx) (*http.Request, *http.Response) {
	info, _ := ctx.UserData.(*connectInfo)
	if info == nil {
		return req, p.plainHTTP(req)
	}
	p.inflight.Add(1)
	p.m.inflight.Inc()
	ev := p.beginAudit(info.audit)
	done := func() {
		p.inflight.Add(-1)
		p.m.inflight.Dec()
		ev.finish()
	}
	resp := p.intercepted(req, info, ev)
	ev.countOut(resp)
	return req, p.wrapBody(resp, classAzdo, done)
}

// plainHTTP refuses plain http to Azure DevOps and forwards the rest
// without any credential.
func (p *Proxy) plainHTTP(req *http.Request) *http.Response {
	host := canonicalHost(req.URL.Host, "80")
	if p.isAzdo(host) {
		p.m.request(classRefused)
		p.log.Info("proxy: refused plain http to Azure DevOps", "host", host)
		msg := fmt.Sprintf("azdo-sidecar: refusing plain http to Azure DevOps host %s; use https://%s/... (credentials are only sent over TLS)\n",
			hostOnly(host), hostOnly(host))
		if !azdo.IsServicesHost(hostOnly(host)) {
			// Azure DevOps Server installs default to http://server:8080:
			// say what to do about that, not just "use https".
			msg = fmt.Sprintf("azdo-sidecar: refusing plain http to %s: %s\n", host, azdo.PlainHTTPAdvice)
		}
		return textResponse(req, http.StatusForbidden, msg)
	}
	p.m.request(classOther)
	stripProxyHeaders(req.Header)
	noDefaultUserAgent(req.Header)
	req.RequestURI = ""
	if req.Body != nil {
		req.Body = &countingReader{ReadCloser: req.Body, c: p.m.bytes.WithLabelValues(classOther, "out")}
	}
	resp, err := p.tr.RoundTrip(req)
	if err != nil {
		p.log.Info("proxy: plain http upstream failed", "host", host, "err", unwrapURLError(err))
		return textResponse(req, http.StatusBadGateway, "azdo-sidecar: cannot reach "+host+"\n")
	}
	return p.wrapBody(resp, classOther, nil)
}

// isAzdo reports whether host (canonical) or its bare name is an Azure
// DevOps host. Refusing on either errs on the safe side.
func (p *Proxy) isAzdo(host string) bool {
	return p.hosts.Match(host) || p.hosts.Match(hostOnly(host))
}

// intercepted forwards one request from an intercepted tunnel, with the
// credential for info.host.
func (p *Proxy) intercepted(req *http.Request, info *connectInfo, ev *auditOp) *http.Response {
	if !allowedMethods[req.Method] {
		p.m.request(classRefused)
		p.log.Info("proxy: refused method", "host", info.host, "method", safeMethod(req.Method))
		return methodNotAllowed(req)
	}
	if req.URL.Scheme != "https" {
		p.m.request(classRefused)
		return textResponse(req, http.StatusForbidden, "azdo-sidecar: refusing plain http inside a tunnel to an Azure DevOps host; use TLS\n")
	}
	// goproxy builds the URL from the Host header inside the tunnel. A
	// credential for the CONNECT target must never go anywhere else.
	if got := canonicalHost(req.URL.Host, "443"); got != info.host {
		p.m.request(classRefused)
		p.log.Warn("proxy: Host header does not match the CONNECT target", "connect", info.host, "host", got)
		return textResponse(req, http.StatusMisdirectedRequest, "azdo-sidecar: the Host header does not match the tunnel's target\n")
	}
	p.m.request(classAzdo)
	key := token.Key{Host: info.host, Org: p.orgFor(info.host, req.URL.Path, basicUser(req.Header))}

	stripProxyHeaders(req.Header)
	req.RequestURI = ""
	tok, errResp, tokErr := p.fetchToken(req, key)
	if errResp != nil {
		p.auditTokenError(req, info.host, ev, tokErr)
		return errResp
	}
	// The environment's policy came with the token: check the request
	// against it before anything goes upstream (policy.go).
	if resp := p.enforce(req, info.host, tok, ev); resp != nil {
		return resp
	}
	ev.countIn(req)
	// A stored PAT about to expire: git shows the notice as a "remote:"
	// line when the answer carries side-band (notice.go).
	band := 0
	if tok.Notice != "" {
		band = noticeSideBand(req)
	}

	replay, err := makeReplayable(req)
	if err != nil {
		return textResponse(req, http.StatusBadRequest, "azdo-sidecar: cannot read request body\n")
	}
	if req.Body != nil && req.Body != http.NoBody {
		req.Body = &countingReader{ReadCloser: req.Body, c: p.m.bytes.WithLabelValues(classAzdo, "out")}
	}

	resp, err := p.send(req, tok)
	if err == nil && unauthenticated(resp) && replay {
		drainClose(resp.Body)
		if inv, ok := p.src.(token.Invalidator); ok {
			inv.Invalidate(key, tok)
		}
		p.m.retries.Inc()
		p.m.counts.retries.Add(1)
		tok, errResp, _ = p.fetchToken(req, key)
		if errResp != nil {
			return errResp
		}
		retry := req.Clone(req.Context())
		if req.GetBody != nil {
			if retry.Body, err = req.GetBody(); err != nil {
				return textResponse(req, http.StatusBadGateway, "azdo-sidecar: cannot replay request body\n")
			}
		}
		resp, err = p.send(retry, tok)
	}
	if err != nil {
		p.m.upstreamStatus.WithLabelValues("error").Inc()
		p.log.Warn("proxy: upstream request failed", "key", key.String(), "method", req.Method, "err", unwrapURLError(err))
		return textResponse(req, http.StatusBadGateway, fmt.Sprintf("azdo-sidecar: cannot reach %s: %v\n", info.host, unwrapURLError(err)))
	}
	p.m.upstreamStatus.WithLabelValues(statusClass(resp.StatusCode)).Inc()
	p.log.Debug("proxy: forwarded", "key", key.String(), "method", req.Method, "path", req.URL.Path, "status", resp.StatusCode)
	if unauthenticated(resp) {
		// The proxy replaces whatever credential the client sends, so a
		// 401 passed on would only make git prompt for one in vain.
		drainClose(resp.Body)
		p.log.Warn("proxy: Azure DevOps rejected the credential", "key", key.String(), "token", tok.String())
		return textResponse(req, http.StatusForbidden, fmt.Sprintf(
			"azdo-sidecar: Azure DevOps rejected the %s credential for %s (HTTP %d).\nazdo-sidecar: %s\n",
			tok.Kind, key, resp.StatusCode, p.rejectedAdvice()))
	}
	resp = p.noReflection(req, resp, tok, key)
	if band > 0 && tok.Notice != "" {
		resp = withNotice(resp, noticePacket(tok.Notice, band))
	}
	return resp
}

// noReflection keeps the credential it injected from coming back to the
// client: a response header carrying it fails the response (502), a body
// carrying it has it replaced as it streams. Either is logged as a WARN.
func (p *Proxy) noReflection(req *http.Request, resp *http.Response, tok token.Token, key token.Key) *http.Response {
	pats := reflections(tok)
	// The reason phrase is the server's free text: the client gets the
	// standard one for the status code (Response.Write writes it for an
	// empty Status).
	resp.Status = ""
	// Trailers arrive after the body, past any check: none are passed on.
	// (The transferWriter takes resp.Trailer when it starts, so a nil map
	// here stays nil even once the transport fills in its own.)
	resp.Trailer = nil
	resp.Header.Del("Trailer")
	// A compressed body hides a credential from the scrubber. send asked
	// for identity, so an encoded body is a server that ignored it.
	if ce := resp.Header.Get("Content-Encoding"); ce != "" && !strings.EqualFold(ce, "identity") {
		drainClose(resp.Body)
		p.log.Warn("proxy: the response is content-encoded although identity was asked for; refused", "key", key.String(), "method", req.Method, "path", req.URL.Path)
		return textResponse(req, http.StatusBadGateway, "azdo-sidecar: the server's answer is compressed although the sidecar asked for none; refused\n")
	}
	if name := headerReflects(resp.Header, pats); name != "" {
		drainClose(resp.Body)
		p.log.Warn("proxy: the response carries the injected credential in a header; refused", "key", key.String(), "method", req.Method, "path", req.URL.Path, "header", name)
		return textResponse(req, http.StatusBadGateway, "azdo-sidecar: the server's answer contains the credential the sidecar sent; refused\n")
	}
	if resp.Body != nil && resp.Body != http.NoBody {
		path := req.URL.Path
		resp.Body = newScrubReader(resp.Body, pats, func() {
			p.log.Warn("proxy: the response body carries the injected credential; replaced it with *", "key", key.String(), "path", path)
		})
	}
	return resp
}

// unauthenticated reports whether Azure DevOps turned the credential down:
// a 401, or the sign-in quirk it uses for browser-like and REST requests
// (a redirect to _signin, or 203 with an HTML sign-in page) should the
// X-TFS-FedAuthRedirect header not have suppressed it.
func unauthenticated(resp *http.Response) bool {
	switch resp.StatusCode {
	case http.StatusUnauthorized, http.StatusNonAuthoritativeInfo:
		return true
	case http.StatusFound, http.StatusSeeOther, http.StatusMovedPermanently, http.StatusTemporaryRedirect:
		return strings.Contains(strings.ToLower(resp.Header.Get("Location")), "_signin")
	}
	return false
}

// send writes tok into req and sends it upstream. The credential replaces
// anything the client sent.
func (p *Proxy) send(req *http.Request, tok token.Token) (*http.Response, error) {
	req.Header.Set("Authorization", tok.AuthorizationHeader())
	req.Header.Set("X-TFS-FedAuthRedirect", "Suppress")
	// Uncompressed answers only, so that noReflection sees every byte of
	// the body: a client that asked for gzip gets identity, which git and
	// every HTTP client take.
	req.Header.Set("Accept-Encoding", "identity")
	noDefaultUserAgent(req.Header)
	p.m.injections.WithLabelValues(string(tok.Kind)).Inc()
	p.m.counts.injections.Add(1)
	return p.tr.RoundTrip(req)
}

// fetchToken asks the source for key's token; on failure it returns the
// response that tells the client why.
func (p *Proxy) fetchToken(req *http.Request, key token.Key) (token.Token, *http.Response, error) {
	ctx, cancel := context.WithTimeout(req.Context(), p.tokenTimeout)
	defer cancel()
	start := time.Now()
	tok, err := p.src.Token(ctx, key)
	p.m.tokenLatency.Observe(time.Since(start).Seconds())
	if err == nil && tok.Secret.IsZero() {
		err = fmt.Errorf("proxy: token source returned an empty token for %s", key)
	}
	if err != nil {
		result, resp := tokenErrorResponse(req, key, err)
		p.m.tokenFetches.WithLabelValues(result).Inc()
		p.log.Warn("proxy: no token", "key", key.String(), "err", logSafe(err))
		return token.Token{}, resp, err
	}
	p.m.tokenFetches.WithLabelValues("ok").Inc()
	p.noteToken(key, tok)
	return tok, nil, nil
}

// wrapBody counts resp's body bytes and runs done once the body is closed
// (goproxy always closes it after writing the response).
func (p *Proxy) wrapBody(resp *http.Response, class string, done func()) *http.Response {
	if resp.Body == nil {
		resp.Body = http.NoBody
	}
	resp.Body = &countingReader{ReadCloser: resp.Body, c: p.m.bytes.WithLabelValues(class, "in"), close: done}
	return resp
}

// makeReplayable buffers a small request body so the request can be sent
// twice, and reports whether it can.
func makeReplayable(req *http.Request) (bool, error) {
	if req.Body == nil || req.Body == http.NoBody {
		req.Body = http.NoBody
		return true, nil
	}
	if len(req.TransferEncoding) > 0 || req.ContentLength < 0 || req.ContentLength > maxReplayBody {
		return false, nil
	}
	buf := make([]byte, req.ContentLength)
	if _, err := io.ReadFull(req.Body, buf); err != nil {
		return false, err
	}
	_ = req.Body.Close()
	// The body has been read: the client already got its 100 Continue.
	req.Header.Del("Expect")
	req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(string(buf))), nil }
	req.Body, _ = req.GetBody()
	return true, nil
}

// hopHeaders are removed before forwarding (RFC 9110 §7.6.1), together with
// the proxy-only ones.
var hopHeaders = []string{
	"Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authorization",
	"Proxy-Authenticate", "Te", "Trailer", "Upgrade",
}

func stripProxyHeaders(h http.Header) {
	for _, f := range h.Values("Connection") {
		for _, name := range strings.Split(f, ",") {
			if name = strings.TrimSpace(name); name != "" {
				h.Del(name)
			}
		}
	}
	for _, name := range hopHeaders {
		h.Del(name)
	}
}

// noDefaultUserAgent keeps Go's transport from adding its own User-Agent
// (Go-http-client/1.1) to a request whose client sent none: an empty
// value present in the map makes the transport write no header at all.
func noDefaultUserAgent(h http.Header) {
	if _, ok := h["User-Agent"]; !ok {
		h["User-Agent"] = []string{""}
	}
}

// basicUser returns the (non-secret) user name of a Basic Authorization
// header, which git fills with the org when the URL was org@dev.azure.com.
func basicUser(h http.Header) string {
	v := h.Get("Authorization")
	if len(v) < 6 || !strings.EqualFold(v[:6], "basic ") {
		return ""
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(v[6:]))
	if err != nil {
		return ""
	}
	user, _, _ := strings.Cut(string(raw), ":")
	return user
}

// canonicalHost lower-cases hostport and drops the scheme's default port.
func canonicalHost(hostport, defaultPort string) string {
	hostport = strings.ToLower(strings.TrimSuffix(hostport, "."))
	h, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return hostport
	}
	h = strings.TrimSuffix(h, ".")
	if port == defaultPort {
		if strings.Contains(h, ":") {
			return "[" + h + "]"
		}
		return h
	}
	return net.JoinHostPort(h, port)
}

// logSafe returns err as a log line may show it: a *token.ConnectError
// without its connect link, which is a signed, single-use link meant for
// the user's browser (git shows it from the response body), not for
// whoever reads the sidecar's logs.
func logSafe(err error) string {
	var ce *token.ConnectError
	if errors.As(err, &ce) {
		c := *ce
		c.ConnectURL = ""
		return c.Error()
	}
	return err.Error()
}

func drainClose(rc io.ReadCloser) {
	_, _ = io.Copy(io.Discard, io.LimitReader(rc, 64<<10))
	_ = rc.Close()
}

func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// goproxyLogger sends goproxy's messages to slog.
type goproxyLogger struct{ log *slog.Logger }

func (l goproxyLogger) Printf(format string, v ...any) {
	msg := strings.TrimSpace(fmt.Sprintf(format, v...))
	if strings.Contains(msg, "Cannot handshake client") {
		// The most common setup problem: the client does not trust our CA.
		l.log.Warn("proxy: TLS handshake with the client failed; does it trust the sidecar CA? (http.<url>.sslCAInfo, and GIT_SSL_CAINFO overrides it)",
			"detail", msg)
		return
	}
	l.log.Debug("goproxy: " + msg)
}

// rejectedAdvice is what to do about a credential Azure DevOps refused.
func (p *Proxy) rejectedAdvice() string {
	if p.advice != "" {
		return p.advice
	}
	return "check that it is valid and has the Code (read & write) scope, or connect again."
}
