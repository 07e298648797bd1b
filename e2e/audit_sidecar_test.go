package e2e

// Contract audit of the environment side (azdo-sidecar, git-credential-azdo)
// against docs/contract.md and docs/azure-devops.md: each test pins one
// point where the built binaries departed from them.

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/azdo-sidecar/azdo-sidecar/azdo"
	"github.com/azdo-sidecar/azdo-sidecar/credential"
	"github.com/azdo-sidecar/azdo-sidecar/e2e/testenv"
	"github.com/azdo-sidecar/azdo-sidecar/token"
)

// TestAuditStatusFindsSidecarThroughSocket: `status` reaches a sidecar
// whose metrics listener got a random port through the socket, given as
// --socket or AZDO_SOCKET, and shows no secret.
func TestAuditStatusFindsSidecarThroughSocket(t *testing.T) {
	const pat = "audit-status-pat-0123456789"
	sc := startSidecar(t, []string{"AZDO_PAT=" + pat})
	bin := testenv.Binary(t, "azdo-sidecar")
	tests := []struct {
		name string
		args []string
		env  []string
	}{
		{name: "flag", args: []string{"status", "--socket", sc.Socket}},
		{name: "environment", args: []string{"status"}, env: []string{"AZDO_SOCKET=" + sc.Socket}},
		{name: "json", args: []string{"status", "--json", "--socket", sc.Socket}},
		// The environment serve ran with, port 0 included.
		{name: "metrics port 0", args: []string{"status"}, env: []string{"AZDO_SOCKET=" + sc.Socket, "AZDO_METRICS_LISTEN=127.0.0.1:0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(bin, tt.args...)
			cmd.Env = append(scBaseEnv(), tt.env...)
			var stderr strings.Builder
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("azdo-sidecar %q: %v; stderr %q", tt.args, err, stderr.String())
			}
			if strings.Contains(string(out)+stderr.String(), pat) {
				t.Errorf("azdo-sidecar %q output contains the PAT", tt.args)
			}
			if slices.Contains(tt.args, "--json") {
				var st struct {
					Mode   string `json:"mode"`
					Listen struct {
						Metrics string `json:"metrics"`
					} `json:"listen"`
				}
				if err := json.Unmarshal(out, &st); err != nil || st.Mode != "pat" || st.Listen.Metrics != sc.Metrics {
					t.Errorf("azdo-sidecar %q = %s (%v); want mode pat, metrics %s", tt.args, out, err, sc.Metrics)
				}
				return
			}
			for _, want := range []string{"pat", sc.Metrics, sc.Proxy} {
				if !strings.Contains(string(out), want) {
					t.Errorf("azdo-sidecar %q output lacks %q:\n%s", tt.args, want, out)
				}
			}
		})
	}
}

// TestAuditSetupSelfHostedHelper: after `setup --host H`, git asks our
// helper for H's URLs and the helper answers them even though git's
// environment has no AZDO_HOST; here the user must connect, so git fails at
// once with the connect link rather than prompting for a user name.
func TestAuditSetupSelfHostedHelper(t *testing.T) {
	bin := testenv.Binary(t, "azdo-sidecar")
	testenv.Binary(t, "git-credential-azdo") // next to azdo-sidecar: setup uses it
	const host = "tfs.example.com:8443"
	const connectURL = "https://runner.example.test:8443/connect?host=tfs.example.com%3A8443"
	hosts, err := azdo.NewHosts([]string{host})
	if err != nil {
		t.Fatal(err)
	}
	src := token.SourceFunc(func(_ context.Context, key token.Key) (token.Token, error) {
		return token.Token{}, &token.ConnectError{Key: key, ConnectURL: connectURL}
	})
	sock := hostsCredentialSocket(t, credential.NewTokenHandler(src, hosts))

	g := testenv.NewGit(t)
	out, errOut, err := runSidecar(t, g, bin, "setup", "--global", "--mode", "helper", "--socket", sock, "--host", host)
	if err != nil {
		t.Fatalf("setup: %v\n%s%s", err, out, errOut)
	}
	g.Setenv("GIT_TERMINAL_PROMPT", "0")
	start := time.Now()
	stdout, stderr, err := credentialFill(g, "https://"+host+"/tfs/DefaultCollection/proj/_git/repo")
	if err == nil || strings.Contains(stdout, "password=") {
		t.Fatalf("git credential fill = %q, %v; want a failure", stdout, err)
	}
	if !strings.Contains(stderr, connectURL) {
		t.Errorf("git credential fill stderr = %q; want the connect link %s", stderr, connectURL)
	}
	if strings.Contains(stderr, "could not read Username") {
		t.Errorf("git tried to prompt: %q", stderr)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("git took %s; want it to fail fast", d)
	}
}

// hostsCredentialSocket serves h on a short private socket until the test
// ends.
func hostsCredentialSocket(t *testing.T, h credential.Handler) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "e2eaudit")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "run", "sock")
	ln, err := credential.Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	srv := &credential.Server{Handler: h, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		<-done
	})
	return path
}

// TestAuditSetupListenPortZero: with the environment serve ran with
// (AZDO_LISTEN=127.0.0.1:0), setup writes the proxy's real address, which
// it asks the running sidecar for; with no sidecar it fails and says why.
func TestAuditSetupListenPortZero(t *testing.T) {
	sc := startSidecar(t, []string{"AZDO_PAT=audit-setup-pat"})
	bin := testenv.Binary(t, "azdo-sidecar")
	g := testenv.NewGit(t)
	g.Setenv("AZDO_LISTEN", "127.0.0.1:0")
	g.Setenv("AZDO_SOCKET", sc.Socket)
	file := filepath.Join(g.Home, "sc.gitconfig")
	out, errOut, err := runSidecar(t, g, bin, "setup", "--file", file, "--mode", "proxy")
	if err != nil {
		t.Fatalf("setup: %v\n%s%s", err, out, errOut)
	}
	// The proxy line, with its credential, is in the file setup includes.
	if got := g.Run(t, "config", "--file", file, "--includes", "http.https://dev.azure.com.proxy"); got != sc.proxyURL(t) {
		t.Errorf("http.https://dev.azure.com.proxy (with includes) is not the proxy URL of proxy_url_file")
	}

	g.Setenv("AZDO_SOCKET", filepath.Join(t.TempDir(), "none", "sock"))
	out, errOut, err = runSidecar(t, g, bin, "setup", "--file", filepath.Join(g.Home, "other.gitconfig"), "--mode", "proxy")
	if err == nil || !strings.Contains(errOut, "port 0") {
		t.Errorf("setup without a sidecar = %v, stderr %q; want a failure naming port 0", err, errOut)
	}
}
