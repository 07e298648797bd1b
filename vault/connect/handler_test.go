package connect

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/azdo-sidecar/azdo-sidecar/sealbox"
	"github.com/azdo-sidecar/azdo-sidecar/secret"
	"github.com/azdo-sidecar/azdo-sidecar/vault"
	"github.com/azdo-sidecar/azdo-sidecar/vault/entra"
	"github.com/azdo-sidecar/azdo-sidecar/vault/store"
)

// fakeIdP stands in for Entra ID in the handler tests (the e2e tests use
// the Entra emulator): it records what the handler asked for.
type fakeIdP struct {
	mu       sync.Mutex
	verifier string
	nonce    string
	grant    entra.Grant
	err      error
	// who signs in (default alice@contoso.example, the owner alice's
	// identity through the test's mapping)
	who entra.Identity
}

func (f *fakeIdP) AuthCodeURL(state, nonce, verifier, loginHint string) string {
	return "https://idp.test/authorize?" + url.Values{"state": {state}, "nonce": {nonce}, "login_hint": {loginHint}}.Encode()
}

func (f *fakeIdP) Exchange(_ context.Context, code, verifier, nonce string) (entra.Grant, entra.Identity, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.verifier, f.nonce = verifier, nonce
	if f.err != nil {
		return entra.Grant{}, entra.Identity{}, f.err
	}
	if f.who != (entra.Identity{}) {
		return f.grant, f.who, nil
	}
	return f.grant, entra.Identity{Username: "alice@contoso.example", TenantID: "t"}, nil
}

type noRefresh struct{}

func (noRefresh) Refresh(context.Context, secret.String) (vault.Grant, error) {
	return vault.Grant{}, errors.New("not in these tests")
}

// testPages is a Handler over a real vault and SQLite store, an Azure
// DevOps host (dev.azure.com) played by a TLS test server answering
// connectionData for goodPAT, a fake identity provider, and a log buffer.
type testPages struct {
	h     *Handler
	v     *vault.Vault
	st    store.Store
	idp   *fakeIdP
	srv   *httptest.Server
	logs  *bytes.Buffer
	logMu *sync.Mutex
}

const (
	goodPAT      = "good-pat-0123456789abcdefghijklmnopqrstuvwxyzabcd"
	refreshToken = "refresh-token-secret-value-0123456789"
)

type syncWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (s syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

func newTestPages(t *testing.T) *testPages {
	t.Helper()
	kp, err := sealbox.Generate()
	if err != nil {
		t.Fatal(err)
	}
	return newReplica(t, kp, t.TempDir()+"/v.db", false)
}

// newTestPagesWith is newTestPages with the owner check o.
func newTestPagesWith(t *testing.T, o OwnerCheck) *testPages {
	t.Helper()
	kp, err := sealbox.Generate()
	if err != nil {
		t.Fatal(err)
	}
	return newReplica(t, kp, t.TempDir()+"/v.db", false, o)
}

// newReplica is one vault process over the store file at path; with shared
// set, its Connect state lives in the store (StoreNonces, StoreFlows) as
// azdo-vault serve has it, so several replicas on one file share it.
// The owner check is alice -> alice@contoso.example unless owners says
// otherwise.
func newReplica(t *testing.T, kp sealbox.KeyPair, path string, shared bool, owners ...OwnerCheck) *testPages {
	t.Helper()
	ctx := context.Background()
	st, err := store.OpenSQLite(ctx, path, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	tp := &testPages{st: st, idp: &fakeIdP{grant: entra.Grant{AccessToken: secret.New("at"), RefreshToken: secret.New(refreshToken), ExpiresAt: time.Now().Add(time.Hour)}}, logs: &bytes.Buffer{}, logMu: &sync.Mutex{}}
	log := slog.New(slog.NewTextHandler(syncWriter{tp.logMu, tp.logs}, nil))
	tp.v, err = vault.New(vault.Config{Keys: kp, Store: st, Logger: log, Providers: []vault.Provider{
		{Host: "dev.azure.com", OAuth: noRefresh{}, PAT: true},
		{Host: "tfs.example.com", PAT: true},
		{Host: "oauth-only.example.com", OAuth: noRefresh{}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tp.v.Close() })

	tp.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, p, _ := r.BasicAuth(); p != goodPAT || r.Header.Get("X-TFS-FedAuthRedirect") != "Suppress" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		fmt.Fprint(w, `{"authenticatedUser":{"id":"7c0f6b2e-1a2b-4c3d-9e8f-0a1b2c3d4e5f","properties":{"Account":{"$type":"System.String","$value":"Alice@Contoso.example"}}}}`)
	}))
	t.Cleanup(tp.srv.Close)
	roots := x509.NewCertPool()
	roots.AddCert(tp.srv.Certificate())
	addr := tp.srv.Listener.Addr().String()
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "example.com"},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		},
	}}
	oauth := map[string]vault.OAuthSettings{
		"dev.azure.com":          {Host: "dev.azure.com", ClientID: "client-1"},
		"oauth-only.example.com": {Host: "oauth-only.example.com", ClientID: "client-1"},
	}
	cfg := Config{
		PublicURL: "https://runner.example.com", Keys: kp, Vault: tp.v, OAuth: oauth,
		PAT: map[string]bool{"dev.azure.com": true, "tfs.example.com": true}, Client: client, Logger: log,
		Owners:      OwnerCheck{Owners: map[string]string{"alice": "alice@contoso.example"}},
		NewProvider: func(context.Context, vault.OAuthSettings) (OAuthProvider, error) { return tp.idp, nil },
	}
	if len(owners) > 0 {
		cfg.Owners = owners[0]
	}
	if shared {
		cfg.Nonces, cfg.Flows = NewStoreNonces(st), NewStoreFlows(st, kp)
	}
	tp.h, err = New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	tp.h.Register(tp.v.Mux())
	return tp
}

func (tp *testPages) link(t *testing.T, host, org string, kind store.Kind) string {
	t.Helper()
	u, err := tp.h.ConnectURL(context.Background(), vault.LinkRequest{Owner: "alice", EnvID: "env_1", Host: host, Org: org, Kind: kind})
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimPrefix(u, "https://runner.example.com")
}

type resp struct {
	code int
	hdr  http.Header
	body string
}

// client is a browser-like cookie jar over the handler (no network).
type client struct {
	t   *testing.T
	tp  *testPages
	jar *cookiejar.Jar
}

func (tp *testPages) browser(t *testing.T) *client {
	jar, _ := cookiejar.New(nil)
	return &client{t: t, tp: tp, jar: jar}
}

func (c *client) do(method, target string, form url.Values) resp {
	c.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	r := httptest.NewRequest(method, "https://runner.example.com"+target, body)
	if form != nil {
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for _, ck := range c.jar.Cookies(r.URL) {
		r.AddCookie(ck)
	}
	w := httptest.NewRecorder()
	c.tp.v.Mux().ServeHTTP(w, r)
	res := w.Result()
	c.jar.SetCookies(r.URL, res.Cookies())
	return resp{code: w.Code, hdr: w.Header(), body: w.Body.String()}
}

func (c *client) get(target string) resp { return c.do(http.MethodGet, target, nil) }

func (tp *testPages) count(t *testing.T, host string) int {
	t.Helper()
	cs, err := tp.st.Credentials(context.Background(), "alice", host)
	if err != nil {
		t.Fatal(err)
	}
	return len(cs)
}

func csrfOf(t *testing.T, body string) string {
	t.Helper()
	const m = `name="csrf" value="`
	i := strings.Index(body, m)
	if i < 0 {
		t.Fatalf("no CSRF field in\n%s", body)
	}
	rest := body[i+len(m):]
	return rest[:strings.IndexByte(rest, '"')]
}

func TestConnectURLPaths(t *testing.T) {
	tp := newTestPages(t)
	tests := []struct {
		name, host string
		kind       store.Kind
		want       string
	}{
		{"oauth host", "dev.azure.com", store.OAuth, "/connect?link="},
		{"pat asked", "dev.azure.com", store.PAT, "/pat?link="},
		{"pat-only host", "tfs.example.com", store.OAuth, "/pat?link="},
	}
	for _, tc := range tests {
		if got := tp.link(t, tc.host, "contoso", tc.kind); !strings.HasPrefix(got, tc.want) {
			t.Errorf("ConnectURL(%s) = %q; want prefix %q", tc.name, got, tc.want)
		}
	}
}

func TestPagesHeaders(t *testing.T) {
	tp := newTestPages(t)
	b := tp.browser(t)
	pages := map[string]resp{
		"invalid link":   b.get("/connect?link=nope"),
		"pat form":       b.get(tp.link(t, "dev.azure.com", "contoso", store.PAT)),
		"state mismatch": b.get("/oauth/callback?state=x&code=y"),
		"no session":     tp.browser(t).do(http.MethodPost, "/pat", url.Values{"pat": {"x"}}),
	}
	for name, p := range pages {
		for k, want := range map[string]string{
			"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
			"X-Frame-Options":         "DENY",
			"Referrer-Policy":         "no-referrer",
			"Cache-Control":           "no-store",
			"Content-Type":            "text/html; charset=utf-8",
		} {
			if got := p.hdr.Get(k); !strings.HasPrefix(got, want) {
				t.Errorf("%s: %s = %q; want %q", name, k, got, want)
			}
		}
		for _, bad := range []string{"<script", " src=", "<link "} {
			if strings.Contains(p.body, bad) {
				t.Errorf("%s: page contains %q (no scripts or external assets)", name, bad)
			}
		}
		if !strings.Contains(p.body, `<meta name="viewport" content="width=device-width, initial-scale=1">`) {
			t.Errorf("%s: page has no viewport meta", name)
		}
	}
	if c := pages["pat form"].hdr.Get("Set-Cookie"); !strings.Contains(c, "HttpOnly") || !strings.Contains(c, "Secure") || !strings.Contains(c, "SameSite=Strict") || !strings.Contains(c, "Path=/pat") {
		t.Errorf("PAT session cookie = %q; want HttpOnly, Secure, SameSite=Strict, Path=/pat", c)
	}
}

// startFlow opens an OAuth link, presses Continue and returns the state
// the provider got.
func startFlow(t *testing.T, tp *testPages, b *client) string {
	t.Helper()
	u, _ := url.Parse(continueConnect(t, b, tp.link(t, "dev.azure.com", "contoso", store.OAuth)).hdr.Get("Location"))
	return u.Query().Get("state")
}

// continueConnect opens link (GET /connect: the confirmation page) and
// presses its Continue button (POST /connect), which must redirect to the
// identity provider.
func continueConnect(t *testing.T, b *client, link string) resp {
	t.Helper()
	page := b.get(link)
	if page.code != http.StatusOK || page.hdr.Get("Location") != "" || !strings.Contains(page.body, `id="continue"`) {
		t.Fatalf("GET /connect = %d (Location %q); want 200 with the confirmation page\n%s", page.code, page.hdr.Get("Location"), page.body)
	}
	u, _ := url.Parse(link)
	p := b.do(http.MethodPost, "/connect", url.Values{"link": {u.Query().Get("link")}, "csrf": {csrfOf(t, page.body)}})
	if p.code != http.StatusSeeOther || !strings.HasPrefix(p.hdr.Get("Location"), "https://idp.test/authorize?") {
		t.Fatalf("POST /connect = %d %q; want 303 to the identity provider\n%s", p.code, p.hdr.Get("Location"), p.body)
	}
	return p
}

func TestCallbackErrorPages(t *testing.T) {
	tests := []struct {
		name, err, desc string
		code            int
		texts           []string
	}{
		{"redirect URI not registered", "invalid_request", "AADSTS50011: The redirect URI 'https://runner.example.com/oauth/callback' does not match", http.StatusBadGateway,
			[]string{"your administrator", "redirect URI is not registered", "AADSTS50011"}},
		{"consent missing", "consent_required", "AADSTS65001: The user or administrator has not consented", http.StatusForbidden,
			[]string{"Consent is missing", "Who must fix this: you.", "admin consent", "AADSTS65001"}},
		{"user declined", "access_denied", "AADSTS65004: User declined to consent", http.StatusForbidden,
			[]string{"cancelled or denied", "Who must fix this: you."}},
		{"unknown app", "unauthorized_client", "AADSTS700016: Application not found", http.StatusBadGateway,
			[]string{"your administrator", "client-1", "AADSTS700016"}},
		{"MFA", "interaction_required", "AADSTS50076: MFA required", http.StatusForbidden,
			[]string{"Who must fix this: you.", "multi-factor"}},
		{"description is not reflected", "server_error", "<script>alert('x')</script> AADSTS0", http.StatusForbidden,
			[]string{"Sign-in did not complete"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tp := newTestPages(t)
			b := tp.browser(t)
			state := startFlow(t, tp, b)
			p := b.get("/oauth/callback?" + url.Values{"state": {state}, "error": {tc.err}, "error_description": {tc.desc}}.Encode())
			if p.code != tc.code {
				t.Errorf("callback error %s = %d; want %d", tc.err, p.code, tc.code)
			}
			for _, s := range tc.texts {
				if !strings.Contains(strings.ToLower(p.body), strings.ToLower(s)) {
					t.Errorf("callback error page lacks %q\n%s", s, p.body)
				}
			}
			if strings.Contains(p.body, "<script>") || strings.Contains(p.body, "does not match") {
				t.Errorf("callback page reflects the error description")
			}
			if n := tp.count(t, "dev.azure.com"); n != 0 {
				t.Errorf("credentials stored after a callback error: %d; want 0", n)
			}
			// The flow is spent: the same state with a code now fails.
			if p := b.get("/oauth/callback?" + url.Values{"state": {state}, "code": {"c"}}.Encode()); p.code != http.StatusBadRequest {
				t.Errorf("second callback for the state = %d; want 400", p.code)
			}
		})
	}
}

func TestCallbackStoresGrantSealed(t *testing.T) {
	tp := newTestPages(t)
	b := tp.browser(t)
	state := startFlow(t, tp, b)
	p := b.get("/oauth/callback?" + url.Values{"state": {state}, "code": {"the-code"}}.Encode())
	if p.code != http.StatusOK || !strings.Contains(p.body, "Connected. Return to your environment; git will work now.") {
		t.Fatalf("callback = %d\n%s", p.code, p.body)
	}
	cs, _ := tp.st.Credentials(context.Background(), "alice", "dev.azure.com")
	if len(cs) != 1 || cs[0].Kind != store.OAuth || strings.Contains(cs[0].Sealed, refreshToken) {
		t.Fatalf("stored = %+v; want one sealed OAuth credential", cs)
	}
	if len(tp.idp.verifier) < 43 || tp.idp.nonce == "" {
		t.Errorf("Exchange got verifier %d chars, nonce %q; want a PKCE verifier and the nonce", len(tp.idp.verifier), tp.idp.nonce)
	}
	tp.logMu.Lock()
	logs := tp.logs.String()
	tp.logMu.Unlock()
	for _, s := range []string{refreshToken, tp.idp.verifier, state} {
		if strings.Contains(logs, s) {
			t.Errorf("log contains a secret (%.8s…)", s)
		}
	}
}

func TestConnectPATOnlyHostRedirects(t *testing.T) {
	tp := newTestPages(t)
	link := tp.link(t, "tfs.example.com", "coll", store.OAuth)
	p := tp.browser(t).get(strings.Replace(link, "/pat?", "/connect?", 1))
	if p.code != http.StatusSeeOther || !strings.HasPrefix(p.hdr.Get("Location"), "/pat?link=") {
		t.Fatalf("GET /connect for a PAT-only host = %d %q; want 303 to /pat", p.code, p.hdr.Get("Location"))
	}
	if p := tp.browser(t).get(link); p.code != http.StatusOK {
		t.Errorf("the PAT link after the redirect = %d; want 200 (the redirect must not spend it)", p.code)
	}
	if p := tp.browser(t).get(tp.link(t, "oauth-only.example.com", "", store.PAT)); p.code != http.StatusNotFound || !strings.Contains(p.body, "your administrator") {
		t.Errorf("PAT page for a host without PATs = %d; want 404 for the administrator", p.code)
	}
}

func TestPATFormChecks(t *testing.T) {
	now := time.Now()
	day := func(d int) string { return now.Add(time.Duration(d) * 24 * time.Hour).Format(time.DateOnly) }
	tests := []struct {
		name string
		form url.Values
		code int
		text string
	}{
		{"wrong PAT", url.Values{"pat": {"wrong-pat"}, "expires": {day(30)}}, http.StatusUnprocessableEntity, "did not accept this token"},
		{"expiry in the past", url.Values{"pat": {goodPAT}, "expires": {day(-1)}}, http.StatusUnprocessableEntity, "in the past"},
		{"expiry beyond a year", url.Values{"pat": {goodPAT}, "expires": {day(400)}}, http.StatusUnprocessableEntity, "at most one year"},
		{"malformed expiry", url.Values{"pat": {goodPAT}, "expires": {"next month"}}, http.StatusUnprocessableEntity, "YYYY-MM-DD"},
		{"PAT with spaces", url.Values{"pat": {"a b"}, "expires": {day(30)}}, http.StatusUnprocessableEntity, "one line"},
		{"missing org", url.Values{"pat": {goodPAT}, "expires": {day(30)}, "org": {""}}, http.StatusUnprocessableEntity, "name of your Azure DevOps organization"},
		{"forged CSRF", url.Values{"pat": {goodPAT}, "expires": {day(30)}, "csrf": {"x"}}, http.StatusForbidden, "not sent from the PAT page"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tp := newTestPages(t)
			b := tp.browser(t)
			org := "contoso"
			if tc.name == "missing org" {
				org = ""
			}
			form := b.get(tp.link(t, "dev.azure.com", org, store.PAT))
			if tc.form.Get("csrf") == "" {
				tc.form.Set("csrf", csrfOf(t, form.body))
			}
			p := b.do(http.MethodPost, "/pat", tc.form)
			if p.code != tc.code || !strings.Contains(p.body, tc.text) {
				t.Errorf("POST /pat (%s) = %d; want %d with %q\n%s", tc.name, p.code, tc.code, tc.text, p.body)
			}
			if strings.Contains(p.body, goodPAT) || strings.Contains(p.body, "wrong-pat") {
				t.Errorf("the page echoes the PAT")
			}
			if n := tp.count(t, "dev.azure.com"); n != 0 {
				t.Errorf("credentials stored: %d; want 0", n)
			}
		})
	}
}

func TestPATSessionReloadAndSave(t *testing.T) {
	tp := newTestPages(t)
	b := tp.browser(t)
	link := tp.link(t, "dev.azure.com", "contoso", store.PAT)
	first := b.get(link)
	if p := b.get(link); p.code != http.StatusOK {
		t.Fatalf("reload of the PAT page in the same browser = %d; want 200", p.code)
	}
	if p := tp.browser(t).get(link); p.code != http.StatusGone {
		t.Fatalf("the PAT link in another browser = %d; want 410 (used)", p.code)
	}
	exp := time.Now().Add(10 * 24 * time.Hour).Format(time.DateOnly)
	p := b.do(http.MethodPost, "/pat", url.Values{"csrf": {csrfOf(t, first.body)}, "pat": {goodPAT}, "expires": {exp}, "all_orgs": {"1"}})
	if p.code != http.StatusOK || strings.Contains(p.body, `id="warning"`) {
		t.Fatalf("POST /pat = %d (warning shown %v); want 200 without a warning for 10 days\n%s", p.code, strings.Contains(p.body, "warning"), p.body)
	}
	cs, _ := tp.st.Credentials(context.Background(), "alice", "dev.azure.com")
	if len(cs) != 1 || cs[0].Kind != store.PAT || cs[0].Org != store.AllOrgs || strings.Contains(cs[0].Sealed, goodPAT) {
		t.Fatalf("stored = %+v; want one sealed PAT for all orgs", cs)
	}
	tp.logMu.Lock()
	defer tp.logMu.Unlock()
	if strings.Contains(tp.logs.String(), goodPAT) {
		t.Errorf("log contains the PAT")
	}
}

// TestPublicURLPrefix: behind an ingress that serves the vault under a
// path prefix (and strips it), links, the form and cookies carry it.
func TestPublicURLPrefix(t *testing.T) {
	tp := newTestPages(t)
	kp, _ := sealbox.Generate()
	h, err := New(Config{PublicURL: "https://runner.example.com/vault/", Keys: kp, Vault: tp.v, PAT: map[string]bool{"tfs.example.com": true}})
	if err != nil {
		t.Fatal(err)
	}
	tp.h = h
	mux := http.NewServeMux()
	h.Register(mux)
	u, err := h.ConnectURL(context.Background(), vault.LinkRequest{Owner: "alice", Host: "tfs.example.com", Org: "coll"})
	if err != nil || !strings.HasPrefix(u, "https://runner.example.com/vault/pat?link=") {
		t.Fatalf("ConnectURL = %q, %v; want it under /vault/", u, err)
	}
	w := httptest.NewRecorder()
	mux.ServeHTTP(w, httptest.NewRequest(http.MethodGet, strings.Replace(u, "/vault", "", 1), nil))
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `action="/vault/pat"`) || !strings.Contains(w.Header().Get("Set-Cookie"), "Path=/vault/pat") {
		t.Errorf("PAT page under a prefix = %d, cookie %q; want the form and cookie under /vault/pat", w.Code, w.Header().Get("Set-Cookie"))
	}
}

func TestExchangeFailurePages(t *testing.T) {
	tests := []struct {
		name  string
		err   error
		code  int
		texts []string
	}{
		{"ID token rejected", fmt.Errorf("%w: nonce does not match the one sent", entra.ErrIDToken), http.StatusBadGateway,
			[]string{"could not be verified", "Who must fix this: you.", "id_token_rejected"}},
		{"no refresh token", entra.ErrNoRefreshToken, http.StatusBadGateway,
			[]string{"your administrator", "offline_access"}},
		{"PKCE mismatch", &entra.Error{Op: "exchange", Code: "invalid_grant", AADSTS: 50148, Class: entra.Permanent}, http.StatusBadRequest,
			[]string{"Sign-in did not complete", "Who must fix this: you.", "AADSTS50148"}},
		{"redirect URI not registered", &entra.Error{Op: "exchange", Code: "invalid_client", AADSTS: 50011, Class: entra.Misconfigured, ClientID: "client-1"}, http.StatusBadGateway,
			[]string{"your administrator", "redirect URI", "AADSTS50011"}},
		{"identity provider down", &entra.Error{Op: "exchange", Code: "temporarily_unavailable", Class: entra.Transient}, http.StatusServiceUnavailable,
			[]string{"could not be reached", "unavailable"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tp := newTestPages(t)
			tp.idp.err = tc.err
			b := tp.browser(t)
			state := startFlow(t, tp, b)
			p := b.get("/oauth/callback?" + url.Values{"state": {state}, "code": {"c"}}.Encode())
			if p.code != tc.code {
				t.Errorf("callback with exchange error %q = %d; want %d", tc.name, p.code, tc.code)
			}
			for _, s := range tc.texts {
				if !strings.Contains(p.body, s) {
					t.Errorf("page lacks %q\n%s", s, p.body)
				}
			}
			if n := tp.count(t, "dev.azure.com"); n != 0 {
				t.Errorf("credentials stored after a failed exchange: %d; want 0", n)
			}
		})
	}
}

func TestPATPageWithoutOrg(t *testing.T) {
	tp := newTestPages(t)
	p := tp.browser(t).get(tp.link(t, "dev.azure.com", "", store.PAT))
	for _, s := range []string{`name="org"`, "https://dev.azure.com/&lt;organization&gt;/_usersSettings/tokens", "Code: Read &amp; write"} {
		if !strings.Contains(p.body, s) {
			t.Errorf("PAT page without org lacks %q", s)
		}
	}
	if strings.Contains(p.body, `href=""`) {
		t.Errorf("PAT page without org has an empty link")
	}
}
