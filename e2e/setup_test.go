package e2e

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/azdo-sidecar/azdo-sidecar/e2e/testenv"
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
	helper := testenv.Binary(t, "git-credential-azdo") // next to azdo-sidecar
	g := testenv.NewGit(t)
	g.AddConfig(t, "credential.helper", "store")
	prior, err := os.ReadFile(g.Config)
	if err != nil {
		t.Fatal(err)
	}
	g.Setenv("AZDO_HOST", "tfs.example.com:8443")
	state := filepath.Join(g.Home, ".local", "state", "azdo-sidecar")

	out, errOut, err := runSidecar(t, g, bin, "setup", "--listen", "127.0.0.1:3999")
	if err != nil {
		t.Fatalf("setup: %v\n%s%s", err, out, errOut)
	}
	if errOut != "" {
		t.Errorf("setup wrote to stderr without GIT_SSL_CAINFO: %q", errOut)
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
			"http.proxy":             "http://127.0.0.1:3999",
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
