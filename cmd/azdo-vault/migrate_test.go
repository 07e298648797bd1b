package main

import (
	"context"
	"crypto/sha256"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/azdo-sidecar/azdo-sidecar/vault"
	"github.com/azdo-sidecar/azdo-sidecar/vault/store"
)

// TestMigrateBindLegacy: commands that need the runner key refuse a store
// written before row binding, naming azdo-vault migrate --bind-legacy;
// that command binds its rows, printing each, after which they work.
func TestMigrateBindLegacy(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vault.db")
	storeURL := "sqlite:" + path
	key := keyFor(t, storeURL)
	st, err := store.OpenSQLite(context.Background(), path, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	// What a version before row binding wrote.
	legacyTok := vault.EnvTokenPrefix + "legacy-token-secretvalue"
	sum := sha256.Sum256([]byte(legacyTok))
	if err := st.CreateEnvironment(context.Background(), store.Environment{ID: "env_00000000000000aa", Owner: "alice", TokenHash: sum[:], CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	st.Close()

	code, out, errs := runVault(t, "env", "create", "--owner", "bob", "--store", storeURL, "--key-file", key)
	if code == 0 || out != "" || !strings.Contains(errs, "azdo-vault migrate --bind-legacy") {
		t.Fatalf("env create on a legacy store = %d, stdout %q, stderr %q; want a refusal naming azdo-vault migrate --bind-legacy", code, out, errs)
	}
	if code, out, errs := runVault(t, "migrate", "--store", storeURL, "--key-file", key); code == 0 {
		t.Errorf("migrate without --bind-legacy = %d %q %q; want a usage error", code, out, errs)
	}
	code, out, errs = runVault(t, "migrate", "--bind-legacy", "--store", storeURL, "--key-file", key)
	if code != 0 || !strings.Contains(out, "bound environment env_00000000000000aa: owner alice") || !strings.Contains(errs, "bound 0 credentials and 1 environments") {
		t.Fatalf("migrate --bind-legacy = %d, stdout %q, stderr %q; want the bound environment printed", code, out, errs)
	}
	if envRevoked(t, path, legacyTok) {
		t.Errorf("the bound legacy environment is revoked")
	}
	createEnv(t, storeURL)
}
