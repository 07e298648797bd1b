package e2e

// A black-box audit of `azdo-sidecar clone` against docs/azure-devops.md
// ("Hosts and URLs") and the contract: every documented URL shape, the
// host rules, the default directory, the flags and their AZDO_*
// variables, and the failures — all through the built binary against the
// strict emulator, checked with real git.

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/azdo-sidecar/azdo-sidecar/e2e/azdoemu"
	"github.com/azdo-sidecar/azdo-sidecar/e2e/entraemu"
	"github.com/azdo-sidecar/azdo-sidecar/e2e/testenv"
	"github.com/azdo-sidecar/azdo-sidecar/secret"
)

// auditSelfHosted is the self-hosted Azure DevOps Server of the audit
// world; its virtual directory is auditVirtualDir.
const (
	auditSelfHosted = "tfs.example.test"
	auditVirtualDir = "tfs"
	auditSite       = "https://dev.azure.com/contoso/Web/_git/site"
)

// auditWorld is one emulator (dev.azure.com, contoso.visualstudio.com and
// a self-hosted server with a virtual directory) holding repositories
// whose heads all differ, so that a clone of the wrong one shows.
type auditWorld struct {
	emu *azdoemu.Server
	pat secret.String
	bin string
	g   *testenv.Git // the clone's environment: AZDO_PAT, AZDO_RESOLVE, AZDO_UPSTREAM_CA_FILE

	site     testenv.Seeded // contoso/Web/site: main and the revisions below
	first    string         // first commit of main: lightweight tag v1
	feature  string         // branch feature/x, with x.txt
	plus     string         // branch fix+1
	release  string         // commit of the annotated tag release/1.0 (main)
	pr       string         // refs/pull/12/merge (feature/x into main)
	named    testenv.Seeded // contoso/site/site: reached project-less
	spaces   testenv.Seeded // contoso/My Project/My Repo
	dotGit   testenv.Seeded // contoso/Web/lib.git
	noDotGit testenv.Seeded // contoso/Web/lib
	server   testenv.Seeded // DefaultCollection/Proj/srv on the self-hosted server
	unicode  testenv.Seeded // contoso/Projét & Co/répo-1
}

func newAuditWorld(t *testing.T) *auditWorld {
	t.Helper()
	emu := testenv.StartAzDO(t, azdoemu.Config{SelfHosted: []string{auditSelfHosted}, VirtualDir: auditVirtualDir})
	w := &auditWorld{emu: emu, pat: azdoemu.NewPAT(), bin: testenv.Binary(t, "azdo-sidecar")}
	if err := emu.AddPAT(azdoemu.PAT{Token: w.pat}); err != nil {
		t.Fatal(err)
	}
	w.site = testenv.Seed(t, emu, "contoso", "Web", "site", testenv.SeedOptions{Commits: 2, Seed: 10})
	w.named = testenv.Seed(t, emu, "contoso", "site", "site", testenv.SeedOptions{Seed: 11})
	w.spaces = testenv.Seed(t, emu, "contoso", "My Project", "My Repo", testenv.SeedOptions{Seed: 12})
	w.dotGit = testenv.Seed(t, emu, "contoso", "Web", "lib.git", testenv.SeedOptions{Seed: 13})
	w.noDotGit = testenv.Seed(t, emu, "contoso", "Web", "lib", testenv.SeedOptions{Seed: 14})
	w.server = testenv.Seed(t, emu, "DefaultCollection", "Proj", "srv", testenv.SeedOptions{Commits: 2, Seed: 15})
	w.unicode = testenv.Seed(t, emu, "contoso", "Projét & Co", "répo-1", testenv.SeedOptions{Seed: 16})

	seed := testenv.NewGit(t)
	work := filepath.Join(seed.Home, "w")
	seed.Run(t, "clone", "--quiet", w.site.Dir, work)
	seed.Dir = work
	w.first = seed.Run(t, "rev-list", "--max-parents=0", "HEAD")
	seed.Run(t, "tag", "v1", w.first)
	writeFile(t, filepath.Join(work, "docs", "READ ME.md"), "read me\n")
	seed.Run(t, "add", ".")
	seed.Run(t, "commit", "--quiet", "-m", "docs")
	w.release = seed.Run(t, "rev-parse", "HEAD")
	seed.Run(t, "tag", "-a", "-m", "release 1.0", "release/1.0")
	seed.Run(t, "checkout", "--quiet", "-b", "feature/x")
	writeFile(t, filepath.Join(work, "x.txt"), "x\n")
	seed.Run(t, "add", "x.txt")
	seed.Run(t, "commit", "--quiet", "-m", "x")
	w.feature = seed.Run(t, "rev-parse", "HEAD")
	seed.Run(t, "checkout", "--quiet", "-b", "fix+1", "main")
	seed.Run(t, "commit", "--quiet", "--allow-empty", "-m", "fix 1")
	w.plus = seed.Run(t, "rev-parse", "HEAD")
	seed.Run(t, "push", "--quiet", w.site.Dir, "main", "feature/x", "fix+1", "v1", "release/1.0")
	w.site.Head = w.release
	if err := emu.CreatePullRequest("contoso", "Web", "site", 12, "feature/x", "main"); err != nil {
		t.Fatal(err)
	}
	w.pr = seed.Run(t, "--git-dir", w.site.Dir, "rev-parse", "refs/pull/12/merge")

	w.g = testenv.NewGit(t)
	w.g.Setenv("AZDO_PAT", w.pat.Reveal())
	w.g.Setenv("AZDO_RESOLVE", strings.Join([]string{
		testenv.ResolveFlag("dev.azure.com", emu),
		testenv.ResolveFlag("contoso.visualstudio.com", emu),
		testenv.ResolveFlag(auditSelfHosted, emu),
	}, ","))
	w.g.Setenv("AZDO_UPSTREAM_CA_FILE", emu.CAFile())
	return w
}

func writeFile(t *testing.T, name, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// writeSecretFile writes a PAT or token file as its owner alone may read
// it: the sidecar refuses one others can read (issue 11).
func writeSecretFile(t *testing.T, name, content string) {
	t.Helper()
	writeFile(t, name, content)
	if err := os.Chmod(name, 0o600); err != nil {
		t.Fatal(err)
	}
}

// auditRun runs the binary in dir with the environment of g plus env
// (KEY=VALUE; an empty value unsets KEY), bounded by a timeout.
func auditRun(t *testing.T, g *testenv.Git, bin, dir string, env []string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = auditEnv(g, env)
	cmd.Dir = dir
	cmd.WaitDelay = 5 * time.Second
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}

func auditEnv(g *testenv.Git, env []string) []string {
	m := map[string]string{}
	for _, kv := range append(g.Env(), env...) {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	var out []string
	for k, v := range m {
		if v != "" {
			out = append(out, k+"="+v)
		}
	}
	return out
}

// TestAuditCloneURLShapes clones every URL shape of "Hosts and URLs"
// without a DIR, so that each also checks the default directory, and
// checks with real git the revision, the branch, origin and stdout.
func TestAuditCloneURLShapes(t *testing.T) {
	w := newAuditWorld(t)
	const (
		site    = auditSite
		spaces  = "https://dev.azure.com/contoso/My%20Project/_git/My%20Repo"
		legacy  = "https://contoso.visualstudio.com/Web/_git/site"
		legacyD = "https://contoso.visualstudio.com/DefaultCollection/Web/_git/site"
		named   = "https://dev.azure.com/contoso/_git/site"
		server  = "https://" + auditSelfHosted + "/" + auditVirtualDir + "/DefaultCollection/Proj/_git/srv"
	)
	selfHosted := []string{"AZDO_HOST=" + auditSelfHosted}
	tests := []struct {
		name       string
		url        string
		env        []string
		args       []string // flags before the URL
		wantDir    string   // the default directory, in the working directory
		wantHead   string
		wantBranch string // "" = detached
		wantOrigin string
		wantFile   string // printed on stdout, relative to the clone; "" = stdout empty
	}{
		{"clone URL", site, nil, nil, "site", w.release, "main", site, ""},
		{"org@ clone URL", "https://contoso@dev.azure.com/contoso/Web/_git/site", nil, nil, "site", w.release, "main", site, ""},
		{"upper-case host and :443", "https://DEV.Azure.COM:443/contoso/Web/_git/site", nil, nil, "site", w.release, "main", site, ""},
		{"legacy", legacy, nil, nil, "site", w.release, "main", legacy, ""},
		{"legacy DefaultCollection", legacyD, nil, nil, "site", w.release, "main", legacyD, ""},
		{"legacy upper-case host, :443, org@", "https://contoso@Contoso.VisualStudio.com:443/Web/_git/site", nil, nil, "site", w.release, "main", legacy, ""},
		{"project-less", named, nil, nil, "site", w.named.Head, "main", named, ""},
		{"project-less org@", "https://contoso@dev.azure.com/contoso/_git/site", nil, nil, "site", w.named.Head, "main", named, ""},
		{"legacy project-less", "https://contoso.visualstudio.com/_git/site", nil, nil, "site", w.named.Head, "main", "https://contoso.visualstudio.com/_git/site", ""},
		{"_optimized", "https://dev.azure.com/contoso/Web/_git/_optimized/site", nil, nil, "site", w.release, "main", site, ""},
		{"_full", "https://dev.azure.com/contoso/Web/_git/_full/site", nil, nil, "site", w.release, "main", site, ""},
		{"spaces %20, decoded once", spaces, nil, nil, "My Repo", w.spaces.Head, "main", spaces, ""},
		{"non-ASCII and &", "https://dev.azure.com/contoso/Proj%C3%A9t%20%26%20Co/_git/r%C3%A9po-1", nil, nil, "répo-1", w.unicode.Head, "main", "https://dev.azure.com/contoso/Proj%C3%A9t%20&%20Co/_git/r%C3%A9po-1", ""},
		{".git not stripped", "https://dev.azure.com/contoso/Web/_git/lib.git", nil, nil, "lib", w.dotGit.Head, "main", "https://dev.azure.com/contoso/Web/_git/lib.git", ""},
		{"without .git", "https://dev.azure.com/contoso/Web/_git/lib", nil, nil, "lib", w.noDotGit.Head, "main", "https://dev.azure.com/contoso/Web/_git/lib", ""},
		{"self-hosted, AZDO_HOST", server, selfHosted, nil, "srv", w.server.Head, "main", server, ""},
		{"self-hosted, --host", server, nil, []string{"--host", auditSelfHosted}, "srv", w.server.Head, "main", server, ""},
		{"self-hosted branch", server + "?version=GBmain", selfHosted, nil, "srv", w.server.Head, "main", server, ""},
		{"ssh scp-like", "git@ssh.dev.azure.com:v3/contoso/Web/site", nil, nil, "site", w.release, "main", site, ""},
		{"ssh URL", "ssh://git@ssh.dev.azure.com/v3/contoso/Web/site", nil, nil, "site", w.release, "main", site, ""},
		{"ssh %20", "git@ssh.dev.azure.com:v3/contoso/My%20Project/My%20Repo", nil, nil, "My Repo", w.spaces.Head, "main", spaces, ""},
		{"vs-ssh", "contoso@vs-ssh.visualstudio.com:v3/contoso/Web/site", nil, nil, "site", w.release, "main", legacy, ""},
		{"ssh self-hosted", "ssh://" + auditSelfHosted + ":22/" + auditVirtualDir + "/DefaultCollection/Proj/_git/srv", selfHosted, nil, "srv", w.server.Head, "main", server, ""},
		{"branch", site + "?version=GBfeature/x", nil, nil, "site", w.feature, "feature/x", site, ""},
		{"branch %2F", site + "?version=GBfeature%2Fx&_a=contents", nil, nil, "site", w.feature, "feature/x", site, ""},
		{"branch with +", site + "?version=GBfix%2B1", nil, nil, "site", w.plus, "fix+1", site, ""},
		{"tag", site + "?version=GTv1", nil, nil, "site", w.first, "", site, ""},
		{"annotated tag with slash", site + "?version=GTrelease/1.0", nil, nil, "site", w.release, "", site, ""},
		{"annotated tag %2F", site + "?version=GTrelease%2F1.0", nil, nil, "site", w.release, "", site, ""},
		{"commit page", site + "/commit/" + w.feature, nil, nil, "site", w.feature, "", site, ""},
		{"commit version", site + "?version=GC" + w.first, nil, nil, "site", w.first, "", site, ""},
		{"pull request", site + "/pullrequest/12", nil, nil, "site", w.pr, "pr/12", site, ""},
		{"legacy pull request", legacyD + "/pullrequest/12", nil, nil, "site", w.pr, "pr/12", legacyD, ""},
		{"file", site + "?path=/x.txt&version=GBfeature/x", nil, nil, "site", w.feature, "feature/x", site, "x.txt"},
		{"file with space, encoded", site + "?path=%2Fdocs%2FREAD%20ME.md&version=GBmain&_a=contents", nil, nil, "site", w.release, "main", site, "docs/READ ME.md"},
		{"file on the default branch", spaces + "?path=/data-12-0.bin", nil, nil, "My Repo", w.spaces.Head, "main", spaces, "data-12-0.bin"},
		{"file cannot leave the clone", site + "?path=/../../x.txt&version=GBfeature%2Fx", nil, nil, "site", w.feature, "feature/x", site, "x.txt"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cwd := t.TempDir()
			stdout, stderr, err := auditRun(t, w.g, w.bin, cwd, tt.env, append(append([]string{"clone"}, tt.args...), tt.url)...)
			if err != nil {
				t.Fatalf("azdo-sidecar clone %s: %v\nstderr:\n%s", tt.url, err, stderr)
			}
			dir := filepath.Join(cwd, tt.wantDir)
			if entries, _ := os.ReadDir(cwd); len(entries) != 1 || entries[0].Name() != tt.wantDir {
				var names []string
				for _, e := range entries {
					names = append(names, e.Name())
				}
				t.Fatalf("clone %s without DIR created %q; want [%q]", tt.url, names, tt.wantDir)
			}
			if got := w.g.Run(t, "-C", dir, "rev-parse", "HEAD"); got != tt.wantHead {
				t.Errorf("clone %s: HEAD = %s; want %s", tt.url, got, tt.wantHead)
			}
			branch, _ := w.g.RunIn(dir, "symbolic-ref", "--quiet", "--short", "HEAD")
			if branch = strings.TrimSpace(branch); branch != tt.wantBranch {
				t.Errorf("clone %s: branch = %q; want %q", tt.url, branch, tt.wantBranch)
			}
			if got := w.g.Run(t, "-C", dir, "config", "remote.origin.url"); got != tt.wantOrigin {
				t.Errorf("clone %s: remote.origin.url = %q; want %q", tt.url, got, tt.wantOrigin)
			}
			if st := w.g.Run(t, "-C", dir, "status", "--porcelain"); st != "" {
				t.Errorf("clone %s: git status --porcelain = %q; want a clean tree", tt.url, st)
			}
			want := ""
			if tt.wantFile != "" {
				want = filepath.Join(dir, filepath.FromSlash(tt.wantFile)) + "\n"
				if _, err := os.Stat(strings.TrimSuffix(want, "\n")); err != nil {
					t.Errorf("clone %s: the printed file: %v", tt.url, err)
				}
			}
			if stdout != want {
				t.Errorf("clone %s: stdout = %q; want %q", tt.url, stdout, want)
			}
			if !strings.Contains(stderr, "received") {
				t.Errorf("clone %s: stderr has no progress:\n%s", tt.url, stderr)
			}
			cfg, _ := os.ReadFile(filepath.Join(dir, ".git", "config"))
			if strings.Contains(stdout+stderr+string(cfg), w.pat.Reveal()) {
				t.Errorf("clone %s: the PAT appears in the output or .git/config", tt.url)
			}
		})
	}
	assertNoSecret(t, w.emu, w.pat)
}

// TestAuditCloneRepositoryStates checks a repository whose default branch
// is not main, and an empty one, which git clones with a warning.
func TestAuditCloneRepositoryStates(t *testing.T) {
	w := newAuditWorld(t)
	dev := testenv.Seed(t, w.emu, "contoso", "Web", "dev", testenv.SeedOptions{Branch: "develop", Seed: 30})
	if out, err := exec.Command("git", "--git-dir", dev.Dir, "symbolic-ref", "HEAD", "refs/heads/develop").CombinedOutput(); err != nil {
		t.Fatalf("set HEAD: %v\n%s", err, out)
	}
	if _, err := w.emu.CreateRepo("contoso", "Web", "empty"); err != nil {
		t.Fatal(err)
	}

	cwd := t.TempDir()
	if _, stderr, err := auditRun(t, w.g, w.bin, cwd, nil, "clone", "https://dev.azure.com/contoso/Web/_git/dev"); err != nil {
		t.Fatalf("clone dev: %v\n%s", err, stderr)
	}
	dir := filepath.Join(cwd, "dev")
	if got := w.g.Run(t, "-C", dir, "symbolic-ref", "--short", "HEAD"); got != "develop" {
		t.Errorf("clone of a repository whose HEAD is develop: branch %q; want develop", got)
	}
	if got := w.g.Run(t, "-C", dir, "rev-parse", "HEAD"); got != dev.Head {
		t.Errorf("HEAD = %s; want %s", got, dev.Head)
	}
	if got := w.g.Run(t, "-C", dir, "symbolic-ref", "refs/remotes/origin/HEAD"); got != "refs/remotes/origin/develop" {
		t.Errorf("origin/HEAD = %q; want refs/remotes/origin/develop", got)
	}

	stdout, stderr, err := auditRun(t, w.g, w.bin, cwd, nil, "clone", "https://dev.azure.com/contoso/Web/_git/empty")
	if err != nil {
		t.Fatalf("clone of an empty repository: %v\n%s", err, stderr)
	}
	if !strings.Contains(strings.ToLower(stderr), "empty repository") || stdout != "" {
		t.Errorf("clone of an empty repository: stdout %q, stderr %q; want git's warning on stderr only", stdout, stderr)
	}
	if got := w.g.Run(t, "-C", filepath.Join(cwd, "empty"), "config", "remote.origin.url"); got != "https://dev.azure.com/contoso/Web/_git/empty" {
		t.Errorf("empty clone: remote.origin.url = %q", got)
	}
	_, stderr, err = auditRun(t, w.g, w.bin, t.TempDir(), nil, "clone", "https://dev.azure.com/contoso/Web/_git/empty?version=GBmain")
	if err == nil || !strings.Contains(stderr, "empty") {
		t.Errorf("clone of a branch of an empty repository = %v, %q; want a failure saying it is empty", err, stderr)
	}
}

// TestAuditCloneHostRules checks that only dev.azure.com, one label before
// .visualstudio.com and the configured servers are Azure DevOps: other
// URLs fail before any request, create nothing and name the rule.
func TestAuditCloneHostRules(t *testing.T) {
	w := newAuditWorld(t)
	tests := []struct {
		name string
		url  string
	}{
		{"subdomain of dev.azure.com", "https://test.dev.azure.com/contoso/Web/_git/site"},
		{"bare visualstudio.com", "https://visualstudio.com/Web/_git/site"},
		{"suffix lookalike", "https://dev.azure.com.evil.test/contoso/Web/_git/site"},
		{"prefix lookalike", "https://evil-dev.azure.com/contoso/Web/_git/site"},
		{"two labels before visualstudio.com", "https://a.b.visualstudio.com/Web/_git/site"},
		{"dev.azure.com on another port", "https://dev.azure.com:8443/contoso/Web/_git/site"},
		{"self-hosted without --host", "https://" + auditSelfHosted + "/tfs/DefaultCollection/Proj/_git/srv"},
		{"ssh lookalike", "git@ssh.dev.azure.com.evil.test:v3/contoso/Web/site"},
		{"ssh elsewhere", "git@github.com:contoso/site.git"},
	}
	before := len(w.emu.Requests())
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cwd := t.TempDir()
			stdout, stderr, err := auditRun(t, w.g, w.bin, cwd, nil, "clone", tt.url)
			if err == nil {
				t.Fatalf("clone %s succeeded; want a refusal", tt.url)
			}
			if !strings.Contains(stderr, "not an Azure DevOps") {
				t.Errorf("clone %s: stderr = %q; want it to say the host is not Azure DevOps", tt.url, stderr)
			}
			if stdout != "" {
				t.Errorf("clone %s: stdout = %q; want nothing", tt.url, stdout)
			}
			if entries, _ := os.ReadDir(cwd); len(entries) != 0 {
				t.Errorf("clone %s created %d entries in the working directory; want none", tt.url, len(entries))
			}
		})
	}
	if n := len(w.emu.Requests()) - before; n != 0 {
		t.Errorf("the emulator saw %d requests for hosts that are not Azure DevOps; want 0", n)
	}
}

// TestAuditCloneFlagsFromEnvironment checks --depth and
// --recurse-submodules, their AZDO_* variables, the config file, and the
// precedence flag > environment > file.
func TestAuditCloneFlagsFromEnvironment(t *testing.T) {
	w := newAuditWorld(t)
	// contoso/Web/super records lib (relative URL) and lib.git (SSH URL)
	// as submodules, and one on GitHub that clone skips.
	super := testenv.Seed(t, w.emu, "contoso", "Web", "super", testenv.SeedOptions{Seed: 20})
	sg := testenv.NewGit(t)
	work := filepath.Join(sg.Home, "super")
	sg.Run(t, "clone", "--quiet", super.Dir, work)
	sg.Dir = work
	sg.Run(t, "update-index", "--add", "--cacheinfo", "160000,"+w.noDotGit.Head+",lib")
	sg.Run(t, "update-index", "--add", "--cacheinfo", "160000,"+w.dotGit.Head+",vendor/lib-git")
	sg.Run(t, "update-index", "--add", "--cacheinfo", "160000,"+w.noDotGit.Head+",gh")
	writeFile(t, filepath.Join(work, ".gitmodules"), "[submodule \"lib\"]\n\tpath = lib\n\turl = ../lib\n"+
		"[submodule \"lib-git\"]\n\tpath = vendor/lib-git\n\turl = git@ssh.dev.azure.com:v3/contoso/Web/lib.git\n"+
		"[submodule \"gh\"]\n\tpath = gh\n\turl = https://github.com/contoso/gh\n")
	sg.Run(t, "add", ".gitmodules")
	sg.Run(t, "commit", "--quiet", "-m", "submodules")
	sg.Run(t, "push", "--quiet", super.Dir, "HEAD:refs/heads/main")

	patFile := filepath.Join(t.TempDir(), "pat")
	writeSecretFile(t, patFile, w.pat.Reveal()+"\n")
	cfgDepth1 := filepath.Join(t.TempDir(), "azdo.yaml")
	writeFile(t, cfgDepth1, "depth: 1\nhost: ["+auditSelfHosted+"]\n")
	server := "https://" + auditSelfHosted + "/tfs/DefaultCollection/Proj/_git/srv"
	// A proxy that tunnels every CONNECT to the emulator: reached only
	// through it, the clone needs no --resolve.
	tun := "http://" + testenv.StartTunnel(t, w.emu.Addr()).Addr()

	count := func(t *testing.T, dir string) int {
		n, err := strconv.Atoi(w.g.Run(t, "-C", dir, "rev-list", "--count", "HEAD"))
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	tests := []struct {
		name      string
		env       []string
		args      []string
		url       string
		wantCount int // commits in HEAD's history; 0: not checked
		wantSubs  bool
	}{
		{"full history", nil, nil, auditSite, 3, false},
		{"--depth 1", nil, []string{"--depth", "1"}, auditSite, 1, false},
		{"AZDO_DEPTH", []string{"AZDO_DEPTH=1"}, nil, auditSite, 1, false},
		{"flag over AZDO_DEPTH", []string{"AZDO_DEPTH=1"}, []string{"--depth", "2"}, auditSite, 2, false},
		{"config file", nil, []string{"--config", cfgDepth1}, server, 1, false},
		{"AZDO_CONFIG", []string{"AZDO_CONFIG=" + cfgDepth1}, nil, server, 1, false},
		{"AZDO_DEPTH over the file", []string{"AZDO_CONFIG=" + cfgDepth1, "AZDO_DEPTH=2"}, nil, auditSite, 2, false},
		{"AZDO_PAT_FILE", []string{"AZDO_PAT=", "AZDO_PAT_FILE=" + patFile}, nil, auditSite, 3, false},
		{"AZDO_HOST list", []string{"AZDO_HOST=other.example.test:8443," + auditSelfHosted}, nil, server, 0, false},
		{"--upstream-proxy", []string{"AZDO_RESOLVE="}, []string{"--upstream-proxy", tun}, auditSite, 3, false},
		{"AZDO_UPSTREAM_PROXY", []string{"AZDO_RESOLVE=", "AZDO_UPSTREAM_PROXY=" + tun}, nil, auditSite, 3, false},
		{"HTTPS_PROXY", []string{"AZDO_RESOLVE=", "HTTPS_PROXY=" + tun}, nil, auditSite, 3, false},
		{"--recurse-submodules", nil, []string{"--recurse-submodules"}, "https://dev.azure.com/contoso/Web/_git/super", 0, true},
		{"AZDO_RECURSE_SUBMODULES", []string{"AZDO_RECURSE_SUBMODULES=true"}, nil, "https://dev.azure.com/contoso/Web/_git/super", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "clone")
			args := append(append([]string{"clone"}, tt.args...), tt.url, dir)
			_, stderr, err := auditRun(t, w.g, w.bin, t.TempDir(), tt.env, args...)
			if err != nil {
				t.Fatalf("clone %v: %v\nstderr:\n%s", args, err, stderr)
			}
			if tt.wantCount > 0 {
				if got := count(t, dir); got != tt.wantCount {
					t.Errorf("clone %v: %d commits in history; want %d", args, got, tt.wantCount)
				}
			}
			status, _ := w.g.RunIn(dir, "submodule", "status")
			wantStatus := []string{"-" + w.noDotGit.Head + " gh"}
			if tt.wantSubs {
				wantStatus = []string{" " + w.noDotGit.Head + " lib", " " + w.dotGit.Head + " vendor/lib-git", "-" + w.noDotGit.Head + " gh"}
				if got := w.g.Run(t, "-C", dir, "config", "submodule.lib-git.url"); got != "https://dev.azure.com/contoso/Web/_git/lib.git" {
					t.Errorf("submodule.lib-git.url = %q; want the HTTPS clone URL", got)
				}
			}
			if strings.Contains(tt.url, "super") {
				for _, s := range wantStatus {
					if !strings.Contains(status, s) {
						t.Errorf("clone %v: git submodule status =\n%s\nwant a line %q", args, status, s)
					}
				}
			}
		})
	}
}

// TestAuditCloneFailures checks each failure's message and that no
// directory is left half-written — nor the parents created for it.
func TestAuditCloneFailures(t *testing.T) {
	w := newAuditWorld(t)
	empty := t.TempDir()
	notEmpty := t.TempDir()
	writeFile(t, filepath.Join(notEmpty, "mine"), "mine\n")
	file := filepath.Join(t.TempDir(), "file")
	writeFile(t, file, "a file\n")
	tests := []struct {
		name     string
		url      string
		dir      string // "" = a new directory a/b/site
		contains []string
	}{
		{"repository not found", "https://dev.azure.com/contoso/Web/_git/nope", "", []string{"repository not found", "https://dev.azure.com/contoso/Web/_git/nope"}},
		{"project not found", "https://dev.azure.com/contoso/Nope/_git/site", "", []string{"repository not found"}},
		{".git suffix is another repository", "https://dev.azure.com/contoso/Web/_git/site.git", "", []string{"repository not found", "/_git/site.git"}},
		{"+ is not a space", "https://dev.azure.com/contoso/My+Project/_git/My+Repo", "", []string{"repository not found"}},
		{"branch not found", auditSite + "?version=GBfeature/y", "", []string{`branch "feature/y" not found`, "nearest existing branches: feature/x"}},
		{"tag not found", auditSite + "?version=GTrelease/2.0", "", []string{`tag "release/2.0" not found`, "release/1.0"}},
		{"pull request not found", auditSite + "/pullrequest/13", "", []string{`pull request "13" not found`, "12"}},
		{"commit not found", auditSite + "/commit/" + strings.Repeat("0a", 20), "", []string{"not found", strings.Repeat("0a", 20)}},
		{"not empty", auditSite, notEmpty, []string{"already exists and is not empty"}},
		{"a file", auditSite, file, []string{"not a directory"}},
		{"existing empty directory is emptied", auditSite + "?version=GBnope", empty, []string{`branch "nope" not found`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			dir := tt.dir
			if dir == "" {
				dir = filepath.Join(root, "a", "b", "site")
			}
			stdout, stderr, err := auditRun(t, w.g, w.bin, root, nil, "clone", tt.url, dir)
			if err == nil {
				t.Fatalf("clone %s %s succeeded; want failure", tt.url, dir)
			}
			for _, s := range tt.contains {
				if !strings.Contains(stderr, s) {
					t.Errorf("clone %s: stderr = %q; want it to contain %q", tt.url, stderr, s)
				}
			}
			if stdout != "" {
				t.Errorf("clone %s: stdout = %q; want nothing", tt.url, stdout)
			}
			if strings.Contains(stderr, w.pat.Reveal()) {
				t.Errorf("clone %s: the PAT appears on stderr", tt.url)
			}
			switch tt.dir {
			case "":
				if _, err := os.Stat(filepath.Join(root, "a")); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("clone %s: %s exists after a failed clone into %s (%v); want nothing left", tt.url, filepath.Join(root, "a"), dir, err)
				}
			case notEmpty:
				if b, err := os.ReadFile(filepath.Join(notEmpty, "mine")); err != nil || string(b) != "mine\n" {
					t.Errorf("clone %s touched the existing directory: %q, %v", tt.url, b, err)
				}
			case empty:
				if entries, err := os.ReadDir(empty); err != nil || len(entries) != 0 {
					t.Errorf("clone %s: the existing empty directory holds %d entries (%v); want it kept and empty", tt.url, len(entries), err)
				}
			}
		})
	}
	assertNoSecret(t, w.emu, w.pat)
}

// TestAuditCloneInterruptedLeavesNothing sends SIGTERM while the pack is
// on its way: the clone stops, fails, and removes its directory.
func TestAuditCloneInterruptedLeavesNothing(t *testing.T) {
	w := newAuditWorld(t)
	w.emu.InjectFault(azdoemu.Fault{Kind: azdoemu.FaultDelay, Delay: time.Minute, PathContains: "git-upload-pack", Count: 10})
	root := t.TempDir()
	dir := filepath.Join(root, "site")
	cmd := exec.Command(w.bin, "clone", auditSite, dir)
	cmd.Env = auditEnv(w.g, nil)
	cmd.Dir = root
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
	})
	// Once the refs are listed, the clone has written its directory and
	// goes on to wait for the held-back pack.
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(stderr.String(), "Cloning ") || !auditListed(w.emu) {
		if time.Now().After(deadline) {
			t.Fatalf("the clone did not reach the transfer within 30s; stderr:\n%s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := os.Stat(filepath.Join(dir, ".git")); err != nil {
		t.Fatalf("no %s/.git while the pack is on its way: %v", dir, err)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		done <- err
		if err == nil {
			t.Fatalf("the interrupted clone exited 0; want failure")
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("the clone did not stop within 20s of SIGTERM; stderr:\n%s", stderr.String())
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s exists after an interrupted clone (%v); want it removed\nstderr:\n%s", dir, err, stderr.String())
	}
}

// auditListed reports whether the emulator has answered the clone's
// ref listing; the pack request that follows is held back by the fault.
func auditListed(emu *azdoemu.Server) bool {
	for _, r := range emu.Requests() {
		if strings.HasSuffix(r.Path, "/info/refs") {
			return true
		}
	}
	return false
}

// TestAuditCloneNotConnected checks that a clone for a user who has not
// connected names the connect link — from the vault (vault mode, settings
// from the environment) and through a running sidecar's socket — and
// leaves nothing behind.
func TestAuditCloneNotConnected(t *testing.T) {
	w := newAuditWorld(t)
	vw := newVaultWorld(t, entraemu.Config{TenantID: w.emu.TenantID()})
	vw.start()
	_, envTok := vw.envCreate(vaultUser, time.Hour)
	envFile := filepath.Join(t.TempDir(), "env-token")
	writeSecretFile(t, envFile, envTok+"\n")
	vaultEnv := []string{"AZDO_PAT=", "AZDO_VAULT_URL=http://" + vw.proc.addr, "AZDO_ENV_TOKEN_FILE=" + envFile}

	sc := startSidecar(t, nil, "--vault-url", "http://"+vw.proc.addr, "--env-token-file", envFile,
		"--resolve", testenv.ResolveFlag("dev.azure.com", w.emu), "--upstream-ca-file", w.emu.CAFile())

	tests := []struct {
		name string
		env  []string
		args []string
	}{
		{"vault mode", vaultEnv, nil},
		{"through the sidecar's socket", []string{"AZDO_PAT="}, []string{"--socket", sc.Socket}},
		{"AZDO_SOCKET", []string{"AZDO_PAT=", "AZDO_SOCKET=" + sc.Socket}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			dir := filepath.Join(root, "site")
			args := append(append([]string{"clone"}, tt.args...), auditSite, dir)
			stdout, stderr, err := auditRun(t, w.g, w.bin, root, tt.env, args...)
			if err == nil {
				t.Fatalf("clone %v succeeded without a connected account; want failure", args)
			}
			if !strings.Contains(stderr, "connect required") || !strings.Contains(stderr, "/connect?") {
				t.Errorf("clone %v: stderr = %q; want \"connect required\" and the connect link", args, stderr)
			}
			if strings.Contains(stderr, envTok) {
				t.Errorf("clone %v: the environment token appears on stderr", args)
			}
			if stdout != "" {
				t.Errorf("clone %v: stdout = %q; want nothing", args, stdout)
			}
			if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("clone %v: %s exists after the failure (%v)", args, dir, err)
			}
		})
	}
}

// TestAuditCloneThenGitThroughSidecar clones a legacy URL with
// DefaultCollection (org@ and :443 included) through a running sidecar's
// socket, then fetches and pushes with the git CLI through the sidecar's
// proxy: origin is a URL git and the sidecar both understand.
func TestAuditCloneThenGitThroughSidecar(t *testing.T) {
	w := newAuditWorld(t)
	patFile := filepath.Join(t.TempDir(), "pat")
	writeSecretFile(t, patFile, w.pat.Reveal()+"\n")
	sc := startSidecar(t, nil, "--pat-file", patFile,
		"--resolve", testenv.ResolveFlag("contoso.visualstudio.com", w.emu), "--upstream-ca-file", w.emu.CAFile())
	g := testenv.NewGit(t) // reaches Azure DevOps only through the sidecar
	useProxy(t, g, sc, "https://contoso.visualstudio.com/")

	dir := filepath.Join(t.TempDir(), "site")
	url := "https://contoso@Contoso.visualstudio.com:443/DefaultCollection/Web/_git/site?version=GBfeature%2Fx"
	if _, stderr, err := auditRun(t, w.g, w.bin, t.TempDir(), []string{"AZDO_PAT=", "AZDO_SOCKET=" + sc.Socket}, "clone", url, dir); err != nil {
		t.Fatalf("clone %s: %v\n%s", url, err, stderr)
	}
	const origin = "https://contoso.visualstudio.com/DefaultCollection/Web/_git/site"
	if got := g.Run(t, "-C", dir, "config", "remote.origin.url"); got != origin {
		t.Fatalf("remote.origin.url = %q; want %q", got, origin)
	}
	g.Run(t, "-C", dir, "fetch", "--quiet", "origin")
	if got := g.Run(t, "-C", dir, "rev-parse", "origin/main"); got != w.release {
		t.Errorf("after git fetch, origin/main = %s; want %s", got, w.release)
	}
	writeFile(t, filepath.Join(dir, "pushed.txt"), "pushed\n")
	g.Run(t, "-C", dir, "add", "pushed.txt")
	g.Run(t, "-C", dir, "commit", "--quiet", "-m", "push after clone")
	g.Run(t, "-C", dir, "push", "--quiet")
	head := g.Run(t, "-C", dir, "rev-parse", "HEAD")
	if got := g.Run(t, "--git-dir", w.site.Dir, "rev-parse", "refs/heads/feature/x"); got != head {
		t.Errorf("emulator feature/x = %s after git push; want %s", got, head)
	}
	assertNoSecret(t, w.emu, w.pat)
}
