package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/http/httpproxy"
)

// Resolve maps an upstream "host:port" (lower case) to the address to dial
// instead, like curl's --resolve. The address is "IP:PORT" after parsing.
type Resolve map[string]string

// ParseResolve parses --resolve entries "HOST:PORT:ADDR". ADDR is an IP (the
// port stays PORT, as in curl's --resolve) or, as an extension like curl's
// --connect-to, "IP:PORT" or "[IPv6]:PORT" to dial another port too. An IPv6
// HOST is written in brackets.
func ParseResolve(entries []string) (Resolve, error) {
	r := make(Resolve, len(entries))
	for _, e := range entries {
		host, rest, err := cutHost(e)
		if err != nil {
			return nil, fmt.Errorf("proxy: --resolve %q: %w", e, err)
		}
		portStr, addr, ok := strings.Cut(rest, ":")
		if !ok || addr == "" {
			return nil, fmt.Errorf("proxy: --resolve %q: want HOST:PORT:ADDR", e)
		}
		if _, err := parsePort(portStr); err != nil {
			return nil, fmt.Errorf("proxy: --resolve %q: %w", e, err)
		}
		target, err := resolveTarget(addr, portStr)
		if err != nil {
			return nil, fmt.Errorf("proxy: --resolve %q: %w", e, err)
		}
		r[net.JoinHostPort(strings.ToLower(host), portStr)] = target
	}
	return r, nil
}

// cutHost splits "host:rest" or "[v6]:rest".
func cutHost(s string) (host, rest string, err error) {
	if strings.HasPrefix(s, "[") {
		end := strings.Index(s, "]")
		if end < 0 || len(s) <= end+1 || s[end+1] != ':' {
			return "", "", errors.New("bad bracketed host")
		}
		return s[1:end], s[end+2:], nil
	}
	host, rest, ok := strings.Cut(s, ":")
	if !ok || host == "" {
		return "", "", errors.New("want HOST:PORT:ADDR")
	}
	return host, rest, nil
}

func parsePort(s string) (int, error) {
	p, err := strconv.Atoi(s)
	if err != nil || p < 1 || p > 65535 {
		return 0, fmt.Errorf("bad port %q", s)
	}
	return p, nil
}

func resolveTarget(addr, defaultPort string) (string, error) {
	addr = strings.TrimSpace(addr)
	if ip := net.ParseIP(strings.Trim(addr, "[]")); ip != nil {
		return net.JoinHostPort(ip.String(), defaultPort), nil
	}
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("bad address %q", addr)
	}
	if net.ParseIP(h) == nil {
		return "", fmt.Errorf("address %q is not an IP", h)
	}
	if _, err := parsePort(p); err != nil {
		return "", err
	}
	return net.JoinHostPort(h, p), nil
}

// lookup returns the address to dial for addr.
func (r Resolve) lookup(addr string) string {
	if to, ok := r[strings.ToLower(addr)]; ok {
		return to
	}
	return addr
}

// Timeouts for upstream connections. There is deliberately no total
// timeout: a clone or push streams for as long as it streams.
const (
	dialTimeout           = 30 * time.Second
	tlsHandshakeTimeout   = 30 * time.Second
	expectContinueTimeout = 2 * time.Second
	idleConnTimeout       = 90 * time.Second
	// defaultResponseHeaderTimeout counts from the end of the request
	// body: the server may work a while on a big push before answering.
	defaultResponseHeaderTimeout = 5 * time.Minute
)

// upstream dials Azure DevOps and other hosts: direct (honouring
// --resolve) or through an upstream proxy.
type upstream struct {
	resolve  Resolve
	proxyFor func(*url.URL) (*url.URL, error)
	dialer   net.Dialer
	// proxyTLS verifies an https upstream proxy.
	proxyTLS *tls.Config
}

func newUpstream(resolve Resolve, upstreamProxy *url.URL, roots *x509.CertPool) *upstream {
	var cfg *httpproxy.Config
	if upstreamProxy != nil {
		env := httpproxy.FromEnvironment()
		cfg = &httpproxy.Config{HTTPProxy: upstreamProxy.String(), HTTPSProxy: upstreamProxy.String(), NoProxy: env.NoProxy}
	} else {
		cfg = httpproxy.FromEnvironment()
	}
	return &upstream{
		resolve:  resolve,
		proxyFor: cfg.ProxyFunc(),
		dialer:   net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second},
		proxyTLS: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
	}
}

// dial connects to addr ("host:port"), applying --resolve.
func (u *upstream) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	return u.dialer.DialContext(ctx, network, u.resolve.lookup(addr))
}

// transport returns the HTTP/1.1 transport for upstream requests, verifying
// TLS against roots.
func (u *upstream) transport(roots *x509.CertPool, responseHeaderTimeout time.Duration) *http.Transport {
	if responseHeaderTimeout <= 0 {
		responseHeaderTimeout = defaultResponseHeaderTimeout
	}
	return &http.Transport{
		Proxy:       func(r *http.Request) (*url.URL, error) { return u.proxyFor(r.URL) },
		DialContext: u.dial,
		TLSClientConfig: &tls.Config{
			RootCAs:    roots,
			MinVersion: tls.VersionTLS12,
			NextProtos: []string{"http/1.1"},
		},
		// A non-nil empty map disables HTTP/2: Azure DevOps' own clients
		// force HTTP/1.1 for git traffic.
		TLSNextProto:          map[string]func(string, *tls.Conn) http.RoundTripper{},
		ForceAttemptHTTP2:     false,
		TLSHandshakeTimeout:   tlsHandshakeTimeout,
		ResponseHeaderTimeout: responseHeaderTimeout,
		ExpectContinueTimeout: expectContinueTimeout,
		IdleConnTimeout:       idleConnTimeout,
		MaxIdleConnsPerHost:   16,
		// Bodies pass through as the server sent them: the client asked for
		// its own encodings and decodes them itself.
		DisableCompression: true,
	}
}

// dialTunnel opens the connection behind a blind CONNECT tunnel to addr:
// through the upstream proxy when one applies, else directly.
func (u *upstream) dialTunnel(ctx context.Context, addr string) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, dialTimeout+tlsHandshakeTimeout)
	defer cancel()
	pu, err := u.proxyFor(&url.URL{Scheme: "https", Host: addr})
	if err != nil {
		return nil, fmt.Errorf("proxy: upstream proxy for %s: %w", addr, err)
	}
	if pu == nil {
		return u.dial(ctx, "tcp", addr)
	}
	return u.connectVia(ctx, pu, addr)
}

// connectVia opens a CONNECT tunnel to addr through the proxy pu.
func (u *upstream) connectVia(ctx context.Context, pu *url.URL, addr string) (net.Conn, error) {
	proxyAddr := pu.Host
	if pu.Port() == "" {
		if pu.Scheme == "https" {
			proxyAddr = net.JoinHostPort(pu.Hostname(), "443")
		} else {
			proxyAddr = net.JoinHostPort(pu.Hostname(), "80")
		}
	}
	c, err := u.dial(ctx, "tcp", proxyAddr)
	if err != nil {
		return nil, fmt.Errorf("proxy: dial upstream proxy %s: %w", proxyAddr, err)
	}
	if deadline, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(deadline)
	}
	if pu.Scheme == "https" {
		cfg := u.proxyTLS.Clone()
		cfg.ServerName = pu.Hostname()
		tc := tls.Client(c, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			_ = c.Close()
			return nil, fmt.Errorf("proxy: TLS to upstream proxy %s: %w", proxyAddr, err)
		}
		c = tc
	}
	req := &http.Request{
		Method: http.MethodConnect,
		URL:    &url.URL{Opaque: addr},
		Host:   addr,
		Header: make(http.Header),
	}
	if pu.User != nil {
		pass, _ := pu.User.Password()
		req.Header.Set("Proxy-Authorization", "Basic "+
			base64.StdEncoding.EncodeToString([]byte(pu.User.Username()+":"+pass)))
	}
	if err := req.Write(c); err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("proxy: CONNECT via upstream proxy: %w", err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("proxy: CONNECT via upstream proxy: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		// Only a refusal has a body; after a 200 the bytes are the tunnel's.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		_ = resp.Body.Close()
		_ = c.Close()
		return nil, fmt.Errorf("proxy: upstream proxy refused CONNECT %s: %s", addr, resp.Status)
	}
	_ = c.SetDeadline(time.Time{})
	if br.Buffered() > 0 {
		// The proxy must not speak first after 200; if it did, keep the bytes.
		return &bufferedConn{Conn: c, r: br}, nil
	}
	return c, nil
}

type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }
