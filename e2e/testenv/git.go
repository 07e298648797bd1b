// Package testenv gives end-to-end tests an isolated world: a git
// environment that ignores the machine's configuration, emulators reachable
// under their real host names without /etc/hosts, seeded repositories, and
// the project's binaries built once per test run.
//
// Reaching dev.azure.com: git's http.curloptResolve pins a name to an
// address but keeps the port of the URL (443). StartAzDO therefore binds
// the emulator to port 443 of a random address in 127.0.0.0/8 (all of it is
// loopback on Linux; a random address keeps parallel test runs apart), and
// Git.Reach adds one curloptResolve entry per host. Where port 443 cannot be
// bound (not root), the emulator listens on 127.0.0.1:0 and Git.Reach
// points http.proxy at a blind CONNECT tunnel that sends every CONNECT to
// the emulator instead. The sidecar is told with --resolve HOST:443:IP:PORT.
package testenv

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Git is an isolated git environment: its own HOME and global config file,
// no system config, no terminal prompts, and none of the machine's
// GIT_*/SSL/proxy variables unless set with Setenv.
type Git struct {
	Home   string // the temporary HOME
	Config string // GIT_CONFIG_GLOBAL
	Dir    string // default working directory of Run (Home unless changed)

	mu  sync.Mutex
	env map[string]string
}

// droppedEnv are variables of the machine that would leak into git, curl or
// the other clients the tests drive (Node, Java). This machine exports
// GIT_SSL_CAINFO and SSL_CERT_FILE globally, which override
// http.sslCAInfo: the environment must control them explicitly. The Node
// and JVM options could turn TLS verification off or load other trust
// (the tests would then prove nothing), and DEBUG=https-proxy-agent makes
// isomorphic-git's proxy agent log the proxy URL with its credential into
// the test output; a test that needs one of them sets it itself.
var droppedEnv = []string{
	"HOME", "XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_RUNTIME_DIR", "XDG_CACHE_HOME",
	"SSL_CERT_FILE", "SSL_CERT_DIR", "CURL_CA_BUNDLE",
	"HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY",
	"http_proxy", "https_proxy", "all_proxy", "no_proxy",
	"SSH_ASKPASS", "EDITOR", "VISUAL", "PAGER",
	"DEBUG", "NODE_OPTIONS", "NODE_TLS_REJECT_UNAUTHORIZED", "NODE_EXTRA_CA_CERTS",
	"JAVA_TOOL_OPTIONS", "JDK_JAVA_OPTIONS", "_JAVA_OPTIONS",
}

// NewGit creates an isolated git environment in a temporary directory
// removed at the end of the test.
func NewGit(t testing.TB) *Git {
	t.Helper()
	home := t.TempDir()
	g := &Git{Home: home, Config: filepath.Join(home, ".gitconfig"), Dir: home, env: map[string]string{}}
	for _, kv := range os.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "GIT_") || strings.HasPrefix(k, "AZDO_") || contains(droppedEnv, k) {
			continue
		}
		g.env[k] = v
	}
	for k, v := range map[string]string{
		"HOME":                home,
		"XDG_CONFIG_HOME":     filepath.Join(home, ".config"),
		"XDG_STATE_HOME":      filepath.Join(home, ".local", "state"),
		"XDG_CACHE_HOME":      filepath.Join(home, ".cache"),
		"GIT_CONFIG_GLOBAL":   g.Config,
		"GIT_CONFIG_NOSYSTEM": "1",
		"GIT_TERMINAL_PROMPT": "0",
		"GIT_ASKPASS":         "/bin/false",
		"LANG":                "C",
		"LC_ALL":              "C",
	} {
		g.env[k] = v
	}
	cfg := "[user]\n\tname = E2E Test\n\temail = e2e@example.com\n" +
		"[init]\n\tdefaultBranch = main\n" +
		"[advice]\n\tdetachedHead = false\n" +
		"[core]\n\tpager = cat\n"
	if err := os.WriteFile(g.Config, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return g
}

func contains(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}

// Setenv sets a variable for every later command (e.g. GIT_SSL_CAINFO, to
// reproduce images that export it, or GIT_TRACE_CURL).
func (g *Git) Setenv(key, value string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.env[key] = value
}

// Unsetenv removes a variable.
func (g *Git) Unsetenv(key string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.env, key)
}

// Env returns the environment commands run with, as KEY=VALUE.
func (g *Git) Env() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]string, 0, len(g.env))
	for k, v := range g.env {
		out = append(out, k+"="+v)
	}
	return out
}

// Getenv returns a variable of the environment.
func (g *Git) Getenv(key string) string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.env[key]
}

// Command returns a command for name (git or any other program) with the
// environment and working directory set. Stdout/Stderr are unset.
func (g *Git) Command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.Env = g.Env()
	cmd.Dir = g.Dir
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// RunErr runs git with args in g.Dir and returns its combined output.
func (g *Git) RunErr(args ...string) (string, error) {
	return g.RunIn(g.Dir, args...)
}

// RunTimeout bounds every run of RunIn, RunErr and Run: a git that hangs
// (a stalled transfer, a prompt nobody answers) is killed and its test fails
// with git's output, instead of the whole package stalling until go test's
// -timeout and printing only goroutines.
var RunTimeout = 3 * time.Minute

// RunIn runs git with args in dir and returns its combined output. A run
// longer than RunTimeout is killed and reported as an error.
func (g *Git) RunIn(dir string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), RunTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Env = g.Env()
	cmd.Dir = dir
	cmd.WaitDelay = 5 * time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if ctx.Err() != nil {
		err = fmt.Errorf("killed after %v (hung?): %w", RunTimeout, err)
	}
	return out.String(), err
}

// Run runs git with args in g.Dir and fails the test if git fails. It
// returns git's output, trimmed.
func (g *Git) Run(t testing.TB, args ...string) string {
	t.Helper()
	out, err := g.RunErr(args...)
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(out)
}

// SetConfig sets a global configuration value (git config --global key value).
func (g *Git) SetConfig(t testing.TB, key, value string) {
	t.Helper()
	g.Run(t, "config", "--global", key, value)
}

// AddConfig adds a value to a multi-valued global key.
func (g *Git) AddConfig(t testing.TB, key, value string) {
	t.Helper()
	g.Run(t, "config", "--global", "--add", key, value)
}

// ProxyURL returns the proxy URL with its credential from the sidecar's
// proxy_url_file (the ready line names it), for git's http.proxy or curl's
// -x: the sidecar answers 407 to a client without it.
func ProxyURL(t testing.TB, proxyURLFile string) string {
	t.Helper()
	b, err := os.ReadFile(proxyURLFile)
	if err != nil {
		t.Fatalf("proxy_url_file: %v", err)
	}
	u := strings.TrimSpace(string(b))
	if !strings.HasPrefix(u, "http://azdo-sidecar:") {
		t.Fatalf("proxy_url_file %s does not hold the proxy URL with its credential", proxyURLFile)
	}
	return u
}

// PrivateDir returns a new directory that no other user can create or
// replace (every directory above it belongs to this user or root and
// only they may write to it), unlike t.TempDir() under /tmp. It is made
// under the user's cache directory and removed at the end of the test.
// Sockets for git's credential-cache client must live in such a place.
func PrivateDir(t testing.TB) string {
	t.Helper()
	base, err := os.UserCacheDir()
	if err != nil {
		t.Fatalf("PrivateDir: %v", err)
	}
	base = filepath.Join(base, "azdo-sidecar-e2e")
	if err := os.MkdirAll(base, 0o700); err != nil {
		t.Fatalf("PrivateDir: %v", err)
	}
	dir, err := os.MkdirTemp(base, "t-")
	if err != nil {
		t.Fatalf("PrivateDir: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	for p := dir; p != filepath.Dir(p); p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil || fi.Mode().Perm()&0o022 != 0 {
			t.Fatalf("PrivateDir: %s is writable by others (or unreadable: %v); set HOME or XDG_CACHE_HOME to a private directory", p, err)
		}
	}
	return dir
}
