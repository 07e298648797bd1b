package connect

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/azdo-sidecar/azdo-sidecar/vault/entra"
	"github.com/azdo-sidecar/azdo-sidecar/vault/store"
)

const mismatchText = "You signed in as bob@contoso.example, but this link connects Azure DevOps for alice@contoso.example. Nothing was saved. Sign in as alice@contoso.example, or ask alice for their own link."

func (tp *testPages) logText() string {
	tp.logMu.Lock()
	defer tp.logMu.Unlock()
	return tp.logs.String()
}

// TestCallbackRefusesAnotherAccount: a link for alice completed by bob's
// sign-in stores nothing, spends the sign-in, says so plainly (403) and
// logs a WARN naming owner, environment, host and bob — never a token.
func TestCallbackRefusesAnotherAccount(t *testing.T) {
	tp := newTestPages(t)
	tp.idp.who = entra.Identity{Username: "bob@contoso.example", TenantID: "t"}
	b := tp.browser(t)
	state := startFlow(t, tp, b)
	p := b.get("/oauth/callback?" + url.Values{"state": {state}, "code": {"the-code"}}.Encode())
	if p.code != http.StatusForbidden || !strings.Contains(p.body, mismatchText) {
		t.Fatalf("callback as bob = %d; want 403 with %q\n%s", p.code, mismatchText, p.body)
	}
	if n := tp.count(t, "dev.azure.com"); n != 0 {
		t.Errorf("credentials stored after a refused sign-in: %d; want 0", n)
	}
	logs := tp.logText()
	for _, want := range []string{"level=WARN", "owner=alice", "env=env_1", "host=dev.azure.com", "signed_in=bob@contoso.example"} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %q:\n%s", want, logs)
		}
	}
	if strings.Contains(logs, refreshToken) {
		t.Errorf("the refresh token reached the log")
	}
	if p := b.get("/oauth/callback?" + url.Values{"state": {state}, "code": {"the-code"}}.Encode()); p.code != http.StatusBadRequest {
		t.Errorf("the refused sign-in again = %d; want 400 (spent)", p.code)
	}
}

// TestCallbackOwnerCheckRules: names compare case-insensitively, object
// IDs exactly; a tenant other than the issuer's is refused; the check off
// stores anyone's grant.
func TestCallbackOwnerCheckRules(t *testing.T) {
	const oid = "0d3f4a5b-6c7d-4e8f-9a0b-1c2d3e4f5a6b"
	tests := []struct {
		name   string
		owners OwnerCheck
		who    entra.Identity
		ok     bool
	}{
		{"mapped name, other case", OwnerCheck{Owners: map[string]string{"alice": "alice@contoso.example"}}, entra.Identity{Username: "ALICE@Contoso.Example"}, true},
		{"owner is the identity", OwnerCheck{}, entra.Identity{Username: "alice"}, true},
		{"unmapped owner, other user", OwnerCheck{}, entra.Identity{Username: "alice@contoso.example"}, false},
		{"upn claim", OwnerCheck{Claim: "upn", Owners: map[string]string{"alice": "alice@contoso.example"}}, entra.Identity{Username: "alice@contoso.example"}, false},
		{"upn claim present", OwnerCheck{Claim: "upn", Owners: map[string]string{"alice": "alice@contoso.example"}}, entra.Identity{UPN: "alice@contoso.example"}, true},
		{"oid exact", OwnerCheck{Claim: "oid", Owners: map[string]string{"alice": oid}}, entra.Identity{ObjectID: oid}, true},
		{"oid other case", OwnerCheck{Claim: "oid", Owners: map[string]string{"alice": oid}}, entra.Identity{ObjectID: strings.ToUpper(oid)}, false},
		{"other tenant than the issuer's", OwnerCheck{Owners: map[string]string{"alice": "alice@contoso.example"}},
			entra.Identity{Username: "alice@contoso.example", TenantID: "11111111-1111-1111-1111-111111111111", IssuerTenant: "22222222-2222-2222-2222-222222222222"}, false},
		{"check off", OwnerCheck{InsecureSkip: true}, entra.Identity{Username: "mallory@evil.example"}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tp := newTestPagesWith(t, tc.owners)
			tp.idp.who = tc.who
			b := tp.browser(t)
			state := startFlow(t, tp, b)
			p := b.get("/oauth/callback?" + url.Values{"state": {state}, "code": {"the-code"}}.Encode())
			if got := p.code == http.StatusOK; got != tc.ok {
				t.Fatalf("callback = %d; want stored %v\n%s", p.code, tc.ok, p.body)
			}
			if n := tp.count(t, "dev.azure.com"); (n == 1) != tc.ok {
				t.Errorf("credentials stored = %d; want stored %v", n, tc.ok)
			}
			if tc.owners.InsecureSkip && !strings.Contains(tp.logText(), "insecure_skip_owner_check") {
				t.Errorf("no WARN about insecure_skip_owner_check at start")
			}
		})
	}
}

// TestConnectNeedsContinue: GET /connect never sends the browser to the
// identity provider and does not spend the link; POST /connect without the
// confirmation page's cookie or CSRF token is refused; Continue carries
// login_hint with the owner's identity.
func TestConnectNeedsContinue(t *testing.T) {
	tp := newTestPages(t)
	link := tp.link(t, "dev.azure.com", "contoso", store.OAuth)
	lu, _ := url.Parse(link)
	signed := lu.Query().Get("link")
	b := tp.browser(t)
	page := b.get(link)
	if page.code != http.StatusOK || page.hdr.Get("Location") != "" {
		t.Fatalf("GET /connect = %d %q; want 200 and no redirect", page.code, page.hdr.Get("Location"))
	}
	for _, want := range []string{"Connect Azure DevOps on <code>dev.azure.com</code> for <code>alice</code> (environment <code>env_1</code>, runner <code>runner.example.com</code>)", `method="post"`, `id="continue"`} {
		if !strings.Contains(page.body, want) {
			t.Errorf("confirmation page lacks %q\n%s", want, page.body)
		}
	}
	if c := page.hdr.Get("Set-Cookie"); !strings.Contains(c, "SameSite=Strict") || !strings.Contains(c, "HttpOnly") || !strings.Contains(c, "Path=/connect") {
		t.Errorf("confirmation cookie = %q; want HttpOnly, SameSite=Strict, Path=/connect", c)
	}
	refusals := map[string]resp{
		"no cookie (another browser)": tp.browser(t).do(http.MethodPost, "/connect", url.Values{"link": {signed}, "csrf": {csrfOf(t, page.body)}}),
		"forged CSRF":                 b.do(http.MethodPost, "/connect", url.Values{"link": {signed}, "csrf": {"x"}}),
		"no CSRF":                     b.do(http.MethodPost, "/connect", url.Values{"link": {signed}}),
	}
	for name, p := range refusals {
		if p.code != http.StatusForbidden || p.hdr.Get("Location") != "" {
			t.Errorf("POST /connect, %s = %d %q; want 403 and no redirect", name, p.code, p.hdr.Get("Location"))
		}
	}
	// Refusals spent nothing: the real Continue still works, once.
	p := continueConnect(t, b, link)
	u, _ := url.Parse(p.hdr.Get("Location"))
	if got := u.Query().Get("login_hint"); got != "alice@contoso.example" {
		t.Errorf("authorize login_hint = %q; want alice@contoso.example", got)
	}
	if again := b.get(link); again.code != http.StatusGone || !strings.Contains(again.body, "already used") {
		t.Errorf("the link opened again = %d; want 410 at once (single use)", again.code)
	}
	// Continue again (the page's cookie is gone after the first): refused.
	if p := b.do(http.MethodPost, "/connect", url.Values{"link": {signed}, "csrf": {csrfOf(t, page.body)}}); p.code/100 != 4 || p.hdr.Get("Location") != "" {
		t.Errorf("second Continue with the link = %d %q; want a refusal", p.code, p.hdr.Get("Location"))
	}
}

// TestPATRefusesAnotherUsersToken: a PAT whose connectionData names
// another user than the owner's identity is not stored: same page, 403.
func TestPATRefusesAnotherUsersToken(t *testing.T) {
	for _, tc := range []struct {
		name   string
		owners OwnerCheck
		ok     bool
	}{
		{"owner's own PAT (account name, other case)", OwnerCheck{Owners: map[string]string{"alice": "alice@contoso.example"}}, true},
		{"another user's PAT", OwnerCheck{Owners: map[string]string{"alice": "bob@contoso.example"}}, false},
		{"oid: the user's ID", OwnerCheck{Claim: "oid", Owners: map[string]string{"alice": "7c0f6b2e-1a2b-4c3d-9e8f-0a1b2c3d4e5f"}}, true},
		{"oid: another ID", OwnerCheck{Claim: "oid", Owners: map[string]string{"alice": "00000000-1a2b-4c3d-9e8f-0a1b2c3d4e5f"}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tp := newTestPagesWith(t, tc.owners)
			b := tp.browser(t)
			form := b.get(tp.link(t, "dev.azure.com", "contoso", store.PAT))
			p := b.do(http.MethodPost, "/pat", url.Values{"csrf": {csrfOf(t, form.body)}, "pat": {goodPAT}, "expires": {time.Now().Add(30 * 24 * time.Hour).Format(time.DateOnly)}})
			if got := p.code == http.StatusOK; got != tc.ok {
				t.Fatalf("POST /pat = %d; want stored %v\n%s", p.code, tc.ok, p.body)
			}
			if n := tp.count(t, "dev.azure.com"); (n == 1) != tc.ok {
				t.Errorf("credentials stored = %d; want stored %v", n, tc.ok)
			}
			if !tc.ok {
				if p.code != http.StatusForbidden || !strings.Contains(p.body, "Nothing was saved.") || !strings.Contains(p.body, "You signed in as") {
					t.Errorf("refused PAT page = %d\n%s", p.code, p.body)
				}
				if strings.Contains(p.body+tp.logText(), goodPAT) {
					t.Errorf("the PAT reached the page or the log")
				}
				// The session is spent: the form cannot be sent again.
				if p := b.do(http.MethodPost, "/pat", url.Values{"csrf": {csrfOf(t, form.body)}, "pat": {goodPAT}}); p.code == http.StatusOK {
					t.Errorf("PAT form after a refusal = 200; want it refused")
				}
			}
		})
	}
}
