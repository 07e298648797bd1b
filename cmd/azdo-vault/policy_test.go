package main

import (
	"context"
	"encoding/json"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/azdo-sidecar/azdo-sidecar/secret"
	"github.com/azdo-sidecar/azdo-sidecar/vault"
	"github.com/azdo-sidecar/azdo-sidecar/vault/store"
)

// storedPolicy returns the policy of the environment whose token is tok.
func storedPolicy(t *testing.T, path, tok string) (store.Policy, int64) {
	t.Helper()
	st, err := store.OpenSQLite(context.Background(), path, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	kp, err := vault.LoadKeyFile(keyFor(t, "sqlite:"+path))
	if err != nil {
		t.Fatal(err)
	}
	b, err := vault.Bind(context.Background(), st, kp, nil)
	if err != nil {
		t.Fatal(err)
	}
	e, err := st.EnvironmentByTokenHash(context.Background(), b.EnvTokenHash(secret.New(tok)))
	if err != nil {
		t.Fatal(err)
	}
	return e.Policy, e.PolicyVersion
}

// TestEnvCreateAndUpdatePolicy: the example creates a policy at
// version 1; env update replaces the parts it is given and counts the
// version up; --clear-policy removes it.
func TestEnvCreateAndUpdatePolicy(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vault.db")
	url := "sqlite:" + path
	code, out, errs := runVault(t, "env", "create", "--create", "--owner", "alice@contoso.com",
		"--allow-repo", "dev.azure.com/contoso/Fabrikam/web",
		"--allow-repo", "dev.azure.com/contoso/Fabrikam/*",
		"--read-only-repo", "dev.azure.com/contoso/Shared/*",
		"--push-ref", "refs/heads/agent/*",
		"--proxy-only", "--store", url, "--key-file", keyFor(t, url))
	if code != 0 {
		t.Fatalf("env create = %d, stderr %q", code, errs)
	}
	tok := strings.TrimSpace(out)
	id := envIDRe.FindString(errs)
	if !strings.Contains(errs, "policy: allow dev.azure.com/contoso/Fabrikam/web; allow dev.azure.com/contoso/Fabrikam/*; read-only dev.azure.com/contoso/Shared/*; push refs/heads/agent/*; proxy-only") {
		t.Errorf("env create stderr = %q; want the policy summarised", errs)
	}
	want := store.Policy{
		AllowRepos:    []string{"dev.azure.com/contoso/Fabrikam/web", "dev.azure.com/contoso/Fabrikam/*"},
		ReadOnlyRepos: []string{"dev.azure.com/contoso/Shared/*"},
		PushRefs:      []string{"refs/heads/agent/*"},
		ProxyOnly:     true,
	}
	if p, v := storedPolicy(t, path, tok); !reflect.DeepEqual(p, want) || v != 1 {
		t.Fatalf("stored policy = %+v v%d; want %+v v1", p, v, want)
	}

	// Flags after the ID, as administrators type them; only --push-ref
	// and --proxy-only change.
	code, out, errs = runVault(t, "env", "update", id, "--key-file", keyFor(t, url), "--push-ref", "refs/heads/bot/*", "--proxy-only=false", "--json", "--store", url)
	if code != 0 {
		t.Fatalf("env update = %d, stderr %q", code, errs)
	}
	var row envRow
	if err := json.Unmarshal([]byte(out), &row); err != nil || row.ID != id || row.Policy.Version != 2 || !reflect.DeepEqual(row.Policy.PushRefs, []string{"refs/heads/bot/*"}) {
		t.Errorf("env update --json = %q (%v); want the environment at policy version 2", out, err)
	}
	want.PushRefs, want.ProxyOnly = []string{"refs/heads/bot/*"}, false
	if p, v := storedPolicy(t, path, tok); !reflect.DeepEqual(p, want) || v != 2 {
		t.Fatalf("after update: %+v v%d; want %+v v2", p, v, want)
	}
	// An empty value clears that part.
	if code, _, errs := runVault(t, "env", "update", id, "--key-file", keyFor(t, url), "--read-only-repo", "", "--store", url); code != 0 || !strings.Contains(errs, "policy version 3") {
		t.Fatalf("env update --read-only-repo '' = %d, stderr %q", code, errs)
	}
	want.ReadOnlyRepos = nil
	if p, _ := storedPolicy(t, path, tok); !reflect.DeepEqual(p, want) {
		t.Fatalf("after clearing read-only: %+v; want %+v", p, want)
	}
	// --clear-policy, then what else is given.
	if code, _, errs := runVault(t, "env", "update", id, "--key-file", keyFor(t, url), "--clear-policy", "--push-ref", "refs/heads/x", "--store", url); code != 0 {
		t.Fatalf("env update --clear-policy = %d, stderr %q", code, errs)
	}
	if p, v := storedPolicy(t, path, tok); !reflect.DeepEqual(p, store.Policy{PushRefs: []string{"refs/heads/x"}}) || v != 4 {
		t.Fatalf("after --clear-policy --push-ref: %+v v%d", p, v)
	}
	if code, _, errs := runVault(t, "env", "update", id, "--key-file", keyFor(t, url), "--clear-policy", "--store", url); code != 0 || !strings.Contains(errs, "policy version 5: none") {
		t.Fatalf("env update --clear-policy = %d, stderr %q", code, errs)
	}
}

func TestEnvPolicyFlagErrors(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vault.db")
	url := "sqlite:" + path
	id, tok := createEnv(t, url)
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStderr string
	}{
		{"three segments", []string{"env", "create", "--create", "--owner", "a", "--key-file", keyFor(t, url), "--allow-repo", "dev.azure.com/contoso/web"}, 2,
			`--allow-repo: repository pattern "dev.azure.com/contoso/web": want HOST/ORG/PROJECT/REPO`},
		{"partial wildcard", []string{"env", "create", "--create", "--owner", "a", "--key-file", keyFor(t, url), "--read-only-repo", "dev.azure.com/c/p/web*"}, 2, `"*" must be a whole segment`},
		{"ref glob", []string{"env", "create", "--create", "--owner", "a", "--key-file", keyFor(t, url), "--push-ref", "main"}, 2, `--push-ref: ref pattern "main": want a full ref glob`},
		{"clear on create", []string{"env", "create", "--create", "--owner", "a", "--key-file", keyFor(t, url), "--clear-policy"}, 2, "flag provided but not defined: -clear-policy"},
		{"update without a change", []string{"env", "update", "--key-file", keyFor(t, url), id}, 2, "nothing to change"},
		{"update a bad pattern", []string{"env", "update", "--key-file", keyFor(t, url), id, "--allow-repo", "x/y"}, 2, "want HOST/ORG/PROJECT/REPO"},
		{"update without an ID", []string{"env", "update", "--key-file", keyFor(t, url), "--proxy-only"}, 2, "takes one environment ID"},
		{"update a token", []string{"env", "update", "--key-file", keyFor(t, url), tok, "--proxy-only"}, 2, "not an environment ID"},
		{"update an unknown ID", []string{"env", "update", "--key-file", keyFor(t, url), "env_0000000000000000", "--proxy-only"}, 1, `no environment "env_0000000000000000"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errs := runVault(t, append(tt.args, "--store", url)...)
			if code != tt.wantCode || !strings.Contains(errs, tt.wantStderr) || out != "" {
				t.Errorf("azdo-vault %q = %d, stdout %q, stderr %q; want %d and %q", tt.args, code, out, errs, tt.wantCode, tt.wantStderr)
			}
			if strings.Contains(out+errs, tok) {
				t.Errorf("azdo-vault %q printed the environment token", tt.args)
			}
		})
	}
	if p, v := storedPolicy(t, path, tok); !p.IsZero() || v != 0 {
		t.Errorf("after refused updates the policy is %+v v%d; want none, v0", p, v)
	}
}
