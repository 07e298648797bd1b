package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/azdo-sidecar/azdo-sidecar/e2e/entraemu"
	"github.com/azdo-sidecar/azdo-sidecar/secret"
	"github.com/azdo-sidecar/azdo-sidecar/vault"
	"github.com/azdo-sidecar/azdo-sidecar/vault/store"
	"github.com/azdo-sidecar/azdo-sidecar/vaultapi"
)

// otherHost is a second OAuth provider (same Entra app) beside vaultHost.
const otherHost = "tfs.example.com"

// lifecycleConfig writes a config with vaultHost (OAuth with sealed, and
// PATs when pat) and otherHost (OAuth with the right secret).
func (w *vaultWorld) lifecycleConfig(sealedA string, pat bool) {
	w.t.Helper()
	issuer := w.entra.IssuerURL(w.entra.TenantID())
	good := w.seal(w.pub, vaultClientSecret.Reveal())
	patBlock := ""
	if pat {
		patBlock = "    pat:\n      enabled: true\n"
	}
	cfg := fmt.Sprintf("public_url: http://127.0.0.1:9\nproviders:\n  - host: %s\n    oauth:\n      issuer_url: %s\n      client_id: %s\n      client_secret_sealed: %s\n%s  - host: %s\n    oauth:\n      issuer_url: %s\n      client_id: %s\n      client_secret_sealed: %s\n",
		vaultHost, issuer, vaultClientID, sealedA, patBlock, otherHost, issuer, vaultClientID, good)
	if err := os.WriteFile(w.cfgFile, []byte(cfg), 0o600); err != nil {
		w.t.Fatal(err)
	}
}

// seedBoth stores, for owner, a PAT on vaultHost and an Entra grant on
// otherHost, as the Connect and PAT pages would.
func (w *vaultWorld) seedBoth(owner string, pat secret.String) {
	w.t.Helper()
	kp, err := vault.LoadKeyFile(w.keyFile)
	if err != nil {
		w.t.Fatal(err)
	}
	st, err := store.OpenSQLite(context.Background(), w.db, time.Now)
	if err != nil {
		w.t.Fatal(err)
	}
	defer st.Close()
	v, err := vault.New(vault.Config{Keys: kp, Store: st, PublicURL: "http://127.0.0.1:9",
		Providers: []vault.Provider{{Host: vaultHost, OAuth: noRefresh{}, PAT: true}, {Host: otherHost, OAuth: noRefresh{}}}})
	if err != nil {
		w.t.Fatal(err)
	}
	defer v.Close()
	tok, err := w.entra.IssueTokensForTest(vaultUser)
	if err != nil {
		w.t.Fatal(err)
	}
	for _, c := range []vault.Credential{
		{Owner: owner, Host: vaultHost, Org: "contoso", Kind: store.PAT, Secret: pat},
		{Owner: owner, Host: otherHost, Kind: store.OAuth, Secret: tok.RefreshToken},
	} {
		if _, err := v.PutCredential(context.Background(), c); err != nil {
			w.t.Fatal(err)
		}
	}
}

func (w *vaultWorld) tokenFor(envTok, host, org string) vaultAnswer {
	w.t.Helper()
	body, _ := json.Marshal(vaultapi.TokenRequest{Host: host, Org: org, MinValidSeconds: 300})
	req, _ := http.NewRequest(http.MethodPost, "http://"+w.proc.addr+vaultapi.TokenPath, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+envTok)
	resp, err := (&http.Client{Timeout: 60 * time.Second}).Do(req)
	if err != nil {
		w.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	a := vaultAnswer{code: resp.StatusCode, raw: string(b)}
	if a.code == http.StatusOK {
		json.Unmarshal(b, &a.ok)
	} else {
		json.Unmarshal(b, &a.err)
	}
	return a
}

type healthz struct {
	Status    string                `json:"status"`
	Providers []vault.ProviderState `json:"providers"`
}

func (w *vaultWorld) health() (healthz, string) {
	w.t.Helper()
	resp, err := http.Get("http://" + w.proc.addr + "/healthz")
	if err != nil {
		w.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var h healthz
	if err := json.Unmarshal(b, &h); err != nil {
		w.t.Fatalf("/healthz %q is not JSON: %v", b, err)
	}
	return h, string(b)
}

func (h healthz) oauth(host string) string {
	for _, p := range h.Providers {
		if p.Host == host {
			return p.OAuth
		}
	}
	return "absent"
}

// waitHealth polls /healthz until ok(h) or 30 s.
func (w *vaultWorld) waitHealth(what string, ok func(healthz) bool) healthz {
	w.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		h, raw := w.health()
		if ok(h) {
			return h
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("%s: /healthz still %s\nvault log:\n%s", what, raw, w.proc.stderr.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitLog waits until the vault's log contains s.
func (w *vaultWorld) waitLog(s string) {
	w.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(w.proc.stderr.String(), s) {
		if time.Now().After(deadline) {
			w.t.Fatalf("vault log lacks %q:\n%s", s, w.proc.stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestVaultProviderLifecycle: a provider with a wrong client secret starts
// disabled (in /healthz, the metric and the log) while the other serves;
// fixing the file and SIGHUP enables it without a restart; an invalid
// file on SIGHUP is refused whole; removing pat: from a host deletes its
// PATs, credential list shows none, and the environment gets 404 with a
// connect link only.
func TestVaultProviderLifecycle(t *testing.T) {
	w := newVaultWorld(t, entraemu.Config{})
	pat := secret.New("lifecycle-pat-0123456789abcdefghijklmnopqrstuvwxyz")
	w.seedBoth(vaultUser, pat)
	w.lifecycleConfig(w.seal(w.pub, "not-the-client-secret"), true)
	w.start()
	_, envTok := w.envCreate(vaultUser, time.Hour)

	h, raw := w.health()
	if h.Status != "degraded" || h.oauth(vaultHost) != vault.OAuthDisabled || h.oauth(otherHost) != vault.OAuthOK || !strings.Contains(raw, "AADSTS7000215") {
		t.Fatalf("/healthz at start = %s; want %s disabled (AADSTS7000215), %s ok", raw, vaultHost, otherHost)
	}
	if log := w.proc.stderr.String(); !strings.Contains(log, "provider disabled") || strings.Contains(log, "not-the-client-secret") {
		t.Errorf("vault log lacks the disabled provider (or shows the secret):\n%s", log)
	}
	if a := w.tokenFor(envTok, otherHost, ""); a.code != http.StatusOK || a.ok.Type != vaultapi.TypeBearer {
		t.Fatalf("token on the working provider = %d %s; want 200 bearer", a.code, a.raw)
	}
	// The disabled provider's PATs still serve.
	if a := w.tokenFor(envTok, vaultHost, "contoso"); a.code != http.StatusOK || a.ok.Type != vaultapi.TypeBasic {
		t.Fatalf("PAT on the disabled OAuth provider = %d %s; want 200 basic", a.code, a.raw)
	}

	// Its Connect link shows why sign-in is off, and offers the PAT page.
	a := w.tokenFor(envTok, vaultHost, "fabrikam")
	if a.code != http.StatusNotFound || a.err.ConnectURL == "" || a.err.PATURL == "" {
		t.Fatalf("token without a credential on the disabled provider = %d %s; want 404 with both links", a.code, a.raw)
	}
	page := w.getPage(a.err.ConnectURL)
	if page.code != http.StatusServiceUnavailable || !strings.Contains(page.body, "disabled on this runner") || !strings.Contains(page.body, "AADSTS7000215") || !strings.Contains(page.body, "personal access token") {
		t.Errorf("Connect page of the disabled provider = %d\n%s\nwant 503 with the reason and the PAT way", page.code, page.body)
	}

	// Fix the secret; SIGHUP.
	w.lifecycleConfig(w.seal(w.pub, vaultClientSecret.Reveal()), true)
	if err := w.proc.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	w.waitHealth("after fixing the secret", func(h healthz) bool {
		return h.Status == "ok" && h.oauth(vaultHost) == vault.OAuthOK && h.oauth(otherHost) == vault.OAuthOK
	})

	// An invalid file is refused whole; the running config stays.
	if err := os.WriteFile(w.cfgFile, []byte("public_url: [not yaml\nproviders: {"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := w.proc.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	w.waitLog("reload refused: the config is invalid")
	if h, raw := w.health(); h.Status != "ok" || h.oauth(vaultHost) != vault.OAuthOK {
		t.Errorf("/healthz after an invalid reload = %s; want the old config serving", raw)
	}
	if a := w.tokenFor(envTok, otherHost, ""); a.code != http.StatusOK {
		t.Errorf("token after an invalid reload = %d %s; want 200", a.code, a.raw)
	}

	// reload --dry-run names the PAT that removing pat: would delete,
	// and deletes nothing.
	w.lifecycleConfig(w.seal(w.pub, vaultClientSecret.Reveal()), false)
	out, err := w.run("", "reload", "--dry-run", "--config", w.cfgFile, "--key-file", w.keyFile, "--store", "sqlite:"+w.db, "--upstream-ca-file", w.caFile)
	if err != nil || !strings.Contains(out, "would delete 1 credentials") || !strings.Contains(out, vaultUser+"\t"+vaultHost+"\tpat\tpat disabled") {
		t.Fatalf("reload --dry-run = %v\n%s\nwant the PAT named", err, out)
	}
	if list := w.credentialList(vaultHost); !strings.Contains(list, `"kind":"pat"`) {
		t.Fatalf("the dry run deleted the PAT: %s", list)
	}

	// Remove pat: from vaultHost, through azdo-vault reload (pid file).
	out, err = w.run("", "reload", "--pid-file", w.pidFile)
	if err != nil {
		t.Fatalf("azdo-vault reload: %v\n%s", err, out)
	}
	w.waitLog("config reloaded")
	w.waitLog("credentials deleted")
	if list := w.credentialList(vaultHost); strings.Contains(list, `"kind":"pat"`) {
		t.Errorf("credential list --host %s after removing pat: = %s; want no PAT", vaultHost, list)
	}
	st, err := store.OpenSQLite(context.Background(), w.db, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := st.ListCredentials(context.Background(), "", vaultHost)
	st.Close()
	if err != nil || len(cs) != 0 {
		t.Errorf("store holds %+v for %s; want nothing", cs, vaultHost)
	}
	a = w.tokenFor(envTok, vaultHost, "contoso")
	if a.code != http.StatusNotFound || a.err.Error != vaultapi.ErrNotConnected || a.err.ConnectURL == "" || a.err.PATURL != "" {
		t.Errorf("token after removing pat: = %d %s; want 404 not_connected with a connect link only", a.code, a.raw)
	}
	if a := w.tokenFor(envTok, otherHost, ""); a.code != http.StatusOK {
		t.Errorf("token on the other provider after the reload = %d %s; want 200", a.code, a.raw)
	}
	if log := w.proc.stderr.String(); strings.Contains(log, pat.Reveal()) || strings.Contains(log, vaultClientSecret.Reveal()) {
		t.Errorf("vault log contains a secret")
	}
}

// credentialList is `azdo-vault credential list --host HOST --json`.
func (w *vaultWorld) credentialList(host string) string {
	w.t.Helper()
	out, err := w.run("", "credential", "list", "--host", host, "--json", "--store", "sqlite:"+w.db)
	if err != nil {
		w.t.Fatalf("credential list: %v\n%s", err, out)
	}
	return out
}

// getPage fetches a vault page the connect link names at the vault's
// listen address (the config's public_url is a placeholder).
func (w *vaultWorld) getPage(link string) page {
	w.t.Helper()
	u := strings.Replace(link, "http://127.0.0.1:9", "http://"+w.proc.addr, 1)
	resp, err := (&http.Client{Timeout: 30 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Get(u)
	if err != nil {
		w.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return page{code: resp.StatusCode, body: string(b), loc: resp.Header.Get("Location")}
}
