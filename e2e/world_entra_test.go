package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/azdo-sidecar/azdo-sidecar/e2e/azdoemu"
	"github.com/azdo-sidecar/azdo-sidecar/e2e/entraemu"
	"github.com/azdo-sidecar/azdo-sidecar/e2e/testenv"
	"github.com/azdo-sidecar/azdo-sidecar/secret"
)

const (
	testClientID = "6a1e0f3c-0000-4000-8000-00000000c11e"
	testUPN      = "alice@contoso.example"
)

var testClientSecret = secret.New("entra-client-secret-for-tests")

// startEntra starts an Entra ID emulator for tenant with one application
// and one user.
func startEntra(t *testing.T, cfg entraemu.Config) *entraemu.Server {
	t.Helper()
	s, err := entraemu.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	t.Cleanup(func() { s.Close() })
	s.RegisterApp(testClientID, testClientSecret, []string{"https://runner.example.com/oauth/callback"})
	if _, err := s.AddUser(entraemu.User{UPN: testUPN}); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestWorldBearerClone(t *testing.T) {
	w := newWorld(t)
	entra := startEntra(t, entraemu.Config{TenantID: w.emu.TenantID()})
	w.emu.SetBearerVerifier(entra.VerifyAccessToken)
	tok, err := entra.IssueTokensForTest(testUPN)
	if err != nil {
		t.Fatal(err)
	}
	// A token signed by another Entra ID (same tenant ID, other keys).
	other := startEntra(t, entraemu.Config{TenantID: w.emu.TenantID()})
	forged, err := other.IssueTokensForTest(testUPN)
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name   string
		header string
		kind   azdoemu.CredKind
		ok     bool
	}{
		{"bearer", "Authorization: Bearer " + tok.AccessToken.Reveal(), azdoemu.CredBearer, true},
		{"bearer as basic password", basicHeader("anything", tok.AccessToken), azdoemu.CredBasicBearer, true},
		{"bearer from another issuer", "Authorization: Bearer " + forged.AccessToken.Reveal(), azdoemu.CredBearer, false},
		{"bearer with empty basic user", basicHeader("", tok.AccessToken), azdoemu.CredInvalid, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w.emu.ResetRequests()
			g := testenv.NewGit(t)
			testenv.Reach(t, g, w.emu)
			extraHeader(g, tc.header)
			out, err := g.RunErr("clone", "--quiet", repoURL, filepath.Join(g.Home, "site"))
			if (err == nil) != tc.ok {
				t.Fatalf("git clone = %v\n%s; want success %v", err, out, tc.ok)
			}
			if tc.ok {
				if head := g.Run(t, "-C", filepath.Join(g.Home, "site"), "rev-parse", "HEAD"); head != w.seed.Head {
					t.Errorf("cloned HEAD = %s; want %s", head, w.seed.Head)
				}
			}
			reqs := w.emu.Requests()
			if len(reqs) == 0 {
				t.Fatal("no requests logged")
			}
			for _, r := range reqs {
				if r.CredKind != tc.kind {
					t.Errorf("%s %s: CredKind = %s; want %s", r.Method, r.Path, r.CredKind, tc.kind)
				}
			}
			assertNoSecret(t, w.emu, tok.AccessToken)
			assertNoSecret(t, w.emu, forged.AccessToken)
		})
	}
}

func TestWorldRefreshRotationDoubleUse(t *testing.T) {
	entra := startEntra(t, entraemu.Config{StrictRotation: true})
	tok, err := entra.IssueTokensForTest(testUPN)
	if err != nil {
		t.Fatal(err)
	}
	c := entra.Client()
	refresh := func(rt secret.String) (int, map[string]any) {
		t.Helper()
		form := url.Values{
			"grant_type":    {"refresh_token"},
			"refresh_token": {rt.Reveal()},
			"client_id":     {testClientID},
			"client_secret": {testClientSecret.Reveal()},
		}
		resp, err := c.Post(entra.TokenURL(entra.TenantID()), "application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]any
		if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&body); err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, body
	}

	status, body := refresh(tok.RefreshToken)
	newRT, _ := body["refresh_token"].(string)
	if status != http.StatusOK || newRT == "" || newRT == tok.RefreshToken.Reveal() {
		t.Fatalf("first refresh = %d, new refresh token rotated %v; want 200 and a new refresh token", status, newRT != "" && newRT != tok.RefreshToken.Reveal())
	}
	status, body = refresh(tok.RefreshToken)
	if status != http.StatusBadRequest || body["error"] != "invalid_grant" {
		t.Fatalf("second use of the old refresh token = %d %v; want 400 invalid_grant", status, body["error"])
	}
	if n := entra.DoubleUseCount(); n != 1 {
		t.Errorf("DoubleUseCount() = %d; want 1", n)
	}
	if status, _ := refresh(secret.New(newRT)); status != http.StatusOK {
		t.Errorf("refresh with the rotated token = %d; want 200", status)
	}
}
