package clone

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"
)

// Timeouts of the HTTP client. There is no total timeout, since a clone
// streams for as long as the repository is big; a stall is caught by
// StallTimeout instead.
const (
	DialTimeout           = 30 * time.Second
	TLSHandshakeTimeout   = 30 * time.Second
	ResponseHeaderTimeout = 2 * time.Minute
	// StallTimeout is how long a connection may go without receiving a
	// byte before the clone gives up on it (and retries).
	StallTimeout = 2 * time.Minute
)

// HTTPOptions configure NewHTTPClient.
type HTTPOptions struct {
	// Resolve maps an upstream "host:port" (lower case) to the "ip:port"
	// to dial instead, like curl's --resolve.
	Resolve map[string]string
	// RootCAs verifies servers; nil means the system roots.
	RootCAs *x509.CertPool
	// Proxy chooses a proxy per request; nil means HTTPS_PROXY/NO_PROXY
	// from the environment.
	Proxy func(*http.Request) (*url.URL, error)
	// StallTimeout overrides StallTimeout (tests).
	StallTimeout time.Duration
}

// NewHTTPClient returns the client the clone talks to Azure DevOps with:
// HTTP/1.1 (as Microsoft's own git clients force), timeouts on dialing, the
// TLS handshake, response headers and stalls, and --resolve applied.
func NewHTTPClient(o HTTPOptions) *http.Client {
	stall := o.StallTimeout
	if stall <= 0 {
		stall = StallTimeout
	}
	proxy := o.Proxy
	if proxy == nil {
		proxy = http.ProxyFromEnvironment
	}
	d := &net.Dialer{Timeout: DialTimeout, KeepAlive: 30 * time.Second}
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		if to, ok := o.Resolve[strings.ToLower(addr)]; ok {
			addr = to
		}
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &stallConn{Conn: c, timeout: stall}, nil
	}
	tr := &http.Transport{
		Proxy:                 proxy,
		DialContext:           dial,
		TLSClientConfig:       &tls.Config{RootCAs: o.RootCAs, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:   TLSHandshakeTimeout,
		ResponseHeaderTimeout: ResponseHeaderTimeout,
		ExpectContinueTimeout: 2 * time.Second,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConnsPerHost:   4,
		// A non-nil empty map turns HTTP/2 off.
		TLSNextProto: map[string]func(string, *tls.Conn) http.RoundTripper{},
	}
	return &http.Client{Transport: tr}
}

// stallConn fails a read that waits longer than timeout for a byte.
type stallConn struct {
	net.Conn
	timeout time.Duration
}

func (c *stallConn) Read(p []byte) (int, error) {
	_ = c.Conn.SetReadDeadline(time.Now().Add(c.timeout))
	return c.Conn.Read(p)
}

// azdoTransport adds what every request to Azure DevOps needs and counts
// the bytes received for progress.
type azdoTransport struct {
	next     http.RoundTripper
	received *atomic.Int64
}

// RoundTrip implements http.RoundTripper.
func (t *azdoTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	// Without it Azure DevOps answers bad credentials with a redirect to
	// a sign-in page and a 203, not a 401.
	req.Header.Set("X-TFS-FedAuthRedirect", "Suppress")
	res, err := t.next.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	if signInAnswer(res) {
		// Treat it as what it means, so that go-git reports an
		// authentication error instead of failing to parse HTML.
		res.Body.Close()
		return &http.Response{
			Status:     "401 Unauthorized",
			StatusCode: http.StatusUnauthorized,
			Proto:      res.Proto, ProtoMajor: res.ProtoMajor, ProtoMinor: res.ProtoMinor,
			Header:  http.Header{"Content-Type": {"text/plain"}},
			Body:    io.NopCloser(strings.NewReader("Azure DevOps asked for an interactive sign-in")),
			Request: res.Request,
		}, nil
	}
	if t.received != nil {
		res.Body = &countingBody{ReadCloser: res.Body, n: t.received}
	}
	return res, nil
}

// signInAnswer reports whether res is Azure DevOps' way of saying
// "unauthenticated" to a browser: a 203 or a redirect to _signin.
func signInAnswer(res *http.Response) bool {
	if res.StatusCode == http.StatusNonAuthoritativeInfo {
		return true
	}
	if res.StatusCode >= 300 && res.StatusCode < 400 {
		return strings.Contains(strings.ToLower(res.Header.Get("Location")), "_signin")
	}
	return false
}

type countingBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n.Add(int64(n))
	return n, err
}
