package e2e

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp/capability"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/plumbing/transport/client"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"

	"github.com/azdo-sidecar/azdo-sidecar/e2e/azdoemu"
	"github.com/azdo-sidecar/azdo-sidecar/e2e/testenv"
	"github.com/azdo-sidecar/azdo-sidecar/secret"
)

const repoURL = "https://dev.azure.com/contoso/Web/_git/site"

// world is one emulator with a seeded repository and a PAT for it.
type world struct {
	emu  *azdoemu.Server
	git  *testenv.Git
	pat  secret.String
	seed testenv.Seeded
}

func newWorld(t *testing.T) *world {
	t.Helper()
	emu := testenv.StartAzDO(t, azdoemu.Config{})
	w := &world{emu: emu, git: testenv.NewGit(t), pat: azdoemu.NewPAT()}
	if err := emu.AddPAT(azdoemu.PAT{Token: w.pat, Org: "contoso"}); err != nil {
		t.Fatal(err)
	}
	w.seed = testenv.Seed(t, emu, "contoso", "Web", "site", testenv.SeedOptions{Commits: 3, Bytes: 16 << 10})
	testenv.Reach(t, w.git, emu)
	return w
}

// extraHeader makes git send header on every request, through the
// environment so that the secret is not on a command line.
func extraHeader(g *testenv.Git, header string) {
	g.Setenv("GIT_CONFIG_COUNT", "1")
	g.Setenv("GIT_CONFIG_KEY_0", "http.extraHeader")
	g.Setenv("GIT_CONFIG_VALUE_0", header)
}

func basicHeader(user string, pass secret.String) string {
	return "Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass.Reveal()))
}

// assertNoSecret fails if any request log field holds the secret.
func assertNoSecret(t *testing.T, emu *azdoemu.Server, s secret.String) {
	t.Helper()
	b, err := json.Marshal(emu.Requests())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), s.Reveal()) {
		t.Errorf("request log contains the credential")
	}
}

func TestWorldPATCloneAndPush(t *testing.T) {
	w := newWorld(t)
	extraHeader(w.git, basicHeader("anything", w.pat))
	dir := filepath.Join(w.git.Home, "site")
	w.git.Run(t, "clone", "--quiet", repoURL, dir)
	if got := w.git.Run(t, "-C", dir, "rev-parse", "HEAD"); got != w.seed.Head {
		t.Fatalf("cloned HEAD = %s; want %s", got, w.seed.Head)
	}

	if err := os.WriteFile(filepath.Join(dir, "README.md"), []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	w.git.Run(t, "-C", dir, "add", "README.md")
	w.git.Run(t, "-C", dir, "commit", "--quiet", "-m", "Add README")
	w.git.Run(t, "-C", dir, "push", "--quiet", "origin", "main")
	want := w.git.Run(t, "-C", dir, "rev-parse", "HEAD")
	got := w.git.Run(t, "--git-dir", w.seed.Dir, "rev-parse", "refs/heads/main")
	if got != want {
		t.Errorf("emulator main = %s after push; want %s", got, want)
	}

	var pushes int
	for _, r := range w.emu.Requests() {
		if r.CredKind != azdoemu.CredBasicPAT || r.CredHash != azdoemu.CredentialHash(w.pat) || r.User != "anything" {
			t.Errorf("request %s %s: cred %s/%s user %q; want basic-pat/%s user anything",
				r.Method, r.Path, r.CredKind, r.CredHash, r.User, azdoemu.CredentialHash(w.pat))
		}
		if strings.HasSuffix(r.Path, "/git-receive-pack") && r.Status == http.StatusOK {
			pushes++
		}
	}
	if pushes != 1 {
		t.Errorf("successful receive-pack POSTs = %d; want 1", pushes)
	}
	assertNoSecret(t, w.emu, w.pat)
}

// writeHelper writes a credential helper that answers with user and the
// secret kept in a file next to it, and configures g to use it.
func writeHelper(t *testing.T, g *testenv.Git, user string, pass secret.String) {
	t.Helper()
	dir := t.TempDir()
	pw := filepath.Join(dir, "password")
	if err := os.WriteFile(pw, []byte(pass.Reveal()), 0o600); err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(dir, "helper")
	body := "#!/bin/sh\n[ \"$1\" = get ] || exit 0\necho username=" + user + "\nprintf 'password=%s\\n' \"$(cat " + pw + ")\"\n"
	if err := os.WriteFile(script, []byte(body), 0o700); err != nil {
		t.Fatal(err)
	}
	g.SetConfig(t, "credential.helper", script)
}

func TestWorldRevokedPATAuthenticationFailed(t *testing.T) {
	w := newWorld(t)
	writeHelper(t, w.git, "anything", w.pat)
	if out, err := w.git.RunErr("ls-remote", repoURL); err != nil || !strings.Contains(out, w.seed.Head) {
		t.Fatalf("ls-remote with a valid PAT = %v\n%s; want success listing %s", err, out, w.seed.Head)
	}
	if !w.emu.RevokePAT(w.pat) {
		t.Fatal("RevokePAT = false; want true")
	}
	out, err := w.git.RunErr("ls-remote", repoURL)
	if err == nil || !strings.Contains(out, "Authentication failed") {
		t.Fatalf("ls-remote with a revoked PAT = %v\n%s; want \"Authentication failed\"", err, out)
	}
	if strings.Contains(out, w.pat.Reveal()) {
		t.Errorf("git output contains the PAT")
	}
	assertNoSecret(t, w.emu, w.pat)
}

// installGoGitClient makes go-git's https transport reach the emulator.
func installGoGitClient(t *testing.T, emu *azdoemu.Server) {
	t.Helper()
	client.InstallProtocol("https", githttp.NewClient(emu.Client()))
	t.Cleanup(func() { client.InstallProtocol("https", githttp.DefaultClient) })
}

func TestWorldGoGitMultiAck(t *testing.T) {
	w := newWorld(t)
	installGoGitClient(t, w.emu)
	auth := &githttp.BasicAuth{Username: "anything", Password: w.pat.Reveal()}

	_, err := git.PlainClone(t.TempDir(), false, &git.CloneOptions{URL: repoURL, Auth: auth})
	var herr *githttp.Err
	var uerr *plumbing.UnexpectedError
	if errors.As(err, &uerr) {
		err = uerr.Err // UnexpectedError has no Unwrap
	}
	if !errors.As(err, &herr) || herr.StatusCode() != http.StatusBadRequest || !strings.Contains(herr.Reason, "TF401041") {
		t.Fatalf("go-git default clone error = %v; want HTTP 400 with TF401041", err)
	}

	saved := transport.UnsupportedCapabilities
	transport.UnsupportedCapabilities = []capability.Capability{capability.ThinPack}
	t.Cleanup(func() { transport.UnsupportedCapabilities = saved })
	repo, err := git.PlainClone(t.TempDir(), false, &git.CloneOptions{URL: repoURL, Auth: auth})
	if err != nil {
		t.Fatalf("go-git clone with UnsupportedCapabilities = [thin-pack]: %v", err)
	}
	head, err := repo.Head()
	if err != nil {
		t.Fatal(err)
	}
	if head.Hash().String() != w.seed.Head {
		t.Errorf("go-git HEAD = %s; want %s", head.Hash(), w.seed.Head)
	}
}

func TestWorldSignInQuirk(t *testing.T) {
	w := newWorld(t)
	c := w.emu.Client()
	get := func(url string, hdr map[string]string) *http.Response {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, url, nil)
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	const api = "https://dev.azure.com/contoso/_apis/connectionData"

	resp := get(api, nil)
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusFound || !strings.Contains(loc, "/_signin") {
		t.Fatalf("GET %s without credentials = %d Location %q; want 302 to _signin", api, resp.StatusCode, loc)
	}
	if !strings.HasPrefix(loc, "https://") {
		loc = "https://dev.azure.com" + loc
	}
	resp = get(loc, nil)
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusNonAuthoritativeInfo || !strings.Contains(string(body), "<html") {
		t.Fatalf("GET sign-in page = %d %q; want 203 with HTML", resp.StatusCode, body)
	}

	resp = get(api, map[string]string{"X-TFS-FedAuthRedirect": "Suppress"})
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("GET %s with Suppress = %d; want 401", api, resp.StatusCode)
	}
	wantChallenges := []string{
		"Bearer authorization_uri=https://login.microsoftonline.com/" + w.emu.TenantID(),
		`Basic realm="https://dev.azure.com/"`,
		"TFS-Federated",
	}
	if got := resp.Header.Values("WWW-Authenticate"); strings.Join(got, "|") != strings.Join(wantChallenges, "|") {
		t.Errorf("WWW-Authenticate = %q; want %q", got, wantChallenges)
	}
	if got := resp.Header.Get("X-VSS-ResourceTenant"); got != w.emu.TenantID() {
		t.Errorf("X-VSS-ResourceTenant = %q; want %q", got, w.emu.TenantID())
	}
	if resp.Header.Get("X-TFS-ServiceError") == "" {
		t.Errorf("X-TFS-ServiceError missing from the 401")
	}

	resp = get(api, map[string]string{"X-TFS-FedAuthRedirect": "Suppress", "Authorization": basicHeader("u", w.pat)[len("Authorization: "):]})
	var cd struct {
		AuthenticatedUser struct {
			ProviderDisplayName string `json:"providerDisplayName"`
		} `json:"authenticatedUser"`
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s with a PAT = %d; want 200", api, resp.StatusCode)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&cd); err != nil || cd.AuthenticatedUser.ProviderDisplayName == "" {
		t.Errorf("connectionData = %+v, %v; want an authenticatedUser", cd, err)
	}
}
