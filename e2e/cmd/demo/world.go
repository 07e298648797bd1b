package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/azdo-sidecar/azdo-sidecar/e2e/azdoemu"
	"github.com/azdo-sidecar/azdo-sidecar/e2e/entraemu"
	"github.com/azdo-sidecar/azdo-sidecar/e2e/testenv"
	"github.com/azdo-sidecar/azdo-sidecar/sealbox"
	"github.com/azdo-sidecar/azdo-sidecar/secret"
	"github.com/azdo-sidecar/azdo-sidecar/vault"
	"github.com/azdo-sidecar/azdo-sidecar/vault/connect"
	"github.com/azdo-sidecar/azdo-sidecar/vault/store"
	"github.com/azdo-sidecar/azdo-sidecar/vaultapi"
)

// The demo's names.
const (
	demoHost    = "dev.azure.com"
	demoOrg     = "demo"
	demoProject = "demo"
	demoRepo    = "hello"
	// The environment's owner is the emulator user's identity: the vault
	// stores a Connect only for the account the owner names.
	demoUPN   = "demo@demo.example"
	demoOwner = demoUPN
	// otherUPN is another account of the tenant: the demo shows its
	// sign-in on demo's link being refused.
	otherUPN     = "mallory@demo.example"
	demoClientID = "5d3e0a4b-7c1f-4e2a-9b8d-0f1e2d3c4b5a"
	repoURL      = "https://" + demoHost + "/" + demoOrg + "/" + demoProject + "/_git/" + demoRepo
	// demoPushRef is the only ref glob the demo environment may push to.
	demoPushRef = "refs/heads/agent/*"
)

// world is the emulators and the vault, all in this process.
type world struct {
	azdo   *azdoemu.Server
	entra  *entraemu.Server
	st     *store.SQLite
	v      *vault.Vault
	srv    *http.Server
	served chan error
	url    string        // the vault's public URL (plain HTTP on loopback)
	envTok secret.String // the demo environment's vault token
	caFile string        // both emulators' CAs, PEM
}

// startWorld starts the emulators and the vault; Close stops them.
func startWorld(ctx context.Context, dir string, logs io.Writer) (_ *world, err error) {
	w := &world{}
	defer func() {
		if err != nil {
			w.Close()
		}
	}()
	logf := func(f string, a ...any) { fmt.Fprintf(logs, "azdoemu: "+f+"\n", a...) }
	if w.azdo, err = testenv.NewAzDO(azdoemu.Config{Dir: filepath.Join(dir, "azdo"), Logf: logf}); err != nil {
		return nil, fmt.Errorf("Azure DevOps emulator: %w", err)
	}
	if w.entra, err = entraemu.New(entraemu.Config{TenantID: w.azdo.TenantID()}); err != nil {
		return nil, fmt.Errorf("Entra ID emulator: %w", err)
	}
	w.azdo.SetBearerVerifier(w.entra.AzureDevOpsVerifier(w.azdo.TenantID()))
	if err := seedRepo(ctx, w.azdo, dir); err != nil {
		return nil, fmt.Errorf("seeding %s: %w", repoURL, err)
	}
	if _, err := w.entra.AddUser(entraemu.User{UPN: demoUPN, Name: "Demo User"}); err != nil {
		return nil, err
	}
	if _, err := w.entra.AddUser(entraemu.User{UPN: otherUPN, Name: "Mallory"}); err != nil {
		return nil, err
	}
	if err := w.entra.SetSignedInUser(demoUPN); err != nil {
		return nil, err
	}
	w.caFile = filepath.Join(dir, "emulators-ca.pem")
	if err := os.WriteFile(w.caFile, append(w.azdo.CAPEM(), w.entra.CAPEM()...), 0o644); err != nil {
		return nil, err
	}
	w.azdo.Start()
	w.entra.Start()

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("vault: %w", err)
	}
	w.url = "http://" + ln.Addr().String()
	callback := w.url + "/oauth/callback"
	clientSecret := azdoemu.NewPAT() // any random string will do
	w.entra.RegisterApp(demoClientID, clientSecret, []string{callback})

	// The runner's key pair, and the client secret sealed to it as
	// `azdo-vault seal` does, then opened as `azdo-vault serve` does.
	kp, err := sealbox.Generate()
	if err != nil {
		ln.Close()
		return nil, err
	}
	sealed, err := sealbox.Seal(kp.Public, []byte(clientSecret.Reveal()))
	if err != nil {
		ln.Close()
		return nil, err
	}
	opened, err := vault.OpenClientSecret(kp, demoHost, sealed)
	if err != nil {
		ln.Close()
		return nil, err
	}
	if w.st, err = store.OpenSQLite(ctx, filepath.Join(dir, "vault.db"), time.Now); err != nil {
		ln.Close()
		return nil, err
	}
	client := w.upstreamClient()
	oauth := map[string]vault.OAuthSettings{demoHost: {
		Host: demoHost, IssuerURL: w.entra.IssuerURL(w.entra.TenantID()), ClientID: demoClientID,
		ClientSecret: opened, RedirectURL: callback,
	}}
	pat := map[string]bool{demoHost: true}
	log := slog.New(slog.NewTextHandler(logs, nil)).With("component", "vault")
	providers, err := vault.NewProviders(ctx, oauth, pat, client)
	if err != nil {
		ln.Close()
		return nil, err
	}
	if w.v, err = vault.New(vault.Config{Keys: kp, Store: w.st, Providers: providers, PublicURL: w.url, Logger: log}); err != nil {
		ln.Close()
		return nil, err
	}
	h, err := connect.New(connect.Config{PublicURL: w.url, Keys: kp, Vault: w.v, OAuth: oauth, PAT: pat, Client: client, Logger: log})
	if err != nil {
		ln.Close()
		return nil, err
	}
	h.Register(w.v.Mux())
	w.v.SetLinker(h)
	w.srv = &http.Server{Handler: w.v.Mux(), ReadHeaderTimeout: 10 * time.Second}
	w.served = make(chan error, 1)
	go func() { w.served <- w.srv.Serve(ln) }()

	// The demo environment has a policy: its one organization, and pushes
	// to refs/heads/agent/* only, so that a push to main shows a refusal.
	if _, w.envTok, err = vault.NewEnvironmentWithPolicy(ctx, w.st, w.v.Binding(), time.Now(), demoOwner, 24*time.Hour, demoPolicy); err != nil {
		return nil, err
	}
	return w, nil
}

// upstreamClient is the vault's client for the identity provider and for
// Azure DevOps (the PAT check): it trusts both emulators and dials the
// Azure DevOps emulator for dev.azure.com.
func (w *world) upstreamClient() *http.Client {
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(w.entra.CAPEM())
	roots.AppendCertsFromPEM(w.azdo.CAPEM())
	d := &net.Dialer{Timeout: 10 * time.Second}
	azdoAddr := w.azdo.Addr()
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				if h, _, _ := net.SplitHostPort(addr); h == demoHost {
					addr = azdoAddr
				}
				return d.DialContext(ctx, network, addr)
			},
			TLSHandshakeTimeout:   10 * time.Second,
			ResponseHeaderTimeout: 20 * time.Second,
		},
	}
}

// writeEnvToken writes the environment token for the sidecar (0600).
func (w *world) writeEnvToken(path string) error {
	return os.WriteFile(path, []byte(w.envTok.Reveal()+"\n"), 0o600)
}

// ConnectURL asks the vault for a token as the sidecar does and returns
// the connect_url of its 404 not_connected answer.
func (w *world) ConnectURL(ctx context.Context) (string, error) {
	body, _ := json.Marshal(vaultapi.TokenRequest{Host: demoHost, Org: demoOrg, MinValidSeconds: 300})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url+vaultapi.TokenPath, bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", "Bearer "+w.envTok.Reveal())
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var e vaultapi.ErrorResponse
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&e); err != nil && resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("vault token answer %d: %w", resp.StatusCode, err)
	}
	if resp.StatusCode != http.StatusNotFound || e.Error != vaultapi.ErrNotConnected || e.ConnectURL == "" {
		return "", fmt.Errorf("vault token answer %d %q; want 404 not_connected with a connect_url", resp.StatusCode, e.Error)
	}
	return e.ConnectURL, nil
}

// AutoConnect follows link as a browser would: the confirmation page,
// its Continue button, the Entra emulator's authorize endpoint, which
// approves at once, and back to the vault's callback, which must say
// "Connected".
func (w *world) AutoConnect(ctx context.Context, link string) error {
	code, page, err := w.follow(ctx, link)
	if err != nil {
		return err
	}
	if code != http.StatusOK || !strings.Contains(page, "Connected") {
		return fmt.Errorf("the Connect flow ended with %d, not on the \"Connected\" page", code)
	}
	return nil
}

// RefusedIdentity shows the owner check: otherUPN signs in on a fresh link
// of demo's environment, and the vault refuses it. It returns the refusal
// the page shows; the browser is demo's again afterwards.
func (w *world) RefusedIdentity(ctx context.Context) (string, error) {
	link, err := w.ConnectURL(ctx)
	if err != nil {
		return "", err
	}
	if err := w.entra.SetSignedInUser(otherUPN); err != nil {
		return "", err
	}
	defer w.entra.SetSignedInUser(demoUPN)
	code, page, err := w.follow(ctx, link)
	if err != nil {
		return "", err
	}
	const start, end = `<p id="message">`, `</p>`
	i := strings.Index(page, start)
	if code != http.StatusForbidden || i < 0 {
		return "", fmt.Errorf("a sign-in as %s on %s's link ended with %d; want the 403 refusal", otherUPN, demoUPN, code)
	}
	msg := page[i+len(start):]
	return html.UnescapeString(msg[:strings.Index(msg, end)]), nil
}

// follow opens a connect link in a fresh browser, presses Continue on the
// confirmation page and follows the redirects; it returns the final status
// and page.
func (w *world) follow(ctx context.Context, link string) (int, string, error) {
	jar, err := cookiejar.New(nil)
	if err != nil {
		return 0, "", err
	}
	c := w.entra.Client()
	c.Jar = jar
	c.Timeout = 30 * time.Second
	get := func(method, u string, form url.Values) (int, string, error) {
		var body io.Reader
		if form != nil {
			body = strings.NewReader(form.Encode())
		}
		req, err := http.NewRequestWithContext(ctx, method, u, body)
		if err != nil {
			return 0, "", err
		}
		if form != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		resp, err := c.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		page, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return resp.StatusCode, string(page), nil
	}
	code, page, err := get(http.MethodGet, link, nil)
	if err != nil {
		return 0, "", err
	}
	const field = `name="csrf" value="`
	i := strings.Index(page, field)
	if code != http.StatusOK || i < 0 {
		return code, page, fmt.Errorf("the connect link answered %d without the confirmation page", code)
	}
	csrf := page[i+len(field):]
	csrf = csrf[:strings.IndexByte(csrf, '"')]
	u, err := url.Parse(link)
	if err != nil {
		return 0, "", err
	}
	return get(http.MethodPost, w.url+"/connect", url.Values{"link": {u.Query().Get("link")}, "csrf": {html.UnescapeString(csrf)}})
}

// Close stops the vault and the emulators.
func (w *world) Close() error {
	var errs []error
	if w.srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		errs = append(errs, w.srv.Shutdown(ctx))
		cancel()
		if err := <-w.served; !errors.Is(err, http.ErrServerClosed) {
			errs = append(errs, err)
		}
	}
	if w.v != nil {
		errs = append(errs, w.v.Close())
	}
	if w.st != nil {
		errs = append(errs, w.st.Close())
	}
	if w.entra != nil {
		errs = append(errs, w.entra.Close())
	}
	if w.azdo != nil {
		errs = append(errs, w.azdo.Close())
	}
	return errors.Join(errs...)
}

// seedRepo creates the demo repository on the emulator and pushes two
// commits with a README to it through the file system.
func seedRepo(ctx context.Context, azdo *azdoemu.Server, dir string) error {
	bare, err := azdo.CreateRepo(demoOrg, demoProject, demoRepo)
	if err != nil {
		return err
	}
	work := filepath.Join(dir, "seed")
	env := append(os.Environ(),
		"GIT_CONFIG_GLOBAL="+os.DevNull, "GIT_CONFIG_NOSYSTEM=1",
		"GIT_AUTHOR_NAME=Demo User", "GIT_AUTHOR_EMAIL="+demoUPN,
		"GIT_COMMITTER_NAME=Demo User", "GIT_COMMITTER_EMAIL="+demoUPN)
	gitRun := func(args ...string) error {
		cmd := exec.CommandContext(ctx, "git", args...)
		cmd.Env = env
		cmd.Dir = work
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("git %s: %w\n%s", args[0], err, out)
		}
		return nil
	}
	if err := os.MkdirAll(work, 0o755); err != nil {
		return err
	}
	files := []struct{ name, body, msg string }{
		{"README.md", "# hello\n\nCloned through azdo-sidecar: no PAT was pasted anywhere.\n", "Add README"},
		{"hello.txt", "Hello from the Azure DevOps emulator!\n", "Say hello"},
	}
	if err := gitRun("init", "--quiet", "--initial-branch=main"); err != nil {
		return err
	}
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(work, f.name), []byte(f.body), 0o644); err != nil {
			return err
		}
		if err := gitRun("add", f.name); err != nil {
			return err
		}
		if err := gitRun("commit", "--quiet", "-m", f.msg); err != nil {
			return err
		}
	}
	if err := gitRun("push", "--quiet", bare, "HEAD:refs/heads/main"); err != nil {
		return err
	}
	return os.RemoveAll(work)
}

// demoPolicy is the demo environment's policy.
var demoPolicy = store.Policy{
	AllowRepos: []string{demoHost + "/" + demoOrg + "/*/*"},
	PushRefs:   []string{demoPushRef},
}
