package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/azdo-sidecar/azdo-sidecar/e2e/entraemu"
	"github.com/azdo-sidecar/azdo-sidecar/e2e/testenv"
	"github.com/azdo-sidecar/azdo-sidecar/secret"
	"github.com/azdo-sidecar/azdo-sidecar/vault"
	"github.com/azdo-sidecar/azdo-sidecar/vault/store"
	"github.com/azdo-sidecar/azdo-sidecar/vaultapi"
)

const (
	vaultClientID = "0b6c8d1e-2f3a-4b5c-9d8e-7f6a5b4c3d2e"
	vaultUser     = "erin@contoso.example"
	vaultHost     = "dev.azure.com"
)

var vaultClientSecret = secret.New("vault-e2e-client-secret-value")

// lockedBuffer is a bytes.Buffer safe for a process writing and a test
// reading.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}
func (l *lockedBuffer) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

// vaultWorld is an Entra emulator and an azdo-vault binary configured for
// it, with its key, config and SQLite store in a temporary directory.
type vaultWorld struct {
	t       *testing.T
	bin     string
	dir     string
	keyFile string
	cfgFile string
	db      string
	pub     string
	entra   *entraemu.Server
	caFile  string
	proc    *vaultProc
	logs    []*lockedBuffer
	// env is added to the environment of serve (e.g. HTTPS_PROXY).
	env []string
	// pidFile is serve's --pid-file, for azdo-vault reload.
	pidFile string
}

func newVaultWorld(t *testing.T, cfg entraemu.Config) *vaultWorld {
	t.Helper()
	w := &vaultWorld{t: t, bin: testenv.Binary(t, "azdo-vault"), dir: t.TempDir()}
	w.keyFile = filepath.Join(w.dir, "runner.key")
	w.cfgFile = filepath.Join(w.dir, "vault.yaml")
	w.db = filepath.Join(w.dir, "state", "vault.db")
	w.pidFile = filepath.Join(w.dir, "run", "serve.pid")

	entra, err := entraemu.New(cfg)
	if err != nil {
		t.Fatalf("entraemu.New: %v", err)
	}
	entra.Start()
	t.Cleanup(func() { _ = entra.Close() })
	entra.RegisterApp(vaultClientID, vaultClientSecret, []string{"http://127.0.0.1:9/oauth/callback"})
	if _, err := entra.AddUser(entraemu.User{UPN: vaultUser}); err != nil {
		t.Fatal(err)
	}
	w.entra = entra
	if w.caFile, err = entra.CAFile(); err != nil {
		t.Fatal(err)
	}

	out, err := w.run("", "keygen", "--key-file", w.keyFile)
	if err != nil {
		t.Fatalf("keygen: %v\n%s", err, out)
	}
	w.pub = strings.TrimSpace(out)
	w.writeConfig(w.seal(w.pub, vaultClientSecret.Reveal()), vaultClientID, entra.IssuerURL(entra.TenantID()))
	return w
}

// run runs azdo-vault with args and stdin, returning stdout (stderr on
// failure).
func (w *vaultWorld) run(stdin string, args ...string) (string, error) {
	cmd := exec.Command(w.bin, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		return stderr.String(), err
	}
	return stdout.String(), nil
}

func (w *vaultWorld) seal(pub, value string) string {
	w.t.Helper()
	out, err := w.run(value+"\n", "seal", "--public-key", pub)
	if err != nil {
		w.t.Fatalf("seal: %v\n%s", err, out)
	}
	return strings.TrimSpace(out)
}

func (w *vaultWorld) writeConfig(sealed, clientID, issuer string) {
	w.t.Helper()
	cfg := fmt.Sprintf(`public_url: http://127.0.0.1:9
providers:
  - host: %s
    oauth:
      issuer_url: %s
      client_id: %s
      client_secret_sealed: %s
    pat:
      enabled: true
`, vaultHost, issuer, clientID, sealed)
	if err := os.WriteFile(w.cfgFile, []byte(cfg), 0o600); err != nil {
		w.t.Fatal(err)
	}
}

// vaultProc is a running `azdo-vault serve`.
type vaultProc struct {
	cmd    *exec.Cmd
	addr   string
	pub    string
	stderr *lockedBuffer
	done   chan error
}

func (w *vaultWorld) serveArgs() []string {
	return []string{"serve", "--config", w.cfgFile, "--key-file", w.keyFile, "--listen", "127.0.0.1:0",
		"--store", "sqlite:" + w.db, "--upstream-ca-file", w.caFile, "--pid-file", w.pidFile}
}

// start starts the vault and waits for its ready line.
func (w *vaultWorld) start() *vaultProc {
	w.t.Helper()
	p, err := w.startErr()
	if err != nil {
		w.t.Fatal(err)
	}
	w.proc = p
	return p
}

func (w *vaultWorld) startErr(extra ...string) (*vaultProc, error) {
	cmd := exec.Command(w.bin, append(w.serveArgs(), extra...)...)
	if w.env != nil {
		cmd.Env = append(os.Environ(), w.env...)
	}
	p := &vaultProc{cmd: cmd, stderr: &lockedBuffer{}, done: make(chan error, 1)}
	w.logs = append(w.logs, p.stderr)
	cmd.Stderr = p.stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		if sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		io.Copy(io.Discard, stdout)
	}()
	go func() { p.done <- cmd.Wait() }()
	w.t.Cleanup(func() { p.stop(w.t) })
	select {
	case line, ok := <-lines:
		if !ok {
			err := <-p.done
			p.done <- err
			return nil, fmt.Errorf("vault exited before its ready line (%v): %s", err, p.stderr.String())
		}
		var ready struct {
			Listen    string `json:"listen"`
			PublicKey string `json:"public_key"`
		}
		if err := json.Unmarshal([]byte(line), &ready); err != nil || ready.Listen == "" {
			return nil, fmt.Errorf("ready line %q: %v", line, err)
		}
		p.addr, p.pub = ready.Listen, ready.PublicKey
		return p, nil
	case <-time.After(30 * time.Second):
		return nil, fmt.Errorf("no ready line after 30s: %s", p.stderr.String())
	}
}

// stop sends SIGTERM and waits for a clean exit.
func (p *vaultProc) stop(t *testing.T) {
	if p.cmd.ProcessState != nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		p.done <- err
		if err != nil {
			t.Errorf("vault exit after SIGTERM = %v; want 0 (graceful)\n%s", err, p.stderr.String())
		}
	case <-time.After(20 * time.Second):
		_ = p.cmd.Process.Kill()
		t.Errorf("vault did not stop within 20s of SIGTERM")
	}
}

// envCreate registers an environment through the CLI.
func (w *vaultWorld) envCreate(owner string, ttl time.Duration) (id, token string) {
	w.t.Helper()
	out, err := w.run("", "env", "create", "--owner", owner, "--ttl", ttl.String(), "--json", "--store", "sqlite:"+w.db, "--key-file", w.keyFile)
	if err != nil {
		w.t.Fatalf("env create: %v\n%s", err, out)
	}
	var e struct{ ID, Token string }
	if err := json.Unmarshal([]byte(out), &e); err != nil || e.Token == "" {
		w.t.Fatalf("env create printed %q: %v", out, err)
	}
	return e.ID, e.Token
}

// noRefresh is the Refresher of the seeding vault, which never refreshes.
type noRefresh struct{}

func (noRefresh) Refresh(context.Context, secret.String) (vault.Grant, error) {
	return vault.Grant{}, errors.New("seeding only")
}

// put stores a credential through the vault's internal API, on the same
// store file the serving vault uses — as the Connect and PAT pages do.
func (w *vaultWorld) put(c vault.Credential) {
	w.t.Helper()
	kp, err := vault.LoadKeyFile(w.keyFile)
	if err != nil {
		w.t.Fatal(err)
	}
	st, err := store.OpenSQLite(context.Background(), w.db, time.Now)
	if err != nil {
		w.t.Fatal(err)
	}
	defer st.Close()
	v, err := vault.New(vault.Config{Keys: kp, Store: st, Providers: []vault.Provider{{Host: vaultHost, OAuth: noRefresh{}, PAT: true}},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		w.t.Fatal(err)
	}
	defer v.Close()
	if _, err := v.PutCredential(context.Background(), c); err != nil {
		w.t.Fatalf("PutCredential: %v", err)
	}
}

// connect seeds an OAuth grant for vaultUser obtained from the emulator.
func (w *vaultWorld) connect(owner string) entraemu.Tokens {
	w.t.Helper()
	tok, err := w.entra.IssueTokensForTest(vaultUser)
	if err != nil {
		w.t.Fatal(err)
	}
	w.put(vault.Credential{Owner: owner, Host: vaultHost, Kind: store.OAuth, Secret: tok.RefreshToken})
	return tok
}

type vaultAnswer struct {
	code       int
	retryAfter string
	raw        string
	ok         vaultapi.TokenResponse
	err        vaultapi.ErrorResponse
}

func (w *vaultWorld) token(envTok, org string) vaultAnswer {
	w.t.Helper()
	return w.tokenAt(w.proc, envTok, org)
}

func (w *vaultWorld) tokenAt(p *vaultProc, envTok, org string) vaultAnswer {
	w.t.Helper()
	body, _ := json.Marshal(vaultapi.TokenRequest{Host: vaultHost, Org: org, MinValidSeconds: 300})
	req, _ := http.NewRequest(http.MethodPost, "http://"+p.addr+vaultapi.TokenPath, bytes.NewReader(body))
	if envTok != "" {
		req.Header.Set("Authorization", "Bearer "+envTok)
	}
	client := &http.Client{Timeout: 60 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		// Called from many goroutines: report, do not Fatal.
		return vaultAnswer{code: -1, raw: err.Error()}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	a := vaultAnswer{code: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After"), raw: string(b)}
	if a.code == http.StatusOK {
		json.Unmarshal(b, &a.ok)
	} else {
		json.Unmarshal(b, &a.err)
	}
	return a
}

func (w *vaultWorld) storedRefreshToken() string {
	w.t.Helper()
	kp, err := vault.LoadKeyFile(w.keyFile)
	if err != nil {
		w.t.Fatal(err)
	}
	st, err := store.OpenSQLite(context.Background(), w.db, time.Now)
	if err != nil {
		w.t.Fatal(err)
	}
	defer st.Close()
	cs, err := st.Credentials(context.Background(), vaultUser, vaultHost)
	if err != nil {
		w.t.Fatal(err)
	}
	for _, c := range cs {
		if c.Kind == store.OAuth {
			b, err := kp.Open(c.Sealed)
			if err != nil {
				w.t.Fatal(err)
			}
			return string(b)
		}
	}
	w.t.Fatal("no OAuth credential stored")
	return ""
}

// TestVaultKeysAndSealing: keygen writes 0600 and prints the public key the
// serving vault reports; serve refuses a key file others can read and a
// client secret sealed to another runner, naming this runner's key.
func TestVaultKeysAndSealing(t *testing.T) {
	w := newVaultWorld(t, entraemu.Config{})
	fi, err := os.Stat(w.keyFile)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode = %v, %v; want 0600", fi.Mode().Perm(), err)
	}
	if out, err := w.run("", "keygen", "--key-file", w.keyFile); err == nil {
		t.Errorf("keygen over an existing key succeeded: %s", out)
	}

	os.Chmod(w.keyFile, 0o640)
	_, err = w.startErr()
	if err == nil || !strings.Contains(err.Error(), "chmod 600 "+w.keyFile) {
		t.Errorf("serve with a 0640 key = %v; want a refusal naming chmod 600 %s", err, w.keyFile)
	}
	os.Chmod(w.keyFile, 0o600)

	otherKey := filepath.Join(w.dir, "other.key")
	out, err := w.run("", "keygen", "--key-file", otherKey)
	if err != nil {
		t.Fatal(err)
	}
	w.writeConfig(w.seal(strings.TrimSpace(out), vaultClientSecret.Reveal()), vaultClientID, w.entra.IssuerURL(w.entra.TenantID()))
	// Providers are settings (issue 13): the vault starts, with that
	// provider disabled and the reason, naming this runner's public key,
	// in /healthz and the log.
	p, err := w.startErr()
	if err != nil {
		t.Fatalf("serve with a secret sealed to another key = %v; want a start with the provider disabled", err)
	}
	resp, err := http.Get("http://" + p.addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `"oauth":"disabled"`) || !strings.Contains(string(body), w.pub) || strings.Contains(string(body), vaultClientSecret.Reveal()) {
		t.Errorf("/healthz = %s; want the provider disabled, naming public key %s", body, w.pub)
	}
	p.stop(t)
	if log := p.stderr.String(); !strings.Contains(log, "provider disabled") || !strings.Contains(log, w.pub) || strings.Contains(log, vaultClientSecret.Reveal()) {
		t.Errorf("vault log lacks the disabled provider and the public key:\n%s", log)
	}
}

// TestVaultEnvironmentTokens: a PAT is served to a valid environment; a
// wrong, expired or revoked environment token gets the same 401.
func TestVaultEnvironmentTokens(t *testing.T) {
	w := newVaultWorld(t, entraemu.Config{})
	const pat = "e2e-pat-value-0123456789abcdefghijklmnopqrstuvwxyz"
	w.put(vault.Credential{Owner: "frank", Host: vaultHost, Org: "contoso", Kind: store.PAT, Secret: secret.New(pat)})
	w.start()
	_, good := w.envCreate("frank", time.Hour)
	_, expired := w.envCreate("frank", time.Second)
	revokedID, revoked := w.envCreate("frank", time.Hour)
	if out, err := w.run("", "env", "revoke", "--store", "sqlite:"+w.db, revokedID); err != nil {
		t.Fatalf("env revoke: %v\n%s", err, out)
	}

	a := w.token(good, "contoso")
	if a.code != 200 || a.ok.Type != vaultapi.TypeBasic || a.ok.Token != pat || a.ok.Username == "" || a.ok.Username == pat {
		t.Fatalf("token for a valid environment = %d %s; want 200 basic with the PAT", a.code, a.raw)
	}
	time.Sleep(1100 * time.Millisecond)
	tests := []struct{ name, tok string }{
		{"missing", ""},
		{"wrong", vault.EnvTokenPrefix + strings.Repeat("A", 43)},
		{"expired", expired},
		{"revoked", revoked},
	}
	var first string
	for _, tt := range tests {
		a := w.token(tt.tok, "contoso")
		if a.code != http.StatusUnauthorized {
			t.Errorf("token with a %s environment token = %d %s; want 401", tt.name, a.code, a.raw)
		}
		if first == "" {
			first = a.raw
		} else if a.raw != first {
			t.Errorf("401 body for %s = %q; want the same as the others (%q)", tt.name, a.raw, first)
		}
	}
	w.proc.stop(t)
	for _, s := range []string{pat, good, expired, revoked} {
		if strings.Contains(w.proc.stderr.String(), s) {
			t.Errorf("vault log contains a secret (%.10s…)", s)
		}
	}
}

// TestVaultRefreshAcrossExpiry: a refresh across expiry returns a new token
// and persists the rotated refresh token; a restart in between changes
// nothing (strict rotation: reusing an old refresh token would fail).
func TestVaultRefreshAcrossExpiry(t *testing.T) {
	// Served from memory for half its life (3s), expired after 6s.
	w := newVaultWorld(t, entraemu.Config{StrictRotation: true, AccessTokenLifetime: 6 * time.Second})
	initial := w.connect(vaultUser)
	w.start()
	_, env := w.envCreate(vaultUser, time.Hour)

	a := w.token(env, "contoso")
	if a.code != 200 || a.ok.Type != vaultapi.TypeBearer {
		t.Fatalf("first token = %d %s; want 200 bearer", a.code, a.raw)
	}
	if sub, err := w.entra.VerifyAccessToken(a.ok.Token); err != nil || sub != vaultUser {
		t.Fatalf("VerifyAccessToken(first) = %q, %v; want %s", sub, err, vaultUser)
	}
	rotated := w.storedRefreshToken()
	if rotated == initial.RefreshToken.Reveal() {
		t.Fatalf("stored refresh token was not rotated")
	}
	// Served from memory within its life.
	if b := w.token(env, "contoso"); b.ok.Token != a.ok.Token {
		t.Errorf("second token within the lifetime differs; want the cached one")
	}
	if n := w.entra.Counts().RefreshToken; n != 1 {
		t.Errorf("refreshes = %d; want 1", n)
	}

	// Restart, then cross the expiry.
	w.proc.stop(t)
	w.start()
	time.Sleep(6 * time.Second)
	b := w.token(env, "contoso")
	if b.code != 200 || b.ok.Token == a.ok.Token {
		t.Fatalf("token across expiry after restart = %d %s; want a new one", b.code, b.raw)
	}
	if _, err := w.entra.VerifyAccessToken(b.ok.Token); err != nil {
		t.Errorf("VerifyAccessToken(new) = %v", err)
	}
	if got := w.storedRefreshToken(); got == rotated {
		t.Errorf("refresh token not rotated again")
	}
	if n := w.entra.DoubleUseCount(); n != 0 {
		t.Errorf("refresh tokens used twice = %d; want 0", n)
	}
}

// TestVaultConcurrentRequestsRefreshOnce: 100 concurrent requests for one
// user cause exactly one refresh at the emulator.
func TestVaultConcurrentRequestsRefreshOnce(t *testing.T) {
	w := newVaultWorld(t, entraemu.Config{StrictRotation: true})
	w.connect(vaultUser)
	w.start()
	_, env := w.envCreate(vaultUser, time.Hour)
	w.entra.ResetCounts()
	var wg sync.WaitGroup
	answers := make([]vaultAnswer, 100)
	for i := range answers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			answers[i] = w.token(env, "contoso")
		}()
	}
	wg.Wait()
	for i, a := range answers {
		if a.code != 200 || a.ok.Token != answers[0].ok.Token {
			t.Fatalf("answer %d = %d; want 200 with the same token as the others", i, a.code)
		}
	}
	if n := w.entra.Counts().RefreshToken; n != 1 {
		t.Errorf("refreshes at the emulator for 100 concurrent requests = %d; want 1", n)
	}
}

// TestVaultRevokedGrant: 409 with a connect_url, and no further refresh
// attempts.
func TestVaultRevokedGrant(t *testing.T) {
	w := newVaultWorld(t, entraemu.Config{})
	w.connect(vaultUser)
	w.start()
	_, env := w.envCreate(vaultUser, time.Hour)
	if err := w.entra.RevokeUser(vaultUser); err != nil {
		t.Fatal(err)
	}
	w.entra.ResetCounts()
	for i := range 3 {
		a := w.token(env, "contoso")
		if a.code != http.StatusConflict || a.err.Error != vaultapi.ErrReconnectRequired || !strings.HasPrefix(a.err.ConnectURL, "http://127.0.0.1:9/connect?") {
			t.Fatalf("request %d after revocation = %d %s; want 409 reconnect_required with connect_url", i, a.code, a.raw)
		}
	}
	if n := w.entra.Counts().RefreshToken; n != 1 {
		t.Errorf("refresh attempts after revocation = %d; want 1 (never retried)", n)
	}
}

// TestVaultEntraOutage: 503 with Retry-After while Entra is down, then
// recovery without intervention.
func TestVaultEntraOutage(t *testing.T) {
	w := newVaultWorld(t, entraemu.Config{})
	w.connect(vaultUser)
	w.start()
	_, env := w.envCreate(vaultUser, time.Hour)
	w.entra.SetOutage(true)
	a := w.token(env, "contoso")
	if a.code != http.StatusServiceUnavailable || a.retryAfter == "" || a.err.Error != vaultapi.ErrUnavailable {
		t.Fatalf("during the outage = %d Retry-After %q %s; want 503 with Retry-After", a.code, a.retryAfter, a.raw)
	}
	w.entra.SetOutage(false)
	if a := w.token(env, "contoso"); a.code != 200 {
		t.Fatalf("after the outage = %d %s; want 200", a.code, a.raw)
	}
}

// TestVaultStoreHoldsNoPlaintext searches the store file, its WAL and the
// logs for every secret the vault handled.
func TestVaultStoreHoldsNoPlaintext(t *testing.T) {
	w := newVaultWorld(t, entraemu.Config{StrictRotation: true, AccessTokenLifetime: 2 * time.Second})
	initial := w.connect(vaultUser)
	const pat = "e2e-pat-for-allorgs-0123456789abcdefghijklmnopqrstu"
	w.put(vault.Credential{Owner: "gina", Host: vaultHost, Kind: store.PAT, Secret: secret.New(pat)})
	w.start()
	_, env := w.envCreate(vaultUser, time.Hour)
	_, env2 := w.envCreate("gina", time.Hour)
	secrets := []string{initial.RefreshToken.Reveal(), initial.AccessToken.Reveal(), pat, env, env2, vaultClientSecret.Reveal()}
	for range 2 {
		a := w.token(env, "contoso")
		if a.code != 200 {
			t.Fatalf("token = %d %s", a.code, a.raw)
		}
		secrets = append(secrets, a.ok.Token, w.storedRefreshToken())
		time.Sleep(1100 * time.Millisecond)
	}
	if a := w.token(env2, "contoso"); a.code != 200 || a.ok.Token != pat {
		t.Fatalf("PAT token = %d", a.code)
	}
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Get("http://" + w.proc.addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	resp.Body.Close()
	if !strings.Contains(string(metrics), "azdo_vault_refreshes_total") {
		t.Errorf("/metrics lacks azdo_vault_refreshes_total")
	}
	for _, s := range append(secrets, vaultUser, "gina") {
		if strings.Contains(string(metrics), s) {
			t.Errorf("/metrics holds a secret or a user name (%.8s…)", s)
		}
	}
	key, _ := os.ReadFile(w.keyFile)
	secrets = append(secrets, strings.TrimSpace(string(key)))
	files, _ := filepath.Glob(w.db + "*")
	if len(files) < 2 {
		t.Fatalf("store files = %v; want the database and its WAL", files)
	}
	w.proc.stop(t)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		for _, s := range secrets {
			if bytes.Contains(b, []byte(s)) {
				t.Errorf("%s holds a plaintext secret (%.8s…)", filepath.Base(f), s)
			}
		}
	}
	for _, l := range w.logs {
		for _, s := range secrets {
			if strings.Contains(l.String(), s) {
				t.Errorf("vault log holds a secret (%.8s…)", s)
			}
		}
	}
}

// TestVaultVerify: verify passes a good configuration and names a wrong
// client secret, an unknown client ID, a resource missing from the tenant
// and an unreachable issuer precisely, with a non-zero exit.
func TestVaultVerify(t *testing.T) {
	w := newVaultWorld(t, entraemu.Config{})
	issuer := w.entra.IssuerURL(w.entra.TenantID())
	good := w.seal(w.pub, vaultClientSecret.Reveal())
	tests := []struct {
		name     string
		sealed   string
		clientID string
		issuer   string
		setup    func()
		want     []string // in the error output; none: success
	}{
		{name: "good", sealed: good, clientID: vaultClientID, issuer: issuer},
		{name: "oauth2 issuer form", sealed: good, clientID: vaultClientID, issuer: strings.TrimSuffix(issuer, "/v2.0") + "/oauth2/v2.0"},
		{name: "wrong client secret", sealed: w.seal(w.pub, "not-the-secret"), clientID: vaultClientID, issuer: issuer,
			want: []string{"client secret", "is wrong", "AADSTS7000215"}},
		{name: "unknown client id", sealed: good, clientID: "11111111-2222-3333-4444-555555555555", issuer: issuer,
			want: []string{"does not exist", "AADSTS700016", "11111111-2222-3333-4444-555555555555"}},
		{name: "resource not in tenant", sealed: good, clientID: vaultClientID, issuer: issuer,
			setup: func() { w.entra.SetResourceAvailable(w.entra.TenantID(), false) },
			want:  []string{"not available in this tenant", "AADSTS500011"}},
		{name: "unreachable issuer", sealed: good, clientID: vaultClientID, issuer: "https://127.0.0.1:1/" + w.entra.TenantID() + "/v2.0",
			want: []string{"Cannot reach", "127.0.0.1:1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w.entra.SetResourceAvailable(w.entra.TenantID(), true)
			if tt.setup != nil {
				tt.setup()
			}
			w.writeConfig(tt.sealed, tt.clientID, tt.issuer)
			out, err := w.run("", "verify", "--config", w.cfgFile, "--key-file", w.keyFile, "--upstream-ca-file", w.caFile)
			if len(tt.want) == 0 {
				if err != nil || !strings.Contains(out, "ok") {
					t.Fatalf("verify = %v\n%s; want success", err, out)
				}
				return
			}
			if err == nil {
				t.Fatalf("verify = success\n%s; want a failure naming %q", out, tt.want)
			}
			for _, s := range tt.want {
				if !strings.Contains(out, s) {
					t.Errorf("verify output lacks %q:\n%s", s, out)
				}
			}
			if strings.Contains(out, vaultClientSecret.Reveal()) || strings.Contains(out, "not-the-secret") {
				t.Errorf("verify output shows a client secret")
			}
		})
	}
}

// TestVaultTwoReplicas: two vaults share one store; concurrent requests
// through both are all served, each replica refreshes at most once, and the
// credential ends usable (compare-and-swap keeps one rotation).
func TestVaultTwoReplicas(t *testing.T) {
	w := newVaultWorld(t, entraemu.Config{})
	w.connect(vaultUser)
	a := w.start()
	b, err := w.startErr()
	if err != nil {
		t.Fatal(err)
	}
	_, env := w.envCreate(vaultUser, time.Hour)
	burstAcrossReplicas(t, w, a, b, env)
	// The stored grant still works: a fresh replica refreshes with it.
	a.stop(t)
	b.stop(t)
	w.start()
	if ans := w.token(env, "contoso"); ans.code != 200 {
		t.Fatalf("after both replicas stopped = %d %s; want 200", ans.code, ans.raw)
	}
}

// burstAcrossReplicas sends 40 concurrent token requests for env, half to
// replica a and half to b, and requires every one answered 200 with one or
// two refreshes in all (at most one per replica).
func burstAcrossReplicas(t *testing.T, w *vaultWorld, a, b *vaultProc, env string) {
	t.Helper()
	w.entra.ResetCounts()
	var wg sync.WaitGroup
	answers := make([]vaultAnswer, 40)
	for i := range answers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := a
			if i%2 == 1 {
				p = b
			}
			answers[i] = w.tokenAt(p, env, "contoso")
		}()
	}
	wg.Wait()
	for i, ans := range answers {
		if ans.code != 200 {
			t.Fatalf("answer %d = %d %s; want 200", i, ans.code, ans.raw)
		}
	}
	if n := w.entra.Counts().RefreshToken; n < 1 || n > 2 {
		t.Errorf("refreshes for two replicas = %d; want 1 or 2", n)
	}
}
