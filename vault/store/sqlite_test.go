package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
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

func TestPutCredentialUpserts(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, filepath.Join(t.TempDir(), "vault.db"))
	c := Credential{Owner: "ann", Host: "dev.azure.com", Org: "contoso", Kind: PAT, Sealed: "b25l", ExpiresAt: time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)}
	first, err := s.PutCredential(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	if first.Version != 1 || first.Status != StatusOK || first.ID == 0 {
		t.Errorf("first put = %+v; want version 1, status ok, an ID", first)
	}
	c.Sealed = "dHdv"
	second, err := s.PutCredential(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	if second.ID != first.ID || second.Version != 2 || second.Sealed != "dHdv" || !second.ExpiresAt.Equal(c.ExpiresAt) {
		t.Errorf("second put = %+v; want same ID, version 2, new secret", second)
	}
	// Another kind for the same org is another row.
	c.Kind = OAuth
	third, err := s.PutCredential(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	if third.ID == first.ID {
		t.Errorf("oauth put reused the PAT row %d", first.ID)
	}
	for _, bad := range []Credential{
		{Host: "h", Org: "o", Kind: PAT, Sealed: "x"},
		{Owner: "a", Host: "h", Org: "o", Kind: "password", Sealed: "x"},
		{Owner: "a", Host: "h", Org: "o", Kind: PAT},
	} {
		if _, err := s.PutCredential(ctx, bad); err == nil {
			t.Errorf("PutCredential(%+v) = nil error; want refusal", bad)
		}
	}
}

func TestUpdateCredentialCompareAndSwap(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, filepath.Join(t.TempDir(), "vault.db"))
	c, err := s.PutCredential(ctx, Credential{Owner: "ann", Host: "dev.azure.com", Org: AllOrgs, Kind: OAuth, Sealed: "djE="})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		version int64
		id      int64
		want    error
	}{
		{name: "current version", version: 1, id: c.ID},
		{name: "stale version", version: 1, id: c.ID, want: ErrConflict},
		{name: "missing row", version: 1, id: 999, want: ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := c
			u.ID, u.Version, u.Sealed = tt.id, tt.version, "djI="
			got, err := s.UpdateCredential(ctx, u)
			if !errors.Is(err, tt.want) {
				t.Fatalf("UpdateCredential(version %d) = %v; want %v", tt.version, err, tt.want)
			}
			if err == nil && got.Version != tt.version+1 {
				t.Errorf("UpdateCredential version = %d; want %d", got.Version, tt.version+1)
			}
		})
	}
}

// TestConcurrentCompareAndSwap runs writers through two connections to one
// file (as the CLI and a vault would): exactly one writer per version wins.
func TestConcurrentCompareAndSwap(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "vault.db")
	a, b := openTest(t, path), openTest(t, path)
	c, err := a.PutCredential(ctx, Credential{Owner: "ann", Host: "dev.azure.com", Org: AllOrgs, Kind: OAuth, Sealed: "djE="})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins, conflicts := 0, 0
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := a
			if i%2 == 1 {
				s = b
			}
			u := c
			u.Sealed = fmt.Sprintf("w%d", i)
			_, err := s.UpdateCredential(ctx, u)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				wins++
			case errors.Is(err, ErrConflict):
				conflicts++
			default:
				t.Errorf("UpdateCredential = %v; want nil or ErrConflict", err)
			}
		}()
	}
	wg.Wait()
	if wins != 1 || conflicts != 19 {
		t.Errorf("wins, conflicts = %d, %d; want 1, 19", wins, conflicts)
	}
}

func TestEnvironments(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, filepath.Join(t.TempDir(), "vault.db"))
	hash := bytes.Repeat([]byte{7}, 32)
	e := Environment{ID: "env_1", Owner: "ann", TokenHash: hash, CreatedAt: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	if err := s.CreateEnvironment(ctx, e); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateEnvironment(ctx, Environment{ID: "env_2", Owner: "bob", TokenHash: hash}); err == nil {
		t.Error("CreateEnvironment with a duplicate token hash = nil error")
	}
	got, err := s.EnvironmentByTokenHash(ctx, hash)
	if err != nil || got.ID != "env_1" || got.Owner != "ann" || !got.RevokedAt.IsZero() || !got.CreatedAt.Equal(e.CreatedAt) {
		t.Fatalf("EnvironmentByTokenHash = %+v, %v; want env_1 of ann, not revoked", got, err)
	}
	if _, err := s.EnvironmentByTokenHash(ctx, bytes.Repeat([]byte{8}, 32)); !errors.Is(err, ErrNotFound) {
		t.Errorf("EnvironmentByTokenHash(unknown) = %v; want ErrNotFound", err)
	}
	at := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
	if err := s.RevokeEnvironment(ctx, "env_1", at); err != nil {
		t.Fatal(err)
	}
	got, _ = s.EnvironmentByTokenHash(ctx, hash)
	if !got.RevokedAt.Equal(at) {
		t.Errorf("RevokedAt = %v; want %v", got.RevokedAt, at)
	}
	if err := s.RevokeEnvironment(ctx, "env_1", at.Add(time.Hour)); err != nil {
		t.Errorf("RevokeEnvironment twice = %v; want nil", err)
	}
	if got, _ := s.EnvironmentByTokenHash(ctx, hash); !got.RevokedAt.Equal(at) {
		t.Errorf("second revoke moved RevokedAt to %v", got.RevokedAt)
	}
	if err := s.RevokeEnvironment(ctx, "env_404", at); !errors.Is(err, ErrNotFound) {
		t.Errorf("RevokeEnvironment(unknown) = %v; want ErrNotFound", err)
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
		{name: "postgres not yet", url: "postgres://u:hunter2@db/vault", wantErr: true},
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
