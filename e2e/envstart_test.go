package e2e

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/azdo-sidecar/azdo-sidecar/e2e/azdoemu"
	"github.com/azdo-sidecar/azdo-sidecar/e2e/entraemu"
	"github.com/azdo-sidecar/azdo-sidecar/e2e/testenv"
	"github.com/azdo-sidecar/azdo-sidecar/vault/store"
)

// envStartWorld is the environment-start setting: the Azure DevOps and
// Entra ID emulators, a real `azdo-vault serve` whose public URL is where
// it listens, an environment registered with `env create`, and the
// `azdo-sidecar` binary about to run `clone --wait-connect` before the
// user has connected.
type envStartWorld struct {
	t       *testing.T
	emu     *azdoemu.Server
	vw      *vaultWorld
	seed    testenv.Seeded
	public  string
	envFile string
	bin     string
	pat     azdoemu.PAT
}

func newEnvStartWorld(t *testing.T) *envStartWorld {
	t.Helper()
	emu := testenv.StartAzDO(t, azdoemu.Config{})
	w := &envStartWorld{t: t, emu: emu, bin: testenv.Binary(t, "azdo-sidecar")}
	w.vw = newVaultWorld(t, entraemu.Config{TenantID: emu.TenantID()})
	emu.SetBearerVerifier(w.vw.entra.AzureDevOpsVerifier(emu.TenantID()))
	w.seed = testenv.Seed(t, emu, "contoso", "Web", "site", testenv.SeedOptions{Commits: 2, Bytes: 4 << 10})
	w.pat = azdoemu.PAT{Token: azdoemu.NewPAT(), Org: "contoso", User: vaultUser}
	if err := emu.AddPAT(w.pat); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	w.public = "http://" + addr
	w.vw.entra.RegisterApp(vaultClientID, vaultClientSecret, []string{w.public + "/oauth/callback"})
	cfg := fmt.Sprintf("public_url: %s\nproviders:\n  - host: %s\n    oauth:\n      issuer_url: %s\n      client_id: %s\n      client_secret_sealed: %s\n    pat:\n      enabled: true\n",
		w.public, vaultHost, w.vw.entra.IssuerURL(w.vw.entra.TenantID()), vaultClientID, w.vw.seal(w.vw.pub, vaultClientSecret.Reveal()))
	if err := os.WriteFile(w.vw.cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	// The vault reaches the Azure DevOps emulator for the PAT check
	// through a tunnel (Go never proxies the loopback Entra emulator), and
	// trusts both emulators' CAs.
	tun := testenv.StartTunnel(t, emu.Addr())
	w.vw.env = []string{"HTTPS_PROXY=http://" + tun.Addr(), "NO_PROXY="}
	entraCA, err := os.ReadFile(w.vw.caFile)
	if err != nil {
		t.Fatal(err)
	}
	emuCA, err := os.ReadFile(emu.CAFile())
	if err != nil {
		t.Fatal(err)
	}
	both := filepath.Join(t.TempDir(), "cas.pem")
	if err := os.WriteFile(both, append(append(entraCA, '\n'), emuCA...), 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := w.vw.startErr("--listen", addr, "--upstream-ca-file", both)
	if err != nil {
		t.Fatal(err)
	}
	w.vw.proc = p
	_, envTok := w.vw.envCreate(vaultUser, time.Hour)
	w.envFile = filepath.Join(t.TempDir(), "env-token")
	if err := os.WriteFile(w.envFile, []byte(envTok+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return w
}

// waitingClone is a running `azdo-sidecar clone --wait-connect`.
type waitingClone struct {
	cmd    *exec.Cmd
	dir    string
	stderr *lockedBuffer
	done   chan error
}

// startClone starts the clone with the vault and the emulator's address in
// its environment, as an environment's start script would.
func (w *envStartWorld) startClone(wait string) *waitingClone {
	w.t.Helper()
	c := &waitingClone{dir: filepath.Join(w.t.TempDir(), "site"), stderr: &lockedBuffer{}, done: make(chan error, 1)}
	c.cmd = exec.Command(w.bin, "clone", repoURL, c.dir, "--wait-connect", wait)
	c.cmd.Env = append(os.Environ(),
		"AZDO_VAULT_URL="+"http://"+w.vw.proc.addr, "AZDO_ENV_TOKEN_FILE="+w.envFile,
		"AZDO_RESOLVE="+testenv.ResolveFlag("dev.azure.com", w.emu), "AZDO_UPSTREAM_CA_FILE="+w.emu.CAFile())
	c.cmd.Stderr = c.stderr
	if err := c.cmd.Start(); err != nil {
		w.t.Fatal(err)
	}
	go func() { c.done <- c.cmd.Wait() }()
	w.t.Cleanup(func() {
		if c.cmd.ProcessState == nil {
			c.cmd.Process.Kill()
			<-c.done
		}
	})
	return c
}

var linkRE = regexp.MustCompile(`https?://\S+/(connect|pat)\?link=\S+`)

// links waits for the clone's notice and returns its connect and PAT links.
func (c *waitingClone) links(t *testing.T) (connectLink, patLink string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		out := c.stderr.String()
		if strings.Contains(out, "Waiting up to") {
			for _, m := range linkRE.FindAllStringSubmatch(out, -1) {
				if m[1] == "connect" && connectLink == "" {
					connectLink = m[0]
				}
				if m[1] == "pat" && patLink == "" {
					patLink = m[0]
				}
			}
			return connectLink, patLink
		}
		select {
		case err := <-c.done:
			c.done <- err
			t.Fatalf("clone exited (%v) before printing the links:\n%s", err, out)
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatalf("no connect notice after 30s:\n%s", c.stderr.String())
	return "", ""
}

// finish waits for the clone to exit; it returns the exit error and how
// long after since it took.
func (c *waitingClone) finish(t *testing.T, since time.Time) (error, time.Duration) {
	t.Helper()
	select {
	case err := <-c.done:
		c.done <- err
		return err, time.Since(since)
	case <-time.After(60 * time.Second):
		t.Fatalf("clone still running 60s later:\n%s", c.stderr.String())
		return nil, 0
	}
}

func (w *envStartWorld) browser() *browser {
	jar, _ := cookiejar.New(nil)
	c := w.vw.entra.Client()
	c.Jar = jar
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &browser{t: w.t, c: c}
}

const closeWindow = "You can close this window; your environment continues by itself."

// TestEnvStartWaitConnectOAuth: a clone started before the user connected
// prints the links once, waits, and finishes within 5 s of the callback
// with "now connected as".
func TestEnvStartWaitConnectOAuth(t *testing.T) {
	w := newEnvStartWorld(t)
	c := w.startClone("2m")
	connectLink, patLink := c.links(t)
	if !strings.HasPrefix(connectLink, w.public+"/connect?link=") || !strings.HasPrefix(patLink, w.public+"/pat?link=") {
		t.Fatalf("links %q, %q; want the vault's /connect and /pat links\n%s", connectLink, patLink, c.stderr.String())
	}
	// Waiting prints nothing per poll.
	before := c.stderr.String()
	time.Sleep(2 * time.Second)
	if after := c.stderr.String(); after != before {
		t.Errorf("the wait printed more while nobody connected:\n%s", strings.TrimPrefix(after, before))
	}
	b := w.browser()
	done := b.get(b.authorize(connectLink))
	at := time.Now()
	wantPage(t, "callback", done, http.StatusOK, "Connected.", closeWindow)
	err, took := c.finish(t, at)
	out := c.stderr.String()
	t.Logf("clone output:\n%s", out)
	if err != nil {
		t.Fatalf("clone --wait-connect = %v; want success\n%s", err, out)
	}
	if took > 5*time.Second {
		t.Errorf("clone finished %v after the callback; want within 5s", took)
	}
	if !strings.Contains(out, "Azure DevOps (Entra ID) is now connected as "+vaultUser+"\n") {
		t.Errorf("clone output lacks the connected line:\n%s", out)
	}
	if n := strings.Count(out, "/connect?link="); n != 1 {
		t.Errorf("the connect link was printed %d times; want once", n)
	}
	g := testenv.NewGit(t)
	if head := g.Run(t, "-C", c.dir, "rev-parse", "HEAD"); head != w.seed.Head {
		t.Errorf("cloned HEAD = %s; want %s", head, w.seed.Head)
	}
}

// TestEnvStartWaitConnectPAT: the same through the PAT page.
func TestEnvStartWaitConnectPAT(t *testing.T) {
	w := newEnvStartWorld(t)
	c := w.startClone("2m")
	_, patLink := c.links(t)
	b := w.browser()
	csrf, _ := patForm(t, b, patLink)
	exp := time.Now().Add(30 * 24 * time.Hour).Format(time.DateOnly)
	p := b.do(http.MethodPost, w.public+"/pat", url.Values{"csrf": {csrf}, "pat": {w.pat.Token.Reveal()}, "expires": {exp}})
	at := time.Now()
	wantPage(t, "PAT saved", p, http.StatusOK, "Connected.", closeWindow)
	err, took := c.finish(t, at)
	out := c.stderr.String()
	if err != nil {
		t.Fatalf("clone --wait-connect = %v; want success\n%s", err, out)
	}
	if took > 5*time.Second {
		t.Errorf("clone finished %v after the PAT was saved; want within 5s", took)
	}
	if !strings.Contains(out, "Azure DevOps is now connected with a personal access token\n") {
		t.Errorf("clone output lacks the connected line:\n%s", out)
	}
	if strings.Contains(out, w.pat.Token.Reveal()) || strings.Contains(w.vw.proc.stderr.String(), w.pat.Token.Reveal()) {
		t.Errorf("the PAT leaked into the clone's output or the vault's log")
	}
}

// TestEnvStartWaitConnectTimeout: nobody connects; the clone exits non-zero
// with the links again and clones nothing.
func TestEnvStartWaitConnectTimeout(t *testing.T) {
	w := newEnvStartWorld(t)
	start := time.Now()
	c := w.startClone("3s")
	err, _ := c.finish(t, start)
	out := c.stderr.String()
	if err == nil {
		t.Fatalf("clone after a wait nobody answered succeeded:\n%s", out)
	}
	if !strings.Contains(out, "timed out waiting for Azure DevOps to be connected") {
		t.Errorf("output lacks the timeout:\n%s", out)
	}
	if n := strings.Count(out, "/connect?link="); n != 2 {
		t.Errorf("connect link printed %d times; want twice (notice, then timeout)\n%s", n, out)
	}
	if _, err := os.Stat(c.dir); err == nil {
		t.Errorf("the timed-out clone left %s behind", c.dir)
	}
}

// TestEnvStartWaitConnectFailedLink: the user opens the link but consent
// is missing; the wait ends at once with that reason, and the links again.
func TestEnvStartWaitConnectFailedLink(t *testing.T) {
	w := newEnvStartWorld(t)
	if err := w.vw.entra.SetConsent(vaultUser, false); err != nil {
		t.Fatal(err)
	}
	c := w.startClone("2m")
	connectLink, _ := c.links(t)
	b := w.browser()
	p := b.get(b.authorize(connectLink))
	at := time.Now()
	wantPage(t, "callback without consent", p, http.StatusForbidden, "Consent is missing")
	err, took := c.finish(t, at)
	out := c.stderr.String()
	if err == nil {
		t.Fatalf("clone after a failed link succeeded:\n%s", out)
	}
	if took > 5*time.Second {
		t.Errorf("the wait ended %v after the failed callback; want within 5s", took)
	}
	if !strings.Contains(out, "consent to Azure DevOps access is missing") || strings.Count(out, "/connect?link=") != 2 {
		t.Errorf("output lacks the reason or the fresh links:\n%s", out)
	}
}

// TestEnvStartWaitConnectIdentityMismatch: someone else signs in through
// the link; the vault refuses it (owner check) and the wait ends at once
// with that reason.
func TestEnvStartWaitConnectIdentityMismatch(t *testing.T) {
	w := newEnvStartWorld(t)
	const mallory = "mallory@contoso.example"
	if _, err := w.vw.entra.AddUser(entraemu.User{UPN: mallory}); err != nil {
		t.Fatal(err)
	}
	if err := w.vw.entra.SetSignedInUser(mallory); err != nil {
		t.Fatal(err)
	}
	c := w.startClone("2m")
	connectLink, _ := c.links(t)
	b := w.browser()
	p := b.get(b.authorize(connectLink))
	at := time.Now()
	wantPage(t, "callback as someone else", p, http.StatusForbidden, mallory)
	err, took := c.finish(t, at)
	out := c.stderr.String()
	if err == nil {
		t.Fatalf("clone after a sign-in by someone else succeeded:\n%s", out)
	}
	if took > 5*time.Second {
		t.Errorf("the wait ended %v after the refused callback; want within 5s", took)
	}
	if !strings.Contains(out, "signed in as "+mallory) || !strings.Contains(out, "not as "+vaultUser) {
		t.Errorf("output lacks the mismatch reason:\n%s", out)
	}
	if cs := w.storedCredentials(); len(cs) != 0 {
		t.Errorf("store holds %d credentials after a refused sign-in; want none", len(cs))
	}
}

func (w *envStartWorld) storedCredentials() []store.Credential {
	w.t.Helper()
	st, err := store.OpenSQLite(context.Background(), w.vw.db, time.Now)
	if err != nil {
		w.t.Fatal(err)
	}
	defer st.Close()
	cs, err := st.ListCredentials(context.Background(), "", "")
	if err != nil {
		w.t.Fatal(err)
	}
	return cs
}
