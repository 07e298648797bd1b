package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	neturl "net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/azdo-sidecar/azdo-sidecar/e2e/azdoemu"
	"github.com/azdo-sidecar/azdo-sidecar/e2e/entraemu"
	"github.com/azdo-sidecar/azdo-sidecar/e2e/testenv"
	"github.com/azdo-sidecar/azdo-sidecar/vault"
	"github.com/azdo-sidecar/azdo-sidecar/vault/store"
)

// proxyVaultWorld is the Azure DevOps emulator, the Entra ID emulator, a
// real azdo-vault and a real azdo-sidecar in vault mode in front of git.
type proxyVaultWorld struct {
	emu  *azdoemu.Server
	vw   *vaultWorld
	git  *testenv.Git
	seed testenv.Seeded
	sc   *sidecarProc
	env  string
}

// newProxyVaultWorld builds the world; seed stores the user's credential
// in the vault before it starts (PAT or OAuth grant).
func newProxyVaultWorld(t *testing.T, seed func(w *proxyVaultWorld), sidecarArgs ...string) *proxyVaultWorld {
	t.Helper()
	emu := testenv.StartAzDO(t, azdoemu.Config{})
	w := &proxyVaultWorld{emu: emu, git: testenv.NewGit(t)}
	w.vw = newVaultWorld(t, entraemu.Config{TenantID: emu.TenantID()})
	emu.SetBearerVerifier(w.vw.entra.AzureDevOpsVerifier(emu.TenantID()))
	w.seed = testenv.Seed(t, emu, "contoso", "Web", "site", testenv.SeedOptions{Commits: 2, Bytes: 8 << 10})
	seed(w)
	w.vw.start()
	_, w.env = w.vw.envCreate(vaultUser, time.Hour)
	envFile := filepath.Join(t.TempDir(), "env-token")
	if err := os.WriteFile(envFile, []byte(w.env+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"--vault-url", "http://" + w.vw.proc.addr, "--env-token-file", envFile,
		"--resolve", testenv.ResolveFlag("dev.azure.com", emu), "--upstream-ca-file", emu.CAFile()}, sidecarArgs...)
	w.sc = startSidecar(t, nil, args...)
	useProxy(t, w.git, w.sc)
	return w
}

// cloneAndPush clones through the proxy, pushes one commit and checks it
// landed.
func (w *proxyVaultWorld) cloneAndPush(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "site")
	w.git.Run(t, "clone", "--quiet", repoURL, dir)
	if got := w.git.Run(t, "-C", dir, "rev-parse", "HEAD"); got != w.seed.Head {
		t.Fatalf("cloned HEAD = %s; want %s", got, w.seed.Head)
	}
	if err := os.WriteFile(filepath.Join(dir, "NOTES.md"), []byte("via vault\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	w.git.Run(t, "-C", dir, "add", "NOTES.md")
	w.git.Run(t, "-C", dir, "commit", "--quiet", "-m", "notes")
	w.git.Run(t, "-C", dir, "push", "--quiet", "origin", "main")
	want := w.git.Run(t, "-C", dir, "rev-parse", "HEAD")
	if got := w.git.Run(t, "--git-dir", w.seed.Dir, "rev-parse", "refs/heads/main"); got != want {
		t.Errorf("emulator main = %s after push; want %s", got, want)
	}
	return dir
}

func TestProxyVaultPATCloneAndPush(t *testing.T) {
	pat := azdoemu.NewPAT()
	w := newProxyVaultWorld(t, func(w *proxyVaultWorld) {
		if err := w.emu.AddPAT(azdoemu.PAT{Token: pat, Org: "contoso"}); err != nil {
			t.Fatal(err)
		}
		w.vw.put(vault.Credential{Owner: vaultUser, Host: vaultHost, Kind: store.PAT, Secret: pat})
	})
	w.cloneAndPush(t)
	for _, r := range w.emu.Requests() {
		if r.CredKind != azdoemu.CredBasicPAT || r.CredHash != azdoemu.CredentialHash(pat) {
			t.Errorf("%s %s: cred %s; want the vault's PAT", r.Method, r.Path, r.CredKind)
		}
	}
	assertNoLeak(t, w.sc, w.emu, pat)
}

func TestProxyVaultOAuthExpiryMidSessionAndRevocation(t *testing.T) {
	w := newProxyVaultWorld(t, func(w *proxyVaultWorld) {
		// Access tokens live 8 s; the sidecar renews 3 s before expiry.
		w.vw.entra.SetAccessTokenLifetime(8 * time.Second)
		w.vw.connect(vaultUser)
	}, "--refresh-margin", "3s")
	dir := w.cloneAndPush(t)

	// Let the first access token expire, then keep working: the sidecar
	// fetches a fresh one from the vault and git never notices.
	time.Sleep(9 * time.Second)
	if out, err := w.git.RunErr("-C", dir, "fetch", "--quiet", "origin"); err != nil {
		t.Fatalf("fetch after the access token expired: %v\n%s", err, out)
	}
	hashes := map[string]bool{}
	for _, r := range w.emu.Requests() {
		if r.CredKind != azdoemu.CredBearer {
			t.Errorf("%s %s: cred %s; want bearer", r.Method, r.Path, r.CredKind)
		}
		if r.Status >= 400 {
			t.Errorf("%s %s answered %d; git should never see a failure", r.Method, r.Path, r.Status)
		}
		hashes[r.CredHash] = true
	}
	if len(hashes) < 2 {
		t.Errorf("distinct access tokens used = %d; want at least 2 (one refresh)", len(hashes))
	}

	// Revoke the grant: once the cached token runs out, git fails fast
	// with the connect link and without prompting.
	if err := w.vw.entra.RevokeUser(vaultUser); err != nil {
		t.Fatal(err)
	}
	time.Sleep(9 * time.Second)
	start := time.Now()
	out, err := w.git.RunErr("-C", dir, "fetch", "origin")
	if err == nil {
		t.Fatalf("fetch after revocation succeeded:\n%s", out)
	}
	t.Logf("git after revocation:\n%s", out)
	if !strings.Contains(out, "remote: azdo-sidecar:") || !strings.Contains(out, "http://127.0.0.1:9/") {
		t.Errorf("git output lacks the connect link:\n%s", out)
	}
	if strings.Contains(out, "terminal prompts disabled") || strings.Contains(out, "Username for") {
		t.Errorf("git tried to prompt:\n%s", out)
	}
	if n := strings.Count(out, "/connect?"); n != 1 || !strings.Contains(out, "remote: azdo-sidecar: Azure DevOps (dev.azure.com/contoso): reconnect required") {
		t.Errorf("git output shows the link %d times or lacks the reconnect line; want once, on its own line:\n%s", n, out)
	}
	// The host takes PATs too: the PAT page is offered as the other way in.
	if n := strings.Count(out, "remote: azdo-sidecar:   http://127.0.0.1:9/pat?"); n != 1 || !strings.Contains(out, "personal access token instead") {
		t.Errorf("git output offers the PAT page %d times; want once, after the connect link:\n%s", n, out)
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("git took %s to fail; want fast", d)
	}

	// Any other client gets the contract's 401, a Bearer challenge no
	// client answers by itself, and the same text naming the link.
	resp := getViaSidecar(t, w.sc, "https://dev.azure.com/contoso/_apis/connectionData")
	if resp.code != http.StatusUnauthorized || !strings.Contains(resp.body, "reconnect required") || !strings.Contains(resp.body, "http://127.0.0.1:9/connect?") {
		t.Errorf("non-git client after revocation = %d %q; want 401 naming the connect link", resp.code, resp.body)
	}
	if got := resp.header.Get("WWW-Authenticate"); !strings.HasPrefix(got, "Bearer ") || !strings.Contains(got, "reconnect_required") {
		t.Errorf("WWW-Authenticate = %q; want a Bearer challenge with reconnect_required", got)
	}
	for _, l := range w.vw.logs {
		if strings.Contains(w.sc.stderr.String(), w.env) || strings.Contains(l.String(), w.env) {
			t.Errorf("a log contains the environment token")
		}
	}
	if strings.Contains(w.sc.metrics(t), w.env) {
		t.Errorf("/metrics contains the environment token")
	}
}

type viaResponse struct {
	code   int
	header http.Header
	body   string
}

// getViaSidecar GETs url through the sidecar's proxy as a plain HTTP client
// (Go's User-Agent, not git's), trusting the sidecar's CA.
func getViaSidecar(t *testing.T, sc *sidecarProc, url string) viaResponse {
	t.Helper()
	pem, err := os.ReadFile(sc.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		t.Fatalf("no certificate in %s", sc.CAFile)
	}
	pu, err := neturl.Parse(sc.proxyURL(t))
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{
		Timeout: 20 * time.Second,
		Transport: &http.Transport{
			Proxy:             http.ProxyURL(pu),
			TLSClientConfig:   &tls.Config{RootCAs: roots},
			DisableKeepAlives: true,
		},
	}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return viaResponse{resp.StatusCode, resp.Header, string(b)}
}
