package gitsetup

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/azdo-sidecar/azdo-sidecar/azdo"
	"github.com/azdo-sidecar/azdo-sidecar/secret"
)

// gitEnv is an isolated git environment: a temp HOME, its own global
// config file and no system config.
type gitEnv struct {
	t      *testing.T
	home   string
	global string
	env    []string
}

func newGitEnv(t *testing.T) *gitEnv {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git not installed")
	}
	home := t.TempDir()
	g := &gitEnv{t: t, home: home, global: filepath.Join(home, "gitconfig")}
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "GIT_") || k == "HOME" || k == "XDG_CONFIG_HOME" || strings.EqualFold(k, "no_proxy") ||
			strings.EqualFold(k, "https_proxy") || strings.EqualFold(k, "http_proxy") || strings.EqualFold(k, "all_proxy") {
			continue
		}
		g.env = append(g.env, kv)
	}
	g.env = append(g.env, "HOME="+home, "GIT_CONFIG_GLOBAL="+g.global, "GIT_CONFIG_NOSYSTEM=1", "GIT_TERMINAL_PROMPT=0")
	return g
}

func (g *gitEnv) with(kv ...string) []string { return append(slices.Clone(g.env), kv...) }

func (g *gitEnv) git(env []string, args ...string) (string, error) {
	cmd := exec.Command("git", args...)
	cmd.Env = env
	cmd.Dir = g.home
	out, err := cmd.CombinedOutput()
	return strings.TrimRight(string(out), "\n"), err
}

func (g *gitEnv) urlmatch(key, url string) string {
	out, _ := g.git(g.env, "config", "--get-urlmatch", key, url)
	return out
}

func (g *gitEnv) opts(mode Mode) Options {
	hosts, err := azdo.NewHosts([]string{"tfs.example.com:8443"})
	if err != nil {
		g.t.Fatal(err)
	}
	return Options{
		Mode:          mode,
		Listen:        "127.0.0.1:3128",
		StateDir:      filepath.Join(g.home, "state"),
		Hosts:         hosts,
		HelperCommand: "/opt/azdo/git-credential-azdo",
		CacheSocket:   filepath.Join(g.home, "run", "sock"),
		Env:           g.env,
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return string(b)
}

func mustApply(t *testing.T, opts Options) Result {
	t.Helper()
	res, err := Apply(context.Background(), opts)
	if err != nil {
		t.Fatalf("Apply(%+v): %v", opts.Mode, err)
	}
	return res
}

func TestApplyResolvesOnlyAzureDevOpsURLs(t *testing.T) {
	g := newGitEnv(t)
	mustApply(t, g.opts(ModeBoth))
	ca := filepath.Join(g.home, "state", "ca.pem")
	tests := []struct {
		name string
		url  string
		ours bool
	}{
		{"services", "https://dev.azure.com/o/p/_git/r", true},
		{"services with org user", "https://o@dev.azure.com/o/p/_git/r", true},
		{"services upper case", "https://DEV.AZURE.COM/o/p/_git/r", true},
		{"legacy org", "https://org.visualstudio.com/p/_git/r", true},
		{"legacy with collection", "https://org.visualstudio.com/DefaultCollection/p/_git/r", true},
		{"self-hosted", "https://tfs.example.com:8443/tfs/c/p/_git/r", true},
		{"github", "https://github.com/o/r", false},
		{"lookalike suffix", "https://dev.azure.com.evil.test/o/p/_git/r", false},
		{"lookalike prefix", "https://test.dev.azure.com/o/p/_git/r", false},
		{"two labels", "https://a.b.visualstudio.com/p/_git/r", false},
		{"bare visualstudio", "https://visualstudio.com/p/_git/r", false},
		{"other port", "https://dev.azure.com:8443/o/p/_git/r", false},
		{"plain http", "http://dev.azure.com/o/p/_git/r", false},
		{"self-hosted other port", "https://tfs.example.com/tfs/c/p/_git/r", false},
	}
	for _, tt := range tests {
		want := map[string]string{
			"http.proxy":             "http://127.0.0.1:3128",
			"http.sslCAInfo":         ca,
			"http.sslCAPath":         filepath.Join(g.home, "state", TrustDir),
			"credential.helper":      "/opt/azdo/git-credential-azdo",
			"credential.useHttpPath": "true",
		}
		for key, val := range want {
			got := g.urlmatch(key, tt.url)
			if !tt.ours {
				val = ""
			}
			if got != val {
				t.Errorf("%s: git config --get-urlmatch %s %s = %q; want %q", tt.name, key, tt.url, got, val)
			}
		}
	}
	if target, err := os.Readlink(filepath.Join(g.home, "state", TrustDir, "ca.pem")); err != nil || target != "../ca.pem" {
		t.Errorf("trust dir link = %q, %v; want ../ca.pem", target, err)
	}
}

const priorConfig = `# my settings
[user]
	name = Me
	email = me@example.com
[credential]
	helper = store
[credential "https://dev.azure.com"]
	username = me@example.com
[http "https://github.com"]
	proxy = http://corp:8080
[alias]
	st = status
`

func TestIdempotentAndUndoIsByteIdentical(t *testing.T) {
	tests := []struct {
		name  string
		prior string
		file  bool // --file instead of --global
		mode  Mode
	}{
		{"global both with prior config", priorConfig, false, ModeBoth},
		{"global no prior file", "", false, ModeBoth},
		{"file proxy", priorConfig, true, ModeProxy},
		{"file helper", priorConfig, true, ModeHelper},
		{"no trailing newline", "[user]\n\tname = Me", false, ModeBoth},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := newGitEnv(t)
			path := g.global
			opts := g.opts(tt.mode)
			if tt.file {
				path = filepath.Join(g.home, "other.gitconfig")
				opts.Scope = Scope{File: path}
			}
			if tt.prior != "" {
				os.WriteFile(path, []byte(tt.prior), 0o644)
			}
			res := mustApply(t, opts)
			if !res.Changed() {
				t.Fatal("first Apply changed nothing")
			}
			after := readFile(t, path)
			res2 := mustApply(t, opts)
			if res2.Changed() || readFile(t, path) != after {
				t.Fatalf("second Apply changed the file (wrote %v, removed %v):\n%s", res2.Written, res2.Removed, readFile(t, path))
			}
			undo, err := Undo(context.Background(), opts)
			if err != nil {
				t.Fatal(err)
			}
			if len(undo.Removed) != len(res.Written) {
				t.Errorf("Undo removed %d lines; Apply wrote %d", len(undo.Removed), len(res.Written))
			}
			want := tt.prior
			if want != "" && !strings.HasSuffix(want, "\n") {
				// git ends the last line it rewrites; that newline is
				// the one byte Undo cannot take back.
				want += "\n"
			}
			if got := readFile(t, path); got != want {
				t.Fatalf("after Undo the file is\n%q\nwant the prior\n%q", got, want)
			}
			if _, err := os.Lstat(filepath.Join(opts.StateDir, TrustDir)); tt.mode != ModeHelper && !os.IsNotExist(err) {
				t.Errorf("trust dir left behind after Undo: %v", err)
			}
		})
	}
}

func TestUndoKeepsWhatTheUserWrote(t *testing.T) {
	g := newGitEnv(t)
	opts := g.opts(ModeBoth)
	mustApply(t, opts)
	// The user adds lines of their own, one of them in our section and one
	// equal to a value we wrote, and changes another we wrote.
	for _, args := range [][]string{
		{"config", "--global", "--add", "credential.https://dev.azure.com.username", "me"},
		{"config", "--global", "--add", "http.https://tfs.example.com:8443.proxy", "http://127.0.0.1:3128"},
		{"config", "--global", "--replace-all", "credential.https://*.visualstudio.com.useHttpPath", "false"},
	} {
		if out, err := g.git(g.env, args...); err != nil {
			t.Fatalf("git %v: %v: %s", args, err, out)
		}
	}
	res, err := Undo(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct{ key, url, want string }{
		{"credential.username", "https://dev.azure.com/o/p/_git/r", "me"},
		{"credential.useHttpPath", "https://org.visualstudio.com/p/_git/r", "false"},
		{"http.proxy", "https://tfs.example.com:8443/c/p/_git/r", "http://127.0.0.1:3128"},
		{"http.proxy", "https://dev.azure.com/o/p/_git/r", ""},
		{"credential.helper", "https://dev.azure.com/o/p/_git/r", ""},
	}
	for _, c := range checks {
		if got := g.urlmatch(c.key, c.url); got != c.want {
			t.Errorf("after Undo: --get-urlmatch %s %s = %q; want %q", c.key, c.url, got, c.want)
		}
	}
	if len(res.Notes) != 1 || !strings.Contains(res.Notes[0], "tfs.example.com:8443.proxy") {
		t.Errorf("Undo notes = %q; want one about the duplicated proxy line", res.Notes)
	}
	if out, _ := g.git(g.env, "config", "--global", "--get-all", RecordKey); out != "" {
		t.Errorf("records left after Undo: %q", out)
	}
}

func TestApplyAgainWithNewListenReplacesOldLines(t *testing.T) {
	g := newGitEnv(t)
	os.WriteFile(g.global, []byte(priorConfig), 0o644)
	opts := g.opts(ModeBoth)
	mustApply(t, opts)
	opts.Listen = "127.0.0.1:4000"
	opts.Mode = ModeProxy
	res := mustApply(t, opts)
	if len(res.Removed) == 0 {
		t.Fatal("Apply with a new listen address removed nothing")
	}
	url := "https://dev.azure.com/o/p/_git/r"
	if got, _ := g.git(g.env, "config", "--global", "--get-all", "http.https://dev.azure.com.proxy"); got != "http://127.0.0.1:4000" {
		t.Errorf("proxy lines = %q; want only the new one", got)
	}
	if got := g.urlmatch("credential.helper", url); got != "store" {
		t.Errorf("helper after switching to proxy mode = %q; want the user's store back", got)
	}
	if _, err := Undo(context.Background(), opts); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, g.global); got != priorConfig {
		t.Fatalf("after Undo:\n%s\nwant the prior config", got)
	}
}

// TestHelperScopedToAzureDevOps runs `git credential fill` and checks which
// helpers git starts: ours (and only ours) for Azure DevOps, the user's for
// everything else.
func TestHelperScopedToAzureDevOps(t *testing.T) {
	g := newGitEnv(t)
	logf := filepath.Join(g.home, "helpers.log")
	script := func(name string) string {
		p := filepath.Join(g.home, name)
		body := "#!/bin/sh\necho \"" + name + " $1\" >> " + logf + "\nif [ \"$1\" = get ]; then echo username=u; echo password=p-" + name + "; fi\n"
		if err := os.WriteFile(p, []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	user := script("user-helper")
	ours := script("our-helper")
	os.WriteFile(g.global, []byte("[credential]\n\thelper = "+user+"\n"), 0o644)
	opts := g.opts(ModeHelper)
	opts.HelperCommand = ours
	mustApply(t, opts)

	tests := []struct {
		url  string
		want string
	}{
		{"https://dev.azure.com/o/p/_git/r", "our-helper get"},
		{"https://org.visualstudio.com/p/_git/r", "our-helper get"},
		{"https://github.com/o/r", "user-helper get"},
		{"https://dev.azure.com.evil.test/o/p/_git/r", "user-helper get"},
	}
	for _, tt := range tests {
		os.Remove(logf)
		cmd := exec.Command("git", "credential", "fill")
		cmd.Env = g.env
		cmd.Stdin = strings.NewReader("url=" + tt.url + "\n\n")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git credential fill %s: %v: %s", tt.url, err, out)
		}
		if got := strings.TrimSpace(readFile(t, logf)); got != tt.want {
			t.Errorf("helpers run for %s: %q; want %q", tt.url, got, tt.want)
		}
		if strings.HasPrefix(tt.want, "our") && !strings.Contains(string(out), "path=o/p/_git/r") && !strings.Contains(string(out), "path=p/_git/r") {
			t.Errorf("git credential fill %s: no path (useHttpPath): %s", tt.url, out)
		}
	}
}

func TestGitSSLCAPathFallsBackToHelper(t *testing.T) {
	g := newGitEnv(t)
	opts := g.opts(ModeBoth)
	opts.Env = g.with("GIT_SSL_CAPATH=/etc/ssl/certs")
	res := mustApply(t, opts)
	if res.Mode != ModeHelper || len(res.Notes) == 0 || !strings.Contains(res.Notes[0], "GIT_SSL_CAPATH") {
		t.Fatalf("Apply with GIT_SSL_CAPATH: mode %s, notes %q; want helper mode and a note", res.Mode, res.Notes)
	}
	if got := g.urlmatch("http.proxy", "https://dev.azure.com/o/p/_git/r"); got != "" {
		t.Errorf("proxy configured despite GIT_SSL_CAPATH: %q", got)
	}
	opts.Env = g.with("GIT_SSL_CAINFO=/etc/ssl/certs/ca-certificates.crt", "NO_PROXY=localhost,.azure.com")
	opts.Scope = Scope{File: filepath.Join(g.home, "f")}
	res = mustApply(t, opts)
	if res.Mode != ModeBoth || len(res.Notes) != 2 || !strings.Contains(res.Notes[0], "GIT_SSL_CAINFO") || !strings.Contains(res.Notes[1], "NO_PROXY") {
		t.Fatalf("Apply with GIT_SSL_CAINFO and NO_PROXY: mode %s, notes %q; want both and two notes", res.Mode, res.Notes)
	}
}

func TestHelperCommand(t *testing.T) {
	dir := t.TempDir()
	withSmall := filepath.Join(dir, "bin")
	os.Mkdir(withSmall, 0o755)
	os.WriteFile(filepath.Join(withSmall, "git-credential-azdo"), []byte("#!/bin/sh\n"), 0o755)
	spaced := filepath.Join(dir, "my tools")
	os.Mkdir(spaced, 0o755)
	tests := []struct {
		name, exe, socket string
		hosts             []string
		want              string
	}{
		{"small helper next to it", filepath.Join(withSmall, "azdo-sidecar"), "", nil, filepath.Join(withSmall, "git-credential-azdo")},
		{"no small helper", "/usr/bin/azdo-sidecar", "", nil, "/usr/bin/azdo-sidecar credential"},
		{"socket", "/usr/bin/azdo-sidecar", "/run/a/sock", nil, "/usr/bin/azdo-sidecar credential --socket /run/a/sock"},
		{"space in path", filepath.Join(spaced, "azdo-sidecar"), "", nil, "!'" + filepath.Join(spaced, "azdo-sidecar") + "' credential"},
		{"self-hosted hosts", filepath.Join(withSmall, "azdo-sidecar"), "/run/a/sock", []string{"tfs.example.com:8443", "ado.corp"},
			filepath.Join(withSmall, "git-credential-azdo") + " --socket /run/a/sock --host tfs.example.com:8443 --host ado.corp"},
		{"self-hosted IPv6 host", "/usr/bin/azdo-sidecar", "", []string{"[::1]:8443"}, "!/usr/bin/azdo-sidecar credential --host '[::1]:8443'"},
	}
	for _, tt := range tests {
		if got := HelperCommand(tt.exe, tt.socket, tt.hosts...); got != tt.want {
			t.Errorf("%s: HelperCommand(%q, %q, %q) = %q; want %q", tt.name, tt.exe, tt.socket, tt.hosts, got, tt.want)
		}
	}
}

func TestProxyURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"127.0.0.1:3128", "http://127.0.0.1:3128"},
		{":3128", "http://127.0.0.1:3128"},
		{"0.0.0.0:3128", "http://127.0.0.1:3128"},
		{"[::1]:3128", "http://[::1]:3128"},
		{"[::]:3128", "http://[::1]:3128"},
		{"localhost:9", "http://localhost:9"},
	}
	for _, tt := range tests {
		if got := ProxyURL(tt.in); got != tt.want {
			t.Errorf("ProxyURL(%q) = %q; want %q", tt.in, got, tt.want)
		}
	}
}

func TestParseModeAndScope(t *testing.T) {
	for _, s := range []string{"proxy", "helper", "both", ""} {
		if _, err := ParseMode(s); err != nil {
			t.Errorf("ParseMode(%q) = %v; want nil", s, err)
		}
	}
	if _, err := ParseMode("all"); err == nil {
		t.Error("ParseMode(\"all\") = nil; want an error")
	}
	if _, err := (Scope{Global: true, File: "x"}).args(); err == nil {
		t.Error("Scope{Global, File}.args() = nil error; want one")
	}
}

// TestHelpersInOrder: for each Azure DevOps URL, the reset, then git's
// cache client on the sidecar's socket, then our helper, exactly once.
func TestHelpersInOrder(t *testing.T) {
	g := newGitEnv(t)
	opts := g.opts(ModeHelper)
	mustApply(t, opts)
	mustApply(t, opts)
	cache := "cache --timeout=0 --socket=" + opts.CacheSocket
	want := strings.Join([]string{"", cache, opts.HelperCommand}, "\n")
	for _, u := range HostURLs(opts.Hosts) {
		if got, _ := g.git(g.env, "config", "--global", "--get-all", "credential."+u+".helper"); got != want {
			t.Errorf("git config --get-all credential.%s.helper = %q; want %q", u, got, want)
		}
	}
	// git's view for a repository URL: every helper it will run, in order.
	out, _ := g.git(g.env, "config", "--get-urlmatch", "credential.helper", "https://dev.azure.com/o/p/_git/r")
	if out != opts.HelperCommand {
		t.Errorf("git config --get-urlmatch credential.helper = %q; want the last one, ours", out)
	}
}

// TestApplyUpgradesTwoLineHelper: a config written by an older setup (reset
// and our helper only) gets the cache line in between, nothing doubled, and
// Undo still removes everything.
func TestApplyUpgradesTwoLineHelper(t *testing.T) {
	g := newGitEnv(t)
	os.WriteFile(g.global, []byte(priorConfig), 0o644)
	old := g.opts(ModeHelper)
	old.CacheSocket = ""
	mustApply(t, old)
	opts := g.opts(ModeHelper)
	res := mustApply(t, opts)
	if !res.Changed() {
		t.Fatal("Apply with the cache socket changed nothing")
	}
	want := strings.Join([]string{"", CacheHelper(opts.CacheSocket), opts.HelperCommand}, "\n")
	for _, u := range HostURLs(opts.Hosts) {
		if got, _ := g.git(g.env, "config", "--global", "--get-all", "credential."+u+".helper"); got != want {
			t.Errorf("after upgrade, --get-all credential.%s.helper = %q; want %q", u, got, want)
		}
	}
	if res2 := mustApply(t, opts); res2.Changed() {
		t.Errorf("Apply again wrote %v, removed %v; want nothing", res2.Written, res2.Removed)
	}
	undo, err := Undo(context.Background(), opts)
	if err != nil || len(undo.Notes) > 0 {
		t.Fatalf("Undo = %v, notes %q", err, undo.Notes)
	}
	if got := readFile(t, g.global); got != priorConfig {
		t.Errorf("after Undo:\n%s\nwant the prior config", got)
	}
}

func TestCacheHelper(t *testing.T) {
	tests := []struct{ name, socket, want string }{
		{"plain", "/run/user/1000/azdo-sidecar/sock", "cache --timeout=0 --socket=/run/user/1000/azdo-sidecar/sock"},
		{"space", "/tmp/my dir/sock", "cache --timeout=0 '--socket=/tmp/my dir/sock'"},
		{"quote", "/tmp/it's/sock", `cache --timeout=0 '--socket=/tmp/it'\''s/sock'`},
	}
	for _, tt := range tests {
		if got := CacheHelper(tt.socket); got != tt.want {
			t.Errorf("%s: CacheHelper(%q) = %q; want %q", tt.name, tt.socket, got, tt.want)
		}
	}
}

// TestApplyDropsOldTmpCacheLine: a config from an older setup with git's
// cache client on /tmp/azdo-sidecar-<uid>/sock (a path another user can
// create first) loses that line when setup runs again without one, and
// Undo still restores the prior config exactly.
func TestApplyDropsOldTmpCacheLine(t *testing.T) {
	g := newGitEnv(t)
	os.WriteFile(g.global, []byte(priorConfig), 0o644)
	old := g.opts(ModeHelper)
	old.CacheSocket = "/tmp/azdo-sidecar-1000/sock"
	mustApply(t, old)
	opts := g.opts(ModeHelper)
	opts.CacheSocket = ""
	res := mustApply(t, opts)
	if !res.Changed() {
		t.Fatal("Apply without the cache socket changed nothing")
	}
	if strings.Contains(readFile(t, g.global), "/tmp/azdo-sidecar-1000") {
		t.Errorf("the old cache line is still there:\n%s", readFile(t, g.global))
	}
	want := strings.Join([]string{"", opts.HelperCommand}, "\n")
	for _, u := range HostURLs(opts.Hosts) {
		if got, _ := g.git(g.env, "config", "--global", "--get-all", "credential."+u+".helper"); got != want {
			t.Errorf("--get-all credential.%s.helper = %q; want %q", u, got, want)
		}
	}
	if _, err := Undo(context.Background(), opts); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, g.global); got != priorConfig {
		t.Errorf("after Undo:\n%s\nwant the prior config", got)
	}
}

// TestProxyCredentialOnlyInPrivateInclude: with the proxy's credential,
// the scope's file (world-readable here, as ~/.gitconfig usually is)
// holds only an include of a 0600 file with the proxy URL; git sees the
// URL through it; Undo removes both.
func TestProxyCredentialOnlyInPrivateInclude(t *testing.T) {
	g := newGitEnv(t)
	os.WriteFile(g.global, []byte(priorConfig), 0o644)
	opts := g.opts(ModeProxy)
	const pass = "include-test-password-0123"
	opts.ProxyPassword = secret.New(pass)
	res := mustApply(t, opts)
	inc := filepath.Join(opts.StateDir, ProxyInclude)
	if len(res.FilesWritten) != 1 || res.FilesWritten[0] != inc {
		t.Errorf("FilesWritten = %v; want [%s]", res.FilesWritten, inc)
	}
	if strings.Contains(readFile(t, g.global), pass) {
		t.Errorf("the global config holds the proxy credential")
	}
	for _, s := range res.Written {
		if strings.Contains(s.String(), pass) {
			t.Errorf("Written %v shows the credential", s)
		}
	}
	fi, err := os.Stat(inc)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("%s: %v, mode %v; want 0600", inc, err, fi.Mode())
	}
	want := "http://azdo-sidecar:" + pass + "@" + opts.Listen
	for _, u := range []string{"https://dev.azure.com/o/p/_git/r", "https://contoso.visualstudio.com/p/_git/r"} {
		if got, _ := g.git(g.env, "config", "--get-urlmatch", "http.proxy", u); got != want {
			t.Errorf("git config --get-urlmatch http.proxy %s = %q; want the URL with the credential", u, got)
		}
	}
	if got, _ := g.git(g.env, "config", "--get-urlmatch", "http.proxyAuthMethod", "https://dev.azure.com/o/p/_git/r"); got != "basic" {
		t.Errorf("http.proxyAuthMethod = %q; want basic (no 407 round trip per connection)", got)
	}
	if res2 := mustApply(t, opts); res2.Changed() {
		t.Errorf("Apply again changed %v %v %v", res2.Written, res2.Removed, res2.FilesWritten)
	}
	undo, err := Undo(context.Background(), opts)
	if err != nil || len(undo.FilesRemoved) != 1 {
		t.Fatalf("Undo = %v, removed files %v", err, undo.FilesRemoved)
	}
	if _, err := os.Stat(inc); !os.IsNotExist(err) {
		t.Errorf("%s still there after Undo", inc)
	}
	if got := readFile(t, g.global); got != priorConfig {
		t.Errorf("after Undo:\n%s\nwant the prior config", got)
	}
	sys := opts
	sys.Scope = Scope{System: true}
	if _, err := Apply(context.Background(), sys); err == nil || !strings.Contains(err.Error(), "--system") {
		t.Errorf("Apply --system with the credential = %v; want a refusal", err)
	}
}
