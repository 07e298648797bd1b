package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/azdo-sidecar/azdo-sidecar/secret"
	"github.com/azdo-sidecar/azdo-sidecar/vault"
	"github.com/azdo-sidecar/azdo-sidecar/vault/store"
)

// runVault runs azdo-vault with args and returns its exit code and streams.
func runVault(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), append([]string{"azdo-vault"}, args...), strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

var envIDRe = regexp.MustCompile(`env_[0-9a-f]{16}`)

// keyFor returns the runner key file of the store at storeURL (made on
// first use), next to its database file.
func keyFor(t *testing.T, storeURL string) string {
	t.Helper()
	path := strings.TrimPrefix(storeURL, "sqlite:") + ".key"
	if _, err := os.Stat(path); err == nil {
		return path
	}
	if _, err := vault.WriteKeyFile(path); err != nil {
		t.Fatal(err)
	}
	return path
}

// createEnv runs env create and returns the ID (from stderr) and the token
// (all of stdout).
func createEnv(t *testing.T, storeURL string) (id, tok string) {
	t.Helper()
	code, out, errs := runVault(t, "env", "create", "--create", "--owner", "alice", "--store", storeURL, "--key-file", keyFor(t, storeURL))
	if code != 0 {
		t.Fatalf("env create = %d, stderr %q; want 0", code, errs)
	}
	tok = strings.TrimSuffix(out, "\n")
	if !strings.HasPrefix(tok, vault.EnvTokenPrefix) || strings.ContainsAny(tok, " \n:") {
		t.Fatalf("env create stdout = %q; want the token alone on one line", out)
	}
	id = envIDRe.FindString(errs)
	if id == "" || !strings.Contains(errs, "azdo-vault env revoke "+id) {
		t.Fatalf("env create stderr = %q; want the environment ID and the revoke command", errs)
	}
	if strings.Contains(errs, tok) {
		t.Errorf("env create stderr shows the token")
	}
	return id, tok
}

// envState returns whether tok authenticates an unrevoked environment.
func envRevoked(t *testing.T, path, tok string) bool {
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
		t.Fatalf("EnvironmentByTokenHash = %v; want the environment", err)
	}
	return !e.RevokedAt.IsZero()
}

// TestEnvCreatePrintsTokenAlone: stdout is the token and nothing else, so
// TOKEN=$(azdo-vault env create …) works; the ID goes to stderr; --json
// carries both.
func TestEnvCreatePrintsTokenAlone(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vault.db")
	_, tok := createEnv(t, "sqlite:"+path)
	if envRevoked(t, path, tok) {
		t.Errorf("a new environment is revoked")
	}
	code, out, errs := runVault(t, "env", "create", "--create", "--owner", "bob", "--json", "--store", "sqlite:"+path, "--key-file", keyFor(t, "sqlite:"+path))
	if code != 0 || !strings.HasPrefix(out, `{"id":"env_`) || !strings.Contains(out, `"token":"`+vault.EnvTokenPrefix) {
		t.Errorf("env create --json = %d %q (stderr %q); want one JSON object with id and token", code, out, errs)
	}
}

// TestEnvCreateNeedsTheKey: environments are bound to the runner key, so
// env create without --key-file is refused, naming the flag, and a key
// that is not the store's runner key makes environments that authenticate
// nothing on that runner (tested in package vault).
func TestEnvCreateNeedsTheKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vault.db")
	code, out, errs := runVault(t, "env", "create", "--create", "--owner", "bob", "--store", "sqlite:"+path)
	if code == 0 || out != "" || !strings.Contains(errs, "--key-file") {
		t.Errorf("env create without --key-file = %d, stdout %q, stderr %q; want a failure naming --key-file", code, out, errs)
	}
}

func TestEnvRevoke(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vault.db")
	storeURL := "sqlite:" + path
	tests := []struct {
		name string
		args func(id, tok string) []string
	}{
		{"flags before the ID", func(id, _ string) []string { return []string{"env", "revoke", "--store", storeURL, id} }},
		{"--store after the ID", func(id, _ string) []string { return []string{"env", "revoke", id, "--store", storeURL} }},
		{"--store= after the ID", func(id, _ string) []string { return []string{"env", "revoke", id, "--store=" + storeURL} }},
		{"by token", func(_, tok string) []string {
			return []string{"env", "revoke", "--store", storeURL, "--key-file", keyFor(t, storeURL), tok}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, tok := createEnv(t, storeURL)
			code, out, errs := runVault(t, tt.args(id, tok)...)
			if code != 0 || !envRevoked(t, path, tok) {
				t.Fatalf("env revoke (%s) = %d, stderr %q; want 0 and the environment revoked", tt.name, code, errs)
			}
			if !strings.Contains(errs, id) || out != "" {
				t.Errorf("env revoke printed stdout %q, stderr %q; want the ID on stderr only", out, errs)
			}
			if strings.Contains(errs, tok) {
				t.Errorf("env revoke stderr shows the token")
			}
		})
	}

	refusals := []struct {
		name     string
		args     []string
		wantCode int
		want     string
	}{
		{"no ID", []string{"env", "revoke", "--store", storeURL}, 2, "one environment ID"},
		{"two IDs", []string{"env", "revoke", "env_0000000000000000", "env_0000000000000001", "--store", storeURL}, 2, "one environment ID"},
		{"unknown flag after the ID", []string{"env", "revoke", "env_0000000000000000", "--owner", "x"}, 2, "not defined: -owner"},
		{"unknown ID", []string{"env", "revoke", "env_0000000000000000", "--store", storeURL}, 1, `no environment "env_0000000000000000"`},
		{"not an ID: not echoed", []string{"env", "revoke", "pasted-secret-value", "--store", storeURL}, 1, "no environment with that ID"},
		{"unknown token", []string{"env", "revoke", vault.EnvTokenPrefix + "nope", "--store", storeURL, "--key-file", keyFor(t, storeURL)}, 1, "no environment has this token"},
		{"by token without the key", []string{"env", "revoke", vault.EnvTokenPrefix + "nope", "--store", storeURL}, 2, "needs the runner key"},
	}
	for _, tt := range refusals {
		t.Run(tt.name, func(t *testing.T) {
			code, _, errs := runVault(t, tt.args...)
			if code != tt.wantCode || !strings.Contains(errs, tt.want) {
				t.Errorf("azdo-vault %q = %d, stderr %q; want %d naming %q", tt.args, code, errs, tt.wantCode, tt.want)
			}
			if strings.Contains(errs, vault.EnvTokenPrefix+"nope") || strings.Contains(errs, "pasted-secret-value") {
				t.Errorf("stderr shows the token given")
			}
		})
	}
}
