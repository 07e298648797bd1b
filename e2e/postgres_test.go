package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/azdo-sidecar/azdo-sidecar/e2e/entraemu"
	"github.com/azdo-sidecar/azdo-sidecar/secret"
	"github.com/azdo-sidecar/azdo-sidecar/vault"
	"github.com/azdo-sidecar/azdo-sidecar/vault/store"
	"github.com/azdo-sidecar/azdo-sidecar/vault/store/pgtest"
	"github.com/azdo-sidecar/azdo-sidecar/vaultapi"
)

// pgPassword is put in the store URL to check that no log line or output
// shows it; the test cluster trusts local connections, so it is not
// checked by the server.
const pgPassword = "pg-e2e-password-5f3a9c"

// pgVaults is a vaultWorld whose replicas share one PostgreSQL database.
type pgVaults struct {
	*vaultWorld
	url string
}

func newPGVaults(t *testing.T, cfg entraemu.Config) *pgVaults {
	t.Helper()
	u, err := url.Parse(pgtest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(pgtest.User, pgPassword)
	return &pgVaults{vaultWorld: newVaultWorld(t, cfg), url: u.String()}
}

// replica starts one more `azdo-vault serve --store postgres://…`. The
// --store given last wins over the SQLite default of serveArgs.
func (p *pgVaults) replica() *vaultProc {
	p.t.Helper()
	proc, err := p.startErr("--store", p.url)
	if err != nil {
		p.t.Fatal(err)
	}
	return proc
}

// envCreate registers an environment through the CLI on the database.
func (p *pgVaults) envCreate(owner string, ttl time.Duration) (id, tok string) {
	p.t.Helper()
	out, err := p.run("", "env", "create", "--owner", owner, "--ttl", ttl.String(), "--json", "--store", p.url, "--key-file", p.keyFile)
	if err != nil {
		p.t.Fatalf("env create --store postgres://…: %v\n%s", err, out)
	}
	var e struct{ ID, Token string }
	if err := json.Unmarshal([]byte(out), &e); err != nil || e.Token == "" {
		p.t.Fatalf("env create printed %q: %v", out, err)
	}
	return e.ID, e.Token
}

// openStore opens the shared database as a vault process would.
func (p *pgVaults) openStore() store.Store {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := store.Open(ctx, p.url, time.Now)
	if err != nil {
		p.t.Fatal(err)
	}
	return st
}

// put stores a credential through the vault's own API on the database, as
// the Connect and PAT pages of a replica do.
func (p *pgVaults) put(c vault.Credential) {
	p.t.Helper()
	kp, err := vault.LoadKeyFile(p.keyFile)
	if err != nil {
		p.t.Fatal(err)
	}
	st := p.openStore()
	defer st.Close()
	v, err := vault.New(vault.Config{Keys: kp, Store: st, Providers: []vault.Provider{{Host: vaultHost, OAuth: noRefresh{}, PAT: true}},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		p.t.Fatal(err)
	}
	defer v.Close()
	if _, err := v.PutCredential(context.Background(), c); err != nil {
		p.t.Fatalf("PutCredential: %v", err)
	}
}

// storedOAuth returns vaultUser's stored OAuth credential and its refresh
// token, opened with the runner key.
func (p *pgVaults) storedOAuth() (store.Credential, string) {
	p.t.Helper()
	kp, err := vault.LoadKeyFile(p.keyFile)
	if err != nil {
		p.t.Fatal(err)
	}
	st := p.openStore()
	defer st.Close()
	cs, err := st.Credentials(context.Background(), vaultUser, vaultHost)
	if err != nil {
		p.t.Fatal(err)
	}
	for _, c := range cs {
		if c.Kind == store.OAuth {
			b, err := kp.Open(c.Sealed)
			if err != nil {
				p.t.Fatal(err)
			}
			return c, string(b)
		}
	}
	p.t.Fatal("no OAuth credential stored")
	return store.Credential{}, ""
}

// checkNoPassword fails if any replica's log shows the store password.
func (p *pgVaults) checkNoPassword() {
	p.t.Helper()
	for i, l := range p.logs {
		if strings.Contains(l.String(), pgPassword) {
			p.t.Errorf("replica %d's log shows the PostgreSQL password", i)
		}
	}
}

// TestPostgresReplicasShareState: two `azdo-vault serve --store
// postgres://…` on one database. An environment registered by the CLI is
// accepted by both, a credential stored by one serves tokens from both, a
// revoked environment is refused by both, and a refresh-token rotation by
// one is what the other refreshes with (strict rotation: reusing the old
// refresh token would fail).
func TestPostgresReplicasShareState(t *testing.T) {
	p := newPGVaults(t, entraemu.Config{StrictRotation: true})
	a, b := p.replica(), p.replica()
	const pat = "e2e-pg-pat-value-0123456789abcdefghijklmnopqrstuvwx"
	p.put(vault.Credential{Owner: "frank", Host: vaultHost, Org: "contoso", Kind: store.PAT, Secret: secret.New(pat)})
	p.put(vault.Credential{Owner: vaultUser, Host: vaultHost, Kind: store.OAuth, Secret: mustIssue(t, p.entra).RefreshToken})
	revokedID, revoked := p.envCreate("frank", time.Hour)
	_, frank := p.envCreate("frank", time.Hour)
	_, erin := p.envCreate(vaultUser, time.Hour)

	for name, proc := range map[string]*vaultProc{"a": a, "b": b} {
		if ans := p.tokenAt(proc, frank, "contoso"); ans.code != 200 || ans.ok.Type != vaultapi.TypeBasic || ans.ok.Token != pat {
			t.Errorf("replica %s, PAT for a CLI-created environment = %d %s; want 200 basic with the PAT", name, ans.code, ans.raw)
		}
		if ans := p.tokenAt(proc, revoked, "contoso"); ans.code != 200 {
			t.Errorf("replica %s, before revocation = %d %s; want 200", name, ans.code, ans.raw)
		}
	}
	if out, err := p.run("", "env", "revoke", "--store", p.url, revokedID); err != nil {
		t.Fatalf("env revoke --store postgres://…: %v\n%s", err, out)
	}
	for name, proc := range map[string]*vaultProc{"a": a, "b": b} {
		if ans := p.tokenAt(proc, revoked, "contoso"); ans.code != http.StatusUnauthorized {
			t.Errorf("replica %s, revoked environment = %d %s; want 401", name, ans.code, ans.raw)
		}
	}

	// Rotation: a refreshes (RT0 → RT1), b has nothing cached and must
	// refresh with RT1, a third replica c then with RT2. Then a serves its
	// still-valid access token from its cache: b's and c's rotations do
	// not make it refresh again (which would make requests alternating
	// between replicas refresh on every request).
	c3 := p.replica()
	p.entra.ResetCounts()
	_, rt0 := p.storedOAuth()
	prev := rt0
	for i, proc := range []*vaultProc{a, b, c3} {
		ans := p.tokenAt(proc, erin, "contoso")
		if ans.code != 200 || ans.ok.Type != vaultapi.TypeBearer {
			t.Fatalf("request %d = %d %s; want 200 bearer", i, ans.code, ans.raw)
		}
		c, rt := p.storedOAuth()
		if rt == prev || c.Status != store.StatusOK {
			t.Fatalf("request %d: stored refresh token not rotated (status %s)", i, c.Status)
		}
		prev = rt
	}
	if ans := p.tokenAt(a, erin, "contoso"); ans.code != 200 || ans.ok.Type != vaultapi.TypeBearer {
		t.Fatalf("a again = %d %s; want 200 bearer", ans.code, ans.raw)
	}
	if n := p.entra.Counts().RefreshToken; n != 3 {
		t.Errorf("refreshes = %d; want 3 (one per replica, each with the rotated token; none for a's second request)", n)
	}
	c3.stop(t)
	if n := p.entra.DoubleUseCount(); n != 0 {
		t.Errorf("refresh tokens presented twice = %d; want 0", n)
	}
	a.stop(t)
	b.stop(t)
	p.checkNoPassword()
}

// mustIssue issues a fresh token pair for vaultUser.
func mustIssue(t *testing.T, e *entraemu.Server) entraemu.Tokens {
	t.Helper()
	tok, err := e.IssueTokensForTest(vaultUser)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestPostgresReplicasConcurrentRefresh: concurrent requests through two
// replicas that both must refresh. Every request is served, each replica
// refreshes at most once, and the stored refresh token is the live one (no
// lost update): with strict rotation switched on afterwards, a fresh
// replica refreshes with it and no refresh token was presented twice.
func TestPostgresReplicasConcurrentRefresh(t *testing.T) {
	p := newPGVaults(t, entraemu.Config{})
	p.put(vault.Credential{Owner: vaultUser, Host: vaultHost, Kind: store.OAuth, Secret: mustIssue(t, p.entra).RefreshToken})
	a, b := p.replica(), p.replica()
	_, env := p.envCreate(vaultUser, time.Hour)
	burstAcrossReplicas(t, p.vaultWorld, a, b, env)
	c, _ := p.storedOAuth()
	if c.Status != store.StatusOK {
		t.Fatalf("stored credential status = %s (%s); want ok", c.Status, c.Reason)
	}
	if n := int64(p.entra.Counts().RefreshToken); c.Version < 2 || c.Version > 1+n {
		t.Errorf("stored version = %d; want 2..%d (the put, then at most one per refresh)", c.Version, 1+n)
	}

	a.stop(t)
	b.stop(t)
	p.entra.SetStrictRotation(true)
	before := p.entra.DoubleUseCount()
	if ans := p.tokenAt(p.replica(), env, "contoso"); ans.code != 200 {
		t.Fatalf("fresh replica after the burst = %d %s; want 200 (the stored refresh token is live)", ans.code, ans.raw)
	}
	if n := p.entra.DoubleUseCount(); n != before {
		t.Errorf("refresh tokens presented twice = %d; want %d: the stored one was stale", n, before)
	}
	p.checkNoPassword()
}

// TestPostgresReplicasConnectWithoutStickySessions: behind a load balancer
// that sends /connect to replica A and /oauth/callback to replica B, a
// user connects; the link spent on A is refused by B, and both replicas
// then serve the grant.
func TestPostgresReplicasConnectWithoutStickySessions(t *testing.T) {
	p := newPGVaults(t, entraemu.Config{})
	var connectTo, callbackTo atomic.Pointer[url.URL]
	lb := httptest.NewServer(&httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		to := connectTo.Load()
		if r.In.URL.Path == "/oauth/callback" {
			to = callbackTo.Load()
		}
		r.SetURL(to)
	}})
	t.Cleanup(lb.Close)
	p.entra.RegisterApp(vaultClientID, vaultClientSecret, []string{lb.URL + "/oauth/callback"})
	cfg := fmt.Sprintf("public_url: %s\nproviders:\n  - host: %s\n    oauth:\n      issuer_url: %s\n      client_id: %s\n      client_secret_sealed: %s\n",
		lb.URL, vaultHost, p.entra.IssuerURL(p.entra.TenantID()), vaultClientID, p.seal(p.pub, vaultClientSecret.Reveal()))
	if err := os.WriteFile(p.cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	a, b := p.replica(), p.replica()
	connectTo.Store(&url.URL{Scheme: "http", Host: a.addr})
	callbackTo.Store(&url.URL{Scheme: "http", Host: b.addr})
	_, env := p.envCreate(vaultUser, time.Hour)

	ans := p.tokenAt(a, env, "contoso")
	if ans.code != http.StatusNotFound || !strings.HasPrefix(ans.err.ConnectURL, lb.URL+"/connect?link=") {
		t.Fatalf("token before Connect = %d %s; want 404 with a %s/connect link", ans.code, ans.raw, lb.URL)
	}
	jar, _ := cookiejar.New(nil)
	c := p.entra.Client()
	c.Jar = jar
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	br := &browser{t: t, c: c}
	callback := br.authorize(ans.err.ConnectURL) // /connect on A
	wantPage(t, "callback on B", br.get(callback), http.StatusOK, "Connected. Return to your environment; git will work now.")
	onB := strings.Replace(ans.err.ConnectURL, lb.URL, "http://"+b.addr, 1)
	wantPage(t, "the link spent on A, replayed on B", br.get(onB), http.StatusGone, "already used")

	for name, proc := range map[string]*vaultProc{"a": a, "b": b} {
		ans := p.tokenAt(proc, env, "contoso")
		if ans.code != http.StatusOK || ans.ok.Type != vaultapi.TypeBearer {
			t.Errorf("replica %s after Connect = %d %s; want 200 bearer", name, ans.code, ans.raw)
		}
	}
	a.stop(t)
	b.stop(t)
	p.checkNoPassword()
}
