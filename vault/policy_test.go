package vault

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/azdo-sidecar/azdo-sidecar/policy"
	"github.com/azdo-sidecar/azdo-sidecar/sealbox"
	"github.com/azdo-sidecar/azdo-sidecar/secret"
	"github.com/azdo-sidecar/azdo-sidecar/token"
	"github.com/azdo-sidecar/azdo-sidecar/vault/store"
	"github.com/azdo-sidecar/azdo-sidecar/vaultapi"
)

func TestValidatePolicy(t *testing.T) {
	tests := []struct {
		name    string
		in      store.Policy
		want    store.Policy
		wantErr string // substring; "" for none
	}{
		{name: "issue's example", in: store.Policy{
			AllowRepos:    []string{"dev.azure.com/contoso/Fabrikam/web", " dev.azure.com/contoso/Fabrikam/* ", "dev.azure.com/contoso/Fabrikam/web"},
			ReadOnlyRepos: []string{"dev.azure.com/contoso/Shared/*"},
			PushRefs:      []string{"refs/heads/agent/*"},
			ProxyOnly:     true,
		}, want: store.Policy{
			AllowRepos:    []string{"dev.azure.com/contoso/Fabrikam/web", "dev.azure.com/contoso/Fabrikam/*"},
			ReadOnlyRepos: []string{"dev.azure.com/contoso/Shared/*"},
			PushRefs:      []string{"refs/heads/agent/*"},
			ProxyOnly:     true,
		}},
		{name: "self-hosted with a port and a virtual directory", in: store.Policy{AllowRepos: []string{"tfs.contoso.com:8443/tfs/DefaultCollection/*/*"}},
			want: store.Policy{AllowRepos: []string{"tfs.contoso.com:8443/tfs/DefaultCollection/*/*"}}},
		{name: "legacy host", in: store.Policy{AllowRepos: []string{"contoso.visualstudio.com/contoso/p/r"}},
			want: store.Policy{AllowRepos: []string{"contoso.visualstudio.com/contoso/p/r"}}},
		{name: "https:// prefix and escaped space", in: store.Policy{AllowRepos: []string{"https://dev.azure.com/contoso/My%20Project/r"}},
			want: store.Policy{AllowRepos: []string{"https://dev.azure.com/contoso/My%20Project/r"}}},
		{name: "three segments", in: store.Policy{AllowRepos: []string{"dev.azure.com/contoso/web"}}, wantErr: `--allow-repo: repository pattern "dev.azure.com/contoso/web": want HOST/ORG/PROJECT/REPO`},
		{name: "vdir on Services", in: store.Policy{AllowRepos: []string{"dev.azure.com/x/contoso/p/r"}}, wantErr: "want dev.azure.com/ORG/PROJECT/REPO on Azure DevOps Services"},
		{name: "partial wildcard", in: store.Policy{ReadOnlyRepos: []string{"dev.azure.com/contoso/p/web-*"}}, wantErr: `--read-only-repo: repository pattern "dev.azure.com/contoso/p/web-*": "*" must be a whole segment`},
		{name: "wildcard host", in: store.Policy{AllowRepos: []string{"*/contoso/p/r"}}, wantErr: "the host cannot be"},
		{name: "user in host", in: store.Policy{AllowRepos: []string{"me@dev.azure.com/contoso/p/r"}}, wantErr: "is not a host[:port]"},
		{name: "empty segment", in: store.Policy{AllowRepos: []string{"dev.azure.com/contoso//r"}}, wantErr: "bad segment"},
		{name: "dot-dot", in: store.Policy{AllowRepos: []string{"dev.azure.com/contoso/../r"}}, wantErr: "bad segment"},
		{name: "control character", in: store.Policy{AllowRepos: []string{"dev.azure.com/contoso/p/r\x1b[31m"}}, wantErr: "bad segment"},
		{name: "legacy host, other org", in: store.Policy{AllowRepos: []string{"contoso.visualstudio.com/fabrikam/p/r"}}, wantErr: `organization "fabrikam" on contoso.visualstudio.com`},
		{name: "ref without refs/", in: store.Policy{PushRefs: []string{"heads/agent/*"}}, wantErr: `--push-ref: ref pattern "heads/agent/*": want a full ref glob`},
		{name: "ref with ..", in: store.Policy{PushRefs: []string{"refs/heads/../x"}}, wantErr: "want a full ref glob"},
		{name: "ref with space", in: store.Policy{PushRefs: []string{"refs/heads/a b"}}, wantErr: "want a full ref glob"},
		{name: "too long", in: store.Policy{AllowRepos: []string{"dev.azure.com/contoso/p/" + strings.Repeat("r", 600)}}, wantErr: "longer than 512 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ValidatePolicy(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ValidatePolicy(%+v) = %+v, %v; want an error containing %q", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("ValidatePolicy(%+v) = %+v, %v; want %+v", tt.in, got, err, tt.want)
			}
			// What the vault accepts, the sidecar compiles.
			if _, err := policy.Compile(wirePolicy(store.Environment{Policy: got, PolicyVersion: 1})); err != nil {
				t.Errorf("policy.Compile(%+v) = %v; the sidecar would refuse what the vault stored", got, err)
			}
		})
	}
}

func TestAllowsOrg(t *testing.T) {
	pol := store.Policy{
		AllowRepos:    []string{"dev.azure.com/Contoso/Fabrikam/web", "tfs.example:8443/tfs/Coll/*/*", "other.example/*/p/r"},
		ReadOnlyRepos: []string{"dev.azure.com/shared/Shared/*"},
	}
	tests := []struct {
		key  token.Key
		want bool
	}{
		{token.Key{Host: "dev.azure.com", Org: "contoso"}, true},
		{token.Key{Host: "dev.azure.com", Org: "CONTOSO"}, true},
		{token.Key{Host: "dev.azure.com", Org: "shared"}, true}, // read-only: fetching is allowed
		{token.Key{Host: "dev.azure.com", Org: "fabrikam"}, false},
		{token.Key{Host: "dev.azure.com", Org: ""}, false},
		{token.Key{Host: "contoso.visualstudio.com", Org: ""}, true},
		{token.Key{Host: "fabrikam.visualstudio.com", Org: ""}, false},
		{token.Key{Host: "tfs.example:8443", Org: "coll"}, true},
		{token.Key{Host: "tfs.example:8443/tfs", Org: "coll"}, true},
		{token.Key{Host: "tfs.example:8443", Org: "other"}, false},
		{token.Key{Host: "tfs.example", Org: "coll"}, false}, // another port
		{token.Key{Host: "other.example", Org: "anything"}, true},
		{token.Key{Host: "other.example", Org: ""}, true}, // "*": any org, even unknown
		{token.Key{Host: "evil.example", Org: "contoso"}, false},
	}
	for _, tt := range tests {
		if got := allowsOrg(pol, tt.key); got != tt.want {
			t.Errorf("allowsOrg(%v) = %v; want %v", tt.key, got, tt.want)
		}
	}
	if !allowsOrg(store.Policy{ReadOnlyRepos: []string{"dev.azure.com/a/b/c"}, PushRefs: []string{"refs/heads/x"}}, token.Key{Host: "dev.azure.com", Org: "z"}) {
		t.Error("a policy without --allow-repo refuses an org; want every org allowed")
	}
}

// policyHarness is a harness whose environment has pol.
func policyHarness(t *testing.T, pol store.Policy) *harness {
	t.Helper()
	h := newHarness(t)
	e, tok, err := NewEnvironmentWithPolicy(context.Background(), h.st, h.v.Binding(), h.clock.Now(), defaultUser, time.Hour, pol)
	if err != nil {
		t.Fatal(err)
	}
	h.env, h.envTok = e, tok
	h.put(Credential{Host: host, Kind: store.PAT, Secret: secret.New(patAllOrgs)})
	return h
}

func TestTokenForbiddenByPolicy(t *testing.T) {
	h := policyHarness(t, store.Policy{AllowRepos: []string{"dev.azure.com/contoso/Fabrikam/web"}})
	for _, req := range []vaultapi.TokenRequest{
		{Host: host, Org: "fabrikam"},
		{Host: "fabrikam.visualstudio.com"},
		{Host: host},
		{Host: "pat-only.example.test", Org: "contoso"},
	} {
		a := h.ask(h.envTok.Reveal(), req)
		if a.code != 403 || a.err.Error != vaultapi.ErrForbiddenByPolicy || !strings.Contains(a.err.Message, "dev.azure.com/contoso/Fabrikam/web") {
			t.Errorf("Token(%+v) = %d %s; want 403 forbidden_by_policy naming the allowed pattern", req, a.code, a.raw)
		}
		if strings.Contains(a.raw, patAllOrgs) {
			t.Errorf("refusal carries the PAT: %s", a.raw)
		}
	}
	if a := h.token("Contoso", 0); a.code != 200 || a.ok.Token != patAllOrgs {
		t.Errorf("Token(contoso) = %d %s; want 200", a.code, a.raw)
	}
	if a := h.ask(h.envTok.Reveal(), vaultapi.TokenRequest{Host: "contoso.visualstudio.com"}); a.code != 200 {
		t.Errorf("Token(contoso.visualstudio.com) = %d %s; want 200 (same organization)", a.code, a.raw)
	}
}

// TestTokenCarriesPolicy: every answer carries the environment's current
// policy with its version and a MAC over exactly the bytes sent, keyed with
// the token (opened, for a sealed answer).
func TestTokenCarriesPolicy(t *testing.T) {
	pol := store.Policy{
		AllowRepos:    []string{"dev.azure.com/contoso/Fabrikam/*"},
		ReadOnlyRepos: []string{"dev.azure.com/contoso/Shared/*"},
		PushRefs:      []string{"refs/heads/agent/*"},
		ProxyOnly:     true,
	}
	h := policyHarness(t, pol)
	envKey, err := sealbox.Generate()
	if err != nil {
		t.Fatal(err)
	}
	a := h.ask(h.envTok.Reveal(), vaultapi.TokenRequest{Host: host, Org: "contoso", SealTo: envKey.Public.String()})
	if a.code != 200 {
		t.Fatalf("Token = %d %s", a.code, a.raw)
	}
	plain, err := envKey.Open(a.ok.Token)
	if err != nil {
		t.Fatal(err)
	}
	if !vaultapi.CheckPolicyMAC(string(plain), a.ok.Policy, a.ok.PolicyMAC) {
		t.Fatalf("policy_mac %q does not verify over %s", a.ok.PolicyMAC, a.ok.Policy)
	}
	var got vaultapi.Policy
	if err := json.Unmarshal(a.ok.Policy, &got); err != nil {
		t.Fatal(err)
	}
	want := vaultapi.Policy{Version: 1, AllowRepos: pol.AllowRepos, ReadOnlyRepos: pol.ReadOnlyRepos, PushRefs: pol.PushRefs, ProxyOnly: true}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("policy = %+v; want %+v", got, want)
	}
	// A policy altered in transit does not verify.
	altered := []byte(strings.Replace(string(a.ok.Policy), `"refs/heads/agent/*"`, `"refs/*"`, 1))
	if vaultapi.CheckPolicyMAC(string(plain), altered, a.ok.PolicyMAC) {
		t.Error("an altered policy verifies")
	}
	if vaultapi.CheckPolicyMAC(a.ok.Token, a.ok.Policy, a.ok.PolicyMAC) {
		t.Error("the MAC is keyed with the sealed token; want the plaintext one")
	}

	// No policy: the answer says so, version 0, still authenticated.
	h2 := newHarness(t)
	h2.put(Credential{Host: host, Kind: store.PAT, Secret: secret.New(patAllOrgs)})
	a = h2.token("contoso", 0)
	if a.code != 200 || string(a.ok.Policy) != `{"version":0}` || !vaultapi.CheckPolicyMAC(patAllOrgs, a.ok.Policy, a.ok.PolicyMAC) {
		t.Errorf("answer without a policy: %d policy %s mac %q; want {\"version\":0} with a valid MAC", a.code, a.ok.Policy, a.ok.PolicyMAC)
	}
}

// TestPolicyUpdateIsEffectiveAtNextRequest: env update on one handle (the
// CLI, or another replica) changes the very next answer of a running vault.
func TestPolicyUpdateIsEffectiveAtNextRequest(t *testing.T) {
	h := policyHarness(t, store.Policy{AllowRepos: []string{"dev.azure.com/contoso/*/*"}})
	if a := h.token("contoso", 0); a.code != 200 {
		t.Fatalf("before update: %d %s", a.code, a.raw)
	}
	if a := h.token("fabrikam", 0); a.code != 403 {
		t.Fatalf("before update, fabrikam: %d %s; want 403", a.code, a.raw)
	}
	cli, err := store.OpenSQLite(context.Background(), h.dbPath, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	e, err := SetPolicy(context.Background(), cli, h.v.Binding(), h.env.ID, store.Policy{AllowRepos: []string{"dev.azure.com/fabrikam/*/*"}, PushRefs: []string{"refs/heads/agent/*"}})
	if err != nil || e.PolicyVersion != 2 {
		t.Fatalf("SetPolicy = %+v, %v; want version 2", e, err)
	}
	if a := h.token("contoso", 0); a.code != 403 {
		t.Errorf("after update, contoso: %d %s; want 403", a.code, a.raw)
	}
	a := h.token("fabrikam", 0)
	var got vaultapi.Policy
	json.Unmarshal(a.ok.Policy, &got)
	if a.code != 200 || got.Version != 2 || !reflect.DeepEqual(got.PushRefs, []string{"refs/heads/agent/*"}) {
		t.Errorf("after update, fabrikam: %d policy %s; want 200 with version 2", a.code, a.ok.Policy)
	}
	// Cleared: every org again, the version still counting.
	if _, err := SetPolicy(context.Background(), cli, h.v.Binding(), h.env.ID, store.Policy{}); err != nil {
		t.Fatal(err)
	}
	a = h.token("contoso", 0)
	if a.code != 200 || string(a.ok.Policy) != `{"version":3}` {
		t.Errorf("after clear: %d policy %s; want 200 {\"version\":3}", a.code, a.ok.Policy)
	}
	if _, err := SetPolicy(context.Background(), cli, h.v.Binding(), h.env.ID, store.Policy{AllowRepos: []string{"bad"}}); err == nil {
		t.Error("SetPolicy accepted a bad pattern")
	}
	if _, err := SetPolicy(context.Background(), cli, h.v.Binding(), "env_0000000000000000", store.Policy{}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("SetPolicy(unknown) = %v; want ErrNotFound", err)
	}
}

// TestPolicyBoundToRunnerKey: someone who can write the store but lacks the
// runner key cannot loosen or remove an environment's policy: the row's MAC
// no longer matches and the environment is refused until an administrator
// with the key sets the policy again.
func TestPolicyBoundToRunnerKey(t *testing.T) {
	tight := store.Policy{AllowRepos: []string{"dev.azure.com/contoso/Fabrikam/web"}}
	tests := []struct {
		name   string
		tamper func(t *testing.T, h *harness)
	}{
		{"loosened through the store API", func(t *testing.T, h *harness) {
			if _, err := h.st.SetEnvironmentPolicy(context.Background(), h.env.ID, func(store.Environment) (store.Policy, error) {
				return store.Policy{AllowRepos: []string{"dev.azure.com/*/*/*"}}, nil
			}, nil); err != nil {
				t.Fatal(err)
			}
		}},
		{"removed with raw SQL", func(t *testing.T, h *harness) {
			db, err := sql.Open("sqlite", "file:"+h.dbPath+"?_pragma=busy_timeout(10000)")
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if _, err := db.Exec(`UPDATE environments SET policy = '', policy_version = 0 WHERE id = ?`, h.env.ID); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := policyHarness(t, tight)
			if a := h.token("contoso", 0); a.code != 200 {
				t.Fatalf("before: %d %s", a.code, a.raw)
			}
			tt.tamper(t, h)
			for _, org := range []string{"contoso", "fabrikam"} {
				if a := h.token(org, 0); a.code != 401 {
					t.Errorf("after tampering, token for %s = %d %s; want 401", org, a.code, a.raw)
				}
			}
			if !strings.Contains(h.logs.String(), "not bound to this runner") {
				t.Errorf("no log line says why:\n%s", h.logs.String())
			}
			// An administrator with the key sets it again.
			if _, err := SetPolicy(context.Background(), h.st, h.v.Binding(), h.env.ID, tight); err != nil {
				t.Fatal(err)
			}
			if a := h.token("contoso", 0); a.code != 200 {
				t.Errorf("after env update with the key: %d %s; want 200", a.code, a.raw)
			}
			if a := h.token("fabrikam", 0); a.code != 403 {
				t.Errorf("after env update with the key, fabrikam: %d %s; want 403", a.code, a.raw)
			}
		})
	}
}

// TestProxyOnlyRefusesUnsealedToken: a proxy-only environment's token
// is given only sealed to the asker's key; a request without seal_to (what
// anyone holding the environment token would send to read it) is 403
// seal_required, and carries no token.
func TestProxyOnlyRefusesUnsealedToken(t *testing.T) {
	h := newHarness(t)
	h.put(Credential{Host: host, Kind: store.PAT, Org: "contoso", Secret: secret.New(patSecret)})
	_, tok, err := NewEnvironmentWithPolicy(context.Background(), h.st, h.v.Binding(), h.clock.Now(), defaultUser, time.Hour,
		store.Policy{ProxyOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	a := h.ask(tok.Reveal(), vaultapi.TokenRequest{Host: host, Org: "contoso"})
	if a.code != http.StatusForbidden || a.err.Error != vaultapi.ErrSealRequired || !strings.Contains(a.err.Message, "proxy-only") {
		t.Errorf("unsealed request of a proxy-only environment = %d %s; want 403 seal_required", a.code, a.raw)
	}
	if strings.Contains(a.raw, patSecret) {
		t.Errorf("the answer carries the token: %s", a.raw)
	}
	k, err := sealbox.Generate()
	if err != nil {
		t.Fatal(err)
	}
	a = h.ask(tok.Reveal(), vaultapi.TokenRequest{Host: host, Org: "contoso", SealTo: k.Public.String()})
	if a.code != http.StatusOK || !a.ok.Sealed {
		t.Errorf("sealed request of a proxy-only environment = %d %s; want 200 sealed", a.code, a.raw)
	}
}
