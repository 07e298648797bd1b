package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/azdo-sidecar/azdo-sidecar/e2e/testenv"
	"github.com/azdo-sidecar/azdo-sidecar/vault"
	"github.com/azdo-sidecar/azdo-sidecar/vault/store"
)

// readmeBlock returns the fenced sh block of README.md whose first line
// is first.
func readmeBlock(t *testing.T, first string) string {
	t.Helper()
	root, err := testenv.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	i := strings.Index(readme, "```sh\n"+first+"\n")
	if i < 0 {
		t.Fatalf("README.md has no sh block starting with %q", first)
	}
	block := readme[i+len("```sh\n"):]
	return block[:strings.Index(block, "```")]
}

// TestReadmeEnvironmentStartRecipe runs the README's environment-start
// recipe as written, in a clean HOME, with only its example values
// replaced by the test's (vault URL, token file, directories) and the
// emulator made reachable (AZDO_RESOLVE, AZDO_UPSTREAM_CA_FILE): serve in
// the background, setup, and clone --wait-connect, which waits until the
// user connects and then clones.
func TestReadmeEnvironmentStartRecipe(t *testing.T) {
	w := newEnvStartWorld(t)
	script := readmeBlock(t, "# the environment's start script; the runner put the token in /run/secrets/azdo-env-token")
	dir := t.TempDir()
	for from, to := range map[string]string{
		"https://runner.example.com:8443": "http://" + w.vw.proc.addr,
		"/run/secrets/azdo-env-token":     w.envFile,
		"/tmp/azdo-sidecar.ready":         filepath.Join(dir, "ready"),
		"/workspace/site":                 filepath.Join(dir, "workspace", "site"),
	} {
		if !strings.Contains(script, from) {
			t.Fatalf("the recipe no longer contains %q:\n%s", from, script)
		}
		script = strings.ReplaceAll(script, from, to)
	}
	bin := filepath.Join(dir, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"azdo-sidecar", "git-credential-azdo"} {
		if err := os.Symlink(testenv.Binary(t, name), filepath.Join(bin, name)); err != nil {
			t.Fatal(err)
		}
	}
	home, run := filepath.Join(dir, "home"), filepath.Join(dir, "run")
	for _, d := range []string{home, run} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command("bash", "-euc", script)
	cmd.Dir = dir
	cmd.Env = []string{"HOME=" + home, "PATH=" + bin + ":/usr/local/bin:/usr/bin:/bin", "XDG_RUNTIME_DIR=" + run,
		"GIT_CONFIG_NOSYSTEM=1", "AZDO_RESOLVE=" + testenv.ResolveFlag("dev.azure.com", w.emu), "AZDO_UPSTREAM_CA_FILE=" + w.emu.CAFile()}
	// A file, not a pipe: the background serve keeps its copy of the
	// output open, and Wait would wait for it.
	outFile, err := os.Create(filepath.Join(dir, "recipe.out"))
	if err != nil {
		t.Fatal(err)
	}
	defer outFile.Close()
	out := fileText(outFile.Name())
	cmd.Stdout, cmd.Stderr = outFile, outFile
	// The recipe leaves serve running in the background: one process
	// group, stopped at the end.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) })

	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(out.String(), "Waiting up to 15m0s") {
		select {
		case err := <-done:
			t.Fatalf("the recipe ended (%v) before waiting for the user:\n%s", err, out.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("the recipe printed no connect notice:\n%s", out.String())
		}
	}
	// The user connects (with a PAT, as the PAT page would store it).
	w.vw.put(vault.Credential{Owner: vaultUser, Host: vaultHost, Org: "contoso", Kind: store.PAT, Secret: w.pat.Token})
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("the recipe failed: %v\n%s", err, out.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("the recipe still runs 60s after the user connected:\n%s", out.String())
	}
	if !strings.Contains(out.String(), "Azure DevOps is now connected with a personal access token") {
		t.Errorf("recipe output lacks the connected line:\n%s", out.String())
	}
	g := testenv.NewGit(t)
	if head := g.Run(t, "-C", filepath.Join(dir, "workspace", "site"), "rev-parse", "HEAD"); head != w.seed.Head {
		t.Errorf("cloned HEAD = %s; want %s", head, w.seed.Head)
	}
	gc, err := os.ReadFile(filepath.Join(home, ".gitconfig"))
	if err != nil || !bytes.Contains(gc, []byte("dev.azure.com")) {
		t.Errorf("setup --global wrote no git config in the clean HOME: %v\n%s", err, gc)
	}
}

// fileText reads a file on each String call.
type fileText string

func (f fileText) String() string {
	b, _ := os.ReadFile(string(f))
	return string(b)
}
