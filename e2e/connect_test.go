package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/azdo-sidecar/azdo-sidecar/e2e/azdoemu"
	"github.com/azdo-sidecar/azdo-sidecar/e2e/entraemu"
	"github.com/azdo-sidecar/azdo-sidecar/e2e/testenv"
	"github.com/azdo-sidecar/azdo-sidecar/sealbox"
	"github.com/azdo-sidecar/azdo-sidecar/secret"
	"github.com/azdo-sidecar/azdo-sidecar/vault"
	"github.com/azdo-sidecar/azdo-sidecar/vault/connect"
	"github.com/azdo-sidecar/azdo-sidecar/vault/entra"
	"github.com/azdo-sidecar/azdo-sidecar/vault/store"
	"github.com/azdo-sidecar/azdo-sidecar/vaultapi"
)

const (
	connectClientID = "3c0e5a77-1d2b-4c3d-8e4f-5a6b7c8d9e0f"
	// The owner is the emulator user's identity: the vault stores a
	// Connect or a PAT only for the account the owner names.
	connectUPN   = "grace@contoso.example"
	connectOwner = connectUPN
	// vsHost is a PAT-only host: its links lead to the PAT page.
	vsHost = "fabrikam.visualstudio.com"
)

var connectClientSecret = secret.New("connect-e2e-client-secret")

// connectWorld is a vault serving the Connect and PAT pages over HTTP
// (in this process, on a real SQLite store), an Entra ID emulator whose
// app has the vault's callback registered, and an Azure DevOps emulator
// that trusts the Entra emulator's tokens. The vault reaches dev.azure.com
// and fabrikam.visualstudio.com at the Azure DevOps emulator.
type connectWorld struct {
	t      *testing.T
	azdo   *azdoemu.Server
	entra  *entraemu.Server
	st     *store.SQLite
	v      *vault.Vault
	h      *connect.Handler
	url    string // the vault's public URL
	envTok secret.String
	skew   atomic.Int64 // added to the pages' clock (link expiry tests)
	logs   *lockedBuffer
	pat    secret.String // a PAT the emulator accepts for contoso
}

func newConnectWorld(t *testing.T) *connectWorld {
	t.Helper()
	return newConnectWorldFor(t, "")
}

// newConnectWorldFor is newConnectWorld with the issuer URL naming tenant
// ("common", "organizations"; "" for the tenant ID).
func newConnectWorldFor(t *testing.T, tenant string) *connectWorld {
	t.Helper()
	w := &connectWorld{t: t, logs: &lockedBuffer{}}
	w.azdo = testenv.StartAzDO(t, azdoemu.Config{})
	var err error
	w.entra, err = entraemu.New(entraemu.Config{TenantID: w.azdo.TenantID(), Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	w.entra.Start()
	t.Cleanup(func() { w.entra.Close() })
	if _, err := w.entra.AddUser(entraemu.User{UPN: connectUPN}); err != nil {
		t.Fatal(err)
	}
	w.azdo.SetBearerVerifier(w.entra.AzureDevOpsVerifier(w.azdo.TenantID()))
	w.pat = azdoemu.NewPAT()
	if err := w.azdo.AddPAT(azdoemu.PAT{Token: w.pat, Org: "contoso", User: connectUPN}); err != nil {
		t.Fatal(err)
	}

	var handler atomic.Pointer[http.ServeMux]
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) { handler.Load().ServeHTTP(rw, r) }))
	t.Cleanup(srv.Close)
	w.url = srv.URL
	w.entra.RegisterApp(connectClientID, connectClientSecret, []string{w.url + "/oauth/callback"})

	if tenant == "" {
		tenant = w.entra.TenantID()
	}
	ctx := context.Background()
	kp, err := sealbox.Generate()
	if err != nil {
		t.Fatal(err)
	}
	w.st, err = store.OpenSQLite(ctx, t.TempDir()+"/vault.db", time.Now)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.st.Close() })
	client := w.upstreamClient()
	oauth := map[string]vault.OAuthSettings{vaultHost: {
		Host: vaultHost, IssuerURL: w.entra.IssuerURL(tenant), ClientID: connectClientID,
		ClientSecret: connectClientSecret, RedirectURL: w.url + "/oauth/callback",
	}}
	pat := map[string]bool{vaultHost: true, vsHost: true}
	providers, err := vault.NewProviders(ctx, oauth, pat, client)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(w.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	w.v, err = vault.New(vault.Config{Keys: kp, Store: w.st, Providers: providers, PublicURL: w.url, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.v.Close() })
	w.h, err = connect.New(connect.Config{
		PublicURL: w.url, Keys: kp, Vault: w.v, OAuth: oauth, PAT: pat, Client: client, Logger: log,
		Now: func() time.Time { return time.Now().Add(time.Duration(w.skew.Load())) },
	})
	if err != nil {
		t.Fatal(err)
	}
	w.h.Register(w.v.Mux())
	w.v.SetLinker(w.h)
	handler.Store(w.v.Mux())

	_, tok, err := vault.NewEnvironment(ctx, w.st, w.v.Binding(), time.Now(), connectOwner, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	w.envTok = tok
	return w
}

// upstreamClient is the vault's upstream client: it trusts both
// emulators' CAs and dials the Azure DevOps emulator for every Azure
// DevOps host name.
func (w *connectWorld) upstreamClient() *http.Client {
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(w.entra.CAPEM())
	roots.AppendCertsFromPEM(w.azdo.CAPEM())
	d := &net.Dialer{Timeout: 10 * time.Second}
	azdoAddr := w.azdo.Addr()
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				if h, _, _ := net.SplitHostPort(addr); h == vaultHost || strings.HasSuffix(h, ".visualstudio.com") {
					addr = azdoAddr
				}
				return d.DialContext(ctx, network, addr)
			},
			TLSHandshakeTimeout:   10 * time.Second,
			ResponseHeaderTimeout: 20 * time.Second,
		},
	}
}

// token asks the vault for a token as an environment does.
func (w *connectWorld) token(host, org string) vaultAnswer {
	w.t.Helper()
	body, _ := json.Marshal(vaultapi.TokenRequest{Host: host, Org: org, MinValidSeconds: 300})
	req, _ := http.NewRequest(http.MethodPost, w.url+vaultapi.TokenPath, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+w.envTok.Reveal())
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		w.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	a := vaultAnswer{code: resp.StatusCode, raw: string(b)}
	if a.code == http.StatusOK {
		json.Unmarshal(b, &a.ok)
	} else {
		json.Unmarshal(b, &a.err)
	}
	return a
}

// connectURL asks the vault for a token that it cannot give yet and
// returns the connect_url of its answer.
func (w *connectWorld) connectURL(host, org, wantPath string) string {
	w.t.Helper()
	a := w.token(host, org)
	if a.code != http.StatusNotFound || a.err.Error != vaultapi.ErrNotConnected || !strings.HasPrefix(a.err.ConnectURL, w.url+wantPath+"?link=") {
		w.t.Fatalf("token(%s, %s) = %d %s %s; want 404 not_connected with a %s link", host, org, a.code, a.err.Error, a.err.ConnectURL, wantPath)
	}
	return a.err.ConnectURL
}

// credentials is a snapshot of the owner's stored credentials.
func (w *connectWorld) credentials(host string) []store.Credential {
	w.t.Helper()
	cs, err := w.st.Credentials(context.Background(), connectOwner, host)
	if err != nil {
		w.t.Fatal(err)
	}
	return cs
}

// assertStoreUnchanged fails if the owner's credentials differ from before.
func (w *connectWorld) assertStoreUnchanged(before map[string][]store.Credential) {
	w.t.Helper()
	for host, b := range before {
		if got := w.credentials(host); !slices.EqualFunc(got, b, func(x, y store.Credential) bool {
			return x.ID == y.ID && x.Version == y.Version && x.Sealed == y.Sealed
		}) {
			w.t.Errorf("credentials for %s changed: %d rows, before %d", host, len(got), len(b))
		}
	}
}

func (w *connectWorld) snapshot() map[string][]store.Credential {
	return map[string][]store.Credential{vaultHost: w.credentials(vaultHost), vsHost: w.credentials(vsHost)}
}

// browser is an HTTP client with a cookie jar that trusts the Entra
// emulator and does not follow redirects, so a test sees every step.
type browser struct {
	t *testing.T
	c *http.Client
}

func newBrowser(t *testing.T, w *connectWorld) *browser {
	jar, _ := cookiejar.New(nil)
	c := w.entra.Client()
	c.Jar = jar
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &browser{t: t, c: c}
}

type page struct {
	code int
	loc  string
	body string
	hdr  http.Header
}

func (b *browser) do(method, u string, form url.Values) page {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		b.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return page{code: resp.StatusCode, loc: resp.Header.Get("Location"), body: string(raw), hdr: resp.Header}
}

func (b *browser) get(u string) page { return b.do(http.MethodGet, u, nil) }

// cont opens a connect link — the confirmation page, which must not
// redirect anywhere — and presses Continue (POST /connect with the page's
// link and CSRF token); it returns the answer, a 303 to the authorize
// endpoint.
func (b *browser) cont(link string) page {
	b.t.Helper()
	p := b.get(link)
	if p.code != http.StatusOK || p.loc != "" || !strings.Contains(p.body, `id="continue"`) {
		b.t.Fatalf("GET connect link = %d (Location %q); want 200, the confirmation page\n%s", p.code, p.loc, p.body)
	}
	u, err := url.Parse(link)
	if err != nil {
		b.t.Fatal(err)
	}
	action := u.Scheme + "://" + u.Host + strings.TrimSuffix(u.Path, "/connect") + "/connect"
	p = b.do(http.MethodPost, action, url.Values{"link": {u.Query().Get("link")}, "csrf": {formValue(b.t, p.body, "csrf")}})
	if p.code != http.StatusSeeOther {
		b.t.Fatalf("POST /connect (Continue) = %d %s; want 303 to the authorize endpoint", p.code, p.body)
	}
	return p
}

// formValue returns the value of the hidden input name in an HTML page.
func formValue(t *testing.T, body, name string) string {
	t.Helper()
	m := `name="` + name + `" value="`
	i := strings.Index(body, m)
	if i < 0 {
		t.Fatalf("no %s field in\n%s", name, body)
	}
	rest := body[i+len(m):]
	return html.UnescapeString(rest[:strings.IndexByte(rest, '"')])
}

// authorize follows a connect link to the Entra emulator (the
// confirmation page, then Continue) and returns the callback URL it
// redirects to (not yet visited).
func (b *browser) authorize(link string) string {
	b.t.Helper()
	p := b.cont(link)
	p = b.get(p.loc)
	if p.code != http.StatusFound {
		b.t.Fatalf("GET authorize = %d %s; want 302 to the callback", p.code, p.body)
	}
	return p.loc
}

// assertBearerWorks checks that the vault now serves a bearer token that
// the Azure DevOps emulator accepts.
func (w *connectWorld) assertBearerWorks() {
	w.t.Helper()
	a := w.token(vaultHost, "contoso")
	if a.code != http.StatusOK || a.ok.Type != vaultapi.TypeBearer {
		w.t.Fatalf("token after Connect = %d %s; want 200 bearer", a.code, a.raw)
	}
	w.assertAzDOAccepts("https://dev.azure.com/contoso/_apis/connectionData", "Bearer "+a.ok.Token, connectUPN)
}

func (w *connectWorld) assertAzDOAccepts(u, authz, wantUser string) {
	w.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	req.Header.Set("Authorization", authz)
	req.Header.Set("X-TFS-FedAuthRedirect", "Suppress")
	resp, err := w.azdo.Client().Do(req)
	if err != nil {
		w.t.Fatal(err)
	}
	defer resp.Body.Close()
	var cd struct {
		AuthenticatedUser struct {
			ProviderDisplayName string `json:"providerDisplayName"`
		} `json:"authenticatedUser"`
	}
	json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&cd)
	if resp.StatusCode != http.StatusOK || cd.AuthenticatedUser.ProviderDisplayName != wantUser {
		w.t.Fatalf("GET %s with the vault's token = %d (user %q); want 200 for %s", u, resp.StatusCode, cd.AuthenticatedUser.ProviderDisplayName, wantUser)
	}
}

// assertNoSecretsLogged fails if the vault's log holds any of secrets.
func (w *connectWorld) assertNoSecretsLogged(secrets ...string) {
	w.t.Helper()
	logs := w.logs.String()
	for _, s := range secrets {
		if s != "" && strings.Contains(logs, s) {
			w.t.Errorf("vault log contains a secret (%.6s…)", s)
		}
	}
}

func wantPage(t *testing.T, what string, p page, code int, texts ...string) {
	t.Helper()
	if p.code != code {
		t.Errorf("%s: status %d; want %d\n%s", what, p.code, code, p.body)
	}
	for _, s := range texts {
		if !strings.Contains(p.body, s) {
			t.Errorf("%s: page lacks %q\n%s", what, s, p.body)
		}
	}
}

// TestConnectOAuthEndToEnd: a not-connected environment gets a link; the
// link leads to Entra ID with the contract's parameters; the callback
// stores the grant; the vault then serves a bearer token Azure DevOps
// accepts.
func TestConnectOAuthEndToEnd(t *testing.T) {
	w := newConnectWorld(t)
	link := w.connectURL(vaultHost, "contoso", "/connect")
	b := newBrowser(t, w)

	p := b.cont(link)
	au, err := url.Parse(p.loc)
	if err != nil || !strings.HasPrefix(p.loc, w.entra.AuthorizeURL(w.entra.TenantID())+"?") {
		t.Fatalf("redirect to %q; want the emulator's authorize endpoint", p.loc)
	}
	q := au.Query()
	checks := map[string]string{
		"response_type":         "code",
		"client_id":             connectClientID,
		"redirect_uri":          w.url + "/oauth/callback",
		"code_challenge_method": "S256",
		"scope":                 strings.Join(entra.Scopes, " "),
		"login_hint":            connectUPN,
	}
	for k, want := range checks {
		if got := q.Get(k); got != want {
			t.Errorf("authorize %s = %q; want %q", k, got, want)
		}
	}
	for _, k := range []string{"state", "nonce", "code_challenge"} {
		if len(q.Get(k)) < 32 {
			t.Errorf("authorize %s = %q; want a random value of at least 32 characters", k, q.Get(k))
		}
	}
	if strings.Contains(p.loc, "code_verifier") {
		t.Errorf("authorize URL carries the PKCE verifier")
	}

	p = b.get(p.loc)
	if p.code != http.StatusFound || !strings.HasPrefix(p.loc, w.url+"/oauth/callback?") {
		t.Fatalf("authorize = %d to %q; want 302 to the callback", p.code, p.loc)
	}
	done := b.get(p.loc)
	wantPage(t, "callback", done, http.StatusOK, "Connected. Return to your environment; git will work now.")
	for k, v := range map[string]string{
		"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
		"X-Frame-Options":         "DENY",
		"Referrer-Policy":         "no-referrer",
		"Cache-Control":           "no-store",
	} {
		if got := done.hdr.Get(k); !strings.HasPrefix(got, v) {
			t.Errorf("callback page %s = %q; want %q", k, got, v)
		}
	}
	cs := w.credentials(vaultHost)
	if len(cs) != 1 || cs[0].Kind != store.OAuth || cs[0].Org != store.AllOrgs || cs[0].Status != store.StatusOK {
		t.Fatalf("stored credentials = %+v; want one OAuth grant for all orgs", cs)
	}
	w.assertBearerWorks()

	// The link was spent: a replay shows the right page and changes nothing.
	before := w.snapshot()
	wantPage(t, "replayed link", b.get(link), http.StatusGone, "already used")
	w.assertStoreUnchanged(before)
	w.assertNoSecretsLogged(connectClientSecret.Reveal())
}

// TestConnectRefusals: each way a Connect can go wrong shows the page that
// says who must fix what, and stores nothing.
func TestConnectRefusals(t *testing.T) {
	w := newConnectWorld(t)
	tests := []struct {
		name  string
		run   func(b *browser) page
		code  int
		texts []string
	}{
		{"replayed link", func(b *browser) page {
			link := w.connectURL(vaultHost, "contoso", "/connect")
			b.authorize(link)
			return b.get(link)
		}, http.StatusGone, []string{"This link was already used", "link_used", "Who must fix this: you."}},
		{"expired link", func(b *browser) page {
			link := w.connectURL(vaultHost, "contoso", "/connect")
			w.skew.Store(int64(connect.DefaultLinkTTL + time.Minute))
			defer w.skew.Store(0)
			return b.get(link)
		}, http.StatusGone, []string{"This link has expired", "link_expired"}},
		{"altered link", func(b *browser) page {
			link := w.connectURL(vaultHost, "contoso", "/connect")
			return b.get(strings.Replace(link, "link=", "link=x", 1))
		}, http.StatusBadRequest, []string{"This link is not valid"}},
		{"state mismatch", func(b *browser) page {
			cb := b.authorize(w.connectURL(vaultHost, "contoso", "/connect"))
			u, _ := url.Parse(cb)
			q := u.Query()
			q.Set("state", q.Get("state")+"x")
			u.RawQuery = q.Encode()
			return b.get(u.String())
		}, http.StatusBadRequest, []string{"does not match one started here", "state_mismatch"}},
		{"callback in another browser", func(b *browser) page {
			cb := b.authorize(w.connectURL(vaultHost, "contoso", "/connect"))
			return newBrowser(t, w).get(cb)
		}, http.StatusBadRequest, []string{"state_mismatch"}},
		{"wrong PKCE verifier", func(b *browser) page {
			// The code of sign-in A redeemed under the state of sign-in B
			// (B's verifier): PKCE must make the exchange fail.
			cbA := b.authorize(w.connectURL(vaultHost, "contoso", "/connect"))
			cbB := b.authorize(w.connectURL(vaultHost, "contoso", "/connect"))
			ua, _ := url.Parse(cbA)
			ub, _ := url.Parse(cbB)
			q := ub.Query()
			q.Set("code", ua.Query().Get("code"))
			ub.RawQuery = q.Encode()
			return b.get(ub.String())
		}, http.StatusBadRequest, []string{"Sign-in did not complete", "AADSTS50148", "Who must fix this: you."}},
		{"consent missing", func(b *browser) page {
			w.entra.SetConsent(connectUPN, false)
			defer w.entra.SetConsent(connectUPN, true)
			return b.get(b.authorize(w.connectURL(vaultHost, "contoso", "/connect")))
		}, http.StatusForbidden, []string{"Consent is missing", "AADSTS65001", "admin consent"}},
		{"wrong client secret", func(b *browser) page {
			w.entra.RegisterApp(connectClientID, secret.New("rotated-by-an-administrator"), []string{w.url + "/oauth/callback"})
			defer w.entra.RegisterApp(connectClientID, connectClientSecret, []string{w.url + "/oauth/callback"})
			return b.get(b.authorize(w.connectURL(vaultHost, "contoso", "/connect")))
		}, http.StatusBadGateway, []string{"misconfigured", "Who must fix this: your administrator.", "AADSTS7000215"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := w.snapshot()
			p := tc.run(newBrowser(t, w))
			wantPage(t, tc.name, p, tc.code, tc.texts...)
			w.assertStoreUnchanged(before)
			if a := w.token(vaultHost, "contoso"); a.code != http.StatusNotFound {
				t.Errorf("token after %s = %d; want 404 not_connected", tc.name, a.code)
			}
		})
	}
	w.assertNoSecretsLogged(connectClientSecret.Reveal())
}

// patForm opens a PAT link and returns the form's CSRF token.
func patForm(t *testing.T, b *browser, link string) (string, page) {
	t.Helper()
	p := b.get(link)
	if p.code != http.StatusOK {
		t.Fatalf("GET PAT link = %d\n%s", p.code, p.body)
	}
	const marker = `name="csrf" value="`
	i := strings.Index(p.body, marker)
	if i < 0 {
		t.Fatalf("PAT page has no CSRF field\n%s", p.body)
	}
	rest := p.body[i+len(marker):]
	return rest[:strings.IndexByte(rest, '"')], p
}

// TestConnectPATEndToEnd: a PAT-only host's link leads to the PAT page
// (also through /connect); an invalid PAT is refused with the form kept
// and nothing stored; a valid one is checked, stored, and served.
func TestConnectPATEndToEnd(t *testing.T) {
	w := newConnectWorld(t)
	vsPAT := azdoemu.NewPAT()
	if err := w.azdo.AddPAT(azdoemu.PAT{Token: vsPAT, Org: "fabrikam", User: connectUPN}); err != nil {
		t.Fatal(err)
	}
	link := w.connectURL(vsHost, "fabrikam", "/pat")
	b := newBrowser(t, w)

	// /connect on a PAT-only host goes to the PAT page, link unspent.
	p := b.get(strings.Replace(link, "/pat?", "/connect?", 1))
	if p.code != http.StatusSeeOther || !strings.HasPrefix(p.loc, "/pat?link=") {
		t.Fatalf("GET /connect for a PAT-only host = %d to %q; want 303 to /pat", p.code, p.loc)
	}
	csrf, form := patForm(t, b, link)
	for _, s := range []string{"https://fabrikam.visualstudio.com/_details/security/tokens", "Code: Read &amp; write", "30 days", `type="password"`} {
		if !strings.Contains(form.body, s) {
			t.Errorf("PAT page lacks %q", s)
		}
	}

	exp := time.Now().Add(30 * 24 * time.Hour).Format(time.DateOnly)
	before := w.snapshot()
	bad := azdoemu.NewPAT()
	p = b.do(http.MethodPost, w.url+"/pat", url.Values{"csrf": {csrf}, "pat": {bad.Reveal()}, "expires": {exp}})
	wantPage(t, "invalid PAT", p, http.StatusUnprocessableEntity, "did not accept this token", `name="csrf"`, exp)
	if strings.Contains(p.body, bad.Reveal()) {
		t.Errorf("the refused PAT is echoed back in the page")
	}
	w.assertStoreUnchanged(before)

	p = b.do(http.MethodPost, w.url+"/pat", url.Values{"csrf": {"forged"}, "pat": {vsPAT.Reveal()}, "expires": {exp}})
	wantPage(t, "forged CSRF token", p, http.StatusForbidden, "csrf")
	w.assertStoreUnchanged(before)

	p = b.do(http.MethodPost, w.url+"/pat", url.Values{"csrf": {csrf}, "pat": {vsPAT.Reveal()}, "expires": {exp}})
	wantPage(t, "valid PAT", p, http.StatusOK, "Connected. Return to your environment; git will work now.")
	if strings.Contains(p.body, "warning") {
		t.Errorf("a 30-day PAT got an expiry warning")
	}
	a := w.token(vsHost, "fabrikam")
	if a.code != http.StatusOK || a.ok.Type != vaultapi.TypeBasic || a.ok.Token != vsPAT.Reveal() {
		t.Fatalf("token after the PAT = %d %s; want 200 basic", a.code, strings.ReplaceAll(a.raw, vsPAT.Reveal(), "[PAT]"))
	}
	w.assertAzDOAccepts("https://fabrikam.visualstudio.com/_apis/connectionData", basicHeader(a.ok.Username, secret.New(a.ok.Token))[len("Authorization: "):], connectUPN)

	// The session was spent with the save, and so was the link.
	before = w.snapshot()
	p = b.do(http.MethodPost, w.url+"/pat", url.Values{"csrf": {csrf}, "pat": {vsPAT.Reveal()}, "expires": {exp}})
	if p.code == http.StatusOK {
		t.Errorf("second POST of a spent session = 200; want a refusal")
	}
	wantPage(t, "replayed PAT link", newBrowser(t, w).get(link), http.StatusGone, "already used")
	w.assertStoreUnchanged(before)
	w.assertNoSecretsLogged(vsPAT.Reveal(), bad.Reveal())
}

// TestConnectPATOrgAndExpiryWarning: a link without an org asks for it;
// a PAT expiring within 7 days is stored with a warning.
func TestConnectPATOrgAndExpiryWarning(t *testing.T) {
	w := newConnectWorld(t)
	link, err := w.h.ConnectURL(context.Background(), vault.LinkRequest{Owner: connectOwner, Host: vaultHost, Kind: store.PAT})
	if err != nil {
		t.Fatal(err)
	}
	b := newBrowser(t, w)
	csrf, form := patForm(t, b, link)
	if !strings.Contains(form.body, `name="org"`) {
		t.Fatalf("PAT page for a link without org has no org field")
	}
	soon := time.Now().Add(3 * 24 * time.Hour).Format(time.DateOnly)
	p := b.do(http.MethodPost, w.url+"/pat", url.Values{"csrf": {csrf}, "org": {"Contoso"}, "pat": {w.pat.Reveal()}, "expires": {soon}})
	wantPage(t, "PAT expiring soon", p, http.StatusOK, "Connected.", `id="warning"`, "expires on "+soon)
	cs := w.credentials(vaultHost)
	if len(cs) != 1 || cs[0].Kind != store.PAT || cs[0].Org != "contoso" || cs[0].ExpiresAt.Format(time.DateOnly) != soon {
		t.Fatalf("stored = %+v; want one PAT for contoso expiring %s", cs, soon)
	}
	a := w.token(vaultHost, "contoso")
	if a.code != http.StatusOK || a.ok.Type != vaultapi.TypeBasic {
		t.Fatalf("token after the PAT = %d; want 200 basic", a.code)
	}
	w.assertAzDOAccepts("https://dev.azure.com/contoso/_apis/connectionData", basicHeader(a.ok.Username, secret.New(a.ok.Token))[len("Authorization: "):], connectUPN)
	w.assertNoSecretsLogged(w.pat.Reveal())
}

// TestConnectVaultBinary: `azdo-vault serve` mounts the pages and hands
// out signed links under its public_url: a not-connected environment's
// connect_url goes through the Entra emulator to the callback, after which
// the binary serves a bearer token.
func TestConnectVaultBinary(t *testing.T) {
	w := newVaultWorld(t, entraemu.Config{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	public := "http://" + addr
	w.entra.RegisterApp(vaultClientID, vaultClientSecret, []string{public + "/oauth/callback"})
	cfg := fmt.Sprintf("public_url: %s\nproviders:\n  - host: %s\n    oauth:\n      issuer_url: %s\n      client_id: %s\n      client_secret_sealed: %s\n    pat:\n      enabled: true\n",
		public, vaultHost, w.entra.IssuerURL(w.entra.TenantID()), vaultClientID, w.seal(w.pub, vaultClientSecret.Reveal()))
	if err := os.WriteFile(w.cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := w.startErr("--listen", addr)
	if err != nil {
		t.Fatal(err)
	}
	w.proc = p
	_, envTok := w.envCreate(vaultUser, time.Hour)

	a := w.token(envTok, "contoso")
	if a.code != http.StatusNotFound || !strings.HasPrefix(a.err.ConnectURL, public+"/connect?link=") {
		t.Fatalf("token before Connect = %d %s; want 404 with a signed %s/connect link", a.code, a.raw, public)
	}
	jar, _ := cookiejar.New(nil)
	c := w.entra.Client()
	c.Jar = jar
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	b := &browser{t: t, c: c}
	done := b.get(b.authorize(a.err.ConnectURL))
	wantPage(t, "callback", done, http.StatusOK, "Connected. Return to your environment; git will work now.")
	wantPage(t, "replayed link", b.get(a.err.ConnectURL), http.StatusGone, "already used")

	a = w.token(envTok, "contoso")
	if a.code != http.StatusOK || a.ok.Type != vaultapi.TypeBearer {
		t.Fatalf("token after Connect = %d; want 200 bearer", a.code)
	}
	if sub, err := w.entra.VerifyAccessToken(a.ok.Token); err != nil || sub != vaultUser {
		t.Errorf("the served token verifies as %q, %v; want %s", sub, err, vaultUser)
	}
	w.proc.stop(t)
	for _, s := range []string{a.ok.Token, vaultClientSecret.Reveal(), envTok} {
		if strings.Contains(w.proc.stderr.String(), s) {
			t.Errorf("vault log contains a secret (%.8s…)", s)
		}
	}
}

// TestConnectReconnect: a revoked grant makes the vault answer 409 with a
// fresh link; connecting again through it replaces the grant, and tokens
// flow again.
func TestConnectReconnect(t *testing.T) {
	w := newConnectWorld(t)
	b := newBrowser(t, w)
	wantPage(t, "first connect", b.get(b.authorize(w.connectURL(vaultHost, "contoso", "/connect"))), http.StatusOK, "Connected.")
	if err := w.entra.RevokeUser(connectUPN); err != nil {
		t.Fatal(err)
	}
	a := w.token(vaultHost, "contoso")
	if a.code != http.StatusConflict || a.err.Error != vaultapi.ErrReconnectRequired || !strings.HasPrefix(a.err.ConnectURL, w.url+"/connect?link=") {
		t.Fatalf("token after revocation = %d %s; want 409 reconnect_required with a connect link", a.code, a.raw)
	}
	wantPage(t, "reconnect", b.get(b.authorize(a.err.ConnectURL)), http.StatusOK, "Connected.")
	if cs := w.credentials(vaultHost); len(cs) != 1 || cs[0].Status != store.StatusOK {
		t.Fatalf("credentials after reconnect = %+v; want one usable grant", cs)
	}
	w.assertBearerWorks()
}

// TestConnectMultiTenantIssuer: with an "organizations" issuer (whose
// discovery document names the literal {tenantid} issuer) the ID token is
// still verified and the Connect completes.
func TestConnectMultiTenantIssuer(t *testing.T) {
	for _, tenant := range []string{"organizations", "common"} {
		t.Run(tenant, func(t *testing.T) {
			w := newConnectWorldFor(t, tenant)
			b := newBrowser(t, w)
			cb := b.authorize(w.connectURL(vaultHost, "contoso", "/connect"))
			wantPage(t, "callback", b.get(cb), http.StatusOK, "Connected. Return to your environment; git will work now.")
			w.assertBearerWorks()
		})
	}
}
