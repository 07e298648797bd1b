package e2e

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os/exec"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/azdo-sidecar/azdo-sidecar/e2e/entraemu"
	"github.com/azdo-sidecar/azdo-sidecar/e2e/testenv"
	"github.com/azdo-sidecar/azdo-sidecar/vault"
	"github.com/azdo-sidecar/azdo-sidecar/vault/store"
	"github.com/azdo-sidecar/azdo-sidecar/vaultapi"
)

// postAudit posts events to the running vault with envTok.
func (w *vaultWorld) postAudit(envTok string, events ...vaultapi.AuditEvent) (int, string) {
	w.t.Helper()
	body, _ := json.Marshal(vaultapi.AuditRequest{Events: events})
	req, _ := http.NewRequest(http.MethodPost, "http://"+w.proc.addr+vaultapi.AuditPath, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+envTok)
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		w.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, string(b)
}

// TestVaultPolicyLifecycle: with the real binaries, an environment created
// with a policy gets tokens for its organization only, each answer
// carrying the policy and a MAC that verifies with the token; env update
// takes effect at the very next token request of the running vault; env
// list --json shows the policy.
func TestVaultPolicyLifecycle(t *testing.T) {
	w := newVaultWorld(t, entraemu.Config{})
	grant := w.connect(vaultUser)
	w.start()
	out, err := w.run("", "env", "create", "--owner", vaultUser, "--json", "--store", "sqlite:"+w.db, "--key-file", w.keyFile,
		"--allow-repo", "dev.azure.com/contoso/Fabrikam/web", "--push-ref", "refs/heads/agent/*")
	if err != nil {
		t.Fatalf("env create: %v\n%s", err, out)
	}
	var created struct{ ID, Token string }
	if err := json.Unmarshal([]byte(out), &created); err != nil || created.Token == "" {
		t.Fatalf("env create printed %q: %v", out, err)
	}
	env := created.Token

	a := w.token(env, "contoso")
	if a.code != http.StatusOK {
		t.Fatalf("token for an allowed org = %d %s", a.code, a.raw)
	}
	if !vaultapi.CheckPolicyMAC(a.ok.Token, a.ok.Policy, a.ok.PolicyMAC) {
		t.Errorf("policy_mac does not verify over %s", a.ok.Policy)
	}
	var pol vaultapi.Policy
	if err := json.Unmarshal(a.ok.Policy, &pol); err != nil || pol.Version != 1 ||
		!reflect.DeepEqual(pol.AllowRepos, []string{"dev.azure.com/contoso/Fabrikam/web"}) || !reflect.DeepEqual(pol.PushRefs, []string{"refs/heads/agent/*"}) {
		t.Errorf("policy in the answer = %s (%v); want version 1 with the flags' patterns", a.ok.Policy, err)
	}
	if a := w.token(env, "fabrikam"); a.code != http.StatusForbidden || a.err.Error != vaultapi.ErrForbiddenByPolicy || !strings.Contains(a.err.Message, "dev.azure.com/fabrikam") {
		t.Errorf("token for another org = %d %s; want 403 forbidden_by_policy naming it", a.code, a.raw)
	}

	// env update (flags after the ID) on the store the vault serves from.
	code, out, errs := w.admin("env", "update", created.ID, "--key-file", w.keyFile, "--allow-repo", "dev.azure.com/fabrikam/*/*")
	if code != 0 || !strings.Contains(errs, "policy version 2") {
		t.Fatalf("env update = %d %q, stderr %q", code, out, errs)
	}
	if a := w.token(env, "fabrikam"); a.code != http.StatusOK || !strings.Contains(string(a.ok.Policy), `"version":2`) {
		t.Errorf("token for fabrikam right after env update = %d %s; want 200 with policy version 2", a.code, a.raw)
	}
	if a := w.token(env, "contoso"); a.code != http.StatusForbidden {
		t.Errorf("token for contoso after env update = %d %s; want 403", a.code, a.raw)
	}

	code, out, errs = w.admin("env", "list", "--json", "--owner", vaultUser)
	var row struct {
		ID     string
		Policy vaultapi.Policy
	}
	if code != 0 || json.Unmarshal([]byte(out), &row) != nil || row.ID != created.ID || row.Policy.Version != 2 ||
		!reflect.DeepEqual(row.Policy.AllowRepos, []string{"dev.azure.com/fabrikam/*/*"}) || !reflect.DeepEqual(row.Policy.PushRefs, []string{"refs/heads/agent/*"}) {
		t.Errorf("env list --json = %d %q (stderr %q); want %s at policy version 2", code, out, errs, created.ID)
	}
	for _, s := range []string{env, grant.RefreshToken.Reveal(), a.ok.Token} {
		if strings.Contains(out+errs, s) {
			t.Errorf("env list printed a secret (%.8s…)", s)
		}
	}

	// --clear-policy: every org again.
	if code, _, errs := w.admin("env", "update", created.ID, "--key-file", w.keyFile, "--clear-policy"); code != 0 {
		t.Fatalf("env update --clear-policy = %d, stderr %q", code, errs)
	}
	if a := w.token(env, "contoso"); a.code != http.StatusOK || string(a.ok.Policy) != `{"version":3}` {
		t.Errorf("token after --clear-policy = %d %s; want 200 with {\"version\":3}", a.code, a.raw)
	}
}

// TestVaultAuditRoundTrip: events POSTed with an environment token are
// listed by `azdo-vault audit list` with the environment and owner of the
// token, whatever the body claimed; a body-forged environment is not
// trusted, and nothing secret is stored or printed.
func TestVaultAuditRoundTrip(t *testing.T) {
	w := newVaultWorld(t, entraemu.Config{})
	w.start()
	envID, env := w.envCreate(vaultUser, time.Hour)
	_, other := w.envCreate("mallory@contoso.example", time.Hour)
	now := time.Now().UTC().Truncate(time.Millisecond)
	main, agent := strings.Repeat("1", 40), strings.Repeat("2", 40)
	events := []vaultapi.AuditEvent{
		{Time: now.Add(-2 * time.Second), Host: "dev.azure.com", Org: "contoso", Project: "Fabrikam", Repo: "web", Operation: "fetch", Status: 200, BytesIn: 900, BytesOut: 123456, DurationMS: 80},
		{Time: now.Add(-time.Second), Env: "env_forged", Owner: "mallory@contoso.example", Host: "dev.azure.com", Org: "contoso", Project: "Fabrikam", Repo: "web", Operation: "push",
			Refs: []vaultapi.AuditRef{{Name: "refs/heads/main", Old: main, New: agent}}, Status: 403, Refused: "ref_not_allowed: this environment may push only to refs/heads/agent/*; refs/heads/main refused"},
		{Time: now, Host: "dev.azure.com", Org: "contoso", Project: "Fabrikam", Repo: "web", Operation: "push",
			Refs: []vaultapi.AuditRef{{Name: "refs/heads/agent/x", Old: strings.Repeat("0", 40), New: agent}}, Status: 200, BytesIn: 4096, BytesOut: 300, DurationMS: 120},
		{Time: now, Host: "dev.azure.com", Operation: "rest", Status: 403, Refused: "Bearer " + env}, // a secret: dropped
	}
	code, body := w.postAudit(env, events...)
	if code != http.StatusOK || !strings.Contains(body, `"stored":3`) || !strings.Contains(body, `"rejected":1`) {
		t.Fatalf("POST /v1/audit = %d %s; want 200 stored 3 rejected 1", code, body)
	}
	if code, body := w.postAudit(other, vaultapi.AuditEvent{Time: now, Host: "dev.azure.com", Org: "fabrikam", Repo: "other", Operation: "ls-remote", Status: 200}); code != http.StatusOK {
		t.Fatalf("POST /v1/audit (other env) = %d %s", code, body)
	}
	if code, body := w.postAudit("azdoenv_wrong", events[0]); code != http.StatusUnauthorized {
		t.Errorf("POST /v1/audit with a wrong token = %d %s; want 401", code, body)
	}

	code, out, errs := w.admin("audit", "list", "--json", "--env", envID, "--since", "1h")
	if code != 0 {
		t.Fatalf("audit list = %d, stderr %q", code, errs)
	}
	var got []vaultapi.AuditEvent
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var ev vaultapi.AuditEvent
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("audit list line %q: %v", line, err)
		}
		got = append(got, ev)
	}
	if len(got) != 3 {
		t.Fatalf("audit list --env %s = %d events:\n%s", envID, len(got), out)
	}
	for i, ev := range got {
		want := events[i]
		want.Env, want.Owner = envID, vaultUser
		if !ev.Time.Equal(want.Time) {
			t.Errorf("event %d time %v; want %v", i, ev.Time, want.Time)
		}
		ev.Time, want.Time = time.Time{}, time.Time{}
		if !reflect.DeepEqual(ev, want) {
			t.Errorf("event %d = %+v\nwant %+v", i, ev, want)
		}
	}
	code, out, errs = w.admin("audit", "list", "--owner", "mallory@contoso.example")
	if code != 0 || !strings.Contains(out, "ls-remote") || strings.Contains(out, "push") {
		t.Errorf("audit list --owner mallory = %d\n%s\n(stderr %q); want only mallory's own ls-remote", code, out, errs)
	}
	code, out, errs = w.admin("audit", "list", "--repo", "dev.azure.com/contoso/fabrikam/WEB")
	if code != 0 || strings.Count(out, "\n") != 4 || !strings.Contains(out, "refused: ref_not_allowed") || !strings.Contains(out, "refs/heads/agent/x 0000000000..2222222222") {
		t.Errorf("audit list --repo = %d\n%s\n(stderr %q); want a header and the three events of web", code, out, errs)
	}
	if strings.Contains(out+errs, env) {
		t.Error("audit list printed the environment token")
	}
	for _, l := range w.logs {
		if strings.Contains(l.String(), env) {
			t.Error("the vault's log holds the environment token")
		}
	}
}

// TestPostgresPolicyAcrossReplicas: on two replicas sharing PostgreSQL, an
// env update made by the CLI is in the next answer of both; events posted
// to one are listed from the database with audit list.
func TestPostgresPolicyAcrossReplicas(t *testing.T) {
	p := newPGVaults(t, entraemu.Config{})
	tok, err := p.entra.IssueTokensForTest(vaultUser)
	if err != nil {
		t.Fatal(err)
	}
	p.put(vault.Credential{Owner: vaultUser, Host: vaultHost, Kind: store.OAuth, Secret: tok.RefreshToken})
	a, b := p.replica(), p.replica()
	out, err := p.run("", "env", "create", "--owner", vaultUser, "--json", "--store", p.url, "--key-file", p.keyFile, "--allow-repo", "dev.azure.com/contoso/*/*")
	if err != nil {
		t.Fatalf("env create: %v\n%s", err, out)
	}
	var created struct{ ID, Token string }
	if err := json.Unmarshal([]byte(out), &created); err != nil {
		t.Fatal(err)
	}
	for _, r := range []*vaultProc{a, b} {
		if ans := p.tokenAt(r, created.Token, "fabrikam"); ans.code != http.StatusForbidden {
			t.Fatalf("replica %s: fabrikam before update = %d %s; want 403", r.addr, ans.code, ans.raw)
		}
	}
	if code, _, errs := p.adminAt(p.url, "env", "update", created.ID, "--key-file", p.keyFile, "--allow-repo", "dev.azure.com/fabrikam/*/*"); code != 0 {
		t.Fatalf("env update = %d, stderr %q", code, errs)
	}
	for _, r := range []*vaultProc{a, b} {
		ans := p.tokenAt(r, created.Token, "fabrikam")
		if ans.code != http.StatusOK || !strings.Contains(string(ans.ok.Policy), `"version":2`) || !vaultapi.CheckPolicyMAC(ans.ok.Token, ans.ok.Policy, ans.ok.PolicyMAC) {
			t.Errorf("replica %s: fabrikam right after update = %d %s; want 200 with policy version 2 and a valid MAC", r.addr, ans.code, ans.raw)
		}
		if ans := p.tokenAt(r, created.Token, "contoso"); ans.code != http.StatusForbidden {
			t.Errorf("replica %s: contoso after update = %d %s; want 403", r.addr, ans.code, ans.raw)
		}
	}
	p.proc = b
	if code, body := p.postAudit(created.Token, vaultapi.AuditEvent{Time: time.Now(), Host: "dev.azure.com", Org: "fabrikam", Project: "p", Repo: "r", Operation: "fetch", Status: 200}); code != http.StatusOK {
		t.Fatalf("POST /v1/audit = %d %s", code, body)
	}
	code, out, errs := p.adminAt(p.url, "audit", "list", "--json", "--env", created.ID)
	if code != 0 || strings.Count(out, "\n") != 1 || !strings.Contains(out, `"owner":"`+vaultUser+`"`) || !strings.Contains(out, `"repo":"r"`) {
		t.Errorf("audit list --store postgres = %d %q (stderr %q); want the one event", code, out, errs)
	}
	if strings.Contains(out+errs, pgPassword) {
		t.Error("audit list printed the database password")
	}
}

// TestPolicyRefusedAtVaultInHelperMode: in helper mode the credential
// helper asks the vault, which refuses an organization the policy does not
// allow; git's helper protocol gets quit=1 and a message naming the
// policy, never a password, and an allowed organization still gets its
// token. An env update is seen at the very next request.
func TestPolicyRefusedAtVaultInHelperMode(t *testing.T) {
	w := newPolicyWorld(t, []string{"--allow-repo", "dev.azure.com/contoso/Web/site"})
	sc := testenv.Binary(t, "azdo-sidecar")
	get := func(org string) (string, string) {
		t.Helper()
		cmd := exec.Command(sc, "credential", "--socket", w.sc.Socket, "get")
		cmd.Env = scBaseEnv()
		cmd.Stdin = strings.NewReader("protocol=https\nhost=dev.azure.com\npath=" + org + "/X/_git/y\n")
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Run(); err != nil {
			t.Fatalf("credential get: %v\n%s", err, errb.String())
		}
		return out.String(), errb.String()
	}
	out, errs := get("fabrikam")
	if strings.Contains(out, "password") || !strings.Contains(out, "quit=1") ||
		!strings.Contains(errs, "Azure DevOps (dev.azure.com/fabrikam): forbidden by this environment's policy") || !strings.Contains(errs, "dev.azure.com/contoso/Web/site") {
		t.Errorf("credential get for fabrikam: stdout %q, stderr %q; want quit=1 and the policy's refusal naming the allowed pattern", out, errs)
	}
	if out, errs := get("contoso"); !strings.Contains(out, "password="+w.pat.Reveal()) {
		t.Errorf("credential get for contoso: stdout has no password (stderr %q)", errs)
	}
	if code, _, errs := w.vw.admin("env", "update", w.envID, "--key-file", w.vw.keyFile, "--allow-repo", "dev.azure.com/fabrikam/*/*"); code != 0 {
		t.Fatalf("env update = %d: %s", code, errs)
	}
	// The sidecar does not remember a refusal: the next get asks the vault,
	// which now serves fabrikam (the user's PAT is for every org).
	if out, errs := get("fabrikam"); !strings.Contains(out, "password="+w.pat.Reveal()) || strings.Contains(errs, "forbidden") {
		t.Errorf("credential get for fabrikam after env update: stderr %q, password given %v; want the token", errs, strings.Contains(out, "password="))
	}
}
