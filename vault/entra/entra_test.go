package entra_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/azdo-sidecar/azdo-sidecar/e2e/entraemu"
	"github.com/azdo-sidecar/azdo-sidecar/secret"
	"github.com/azdo-sidecar/azdo-sidecar/vault/entra"
)

const (
	clientID    = "0f8fad5b-d9cb-469f-a165-70867728950e"
	redirectURL = "https://runner.example.test/oauth/callback"
	upn         = "bob@contoso.example"
)

var clientSecret = secret.New("vault-client-secret-must-not-leak")

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type fixture struct {
	emu   *entraemu.Server
	clock *clock
}

func newFixture(t *testing.T, cfg entraemu.Config) *fixture {
	t.Helper()
	clk := &clock{t: time.Now().Truncate(time.Second)}
	cfg.Now = clk.Now
	if cfg.TenantDomain == "" {
		cfg.TenantDomain = "contoso.onmicrosoft.com"
	}
	emu, err := entraemu.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	emu.Start()
	t.Cleanup(func() { _ = emu.Close() })
	emu.RegisterApp(clientID, clientSecret, []string{redirectURL})
	if _, err := emu.AddUser(entraemu.User{UPN: upn}); err != nil {
		t.Fatal(err)
	}
	return &fixture{emu: emu, clock: clk}
}

func (f *fixture) config(issuer string) entra.Config {
	return entra.Config{
		Host:         "dev.azure.com",
		IssuerURL:    issuer,
		ClientID:     clientID,
		ClientSecret: clientSecret,
		RedirectURL:  redirectURL,
		HTTPClient:   f.emu.Client(),
		Now:          f.clock.Now,
	}
}

func (f *fixture) provider(t *testing.T, issuer string) *entra.Provider {
	t.Helper()
	p, err := entra.New(context.Background(), f.config(issuer))
	if err != nil {
		t.Fatalf("New(%s) = %v", issuer, err)
	}
	return p
}

// noSecret fails when err's text, Reason or Advice holds one of secrets.
func noSecret(t *testing.T, err error, secrets ...secret.String) {
	t.Helper()
	texts := []string{err.Error()}
	var e *entra.Error
	if errors.As(err, &e) {
		texts = append(texts, e.Reason(), e.Advice(), e.Description)
	}
	for _, s := range append(secrets, clientSecret) {
		for _, txt := range texts {
			if s.Reveal() != "" && strings.Contains(txt, s.Reveal()) {
				t.Errorf("error text %q holds a secret", txt)
			}
		}
	}
}

func TestNormalizeIssuer(t *testing.T) {
	tests := []struct {
		name, in, wantBase, wantTenant string
		wantErr                        bool
	}{
		{name: "v2.0", in: "https://login.microsoftonline.com/tid-1/v2.0", wantBase: "https://login.microsoftonline.com/tid-1/v2.0", wantTenant: "tid-1"},
		{name: "oauth2/v2.0", in: "https://login.microsoftonline.com/tid-1/oauth2/v2.0", wantBase: "https://login.microsoftonline.com/tid-1/v2.0", wantTenant: "tid-1"},
		{name: "trailing slash", in: "https://login.microsoftonline.com/common/oauth2/v2.0/", wantBase: "https://login.microsoftonline.com/common/v2.0", wantTenant: "common"},
		{name: "well-known pasted", in: "https://h:8443/contoso.com/v2.0/.well-known/openid-configuration", wantBase: "https://h:8443/contoso.com/v2.0", wantTenant: "contoso.com"},
		{name: "v1 authority", in: "https://login.microsoftonline.com/tid-1", wantErr: true},
		{name: "http", in: "http://login.microsoftonline.com/tid-1/v2.0", wantErr: true},
		{name: "no tenant", in: "https://login.microsoftonline.com/v2.0", wantErr: true},
		{name: "placeholder", in: "https://login.microsoftonline.com/{tenantid}/v2.0", wantErr: true},
		{name: "query", in: "https://login.microsoftonline.com/t/v2.0?x=1", wantErr: true},
		{name: "empty", in: "", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base, tenant, err := entra.NormalizeIssuer(tt.in)
			if tt.wantErr {
				if !errors.Is(err, entra.ErrIssuerURL) {
					t.Errorf("NormalizeIssuer(%q) = %q, %q, %v; want ErrIssuerURL", tt.in, base, tenant, err)
				}
				return
			}
			if err != nil || base != tt.wantBase || tenant != tt.wantTenant {
				t.Errorf("NormalizeIssuer(%q) = %q, %q, %v; want %q, %q", tt.in, base, tenant, err, tt.wantBase, tt.wantTenant)
			}
		})
	}
}

// connect runs the browser part of the Connect flow against the emulator
// and returns the code.
func connect(t *testing.T, f *fixture, authURL string) string {
	t.Helper()
	c := f.emu.Client()
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := c.Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || resp.StatusCode != http.StatusFound || loc.Query().Get("code") == "" {
		t.Fatalf("authorize = %d %s; want a redirect with a code", resp.StatusCode, loc)
	}
	if got := loc.Query().Get("state"); got != "the-state" {
		t.Errorf("state = %q; want the-state", got)
	}
	return loc.Query().Get("code")
}

func TestExchangeBothIssuerFormsAndPlaceholder(t *testing.T) {
	f := newFixture(t, entraemu.Config{AccessTokenLifetime: 47 * time.Minute})
	tid := f.emu.TenantID()
	base := f.emu.URL()
	tests := []struct{ name, issuer string }{
		{"tenant v2.0", base + "/" + tid + "/v2.0"},
		{"tenant oauth2/v2.0", base + "/" + tid + "/oauth2/v2.0"},
		{"domain", base + "/contoso.onmicrosoft.com/v2.0"},
		{"common placeholder", base + "/common/v2.0"},
		{"organizations placeholder oauth2 form", base + "/organizations/oauth2/v2.0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := f.provider(t, tt.issuer)
			verifier := oauth2.GenerateVerifier()
			code := connect(t, f, p.AuthCodeURL("the-state", "the-nonce", verifier, ""))
			g, id, err := p.Exchange(context.Background(), code, verifier, "the-nonce")
			if err != nil {
				t.Fatalf("Exchange = %v", err)
			}
			if id.Username != upn || id.TenantID != tid || id.Issuer != base+"/"+tid+"/v2.0" || id.ObjectID == "" {
				t.Errorf("Identity = %+v; want %s in tenant %s", id, upn, tid)
			}
			// The issuer names a tenant (the domain one resolves to its
			// ID) unless it is common or organizations.
			wantTenant := strings.ToLower(tid)
			if strings.Contains(tt.name, "placeholder") {
				wantTenant = ""
			}
			if id.IssuerTenant != wantTenant {
				t.Errorf("IssuerTenant = %q; want %q", id.IssuerTenant, wantTenant)
			}
			if id.Claim("preferred_username") != upn || id.Claim("oid") != id.ObjectID || id.Claim("sub") != "" {
				t.Errorf("Claim() = %q, %q, %q; want the UPN, the oid and nothing for an unknown claim", id.Claim("preferred_username"), id.Claim("oid"), id.Claim("sub"))
			}
			if want := f.clock.Now().Add(47 * time.Minute); !g.ExpiresAt.Equal(want) {
				t.Errorf("ExpiresAt = %v; want %v (expires_in from the answer)", g.ExpiresAt, want)
			}
			if sub, err := f.emu.VerifyAccessToken(g.AccessToken.Reveal()); err != nil || sub != upn {
				t.Errorf("access token: VerifyAccessToken = %q, %v", sub, err)
			}
			if g.RefreshToken.IsZero() {
				t.Error("no refresh token")
			}
		})
	}
}

func TestExchangeRejects(t *testing.T) {
	f := newFixture(t, entraemu.Config{})
	p := f.provider(t, f.emu.IssuerURL("common"))
	tests := []struct {
		name      string
		verifier  func(v string) string
		nonce     string
		wantIDErr bool
		wantCode  int
	}{
		{name: "wrong nonce", verifier: func(v string) string { return v }, nonce: "other", wantIDErr: true},
		{name: "empty nonce", verifier: func(v string) string { return v }, nonce: "", wantIDErr: true},
		{name: "wrong pkce verifier", verifier: func(string) string { return oauth2.GenerateVerifier() }, nonce: "the-nonce", wantCode: entraemu.CodePKCEMismatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := oauth2.GenerateVerifier()
			code := connect(t, f, p.AuthCodeURL("the-state", "the-nonce", v, ""))
			_, _, err := p.Exchange(context.Background(), code, tt.verifier(v), tt.nonce)
			if tt.wantIDErr {
				if !errors.Is(err, entra.ErrIDToken) {
					t.Errorf("Exchange = %v; want ErrIDToken", err)
				}
				return
			}
			var e *entra.Error
			if !errors.As(err, &e) || e.AADSTS != tt.wantCode || e.Class != entra.Permanent {
				t.Errorf("Exchange = %v; want permanent AADSTS%d", err, tt.wantCode)
			}
			noSecret(t, err, secret.New(code))
		})
	}
}

func TestRefreshRotates(t *testing.T) {
	f := newFixture(t, entraemu.Config{StrictRotation: true, AccessTokenLifetime: 61 * time.Minute})
	seed, err := f.emu.IssueTokensForClient(upn, clientID)
	if err != nil {
		t.Fatal(err)
	}
	p := f.provider(t, f.emu.IssuerURL(f.emu.TenantID()))
	rt := seed.RefreshToken
	for i := range 3 {
		f.clock.Add(30 * time.Minute)
		g, err := p.Refresh(context.Background(), rt)
		if err != nil {
			t.Fatalf("Refresh #%d = %v", i+1, err)
		}
		if g.RefreshToken.IsZero() || g.RefreshToken.Equal(rt) {
			t.Fatalf("Refresh #%d did not rotate the refresh token", i+1)
		}
		if want := f.clock.Now().Add(61 * time.Minute); !g.ExpiresAt.Equal(want) {
			t.Errorf("ExpiresAt = %v; want %v", g.ExpiresAt, want)
		}
		if strings.Contains(g.String(), g.AccessToken.Reveal()) {
			t.Error("Grant.String shows the access token")
		}
		rt = g.RefreshToken
	}
	if n := f.emu.DoubleUseCount(); n != 0 {
		t.Errorf("DoubleUseCount = %d; want 0", n)
	}
	if c := f.emu.Counts(); c.RefreshToken != 3 {
		t.Errorf("refresh requests = %d; want 3", c.RefreshToken)
	}
}

func TestRefreshErrorClasses(t *testing.T) {
	tests := []struct {
		name       string
		setup      func(f *fixture)
		cfg        func(c *entra.Config)
		wantClass  entra.Class
		wantCode   string
		wantAADSTS int
		wantAdvice string
	}{
		{name: "revoked", setup: func(f *fixture) { _ = f.emu.RevokeUser(upn) }, wantClass: entra.Permanent, wantCode: "invalid_grant", wantAADSTS: 50173, wantAdvice: "revoked"},
		{name: "inactive", setup: func(f *fixture) { _ = f.emu.ExpireRefreshTokens(upn) }, wantClass: entra.Permanent, wantCode: "invalid_grant", wantAADSTS: 700082, wantAdvice: "unused"},
		{name: "sign-in frequency", setup: func(f *fixture) { _ = f.emu.SetUserError(upn, 70043) }, wantClass: entra.Permanent, wantCode: "invalid_grant", wantAADSTS: 70043, wantAdvice: "sign-in frequency"},
		{name: "mfa", setup: func(f *fixture) { _ = f.emu.SetUserError(upn, 50076) }, wantClass: entra.Permanent, wantCode: "interaction_required", wantAADSTS: 50076, wantAdvice: "Multi-factor"},
		{name: "conditional access", setup: func(f *fixture) { _ = f.emu.SetUserError(upn, 53003) }, wantClass: entra.Permanent, wantCode: "interaction_required", wantAADSTS: 53003, wantAdvice: "conditional access"},
		{name: "consent", setup: func(f *fixture) { _ = f.emu.SetConsent(upn, false) }, wantClass: entra.Permanent, wantCode: "invalid_grant", wantAADSTS: 65001, wantAdvice: "consent"},
		{name: "reused refresh token", setup: func(f *fixture) { f.emu.SetStrictRotation(true) }, wantClass: entra.Permanent, wantCode: "invalid_grant", wantAADSTS: 70000, wantAdvice: "connect again"},
		{name: "wrong secret", cfg: func(c *entra.Config) { c.ClientSecret = secret.New("wrong-secret-also-private") }, wantClass: entra.Misconfigured, wantCode: "invalid_client", wantAADSTS: 7000215, wantAdvice: "client secret"},
		{name: "resource not in tenant", setup: func(f *fixture) { _ = f.emu.SetResourceAvailable(f.emu.TenantID(), false) }, wantClass: entra.Misconfigured, wantCode: "invalid_resource", wantAADSTS: 500011, wantAdvice: "another Entra ID tenant"},
		{name: "outage", setup: func(f *fixture) { f.emu.SetOutage(true) }, wantClass: entra.Transient, wantCode: "temporarily_unavailable", wantAADSTS: 90033, wantAdvice: "retries"},
		{name: "throttled", setup: func(f *fixture) { f.emu.SetOutageMode(entraemu.OutageThrottled) }, wantClass: entra.Transient, wantCode: "temporarily_unavailable", wantAADSTS: 50196, wantAdvice: "retries"},
		{name: "connection reset", setup: func(f *fixture) { f.emu.SetOutageMode(entraemu.OutageReset) }, wantClass: entra.Transient, wantCode: "network", wantAdvice: "Cannot reach"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, entraemu.Config{})
			seed, err := f.emu.IssueTokensForClient(upn, clientID)
			if err != nil {
				t.Fatal(err)
			}
			cfg := f.config(f.emu.IssuerURL(f.emu.TenantID()))
			if tt.cfg != nil {
				tt.cfg(&cfg)
			}
			p, err := entra.New(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			if tt.name == "reused refresh token" {
				if _, err := p.Refresh(context.Background(), seed.RefreshToken); err != nil {
					t.Fatal(err)
				}
			}
			if tt.setup != nil {
				tt.setup(f)
			}
			before := f.emu.Counts().RefreshToken
			_, err = p.Refresh(context.Background(), seed.RefreshToken)
			var e *entra.Error
			if !errors.As(err, &e) {
				t.Fatalf("Refresh = %v; want *entra.Error", err)
			}
			if e.Class != tt.wantClass || e.Code != tt.wantCode || e.AADSTS != tt.wantAADSTS || entra.ClassOf(err) != tt.wantClass {
				t.Errorf("Refresh error = class %s code %s AADSTS%d; want %s %s AADSTS%d", e.Class, e.Code, e.AADSTS, tt.wantClass, tt.wantCode, tt.wantAADSTS)
			}
			if !strings.Contains(strings.ToLower(e.Advice()), strings.ToLower(tt.wantAdvice)) {
				t.Errorf("Advice() = %q; want it to mention %q", e.Advice(), tt.wantAdvice)
			}
			if want := map[string]time.Duration{"outage": time.Second, "throttled": 2 * time.Second}[tt.name]; e.RetryAfter != want {
				t.Errorf("RetryAfter = %v; want %v", e.RetryAfter, want)
			}
			if got := f.emu.Counts().RefreshToken - before; got != 1 {
				t.Errorf("refresh requests = %d; want exactly 1 (no hidden retry)", got)
			}
			noSecret(t, err, seed.RefreshToken, cfg.ClientSecret)
		})
	}
}

func TestVerifyCommonWithoutTenant(t *testing.T) {
	f := newFixture(t, entraemu.Config{})
	p := f.provider(t, f.emu.IssuerURL("common"))
	if err := p.Verify(context.Background()); !errors.Is(err, entra.ErrCredentialsUnchecked) {
		t.Errorf("Verify(common) = %v; want ErrCredentialsUnchecked", err)
	}
	if n := f.emu.Counts().ClientCredentials; n != 0 {
		t.Errorf("client credential requests = %d; want 0 (not sent to common)", n)
	}
}

func TestRefreshEmptyToken(t *testing.T) {
	f := newFixture(t, entraemu.Config{})
	p := f.provider(t, f.emu.IssuerURL(f.emu.TenantID()))
	if _, err := p.Refresh(context.Background(), secret.String{}); entra.ClassOf(err) != entra.Permanent {
		t.Errorf("Refresh(empty) = %v; want a permanent error", err)
	}
	if n := f.emu.Counts().RefreshToken; n != 0 {
		t.Errorf("refresh requests = %d; want 0", n)
	}
}

// closedAddr returns a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestVerify(t *testing.T) {
	tests := []struct {
		name       string
		issuer     func(f *fixture) string
		cfg        func(c *entra.Config)
		setup      func(f *fixture)
		newFails   bool // the failure comes from discovery, in New
		wantClass  entra.Class
		wantAADSTS int
		wantInMsg  string
		wantAdvice string
	}{
		{name: "ok"},
		{name: "common with verify tenant", issuer: func(f *fixture) string { return f.emu.IssuerURL("common") }, cfg: func(c *entra.Config) { c.VerifyTenant = "contoso.onmicrosoft.com" }},
		{name: "common with verify tenant, wrong secret", issuer: func(f *fixture) string { return f.emu.IssuerURL("organizations") }, cfg: func(c *entra.Config) {
			c.VerifyTenant = "contoso.onmicrosoft.com"
			c.ClientSecret = secret.New("wrong-in-organizations")
		}, wantClass: entra.Misconfigured, wantAADSTS: 7000215, wantInMsg: "/contoso.onmicrosoft.com/oauth2/v2.0/token", wantAdvice: "client secret"},
		{name: "wrong secret", cfg: func(c *entra.Config) { c.ClientSecret = secret.New("not-the-secret-either") }, wantClass: entra.Misconfigured, wantAADSTS: 7000215, wantInMsg: "invalid_client AADSTS7000215", wantAdvice: "client secret"},
		{name: "unknown client id", cfg: func(c *entra.Config) { c.ClientID = "deadbeef-0000-0000-0000-000000000000" }, wantClass: entra.Misconfigured, wantAADSTS: 700016, wantInMsg: "AADSTS700016", wantAdvice: "deadbeef-0000-0000-0000-000000000000 does not exist"},
		{name: "resource not in tenant", setup: func(f *fixture) { _ = f.emu.SetResourceAvailable(f.emu.TenantID(), false) }, wantClass: entra.Misconfigured, wantAADSTS: 500011, wantInMsg: "AADSTS500011", wantAdvice: "issuer_url"},
		{name: "unknown tenant", issuer: func(f *fixture) string { return f.emu.IssuerURL("nosuch.example") }, newFails: true, wantClass: entra.Misconfigured, wantAADSTS: 90002, wantInMsg: "/nosuch.example/v2.0/.well-known/openid-configuration", wantAdvice: "tenant"},
		{name: "unreachable issuer", issuer: func(f *fixture) string { return "https://" + closedAddr(t) + "/common/v2.0" }, newFails: true, wantClass: entra.Transient, wantInMsg: "/common/v2.0/.well-known/openid-configuration", wantAdvice: "Cannot reach https://"},
		{name: "endpoints down after discovery", setup: func(f *fixture) { f.emu.SetOutageMode(entraemu.OutageReset) }, wantClass: entra.Transient, wantInMsg: "/discovery/v2.0/keys", wantAdvice: "Cannot reach"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, entraemu.Config{})
			issuer := f.emu.IssuerURL(f.emu.TenantID())
			if tt.issuer != nil {
				issuer = tt.issuer(f)
			}
			cfg := f.config(issuer)
			if tt.cfg != nil {
				tt.cfg(&cfg)
			}
			p, err := entra.New(context.Background(), cfg)
			if err == nil {
				if tt.setup != nil {
					tt.setup(f)
				}
				err = p.Verify(context.Background())
			} else if !tt.newFails {
				t.Fatalf("New = %v", err)
			}
			if tt.wantInMsg == "" {
				if err != nil {
					t.Fatalf("Verify = %v; want nil", err)
				}
				return
			}
			var e *entra.Error
			if !errors.As(err, &e) {
				t.Fatalf("Verify = %v; want *entra.Error", err)
			}
			if e.Class != tt.wantClass || e.AADSTS != tt.wantAADSTS || !strings.Contains(err.Error(), tt.wantInMsg) {
				t.Errorf("Verify = %v (class %s, AADSTS%d); want class %s, AADSTS%d, mentioning %q", err, e.Class, e.AADSTS, tt.wantClass, tt.wantAADSTS, tt.wantInMsg)
			}
			if !strings.Contains(e.Advice(), tt.wantAdvice) {
				t.Errorf("Advice() = %q; want it to mention %q", e.Advice(), tt.wantAdvice)
			}
			noSecret(t, err, cfg.ClientSecret)
		})
	}
}
