package e2e

import (
	"bufio"
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/azdo-sidecar/azdo-sidecar/e2e/azdoemu"
	"github.com/azdo-sidecar/azdo-sidecar/e2e/testenv"
	"github.com/azdo-sidecar/azdo-sidecar/secret"
)

// sidecarProc is a running `azdo-sidecar serve`.
type sidecarProc struct {
	cmd     *exec.Cmd
	Proxy   string `json:"proxy"`
	Socket  string `json:"socket"`
	CAFile  string `json:"ca_file"`
	Metrics string `json:"metrics"`
	// ProxyURLFile holds the proxy URL with its credential.
	ProxyURLFile string `json:"proxy_url_file"`
	stderr       *lockedBuffer
	extra        []string // stdout lines after the ready line
	done         chan error
	stopped      bool
}

// startSidecar runs the real binary with args plus loopback listeners and
// temporary socket and state directories, and waits for its ready line.
// env adds variables (AZDO_PAT=...). The test's cleanup sends SIGTERM and
// requires exit code 0.
func startSidecar(t *testing.T, env []string, args ...string) *sidecarProc {
	t.Helper()
	bin := testenv.Binary(t, "azdo-sidecar")
	dir := t.TempDir()
	full := append([]string{"--log-level", "debug", "serve",
		"--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0",
		// A socket where git's credential-cache client may be pointed:
		// setup writes its line only for a directory no one else can
		// create first, which nothing under /tmp is.
		"--socket", filepath.Join(testenv.PrivateDir(t), "run", "sock"), "--state-dir", filepath.Join(dir, "state"),
		"--drain-timeout", "5s"}, args...)
	cmd := exec.Command(bin, full...)
	cmd.Env = append(scBaseEnv(), env...)
	p := &sidecarProc{cmd: cmd, stderr: &lockedBuffer{}, done: make(chan error, 1)}
	cmd.Stderr = p.stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		first := true
		for sc.Scan() {
			if first {
				ready <- sc.Text()
				first = false
				continue
			}
			p.extra = append(p.extra, sc.Text())
		}
		if first {
			close(ready)
		}
		p.done <- cmd.Wait()
	}()
	t.Cleanup(func() { p.stop(t) })
	select {
	case line, ok := <-ready:
		if !ok {
			t.Fatalf("azdo-sidecar serve exited before its ready line; stderr:\n%s", p.stderr)
		}
		if err := json.Unmarshal([]byte(line), p); err != nil {
			t.Fatalf("ready line %q: %v", line, err)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("no ready line after 20s; stderr:\n%s", p.stderr)
	}
	return p
}

// scBaseEnv is the machine's environment without variables that would
// change the sidecar's behaviour (proxies, AZDO_*).
func scBaseEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "AZDO_") || strings.HasSuffix(strings.ToLower(k), "_proxy") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// stop sends SIGTERM and requires a clean exit 0 with nothing more on
// stdout than the ready line.
func (p *sidecarProc) stop(t *testing.T) {
	t.Helper()
	if p.stopped {
		return
	}
	p.stopped = true
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		if err != nil {
			t.Errorf("azdo-sidecar serve after SIGTERM: %v; want exit 0; stderr:\n%s", err, p.stderr)
		}
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		t.Errorf("azdo-sidecar serve did not exit within 15s of SIGTERM")
	}
	if len(p.extra) != 0 {
		t.Errorf("stdout after the ready line: %q; want exactly one line", p.extra)
	}
}

// metrics returns the /metrics text.
func (p *sidecarProc) metrics(t *testing.T) string {
	t.Helper()
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Get("http://" + p.Metrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	return string(b)
}

// useProxy configures g to reach the Azure DevOps hosts through the
// sidecar: URL-scoped proxy and CA, as `setup --mode proxy` does.
func useProxy(t *testing.T, g *testenv.Git, p *sidecarProc, hosts ...string) {
	t.Helper()
	g.Unsetenv("GIT_SSL_CAINFO")
	if len(hosts) == 0 {
		hosts = []string{"https://dev.azure.com/"}
	}
	for _, h := range hosts {
		g.SetConfig(t, "http."+h+".proxy", p.proxyURL(t))
		g.SetConfig(t, "http."+h+".sslCAInfo", p.CAFile)
	}
}

// proxyURL is the proxy URL with its credential, from proxy_url_file.
func (p *sidecarProc) proxyURL(t *testing.T) string {
	t.Helper()
	return testenv.ProxyURL(t, p.ProxyURLFile)
}

// proxyWorld is the emulator with a seeded repository, a PAT, and a sidecar
// in standalone mode in front of it.
type proxyWorld struct {
	emu  *azdoemu.Server
	git  *testenv.Git
	pat  secret.String
	seed testenv.Seeded
	sc   *sidecarProc
}

func newProxyWorld(t *testing.T, args ...string) *proxyWorld {
	t.Helper()
	emu := testenv.StartAzDO(t, azdoemu.Config{})
	w := &proxyWorld{emu: emu, git: testenv.NewGit(t), pat: azdoemu.NewPAT()}
	if err := emu.AddPAT(azdoemu.PAT{Token: w.pat, Org: "contoso"}); err != nil {
		t.Fatal(err)
	}
	w.seed = testenv.Seed(t, emu, "contoso", "Web", "site", testenv.SeedOptions{Commits: 3, Bytes: 16 << 10})
	patFile := filepath.Join(t.TempDir(), "pat")
	if err := os.WriteFile(patFile, []byte(w.pat.Reveal()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	base := []string{"--pat-file", patFile, "--resolve", testenv.ResolveFlag("dev.azure.com", emu), "--upstream-ca-file", emu.CAFile()}
	w.sc = startSidecar(t, nil, append(base, args...)...)
	useProxy(t, w.git, w.sc)
	return w
}

// assertNoLeak checks the sidecar's logs and metrics and the emulator's
// request log for the secret.
func assertNoLeak(t *testing.T, sc *sidecarProc, emu *azdoemu.Server, s secret.String) {
	t.Helper()
	if strings.Contains(sc.stderr.String(), s.Reveal()) {
		t.Errorf("sidecar logs contain the credential")
	}
	if strings.Contains(sc.metrics(t), s.Reveal()) {
		t.Errorf("sidecar /metrics contains the credential")
	}
	if emu != nil {
		assertNoSecret(t, emu, s)
	}
}

func TestProxyStandaloneCloneAndBigPush(t *testing.T) {
	w := newProxyWorld(t)
	dir := filepath.Join(w.git.Home, "site")
	w.git.Run(t, "clone", "--quiet", repoURL, dir)
	if got := w.git.Run(t, "-C", dir, "rev-parse", "HEAD"); got != w.seed.Head {
		t.Fatalf("cloned HEAD = %s; want %s", got, w.seed.Head)
	}

	// 60 MB of incompressible data: far above http.postBuffer, so git
	// sends its probe POST and then streams the pack chunked.
	big := make([]byte, 60<<20)
	if _, err := rand.Read(big); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "big.bin"), big, 0o644); err != nil {
		t.Fatal(err)
	}
	w.git.Run(t, "-C", dir, "add", "big.bin")
	w.git.Run(t, "-C", dir, "commit", "--quiet", "-m", "Add a big file")
	w.git.Run(t, "-C", dir, "push", "--quiet", "origin", "main")
	want := w.git.Run(t, "-C", dir, "rev-parse", "HEAD")
	if got := w.git.Run(t, "--git-dir", w.seed.Dir, "rev-parse", "refs/heads/main"); got != want {
		t.Errorf("emulator main = %s after push; want %s", got, want)
	}

	var bigPost bool
	for _, r := range w.emu.Requests() {
		if r.CredKind != azdoemu.CredBasicPAT || r.CredHash != azdoemu.CredentialHash(w.pat) {
			t.Errorf("request %s %s: cred %s; want the sidecar's PAT", r.Method, r.Path, r.CredKind)
		}
		if strings.HasSuffix(r.Path, "/git-receive-pack") && r.Status == http.StatusOK && r.BodyBytes > 50<<20 {
			bigPost = true
		}
	}
	if !bigPost {
		t.Errorf("no receive-pack POST over 50 MB reached the emulator: %+v", w.emu.Requests())
	}
	// A fresh clone through the proxy gets the big commit back.
	again := filepath.Join(w.git.Home, "again")
	w.git.Run(t, "clone", "--quiet", repoURL, again)
	if got := w.git.Run(t, "-C", again, "rev-parse", "HEAD"); got != want {
		t.Errorf("second clone HEAD = %s; want %s", got, want)
	}
	m := w.sc.metrics(t)
	if !strings.Contains(m, `azdo_sidecar_proxy_injections_total{kind="basic"}`) {
		t.Errorf("/metrics lacks basic injections")
	}
	assertNoLeak(t, w.sc, w.emu, w.pat)
}

func TestProxyRevokedPATFailsFastWithoutPrompt(t *testing.T) {
	w := newProxyWorld(t)
	if out, err := w.git.RunErr("ls-remote", repoURL); err != nil || !strings.Contains(out, w.seed.Head) {
		t.Fatalf("ls-remote = %v\n%s; want success", err, out)
	}
	w.emu.RevokePAT(w.pat)
	start := time.Now()
	out, err := w.git.RunErr("ls-remote", repoURL)
	if err == nil {
		t.Fatalf("ls-remote with a revoked PAT succeeded:\n%s", out)
	}
	if !strings.Contains(out, "remote: azdo-sidecar: Azure DevOps rejected the basic credential for dev.azure.com/contoso") {
		t.Errorf("git output does not explain the rejection:\n%s", out)
	}
	// Standalone mode: the advice is about the PAT, not a Connect flow.
	if !strings.Contains(out, "--pat-file or AZDO_PAT") || strings.Contains(out, "connect again") {
		t.Errorf("git output gives vault-mode advice in standalone mode:\n%s", out)
	}
	if strings.Contains(out, "terminal prompts disabled") || strings.Contains(out, "Username for") {
		t.Errorf("git tried to prompt:\n%s", out)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("git took %s to fail; want fast", d)
	}
	assertNoLeak(t, w.sc, w.emu, w.pat)
}

func TestProxyUnconfiguredExplains(t *testing.T) {
	emu := testenv.StartAzDO(t, azdoemu.Config{})
	testenv.Seed(t, emu, "contoso", "Web", "site", testenv.SeedOptions{})
	g := testenv.NewGit(t)
	sc := startSidecar(t, nil, "--resolve", testenv.ResolveFlag("dev.azure.com", emu), "--upstream-ca-file", emu.CAFile())
	useProxy(t, g, sc)
	out, err := g.RunErr("ls-remote", repoURL)
	if err == nil || !strings.Contains(out, "remote: azdo-sidecar: no credential configured for dev.azure.com/contoso") ||
		!strings.Contains(out, "--pat-file") {
		t.Errorf("ls-remote without a token source = %v\n%s; want a remote: line saying how to configure one", err, out)
	}
	if strings.Contains(out, "terminal prompts disabled") {
		t.Errorf("git tried to prompt:\n%s", out)
	}
	if n := len(emu.Requests()); n != 0 {
		t.Errorf("emulator saw %d requests; want 0", n)
	}
}

func TestProxyStatusCommand(t *testing.T) {
	w := newProxyWorld(t)
	w.git.Run(t, "ls-remote", repoURL)
	bin := testenv.Binary(t, "azdo-sidecar")
	cmd := exec.Command(bin, "status", "--metrics-listen", w.sc.Metrics)
	cmd.Env = append(scBaseEnv(), "GIT_SSL_CAINFO="+w.sc.CAFile)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("status: %v\n%s", err, out)
	}
	for _, want := range []string{"mode:            pat", "dev.azure.com", "contoso", "basic", "contains the sidecar CA"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("status output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(string(out), w.pat.Reveal()) {
		t.Errorf("status output contains the PAT")
	}
	cmd = exec.Command(bin, "status", "--json", "--metrics-listen", w.sc.Metrics)
	cmd.Env = append(scBaseEnv(), "GIT_SSL_CAINFO=/etc/ssl/certs/ca-certificates.crt")
	out, err = cmd.Output()
	if err != nil {
		t.Fatalf("status --json: %v", err)
	}
	var st struct {
		Mode string `json:"mode"`
		CA   struct {
			Set   bool `json:"set"`
			HasCA bool `json:"contains_sidecar_ca"`
		} `json:"git_ssl_cainfo"`
	}
	if err := json.Unmarshal(out, &st); err != nil || st.Mode != "pat" || !st.CA.Set || st.CA.HasCA {
		t.Errorf("status --json = %s (%v); want mode pat, GIT_SSL_CAINFO set without the CA", out, err)
	}
}

// TestProxySelfHostedIPHost clones from a self-hosted server addressed by
// IP: the leaf carries the IP in its SANs with an empty subject, which is
// what GnuTLS (Debian's git) needs under the CA's name constraints.
func TestProxySelfHostedIPHost(t *testing.T) {
	emu := testenv.StartAzDO(t, azdoemu.Config{})
	pat := azdoemu.NewPAT()
	if err := emu.AddPAT(azdoemu.PAT{Token: pat, Org: "contoso"}); err != nil {
		t.Fatal(err)
	}
	seed := testenv.Seed(t, emu, "contoso", "Web", "site", testenv.SeedOptions{Commits: 2})
	host := emu.Addr()
	if emu.Port() == 443 {
		host = emu.IP()
	}
	g := testenv.NewGit(t)
	sc := startSidecar(t, []string{"AZDO_PAT=" + pat.Reveal()}, "--host", host, "--upstream-ca-file", emu.CAFile())
	useProxy(t, g, sc, "https://"+host+"/")
	dir := filepath.Join(g.Home, "site")
	url := "https://" + host + "/contoso/Web/_git/site"
	if out, err := g.RunErr("clone", "--quiet", url, dir); err != nil {
		t.Fatalf("clone %s through the proxy: %v\n%s", url, err, out)
	}
	if got := g.Run(t, "-C", dir, "rev-parse", "HEAD"); got != seed.Head {
		t.Errorf("HEAD = %s; want %s", got, seed.Head)
	}
	for _, r := range emu.Requests() {
		if r.CredKind != azdoemu.CredBasicPAT {
			t.Errorf("request %s %s: cred %s; want basic-pat", r.Method, r.Path, r.CredKind)
		}
	}
	assertNoLeak(t, sc, emu, pat)
}

// TestProxySIGTERMDrainsGitInProgress: SIGTERM arrives while git waits for
// its first answer; the clone (several requests) still completes and the
// sidecar exits 0 soon after.
func TestProxySIGTERMDrainsGitInProgress(t *testing.T) {
	w := newProxyWorld(t)
	w.emu.InjectFault(azdoemu.Fault{Kind: azdoemu.FaultDelay, Delay: 1500 * time.Millisecond, PathContains: "/info/refs"})
	done := make(chan error, 1)
	var out string
	go func() {
		var err error
		out, err = w.git.RunErr("clone", "--quiet", repoURL, filepath.Join(w.git.Home, "drained"))
		done <- err
	}()
	time.Sleep(500 * time.Millisecond)
	start := time.Now()
	w.sc.stop(t) // SIGTERM, and requires exit 0
	if err := <-done; err != nil {
		t.Fatalf("clone across SIGTERM: %v\n%s", err, out)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("drain took %s; want it to end soon after the clone", d)
	}
}
