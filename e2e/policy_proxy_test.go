package e2e

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/azdo-sidecar/azdo-sidecar/e2e/azdoemu"
	"github.com/azdo-sidecar/azdo-sidecar/e2e/entraemu"
	"github.com/azdo-sidecar/azdo-sidecar/e2e/testenv"
	"github.com/azdo-sidecar/azdo-sidecar/secret"
	"github.com/azdo-sidecar/azdo-sidecar/vault"
	"github.com/azdo-sidecar/azdo-sidecar/vault/store"
	"github.com/azdo-sidecar/azdo-sidecar/vaultapi"
)

// policyWorld is the emulators, a real vault with a PAT for contoso, an
// environment created with policy flags, and a real sidecar in vault mode.
type policyWorld struct {
	*proxyVaultWorld
	envID string
	pat   secret.String  // the user's PAT, in the vault
	other testenv.Seeded // contoso/Web/other: not allowed
	lib   testenv.Seeded // contoso/Shared/lib: read-only
}

func newPolicyWorld(t *testing.T, policyArgs []string, sidecarArgs ...string) *policyWorld {
	t.Helper()
	emu := testenv.StartAzDO(t, azdoemu.Config{})
	w := &policyWorld{proxyVaultWorld: &proxyVaultWorld{emu: emu, git: testenv.NewGit(t)}}
	w.vw = newVaultWorld(t, entraemu.Config{TenantID: emu.TenantID()})
	w.seed = testenv.Seed(t, emu, "contoso", "Web", "site", testenv.SeedOptions{Commits: 2, Bytes: 8 << 10})
	w.other = testenv.Seed(t, emu, "contoso", "Web", "other", testenv.SeedOptions{Commits: 1, Bytes: 1 << 10})
	w.lib = testenv.Seed(t, emu, "contoso", "Shared", "lib", testenv.SeedOptions{Commits: 1, Bytes: 1 << 10})
	testenv.Seed(t, emu, "fabrikam", "X", "y", testenv.SeedOptions{Commits: 1, Bytes: 1 << 10})
	pat := azdoemu.NewPAT()
	if err := emu.AddPAT(azdoemu.PAT{Token: pat, Org: "contoso"}); err != nil {
		t.Fatal(err)
	}
	w.vw.put(vault.Credential{Owner: vaultUser, Host: vaultHost, Kind: store.PAT, Secret: pat})
	w.pat = pat
	w.vw.start()
	args := append([]string{"env", "create", "--owner", vaultUser, "--ttl", "1h", "--json", "--store", "sqlite:" + w.vw.db, "--key-file", w.vw.keyFile}, policyArgs...)
	out, err := w.vw.run("", args...)
	if err != nil {
		t.Fatalf("env create: %v\n%s", err, out)
	}
	var e struct{ ID, Token string }
	if err := json.Unmarshal([]byte(out), &e); err != nil || e.Token == "" {
		t.Fatalf("env create printed %q: %v", out, err)
	}
	w.envID, w.env = e.ID, e.Token
	envFile := filepath.Join(t.TempDir(), "env-token")
	if err := os.WriteFile(envFile, []byte(w.env+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	scArgs := append([]string{"--vault-url", "http://" + w.vw.proc.addr, "--env-token-file", envFile,
		"--resolve", testenv.ResolveFlag("dev.azure.com", emu), "--upstream-ca-file", emu.CAFile()}, sidecarArgs...)
	w.sc = startSidecar(t, nil, scArgs...)
	useProxy(t, w.git, w.sc)
	return w
}

// auditList returns the vault's audit events of the environment.
func (w *policyWorld) auditList(t *testing.T) []vaultapi.AuditEvent {
	t.Helper()
	code, out, errs := w.vw.admin("audit", "list", "--json", "--env", w.envID)
	if code != 0 && !strings.Contains(errs, "no audit events") {
		t.Fatalf("audit list = %d: %s", code, errs)
	}
	var evs []vaultapi.AuditEvent
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if l == "" {
			continue
		}
		var ev vaultapi.AuditEvent
		if err := json.Unmarshal([]byte(l), &ev); err != nil {
			t.Fatalf("audit list line %q: %v", l, err)
		}
		evs = append(evs, ev)
	}
	return evs
}

// waitAudit polls audit list until ok holds for the events.
func (w *policyWorld) waitAudit(t *testing.T, within time.Duration, ok func([]vaultapi.AuditEvent) bool) []vaultapi.AuditEvent {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		evs := w.auditList(t)
		if ok(evs) {
			return evs
		}
		if time.Now().After(deadline) {
			t.Fatalf("audit events after %s: %+v", within, evs)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func receivePackPOSTs(emu *azdoemu.Server, repo string) int {
	n := 0
	for _, r := range emu.Requests() {
		if r.Method == http.MethodPost && strings.HasSuffix(r.Path, "/_git/"+repo+"/git-receive-pack") {
			n++
		}
	}
	return n
}

// TestPolicyProxyEndToEnd: an environment limited to one repository (and a
// read-only project) with --push-ref 'refs/heads/agent/*', real git through
// the real sidecar: the allowed repository clones; another repository of
// the organization and any repository of another organization are refused
// with the reason on git's stderr; a push to main is refused with git's own
// "[remote rejected]" and nothing reaches the emulator's receive-pack; a
// push to refs/heads/agent/x lands; the read-only repository refuses every
// push; a REST call for another repository is refused; and audit list
// shows the clone and both pushes with the right fields.
func TestPolicyProxyEndToEnd(t *testing.T) {
	w := newPolicyWorld(t, []string{
		"--allow-repo", "dev.azure.com/contoso/Web/site",
		// As in the example: read-only repositories need no
		// --allow-repo of their own to be fetched.
		"--read-only-repo", "dev.azure.com/contoso/Shared/*",
		"--push-ref", "refs/heads/agent/*",
	})
	dir := filepath.Join(t.TempDir(), "site")
	w.git.Run(t, "clone", "--quiet", repoURL, dir)

	out, err := w.git.RunErr("clone", "https://dev.azure.com/contoso/Web/_git/other", filepath.Join(t.TempDir(), "other"))
	if err == nil || !strings.Contains(out, "remote: azdo-sidecar: this environment may not use dev.azure.com/contoso/web/other") {
		t.Errorf("clone of another repository: err %v\n%s\nwant a refusal naming it", err, out)
	}
	for _, r := range w.emu.Requests() {
		if strings.Contains(r.Path, "/other/") {
			t.Errorf("the emulator saw %s %s for the refused repository", r.Method, r.Path)
		}
	}
	out, err = w.git.RunErr("clone", "https://dev.azure.com/fabrikam/X/_git/y", filepath.Join(t.TempDir(), "y"))
	if err == nil || !strings.Contains(out, "remote: azdo-sidecar:") || !strings.Contains(out, "forbidden by this environment's policy") {
		t.Errorf("clone of another organization: err %v\n%s\nwant the vault's refusal", err, out)
	}

	// Helper mode (no proxy): the vault refuses the other organization,
	// and git shows why through the credential helper.
	hg := testenv.NewGit(t)
	testenv.Reach(t, hg, w.emu)
	hg.SetConfig(t, "credential.helper", testenv.Binary(t, "git-credential-azdo")+" --socket "+w.sc.Socket)
	hg.SetConfig(t, "credential.useHttpPath", "true")
	out, err = hg.RunErr("clone", "https://dev.azure.com/fabrikam/X/_git/y", filepath.Join(t.TempDir(), "y2"))
	if err == nil || !strings.Contains(out, "azdo-sidecar: Azure DevOps (dev.azure.com/fabrikam): forbidden by this environment's policy") {
		t.Errorf("helper-mode clone of another organization: err %v\n%s\nwant the vault's refusal", err, out)
	}

	// Push to main: refused per ref, nothing reaches receive-pack.
	if err := os.WriteFile(filepath.Join(dir, "AGENT.md"), []byte("agent work\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	w.git.Run(t, "-C", dir, "add", "AGENT.md")
	w.git.Run(t, "-C", dir, "commit", "--quiet", "-m", "agent")
	head := w.git.Run(t, "-C", dir, "rev-parse", "HEAD")
	out, err = w.git.RunErr("-C", dir, "push", "origin", "main")
	if err == nil || !strings.Contains(out, "[remote rejected] main -> main (this environment may push only to refs/heads/agent/*; refs/heads/main refused)") ||
		!strings.Contains(out, "remote: azdo-sidecar: this environment may push only to refs/heads/agent/*; refs/heads/main refused") {
		t.Errorf("push to main: err %v\n%s\nwant git's remote rejected with the reason", err, out)
	}
	if n := receivePackPOSTs(w.emu, "site"); n != 0 {
		t.Errorf("the emulator's receive-pack got %d POSTs for a refused push; want 0", n)
	}
	if got := w.git.Run(t, "--git-dir", w.seed.Dir, "rev-parse", "refs/heads/main"); got != w.seed.Head {
		t.Errorf("emulator main = %s; want unchanged %s", got, w.seed.Head)
	}

	// Push to agent/x: allowed.
	w.git.Run(t, "-C", dir, "push", "--quiet", "origin", "HEAD:refs/heads/agent/x")
	if got := w.git.Run(t, "--git-dir", w.seed.Dir, "rev-parse", "refs/heads/agent/x"); got != head {
		t.Errorf("emulator agent/x = %s; want %s", got, head)
	}

	// The read-only repository: fetch yes, push never.
	libDir := filepath.Join(t.TempDir(), "lib")
	w.git.Run(t, "clone", "--quiet", "https://dev.azure.com/contoso/Shared/_git/lib", libDir)
	w.git.Run(t, "-C", libDir, "commit", "--quiet", "--allow-empty", "-m", "x")
	out, err = w.git.RunErr("-C", libDir, "push", "origin", "HEAD:refs/heads/agent/y")
	if err == nil || !strings.Contains(out, "remote: azdo-sidecar: dev.azure.com/contoso/shared/lib is read-only for this environment") {
		t.Errorf("push to the read-only repository: err %v\n%s", err, out)
	}
	if n := receivePackPOSTs(w.emu, "lib"); n != 0 {
		t.Errorf("the emulator's receive-pack got %d POSTs for the read-only repository", n)
	}

	// REST: another repository refused (by name and by ID), this one allowed.
	for _, u := range []string{
		"https://dev.azure.com/contoso/Web/_apis/git/repositories/other?api-version=7.1",
		"https://dev.azure.com/contoso/_apis/git/repositories/" + azdoemu.RepoID("contoso", "Web", "other") + "/items?api-version=7.1",
		"https://dev.azure.com/contoso/_apis/git/repositories?api-version=7.1",
	} {
		r := getViaSidecar(t, w.sc, u)
		if r.code != http.StatusForbidden || !strings.Contains(r.body, `"error":"forbidden_by_policy"`) {
			t.Errorf("GET %s = %d %q; want 403 forbidden_by_policy", u, r.code, r.body)
		}
	}
	if r := getViaSidecar(t, w.sc, "https://dev.azure.com/contoso/_apis/git/repositories/"+azdoemu.RepoID("contoso", "Web", "site")+"?api-version=7.1"); r.code != http.StatusOK || !strings.Contains(r.body, `"name":"site"`) {
		t.Errorf("REST for the allowed repository = %d %q", r.code, r.body)
	}
	if m := w.sc.metrics(t); !strings.Contains(m, `azdo_sidecar_proxy_policy_refusals_total{reason="ref_not_allowed"} 1`) ||
		!strings.Contains(m, `azdo_sidecar_proxy_policy_refusals_total{reason="repo_not_allowed"}`) {
		t.Errorf("refusal metrics missing:\n%s", grepLines(m, "policy_refusals"))
	}

	// The audit trail reaches the vault.
	evs := w.waitAudit(t, 20*time.Second, func(evs []vaultapi.AuditEvent) bool {
		var clone, refused, pushed bool
		for _, e := range evs {
			clone = clone || e.Operation == "fetch" && e.Repo == "site" && e.Status == 200 && e.BytesOut > 0
			refused = refused || e.Operation == "push" && e.Repo == "site" && strings.HasPrefix(e.Refused, "ref_not_allowed") &&
				len(e.Refs) == 1 && e.Refs[0].Name == "refs/heads/main" && e.Refs[0].New == head && e.Refs[0].Old == w.seed.Head
			pushed = pushed || e.Operation == "push" && e.Repo == "site" && e.Refused == "" && e.Status == 200 &&
				len(e.Refs) == 1 && e.Refs[0].Name == "refs/heads/agent/x" && e.Refs[0].New == head
		}
		return clone && refused && pushed
	})
	for _, e := range evs {
		if e.Env != w.envID || e.Owner != vaultUser || e.Host != "dev.azure.com" {
			t.Errorf("event %+v: want env %s, owner %s, host dev.azure.com", e, w.envID, vaultUser)
		}
	}
	raw, _ := json.Marshal(evs)
	if strings.Contains(string(raw), w.env) || strings.Contains(w.sc.stderr.String(), w.env) {
		t.Error("the environment token reached an audit event or the sidecar's log")
	}
}

// TestPolicyAuditSurvivesVaultOutage: events of git operations run while
// the vault is down reach it once it is back; git never waits for it.
func TestPolicyAuditSurvivesVaultOutage(t *testing.T) {
	w := newPolicyWorld(t, []string{"--allow-repo", "dev.azure.com/contoso/Web/site"})
	dir := filepath.Join(t.TempDir(), "site")
	w.git.Run(t, "clone", "--quiet", repoURL, dir) // the token is cached now
	w.waitAudit(t, 20*time.Second, func(evs []vaultapi.AuditEvent) bool { return len(evs) >= 1 })

	addr := w.vw.proc.addr
	w.vw.proc.stop(t)
	start := time.Now()
	w.git.Run(t, "-C", dir, "fetch", "--quiet", "origin")
	w.git.Run(t, "-C", dir, "ls-remote", "origin")
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("git took %s with the vault down", d)
	}
	time.Sleep(4 * time.Second) // the sidecar tries, fails, backs off

	if _, err := w.vw.startErr("--listen", addr); err != nil {
		t.Fatal(err)
	}
	// Both commands (a fetch with nothing new is its info/refs alone,
	// recorded as ls-remote) reach the vault.
	w.waitAudit(t, 90*time.Second, func(evs []vaultapi.AuditEvent) bool {
		n := 0
		for _, e := range evs {
			if e.Time.After(start.Add(-time.Second)) && e.Repo == "site" && e.Status == 200 {
				n++
			}
		}
		return n >= 2
	})
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
