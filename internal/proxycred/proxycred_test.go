package proxycred

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/azdo-sidecar/azdo-sidecar/secret"
)

func TestEnsureCreatesOnceAndLoadReadsIt(t *testing.T) {
	path := Path(t.TempDir())
	if _, err := Load(path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Load(missing) = %v; want ErrNotExist", err)
	}
	// Concurrent first uses (setup and serve starting together) agree.
	var wg sync.WaitGroup
	got := make([]string, 8)
	for i := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p, err := Ensure(path, "http://127.0.0.1:3128")
			if err != nil {
				t.Error(err)
			}
			got[i] = p.Reveal()
		}()
	}
	wg.Wait()
	for _, g := range got[1:] {
		if g != got[0] || len(g) < 32 {
			t.Fatalf("Ensure returned different or short passwords")
		}
	}
	fi, _ := os.Stat(path)
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %04o; want 0600", fi.Mode().Perm())
	}
	b, _ := os.ReadFile(path)
	if want := "http://" + User + ":" + got[0] + "@127.0.0.1:3128\n"; string(b) != want {
		t.Errorf("file holds %q; want the proxy URL with the credential", b)
	}
	if p, err := Load(path); err != nil || p.Reveal() != got[0] {
		t.Errorf("Load = %v; want the same password", err)
	}
	// A restarted sidecar rewrites the address, keeps the password.
	if err := Write(path, "http://127.0.0.1:4000", secretOf(t, path)); err != nil {
		t.Fatal(err)
	}
	if p, _ := Load(path); p.Reveal() != got[0] {
		t.Errorf("password changed by Write with the same password")
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("left temporary files: %v", entries)
	}
}

func secretOf(t *testing.T, path string) secret.String {
	t.Helper()
	p, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadRefusesWhatOthersCouldRead(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range []struct {
		name    string
		content string
		mode    os.FileMode
		want    error
	}{
		{"world-readable", "http://azdo-sidecar:0123456789abcdef0123@127.0.0.1:3128\n", 0o644, ErrInsecure},
		{"group-readable", "http://azdo-sidecar:0123456789abcdef0123@127.0.0.1:3128\n", 0o640, ErrInsecure},
		{"other user name", "http://someone:0123456789abcdef0123@127.0.0.1:3128\n", 0o600, nil},
		{"short password", "http://azdo-sidecar:short@127.0.0.1:3128\n", 0o600, nil},
		{"no URL", "garbage\n", 0o600, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "-"))
			os.WriteFile(path, []byte(tt.content), 0o600)
			os.Chmod(path, tt.mode)
			_, err := Load(path)
			if err == nil {
				t.Fatal("Load = nil; want an error")
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("Load = %v; want %v", err, tt.want)
			}
			if strings.Contains(err.Error(), "0123456789abcdef0123") {
				t.Errorf("the error shows the password")
			}
			if _, err := Ensure(path, "http://127.0.0.1:3128"); err == nil {
				t.Errorf("Ensure trusted or replaced a bad file silently")
			}
		})
	}
	link := filepath.Join(dir, "link")
	os.Symlink("/etc/hostname", link)
	if _, err := Load(link); !errors.Is(err, ErrInsecure) {
		t.Errorf("Load(symlink) = %v; want ErrInsecure", err)
	}
}
