package e2e

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/azdo-sidecar/azdo-sidecar/e2e/entraemu"
	"github.com/azdo-sidecar/azdo-sidecar/e2e/testenv"
	"github.com/azdo-sidecar/azdo-sidecar/gitsetup"
)

// recordingInstall puts a copy of azdo-sidecar in a new directory, next to
// a git-credential-azdo that appends its arguments to the returned log and
// then runs the real helper, so that setup configures that wrapper as the
// fallback helper and the test sees whether git ran it.
func recordingInstall(t *testing.T) (sidecar, log string) {
	t.Helper()
	bin := testenv.Binary(t, "azdo-sidecar")
	helper := testenv.Binary(t, "git-credential-azdo")
	dir := t.TempDir()
	sidecar = filepath.Join(dir, "azdo-sidecar")
	// A copy, not a symlink: setup looks next to os.Executable, which
	// resolves symlinks.
	in, err := os.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(sidecar, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	log = filepath.Join(dir, "helper.log")
	script := "#!/bin/sh\necho \"$*\" >> '" + log + "'\nexec '" + helper + "' \"$@\"\n"
	if err := os.WriteFile(filepath.Join(dir, "git-credential-azdo"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return sidecar, log
}

// readLog returns the wrapper's log ("" when it never ran) and empties it.
func readLog(t *testing.T, log string) string {
	t.Helper()
	b, err := os.ReadFile(log)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	os.Remove(log)
	return strings.TrimSpace(string(b))
}

// TestCredentialCachePathFromSetup: with what `azdo-sidecar setup --mode
// helper` writes (reset, "cache --timeout=0 --socket=<sidecar socket>",
// then git-credential-azdo), real git 2.39 gets the token from the real
// sidecar through git's own credential-cache client, without starting our
// helper; when the user must connect, git fails at once with the connect
// URL on stderr, printed by our helper, and never prompts.
func TestCredentialCachePathFromSetup(t *testing.T) {
	sidecar, log := recordingInstall(t)
	const pat = "pat-e2e-cachepath-9f2e"
	patFile := filepath.Join(t.TempDir(), "pat")
	if err := os.WriteFile(patFile, []byte(pat+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	g := testenv.NewGit(t)
	askpass := filepath.Join(t.TempDir(), "askpass")
	askLog := askpass + ".log"
	if err := os.WriteFile(askpass, []byte("#!/bin/sh\necho \"$*\" >> '"+askLog+"'\necho nope\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	g.Setenv("GIT_ASKPASS", askpass)
	const url = "https://dev.azure.com/org/proj/_git/repo"

	setup := func(socket string) {
		t.Helper()
		out, errOut, err := runSidecar(t, g, sidecar, "setup", "--mode", "helper", "--socket", socket)
		if err != nil {
			t.Fatalf("setup: %v\n%s%s", err, out, errOut)
		}
		want := strings.Join([]string{"", gitsetup.CacheHelper(socket), filepath.Join(filepath.Dir(sidecar), "git-credential-azdo") + " --socket " + socket}, "\n")
		if got, _ := g.RunErr("config", "--global", "--get-all", "credential.https://dev.azure.com.helper"); strings.TrimRight(got, "\n") != want {
			t.Fatalf("credential.https://dev.azure.com.helper = %q; want %q", got, want)
		}
	}

	t.Run("token through git's cache client", func(t *testing.T) {
		sc := startSidecar(t, nil, "--pat-file", patFile)
		setup(sc.Socket)
		readLog(t, log)
		for range 3 {
			out, errOut, err := credentialFill(g, url)
			if err != nil || !strings.Contains(out, "\npassword="+pat+"\n") {
				t.Fatalf("git credential fill = %q, %v (%s); want the PAT", out, err, errOut)
			}
		}
		if got := readLog(t, log); got != "" {
			t.Errorf("git-credential-azdo ran (%q); want git's cache client alone to answer", got)
		}
		// reject goes to both helpers (erase is idempotent); approve
		// reaches the sidecar as a no-op store.
		for _, verb := range []string{"reject", "approve"} {
			cmd := g.Command("git", "credential", verb)
			cmd.Stdin = strings.NewReader("url=" + url + "\nusername=azdo-sidecar\npassword=" + pat + "\n\n")
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("git credential %s: %v (%s)", verb, err, out)
			}
		}
		if got := readLog(t, log); got != "--socket "+sc.Socket+" erase\n--socket "+sc.Socket+" store" {
			t.Errorf("git-credential-azdo ran %q; want erase then store", got)
		}
		if out, errOut, err := credentialFill(g, url); err != nil || !strings.Contains(out, "password="+pat) {
			t.Errorf("git credential fill after reject = %q, %v (%s); want the PAT again", out, err, errOut)
		}
	})

	// The sidecar is down and git gets a credential elsewhere (the user
	// types it): git's "store" makes its cache client spawn git's own
	// daemon on the sidecar's socket path. With --timeout=0 that daemon
	// keeps nothing, and the sidecar, started later, takes the path back.
	t.Run("sidecar down: git's daemon keeps nothing", func(t *testing.T) {
		dir := testenv.PrivateDir(t)
		sock := filepath.Join(dir, "run", "sock")
		t.Cleanup(func() { g.Command("git", "credential-cache", "--socket="+sock, "exit").Run() })
		setup(sock)
		const typed = "typed-password-77aa"
		cmd := g.Command("git", "credential", "approve")
		cmd.Stdin = strings.NewReader("url=" + url + "\nusername=me\npassword=" + typed + "\n\n")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git credential approve: %v (%s)", err, out)
		}
		if fi, err := os.Lstat(sock); err != nil || fi.Mode().Type() != os.ModeSocket {
			t.Fatalf("no socket at %s after store (%v); want git's cache daemon spawned there", sock, err)
		}
		get := g.Command("git", "credential-cache", "--socket="+sock, "get")
		get.Stdin = strings.NewReader("protocol=https\nhost=dev.azure.com\npath=org/proj/_git/repo\nusername=me\n\n")
		if out, err := get.CombinedOutput(); err != nil || len(out) != 0 {
			t.Errorf("git's daemon answered get with %q, %v; want nothing kept", out, err)
		}
		readLog(t, log)
		startSidecar(t, nil, "--pat-file", patFile, "--socket", sock)
		out, errOut, err := credentialFill(g, url)
		if err != nil || !strings.Contains(out, "\npassword="+pat+"\n") {
			t.Fatalf("git credential fill with the sidecar back = %q, %v (%s); want the PAT", out, err, errOut)
		}
		if got := readLog(t, log); got != "" {
			t.Errorf("git-credential-azdo ran (%q); want the sidecar on its socket again, reached by git's cache client", got)
		}
	})

	t.Run("connect required", func(t *testing.T) {
		vw := newVaultWorld(t, entraemu.Config{})
		vw.start()
		_, envTok := vw.envCreate(vaultUser, time.Hour)
		envFile := filepath.Join(t.TempDir(), "env-token")
		if err := os.WriteFile(envFile, []byte(envTok+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		sc := startSidecar(t, nil, "--vault-url", "http://"+vw.proc.addr, "--env-token-file", envFile)
		setup(sc.Socket) // a new socket: setup replaces the helper lines
		readLog(t, log)
		start := time.Now()
		out, errOut, err := credentialFill(g, url)
		if err == nil || strings.Contains(out, "password=") {
			t.Fatalf("git credential fill = %q, %v; want failure", out, err)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("git took %s; want it to fail fast", d)
		}
		if !strings.Contains(errOut, "/connect?") || !strings.Contains(errOut, "told us to quit") {
			t.Errorf("stderr = %q; want the connect URL and git quitting", errOut)
		}
		if strings.Contains(errOut, "terminal prompts disabled") {
			t.Errorf("stderr = %q; git tried to prompt", errOut)
		}
		if got := readLog(t, askLog); got != "" {
			t.Errorf("git ran GIT_ASKPASS (%q); want no prompt", got)
		}
		if got := readLog(t, log); got != "--socket "+sc.Socket+" get" {
			t.Errorf("git-credential-azdo ran %q; want one get, after git's cache client got nothing", got)
		}
	})
}
