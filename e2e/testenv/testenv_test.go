package testenv_test

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/azdo-sidecar/azdo-sidecar/e2e/azdoemu"
	"github.com/azdo-sidecar/azdo-sidecar/e2e/testenv"
)

func TestGitIsIsolated(t *testing.T) {
	t.Setenv("GIT_SSL_CAINFO", "/etc/ssl/certs/ca-certificates.crt")
	t.Setenv("SSL_CERT_FILE", "/etc/ssl/certs/ca-certificates.crt")
	t.Setenv("GIT_CONFIG_PARAMETERS", "'http.proxy'='http://leak.invalid'")
	// Node and JVM clients: options that weaken TLS or change trust, and
	// DEBUG, under which https-proxy-agent logs the proxy URL's credential.
	clientVars := []string{"DEBUG", "NODE_OPTIONS", "NODE_TLS_REJECT_UNAUTHORIZED", "JAVA_TOOL_OPTIONS", "JDK_JAVA_OPTIONS"}
	for _, k := range clientVars {
		t.Setenv(k, "set-by-the-machine")
	}
	g := testenv.NewGit(t)
	for _, k := range append([]string{"GIT_SSL_CAINFO", "SSL_CERT_FILE", "GIT_CONFIG_PARAMETERS"}, clientVars...) {
		if v := g.Getenv(k); v != "" {
			t.Errorf("Getenv(%q) = %q; want it removed", k, v)
		}
	}
	if g.Getenv("HOME") != g.Home || g.Getenv("GIT_CONFIG_NOSYSTEM") != "1" || g.Getenv("GIT_TERMINAL_PROMPT") != "0" {
		t.Errorf("HOME/GIT_CONFIG_NOSYSTEM/GIT_TERMINAL_PROMPT = %q/%q/%q; want %q/1/0",
			g.Getenv("HOME"), g.Getenv("GIT_CONFIG_NOSYSTEM"), g.Getenv("GIT_TERMINAL_PROMPT"), g.Home)
	}
	out := g.Run(t, "config", "--list", "--show-origin")
	for _, line := range strings.Split(out, "\n") {
		if !strings.HasPrefix(line, "file:"+g.Config) {
			t.Errorf("config from outside the environment: %q", line)
		}
	}
	g.Setenv("GIT_SSL_CAINFO", "/x")
	if !strings.Contains(strings.Join(g.Env(), "\n"), "GIT_SSL_CAINFO=/x") {
		t.Errorf("Setenv(GIT_SSL_CAINFO) not in Env()")
	}
}

func TestReach(t *testing.T) {
	tests := []struct {
		name, listen string
		wantPort443  bool
	}{
		{"port 443 with curloptResolve", "", os.Geteuid() == 0},
		{"any port through the CONNECT tunnel", "127.0.0.1:0", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			emu := testenv.StartAzDO(t, azdoemu.Config{Listen: tc.listen})
			if got := emu.Port() == 443; got != tc.wantPort443 {
				t.Fatalf("emulator on %s; want port 443 %v", emu.Addr(), tc.wantPort443)
			}
			pat := azdoemu.NewPAT()
			if err := emu.AddPAT(azdoemu.PAT{Token: pat}); err != nil {
				t.Fatal(err)
			}
			seed := testenv.Seed(t, emu, "contoso", "Web", "site", testenv.SeedOptions{Commits: 2, Bytes: 4096})
			g := testenv.NewGit(t)
			g.Setenv("GIT_SSL_CAINFO", "/etc/ssl/certs/ca-certificates.crt") // as on this machine
			testenv.Reach(t, g, emu, "dev.azure.com", "contoso.visualstudio.com")
			g.Setenv("GIT_CONFIG_COUNT", "1")
			g.Setenv("GIT_CONFIG_KEY_0", "http.extraHeader")
			g.Setenv("GIT_CONFIG_VALUE_0", "Authorization: Basic "+base64.StdEncoding.EncodeToString([]byte("u:"+pat.Reveal())))
			for _, url := range []string{
				"https://dev.azure.com/contoso/Web/_git/site",
				"https://contoso.visualstudio.com/Web/_git/site",
			} {
				out := g.Run(t, "ls-remote", url, "main")
				if !strings.HasPrefix(out, seed.Head) {
					t.Errorf("ls-remote %s = %q; want %s", url, out, seed.Head)
				}
			}
			if n := g.Run(t, "--git-dir", seed.Dir, "rev-list", "--count", "main"); n != "2" {
				t.Errorf("seeded commits = %s; want 2", n)
			}
		})
	}
}

func TestSeedIsDeterministicAndBranchesShareHistory(t *testing.T) {
	emu := testenv.StartAzDO(t, azdoemu.Config{Listen: "127.0.0.1:0"})
	a := testenv.Seed(t, emu, "o", "p", "a", testenv.SeedOptions{Seed: 5, Bytes: 100})
	b := testenv.Seed(t, emu, "o", "p", "b", testenv.SeedOptions{Seed: 5, Bytes: 100})
	g := testenv.NewGit(t)
	blob := func(dir string) string { return g.Run(t, "--git-dir", dir, "rev-parse", "main^{tree}") }
	if blob(a.Dir) != blob(b.Dir) {
		t.Errorf("same seed gave different trees")
	}
	f := testenv.Seed(t, emu, "o", "p", "a", testenv.SeedOptions{Seed: 6, Branch: "feature"})
	if base := g.Run(t, "--git-dir", a.Dir, "merge-base", "main", "feature"); base != a.Head {
		t.Errorf("merge-base(main, feature) = %s; want %s", base, a.Head)
	}
	size, err := os.Stat(filepath.Join(a.Dir, "HEAD"))
	if err != nil || size.Size() == 0 || f.Head == a.Head {
		t.Errorf("feature branch not seeded: %v", err)
	}
}

func TestBinaryMissingPackageFailsOnlyThatTest(t *testing.T) {
	ok := t.Run("missing", func(t *testing.T) {
		ft := &fakeT{TB: t}
		func() {
			defer func() { recover() }()
			testenv.Binary(ft, "no-such-binary")
		}()
		if !ft.failed {
			t.Errorf("Binary(no-such-binary) did not fail the test")
		}
	})
	if !ok {
		t.Fatal("subtest failed")
	}
}

// fakeT records Fatalf instead of failing the real test.
type fakeT struct {
	testing.TB
	failed bool
}

func (f *fakeT) Fatalf(format string, args ...any) {
	f.failed = true
	panic("fatal")
}

func (f *fakeT) Helper() {}

func TestBinaries(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binaries")
	}
	if _, err := testenv.ModuleRoot(); err != nil {
		t.Fatal(err)
	}
	p := testenv.Binary(t, "azdo-sidecar")
	if p2 := testenv.Binary(t, "azdo-sidecar"); p2 != p {
		t.Errorf("second Binary = %s; want the same %s", p2, p)
	}
	if st, err := os.Stat(p); err != nil {
		t.Errorf("built %s: %v; want an executable", p, err)
	} else if st.Mode()&0o111 == 0 {
		t.Errorf("built %s: mode %v; want an executable", p, st.Mode())
	}
	h := testenv.Binary(t, "git-credential-azdo")
	if _, err := os.Stat(h); err != nil {
		t.Errorf("git-credential-azdo: %v", err)
	}
	testenv.CleanupBinaries()
}
