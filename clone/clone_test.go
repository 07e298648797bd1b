package clone

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/go-git/go-git/v5/plumbing/protocol/packp"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp/capability"
	"github.com/go-git/go-git/v5/plumbing/transport"

	"github.com/azdo-sidecar/azdo-sidecar/azdo"
	"github.com/azdo-sidecar/azdo-sidecar/e2e/azdoemu"
	"github.com/azdo-sidecar/azdo-sidecar/e2e/testenv"
	"github.com/azdo-sidecar/azdo-sidecar/secret"
	"github.com/azdo-sidecar/azdo-sidecar/token"
)

// fixture is one strict Azure DevOps emulator reachable as dev.azure.com,
// contoso.visualstudio.com and, as a self-hosted server, by its address.
type fixture struct {
	emu   *azdoemu.Server
	pat   secret.String
	hc    *http.Client
	hosts *azdo.Hosts
	self  string // the self-hosted host[:port]
	git   *testenv.Git
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	emu := testenv.StartAzDO(t, azdoemu.Config{})
	f := &fixture{emu: emu, pat: azdoemu.NewPAT(), git: testenv.NewGit(t)}
	if err := emu.AddPAT(azdoemu.PAT{Token: f.pat}); err != nil {
		t.Fatal(err)
	}
	f.self = azdo.NormalizeHost(emu.Addr())
	var err error
	if f.hosts, err = azdo.NewHosts([]string{f.self}); err != nil {
		t.Fatal(err)
	}
	f.hc = NewHTTPClient(HTTPOptions{
		Resolve: map[string]string{
			"dev.azure.com:443":            emu.Addr(),
			"contoso.visualstudio.com:443": emu.Addr(),
		},
		RootCAs: emu.CertPool(),
	})
	return f
}

func (f *fixture) options(t *testing.T, url string) Options {
	return Options{
		URL:        url,
		Dir:        filepath.Join(t.TempDir(), "work"),
		Hosts:      f.hosts,
		Tokens:     token.NewStatic(f.pat),
		HTTPClient: f.hc,
		Progress:   &syncBuffer{},
		Sleep:      func(context.Context, time.Duration) error { return nil },
	}
}

// rich holds the commit ids of a seeded repository.
type rich struct {
	main, feature, develop, tag1, tag2, pr, first string
}

// seedRich creates org/project/name with branches main, feature/login and
// develop, a lightweight tag v1.0 on the first commit, an annotated tag
// v2.0 on develop, pull request 7 (feature/login into main) and a file
// "docs/READ ME.md" on feature/login.
func seedRich(t *testing.T, f *fixture, org, project, name string) rich {
	t.Helper()
	s := testenv.Seed(t, f.emu, org, project, name, testenv.SeedOptions{Commits: 2, Bytes: 4 << 10, Seed: 1})
	g := testenv.NewGit(t)
	work := filepath.Join(g.Home, "w")
	g.Run(t, "clone", "--quiet", s.Dir, work)
	g.Dir = work
	var r rich
	r.main = s.Head
	r.first = g.Run(t, "rev-list", "--max-parents=0", "HEAD")
	g.Run(t, "tag", "v1.0", r.first)
	g.Run(t, "checkout", "--quiet", "-b", "feature/login")
	if err := os.MkdirAll(filepath.Join(work, "docs"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(work, "docs", "READ ME.md"), []byte("# login\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	g.Run(t, "add", ".")
	g.Run(t, "commit", "--quiet", "-m", "login docs")
	r.feature = g.Run(t, "rev-parse", "HEAD")
	g.Run(t, "checkout", "--quiet", "-b", "develop", "main")
	g.Run(t, "commit", "--quiet", "--allow-empty", "-m", "develop work")
	r.develop = g.Run(t, "rev-parse", "HEAD")
	g.Run(t, "tag", "-a", "-m", "release 2", "v2.0")
	g.Run(t, "push", "--quiet", s.Dir, "feature/login", "develop", "v1.0", "v2.0")
	if err := f.emu.CreatePullRequest(org, project, name, 7, "feature/login", "main"); err != nil {
		t.Fatal(err)
	}
	r.pr = g.Run(t, "--git-dir", s.Dir, "rev-parse", "refs/pull/7/merge")
	return r
}

func TestCloneURLForms(t *testing.T) {
	f := newFixture(t)
	r := seedRich(t, f, "contoso", "Web Site", "site")
	// A project-less URL names a repository named like its project.
	pl := testenv.Seed(t, f.emu, "contoso", "tools", "tools", testenv.SeedOptions{Seed: 2})
	srv := testenv.Seed(t, f.emu, "DefaultCollection", "Proj", "app", testenv.SeedOptions{Seed: 3})
	base := "https://dev.azure.com/contoso/Web%20Site/_git/site"
	clean := base
	tests := []struct {
		name       string
		url        string
		wantHead   string
		wantBranch string // "" = detached
		wantOrigin string
		wantFile   string // relative to the clone
	}{
		{"clone URL", base, r.main, "main", clean, ""},
		{"org@ clone URL", "https://contoso@dev.azure.com/contoso/Web%20Site/_git/site", r.main, "main", clean, ""},
		{"_optimized", "https://dev.azure.com/contoso/Web%20Site/_git/_optimized/site", r.main, "main", clean, ""},
		{"_full", "https://dev.azure.com/contoso/Web%20Site/_git/_full/site", r.main, "main", clean, ""},
		{"branch", base + "?version=GBdevelop", r.develop, "develop", clean, ""},
		{"branch with slash", base + "?version=GBfeature%2Flogin&_a=contents", r.feature, "feature/login", clean, ""},
		{"lightweight tag", base + "?version=GTv1.0", r.first, "", clean, ""},
		{"annotated tag", base + "?version=GTv2.0", r.develop, "", clean, ""},
		{"commit page", base + "/commit/" + r.first, r.first, "", clean, ""},
		{"commit version", base + "?version=GC" + r.feature, r.feature, "", clean, ""},
		{"pull request", base + "/pullrequest/7", r.pr, "pr/7", clean, ""},
		{"file", base + "?path=/docs/READ%20ME.md&version=GBfeature/login", r.feature, "feature/login", clean, "docs/READ ME.md"},
		{"file path cannot leave the clone", base + "?path=/../../docs/READ%20ME.md&version=GBfeature/login", r.feature, "feature/login", clean, "docs/READ ME.md"},
		{"ssh", "git@ssh.dev.azure.com:v3/contoso/Web%20Site/site", r.main, "main", clean, ""},
		{"ssh url", "ssh://git@ssh.dev.azure.com/v3/contoso/Web%20Site/site?version=GBdevelop", r.main, "main", clean, ""},
		{"legacy", "https://contoso.visualstudio.com/DefaultCollection/Web%20Site/_git/site?version=GBdevelop", r.develop, "develop", "https://contoso.visualstudio.com/DefaultCollection/Web%20Site/_git/site", ""},
		{"vs-ssh", "contoso@vs-ssh.visualstudio.com:v3/contoso/Web%20Site/site", r.main, "main", "https://contoso.visualstudio.com/Web%20Site/_git/site", ""},
		{"project-less", "https://contoso@dev.azure.com/contoso/_git/tools", pl.Head, "main", "https://dev.azure.com/contoso/_git/tools", ""},
		{"self-hosted", "https://" + f.self + "/DefaultCollection/Proj/_git/app", srv.Head, "main", "https://" + f.self + "/DefaultCollection/Proj/_git/app", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := f.options(t, tt.url)
			res, err := Clone(context.Background(), o)
			if err != nil {
				t.Fatalf("Clone(%q): %v\nprogress:\n%s", tt.url, err, o.Progress)
			}
			if res.Head != tt.wantHead || res.Branch != tt.wantBranch {
				t.Errorf("Clone(%q) = head %s branch %q; want %s %q", tt.url, res.Head, res.Branch, tt.wantHead, tt.wantBranch)
			}
			// What real git sees.
			if got := f.git.Run(t, "-C", o.Dir, "rev-parse", "HEAD"); got != tt.wantHead {
				t.Errorf("git rev-parse HEAD = %s; want %s", got, tt.wantHead)
			}
			branch, _ := f.git.RunIn(o.Dir, "symbolic-ref", "--quiet", "--short", "HEAD")
			branch = strings.TrimSpace(branch)
			if branch != tt.wantBranch {
				t.Errorf("git symbolic-ref HEAD = %q; want %q", branch, tt.wantBranch)
			}
			if got := f.git.Run(t, "-C", o.Dir, "config", "remote.origin.url"); got != tt.wantOrigin {
				t.Errorf("remote.origin.url = %q; want %q", got, tt.wantOrigin)
			}
			if st := f.git.Run(t, "-C", o.Dir, "status", "--porcelain"); st != "" {
				t.Errorf("git status --porcelain = %q; want a clean tree", st)
			}
			if tt.wantFile != "" {
				want := filepath.Join(o.Dir, tt.wantFile)
				if res.File != want {
					t.Errorf("Result.File = %q; want %q", res.File, want)
				}
				if _, err := os.Stat(want); err != nil {
					t.Errorf("file %s: %v", tt.wantFile, err)
				}
			}
			if strings.Contains(o.Progress.(*syncBuffer).String(), f.pat.Reveal()) {
				t.Errorf("progress output contains the PAT")
			}
			cfg, _ := os.ReadFile(filepath.Join(o.Dir, ".git", "config"))
			if bytes.Contains(cfg, []byte(f.pat.Reveal())) {
				t.Errorf(".git/config contains the PAT")
			}
		})
	}
	// The tracking branch works with real git: a fetch through the same
	// emulator sees the same commit.
	if len(tests) < 15 {
		t.Fatalf("only %d forms", len(tests))
	}
}

func TestCloneDepth(t *testing.T) {
	f := newFixture(t)
	s := testenv.Seed(t, f.emu, "contoso", "p", "deep", testenv.SeedOptions{Commits: 5})
	tests := []struct {
		name  string
		depth int
		want  string
	}{
		{"shallow", 1, "1"},
		{"two", 2, "2"},
		{"full", 0, "5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := f.options(t, "https://dev.azure.com/contoso/p/_git/deep")
			o.Depth = tt.depth
			if _, err := Clone(context.Background(), o); err != nil {
				t.Fatalf("Clone depth %d: %v", tt.depth, err)
			}
			if got := f.git.Run(t, "-C", o.Dir, "rev-list", "--count", "HEAD"); got != tt.want {
				t.Errorf("depth %d: rev-list --count HEAD = %s; want %s", tt.depth, got, tt.want)
			}
			if got := f.git.Run(t, "-C", o.Dir, "rev-parse", "HEAD"); got != s.Head {
				t.Errorf("depth %d: HEAD = %s; want %s", tt.depth, got, s.Head)
			}
		})
	}
}

func TestCloneErrors(t *testing.T) {
	f := newFixture(t)
	seedRich(t, f, "contoso", "p", "site")
	base := "https://dev.azure.com/contoso/p/_git/site"
	connect := &token.ConnectError{Key: token.Key{Host: "dev.azure.com", Org: "contoso"}, ConnectURL: "https://runner.example.com/connect?host=dev.azure.com"}
	tests := []struct {
		name     string
		url      string
		tokens   token.Source
		existing bool // destination exists, non-empty
		sentinel error
		contains []string
	}{
		{"repo not found", "https://dev.azure.com/contoso/p/_git/nope", nil, false, ErrRepoNotFound, []string{"repository not found", "/_git/nope"}},
		{"branch not found", base + "?version=GBfeature/logni", nil, false, ErrRefNotFound, []string{`branch "feature/logni" not found`, "nearest existing branches: feature/login"}},
		{"tag not found", base + "?version=GTv3.0", nil, false, ErrRefNotFound, []string{`tag "v3.0" not found`, "v1.0", "v2.0"}},
		{"pull request not found", base + "/pullrequest/8", nil, false, ErrRefNotFound, []string{`pull request "8" not found`, "7"}},
		{"commit not found", base + "/commit/" + strings.Repeat("ab", 20), nil, false, ErrRefNotFound, []string{"on no branch or tag"}},
		{"not connected", base, token.SourceFunc(func(context.Context, token.Key) (token.Token, error) { return token.Token{}, connect }), false, nil, []string{"connect required", connect.ConnectURL}},
		{"bad PAT", base, token.NewStatic(azdoemu.NewPAT()), false, ErrAuth, []string{"HTTP 401", "personal access token"}},
		{"not empty", base, nil, true, ErrNotEmpty, []string{"not empty"}},
		{"not azure devops", "https://github.com/o/r", nil, false, azdo.ErrNotAzureDevOps, []string{"github.com"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := f.options(t, tt.url)
			if tt.tokens != nil {
				o.Tokens = tt.tokens
			}
			var keep string
			if tt.existing {
				if err := os.MkdirAll(o.Dir, 0o755); err != nil {
					t.Fatal(err)
				}
				keep = filepath.Join(o.Dir, "mine.txt")
				if err := os.WriteFile(keep, []byte("x"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			_, err := Clone(context.Background(), o)
			if err == nil {
				t.Fatalf("Clone(%q) succeeded; want error", tt.url)
			}
			if tt.sentinel != nil && !errors.Is(err, tt.sentinel) {
				t.Errorf("Clone(%q) error = %v; want errors.Is %v", tt.url, err, tt.sentinel)
			}
			for _, s := range tt.contains {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("Clone(%q) error = %q; want it to contain %q", tt.url, err, s)
				}
			}
			if strings.Contains(err.Error(), f.pat.Reveal()) {
				t.Errorf("error contains the PAT")
			}
			if tt.existing {
				if _, err := os.Stat(keep); err != nil {
					t.Errorf("existing file was touched: %v", err)
				}
			} else if _, err := os.Stat(o.Dir); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("after a failed clone, %s exists (%v); want it removed", o.Dir, err)
			}
		})
	}
}

func TestCloneEmptyExistingDirIsEmptiedOnFailure(t *testing.T) {
	f := newFixture(t)
	seedRich(t, f, "contoso", "p", "site")
	o := f.options(t, "https://dev.azure.com/contoso/p/_git/site?version=GBmissing")
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := Clone(context.Background(), o); !errors.Is(err, ErrRefNotFound) {
		t.Fatalf("Clone = %v; want ErrRefNotFound", err)
	}
	empty, err := isEmptyDir(o.Dir)
	if err != nil || !empty {
		t.Errorf("isEmptyDir(%s) = %v, %v; want the existing directory kept and empty", o.Dir, empty, err)
	}
}

// TestCloneFailureRemovesCreatedParents checks that a failed clone into
// a/b/c removes the a and a/b it created, and no directory that was there
// before.
func TestCloneFailureRemovesCreatedParents(t *testing.T) {
	f := newFixture(t)
	seedRich(t, f, "contoso", "p", "site")
	tests := []struct {
		name   string
		url    string
		mkdirs string // created before the clone, below the temporary root
		gone   string // must not exist after the failed clone
		kept   string // must still exist
	}{
		{"branch not found", "https://dev.azure.com/contoso/p/_git/site?version=GBmissing", "", "a", ""},
		{"repository not found", "https://dev.azure.com/contoso/p/_git/nope", "", "a", ""},
		{"existing grandparent kept", "https://dev.azure.com/contoso/p/_git/site?version=GBmissing", "a", "a/b", "a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			if tt.mkdirs != "" {
				if err := os.MkdirAll(filepath.Join(root, tt.mkdirs), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			o := f.options(t, tt.url)
			o.Dir = filepath.Join(root, "a", "b", "c")
			if _, err := Clone(context.Background(), o); err == nil {
				t.Fatalf("Clone(%q) succeeded; want error", tt.url)
			}
			if _, err := os.Stat(filepath.Join(root, tt.gone)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("after a failed clone into %s, %s exists (%v); want it removed", o.Dir, tt.gone, err)
			}
			if tt.kept != "" {
				if _, err := os.Stat(filepath.Join(root, tt.kept)); err != nil {
					t.Errorf("after a failed clone, %s (there before) is gone: %v", tt.kept, err)
				}
			}
		})
	}
}

func TestCloneRetriesTransientErrorsOnly(t *testing.T) {
	f := newFixture(t)
	s := testenv.Seed(t, f.emu, "contoso", "p", "r", testenv.SeedOptions{})
	url := "https://dev.azure.com/contoso/p/_git/r"
	tests := []struct {
		name       string
		fault      azdoemu.Fault
		wantErr    bool
		wantSleeps int
	}{
		{"503 on info/refs", azdoemu.Fault{Kind: azdoemu.FaultStatus, Status: 503, Count: 2, PathContains: "info/refs"}, false, 2},
		{"reset on upload-pack", azdoemu.Fault{Kind: azdoemu.FaultReset, Count: 1, PathContains: "git-upload-pack"}, false, 1},
		{"persistent 503", azdoemu.Fault{Kind: azdoemu.FaultStatus, Status: 503, Count: 10, PathContains: "info/refs"}, true, DefaultAttempts - 1},
		{"403 is not retried", azdoemu.Fault{Kind: azdoemu.FaultStatus, Status: 403, Count: 1, PathContains: "info/refs"}, true, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f.emu.InjectFault(tt.fault)
			o := f.options(t, url)
			var mu sync.Mutex
			var sleeps []time.Duration
			o.Sleep = func(_ context.Context, d time.Duration) error {
				mu.Lock()
				defer mu.Unlock()
				sleeps = append(sleeps, d)
				return nil
			}
			res, err := Clone(context.Background(), o)
			if (err != nil) != tt.wantErr {
				t.Fatalf("Clone with fault %+v: error %v; want error %v\n%s", tt.fault, err, tt.wantErr, o.Progress)
			}
			if err == nil && res.Head != s.Head {
				t.Errorf("Head = %s; want %s", res.Head, s.Head)
			}
			if len(sleeps) != tt.wantSleeps {
				t.Errorf("retries = %d (%v); want %d", len(sleeps), sleeps, tt.wantSleeps)
			}
			for i := 1; i < len(sleeps); i++ {
				if sleeps[i] < sleeps[i-1]/2 {
					t.Errorf("backoff %v after %v; want growing delays", sleeps[i], sleeps[i-1])
				}
			}
		})
		// Drain what is left of the fault before the next case.
		for range 10 {
			if _, err := f.emu.Client().Get("https://" + f.emu.Addr() + "/x/info/refs"); err != nil {
				break
			}
		}
	}
}

// TestMultiAckWorkaround proves both halves of the workaround against the
// strict emulator: go-git's default capabilities are refused (TF401041),
// and the clone restores go-git's globals afterwards.
func TestMultiAckWorkaround(t *testing.T) {
	f := newFixture(t)
	testenv.Seed(t, f.emu, "contoso", "p", "r", testenv.SeedOptions{})
	o := f.options(t, "https://dev.azure.com/contoso/p/_git/r")
	before := slices.Clone(transport.UnsupportedCapabilities)
	if _, err := Clone(context.Background(), o); err != nil {
		t.Fatalf("Clone: %v", err)
	}
	if !slices.Equal(transport.UnsupportedCapabilities, before) {
		t.Errorf("UnsupportedCapabilities after Clone = %v; want %v restored", transport.UnsupportedCapabilities, before)
	}
	if !slices.Contains(before, capability.MultiACK) {
		t.Fatalf("go-git's default UnsupportedCapabilities %v lack multi_ack; the workaround is obsolete", before)
	}
	// The request that carried the wants advertised multi_ack, and
	// neither multi_ack_detailed nor thin-pack: the narrowest change.
	var sawUploadPack bool
	for _, r := range f.emu.Requests() {
		if strings.HasSuffix(r.Path, "/git-upload-pack") {
			sawUploadPack = true
			if r.Status != http.StatusOK {
				t.Errorf("upload-pack status %d; want 200", r.Status)
			}
		}
	}
	if !sawUploadPack {
		t.Errorf("no upload-pack request in the emulator's log")
	}

	// Without the workaround the strict emulator refuses go-git.
	g := goGitWithoutWorkaround(t, f)
	if err := g; err == nil || !strings.Contains(err.Error(), "400") {
		t.Errorf("go-git clone with default capabilities: %v; want HTTP 400 (TF401041)", err)
	}
}

// goGitWithoutWorkaround clones with go-git's default capabilities and the
// fixture's transport.
func goGitWithoutWorkaround(t *testing.T, f *fixture) error {
	t.Helper()
	c := &cloner{o: f.options(t, ""), received: new(atomic.Int64)}
	c.defaults()
	globalMu.Lock()
	defer globalMu.Unlock()
	restore := c.withGoGit()
	defer restore()
	transport.UnsupportedCapabilities = append(transport.UnsupportedCapabilities, capability.MultiACK)
	tg, err := azdo.Parse("https://dev.azure.com/contoso/p/_git/r", nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	return c.cloneTarget(context.Background(), dir, tg, &Result{Dir: dir})
}

func TestCloneSubmodules(t *testing.T) {
	f := newFixture(t)
	sub := testenv.Seed(t, f.emu, "contoso", "p", "lib", testenv.SeedOptions{Seed: 5})
	other := testenv.Seed(t, f.emu, "fabrikam", "q", "ext", testenv.SeedOptions{Seed: 6})
	top := testenv.Seed(t, f.emu, "contoso", "p", "app", testenv.SeedOptions{Seed: 7})
	g := testenv.NewGit(t)
	work := filepath.Join(g.Home, "app")
	g.Run(t, "clone", "--quiet", top.Dir, work)
	g.Dir = work
	// Record submodules by hand: a relative ADO URL, an SSH ADO URL in
	// another organization, and a GitHub one that must be skipped.
	g.Run(t, "config", "-f", ".gitmodules", "submodule.lib.path", "lib")
	g.Run(t, "config", "-f", ".gitmodules", "submodule.lib.url", "../lib")
	g.Run(t, "config", "-f", ".gitmodules", "submodule.ext.path", "vendor/ext")
	g.Run(t, "config", "-f", ".gitmodules", "submodule.ext.url", "git@ssh.dev.azure.com:v3/fabrikam/q/ext")
	g.Run(t, "config", "-f", ".gitmodules", "submodule.gh.path", "gh")
	g.Run(t, "config", "-f", ".gitmodules", "submodule.gh.url", "https://github.com/o/r.git")
	g.Run(t, "update-index", "--add", "--cacheinfo", "160000,"+sub.Head+",lib")
	g.Run(t, "update-index", "--add", "--cacheinfo", "160000,"+other.Head+",vendor/ext")
	g.Run(t, "update-index", "--add", "--cacheinfo", "160000,"+sub.Head+",gh")
	g.Run(t, "add", ".gitmodules")
	g.Run(t, "commit", "--quiet", "-m", "submodules")
	g.Run(t, "push", "--quiet", top.Dir, "HEAD:main")

	var keys []token.Key
	var mu sync.Mutex
	o := f.options(t, "https://dev.azure.com/contoso/p/_git/app")
	o.RecurseSubmodules = true
	o.Tokens = token.SourceFunc(func(ctx context.Context, k token.Key) (token.Token, error) {
		mu.Lock()
		keys = append(keys, k)
		mu.Unlock()
		return token.NewStatic(f.pat).Token(ctx, k)
	})
	res, err := Clone(context.Background(), o)
	if err != nil {
		t.Fatalf("Clone: %v\n%s", err, o.Progress)
	}
	if want := []string{"lib", "vendor/ext"}; !slices.Equal(res.Submodules, want) {
		t.Errorf("Submodules = %q; want %q", res.Submodules, want)
	}
	if want := []string{"gh"}; !slices.Equal(res.Skipped, want) {
		t.Errorf("Skipped = %q; want %q", res.Skipped, want)
	}
	if got := f.git.Run(t, "-C", filepath.Join(o.Dir, "lib"), "rev-parse", "HEAD"); got != sub.Head {
		t.Errorf("lib HEAD = %s; want %s", got, sub.Head)
	}
	if got := f.git.Run(t, "-C", filepath.Join(o.Dir, "vendor/ext"), "rev-parse", "HEAD"); got != other.Head {
		t.Errorf("vendor/ext HEAD = %s; want %s", got, other.Head)
	}
	if got := f.git.Run(t, "-C", o.Dir, "config", "submodule.ext.url"); got != "https://dev.azure.com/fabrikam/q/_git/ext" {
		t.Errorf("submodule.ext.url = %q; want the clean HTTPS URL", got)
	}
	status := f.git.Run(t, "-C", o.Dir, "submodule", "status")
	for _, want := range []string{" " + sub.Head + " lib", " " + other.Head + " vendor/ext", "-" + sub.Head + " gh"} {
		if !strings.Contains(status, want) {
			t.Errorf("git submodule status = %q; want a line %q", status, want)
		}
	}
	wantKeys := []token.Key{{Host: "dev.azure.com", Org: "contoso"}, {Host: "dev.azure.com", Org: "contoso"}, {Host: "dev.azure.com", Org: "fabrikam"}}
	if !slices.Equal(keys, wantKeys) {
		t.Errorf("token keys = %v; want %v", keys, wantKeys)
	}
}

func TestNearest(t *testing.T) {
	branches := []string{"main", "master", "develop", "feature/login", "feature/logout", "release/1.0"}
	tests := []struct {
		name string
		want string
		top  string
	}{
		{"typo", "mian", "main"},
		{"prefix", "feature/log", "feature/login"},
		{"transposition", "feature/logni", "feature/login"},
		{"case", "DEVELOP", "develop"},
	}
	for _, tt := range tests {
		got := nearest(tt.want, branches, 3)
		if len(got) == 0 || got[0] != tt.top {
			t.Errorf("%s: nearest(%q) = %q; want %q first", tt.name, tt.want, got, tt.top)
		}
	}
	if got := nearest("x", nil, 3); got != nil {
		t.Errorf("nearest with no names = %q; want nil", got)
	}
}

func TestTransient(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"canceled", context.Canceled, false},
		{"auth", fmt.Errorf("x: %w", transport.ErrAuthenticationRequired), false},
		{"not found", transport.ErrRepositoryNotFound, false},
		{"reset", errors.New("read tcp: connection reset by peer"), true},
		{"eof", fmt.Errorf("x: %w", errors.New("unexpected EOF")), true},
		{"other", errors.New("object not found"), false},
		{"no such host", &url.Error{Op: "Get", URL: "https://tfs.example.test/", Err: &net.OpError{Op: "dial", Net: "tcp", Err: &net.DNSError{Err: "no such host", Name: "tfs.example.test", IsNotFound: true}}}, false},
		{"DNS timeout", &url.Error{Op: "Get", URL: "https://tfs.example.test/", Err: &net.OpError{Op: "dial", Net: "tcp", Err: &net.DNSError{Err: "i/o timeout", Name: "tfs.example.test", IsTimeout: true}}}, true},
		{"connection refused", &url.Error{Op: "Get", URL: "https://tfs.example.test/", Err: &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}}, true},
	}
	for _, tt := range tests {
		if got := transient(tt.err); got != tt.want {
			t.Errorf("%s: transient(%v) = %v; want %v", tt.name, tt.err, got, tt.want)
		}
	}
}

func TestDefaultDir(t *testing.T) {
	tests := []struct {
		name string
		repo string
		want string
	}{
		{"plain", "site", "site"},
		{".git stripped like git", "site.git", "site"},
		{"space", "My Repo", "My Repo"},
		{"only .git", ".git", "repo"},
	}
	for _, tt := range tests {
		if got := DefaultDir(azdo.Repo{Name: tt.repo}); got != tt.want {
			t.Errorf("%s: DefaultDir(%q) = %q; want %q", tt.name, tt.repo, got, tt.want)
		}
	}
}

// syncBuffer is a bytes.Buffer safe for the progress goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestCloneCanceled: a clone interrupted (SIGTERM, a deadline) stops
// promptly and leaves nothing behind.
func TestCloneCanceled(t *testing.T) {
	f := newFixture(t)
	testenv.Seed(t, f.emu, "contoso", "p", "r", testenv.SeedOptions{})
	f.emu.InjectFault(azdoemu.Fault{Kind: azdoemu.FaultDelay, Delay: 20 * time.Second, PathContains: "git-upload-pack"})
	o := f.options(t, "https://dev.azure.com/contoso/p/_git/r")
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := Clone(ctx, o)
	if err == nil {
		t.Fatalf("Clone under a 500ms deadline with a 20s stall succeeded; want error")
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("Clone returned after %s; want promptly after the deadline", d)
	}
	if _, err := os.Stat(o.Dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("after a canceled clone, %s exists (%v); want it removed", o.Dir, err)
	}
}

// TestWorkaroundAsksForMultiAckOnly checks what go-git asks of a server
// advertising everything while a clone runs: multi_ack, and neither
// multi_ack_detailed (whose "common"/"ready" answers go-git cannot read)
// nor thin-pack.
func TestWorkaroundAsksForMultiAckOnly(t *testing.T) {
	adv := capability.NewList()
	for _, c := range []capability.Capability{capability.MultiACK, capability.MultiACKDetailed, capability.ThinPack, capability.Sideband64k, capability.OFSDelta} {
		if err := adv.Set(c); err != nil {
			t.Fatal(err)
		}
	}
	c := &cloner{o: Options{}, received: new(atomic.Int64)}
	c.defaults()
	globalMu.Lock()
	restore := c.withGoGit()
	transport.FilterUnsupportedCapabilities(adv)
	restore()
	globalMu.Unlock()
	req := packp.NewUploadRequestFromCapabilities(adv)
	tests := []struct {
		name string
		c    capability.Capability
		want bool
	}{
		{"multi_ack", capability.MultiACK, true},
		{"multi_ack_detailed", capability.MultiACKDetailed, false},
		{"thin-pack", capability.ThinPack, false},
		{"side-band-64k", capability.Sideband64k, true},
	}
	for _, tt := range tests {
		if got := req.Capabilities.Supports(tt.c); got != tt.want {
			t.Errorf("%s: upload request asks for %s = %v; want %v", tt.name, tt.c, got, tt.want)
		}
	}
}

// TestCloneEmptyRepository: like git, cloning a new, empty repository
// succeeds with a warning and leaves a repository whose origin is set.
func TestCloneEmptyRepository(t *testing.T) {
	f := newFixture(t)
	if _, err := f.emu.CreateRepo("contoso", "p", "empty"); err != nil {
		t.Fatal(err)
	}
	o := f.options(t, "https://dev.azure.com/contoso/p/_git/empty")
	res, err := Clone(context.Background(), o)
	if err != nil {
		t.Fatalf("Clone of an empty repository: %v", err)
	}
	if res.Head != "" {
		t.Errorf("Head = %q; want none", res.Head)
	}
	if !strings.Contains(o.Progress.(*syncBuffer).String(), "empty repository") {
		t.Errorf("progress = %q; want a warning about the empty repository", o.Progress)
	}
	if got := f.git.Run(t, "-C", o.Dir, "config", "remote.origin.url"); got != "https://dev.azure.com/contoso/p/_git/empty" {
		t.Errorf("remote.origin.url = %q", got)
	}
	o = f.options(t, "https://dev.azure.com/contoso/p/_git/empty?version=GBmain")
	if _, err := Clone(context.Background(), o); !errors.Is(err, ErrRefNotFound) || !strings.Contains(err.Error(), "empty") {
		t.Errorf("Clone of a branch of an empty repository = %v; want ErrRefNotFound saying it is empty", err)
	}
}
