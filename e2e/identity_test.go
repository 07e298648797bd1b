package e2e

import (
	"fmt"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/azdo-sidecar/azdo-sidecar/e2e/azdoemu"
	"github.com/azdo-sidecar/azdo-sidecar/e2e/entraemu"
	"github.com/azdo-sidecar/azdo-sidecar/vaultapi"
)

const otherUPN = "bob@contoso.example"

// TestOwnerIdentityVaultBinary: the real azdo-vault binary with the
// Entra emulator. A link minted for erin and completed by bob's sign-in
// stores nothing and says so (403, the words), and erin's
// environment still answers 404 with a connect link; the confirmation page
// is required (a Continue without it is refused) and the authorize request
// carries login_hint; erin's own sign-in works; the identity mapping lets
// an owner named "erin" on the platform connect as erin@contoso.example.
func TestOwnerIdentityVaultBinary(t *testing.T) {
	w := newVaultWorld(t, entraemu.Config{})
	if _, err := w.entra.AddUser(entraemu.User{UPN: otherUPN}); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	public := "http://" + addr
	w.entra.RegisterApp(vaultClientID, vaultClientSecret, []string{public + "/oauth/callback"})
	cfg := fmt.Sprintf("public_url: %s\nproviders:\n  - host: %s\n    oauth:\n      issuer_url: %s\n      client_id: %s\n      client_secret_sealed: %s\nidentity:\n  owners:\n    erin: %s\n",
		public, vaultHost, w.entra.IssuerURL(w.entra.TenantID()), vaultClientID, w.seal(w.pub, vaultClientSecret.Reveal()), vaultUser)
	if err := os.WriteFile(w.cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := w.startErr("--listen", addr)
	if err != nil {
		t.Fatal(err)
	}
	w.proc = p
	envID, envTok := w.envCreate(vaultUser, time.Hour)
	newB := func() *browser {
		jar, _ := cookiejar.New(nil)
		c := w.entra.Client()
		c.Jar = jar
		c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		return &browser{t: t, c: c}
	}
	link := func(tok string) string {
		t.Helper()
		a := w.token(tok, "contoso")
		if a.code != http.StatusNotFound || a.err.Error != vaultapi.ErrNotConnected || !strings.HasPrefix(a.err.ConnectURL, public+"/connect?link=") {
			t.Fatalf("token before Connect = %d %s; want 404 not_connected with a connect link", a.code, a.raw)
		}
		return a.err.ConnectURL
	}

	// The confirmation page is required: a POST without it is refused,
	// and nothing reaches the identity provider.
	first := link(envTok)
	lu, _ := url.Parse(first)
	direct := newB().do(http.MethodPost, public+"/connect", url.Values{"link": {lu.Query().Get("link")}})
	wantPage(t, "Continue without the confirmation page", direct, http.StatusForbidden, "not sent from the confirmation page")
	if direct.loc != "" || w.entra.Counts().Authorize != 0 {
		t.Fatalf("a POST without the confirmation page redirected to %q (authorize requests: %d); want a refusal", direct.loc, w.entra.Counts().Authorize)
	}

	// Bob opens erin's link. His browser is signed in as bob: Entra is
	// asked for erin (login_hint), bob signs in as himself.
	if err := w.entra.SetSignedInUser(otherUPN); err != nil {
		t.Fatal(err)
	}
	b := newB()
	confirm := b.get(first)
	wantPage(t, "confirmation page", confirm, http.StatusOK,
		"Connect Azure DevOps on <code>"+vaultHost+"</code> for <code>"+vaultUser+"</code> (environment <code>"+envID+"</code>, runner <code>"+addr+"</code>)")
	refused := b.get(b.authorize(first))
	want := "You signed in as bob@contoso.example, but this link connects Azure DevOps for erin@contoso.example. Nothing was saved. Sign in as erin@contoso.example, or ask erin for their own link."
	wantPage(t, "bob completes erin's link", refused, http.StatusForbidden, want)
	if hint := w.entra.LastLoginHint(); hint != vaultUser {
		t.Errorf("authorize login_hint = %q; want %q", hint, vaultUser)
	}
	if a := w.token(envTok, "contoso"); a.code != http.StatusNotFound || a.err.ConnectURL == "" {
		t.Errorf("erin's token after bob's refused sign-in = %d %s; want 404 with a connect link", a.code, a.raw)
	}
	var warn string
	for _, l := range strings.Split(w.proc.stderr.String(), "\n") {
		if strings.Contains(l, "signed-in identity is not the owner's") {
			warn = l
		}
	}
	for _, s := range []string{"WARN", "owner=" + vaultUser, "env=" + envID, "host=" + vaultHost, "signed_in=" + otherUPN} {
		if !strings.Contains(warn, s) {
			t.Errorf("mismatch log line %q lacks %q", warn, s)
		}
	}

	// Erin's own sign-in works.
	if err := w.entra.SetSignedInUser(vaultUser); err != nil {
		t.Fatal(err)
	}
	b = newB()
	wantPage(t, "erin's own sign-in", b.get(b.authorize(link(envTok))), http.StatusOK, "Connected. Return to your environment; git will work now.")
	if a := w.token(envTok, "contoso"); a.code != http.StatusOK || a.ok.Type != vaultapi.TypeBearer {
		t.Fatalf("erin's token after her sign-in = %d %s; want 200 bearer", a.code, a.raw)
	}

	// The mapping: the platform calls her "erin".
	_, mappedTok := w.envCreate("erin", time.Hour)
	b = newB()
	wantPage(t, "mapped owner's sign-in", b.get(b.authorize(link(mappedTok))), http.StatusOK, "Connected.")
	if a := w.token(mappedTok, "contoso"); a.code != http.StatusOK {
		t.Errorf("mapped owner's token = %d %s; want 200", a.code, a.raw)
	}
	w.proc.stop(t)
	if strings.Contains(w.proc.stderr.String(), envTok) || strings.Contains(w.proc.stderr.String(), vaultClientSecret.Reveal()) {
		t.Errorf("the vault log contains a secret")
	}
}

// TestOwnerIdentityPAT: a PAT of bob's pasted on grace's PAT page is
// checked against the Azure DevOps emulator, whose connectionData names
// bob: nothing is stored, the same page as a refused sign-in (403), and
// grace's environment still answers 404 with a link; grace's own PAT is
// stored and served.
func TestOwnerIdentityPAT(t *testing.T) {
	w := newConnectWorld(t)
	bobPAT := azdoemu.NewPAT()
	if err := w.azdo.AddPAT(azdoemu.PAT{Token: bobPAT, Org: "contoso", User: otherUPN}); err != nil {
		t.Fatal(err)
	}
	b := newBrowser(t, w)
	w.connectURL(vaultHost, "contoso", "/connect")
	first := w.token(vaultHost, "contoso").err.PATURL
	if !strings.HasPrefix(first, w.url+"/pat?link=") {
		t.Fatalf("pat_url = %q; want a PAT link", first)
	}
	csrf, _ := patForm(t, b, first)
	exp := time.Now().Add(30 * 24 * time.Hour).Format(time.DateOnly)
	before := w.snapshot()
	p := b.do(http.MethodPost, w.url+"/pat", url.Values{"csrf": {csrf}, "org": {"contoso"}, "pat": {bobPAT.Reveal()}, "expires": {exp}})
	want := "You signed in as bob@contoso.example, but this link connects Azure DevOps for grace@contoso.example. Nothing was saved. Sign in as grace@contoso.example, or ask grace for their own link."
	wantPage(t, "bob's PAT on grace's page", p, http.StatusForbidden, want)
	w.assertStoreUnchanged(before)
	if a := w.token(vaultHost, "contoso"); a.code != http.StatusNotFound || a.err.ConnectURL == "" {
		t.Errorf("grace's token after bob's PAT = %d %s; want 404 with a connect link", a.code, a.raw)
	}
	if !strings.Contains(w.logs.String(), "signed_in="+otherUPN) {
		t.Errorf("no WARN naming bob in the log:\n%s", w.logs.String())
	}
	w.assertNoSecretsLogged(bobPAT.Reveal())

	b = newBrowser(t, w)
	a := w.token(vaultHost, "contoso")
	patLink := a.err.PATURL
	if patLink == "" {
		t.Fatalf("no PAT link in %s", a.raw)
	}
	csrf, _ = patForm(t, b, patLink)
	p = b.do(http.MethodPost, w.url+"/pat", url.Values{"csrf": {csrf}, "org": {"contoso"}, "pat": {w.pat.Reveal()}, "expires": {exp}})
	wantPage(t, "grace's own PAT", p, http.StatusOK, "Connected.")
	if a := w.token(vaultHost, "contoso"); a.code != http.StatusOK {
		t.Errorf("grace's token after her PAT = %d %s; want 200", a.code, a.raw)
	}
}
