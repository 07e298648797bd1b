// Package entra is the vault's client for Microsoft Entra ID (v2.0
// endpoints) as the identity provider of Azure DevOps: OIDC discovery with
// both issuer URL forms administrators paste, the authorization code + PKCE
// flow with ID token verification, refresh with rotation, the verify
// command's checks, and the classification of Entra's errors into
// Permanent, Misconfigured and Transient.
//
// Everything secret (client secret, refresh and access tokens) is a
// secret.String here; errors carry only the provider's description,
// scrubbed of the secrets a request carried.
package entra

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/azdo-sidecar/azdo-sidecar/secret"
)

// ResourceID is Azure DevOps' application ID in Entra ID: the prefix of
// its scopes and the audience of its access tokens.
const ResourceID = "499b84ac-1321-427f-aa17-267ca6975798"

// Scopes are the scopes the vault requests (the contract's): an ID token, a
// refresh token, and Azure DevOps' code read and write, with the resource
// prefix Entra ID requires.
var Scopes = []string{"openid", "offline_access", ResourceID + "/vso.code", ResourceID + "/vso.code_write"}

// VerifyScope is the scope of the client-credentials grant Verify makes.
const VerifyScope = ResourceID + "/.default"

// TenantPlaceholder is the literal tenant in the issuer of Entra's common
// and organizations discovery documents.
const TenantPlaceholder = "{tenantid}"

// Defaults.
const (
	// DefaultTimeout bounds every call when the caller's context has no
	// deadline, and is the Timeout of the default HTTP client.
	DefaultTimeout = 30 * time.Second
	// MaxResponseBytes bounds every response body read from Entra ID.
	MaxResponseBytes = 1 << 20
	// MissingExpiryLifetime is the lifetime assumed when a token answer
	// has no expires_in: short, so the token is refreshed soon, rather
	// than Entra's typical hour, which must never be assumed.
	MissingExpiryLifetime = 5 * time.Minute
)

// Config configures a Provider.
type Config struct {
	// Host is the Azure DevOps host this provider serves, for messages.
	Host string
	// IssuerURL is https://<host>/<tenant>/v2.0 or
	// https://<host>/<tenant>/oauth2/v2.0; <tenant> is a tenant ID, a
	// domain, "common" or "organizations".
	IssuerURL    string
	ClientID     string
	ClientSecret secret.String
	// RedirectURL is <public_url>/oauth/callback.
	RedirectURL string
	// HTTPClient is used for every request; it gets a response size limit
	// and, when it has none, DefaultTimeout. Default: a client with
	// timeouts and the system roots.
	HTTPClient *http.Client
	// Now is the clock for token expiry and ID token checks; time.Now
	// when nil.
	Now func() time.Time
	// VerifyTenant is the tenant (ID or domain) Verify's client-credentials
	// check uses when IssuerURL names common or organizations: app-only
	// tokens need a tenant, and Entra refuses or guesses one there.
	// Optional; without it Verify returns ErrCredentialsUnchecked for such
	// issuers.
	VerifyTenant string
}

// Grant is a successful token answer.
type Grant struct {
	AccessToken secret.String
	// RefreshToken is the refresh token to keep from now on. Entra rotates
	// it on every refresh: store it, durably, before using AccessToken. It
	// is zero when the answer carried none (keep the one you have).
	RefreshToken secret.String
	// ExpiresAt comes from expires_in and the clock, never from an assumed
	// lifetime.
	ExpiresAt time.Time
}

// String describes g without its secrets.
func (g Grant) String() string {
	return fmt.Sprintf("grant (access token expires %s, refresh token rotated: %t)",
		g.ExpiresAt.UTC().Format(time.RFC3339), !g.RefreshToken.IsZero())
}

// Identity is who connected, from the verified ID token.
type Identity struct {
	Subject  string // sub: pairwise per application
	ObjectID string // oid: the user in the tenant
	TenantID string // tid
	Username string // preferred_username (UPN), for display
	UPN      string // upn, when the application asks for it
	Email    string // email, when the application asks for it
	Name     string
	Issuer   string
	// IssuerTenant is the tenant ID the provider's issuer names (the
	// token's tid must be it), or "" for a common or organizations issuer,
	// which accepts users of any tenant.
	IssuerTenant string
}

// Claim returns the value of the identity claim name: preferred_username,
// upn, email or oid ("" for another name or an absent claim).
func (id Identity) Claim(name string) string {
	switch name {
	case "preferred_username":
		return id.Username
	case "upn":
		return id.UPN
	case "email":
		return id.Email
	case "oid":
		return id.ObjectID
	}
	return ""
}

// Who names the identity for a person: preferred_username, else upn,
// email or oid.
func (id Identity) Who() string {
	for _, v := range []string{id.Username, id.UPN, id.Email, id.ObjectID} {
		if v != "" {
			return v
		}
	}
	return "an unnamed account"
}

// Provider talks to one Entra ID tenant (or common/organizations) for one
// OAuth client. It is safe for concurrent use.
type Provider struct {
	cfg       Config
	now       func() time.Time
	client    *http.Client
	discovery string // the discovery base, .../{tenant}/v2.0
	tenant    string
	// issuerTemplate is the discovered issuer when it holds
	// TenantPlaceholder (common, organizations): ID tokens are then checked
	// against it with their own tid substituted, instead of go-oidc's
	// exact match.
	issuerTemplate string
	issuer         string // the exact issuer otherwise
	oidc           *oidc.Provider
	oauth          *oauth2.Config
	verifier       *oidc.IDTokenVerifier
	jwksURL        string
}

// NormalizeIssuer accepts both issuer URL forms and returns the discovery
// base (".../{tenant}/v2.0") and the tenant segment.
func NormalizeIssuer(raw string) (base, tenant string, err error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "", "", fmt.Errorf("%w (got %q)", ErrIssuerURL, raw)
	}
	if u.Scheme != "https" {
		return "", "", fmt.Errorf("%w (got %q: not https)", ErrIssuerURL, raw)
	}
	p := strings.TrimSuffix(u.Path, "/")
	p = strings.TrimSuffix(p, "/.well-known/openid-configuration")
	switch {
	case strings.HasSuffix(p, "/oauth2/v2.0"):
		p = strings.TrimSuffix(p, "/oauth2/v2.0")
	case strings.HasSuffix(p, "/v2.0"):
		p = strings.TrimSuffix(p, "/v2.0")
	default:
		return "", "", fmt.Errorf("%w (got %q)", ErrIssuerURL, raw)
	}
	i := strings.LastIndex(p, "/")
	tenant = p[i+1:]
	if i < 0 || !tenantRE.MatchString(tenant) {
		return "", "", fmt.Errorf("%w (got %q: no tenant ID or domain)", ErrIssuerURL, raw)
	}
	u.Path = p + "/v2.0"
	u.RawPath = ""
	return u.String(), tenant, nil
}

// statusRE matches go-oidc's report of a non-200 discovery answer,
// "<status code> <status text>: <body>".
var statusRE = regexp.MustCompile(`^[1-5][0-9]{2} [^:]*: `)

// tenantRE matches a tenant segment: a tenant ID, a domain, "common" or
// "organizations".
var tenantRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9.-]*$`)

var guidRE = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// New discovers the issuer's endpoints and returns a Provider. An
// unreachable issuer gives an *Error naming the discovery URL tried.
func New(ctx context.Context, cfg Config) (*Provider, error) {
	base, tenant, err := NormalizeIssuer(cfg.IssuerURL)
	if err != nil {
		return nil, err
	}
	if cfg.ClientID == "" {
		return nil, errors.New("entra: client ID is empty")
	}
	if cfg.VerifyTenant != "" && !tenantRE.MatchString(cfg.VerifyTenant) {
		return nil, fmt.Errorf("entra: verify tenant %q is not a tenant ID or domain", cfg.VerifyTenant)
	}
	p := &Provider{cfg: cfg, now: cfg.Now, client: limitClient(cfg.HTTPClient), discovery: base, tenant: tenant}
	if p.now == nil {
		p.now = time.Now
	}
	ctx, cancel := p.callContext(ctx)
	defer cancel()
	if err := p.discover(ctx); err != nil {
		return nil, err
	}
	ep := p.oidc.Endpoint()
	// Entra accepts the secret in the body or as Basic; fixing the style
	// avoids x/oauth2's auto-detection sending every failed request twice.
	ep.AuthStyle = oauth2.AuthStyleInParams
	p.oauth = &oauth2.Config{
		ClientID:     cfg.ClientID,
		ClientSecret: cfg.ClientSecret.Reveal(),
		Endpoint:     ep,
		RedirectURL:  cfg.RedirectURL,
		Scopes:       Scopes,
	}
	p.verifier = p.oidc.Verifier(&oidc.Config{
		ClientID: cfg.ClientID,
		Now:      p.now,
		// With the tenant placeholder the issuer differs per user's tenant;
		// checkIssuer does that check after Verify.
		SkipIssuerCheck: p.issuerTemplate != "",
	})
	return p, nil
}

// discover runs OIDC discovery and settles the issuer to check ID tokens
// against.
func (p *Provider) discover(ctx context.Context) error {
	wellKnown := p.discovery + "/.well-known/openid-configuration"
	octx := oidc.ClientContext(ctx, p.client)
	prov, err := oidc.NewProvider(octx, p.discovery)
	var mismatch *oidc.IssuerMismatchError
	switch {
	case err == nil:
		p.issuer = p.discovery
	case errors.As(err, &mismatch) && strings.Contains(mismatch.Discovered, TenantPlaceholder):
		// common/organizations publish the literal "{tenantid}" issuer, so
		// strict matching must fail. Insecure by go-oidc's naming: issuer
		// validation moves to checkIssuer, which requires each ID token's
		// iss to be this template with the token's own tid.
		if !sameOrigin(mismatch.Discovered, p.discovery) {
			return p.discoveryError(wellKnown, mismatch)
		}
		prov, err = oidc.NewProvider(oidc.InsecureIssuerURLContext(octx, mismatch.Discovered), p.discovery)
		if err != nil {
			return p.discoveryError(wellKnown, err)
		}
		p.issuerTemplate = mismatch.Discovered
	case errors.As(err, &mismatch) && !guidRE.MatchString(p.tenant) && isTenantIssuer(mismatch.Discovered, p.discovery):
		// A domain tenant ("contoso.onmicrosoft.com") is published under
		// its tenant ID: accept that issuer, from the same origin, as the
		// exact one to check. Insecure by go-oidc's naming, safe here: the
		// document came over TLS from the configured host.
		prov, err = oidc.NewProvider(oidc.InsecureIssuerURLContext(octx, mismatch.Discovered), p.discovery)
		if err != nil {
			return p.discoveryError(wellKnown, err)
		}
		p.issuer = mismatch.Discovered
	default:
		return p.discoveryError(wellKnown, err)
	}
	var meta struct {
		JWKSURL string `json:"jwks_uri"`
	}
	_ = prov.Claims(&meta)
	p.oidc, p.jwksURL = prov, meta.JWKSURL
	return nil
}

// discoveryError classifies a discovery failure; go-oidc reports a non-200
// answer as "<status>: <body>".
func (p *Provider) discoveryError(wellKnown string, err error) error {
	e := &Error{Op: "discovery", URL: wellKnown, ClientID: p.cfg.ClientID, Err: scrubErr(err, []secret.String{p.cfg.ClientSecret})}
	var mismatch *oidc.IssuerMismatchError
	msg := err.Error()
	switch {
	case errors.As(err, &mismatch):
		e.Code, e.Class = "issuer_mismatch", Misconfigured
	case statusRE.MatchString(msg):
		e.Status, _ = strconv.Atoi(msg[:3])
		e.Code = "http_" + msg[:3]
		if n, ok := findAADSTS(msg); ok {
			e.AADSTS = n
		}
		e.Class = classOf(e.Code, e.AADSTS, e.Status)
		e.Description = bound(msg)
		e.Err = nil
	case strings.HasPrefix(msg, "oidc: failed to decode"):
		e.Code, e.Class = "invalid_response", Misconfigured
	default:
		e.Code, e.Class = "network", Transient
	}
	return e
}

// findAADSTS finds the first "AADSTSnnnn" in s.
func findAADSTS(s string) (int, bool) {
	i := strings.Index(s, "AADSTS")
	if i < 0 {
		return 0, false
	}
	return parseAADSTS(s[i:])
}

func sameOrigin(a, b string) bool {
	ua, err1 := url.Parse(a)
	ub, err2 := url.Parse(b)
	return err1 == nil && err2 == nil && ua.Scheme == ub.Scheme && strings.EqualFold(ua.Host, ub.Host)
}

// isTenantIssuer reports whether iss is "<origin of base>/<tenant GUID>/v2.0".
func isTenantIssuer(iss, base string) bool {
	if !sameOrigin(iss, base) {
		return false
	}
	u, _ := url.Parse(iss)
	tid, ok := strings.CutSuffix(strings.TrimPrefix(u.Path, "/"), "/v2.0")
	return ok && guidRE.MatchString(tid)
}

// checkIssuer validates iss against the placeholder template with the
// token's tid: the check go-oidc cannot make for common/organizations.
func (p *Provider) checkIssuer(iss, tid string) error {
	if p.issuerTemplate == "" {
		return nil // go-oidc checked it exactly
	}
	if !guidRE.MatchString(tid) {
		return fmt.Errorf("%w: tid %q is not a tenant ID", ErrIDToken, tid)
	}
	if want := strings.Replace(p.issuerTemplate, TenantPlaceholder, tid, 1); iss != want {
		return fmt.Errorf("%w: issuer %q; want %q", ErrIDToken, iss, want)
	}
	return nil
}

// callContext bounds ctx by DefaultTimeout when it has no deadline.
func (p *Provider) callContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, DefaultTimeout)
}

// issuerTenant returns the tenant ID the exact issuer names, or "" for a
// common or organizations issuer.
func (p *Provider) issuerTenant() string {
	if p.issuer == "" {
		return ""
	}
	u, err := url.Parse(p.issuer)
	if err != nil {
		return ""
	}
	seg := strings.Split(strings.Trim(u.Path, "/"), "/")
	if len(seg) > 0 && guidRE.MatchString(seg[0]) {
		return strings.ToLower(seg[0])
	}
	return ""
}

// Issuer returns the discovery base URL (".../{tenant}/v2.0").
func (p *Provider) Issuer() string { return p.discovery }

// TokenURL returns the discovered token endpoint.
func (p *Provider) TokenURL() string { return p.oauth.Endpoint.TokenURL }

// Host returns the Azure DevOps host of the configuration.
func (p *Provider) Host() string { return p.cfg.Host }

// limitClient returns a copy of c (or a default client) whose responses
// are read through a size limit and that has a timeout.
func limitClient(c *http.Client) *http.Client {
	var out http.Client
	if c != nil {
		out = *c
	}
	if out.Timeout == 0 {
		out.Timeout = DefaultTimeout
	}
	base := out.Transport
	if base == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.TLSHandshakeTimeout = 10 * time.Second
		t.ResponseHeaderTimeout = DefaultTimeout
		base = t
	}
	out.Transport = limitTransport{base: base}
	return &out
}

// limitTransport reads every response body through io.LimitReader:
// go-oidc's discovery reads bodies whole.
type limitTransport struct{ base http.RoundTripper }

// RoundTrip implements http.RoundTripper.
func (t limitTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	resp.Body = limitedBody{Reader: io.LimitReader(resp.Body, MaxResponseBytes), Closer: resp.Body}
	return resp, nil
}

type limitedBody struct {
	io.Reader
	io.Closer
}
