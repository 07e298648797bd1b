package testenv

import (
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// Bins are the paths of the project's binaries.
type Bins struct {
	Sidecar          string // azdo-sidecar
	Vault            string // azdo-vault
	CredentialHelper string // git-credential-azdo
}

type build struct {
	once sync.Once
	path string
	err  error
}

var (
	binMu    sync.Mutex
	binDir   string
	binDirEr error
	builds   = map[string]*build{}
)

// Binary builds ./cmd/name once per test process and returns its path. A
// binary whose package does not exist (yet) or does not build fails only
// the tests that ask for it. git-credential-azdo falls back to a symlink to
// azdo-sidecar when cmd/git-credential-azdo does not exist: the contract
// lets the sidecar answer under that name.
func Binary(t testing.TB, name string) string {
	t.Helper()
	p, err := buildBinary(name)
	if err != nil {
		t.Fatalf("testenv: build %s: %v", name, err)
	}
	return p
}

// Binaries builds the three binaries (once per test process).
func Binaries(t testing.TB) Bins {
	t.Helper()
	return Bins{
		Sidecar:          Binary(t, "azdo-sidecar"),
		Vault:            Binary(t, "azdo-vault"),
		CredentialHelper: Binary(t, "git-credential-azdo"),
	}
}

// CleanupBinaries removes the built binaries; call it from TestMain after
// the tests ran. A later Binary builds them again (go test -count=2 runs
// a test that cleans up twice in one process).
func CleanupBinaries() {
	binMu.Lock()
	defer binMu.Unlock()
	if binDir != "" {
		os.RemoveAll(binDir)
		binDir = ""
	}
	binDirEr = nil
	builds = map[string]*build{}
}

func buildBinary(name string) (string, error) {
	binMu.Lock()
	b := builds[name]
	if b == nil {
		b = &build{}
		builds[name] = b
	}
	if binDir == "" && binDirEr == nil {
		binDir, binDirEr = os.MkdirTemp("", "azdo-e2e-bin-")
	}
	dir, dirErr := binDir, binDirEr
	binMu.Unlock()
	if dirErr != nil {
		return "", dirErr
	}
	b.once.Do(func() {
		root, err := ModuleRoot()
		if err != nil {
			b.err = err
			return
		}
		out := filepath.Join(dir, name)
		if _, err := os.Stat(filepath.Join(root, "cmd", name)); err != nil {
			if name == "git-credential-azdo" {
				side, err := buildBinary("azdo-sidecar")
				if err != nil {
					b.err = err
					return
				}
				b.path, b.err = out, os.Symlink(side, out)
				return
			}
			b.err = fmt.Errorf("package ./cmd/%s does not exist", name)
			return
		}
		cmd := exec.Command("go", "build", "-o", out, "./cmd/"+name)
		cmd.Dir = root
		if msg, err := cmd.CombinedOutput(); err != nil {
			b.err = fmt.Errorf("%w\n%s", err, msg)
			return
		}
		b.path = out
		recordSources(root)
	})
	return b.path, b.err
}

// recordSources stats every non-test Go source file of the module, and
// go.mod and go.sum. The binaries are built by a child "go build" that the
// go command's test cache cannot see; statting the sources from the test
// process itself puts them into the cache key, so an edit to the sidecar or
// the vault reruns the e2e tests instead of replaying a cached "ok".
func recordSources(root string) {
	filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.IsDir() {
			switch d.Name() {
			case ".git", "testdata", "artifacts":
				return filepath.SkipDir
			}
			return nil
		}
		name := d.Name()
		if (strings.HasSuffix(name, ".go") && !strings.HasSuffix(name, "_test.go")) || name == "go.mod" || name == "go.sum" {
			os.Stat(path)
		}
		return nil
	})
}

// ModuleRoot returns the directory of the project's go.mod.
func ModuleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("not inside the module")
	}
	return filepath.Dir(mod), nil
}
