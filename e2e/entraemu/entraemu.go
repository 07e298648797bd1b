// Package entraemu is a Microsoft Entra ID (v2.0 endpoints) emulator for
// tests: OIDC discovery, JWKS, authorize (auto-approving a test user, PKCE
// S256 required) and the token endpoint with the authorization_code,
// refresh_token (rotating) and client_credentials grants.
//
// It reproduces the behaviour documented in docs/azure-devops.md, quirks
// included: the literal "{tenantid}" issuer of the common and organizations
// discovery documents, v1-shaped access tokens for Azure DevOps (aud
// 499b84ac-1321-427f-aa17-267ca6975798, iss https://sts.windows.net/{tid}/),
// and Entra-shaped errors ({error, error_description "AADSTSnnnn: …",
// error_codes, trace_id, correlation_id, timestamp}) with Entra's HTTP
// statuses. Tests drive it through methods: register apps and users, revoke
// or expire grants, switch consent or MFA per user, change the token
// lifetime, simulate an outage, and read counters.
//
// The emulator is strict where Entra is strict, because a lenient emulator
// proves nothing: unknown tenants, apps, redirect URIs and scopes without the
// resource prefix are refused exactly as Entra refuses them.
package entraemu

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/azdo-sidecar/azdo-sidecar/e2e/internal/testca"
	"github.com/azdo-sidecar/azdo-sidecar/secret"
)

// ResourceID is the application ID of Azure DevOps in Entra ID: the
// audience of its access tokens and the prefix of its scopes.
const ResourceID = "499b84ac-1321-427f-aa17-267ca6975798"

// GraphResourceID is Microsoft Graph, the audience of access tokens
// requested without any resource scope (e.g. only "openid").
const GraphResourceID = "00000003-0000-0000-c000-000000000000"

// IssuerPlaceholder is the literal tenant placeholder in the issuer of the
// common and organizations discovery documents.
const IssuerPlaceholder = "{tenantid}"

// Defaults.
const (
	DefaultAccessTokenLifetime = 75 * time.Minute
	DefaultRefreshInactivity   = 90 * 24 * time.Hour
	DefaultCodeLifetime        = 10 * time.Minute
	DefaultIDTokenLifetime     = 60 * time.Minute
)

// Config configures a Server. The zero value is usable.
type Config struct {
	// TenantID is the home tenant (a GUID); random when empty.
	TenantID string
	// TenantDomain, when set, is an alias of TenantID usable in paths
	// (e.g. "contoso.onmicrosoft.com").
	TenantDomain string
	// Addr is the listen address; default "127.0.0.1:0".
	Addr string
	// Hosts are extra DNS names for the per-run server certificate
	// (127.0.0.1, ::1 and localhost are always included).
	Hosts []string
	// TLS, when set, is used instead of a per-run CA. CAPEM then describes
	// its CA for CertPool and CAFile (optional).
	TLS   *tls.Config
	CAPEM []byte
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// AccessTokenLifetime is the lifetime of access tokens (expires_in).
	AccessTokenLifetime time.Duration
	// RefreshInactivity is how long a refresh token stays valid unused.
	RefreshInactivity time.Duration
	// CodeLifetime is how long an authorization code may be redeemed.
	CodeLifetime time.Duration
	// Logf receives the HTTP server's diagnostics (TLS handshake errors,
	// say); they are discarded when nil. Pass t.Logf in tests.
	Logf func(format string, args ...any)
	// StrictRotation makes a refresh token invalid once it has been used:
	// a second use fails with invalid_grant (AADSTS70000). Reuse is counted
	// by DoubleUseCount whether or not this is set.
	StrictRotation bool
}

// User is a test user.
type User struct {
	UPN      string // e.g. "alice@contoso.example"; required
	OID      string // object ID; random when empty
	TenantID string // home tenant; the server's TenantID when empty
	Name     string // display name; derived from UPN when empty
}

// Tokens is what a successful token request returns.
type Tokens struct {
	AccessToken  secret.String
	RefreshToken secret.String
	IDToken      string
	ExpiresIn    int // seconds
	ExpiresAt    time.Time
}

// Counts are request counters. Every request is counted, failed or not.
type Counts struct {
	Discovery         int
	Keys              int
	Authorize         int
	AuthorizationCode int // token requests with grant_type=authorization_code
	RefreshToken      int // token requests with grant_type=refresh_token
	ClientCredentials int // token requests with grant_type=client_credentials
	OtherGrant        int
	Failed            int // token requests answered with an error
}

// OutageMode says how the emulator fails while in an outage.
type OutageMode int

const (
	// OutageOff serves normally.
	OutageOff OutageMode = iota
	// OutageUnavailable answers every request with 503,
	// temporarily_unavailable (AADSTS90033) and Retry-After.
	OutageUnavailable
	// OutageReset closes every connection without an answer.
	OutageReset
	// OutageThrottled answers every request with 429 and Retry-After,
	// like Entra's throttling (AADSTS50196).
	OutageThrottled
)

// Errors of the control methods.
var (
	ErrUnknownUser   = errors.New("entraemu: unknown user")
	ErrUnknownApp    = errors.New("entraemu: unknown application")
	ErrUnknownTenant = errors.New("entraemu: unknown tenant")
)

type tenant struct {
	id            string
	domain        string
	noAzureDevOps bool
}

type app struct {
	clientID     string
	secret       secret.String
	redirectURIs []string
	name         string
	spOID        string // service principal object ID, for app-only tokens
}

type userState struct {
	User
	consentMissing bool
	forcedError    int
}

type authCode struct {
	clientID    string
	redirectURI string
	challenge   string
	nonce       string
	scopes      []string
	user        *userState
	tid         string
	issued      time.Time
	used        bool
}

type refreshGrant struct {
	user     *userState
	clientID string
	tid      string
	scopes   []string
	authTime time.Time
	issued   time.Time
	used     bool
	revoked  bool
	expired  bool
}

// Server is a running emulator. Its methods are safe for concurrent use.
type Server struct {
	cfg    Config
	now    func() time.Time
	ln     net.Listener
	srv    *http.Server
	base   string
	pool   *x509.CertPool
	caPEM  []byte
	tmpDir string
	key    *signingKey

	startOnce sync.Once
	closeOnce sync.Once
	done      chan struct{}

	mu       sync.Mutex
	tenants  map[string]*tenant // by tenant ID
	domains  map[string]string  // domain -> tenant ID
	apps     map[string]*app
	appOrder []string
	users    map[string]*userState // by lower-case UPN
	// signedIn are the accounts the (one) browser has a session with,
	// the first being the person at the keyboard; lastHint is the
	// login_hint of the last authorize request.
	signedIn       []string
	lastHint       string
	codes          map[string]*authCode
	refresh        map[string]*refreshGrant
	accessLifetime time.Duration
	strict         bool
	outage         OutageMode
	counts         Counts
	doubleUse      int
}

// New creates an emulator listening on cfg.Addr. It serves after Start.
func New(cfg Config) (*Server, error) {
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	if cfg.TenantID == "" {
		cfg.TenantID = guid()
	}
	if cfg.AccessTokenLifetime <= 0 {
		cfg.AccessTokenLifetime = DefaultAccessTokenLifetime
	}
	if cfg.RefreshInactivity <= 0 {
		cfg.RefreshInactivity = DefaultRefreshInactivity
	}
	if cfg.CodeLifetime <= 0 {
		cfg.CodeLifetime = DefaultCodeLifetime
	}
	key, err := newSigningKey()
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg:            cfg,
		now:            now,
		key:            key,
		done:           make(chan struct{}),
		tenants:        map[string]*tenant{},
		domains:        map[string]string{},
		apps:           map[string]*app{},
		users:          map[string]*userState{},
		codes:          map[string]*authCode{},
		refresh:        map[string]*refreshGrant{},
		accessLifetime: cfg.AccessTokenLifetime,
		strict:         cfg.StrictRotation,
	}
	if err := s.AddTenant(cfg.TenantID, cfg.TenantDomain); err != nil {
		return nil, err
	}
	tlsCfg := cfg.TLS
	if tlsCfg == nil {
		hosts := append([]string{"127.0.0.1", "::1", "localhost"}, cfg.Hosts...)
		ca, err := testca.New("entraemu test CA", hosts, now())
		if err != nil {
			return nil, fmt.Errorf("entraemu: %w", err)
		}
		s.caPEM, s.pool = ca.PEM, ca.Pool
		cert := ca.Leaf
		cert.Certificate = [][]byte{cert.Certificate[0], ca.Cert.Raw} // send the chain
		tlsCfg = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	} else if len(cfg.CAPEM) > 0 {
		s.caPEM = cfg.CAPEM
		s.pool = x509.NewCertPool()
		if !s.pool.AppendCertsFromPEM(cfg.CAPEM) {
			return nil, errors.New("entraemu: Config.CAPEM holds no certificate")
		}
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("entraemu: listen %s: %w", cfg.Addr, err)
	}
	s.ln = tls.NewListener(ln, tlsCfg.Clone())
	s.base = "https://" + ln.Addr().String()
	s.srv = &http.Server{
		Handler:           s.routes(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
		ErrorLog:          log.New(logfWriter{cfg.Logf}, "entraemu: ", 0),
	}
	return s, nil
}

// Start serves in a goroutine owned by the server until Close.
func (s *Server) Start() {
	s.startOnce.Do(func() {
		go func() {
			defer close(s.done)
			_ = s.srv.Serve(s.ln)
		}()
	})
}

// Close stops serving, waits for the serving goroutine and removes the CA
// file, if one was written.
func (s *Server) Close() error {
	var err error
	s.closeOnce.Do(func() {
		// Claiming startOnce here tells whether Start ran: if it did not,
		// no goroutine serves and only the listener needs closing.
		started := true
		s.startOnce.Do(func() { started = false })
		if started {
			err = s.srv.Close()
			<-s.done
		} else {
			err = s.ln.Close()
		}
		s.mu.Lock()
		dir := s.tmpDir
		s.mu.Unlock()
		if dir != "" {
			_ = os.RemoveAll(dir)
		}
	})
	return err
}

// URL returns the base URL, "https://127.0.0.1:port".
func (s *Server) URL() string { return s.base }

// Addr returns the listen address, "127.0.0.1:port".
func (s *Server) Addr() string { return strings.TrimPrefix(s.base, "https://") }

// TenantID returns the home tenant ID.
func (s *Server) TenantID() string { return s.cfg.TenantID }

// IssuerURL returns the v2.0 issuer URL for tenant (a tenant ID, a domain,
// "common" or "organizations"), the string administrators configure:
// "https://addr/{tenant}/v2.0".
func (s *Server) IssuerURL(tenant string) string { return s.base + "/" + tenant + "/v2.0" }

// AuthorizeURL returns the authorize endpoint of tenant.
func (s *Server) AuthorizeURL(tenant string) string {
	return s.base + "/" + tenant + "/oauth2/v2.0/authorize"
}

// TokenURL returns the token endpoint of tenant.
func (s *Server) TokenURL(tenant string) string { return s.base + "/" + tenant + "/oauth2/v2.0/token" }

// AccessTokenIssuer returns the issuer of access tokens of tenant tid,
// "https://sts.windows.net/{tid}/".
func AccessTokenIssuer(tid string) string { return "https://sts.windows.net/" + tid + "/" }

// CertPool returns a pool holding the CA that signed the server's
// certificate (nil when Config.TLS was given without CAPEM).
func (s *Server) CertPool() *x509.CertPool { return s.pool }

// CAPEM returns the CA certificate in PEM form.
func (s *Server) CAPEM() []byte { return append([]byte(nil), s.caPEM...) }

// CAFile writes the CA certificate to a temporary file, once, and returns
// its path. The file is removed by Close.
func (s *Server) CAFile() (string, error) {
	if len(s.caPEM) == 0 {
		return "", errors.New("entraemu: no CA certificate known")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tmpDir == "" {
		dir, err := os.MkdirTemp("", "entraemu-")
		if err != nil {
			return "", fmt.Errorf("entraemu: CA file: %w", err)
		}
		if err := os.WriteFile(filepath.Join(dir, "ca.pem"), s.caPEM, 0o644); err != nil {
			_ = os.RemoveAll(dir)
			return "", fmt.Errorf("entraemu: CA file: %w", err)
		}
		s.tmpDir = dir
	}
	return filepath.Join(s.tmpDir, "ca.pem"), nil
}

// Client returns an HTTP client that trusts the emulator's CA, with
// timeouts.
func (s *Server) Client() *http.Client {
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig:     &tls.Config{RootCAs: s.pool, MinVersion: tls.VersionTLS12},
			TLSHandshakeTimeout: 10 * time.Second,
		},
	}
}

// AddTenant adds a tenant (a GUID) with an optional domain alias. Azure
// DevOps is available in it until SetResourceAvailable says otherwise.
func (s *Server) AddTenant(tid, domain string) error {
	if tid == "" || strings.ContainsAny(tid, "/{} ") || tid == "common" || tid == "organizations" || tid == "consumers" {
		return fmt.Errorf("entraemu: invalid tenant ID %q", tid)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tenants[tid] = &tenant{id: tid, domain: domain}
	if domain != "" {
		s.domains[strings.ToLower(domain)] = tid
	}
	return nil
}

// SetResourceAvailable says whether Azure DevOps (the resource) is present
// in tenant tid. When it is not, authorize and token requests for it fail
// with AADSTS500011.
func (s *Server) SetResourceAvailable(tid string, ok bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.tenants[tid]
	if t == nil {
		return ErrUnknownTenant
	}
	t.noAzureDevOps = !ok
	return nil
}

// RegisterApp registers a confidential client (multi-tenant) with its secret
// and its redirect URIs, matched exactly.
func (s *Server) RegisterApp(clientID string, clientSecret secret.String, redirectURIs []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.apps[clientID]; !ok {
		s.appOrder = append(s.appOrder, clientID)
	}
	s.apps[clientID] = &app{
		clientID:     clientID,
		secret:       clientSecret,
		redirectURIs: append([]string(nil), redirectURIs...),
		name:         "azdo-vault test app",
		spOID:        guid(),
	}
}

// AddUser adds a test user and returns it with defaults filled in. The
// first user added is the signed-in user authorize approves, until
// SetSignedInUser says otherwise.
func (s *Server) AddUser(u User) (User, error) {
	if u.UPN == "" {
		return u, errors.New("entraemu: user needs a UPN")
	}
	if u.OID == "" {
		u.OID = guid()
	}
	if u.Name == "" {
		u.Name, _, _ = strings.Cut(u.UPN, "@")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if u.TenantID == "" {
		u.TenantID = s.cfg.TenantID
	}
	if s.tenants[u.TenantID] == nil {
		return u, ErrUnknownTenant
	}
	key := strings.ToLower(u.UPN)
	s.users[key] = &userState{User: u}
	if len(s.signedIn) == 0 {
		s.signedIn = []string{key}
	}
	return u, nil
}

// SetSignedInUser says who is at the browser: the browser has a session
// with upn's account alone, and authorize signs upn in (silently, as
// Entra does with one session) whatever login_hint asks for. A login_hint
// naming another account would make Entra ask for that account's
// password, which this person does not have; they use their own account
// instead, as "Use another account" does.
func (s *Server) SetSignedInUser(upn string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.users[strings.ToLower(upn)] == nil {
		return ErrUnknownUser
	}
	s.signedIn = []string{strings.ToLower(upn)}
	return nil
}

// AddSignedInUser adds upn's account to the browser's sessions (a browser
// signed in with several accounts): authorize then picks the account that
// login_hint names, as Entra's account picker does, and the first session
// when the hint names none of them.
func (s *Server) AddSignedInUser(upn string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := strings.ToLower(upn)
	if s.users[key] == nil {
		return ErrUnknownUser
	}
	if !slices.Contains(s.signedIn, key) {
		s.signedIn = append(s.signedIn, key)
	}
	return nil
}

// LastLoginHint returns the login_hint of the last authorize request ("":
// none).
func (s *Server) LastLoginHint() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastHint
}

// SetConsent says whether upn has consented to the application. Without
// consent, authorize redirects with consent_required and token requests
// fail with AADSTS65001.
func (s *Server) SetConsent(upn string, granted bool) error {
	return s.withUser(upn, func(u *userState) { u.consentMissing = !granted })
}

// SetUserError makes every token request (authorization_code,
// refresh_token) for upn fail with the AADSTS code (e.g. CodeMFARequired,
// CodeSignInFrequency, CodeConditionalAccess), until set to 0.
func (s *Server) SetUserError(upn string, code int) error {
	if code != 0 {
		if _, ok := catalog[code]; !ok {
			return fmt.Errorf("entraemu: AADSTS%d is not in the emulator's catalog", code)
		}
	}
	return s.withUser(upn, func(u *userState) { u.forcedError = code })
}

// RevokeUser revokes every refresh token of upn, like an administrator's
// "revoke sessions" or a password reset: their next use fails with
// invalid_grant AADSTS50173. Access tokens stay valid until they expire,
// as they do with Entra ID. A new sign-in works.
func (s *Server) RevokeUser(upn string) error { return s.RevokeRefreshTokens(upn) }

// RevokeRefreshTokens is RevokeUser.
func (s *Server) RevokeRefreshTokens(upn string) error {
	return s.withUser(upn, func(u *userState) {
		for _, g := range s.refresh {
			if g.user == u {
				g.revoked = true
			}
		}
	})
}

// ExpireRefreshTokens makes every refresh token of upn (every user's when
// upn is "") expired by inactivity: their next use fails with invalid_grant
// AADSTS700082.
func (s *Server) ExpireRefreshTokens(upn string) error {
	if upn == "" {
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, g := range s.refresh {
			g.expired = true
		}
		return nil
	}
	return s.withUser(upn, func(u *userState) {
		for _, g := range s.refresh {
			if g.user == u {
				g.expired = true
			}
		}
	})
}

// SetAccessTokenLifetime changes the lifetime (expires_in) of access tokens
// issued from now on.
func (s *Server) SetAccessTokenLifetime(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.accessLifetime = d
}

// SetStrictRotation switches strict refresh-token rotation (see
// Config.StrictRotation).
func (s *Server) SetStrictRotation(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.strict = on
}

// SetOutage switches an outage on (OutageUnavailable) or off.
func (s *Server) SetOutage(on bool) {
	if on {
		s.SetOutageMode(OutageUnavailable)
	} else {
		s.SetOutageMode(OutageOff)
	}
}

// SetOutageMode sets how the emulator fails, for every endpoint.
func (s *Server) SetOutageMode(m OutageMode) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.outage = m
}

// Counts returns the request counters.
func (s *Server) Counts() Counts {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts
}

// ResetCounts sets every counter, DoubleUseCount included, to zero.
func (s *Server) ResetCounts() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.counts = Counts{}
	s.doubleUse = 0
}

// DoubleUseCount returns how many times a refresh token was presented again
// after it had already been redeemed (and so replaced by a rotated one).
func (s *Server) DoubleUseCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.doubleUse
}

// IssueTokensForTest returns an access and refresh token pair for upn as if
// the user had connected through the first registered application, with
// the contract's scopes; it skips the browser. It is not counted.
func (s *Server) IssueTokensForTest(upn string) (Tokens, error) {
	s.mu.Lock()
	var clientID string
	if len(s.appOrder) > 0 {
		clientID = s.appOrder[0]
	}
	s.mu.Unlock()
	if clientID == "" {
		return Tokens{}, fmt.Errorf("%w: register one before IssueTokensForTest", ErrUnknownApp)
	}
	return s.IssueTokensForClient(upn, clientID)
}

// IssueTokensForClient is IssueTokensForTest for a given application.
func (s *Server) IssueTokensForClient(upn, clientID string) (Tokens, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.users[strings.ToLower(upn)]
	if u == nil {
		return Tokens{}, ErrUnknownUser
	}
	if s.apps[clientID] == nil {
		return Tokens{}, ErrUnknownApp
	}
	scopes := []string{"openid", "offline_access", ResourceID + "/vso.code", ResourceID + "/vso.code_write"}
	resp, err := s.issueLocked(u, u.TenantID, clientID, scopes, "", s.now())
	if err != nil {
		return Tokens{}, err
	}
	return resp.tokens(s.now()), nil
}

// VerifyAccessToken checks an access token the way Azure DevOps does:
// signature by this emulator's key, audience Azure DevOps, issuer
// https://sts.windows.net/{tid}/ of a known tenant, and nbf/exp against the
// clock. It returns the subject: the user's UPN, or for an app-only token
// (client credentials) the application ID.
func (s *Server) VerifyAccessToken(token string) (string, error) {
	c, err := s.ParseAccessToken(token)
	if err != nil {
		return "", err
	}
	return c.subject(), nil
}

// AzureDevOpsVerifier returns the token check of an Azure DevOps
// organization backed by tenant tid: VerifyAccessToken, and the token must
// have been issued by tid. Azure DevOps refuses a valid token of any other
// tenant, as it does for a user who signed in to the wrong directory.
func (s *Server) AzureDevOpsVerifier(tid string) func(token string) (string, error) {
	return func(token string) (string, error) {
		c, err := s.ParseAccessToken(token)
		if err != nil {
			return "", err
		}
		if c.TID != tid {
			return "", ErrTokenTenant
		}
		return c.subject(), nil
	}
}

// subject is who a token authenticates: the user's UPN, or for an app-only
// token the application ID.
func (c AccessClaims) subject() string {
	if c.UPN != "" {
		return c.UPN
	}
	return c.AppID
}

// ParseAccessToken is VerifyAccessToken returning every claim.
func (s *Server) ParseAccessToken(token string) (AccessClaims, error) {
	c, err := s.key.parseAccess(token)
	if err != nil {
		return AccessClaims{}, err
	}
	if c.Aud != ResourceID {
		return AccessClaims{}, ErrTokenAudience
	}
	s.mu.Lock()
	_, known := s.tenants[c.TID]
	s.mu.Unlock()
	if !known || c.Iss != AccessTokenIssuer(c.TID) {
		return AccessClaims{}, ErrTokenIssuer
	}
	if err := checkTimes(s.now(), c.Nbf, c.Exp); err != nil {
		return AccessClaims{}, err
	}
	return c, nil
}

func (s *Server) withUser(upn string, f func(*userState)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.users[strings.ToLower(upn)]
	if u == nil {
		return ErrUnknownUser
	}
	f(u)
	return nil
}

// logfWriter adapts Config.Logf to an io.Writer for log.Logger.
type logfWriter struct{ logf func(string, ...any) }

// Write implements io.Writer.
func (w logfWriter) Write(p []byte) (int, error) {
	if w.logf != nil {
		w.logf("%s", strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}
