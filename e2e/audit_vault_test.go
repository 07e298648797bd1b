package e2e

// Contract checks of the azdo-vault binary, written from docs/contract.md
// as an administrator and an environment use it: what env create prints,
// revocation as admins type it, the ready line, the wire format of
// POST /v1/token and structured logs on stderr.

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/azdo-sidecar/azdo-sidecar/e2e/entraemu"
	"github.com/azdo-sidecar/azdo-sidecar/e2e/internal/testca"
	"github.com/azdo-sidecar/azdo-sidecar/secret"
	"github.com/azdo-sidecar/azdo-sidecar/vault"
	"github.com/azdo-sidecar/azdo-sidecar/vault/store"
)

// runAll runs azdo-vault and returns its exit error, stdout and stderr.
func (w *vaultWorld) runAll(args ...string) (error, string, string) {
	cmd := exec.Command(w.bin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return err, stdout.String(), stderr.String()
}

// TestAuditEnvTokenLifecycle: the stdout of env create is the environment
// token itself (TOKEN=$(azdo-vault env create …)); stderr names the ID,
// and env revoke ID with --store after it locks the environment out of
// the running vault at once.
func TestAuditEnvTokenLifecycle(t *testing.T) {
	w := newVaultWorld(t, entraemu.Config{})
	const pat = "audit-pat-value-0123456789abcdefghijklmnopqrstuvwx"
	w.put(vault.Credential{Owner: "hana", Host: vaultHost, Kind: store.PAT, Secret: secret.New(pat)})
	w.start()

	err, out, errs := w.runAll("env", "create", "--owner", "hana", "--ttl", "1h", "--store", "sqlite:"+w.db, "--key-file", w.keyFile)
	if err != nil {
		t.Fatalf("env create: %v\n%s", err, errs)
	}
	tok := strings.TrimSpace(out)
	if strings.Count(out, "\n") != 1 || !strings.HasPrefix(tok, vault.EnvTokenPrefix) {
		t.Fatalf("env create stdout = %q; want the token alone", out)
	}
	id := regexp.MustCompile(`env_[0-9a-f]{16}`).FindString(errs)
	if id == "" || strings.Contains(errs, tok) {
		t.Fatalf("env create stderr = %q; want the environment ID and not the token", errs)
	}

	a := w.token(tok, "Contoso")
	if a.code != http.StatusOK || a.ok.Token != pat || a.ok.Type != "basic" || a.ok.Username == "" {
		t.Fatalf("token with the printed token = %d %s; want 200 basic with the PAT", a.code, a.raw)
	}
	if !regexp.MustCompile(`"expires_at":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"`).MatchString(a.raw) || !strings.Contains(a.raw, `"sealed":false`) {
		t.Errorf("200 body = %s; want expires_at as RFC 3339 in whole seconds and sealed:false", a.raw)
	}

	if err, _, errs := w.runAll("env", "revoke", id, "--store", "sqlite:"+w.db); err != nil {
		t.Fatalf("env revoke %s --store …: %v\n%s", id, err, errs)
	}
	if a := w.token(tok, "contoso"); a.code != http.StatusUnauthorized {
		t.Errorf("token after env revoke = %d %s; want 401", a.code, a.raw)
	}
	w.proc.stop(t)
	for _, s := range []string{tok, pat} {
		if strings.Contains(w.proc.stderr.String(), s) {
			t.Errorf("vault log holds a secret (%.10s…)", s)
		}
	}
}

// TestAuditServeReadyLineAndJSONLogs: over TLS, the ready line is one JSON
// object with exactly listen (the bound address) and public_key; with
// --log-format json every stderr line is a JSON object, net/http's own
// complaints (a plain-HTTP request to the TLS port) included.
func TestAuditServeReadyLineAndJSONLogs(t *testing.T) {
	w := newVaultWorld(t, entraemu.Config{})
	ca, err := testca.New("audit vault CA", []string{"127.0.0.1"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := filepath.Join(w.dir, "tls.crt"), filepath.Join(w.dir, "tls.key")
	keyDER, err := x509.MarshalPKCS8PrivateKey(ca.Leaf.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Leaf.Certificate[0]}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600)

	cmd := exec.Command(w.bin, append([]string{"--log-format", "json"}, append(w.serveArgs(), "--tls-cert", certFile, "--tls-key", keyFile)...)...)
	stderr := &lockedBuffer{}
	cmd.Stderr = stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &vaultProc{cmd: cmd, stderr: stderr, done: make(chan error, 1)}
	lines := make(chan string, 4)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	go func() { p.done <- cmd.Wait() }()
	t.Cleanup(func() { p.stop(t) })
	var line string
	select {
	case line = <-lines:
	case <-time.After(30 * time.Second):
		t.Fatalf("no ready line: %s", stderr.String())
	}
	var ready map[string]string
	if err := json.Unmarshal([]byte(line), &ready); err != nil || len(ready) != 2 || ready["public_key"] != w.pub || !strings.HasPrefix(ready["listen"], "127.0.0.1:") || strings.HasSuffix(ready["listen"], ":0") {
		t.Fatalf("ready line = %q (%v); want {\"listen\":\"127.0.0.1:<port>\",\"public_key\":%q}", line, err, w.pub)
	}

	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool, MinVersion: tls.VersionTLS12}}}
	resp, err := client.Get("https://" + ready["listen"] + "/healthz")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /healthz over TLS = %v, %v; want 200", resp, err)
	}
	resp.Body.Close()
	if resp, err := (&http.Client{Timeout: 10 * time.Second}).Get("http://" + ready["listen"] + "/healthz"); err == nil {
		resp.Body.Close()
	}
	p.stop(t)
	if extra, ok := <-lines; ok {
		t.Errorf("stdout after the ready line: %q; want nothing more", extra)
	}
	logs := strings.TrimSpace(stderr.String())
	if !strings.Contains(logs, "HTTP request to an HTTPS server") {
		t.Errorf("the plain-HTTP request was not logged:\n%s", logs)
	}
	for _, l := range strings.Split(logs, "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil || m["msg"] == nil {
			t.Errorf("stderr line %q is not a JSON log record (--log-format json)", l)
		}
	}
}

// TestAuditVerifyWithoutKeyFile: `azdo-vault verify --config FILE`, as the
// contract writes it, still checks discovery and the client ID; it fails
// (the secret is unchecked) and says how to pass the key.
func TestAuditVerifyWithoutKeyFile(t *testing.T) {
	w := newVaultWorld(t, entraemu.Config{})
	issuer := w.entra.IssuerURL(w.entra.TenantID())
	good := w.seal(w.pub, vaultClientSecret.Reveal())
	tests := []struct {
		name, clientID, issuer string
		want                   []string
	}{
		{"known client", vaultClientID, issuer, []string{"discovered", "not checked", "--key-file"}},
		{"unknown client", "11111111-2222-3333-4444-555555555555", issuer, []string{"does not exist", "AADSTS700016"}},
		{"unreachable issuer", vaultClientID, "https://127.0.0.1:1/" + w.entra.TenantID() + "/v2.0", []string{"Cannot reach", "127.0.0.1:1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w.writeConfig(good, tt.clientID, tt.issuer)
			err, out, errs := w.runAll("verify", "--config", w.cfgFile, "--upstream-ca-file", w.caFile)
			if err == nil {
				t.Fatalf("verify without --key-file = success\n%s; want a failure", out)
			}
			for _, s := range tt.want {
				if !strings.Contains(errs, s) {
					t.Errorf("verify stderr lacks %q:\n%s", s, errs)
				}
			}
		})
	}
}
