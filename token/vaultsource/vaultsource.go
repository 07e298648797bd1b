// Package vaultsource is the token.Source that asks the runner's vault for
// tokens: POST /v1/token with the environment token, the answer sealed to a
// key pair generated for this process only, so that a token is readable by
// nobody but this sidecar even where TLS is terminated in front of the
// vault.
package vaultsource

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode"

	"github.com/azdo-sidecar/azdo-sidecar/internal/certpool"
	"github.com/azdo-sidecar/azdo-sidecar/sealbox"
	"github.com/azdo-sidecar/azdo-sidecar/secret"
	"github.com/azdo-sidecar/azdo-sidecar/token"
	"github.com/azdo-sidecar/azdo-sidecar/vaultapi"
)

// Defaults.
const (
	// DefaultTimeout bounds one request to the vault, connection included.
	DefaultTimeout = 15 * time.Second
	// MaxResponseSize bounds what is read of a vault answer.
	MaxResponseSize = 64 << 10
	// maxMessage bounds a vault message shown to the user.
	maxMessage = 300
)

// ErrProtocol is wrapped by errors about answers that break the contract
// (unparseable JSON, unknown token type, a token that cannot be opened).
var ErrProtocol = errors.New("vaultsource: unexpected answer from the vault")

// Options configure a Source.
type Options struct {
	// URL is the vault's base URL (--vault-url), e.g. https://runner:8443.
	URL string
	// EnvToken is this environment's token (--env-token-file).
	EnvToken secret.String
	// CAFile adds roots to the system ones (--vault-ca-file).
	CAFile string
	// MinValid is asked of every token (min_valid_seconds): the cache's
	// refresh margin, so that what the vault hands out is fresh enough.
	MinValid time.Duration
	// Timeout bounds one request (default DefaultTimeout).
	Timeout time.Duration
	// InsecureAllowHTTP permits a plain-http URL on a non-loopback host.
	// The environment token would cross the network in clear text; only
	// for a TLS-terminating sidecar network you control.
	InsecureAllowHTTP bool
	// Transport replaces the default transport (tests).
	Transport http.RoundTripper
}

// Source asks the vault for tokens. It is safe for concurrent use; put a
// token.Cache in front of it.
type Source struct {
	endpoint string
	envToken secret.String
	minValid time.Duration
	keys     sealbox.KeyPair
	client   *http.Client
	// waitClient is client for ConnectWait's long-polls: no client
	// timeout (each call sets its deadline) and a transport that waits
	// for the answer as long as the vault may hold it.
	waitClient *http.Client
}

// String describes s without its secrets. fmt does not call the
// redacting methods of secret.String held in unexported fields, so every
// struct that holds one must format itself.
func (s *Source) String() string { return "vaultsource.Source(" + s.endpoint + ")" }

// Format implements fmt.Formatter so that every verb, %+v and %#v included,
// prints String.
func (s *Source) Format(f fmt.State, _ rune) { io.WriteString(f, s.String()) }

// ReadEnvTokenFile reads the environment token (--env-token-file) once,
// at start.
func ReadEnvTokenFile(path string) (secret.String, error) {
	return token.ReadSecretFile(path, "environment token")
}

// New returns a Source for opts. It generates this process's sealing key.
func New(opts Options) (*Source, error) {
	u, err := url.Parse(opts.URL)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return nil, fmt.Errorf("vaultsource: vault URL %q must be https://host[:port][/path]", opts.URL)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("vaultsource: vault URL must not carry user info, query or fragment")
	}
	if u.Scheme == "http" && !opts.InsecureAllowHTTP && !isLoopback(u.Hostname()) {
		return nil, fmt.Errorf("vaultsource: vault URL %s is plain http on a non-loopback host; the environment token would travel in clear text", u.Redacted())
	}
	if opts.EnvToken.IsZero() {
		return nil, errors.New("vaultsource: no environment token")
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	rt := opts.Transport
	if rt == nil {
		tr, err := transport(opts.CAFile, opts.Timeout)
		if err != nil {
			return nil, err
		}
		rt = tr
	}
	kp, err := sealbox.Generate()
	if err != nil {
		return nil, err
	}
	waitRT := rt
	if tr, ok := rt.(*http.Transport); ok {
		tr = tr.Clone()
		tr.ResponseHeaderTimeout = 0
		waitRT = tr
	}
	noRedirect := func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &Source{
		waitClient: &http.Client{Transport: waitRT, CheckRedirect: noRedirect},
		endpoint:   strings.TrimSuffix(u.String(), "/") + vaultapi.TokenPath,
		envToken:   opts.EnvToken,
		minValid:   opts.MinValid,
		keys:       kp,
		client: &http.Client{
			Transport: rt,
			Timeout:   opts.Timeout,
			// The vault has no reason to redirect; following one would
			// send the environment token somewhere else.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}, nil
}

func transport(caFile string, timeout time.Duration) (*http.Transport, error) {
	roots, err := certpool.Load(caFile)
	if err != nil {
		return nil, fmt.Errorf("vaultsource: vault %w", err)
	}
	d := &net.Dialer{Timeout: min(timeout, 10*time.Second), KeepAlive: 30 * time.Second}
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           d.DialContext,
		TLSClientConfig:       &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:   min(timeout, 10*time.Second),
		ResponseHeaderTimeout: timeout,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       90 * time.Second,
		ForceAttemptHTTP2:     true,
	}, nil
}

// isTransientNet reports whether err, from sending a request or reading
// its answer, is a failure to get through that a second try may not meet:
// a timeout (dial, TLS handshake, response header), a refused or reset
// connection, a connection closed before the answer ended. Certificate
// and other configuration errors are not.
func isTransientNet(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

// transientIf marks err with token.Transient when cond holds.
func transientIf(cond bool, err error) error {
	if cond {
		return token.Transient(err)
	}
	return err
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Token implements token.Source.
func (s *Source) Token(ctx context.Context, key token.Key) (token.Token, error) {
	body, err := json.Marshal(vaultapi.TokenRequest{
		Host:            key.Host,
		Org:             key.Org,
		MinValidSeconds: int(s.minValid / time.Second),
		SealTo:          s.keys.Public.String(),
	})
	if err != nil {
		return token.Token{}, fmt.Errorf("vaultsource: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.endpoint, bytes.NewReader(body))
	if err != nil {
		return token.Token{}, fmt.Errorf("vaultsource: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Authorization", "Bearer "+s.envToken.Reveal())
	resp, err := s.client.Do(req)
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return token.Token{}, fmt.Errorf("vaultsource: token for %s: %w (%w)", key, token.ErrUnavailable, ctxErr)
		}
		if r := unreachable(err); r != "" {
			// Nothing answers there: most often a wrong --vault-url, so
			// the message says where it looked.
			return token.Token{}, transientIf(isTransientNet(err), fmt.Errorf("vaultsource: token for %s: %w", key, &token.UnreachableError{URL: s.base(), Reason: r}))
		}
		// *url.Error names the method and the URL (no secret in it).
		return token.Token{}, transientIf(isTransientNet(err), fmt.Errorf("vaultsource: token for %s: %w: %v", key, token.ErrUnavailable, err))
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseSize+1))
	if err != nil {
		return token.Token{}, transientIf(isTransientNet(err), fmt.Errorf("vaultsource: token for %s: reading answer: %w: %v", key, token.ErrUnavailable, err))
	}
	if len(b) > MaxResponseSize {
		return token.Token{}, fmt.Errorf("vaultsource: token for %s: %w: answer larger than %d bytes", key, ErrProtocol, MaxResponseSize)
	}
	if resp.StatusCode == http.StatusOK {
		return s.decode(key, b)
	}
	return token.Token{}, s.statusError(key, resp, b)
}

func (s *Source) decode(key token.Key, b []byte) (token.Token, error) {
	var tr vaultapi.TokenResponse
	if err := json.Unmarshal(b, &tr); err != nil {
		return token.Token{}, fmt.Errorf("vaultsource: token for %s: %w: invalid JSON", key, ErrProtocol)
	}
	var kind token.Kind
	switch tr.Type {
	case vaultapi.TypeBearer:
		kind = token.Bearer
	case vaultapi.TypeBasic:
		kind = token.Basic
	default:
		return token.Token{}, fmt.Errorf("vaultsource: token for %s: %w: unknown token type %q", key, ErrProtocol, clean(tr.Type))
	}
	// We always ask for a sealed token: an unsealed one means the vault
	// ignored seal_to, and we refuse to use a token that travelled bare.
	if !tr.Sealed {
		return token.Token{}, fmt.Errorf("vaultsource: token for %s: %w: token not sealed to this process", key, ErrProtocol)
	}
	plain, err := s.keys.Open(tr.Token)
	if err != nil {
		return token.Token{}, fmt.Errorf("vaultsource: token for %s: %w: %v", key, ErrProtocol, err)
	}
	v := string(plain)
	if v == "" || strings.ContainsAny(v, "\r\n\x00") {
		return token.Token{}, fmt.Errorf("vaultsource: token for %s: %w: empty or multi-line token", key, ErrProtocol)
	}
	user := tr.Username
	if strings.ContainsAny(user, ":\r\n\x00") {
		return token.Token{}, fmt.Errorf("vaultsource: token for %s: %w: invalid user name", key, ErrProtocol)
	}
	// The policy rides with the token, authenticated by a MAC keyed with
	// the token itself: whoever carried the answer cannot have changed it.
	// The vault sends both on every answer ("no policy" included), so a
	// missing one was stripped on the way: an error, never "no policy". A
	// policy that does not verify is an error too.
	if len(tr.Policy) == 0 || tr.PolicyMAC == "" {
		return token.Token{}, fmt.Errorf("vaultsource: token for %s: %w: the answer lacks policy or policy_mac (the vault always sends both)", key, ErrProtocol)
	}
	if !vaultapi.CheckPolicyMAC(v, tr.Policy, tr.PolicyMAC) {
		return token.Token{}, fmt.Errorf("vaultsource: token for %s: %w: the policy does not match its policy_mac", key, ErrProtocol)
	}
	if !json.Valid(tr.Policy) {
		return token.Token{}, fmt.Errorf("vaultsource: token for %s: %w: the policy is not JSON", key, ErrProtocol)
	}
	return token.Token{Kind: kind, Username: user, Secret: secret.New(v), ExpiresAt: tr.ExpiresAt, Policy: string(tr.Policy), Notice: clean(tr.Notice)}, nil
}

// statusError maps a non-200 answer to the token package's errors.
func (s *Source) statusError(key token.Key, resp *http.Response, b []byte) error {
	var er vaultapi.ErrorResponse
	_ = json.Unmarshal(b, &er) // a proxy's HTML error page leaves er empty
	msg := clean(er.Message)
	switch resp.StatusCode {
	case http.StatusNotFound, http.StatusConflict:
		if resp.StatusCode == http.StatusNotFound && er.Error != vaultapi.ErrNotConnected {
			// A 404 without our error code is a wrong --vault-url, not
			// a user who must connect.
			return fmt.Errorf("vaultsource: token for %s: %w: %s answered 404 (is --vault-url right?)", key, ErrProtocol, s.endpoint)
		}
		u, err := connectURL(er.ConnectURL)
		if err != nil {
			return fmt.Errorf("vaultsource: token for %s: %w: %v", key, ErrProtocol, err)
		}
		pat, err := connectURL(er.PATURL)
		if err != nil {
			return fmt.Errorf("vaultsource: token for %s: %w: pat_url: %v", key, ErrProtocol, err)
		}
		ce := &token.ConnectError{Key: key, Reconnect: resp.StatusCode == http.StatusConflict, ConnectURL: u, PATURL: pat}
		ce.Reason = connectReason(er.Message, *ce)
		return ce
	case http.StatusForbidden:
		if er.Error == vaultapi.ErrForbiddenByPolicy {
			return &token.ForbiddenError{Key: key, Message: msg}
		}
		return fmt.Errorf("vaultsource: token for %s: %w", key, token.ErrUnauthorized)
	case http.StatusUnauthorized:
		return fmt.Errorf("vaultsource: token for %s: %w", key, token.ErrUnauthorized)
	case http.StatusServiceUnavailable, http.StatusTooManyRequests, http.StatusBadGateway, http.StatusGatewayTimeout:
		// The vault (or a proxy in front of it) is busy or cannot reach
		// what it needs: nothing was said about the credential.
		var err error = fmt.Errorf("vaultsource: token for %s: vault answered %d: %w", key, resp.StatusCode, token.ErrUnavailable)
		if after, ok := retryAfter(resp.Header.Get("Retry-After"), time.Now()); ok {
			err = &token.RetryAfterError{After: after, Err: err}
		}
		return token.Transient(err)
	}
	if resp.StatusCode >= 500 {
		return fmt.Errorf("vaultsource: token for %s: vault answered %d: %w", key, resp.StatusCode, token.ErrUnavailable)
	}
	if msg != "" {
		msg = ": " + msg
	}
	return fmt.Errorf("vaultsource: token for %s: %w: vault answered %d%s", key, ErrProtocol, resp.StatusCode, msg)
}

// base is the vault's base URL (--vault-url).
func (s *Source) base() string { return strings.TrimSuffix(s.endpoint, vaultapi.TokenPath) }

// unreachable names why the vault could not be reached at all, or ""
// for other failures (a reset mid-answer, TLS).
func unreachable(err error) string {
	var ne net.Error
	var dns *net.DNSError
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.As(err, &dns):
		return "no such host " + dns.Name
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return "no route to host"
	case errors.As(err, &ne) && ne.Timeout():
		return "connection timed out"
	}
	return ""
}

// connectReason returns what the vault's message adds to ce: the vault
// sends the text of its own ConnectError ("Azure DevOps (host/org): connect
// required (reason): open <link>"), and taken whole as Reason it would
// print the prefix and the connect link twice. A message without that
// shape is kept, minus any copy of the link.
func connectReason(msg string, ce token.ConnectError) string {
	if ce.ConnectURL != "" {
		msg = strings.TrimSuffix(msg, ": open "+ce.ConnectURL)
		msg = strings.ReplaceAll(msg, ce.ConnectURL, "")
	}
	ce.Reason, ce.ConnectURL = "", ""
	if rest, ok := strings.CutPrefix(msg, ce.Error()); ok {
		msg = strings.TrimSpace(rest)
		if r, ok := strings.CutPrefix(msg, "("); ok {
			msg = strings.TrimSuffix(r, ")")
		}
	}
	return clean(strings.TrimSpace(msg))
}

// connectURL accepts only an absolute http(s) URL: it ends up on git's
// stderr and in a 401 page, so no other scheme and no control characters.
func connectURL(s string) (string, error) {
	if s == "" {
		return "", nil
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || clean(s) != s {
		return "", errors.New("invalid connect_url")
	}
	return s, nil
}

// retryAfter parses a Retry-After header (seconds or HTTP date).
func retryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if n, err := strconv.Atoi(v); err == nil && n >= 0 {
		return time.Duration(n) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0), true
	}
	return 0, false
}

// clean makes a vault-supplied string safe to show: printable, one line,
// bounded.
func clean(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return -1
		}
		return r
	}, s)
	if len(s) > maxMessage {
		s = s[:maxMessage] + "…"
	}
	return s
}

// ErrAuditRefused wraps a POST /v1/audit answer that retrying cannot
// change (400, 413): the batch is malformed.
var ErrAuditRefused = errors.New("vaultsource: the vault refused the audit batch")

// SendAudit posts one batch of audit events (POST /v1/audit), authenticated
// with the environment token. 400 and 413 wrap ErrAuditRefused; every
// other failure is worth retrying.
func (s *Source) SendAudit(ctx context.Context, events []vaultapi.AuditEvent) error {
	body, err := json.Marshal(vaultapi.AuditRequest{Events: events})
	if err != nil {
		return fmt.Errorf("vaultsource: audit: %w", err)
	}
	endpoint := strings.TrimSuffix(s.endpoint, vaultapi.TokenPath) + vaultapi.AuditPath
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("vaultsource: audit: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+s.envToken.Reveal())
	resp, err := s.client.Do(req)
	if err != nil {
		return fmt.Errorf("vaultsource: audit: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, MaxResponseSize))
	switch {
	case resp.StatusCode == http.StatusOK:
		return nil
	case resp.StatusCode == http.StatusBadRequest || resp.StatusCode == http.StatusRequestEntityTooLarge:
		return fmt.Errorf("%w: HTTP %d", ErrAuditRefused, resp.StatusCode)
	default:
		return fmt.Errorf("vaultsource: audit: vault answered %d", resp.StatusCode)
	}
}
