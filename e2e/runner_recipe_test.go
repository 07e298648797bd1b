package e2e

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/azdo-sidecar/azdo-sidecar/e2e/entraemu"
	"github.com/azdo-sidecar/azdo-sidecar/e2e/internal/testca"
	"github.com/azdo-sidecar/azdo-sidecar/e2e/testenv"
	"github.com/azdo-sidecar/azdo-sidecar/vault"
	"github.com/azdo-sidecar/azdo-sidecar/vaultapi"
)

// runnerRecipeSkipped are the runner recipe's lines the test does not run,
// each with why. Nothing else is left out.
var runnerRecipeSkipped = map[string]string{
	// Needs root through sudo (not installed in CI, and the test must not
	// write /etc). The test makes the two directories, mode 0700 and
	// owned by the user running it, which is all the line does.
	`sudo install -d -m 0700 -o "$USER" /etc/azdo-vault /var/lib/azdo-vault`: "sudo",
}

// TestReadmeRunnerRecipe runs the README's runner recipe as written, from
// a clean HOME and a checkout: go install of the binaries, keygen, seal,
// vault.yaml, verify and serve (over TLS), then the per-environment
// env create in the same settings. Only example values are replaced (the
// directories, the Entra issuer, client ID and secret, the public URL and
// port) and the emulator's CA made trusted (AZDO_UPSTREAM_CA_FILE). The
// vault must answer /healthz with its provider verified, and env create
// must print a token the vault accepts.
func TestReadmeRunnerRecipe(t *testing.T) {
	root, err := testenv.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go toolchain on PATH to run the recipe's go install")
	}
	dir := t.TempDir()
	etc, lib, home := filepath.Join(dir, "etc", "azdo-vault"), filepath.Join(dir, "var", "lib", "azdo-vault"), filepath.Join(dir, "home")
	for _, d := range []string{etc, lib, home} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}

	entra, err := entraemu.New(entraemu.Config{})
	if err != nil {
		t.Fatal(err)
	}
	entra.Start()
	t.Cleanup(func() { _ = entra.Close() })
	entraCA, err := entra.CAFile()
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	public := "https://" + addr
	entra.RegisterApp(vaultClientID, vaultClientSecret, []string{public + "/oauth/callback"})
	secretFile := filepath.Join(dir, "client-secret.txt")
	if err := os.WriteFile(secretFile, []byte(vaultClientSecret.Reveal()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// The runner's TLS certificate, for 127.0.0.1.
	ca, err := testca.New("runner recipe CA", []string{"127.0.0.1"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(ca.Leaf.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(etc, "tls.crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Leaf.Certificate[0]}), 0o600)
	os.WriteFile(filepath.Join(etc, "tls.key"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600)

	subst := func(script string, pairs [][2]string) string {
		t.Helper()
		for _, p := range pairs {
			if !strings.Contains(script, p[0]) {
				t.Fatalf("the recipe no longer contains %q:\n%s", p[0], script)
			}
			script = strings.ReplaceAll(script, p[0], p[1])
		}
		return script
	}
	paths := [][2]string{{"/etc/azdo-vault", etc}, {"/var/lib/azdo-vault", lib}}
	setup := readmeBlock(t, `go install ./cmd/... && export PATH="$(go env GOPATH)/bin:$PATH"   # azdo-vault, azdo-sidecar, git-credential-azdo`)
	var kept []string
	for _, l := range strings.Split(setup, "\n") {
		if _, skip := runnerRecipeSkipped[l]; !skip {
			kept = append(kept, l)
		}
	}
	if len(kept) != strings.Count(setup, "\n")+1-len(runnerRecipeSkipped) {
		t.Fatalf("a skipped line is no longer in the recipe:\n%s", setup)
	}
	setup = subst(strings.Join(kept, "\n"), append([][2]string{
		{"< client-secret.txt", "< " + secretFile},
		{"https://runner.example.com:8443", public},
		{"https://login.microsoftonline.com/<tenant-id>/v2.0", entra.IssuerURL(entra.TenantID())},
		{"client_id: <guid>", "client_id: " + vaultClientID},
		{"--listen :8443", "--listen " + addr},
	}, paths...))
	var exports string
	for _, l := range strings.Split(setup, "\n") {
		if strings.HasPrefix(l, "export AZDO_KEY_FILE=") {
			exports = l
		}
	}
	if exports == "" {
		t.Fatalf("the recipe sets no AZDO_KEY_FILE / AZDO_STORE:\n%s", setup)
	}
	perEnv := readmeBlock(t, "azdo-vault env create --owner alice@contoso.com     # prints the environment token")

	// A clean HOME; the toolchain's caches only make go install fast.
	env := []string{"HOME=" + home, "PATH=" + filepath.Dir(goBin) + ":/usr/local/bin:/usr/bin:/bin",
		"GOTOOLCHAIN=local", "GOFLAGS=", "AZDO_UPSTREAM_CA_FILE=" + entraCA}
	for _, k := range []string{"GOCACHE", "GOMODCACHE"} {
		out, err := exec.Command(goBin, "env", k).Output()
		if err != nil {
			t.Fatal(err)
		}
		env = append(env, k+"="+strings.TrimSpace(string(out)))
	}

	outFile, err := os.Create(filepath.Join(dir, "recipe.out"))
	if err != nil {
		t.Fatal(err)
	}
	defer outFile.Close()
	out := fileText(outFile.Name())
	cmd := exec.Command("bash", "-euc", setup)
	cmd.Dir = root // "from a checkout of this repository"
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = outFile, outFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		<-done
	})

	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool, MinVersion: tls.VersionTLS12}}}
	var health healthz
	deadline := time.Now().Add(4 * time.Minute) // go install from a cold cache
	for {
		resp, err := client.Get(public + "/healthz")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &health) != nil {
				t.Fatalf("GET /healthz = %d %s; want 200 JSON\n%s", resp.StatusCode, b, out.String())
			}
			break
		}
		select {
		case err := <-done:
			t.Fatalf("the recipe ended (%v) before the vault served:\n%s", err, out.String())
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("the vault does not answer /healthz at %s:\n%s", public, out.String())
		}
	}
	if len(health.Providers) != 1 || health.Providers[0].Host != "dev.azure.com" || health.Providers[0].OAuth != vault.OAuthOK || !health.Providers[0].PAT {
		t.Errorf("/healthz providers = %+v; want dev.azure.com with oauth ok and pat", health.Providers)
	}
	for _, f := range []string{"azdo-vault", "azdo-sidecar", "git-credential-azdo"} {
		if _, err := os.Stat(filepath.Join(home, "go", "bin", f)); err != nil {
			t.Errorf("go install did not install %s: %v", f, err)
		}
	}

	// Per environment, in the administrator's settings.
	create := exec.Command("bash", "-euc", `export PATH="$(go env GOPATH)/bin:$PATH"`+"\n"+exports+"\n"+perEnv)
	create.Dir, create.Env = dir, env
	var stdout, stderr bytes.Buffer
	create.Stdout, create.Stderr = &stdout, &stderr
	if err := create.Run(); err != nil {
		t.Fatalf("env create: %v\n%s", err, stderr.String())
	}
	tok := strings.TrimSpace(stdout.String())
	if tok == "" || strings.ContainsAny(tok, " \n") {
		t.Fatalf("env create printed %q; want the environment token alone", stdout.String())
	}
	body, _ := json.Marshal(vaultapi.TokenRequest{Host: "dev.azure.com", Org: "contoso", MinValidSeconds: 300})
	req, _ := http.NewRequest(http.MethodPost, public+vaultapi.TokenPath, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var e vaultapi.ErrorResponse
	json.Unmarshal(b, &e)
	if resp.StatusCode != http.StatusNotFound || !strings.HasPrefix(e.ConnectURL, public+"/connect?link=") {
		t.Errorf("token for the new environment = %d %s; want 404 with a %s/connect link (a known environment, not yet connected)", resp.StatusCode, b, public)
	}
	if strings.Contains(out.String(), vaultClientSecret.Reveal()) || strings.Contains(out.String(), tok) {
		t.Errorf("the recipe's output holds a secret:\n%s", out.String())
	}
}
