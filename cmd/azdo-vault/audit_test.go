package main

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/azdo-sidecar/azdo-sidecar/vault/store"
	"github.com/azdo-sidecar/azdo-sidecar/vaultapi"
)

// TestAuditList: filters by owner, environment, repository (name or
// path) and age, as a table or JSON lines.
func TestAuditList(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vault.db")
	st, err := store.OpenSQLite(context.Background(), path, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Second)
	oid := strings.Repeat("a", 40)
	if err := st.AddAuditEvents(context.Background(), []store.AuditEvent{
		{Time: now.Add(-48 * time.Hour), Env: "env_00000000000000a1", Owner: "ann", Host: "dev.azure.com", Org: "contoso", Project: "Fabrikam", Repo: "web", Operation: "fetch", Status: 200, BytesIn: 10, BytesOut: 2000, DurationMS: 1500},
		{Time: now.Add(-time.Hour), Env: "env_00000000000000a1", Owner: "ann", Host: "dev.azure.com", Org: "contoso", Project: "Fabrikam", Repo: "web", Operation: "push",
			Refs: []store.AuditRef{{Name: "refs/heads/main", Old: oid, New: strings.Repeat("b", 40)}}, Status: 403, Refused: "ref_not_allowed"},
		{Time: now.Add(-time.Minute), Env: "env_00000000000000b1", Owner: "bob", Host: "dev.azure.com", Org: "contoso", Project: "Other", Repo: "web", Operation: "ls-remote", Status: 200},
	}); err != nil {
		t.Fatal(err)
	}
	st.Close()
	url := "sqlite:" + path
	tests := []struct {
		name string
		args []string
		want []string // operations, in order
	}{
		{"all", nil, []string{"fetch", "push", "ls-remote"}},
		{"owner", []string{"--owner", "ann"}, []string{"fetch", "push"}},
		{"env", []string{"--env", "env_00000000000000b1"}, []string{"ls-remote"}},
		{"repo name in another case", []string{"--repo", "WEB"}, []string{"fetch", "push", "ls-remote"}},
		{"repo path", []string{"--repo", "dev.azure.com/contoso/fabrikam/web"}, []string{"fetch", "push"}},
		{"since", []string{"--since", "2h"}, []string{"push", "ls-remote"}},
		{"limit keeps the newest", []string{"--limit", "1"}, []string{"ls-remote"}},
		{"repo path and limit", []string{"--repo", "dev.azure.com/contoso/Fabrikam/web", "--limit", "1"}, []string{"push"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"audit", "list", "--json", "--store", url}, tt.args...)
			code, out, errs := runVault(t, args...)
			if code != 0 {
				t.Fatalf("azdo-vault %q = %d, stderr %q", args, code, errs)
			}
			var ops []string
			for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
				if line == "" {
					continue
				}
				var ev vaultapi.AuditEvent
				if err := json.Unmarshal([]byte(line), &ev); err != nil {
					t.Fatalf("line %q: %v", line, err)
				}
				if ev.Env == "" || ev.Owner == "" {
					t.Errorf("line %q lacks env or owner", line)
				}
				ops = append(ops, ev.Operation)
			}
			if strings.Join(ops, ",") != strings.Join(tt.want, ",") {
				t.Errorf("azdo-vault %q = %v; want %v", args, ops, tt.want)
			}
		})
	}
	code, out, errs := runVault(t, "audit", "list", "--owner", "ann", "--store", url)
	if code != 0 {
		t.Fatalf("audit list (table) = %d, stderr %q", code, errs)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "TIME") ||
		!strings.Contains(lines[1], "dev.azure.com/contoso/Fabrikam/web") || !strings.Contains(lines[1], "forwarded") || !strings.Contains(lines[1], "10/2000") || !strings.Contains(lines[1], "1.5s") ||
		!strings.Contains(lines[2], "refused: ref_not_allowed") || !strings.Contains(lines[2], "refs/heads/main aaaaaaaaaa..bbbbbbbbbb") {
		t.Errorf("audit list table:\n%s", out)
	}
	if code, _, errs := runVault(t, "audit", "list", "--owner", "carol", "--store", url); code != 0 || !strings.Contains(errs, "no audit events") {
		t.Errorf("audit list with no match = %d, stderr %q", code, errs)
	}
	if code, _, errs := runVault(t, "audit", "list", "--store", "sqlite:"+filepath.Join(t.TempDir(), "typo.db")); code != 1 || !strings.Contains(errs, "no store at") {
		t.Errorf("audit list on a missing store = %d, stderr %q", code, errs)
	}
}
