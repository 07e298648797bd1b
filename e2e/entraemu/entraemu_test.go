package entraemu_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/azdo-sidecar/azdo-sidecar/e2e/entraemu"
	"github.com/azdo-sidecar/azdo-sidecar/secret"
)

const (
	clientID    = "11111111-2222-3333-4444-555555555555"
	redirectURI = "https://runner.example.test/oauth/callback"
	upn         = "alice@contoso.example"
)

var (
	clientSecret = secret.New("s3cr3t-value-never-printed")
	scopes       = []string{"openid", "offline_access", entraemu.ResourceID + "/vso.code", entraemu.ResourceID + "/vso.code_write"}
)

// clock is a settable clock for tests.
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
	srv   *entraemu.Server
	clock *clock
	ctx   context.Context
	http  *http.Client
}

func newFixture(t *testing.T, cfg entraemu.Config) *fixture {
	t.Helper()
	clk := &clock{t: time.Now()}
	cfg.Now = clk.Now
	srv, err := entraemu.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	srv.Start()
	t.Cleanup(func() { _ = srv.Close() })
	srv.RegisterApp(clientID, clientSecret, []string{redirectURI})
	if _, err := srv.AddUser(entraemu.User{UPN: upn}); err != nil {
		t.Fatalf("AddUser: %v", err)
	}
	hc := srv.Client()
	return &fixture{srv: srv, clock: clk, ctx: oidc.ClientContext(context.Background(), hc), http: hc}
}

func (f *fixture) oauth(tenant string) *oauth2.Config {
	return &oauth2.Config{
		ClientID:     clientID,
		ClientSecret: clientSecret.Reveal(),
		RedirectURL:  redirectURI,
		Scopes:       scopes,
		Endpoint: oauth2.Endpoint{
			AuthURL:   f.srv.AuthorizeURL(tenant),
			TokenURL:  f.srv.TokenURL(tenant),
			AuthStyle: oauth2.AuthStyleInParams,
		},
	}
}

// authorize follows the authorize URL once and returns the redirect's query.
func (f *fixture) authorize(t *testing.T, authURL string) (url.Values, *http.Response) {
	t.Helper()
	c := *f.http
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := c.Get(authURL)
	if err != nil {
		t.Fatalf("GET authorize: %v", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode != http.StatusFound {
		return nil, resp
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		t.Fatalf("Location: %v", err)
	}
	return loc.Query(), resp
}

// aadCode returns the first AADSTS code of an oauth2 error.
func aadCode(t *testing.T, err error) (string, int) {
	t.Helper()
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) {
		t.Fatalf("error %v is not an oauth2.RetrieveError", err)
	}
	var body entraemu.ErrorBody
	if err := json.Unmarshal(re.Body, &body); err != nil {
		t.Fatalf("error body %q: %v", re.Body, err)
	}
	if len(body.ErrorCodes) != 1 || body.TraceID == "" || body.CorrelationID == "" || body.Timestamp == "" {
		t.Errorf("error body %+v lacks Entra's fields", body)
	}
	return body.Error, body.ErrorCodes[0]
}

func TestAuthCodeFlowWithRealClients(t *testing.T) {
	f := newFixture(t, entraemu.Config{AccessTokenLifetime: 61 * time.Minute})
	tid := f.srv.TenantID()
	provider, err := oidc.NewProvider(f.ctx, f.srv.IssuerURL(tid))
	if err != nil {
		t.Fatalf("oidc.NewProvider(%s) = %v", f.srv.IssuerURL(tid), err)
	}
	conf := f.oauth(tid)
	conf.Endpoint = provider.Endpoint()
	conf.Endpoint.AuthStyle = oauth2.AuthStyleInHeader
	verifier := oauth2.GenerateVerifier()
	q, resp := f.authorize(t, conf.AuthCodeURL("state-123", oidc.Nonce("nonce-456"), oauth2.S256ChallengeOption(verifier)))
	if q == nil {
		t.Fatalf("authorize status %d; want 302", resp.StatusCode)
	}
	if got := q.Get("state"); got != "state-123" {
		t.Errorf("state = %q; want %q", got, "state-123")
	}
	tok, err := conf.Exchange(f.ctx, q.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("Exchange: %v", err)
	}
	if got := tok.ExpiresIn; got != 61*60 {
		t.Errorf("expires_in = %d; want %d", got, 61*60)
	}
	if tok.RefreshToken == "" {
		t.Error("no refresh token despite offline_access")
	}
	rawID, _ := tok.Extra("id_token").(string)
	idt, err := provider.Verifier(&oidc.Config{ClientID: clientID, Now: f.clock.Now}).Verify(f.ctx, rawID)
	if err != nil {
		t.Fatalf("ID token Verify: %v", err)
	}
	if idt.Nonce != "nonce-456" {
		t.Errorf("nonce = %q; want %q", idt.Nonce, "nonce-456")
	}
	sub, err := f.srv.VerifyAccessToken(tok.AccessToken)
	if err != nil || sub != upn {
		t.Errorf("VerifyAccessToken = %q, %v; want %q", sub, err, upn)
	}
	claims, _ := f.srv.ParseAccessToken(tok.AccessToken)
	if claims.Iss != "https://sts.windows.net/"+tid+"/" || claims.Aud != entraemu.ResourceID || claims.Scp != "vso.code vso.code_write" {
		t.Errorf("access claims = %+v; want v1 Azure DevOps shape", claims)
	}
	// The code is single use.
	_, err = conf.Exchange(f.ctx, q.Get("code"), oauth2.VerifierOption(verifier))
	if e, code := aadCode(t, err); e != "invalid_grant" || code != entraemu.CodeCodeRedeemed {
		t.Errorf("second Exchange = %s %d; want invalid_grant %d", e, code, entraemu.CodeCodeRedeemed)
	}
	// The access token expires with the clock.
	f.clock.Add(61 * time.Minute)
	if _, err := f.srv.VerifyAccessToken(tok.AccessToken); !errors.Is(err, entraemu.ErrTokenExpired) {
		t.Errorf("VerifyAccessToken after expiry = %v; want ErrTokenExpired", err)
	}
}

func TestDiscoveryIssuers(t *testing.T) {
	f := newFixture(t, entraemu.Config{TenantDomain: "contoso.onmicrosoft.com"})
	tid := f.srv.TenantID()
	tests := []struct {
		name, tenant, wantIssuer string
	}{
		{"tenant id", tid, f.srv.URL() + "/" + tid + "/v2.0"},
		{"domain", "contoso.onmicrosoft.com", f.srv.URL() + "/" + tid + "/v2.0"},
		{"common", "common", f.srv.URL() + "/{tenantid}/v2.0"},
		{"organizations", "organizations", f.srv.URL() + "/{tenantid}/v2.0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := f.http.Get(f.srv.IssuerURL(tt.tenant) + "/.well-known/openid-configuration")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var doc struct {
				Issuer string `json:"issuer"`
			}
			if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&doc); err != nil {
				t.Fatal(err)
			}
			if doc.Issuer != tt.wantIssuer {
				t.Errorf("issuer of %s = %q; want %q", tt.tenant, doc.Issuer, tt.wantIssuer)
			}
		})
	}
	// Strict discovery fails for the placeholder, as with Entra ID; the
	// insecure context is the documented way around it.
	_, err := oidc.NewProvider(f.ctx, f.srv.IssuerURL("common"))
	var mismatch *oidc.IssuerMismatchError
	if !errors.As(err, &mismatch) {
		t.Errorf("NewProvider(common) = %v; want IssuerMismatchError", err)
	}
	ctx := oidc.InsecureIssuerURLContext(f.ctx, f.srv.URL()+"/{tenantid}/v2.0")
	if _, err := oidc.NewProvider(ctx, f.srv.IssuerURL("common")); err != nil {
		t.Errorf("NewProvider(common, insecure issuer) = %v", err)
	}
	// The oauth2/v2.0 form is not a discovery base: Entra answers 404.
	resp, err := f.http.Get(f.srv.URL() + "/" + tid + "/oauth2/v2.0/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("discovery under oauth2/v2.0: status %d; want 404", resp.StatusCode)
	}
	// An unknown tenant is AADSTS90002.
	resp, err = f.http.Get(f.srv.IssuerURL("nope.example") + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode != 400 || !strings.Contains(string(b), "AADSTS90002") {
		t.Errorf("unknown tenant: %d %s; want 400 AADSTS90002", resp.StatusCode, b)
	}
}

func refresh(f *fixture, tenant string, rt secret.String) (*oauth2.Token, error) {
	ts := f.oauth(tenant).TokenSource(f.ctx, &oauth2.Token{RefreshToken: rt.Reveal(), Expiry: time.Unix(1, 0)})
	return ts.Token()
}

func TestTokenEndpointTenants(t *testing.T) {
	f := newFixture(t, entraemu.Config{TenantDomain: "contoso.onmicrosoft.com"})
	tests := []struct {
		name     string
		tenant   string
		wantCode int // 0: success
	}{
		{"tenant ID", f.srv.TenantID(), 0},
		{"domain", "contoso.onmicrosoft.com", 0},
		{"organizations", "organizations", 0},
		{"unknown tenant", "nope.example", entraemu.CodeTenantNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			seed, err := f.srv.IssueTokensForTest(upn)
			if err != nil {
				t.Fatal(err)
			}
			_, err = refresh(f, tt.tenant, seed.RefreshToken)
			if tt.wantCode == 0 {
				if err != nil {
					t.Errorf("refresh at %s = %v; want success", tt.tenant, err)
				}
				return
			}
			if _, code := aadCode(t, err); code != tt.wantCode {
				t.Errorf("refresh at %s = AADSTS%d; want AADSTS%d", tt.tenant, code, tt.wantCode)
			}
		})
	}
}

func TestRefreshRotation(t *testing.T) {
	for _, strict := range []bool{false, true} {
		name := "lenient"
		if strict {
			name = "strict"
		}
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, entraemu.Config{StrictRotation: strict})
			seed, err := f.srv.IssueTokensForTest(upn)
			if err != nil {
				t.Fatal(err)
			}
			tok, err := refresh(f, f.srv.TenantID(), seed.RefreshToken)
			if err != nil {
				t.Fatalf("refresh: %v", err)
			}
			if tok.RefreshToken == "" || tok.RefreshToken == seed.RefreshToken.Reveal() {
				t.Fatalf("refresh token did not rotate")
			}
			if _, err := refresh(f, f.srv.TenantID(), secret.New(tok.RefreshToken)); err != nil {
				t.Fatalf("refresh with rotated token: %v", err)
			}
			if n := f.srv.DoubleUseCount(); n != 0 {
				t.Errorf("DoubleUseCount = %d; want 0", n)
			}
			_, err = refresh(f, f.srv.TenantID(), seed.RefreshToken) // double use
			if strict {
				if e, code := aadCode(t, err); e != "invalid_grant" || code != entraemu.CodeRefreshReused {
					t.Errorf("reuse = %s %d; want invalid_grant %d", e, code, entraemu.CodeRefreshReused)
				}
			} else if err != nil {
				t.Errorf("lenient reuse = %v; want success", err)
			}
			if n := f.srv.DoubleUseCount(); n != 1 {
				t.Errorf("DoubleUseCount = %d; want 1", n)
			}
			if c := f.srv.Counts(); c.RefreshToken != 3 {
				t.Errorf("Counts().RefreshToken = %d; want 3", c.RefreshToken)
			}
		})
	}
}

func TestTokenErrors(t *testing.T) {
	tests := []struct {
		name       string
		setup      func(f *fixture)
		conf       func(c *oauth2.Config)
		wantErr    string
		wantCode   int
		wantStatus int
	}{
		{name: "wrong secret", conf: func(c *oauth2.Config) { c.ClientSecret = "wrong" }, wantErr: "invalid_client", wantCode: entraemu.CodeWrongSecret, wantStatus: 401},
		{name: "unknown app", conf: func(c *oauth2.Config) { c.ClientID = "00000000-0000-0000-0000-00000000dead" }, wantErr: "unauthorized_client", wantCode: entraemu.CodeUnknownApp, wantStatus: 400},
		{name: "revoked", setup: func(f *fixture) { _ = f.srv.RevokeUser(upn) }, wantErr: "invalid_grant", wantCode: entraemu.CodeRevoked, wantStatus: 400},
		{name: "expired flag", setup: func(f *fixture) { _ = f.srv.ExpireRefreshTokens(upn) }, wantErr: "invalid_grant", wantCode: entraemu.CodeInactive, wantStatus: 400},
		{name: "inactive by clock", setup: func(f *fixture) { f.clock.Add(entraemu.DefaultRefreshInactivity) }, wantErr: "invalid_grant", wantCode: entraemu.CodeInactive, wantStatus: 400},
		{name: "mfa", setup: func(f *fixture) { _ = f.srv.SetUserError(upn, entraemu.CodeMFARequired) }, wantErr: "interaction_required", wantCode: entraemu.CodeMFARequired, wantStatus: 400},
		{name: "sign-in frequency", setup: func(f *fixture) { _ = f.srv.SetUserError(upn, entraemu.CodeSignInFrequency) }, wantErr: "invalid_grant", wantCode: entraemu.CodeSignInFrequency, wantStatus: 400},
		{name: "consent", setup: func(f *fixture) { _ = f.srv.SetConsent(upn, false) }, wantErr: "invalid_grant", wantCode: entraemu.CodeConsentMissing, wantStatus: 400},
		{name: "resource not in tenant", setup: func(f *fixture) { _ = f.srv.SetResourceAvailable(f.srv.TenantID(), false) }, wantErr: "invalid_resource", wantCode: entraemu.CodeResourceNotFound, wantStatus: 400},
		{name: "bare scope", conf: func(c *oauth2.Config) { c.Scopes = []string{"vso.code"} }, wantErr: "invalid_scope", wantCode: entraemu.CodeInvalidScope, wantStatus: 400},
		{name: "scopes of two resources", conf: func(c *oauth2.Config) {
			c.Scopes = []string{"offline_access", entraemu.ResourceID + "/vso.code", "https://graph.microsoft.com/User.Read"}
		}, wantErr: "invalid_scope", wantCode: entraemu.CodeMultipleResources, wantStatus: 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, entraemu.Config{})
			seed, err := f.srv.IssueTokensForTest(upn)
			if err != nil {
				t.Fatal(err)
			}
			if tt.setup != nil {
				tt.setup(f)
			}
			conf := f.oauth(f.srv.TenantID())
			if tt.conf != nil {
				tt.conf(conf)
			}
			form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {seed.RefreshToken.Reveal()}, "client_id": {conf.ClientID}, "client_secret": {conf.ClientSecret}}
			if tt.name == "bare scope" || tt.name == "scopes of two resources" {
				form.Set("scope", strings.Join(conf.Scopes, " "))
			}
			resp, err := f.http.PostForm(conf.Endpoint.TokenURL, form)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
			var body entraemu.ErrorBody
			_ = json.Unmarshal(raw, &body)
			if resp.StatusCode != tt.wantStatus || body.Error != tt.wantErr || len(body.ErrorCodes) == 0 || body.ErrorCodes[0] != tt.wantCode {
				t.Errorf("token = %d %s %v; want %d %s [%d]", resp.StatusCode, body.Error, body.ErrorCodes, tt.wantStatus, tt.wantErr, tt.wantCode)
			}
			if want := "AADSTS" + itoa(tt.wantCode) + ": "; !strings.HasPrefix(body.ErrorDescription, want) {
				t.Errorf("error_description = %q; want prefix %q", body.ErrorDescription, want)
			}
			if strings.Contains(string(raw), clientSecret.Reveal()) || strings.Contains(string(raw), seed.RefreshToken.Reveal()) {
				t.Errorf("error body echoes a secret: %s", raw)
			}
		})
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

func TestAuthorizeErrors(t *testing.T) {
	tests := []struct {
		name      string
		mutate    func(q url.Values)
		setup     func(f *fixture)
		wantPage  int    // AADSTS code on an error page (no redirect)
		wantError string // error parameter on the redirect
	}{
		{name: "redirect uri mismatch", mutate: func(q url.Values) { q.Set("redirect_uri", "https://evil.test/cb") }, wantPage: entraemu.CodeRedirectMismatch},
		{name: "unknown app", mutate: func(q url.Values) { q.Set("client_id", "nope") }, wantPage: entraemu.CodeUnknownApp},
		{name: "bare vso.code", mutate: func(q url.Values) { q.Set("scope", "openid vso.code") }, wantError: "invalid_scope"},
		{name: "scopes of two resources", mutate: func(q url.Values) {
			q.Set("scope", "openid offline_access "+entraemu.ResourceID+"/vso.code "+entraemu.GraphResourceID+"/User.Read")
		}, wantError: "invalid_scope"},
		{name: "no pkce", mutate: func(q url.Values) { q.Del("code_challenge") }, wantError: "invalid_request"},
		{name: "plain pkce", mutate: func(q url.Values) { q.Set("code_challenge_method", "plain") }, wantError: "invalid_request"},
		{name: "consent", setup: func(f *fixture) { _ = f.srv.SetConsent(upn, false) }, wantError: "consent_required"},
		{name: "resource not in tenant", setup: func(f *fixture) { _ = f.srv.SetResourceAvailable(f.srv.TenantID(), false) }, wantError: "invalid_resource"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, entraemu.Config{})
			if tt.setup != nil {
				tt.setup(f)
			}
			u, _ := url.Parse(f.oauth(f.srv.TenantID()).AuthCodeURL("st", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
			q := u.Query()
			if tt.mutate != nil {
				tt.mutate(q)
			}
			u.RawQuery = q.Encode()
			got, resp := f.authorize(t, u.String())
			if tt.wantPage != 0 {
				if got != nil || resp.Header.Get("X-Entraemu-Error-Code") != itoa(tt.wantPage) {
					t.Errorf("authorize = %d (code %s); want error page AADSTS%d", resp.StatusCode, resp.Header.Get("X-Entraemu-Error-Code"), tt.wantPage)
				}
				return
			}
			if got == nil || got.Get("error") != tt.wantError || got.Get("state") != "st" {
				t.Errorf("authorize redirect = %v; want error=%s with state", got, tt.wantError)
			}
		})
	}
}

func TestCodeRedemptionErrors(t *testing.T) {
	tests := []struct {
		name     string
		step     time.Duration
		verifier func(v string) string
		wantCode int
	}{
		{name: "expired code", step: entraemu.DefaultCodeLifetime, verifier: func(v string) string { return v }, wantCode: entraemu.CodeCodeExpired},
		{name: "wrong verifier", verifier: func(string) string { return oauth2.GenerateVerifier() }, wantCode: entraemu.CodePKCEMismatch},
		{name: "missing verifier", verifier: func(string) string { return "" }, wantCode: entraemu.CodePKCEMismatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, entraemu.Config{})
			conf := f.oauth(f.srv.TenantID())
			v := oauth2.GenerateVerifier()
			q, resp := f.authorize(t, conf.AuthCodeURL("st", oauth2.S256ChallengeOption(v)))
			if q == nil {
				t.Fatalf("authorize status %d", resp.StatusCode)
			}
			f.clock.Add(tt.step)
			var opts []oauth2.AuthCodeOption
			if w := tt.verifier(v); w != "" {
				opts = append(opts, oauth2.VerifierOption(w))
			}
			_, err := conf.Exchange(f.ctx, q.Get("code"), opts...)
			if e, code := aadCode(t, err); e != "invalid_grant" || code != tt.wantCode {
				t.Errorf("Exchange = %s %d; want invalid_grant %d", e, code, tt.wantCode)
			}
		})
	}
}

func TestClientCredentials(t *testing.T) {
	f := newFixture(t, entraemu.Config{AccessTokenLifetime: 5 * time.Minute})
	form := url.Values{"grant_type": {"client_credentials"}, "scope": {entraemu.ResourceID + "/.default"}}
	req, _ := http.NewRequest("POST", f.srv.TokenURL(f.srv.TenantID()), strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(clientID), url.QueryEscape(clientSecret.Reveal()))
	resp, err := f.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int    `json:"expires_in"`
	}
	_ = json.NewDecoder(io.LimitReader(resp.Body, 1<<16)).Decode(&body)
	if resp.StatusCode != 200 || body.ExpiresIn != 300 {
		t.Fatalf("client_credentials = %d expires_in %d; want 200, 300", resp.StatusCode, body.ExpiresIn)
	}
	if sub, err := f.srv.VerifyAccessToken(body.AccessToken); err != nil || sub != clientID {
		t.Errorf("VerifyAccessToken(app token) = %q, %v; want %q", sub, err, clientID)
	}
	form.Set("scope", entraemu.ResourceID+"/vso.code")
	form.Set("client_id", clientID)
	form.Set("client_secret", clientSecret.Reveal())
	resp2, err := f.http.PostForm(f.srv.TokenURL(f.srv.TenantID()), form)
	if err != nil {
		t.Fatal(err)
	}
	resp2.Body.Close()
	if resp2.StatusCode != 400 {
		t.Errorf("client_credentials without /.default: %d; want 400", resp2.StatusCode)
	}
	if c := f.srv.Counts(); c.ClientCredentials != 2 || c.Failed != 1 {
		t.Errorf("Counts = %+v; want 2 client credentials, 1 failed", c)
	}
}

func TestOutage(t *testing.T) {
	f := newFixture(t, entraemu.Config{})
	seed, _ := f.srv.IssueTokensForTest(upn)
	f.srv.SetOutage(true)
	_, err := refresh(f, f.srv.TenantID(), seed.RefreshToken)
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) || re.Response.StatusCode != 503 || re.ErrorCode != "temporarily_unavailable" || re.Response.Header.Get("Retry-After") == "" {
		t.Errorf("refresh in outage = %v; want 503 temporarily_unavailable with Retry-After", err)
	}
	f.srv.SetOutageMode(entraemu.OutageReset)
	if _, err := refresh(f, f.srv.TenantID(), seed.RefreshToken); err == nil || errors.As(err, &re) {
		t.Errorf("refresh in reset outage = %v; want a connection error", err)
	}
	f.srv.SetOutage(false)
	if _, err := refresh(f, f.srv.TenantID(), seed.RefreshToken); err != nil {
		t.Errorf("refresh after outage = %v", err)
	}
	if c := f.srv.Counts(); c.RefreshToken != 3 || c.Failed != 2 {
		t.Errorf("Counts = %+v; want 3 refreshes, 2 failed", c)
	}
}

func TestVerifyAccessTokenRejects(t *testing.T) {
	f := newFixture(t, entraemu.Config{})
	other := newFixture(t, entraemu.Config{})
	foreign, _ := other.srv.IssueTokensForTest(upn)
	tests := []struct {
		name  string
		token string
		want  error
	}{
		{"garbage", "not-a-jwt", entraemu.ErrTokenMalformed},
		{"other emulator's key", foreign.AccessToken.Reveal(), entraemu.ErrTokenMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := f.srv.VerifyAccessToken(tt.token); !errors.Is(err, tt.want) {
				t.Errorf("VerifyAccessToken(%s) = %v; want %v", tt.name, err, tt.want)
			}
		})
	}
}

func TestAzureDevOpsVerifierRefusesOtherTenants(t *testing.T) {
	f := newFixture(t, entraemu.Config{})
	const otherTenant = "11111111-2222-4333-8444-555555555555"
	if err := f.srv.AddTenant(otherTenant, "fabrikam.example"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.srv.AddUser(entraemu.User{UPN: "guest@fabrikam.example", TenantID: otherTenant}); err != nil {
		t.Fatal(err)
	}
	home, _ := f.srv.IssueTokensForTest(upn)
	foreign, err := f.srv.IssueTokensForTest("guest@fabrikam.example")
	if err != nil {
		t.Fatal(err)
	}
	verify := f.srv.AzureDevOpsVerifier(f.srv.TenantID())
	if sub, err := verify(home.AccessToken.Reveal()); err != nil || sub != upn {
		t.Errorf("verify(home tenant's token) = %q, %v; want %q, nil", sub, err, upn)
	}
	if _, err := f.srv.VerifyAccessToken(foreign.AccessToken.Reveal()); err != nil {
		t.Fatalf("VerifyAccessToken(other tenant's token) = %v; want nil (valid token)", err)
	}
	if _, err := verify(foreign.AccessToken.Reveal()); !errors.Is(err, entraemu.ErrTokenTenant) {
		t.Errorf("verify(other tenant's token) = %v; want ErrTokenTenant", err)
	}
}

func TestThrottled(t *testing.T) {
	f := newFixture(t, entraemu.Config{})
	seed, _ := f.srv.IssueTokensForTest(upn)
	f.srv.SetOutageMode(entraemu.OutageThrottled)
	_, err := refresh(f, f.srv.TenantID(), seed.RefreshToken)
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) || re.Response.StatusCode != http.StatusTooManyRequests || re.Response.Header.Get("Retry-After") != "2" {
		t.Errorf("refresh while throttled = %v; want 429 with Retry-After 2", err)
	}
}

// TestConcurrentRefreshStrict shows what a vault without single flight
// would cause: of 20 concurrent refreshes with one token, exactly one wins
// and the rest are counted as double use.
func TestConcurrentRefreshStrict(t *testing.T) {
	f := newFixture(t, entraemu.Config{StrictRotation: true})
	seed, _ := f.srv.IssueTokensForTest(upn)
	const n = 20
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := refresh(f, f.srv.TenantID(), seed.RefreshToken)
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	ok := 0
	for err := range errs {
		if err == nil {
			ok++
		}
	}
	if ok != 1 || f.srv.DoubleUseCount() != n-1 {
		t.Errorf("successes = %d, DoubleUseCount = %d; want 1, %d", ok, f.srv.DoubleUseCount(), n-1)
	}
}

func TestRefreshWithScopeKeepsRotating(t *testing.T) {
	f := newFixture(t, entraemu.Config{})
	seed, _ := f.srv.IssueTokensForTest(upn)
	form := url.Values{
		"grant_type": {"refresh_token"}, "refresh_token": {seed.RefreshToken.Reveal()},
		"client_id": {clientID}, "client_secret": {clientSecret.Reveal()},
		"scope": {entraemu.ResourceID + "/vso.code"},
	}
	resp, err := f.http.PostForm(f.srv.TokenURL(f.srv.TenantID()), form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		RefreshToken string `json:"refresh_token"`
		Scope        string `json:"scope"`
	}
	_ = json.NewDecoder(io.LimitReader(resp.Body, 1<<16)).Decode(&body)
	if resp.StatusCode != 200 || body.RefreshToken == "" || body.Scope != entraemu.ResourceID+"/vso.code" {
		t.Errorf("refresh with a narrower scope = %d, rotated %t, scope %q; want 200, a new refresh token, %q",
			resp.StatusCode, body.RefreshToken != "", body.Scope, entraemu.ResourceID+"/vso.code")
	}
}

func TestClientCredentialsNeedTenant(t *testing.T) {
	f := newFixture(t, entraemu.Config{})
	for _, tenant := range []string{"common", "organizations"} {
		form := url.Values{"grant_type": {"client_credentials"}, "scope": {entraemu.ResourceID + "/.default"},
			"client_id": {clientID}, "client_secret": {clientSecret.Reveal()}}
		resp, err := f.http.PostForm(f.srv.TokenURL(tenant), form)
		if err != nil {
			t.Fatal(err)
		}
		var body entraemu.ErrorBody
		_ = json.NewDecoder(io.LimitReader(resp.Body, 1<<16)).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != 400 || len(body.ErrorCodes) != 1 || body.ErrorCodes[0] != entraemu.CodeTenantRequired {
			t.Errorf("client_credentials on %s = %d %v; want 400 [%d]", tenant, resp.StatusCode, body.ErrorCodes, entraemu.CodeTenantRequired)
		}
	}
}

// TestLoginHint: login_hint picks among the accounts the browser is
// signed in with, as Entra's account picker does, but does not make the
// person at the browser someone else: with one session, that account signs
// in whatever the hint says (they would have to use their own account); with
// no session, the hinted account does (its user typed the password).
func TestLoginHint(t *testing.T) {
	f := newFixture(t, entraemu.Config{})
	const other = "bob@contoso.example"
	if _, err := f.srv.AddUser(entraemu.User{UPN: other}); err != nil {
		t.Fatal(err)
	}
	signIn := func(hint string) string {
		t.Helper()
		conf := f.oauth(f.srv.TenantID())
		v := oauth2.GenerateVerifier()
		opts := []oauth2.AuthCodeOption{oidc.Nonce("n"), oauth2.S256ChallengeOption(v)}
		if hint != "" {
			opts = append(opts, oauth2.SetAuthURLParam("login_hint", hint))
		}
		q, resp := f.authorize(t, conf.AuthCodeURL("st", opts...))
		if q == nil {
			t.Fatalf("authorize status %d; want 302", resp.StatusCode)
		}
		if got := f.srv.LastLoginHint(); got != hint {
			t.Errorf("LastLoginHint() = %q; want %q", got, hint)
		}
		tok, err := conf.Exchange(f.ctx, q.Get("code"), oauth2.VerifierOption(v))
		if err != nil {
			t.Fatal(err)
		}
		var c struct {
			PreferredUsername string `json:"preferred_username"`
		}
		idt, err := jwtPayload(tok.Extra("id_token").(string))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(idt, &c); err != nil {
			t.Fatal(err)
		}
		return c.PreferredUsername
	}
	if err := f.srv.SetSignedInUser(other); err != nil {
		t.Fatal(err)
	}
	if got := signIn(upn); got != other {
		t.Errorf("one session (bob), login_hint %s: signed in %s; want bob, who cannot sign in as someone else", upn, got)
	}
	if err := f.srv.AddSignedInUser(upn); err != nil {
		t.Fatal(err)
	}
	if got := signIn(upn); got != upn {
		t.Errorf("sessions bob and %s, login_hint %s: signed in %s; want the hinted account", upn, upn, got)
	}
	if got := signIn(""); got != other {
		t.Errorf("sessions bob and %s, no hint: signed in %s; want the first session", upn, got)
	}
}

// jwtPayload decodes the payload of a compact JWT (the signature is the
// client's concern; here only the claims matter).
func jwtPayload(raw string) ([]byte, error) {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return nil, fmt.Errorf("not a JWT: %d parts", len(parts))
	}
	return base64.RawURLEncoding.DecodeString(parts[1])
}
