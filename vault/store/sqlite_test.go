package store

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func openTest(t *testing.T, path string) *SQLite {
	t.Helper()
	now := func() time.Time { return time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC) }
	s, err := OpenSQLite(context.Background(), path, now)
	if err != nil {
		t.Fatalf("OpenSQLite(%q) = %v", path, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestMigrateAndReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "vault.db")
	s := openTest(t, path)
	v, err := s.SchemaVersion(ctx)
	if err != nil || v != LatestSchemaVersion() {
		t.Fatalf("SchemaVersion() = %d, %v; want %d", v, err, LatestSchemaVersion())
	}
	if _, err := s.PutCredential(ctx, Credential{Owner: "ann", Host: "dev.azure.com", Org: AllOrgs, Kind: OAuth, Sealed: "c2VhbGVk"}); err != nil {
		t.Fatal(err)
	}
	s.Close()

	s2 := openTest(t, path)
	cs, err := s2.Credentials(ctx, "ann", "dev.azure.com")
	if err != nil || len(cs) != 1 {
		t.Fatalf("Credentials after reopen = %v, %v; want one", cs, err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("db file mode = %v; want 0600", fi.Mode().Perm())
	}
}

func TestRefusesNewerSchema(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "vault.db")
	s := openTest(t, path)
	if _, err := s.db.ExecContext(ctx, `UPDATE schema_version SET version = 99`); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := OpenSQLite(ctx, path, nil); err == nil {
		t.Fatalf("OpenSQLite(schema 99) = nil error; want refusal")
	}
}

func TestOpenURL(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	relDir, err := filepath.Rel(wd, dir)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		url     string
		wantErr bool
	}{
		{name: "sqlite scheme", url: "sqlite:" + filepath.Join(dir, "a.db")},
		{name: "bare path", url: filepath.Join(dir, "b.db")},
		{name: "sqlite URL, absolute path", url: "sqlite://" + filepath.Join(dir, "e.db")},
		{name: "sqlite URL, relative path", url: "sqlite://" + relDir + "/f.db"},
		{name: "query in path", url: "sqlite:" + filepath.Join(dir, "c.db?mode=memory"), wantErr: true},
		{name: "fragment in path", url: filepath.Join(dir, "d.db#x"), wantErr: true},
		{name: "postgres, nothing listening", url: "postgres://u:hunter2@127.0.0.1:1/vault?connect_timeout=5", wantErr: true},
		{name: "unknown scheme", url: "mysql://u:hunter2@db/vault", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Open(ctx, tt.url, nil)
			if (err != nil) != tt.wantErr {
				t.Fatalf("Open(%q) = %v; want error %v", tt.url, err, tt.wantErr)
			}
			if err != nil {
				if bytes.Contains([]byte(err.Error()), []byte("hunter2")) {
					t.Errorf("Open error %q echoes the password", err)
				}
				return
			}
			s.Close()
		})
	}
}

// TestMigrateFromVersion1: a database written by a binary at schema 1
// gains the Connect tables, the policy columns, the audit table and the
// binding columns, and keeps its rows.
func TestMigrateFromVersion1(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "vault.db")
	s, err := openSQLite(ctx, path, time.Now, 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.db.ExecContext(ctx, `INSERT INTO credentials (owner, host, org, kind, sealed, updated_at) VALUES ('ann', 'dev.azure.com', '*', 'oauth', 'c2VhbGVk', 1);
		INSERT INTO environments (id, owner, token_hash, created_at) VALUES ('env_old', 'ann', x'01', 1)`); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s2 := openTest(t, path)
	if v, err := s2.SchemaVersion(ctx); err != nil || v != LatestSchemaVersion() {
		t.Fatalf("SchemaVersion after upgrade = %d, %v; want %d", v, err, LatestSchemaVersion())
	}
	if cs, err := s2.Credentials(ctx, "ann", "dev.azure.com"); err != nil || len(cs) != 1 || cs[0].MAC != nil {
		t.Errorf("Credentials after upgrade = %v, %v; want the one row, not yet bound", cs, err)
	}
	if err := s2.UseNonce(ctx, []byte{1}, time.Now().Add(time.Hour)); err != nil {
		t.Errorf("UseNonce after upgrade = %v", err)
	}
	// An environment from before policies has none, at version 0.
	if e, err := s2.EnvironmentByTokenHash(ctx, []byte{1}); err != nil || !e.Policy.IsZero() || e.PolicyVersion != 0 {
		t.Errorf("environment after upgrade = %+v, %v; want no policy, version 0", e, err)
	}
}

// TestMigrateFromBeforeBinding: a store written before binding existed
// (plain SHA-256 token hashes, no MACs) migrates, and BindLegacy binds its
// rows in place.
func TestMigrateFromBeforeBinding(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "vault.db")
	s, err := openSQLite(ctx, path, time.Now, bindingSchemaVersion-1)
	if err != nil {
		t.Fatal(err)
	}
	old := []byte("0123456789abcdef0123456789abcdef")
	if _, err := s.db.ExecContext(ctx, `INSERT INTO credentials (owner, host, org, kind, sealed, updated_at) VALUES ('ann', 'dev.azure.com', '*', 'pat', 'c2VhbGVk', 1);
		INSERT INTO environments (id, owner, token_hash, created_at) VALUES ('env_1', 'ann', ?, 1)`, old); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s2 := openTest(t, path)
	b, err := s2.BindLegacy(ctx, binder{})
	if err != nil || len(b.Credentials) != 1 || len(b.Environments) != 1 {
		t.Fatalf("BindLegacy = %+v, %v; want one credential and one environment", b, err)
	}
	cs, err := s2.Credentials(ctx, "ann", "dev.azure.com")
	if err != nil || len(cs) != 1 || string(cs[0].MAC) != "cred:ann:c2VhbGVk" {
		t.Errorf("credential after bind = %+v, %v; want MAC cred:ann:c2VhbGVk", cs, err)
	}
	e, err := s2.EnvironmentByTokenHash(ctx, append([]byte("keyed:"), old...))
	if err != nil || e.ID != "env_1" || string(e.MAC) != "env:env_1" {
		t.Errorf("environment after bind = %+v, %v; want env_1 under its keyed hash", e, err)
	}
}

// binder is a store.Binder whose output the tests can predict.
type binder struct{}

func (binder) CredentialMAC(c Credential) []byte { return []byte("cred:" + c.Owner + ":" + c.Sealed) }

func (binder) BindEnvironment(e Environment) ([]byte, []byte) {
	return append([]byte("keyed:"), e.TokenHash...), []byte("env:" + e.ID)
}

func TestSQLitePath(t *testing.T) {
	tests := []struct {
		name, url, want string
		ok              bool
	}{
		{name: "sqlite scheme", url: "sqlite:state/vault.db", want: "state/vault.db", ok: true},
		{name: "sqlite URL, relative", url: "sqlite://state/vault.db", want: "state/vault.db", ok: true},
		{name: "sqlite URL, absolute", url: "sqlite:///var/lib/vault.db", want: "/var/lib/vault.db", ok: true},
		{name: "bare path", url: "/var/lib/vault.db", want: "/var/lib/vault.db", ok: true},
		{name: "postgres", url: "postgres://u:p@db/vault"},
		{name: "postgresql", url: "postgresql://db/vault"},
		{name: "unknown scheme", url: "mysql://db/vault"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, ok := SQLitePath(tt.url); got != tt.want || ok != tt.ok {
				t.Errorf("SQLitePath(%q) = %q, %v; want %q, %v", tt.url, got, ok, tt.want, tt.ok)
			}
		})
	}
}
