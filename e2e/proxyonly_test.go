package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/azdo-sidecar/azdo-sidecar/e2e/testenv"
)

// TestProxyOnly: an environment created with --proxy-only. git credential
// fill (our helper and git's credential-cache client on the sidecar's
// socket) and azdo-sidecar credential get print no password; the helper
// tells git to use the proxy; azdo-sidecar clone goes through the proxy by
// itself; plain git through the proxy works; status says proxy-only; and
// neither the token nor the PAT behind it reaches a file or a process
// environment of the environment.
func TestProxyOnly(t *testing.T) {
	w := newPolicyWorld(t, []string{"--proxy-only"})
	secretPAT := w.pat.Reveal()

	// Plain git through the proxy.
	dir := filepath.Join(w.git.Home, "site")
	w.git.Run(t, "clone", "--quiet", repoURL, dir)

	helper := testenv.Binary(t, "git-credential-azdo")
	sc := testenv.Binary(t, "azdo-sidecar")
	fill := "protocol=https\nhost=dev.azure.com\npath=contoso/Web/_git/site\n\n"
	for name, h := range map[string]string{
		"go helper":    helper + " --socket " + w.sc.Socket,
		"cache client": "cache --socket " + w.sc.Socket,
	} {
		t.Run(name, func(t *testing.T) {
			g := testenv.NewGit(t)
			g.SetConfig(t, "credential.helper", h)
			g.SetConfig(t, "credential.interactive", "never")
			cmd := g.Command("git", "credential", "fill")
			cmd.Stdin = strings.NewReader(fill)
			out, _ := cmd.CombinedOutput()
			if strings.Contains(string(out), "password=") || strings.Contains(string(out), secretPAT) {
				t.Errorf("git credential fill printed a password:\n%s", out)
			}
			if name == "go helper" && !strings.Contains(string(out), "this environment is proxy-only") {
				t.Errorf("git credential fill does not say why:\n%s", out)
			}
		})
	}
	cmd := exec.Command(sc, "credential", "--socket", w.sc.Socket, "get")
	cmd.Env = scBaseEnv()
	cmd.Stdin = strings.NewReader(fill)
	out, _ := cmd.CombinedOutput()
	if strings.Contains(string(out), "password") || !strings.Contains(string(out), "proxy-only") {
		t.Errorf("azdo-sidecar credential get = %q; want no password and the proxy-only line", out)
	}

	// Clone at environment start: through the proxy, no token.
	cdir := filepath.Join(t.TempDir(), "started")
	cmd = exec.Command(sc, "clone", "--socket", w.sc.Socket, repoURL, cdir)
	cmd.Env = scBaseEnv()
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "Cloned") {
		t.Fatalf("azdo-sidecar clone in a proxy-only environment: %v\n%s", err, out)
	}
	if got := w.git.Run(t, "-C", cdir, "rev-parse", "HEAD"); got != w.seed.Head {
		t.Errorf("clone HEAD = %s; want %s", got, w.seed.Head)
	}

	// status says so.
	cmd = exec.Command(sc, "status", "--socket", w.sc.Socket)
	cmd.Env = scBaseEnv()
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "proxy-only:") {
		t.Errorf("status: %v\n%s", err, out)
	}

	// No token in a file or a process environment of the environment.
	assertNoSecretInEnvironment(t, []string{w.git.Home, dir, cdir}, append(w.git.Env(), os.Environ()...),
		[]int{w.sc.cmd.Process.Pid}, secretPAT, w.env)
	assertNoLeak(t, w.sc, w.emu, w.pat)
}

// TestProxyOnlyServeFlag: serve --proxy-only tightens an environment whose
// policy does not ask for it.
func TestProxyOnlyServeFlag(t *testing.T) {
	w := newPolicyWorld(t, nil, "--proxy-only")
	cmd := exec.Command(testenv.Binary(t, "azdo-sidecar"), "credential", "--socket", w.sc.Socket, "get")
	cmd.Env = scBaseEnv()
	cmd.Stdin = strings.NewReader("protocol=https\nhost=dev.azure.com\npath=contoso/Web/_git/site\n\n")
	out, _ := cmd.CombinedOutput()
	if strings.Contains(string(out), "password") || !strings.Contains(string(out), "proxy-only") {
		t.Errorf("credential get with serve --proxy-only = %q", out)
	}
	w.git.Run(t, "clone", "--quiet", repoURL, filepath.Join(t.TempDir(), "site"))
}
