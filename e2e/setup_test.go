package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/azdo-sidecar/azdo-sidecar/e2e/azdoemu"
	"github.com/azdo-sidecar/azdo-sidecar/e2e/testenv"
	"github.com/azdo-sidecar/azdo-sidecar/gitsetup"
)

// runSidecar runs the azdo-sidecar binary in g's environment.
func runSidecar(t *testing.T, g *testenv.Git, bin string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	cmd := g.Command(bin, args...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}

// TestSetupCommand drives `azdo-sidecar setup` (the built binary) against
// real git 2.39 in an isolated environment: URL-scoped values resolve for
// Azure DevOps URLs only, a second run changes nothing, --undo restores the
// user's config byte for byte. Self-hosted hosts come from AZDO_HOST, as
// the contract says every flag reads its environment variable.
func TestSetupCommand(t *testing.T) {
	bin := testenv.Binary(t, "azdo-sidecar")
	// next to azdo-sidecar; setup passes it the self-hosted hosts, which
	// git's environment need not carry
	helper := testenv.Binary(t, "git-credential-azdo") + " --host tfs.example.com:8443"
	g := testenv.NewGit(t)
	g.AddConfig(t, "credential.helper", "store")
	prior, err := os.ReadFile(g.Config)
	if err != nil {
		t.Fatal(err)
	}
	g.Setenv("AZDO_HOST", "tfs.example.com:8443")
	// A runtime directory no one else can create (see
	// TestBoundarySetupCacheLineOnlyForPrivateSocket for one in /tmp).
	g.Setenv("XDG_RUNTIME_DIR", testenv.PrivateDir(t))
	state := filepath.Join(g.Home, ".local", "state", "azdo-sidecar")

	out, errOut, err := runSidecar(t, g, bin, "setup", "--listen", "127.0.0.1:3999")
	if err != nil {
		t.Fatalf("setup: %v\n%s%s", err, out, errOut)
	}
	if errOut != "" {
		t.Errorf("setup wrote to stderr without GIT_SSL_CAINFO: %q", errOut)
	}
	// No sidecar runs yet: setup created the proxy's credential, which
	// serve will adopt, and put it only in a file no one else can read.
	proxyURL := testenv.ProxyURL(t, filepath.Join(state, "proxy-url"))
	pass := strings.TrimSuffix(strings.TrimPrefix(proxyURL, "http://azdo-sidecar:"), "@127.0.0.1:3999")
	if pass == proxyURL || len(pass) < 16 {
		t.Fatalf("proxy-url file does not hold the proxy URL for 127.0.0.1:3999 with a credential")
	}
	assertNoWorldReadableSecret(t, g.Home, pass)
	for _, s := range []string{out, errOut} {
		if strings.Contains(s, pass) {
			t.Errorf("setup printed the proxy's credential")
		}
	}
	tests := []struct {
		url  string
		ours bool
	}{
		{"https://dev.azure.com/contoso/proj/_git/repo", true},
		{"https://contoso@dev.azure.com/contoso/proj/_git/repo", true},
		{"https://contoso.visualstudio.com/DefaultCollection/proj/_git/repo", true},
		{"https://tfs.example.com:8443/tfs/coll/proj/_git/repo", true},
		{"https://github.com/o/r", false},
		{"https://dev.azure.com.evil.test/contoso/proj/_git/repo", false},
		{"https://evil-dev.azure.com/contoso/proj/_git/repo", false},
		{"https://a.b.visualstudio.com/proj/_git/repo", false},
	}
	for _, tt := range tests {
		want := map[string]string{
			"http.proxy":             proxyURL,
			"http.sslCAInfo":         filepath.Join(state, "ca.pem"),
			"credential.helper":      helper,
			"credential.useHttpPath": "true",
		}
		if !tt.ours {
			want = map[string]string{"http.proxy": "", "http.sslCAInfo": "", "credential.helper": "store", "credential.useHttpPath": ""}
		}
		for key, val := range want {
			got, _ := g.RunErr("config", "--get-urlmatch", key, tt.url)
			if got = strings.TrimSpace(got); got != val {
				t.Errorf("git config --get-urlmatch %s %s = %q; want %q", key, tt.url, got, val)
			}
		}
	}

	// Every helper git runs for an Azure DevOps URL, in order: the reset,
	// git's cache client on the sidecar's default socket, then ours.
	sock := filepath.Join(g.Getenv("XDG_RUNTIME_DIR"), "azdo-sidecar", "sock")
	wantHelpers := strings.Join([]string{"", gitsetup.CacheHelper(sock), helper}, "\n")
	for _, u := range []string{"https://dev.azure.com", "https://*.visualstudio.com", "https://tfs.example.com:8443"} {
		got, _ := g.RunErr("config", "--global", "--get-all", "credential."+u+".helper")
		if got = strings.TrimRight(got, "\n"); got != wantHelpers {
			t.Errorf("git config --get-all credential.%s.helper = %q; want %q", u, got, wantHelpers)
		}
	}

	after, _ := os.ReadFile(g.Config)
	out, _, err = runSidecar(t, g, bin, "setup", "--listen", "127.0.0.1:3999")
	if now, _ := os.ReadFile(g.Config); err != nil || !bytes.Equal(now, after) || !strings.Contains(out, "nothing changed") {
		t.Fatalf("second setup: err %v, output %q, file changed: %v", err, out, !bytes.Equal(now, after))
	}

	if out, errOut, err := runSidecar(t, g, bin, "setup", "--undo"); err != nil {
		t.Fatalf("setup --undo: %v\n%s%s", err, out, errOut)
	}
	if now, _ := os.ReadFile(g.Config); !bytes.Equal(now, prior) {
		t.Fatalf("after setup --undo the config is\n%s\nwant\n%s", now, prior)
	}
	if _, err := os.Stat(filepath.Join(state, gitsetup.ProxyInclude)); !os.IsNotExist(err) {
		t.Errorf("after setup --undo %s: %v; want it removed", gitsetup.ProxyInclude, err)
	}
}

// assertNoWorldReadableSecret fails when a file under dir that group or
// others can read contains s, or a file holding s is not in a
// directory chain private to its owner.
func assertNoWorldReadableSecret(t *testing.T, dir, s string) {
	t.Helper()
	found := 0
	filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil || !strings.Contains(string(b), s) {
			return nil
		}
		found++
		fi, _ := os.Stat(path)
		if fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s holds the proxy's credential and has mode %04o", path, fi.Mode().Perm())
		}
		return nil
	})
	if found == 0 {
		t.Errorf("no file under %s holds the credential; the test looks in the wrong place", dir)
	}
}

// TestSetupWithGitSSLCAINFO: with GIT_SSL_CAINFO exported (as on these
// machines) setup explains on stderr what it did about it; with
// GIT_SSL_CAPATH it falls back to the helper alone.
func TestSetupWithGitSSLCAINFO(t *testing.T) {
	bin := testenv.Binary(t, "azdo-sidecar")
	g := testenv.NewGit(t)
	g.Setenv("GIT_SSL_CAINFO", "/etc/ssl/certs/ca-certificates.crt")
	out, errOut, err := runSidecar(t, g, bin, "setup")
	if err != nil || !strings.Contains(errOut, "GIT_SSL_CAINFO") || !strings.Contains(out, "sslCAPath") {
		t.Fatalf("setup with GIT_SSL_CAINFO: err %v, stdout %q, stderr %q; want sslCAPath written and a note", err, out, errOut)
	}
	runSidecar(t, g, bin, "setup", "--undo")

	g.Setenv("GIT_SSL_CAPATH", "/etc/ssl/certs")
	out, errOut, err = runSidecar(t, g, bin, "setup")
	if err != nil || !strings.Contains(out, "mode helper") || strings.Contains(out, ".proxy") || !strings.Contains(errOut, "GIT_SSL_CAPATH") {
		t.Fatalf("setup with GIT_SSL_CAPATH: err %v, stdout %q, stderr %q; want helper mode only and a note", err, out, errOut)
	}
}

// setupSidecar is a running `azdo-sidecar serve` started for the setup
// tests.
type setupSidecar struct {
	ready struct {
		Proxy  string `json:"proxy"`
		Socket string `json:"socket"`
		CAFile string `json:"ca_file"`
	}
	state  string
	stderr *lockedBuffer
}

// startSetupSidecar runs serve in standalone mode with the world's PAT,
// reaching the emulator through --resolve, and stops it with SIGTERM at the
// end of the test.
func startSetupSidecar(t *testing.T, w *world, bin string) *setupSidecar {
	t.Helper()
	dir := t.TempDir()
	s := &setupSidecar{state: filepath.Join(dir, "state"), stderr: &lockedBuffer{}}
	patFile := filepath.Join(dir, "pat")
	if err := os.WriteFile(patFile, []byte(w.pat.Reveal()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := w.git.Command(bin, "serve", "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0",
		"--socket", filepath.Join(dir, "sock"), "--state-dir", s.state, "--pat-file", patFile,
		"--resolve", testenv.ResolveFlag("dev.azure.com", w.emu), "--upstream-ca-file", w.emu.CAFile())
	cmd.Stderr = s.stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("sidecar exit after SIGTERM: %v\n%s", err, s.stderr)
			}
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			t.Errorf("sidecar did not stop within 30s of SIGTERM")
		}
	})
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		if sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		io.Copy(io.Discard, stdout)
	}()
	select {
	case line, ok := <-lines:
		if !ok || json.Unmarshal([]byte(line), &s.ready) != nil || s.ready.Proxy == "" {
			t.Fatalf("sidecar ready line %q; stderr:\n%s", line, s.stderr)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("no ready line from the sidecar after 30s:\n%s", s.stderr)
	}
	return s
}

// TestSetupThenPlainGit is the user's path: serve, setup, then plain
// `git clone` and `git push` of https://dev.azure.com/... with no other
// configuration — and with GIT_SSL_CAINFO exported to the system bundle, as
// on these machines, which only the sslCAPath line setup writes gets past.
// The helper-only mode is checked the same way, git talking to the
// emulator directly.
func TestSetupThenPlainGit(t *testing.T) {
	bin := testenv.Binary(t, "azdo-sidecar")
	testenv.Binary(t, "git-credential-azdo")
	tests := []struct {
		name string
		mode string
	}{
		{"proxy", "proxy"},
		{"both", "both"},
		{"helper", "helper"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t) // Reach configures direct access; proxy modes start from a clean config
			if tt.mode != "helper" {
				w.git = testenv.NewGit(t)
				w.git.Setenv("GIT_SSL_CAINFO", "/etc/ssl/certs/ca-certificates.crt")
			}
			sc := startSetupSidecar(t, w, bin)
			out, errOut, err := runSidecar(t, w.git, bin, "setup", "--mode", tt.mode, "--listen", sc.ready.Proxy,
				"--state-dir", sc.state, "--socket", sc.ready.Socket)
			if err != nil {
				t.Fatalf("setup: %v\n%s%s", err, out, errOut)
			}
			dir := filepath.Join(w.git.Home, "site")
			w.git.Run(t, "clone", "--quiet", repoURL, dir)
			if got := w.git.Run(t, "-C", dir, "rev-parse", "HEAD"); got != w.seed.Head {
				t.Fatalf("cloned HEAD = %s; want %s", got, w.seed.Head)
			}
			os.WriteFile(filepath.Join(dir, "setup.txt"), []byte(tt.name+"\n"), 0o644)
			w.git.Run(t, "-C", dir, "add", "setup.txt")
			w.git.Run(t, "-C", dir, "commit", "--quiet", "-m", "setup "+tt.name)
			w.git.Run(t, "-C", dir, "push", "--quiet", "origin", "main")

			authed := 0
			for _, r := range w.emu.Requests() {
				if r.CredKind == azdoemu.CredBasicPAT && r.CredHash == azdoemu.CredentialHash(w.pat) {
					authed++
				}
			}
			if authed == 0 {
				t.Errorf("no request reached the emulator with the PAT")
			}
			assertNoSecret(t, w.emu, w.pat)
			b, _ := os.ReadFile(w.git.Config)
			for _, s := range []string{string(b), out, errOut, sc.stderr.String()} {
				if strings.Contains(s, w.pat.Reveal()) {
					t.Errorf("the PAT appears in git config, setup output or the sidecar's log")
				}
			}
			if tt.mode != "helper" {
				// The proxy's credential: only in 0600 files, never in
				// the git config setup printed or wrote.
				pass := proxySecret(t, testenv.ProxyURL(t, filepath.Join(sc.state, "proxy-url"))).Reveal()
				assertNoWorldReadableSecret(t, sc.state, pass)
				for _, s := range []string{string(b), out, errOut, sc.stderr.String()} {
					if strings.Contains(s, pass) {
						t.Errorf("the proxy credential appears in git config, setup output or the sidecar's log")
					}
				}
			}
			if _, err := os.Stat(filepath.Join(w.git.Home, ".git-credentials")); err == nil {
				t.Errorf("a credential was stored on disk (~/.git-credentials)")
			}
		})
	}
}
