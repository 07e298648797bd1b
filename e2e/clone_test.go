package e2e

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/azdo-sidecar/azdo-sidecar/e2e/testenv"
)

// cloneEnv is an environment for the `azdo-sidecar clone` binary: standalone
// mode through AZDO_PAT, the emulator reached through AZDO_RESOLVE and
// trusted through AZDO_UPSTREAM_CA_FILE — every setting from the
// environment, as the contract promises for clone.
func cloneEnv(t *testing.T, w *world) *testenv.Git {
	t.Helper()
	g := testenv.NewGit(t)
	g.Setenv("AZDO_PAT", w.pat.Reveal())
	g.Setenv("AZDO_RESOLVE", testenv.ResolveFlag("dev.azure.com", w.emu)+","+testenv.ResolveFlag("contoso.visualstudio.com", w.emu))
	g.Setenv("AZDO_UPSTREAM_CA_FILE", w.emu.CAFile())
	return g
}

// TestCloneCommand runs the built binary on each kind of URL against the
// strict emulator and checks the revision real git sees; then, in the first
// clone, plain git fetches and pushes through a running sidecar.
func TestCloneCommand(t *testing.T) {
	bin := testenv.Binary(t, "azdo-sidecar")
	w := newWorld(t)
	// A branch, a tag and a pull request beside the seeded main.
	seed := testenv.NewGit(t)
	work := filepath.Join(seed.Home, "w")
	seed.Run(t, "clone", "--quiet", w.seed.Dir, work)
	seed.Dir = work
	seed.Run(t, "checkout", "--quiet", "-b", "feature/x")
	if err := os.WriteFile(filepath.Join(work, "x.txt"), []byte("x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	seed.Run(t, "add", "x.txt")
	seed.Run(t, "commit", "--quiet", "-m", "x")
	feature := seed.Run(t, "rev-parse", "HEAD")
	first := seed.Run(t, "rev-list", "--max-parents=0", "HEAD")
	seed.Run(t, "tag", "v1", first)
	seed.Run(t, "push", "--quiet", w.seed.Dir, "feature/x", "v1")
	if err := w.emu.CreatePullRequest("contoso", "Web", "site", 12, "feature/x", "main"); err != nil {
		t.Fatal(err)
	}
	pr := seed.Run(t, "--git-dir", w.seed.Dir, "rev-parse", "refs/pull/12/merge")

	g := cloneEnv(t, w)
	tests := []struct {
		name       string
		url        string
		wantHead   string
		wantBranch string
		wantStdout string // relative to the clone; "" = nothing
	}{
		{"clone URL", repoURL, w.seed.Head, "main", ""},
		{"org@ URL", "https://contoso@dev.azure.com/contoso/Web/_git/site", w.seed.Head, "main", ""},
		{"branch", repoURL + "?version=GBfeature%2Fx", feature, "feature/x", ""},
		{"tag", repoURL + "?version=GTv1", first, "", ""},
		{"commit", repoURL + "/commit/" + first, first, "", ""},
		{"pull request", repoURL + "/pullrequest/12", pr, "pr/12", ""},
		{"file", repoURL + "?path=/x.txt&version=GBfeature/x&_a=contents", feature, "feature/x", "x.txt"},
		{"ssh", "git@ssh.dev.azure.com:v3/contoso/Web/site", w.seed.Head, "main", ""},
		{"legacy", "https://contoso.visualstudio.com/DefaultCollection/Web/_git/site", w.seed.Head, "main", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "site")
			stdout, stderr, err := runSidecar(t, g, bin, "clone", tt.url, dir)
			if err != nil {
				t.Fatalf("azdo-sidecar clone %s: %v\nstderr:\n%s", tt.url, err, stderr)
			}
			if got := g.Run(t, "-C", dir, "rev-parse", "HEAD"); got != tt.wantHead {
				t.Errorf("HEAD = %s; want %s", got, tt.wantHead)
			}
			branch, _ := g.RunIn(dir, "symbolic-ref", "--quiet", "--short", "HEAD")
			if branch = strings.TrimSpace(branch); branch != tt.wantBranch {
				t.Errorf("branch = %q; want %q", branch, tt.wantBranch)
			}
			want := ""
			if tt.wantStdout != "" {
				want = filepath.Join(dir, tt.wantStdout) + "\n"
			}
			if stdout != want {
				t.Errorf("stdout = %q; want %q", stdout, want)
			}
			if !strings.Contains(stderr, "received") {
				t.Errorf("stderr has no transfer progress:\n%s", stderr)
			}
			if strings.Contains(stdout+stderr, w.pat.Reveal()) {
				t.Errorf("the PAT appears in the clone's output")
			}
			origin := g.Run(t, "-C", dir, "config", "remote.origin.url")
			if strings.Contains(origin, "@") || !strings.HasPrefix(origin, "https://") || !strings.Contains(origin, "/_git/site") {
				t.Errorf("remote.origin.url = %q; want the clean HTTPS clone URL", origin)
			}
		})
	}
	assertNoSecret(t, w.emu, w.pat)

	// The clone is a normal git repository: git fetch and git push go
	// through the running sidecar, which injects the credential.
	t.Run("fetch and push through the sidecar", func(t *testing.T) {
		w.git = testenv.NewGit(t) // no direct route to the emulator: only the sidecar
		sc := startSetupSidecar(t, w, bin)
		// Without a token source of its own, clone asks the running
		// sidecar through its socket.
		gs := cloneEnv(t, w)
		gs.Unsetenv("AZDO_PAT")
		dir := filepath.Join(t.TempDir(), "site")
		if _, stderr, err := runSidecar(t, gs, bin, "clone", "--socket", sc.ready.Socket, repoURL, dir); err != nil {
			t.Fatalf("clone through the sidecar's socket: %v\n%s", err, stderr)
		}
		if out, errOut, err := runSidecar(t, w.git, bin, "setup", "--mode", "proxy", "--listen", sc.ready.Proxy,
			"--state-dir", sc.state, "--socket", sc.ready.Socket); err != nil {
			t.Fatalf("setup: %v\n%s%s", err, out, errOut)
		}
		w.git.Run(t, "-C", dir, "fetch", "--quiet", "origin")
		if got := w.git.Run(t, "-C", dir, "rev-parse", "origin/feature/x"); got != feature {
			t.Errorf("after git fetch, origin/feature/x = %s; want %s", got, feature)
		}
		if err := os.WriteFile(filepath.Join(dir, "pushed.txt"), []byte("pushed\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		w.git.Run(t, "-C", dir, "add", "pushed.txt")
		w.git.Run(t, "-C", dir, "commit", "--quiet", "-m", "push after go-git clone")
		w.git.Run(t, "-C", dir, "push", "--quiet")
		head := w.git.Run(t, "-C", dir, "rev-parse", "HEAD")
		if got := seed.Run(t, "--git-dir", w.seed.Dir, "rev-parse", "refs/heads/main"); got != head {
			t.Errorf("emulator main = %s after push; want %s", got, head)
		}
		assertNoSecret(t, w.emu, w.pat)
	})
}

// TestCloneCommandFailures checks the binary's messages and exit codes,
// and that a failed clone leaves nothing behind.
func TestCloneCommandFailures(t *testing.T) {
	bin := testenv.Binary(t, "azdo-sidecar")
	w := newWorld(t)
	g := cloneEnv(t, w)
	tests := []struct {
		name     string
		url      string
		existing bool
		contains []string
	}{
		{"repository not found", "https://dev.azure.com/contoso/Web/_git/nope", false, []string{"repository not found", "https://dev.azure.com/contoso/Web/_git/nope"}},
		{"branch not found", repoURL + "?version=GBmian", false, []string{`branch "mian" not found`, "nearest existing branches: main"}},
		{"not empty", repoURL, true, []string{"already exists and is not empty"}},
		{"not Azure DevOps", "https://dev.azure.com.evil.test/contoso/Web/_git/site", false, []string{"not an Azure DevOps host"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "site")
			if tt.existing {
				if err := os.MkdirAll(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(dir, "mine"), nil, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			stdout, stderr, err := runSidecar(t, g, bin, "clone", tt.url, dir)
			if err == nil {
				t.Fatalf("clone %s succeeded; want failure", tt.url)
			}
			if stdout != "" {
				t.Errorf("stdout = %q; want nothing", stdout)
			}
			for _, s := range tt.contains {
				if !strings.Contains(stderr, s) {
					t.Errorf("stderr = %q; want it to contain %q", stderr, s)
				}
			}
			if strings.Contains(stderr, w.pat.Reveal()) {
				t.Errorf("the PAT appears on stderr")
			}
			if tt.existing {
				if _, err := os.Stat(filepath.Join(dir, "mine")); err != nil {
					t.Errorf("the existing directory was touched: %v", err)
				}
			} else if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s exists after a failed clone (%v)", dir, err)
			}
		})
	}
}
