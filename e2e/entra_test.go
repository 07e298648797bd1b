package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/azdo-sidecar/azdo-sidecar/e2e/azdoemu"
	"github.com/azdo-sidecar/azdo-sidecar/e2e/entraemu"
	"github.com/azdo-sidecar/azdo-sidecar/e2e/testenv"
	"github.com/azdo-sidecar/azdo-sidecar/secret"
)

const (
	entraRepoURL  = "https://dev.azure.com/fabrikam/Tools/_git/cli"
	entraClientID = "6c2b3a7e-0d1f-4a8e-9b5c-1f2e3d4c5b6a"
	entraUser     = "dana@fabrikam.example"
)

var entraClientSecret = secret.New("entra-e2e-client-secret-value")

// entraClock is a settable clock shared by both emulators.
type entraClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *entraClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *entraClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// entraWorld is the Azure DevOps emulator trusting the Entra emulator's
// access tokens, with one seeded repository and one connected user.
type entraWorld struct {
	entra *entraemu.Server
	azdo  *azdoemu.Server
	git   *testenv.Git
	seed  testenv.Seeded
	clock *entraClock
}

// startEntra starts an Entra ID emulator with one application and one user.
func startEntra(t *testing.T, cfg entraemu.Config) *entraemu.Server {
	t.Helper()
	entra, err := entraemu.New(cfg)
	if err != nil {
		t.Fatalf("entraemu.New: %v", err)
	}
	entra.Start()
	t.Cleanup(func() { _ = entra.Close() })
	entra.RegisterApp(entraClientID, entraClientSecret, []string{"https://runner.example.test/oauth/callback"})
	if _, err := entra.AddUser(entraemu.User{UPN: entraUser}); err != nil {
		t.Fatal(err)
	}
	return entra
}

func newEntraWorld(t *testing.T, cfg entraemu.Config) *entraWorld {
	t.Helper()
	clk := &entraClock{t: time.Now()}
	cfg.Now = clk.Now
	entra := startEntra(t, cfg)
	azdo := testenv.StartAzDO(t, azdoemu.Config{TenantID: entra.TenantID(), Clock: clk.Now})
	azdo.SetBearerVerifier(entra.AzureDevOpsVerifier(azdo.TenantID()))
	w := &entraWorld{entra: entra, azdo: azdo, git: testenv.NewGit(t), clock: clk}
	w.seed = testenv.Seed(t, azdo, "fabrikam", "Tools", "cli", testenv.SeedOptions{Commits: 2, Bytes: 4 << 10})
	testenv.Reach(t, w.git, azdo)
	return w
}

// refresh redeems rt at the Entra emulator with x/oauth2, as the vault does.
func (w *entraWorld) refresh(rt secret.String) (*oauth2.Token, error) {
	conf := &oauth2.Config{
		ClientID:     entraClientID,
		ClientSecret: entraClientSecret.Reveal(),
		Scopes:       []string{"openid", "offline_access", entraemu.ResourceID + "/vso.code", entraemu.ResourceID + "/vso.code_write"},
		Endpoint:     oauth2.Endpoint{TokenURL: w.entra.TokenURL(w.entra.TenantID()), AuthStyle: oauth2.AuthStyleInParams},
	}
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, w.entra.Client())
	return conf.TokenSource(ctx, &oauth2.Token{RefreshToken: rt.Reveal(), Expiry: time.Unix(1, 0)}).Token()
}

// TestEntraBearerClone is issue 3's "clone with a Bearer token": real git
// clones with an Entra access token, sent as Bearer and as the Basic
// password, and is refused with a token signed by another Entra ID (same
// tenant ID, other keys), with an empty Basic user name, and once the token
// has expired.
func TestEntraBearerClone(t *testing.T) {
	w := newEntraWorld(t, entraemu.Config{AccessTokenLifetime: 65 * time.Minute})
	tok, err := w.entra.IssueTokensForTest(entraUser)
	if err != nil {
		t.Fatal(err)
	}
	other := startEntra(t, entraemu.Config{TenantID: w.entra.TenantID(), Now: w.clock.Now})
	forged, err := other.IssueTokensForTest(entraUser)
	if err != nil {
		t.Fatal(err)
	}
	headers := []struct {
		name, header string
		kind         azdoemu.CredKind
		ok           bool
	}{
		{"bearer", "Authorization: Bearer " + tok.AccessToken.Reveal(), azdoemu.CredBearer, true},
		{"basic password", basicHeader("azdo-sidecar", tok.AccessToken), azdoemu.CredBasicBearer, true},
		{"bearer from another issuer", "Authorization: Bearer " + forged.AccessToken.Reveal(), azdoemu.CredBearer, false},
		{"basic password with empty user", basicHeader("", tok.AccessToken), azdoemu.CredInvalid, false},
	}
	for _, h := range headers {
		t.Run(h.name, func(t *testing.T) {
			w.azdo.ResetRequests()
			extraHeader(w.git, h.header)
			out, err := w.git.RunErr("ls-remote", entraRepoURL)
			if (err == nil) != h.ok || h.ok && !strings.Contains(out, w.seed.Head) {
				t.Fatalf("ls-remote with an Entra token as %s = %v\n%s; want success %v with %s listed", h.name, err, out, h.ok, w.seed.Head)
			}
			reqs := w.azdo.Requests()
			if len(reqs) == 0 {
				t.Fatal("no requests logged")
			}
			for _, r := range reqs {
				if r.CredKind != h.kind {
					t.Errorf("%s %s: CredKind = %s; want %s", r.Method, r.Path, r.CredKind, h.kind)
				}
			}
			if last := reqs[len(reqs)-1]; h.ok && (last.Status != 200 || last.CredHash != azdoemu.CredentialHash(tok.AccessToken)) {
				t.Errorf("last request: credential %s status %d; want %s, 200, the token's hash", last.CredKind, last.Status, h.kind)
			}
			assertNoSecret(t, w.azdo, forged.AccessToken)
		})
	}
	extraHeader(w.git, headers[0].header)
	dir := t.TempDir() + "/cli"
	w.git.Run(t, "clone", "--quiet", entraRepoURL, dir)
	if got := w.git.Run(t, "-C", dir, "rev-parse", "HEAD"); got != w.seed.Head {
		t.Errorf("cloned HEAD = %s; want %s", got, w.seed.Head)
	}

	w.clock.Add(65 * time.Minute) // exactly the lifetime: expired
	out, err := w.git.RunErr("ls-remote", entraRepoURL)
	if err == nil || strings.Contains(out, w.seed.Head) {
		t.Errorf("ls-remote with an expired Entra token = %v\n%s; want a refusal", err, out)
	}
	b, _ := json.Marshal(w.azdo.Requests())
	if strings.Contains(string(b), tok.AccessToken.Reveal()) || strings.Contains(out, tok.AccessToken.Reveal()) {
		t.Error("the access token shows up in the request log or git's output")
	}
}

// TestEntraRefreshRotationDoubleUse is issue 3's "refresh-token rotation
// with double use detected": every refresh returns a new refresh token, the
// rotated access token works with real git, and presenting a refresh token
// a second time is refused (strict rotation) and counted.
func TestEntraRefreshRotationDoubleUse(t *testing.T) {
	w := newEntraWorld(t, entraemu.Config{StrictRotation: true})
	seed, err := w.entra.IssueTokensForTest(entraUser)
	if err != nil {
		t.Fatal(err)
	}
	first, err := w.refresh(seed.RefreshToken)
	if err != nil {
		t.Fatalf("first refresh: %v", err)
	}
	if first.RefreshToken == "" || first.RefreshToken == seed.RefreshToken.Reveal() {
		t.Fatal("refresh did not rotate the refresh token")
	}
	extraHeader(w.git, "Authorization: Bearer "+first.AccessToken)
	if out, err := w.git.RunErr("ls-remote", entraRepoURL); err != nil || !strings.Contains(out, w.seed.Head) {
		t.Fatalf("ls-remote with the refreshed token = %v\n%s", err, out)
	}

	_, err = w.refresh(seed.RefreshToken) // the old one, again
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) || re.Response.StatusCode != 400 || re.ErrorCode != "invalid_grant" || !strings.HasPrefix(re.ErrorDescription, "AADSTS70000:") {
		t.Fatalf("second use of a refresh token = %v; want 400 invalid_grant AADSTS70000", err)
	}
	if strings.Contains(err.Error(), seed.RefreshToken.Reveal()) {
		t.Error("the error echoes the refresh token")
	}
	if n := w.entra.DoubleUseCount(); n != 1 {
		t.Errorf("DoubleUseCount = %d; want 1", n)
	}

	// The newest refresh token still works: reuse of an old one is
	// detected, it does not revoke the user's grant.
	second, err := w.refresh(secret.New(first.RefreshToken))
	if err != nil {
		t.Fatalf("refresh with the rotated token: %v", err)
	}
	if second.RefreshToken == first.RefreshToken {
		t.Error("second refresh did not rotate")
	}
	if c := w.entra.Counts(); c.RefreshToken != 3 || c.Failed != 1 {
		t.Errorf("Counts = %+v; want 3 refresh requests, 1 failed", c)
	}
}
