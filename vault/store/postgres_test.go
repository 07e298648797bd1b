package store_test

import (
	"context"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/azdo-sidecar/azdo-sidecar/vault/store"
	"github.com/azdo-sidecar/azdo-sidecar/vault/store/pgtest"
	"github.com/azdo-sidecar/azdo-sidecar/vault/store/storetest"
)

// TestMain stops the PostgreSQL cluster that the Postgres tests start.
func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

func openPG(t *testing.T, rawURL string) *store.Postgres {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := store.OpenPostgres(ctx, rawURL, time.Now)
	if err != nil {
		t.Fatalf("OpenPostgres = %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestPostgresContract runs the store contract on PostgreSQL, a fresh
// database per test; the handles of one test are separate pools, as two
// replicas would have.
func TestPostgresContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Opener {
		u := pgtest.URL(t)
		return func(ctx context.Context, now func() time.Time) (store.Store, error) {
			return store.OpenPostgres(ctx, u, now)
		}
	})
}

// TestPostgresReplicasMigrateOnce: replicas starting at once on an empty
// database all open it, and the schema is created once. Without the
// advisory lock, concurrent CREATE TABLEs fail on PostgreSQL's catalog.
func TestPostgresReplicasMigrateOnce(t *testing.T) {
	u := pgtest.URL(t)
	const replicas = 8
	var wg sync.WaitGroup
	errs := make([]error, replicas)
	durs := make([]time.Duration, replicas)
	for i := range replicas {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			start := time.Now()
			s, err := store.OpenPostgres(ctx, u, time.Now)
			durs[i], errs[i] = time.Since(start), err
			if err == nil {
				s.Close()
			}
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("replica %d: OpenPostgres = %v", i, err)
		}
	}
	t.Logf("open + migrate of %d replicas at once: %v", replicas, durs)
	s := openPG(t, u)
	v, err := s.SchemaVersion(context.Background())
	if err != nil || v != store.LatestPostgresSchemaVersion() {
		t.Errorf("SchemaVersion() = %d, %v; want %d", v, err, store.LatestPostgresSchemaVersion())
	}
}

// TestPostgresRefusesNewerSchema: a binary older than the database stops.
func TestPostgresRefusesNewerSchema(t *testing.T) {
	u := pgtest.URL(t)
	s := openPG(t, u)
	// Reopening an up-to-date database changes nothing.
	openPG(t, u)
	c, err := s.PutCredential(context.Background(), store.Credential{Owner: "ann", Host: "dev.azure.com", Org: store.AllOrgs, Kind: store.OAuth, Sealed: "eA=="})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := openPG(t, u).Credential(context.Background(), c.ID); err != nil {
		t.Fatalf("Credential after reopen = %v", err)
	}
	if err := store.SetSchemaVersionForTest(context.Background(), s, 99); err != nil {
		t.Fatal(err)
	}
	if _, err := store.OpenPostgres(context.Background(), u, nil); err == nil || !strings.Contains(err.Error(), "newer") {
		t.Fatalf("OpenPostgres(schema 99) = %v; want a refusal naming the newer schema", err)
	}
}

// TestPostgresErrorsHideThePassword: whatever goes wrong while opening,
// the URL's password is not in the error.
func TestPostgresErrorsHideThePassword(t *testing.T) {
	const pw = "hunter2-S3cret"
	real, err := url.Parse(pgtest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	withPassword := *real
	withPassword.User = url.UserPassword(pgtest.User, pw+"/é")
	withPassword.Path = "/no_such_database"
	inQuery := *real
	inQuery.Path = "/no_such_database"
	q := inQuery.Query()
	q.Set("password", pw)
	inQuery.RawQuery = q.Encode()
	tests := []struct {
		name string
		url  string
	}{
		{"nothing listening", "postgres://vault:" + pw + "@127.0.0.1:1/vault?connect_timeout=5"},
		{"postgresql scheme", "postgresql://vault:" + pw + "@127.0.0.1:1/vault?connect_timeout=5"},
		{"bad port", "postgres://vault:" + pw + "@127.0.0.1:port/vault"},
		{"bad host", "postgres://vault:" + pw + "@[::1/vault"},
		{"bad parameter", "postgres://vault:" + pw + "@127.0.0.1:1/vault?sslmode=sometimes"},
		{"unknown database, password in user info", withPassword.String()},
		{"unknown database, password in query", inQuery.String()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			s, err := store.Open(ctx, tt.url, nil)
			if err == nil {
				s.Close()
				t.Fatalf("Open(%s) = nil error; want one", tt.name)
			}
			for _, leak := range []string{pw, url.QueryEscape(pw)} {
				if strings.Contains(err.Error(), leak) {
					t.Errorf("Open(%s) error %q contains the password", tt.name, err)
				}
			}
		})
	}
}

// TestOpenDispatchesPostgres: both URL schemes open PostgreSQL.
func TestOpenDispatchesPostgres(t *testing.T) {
	u := pgtest.URL(t)
	for _, scheme := range []string{"postgres://", "postgresql://"} {
		s, err := store.Open(context.Background(), scheme+strings.TrimPrefix(u, "postgres://"), nil)
		if err != nil {
			t.Fatalf("Open(%s…) = %v", scheme, err)
		}
		if _, ok := s.(*store.Postgres); !ok {
			t.Errorf("Open(%s…) = %T; want *store.Postgres", scheme, s)
		}
		s.Close()
	}
}

// TestPostgresStatementTimeout: statements are bounded on the server too,
// 30s unless the URL says otherwise.
func TestPostgresStatementTimeout(t *testing.T) {
	u := pgtest.URL(t)
	tests := []struct {
		name, url, want string
	}{
		{"default", u, "30s"},
		{"from the URL", u + "&statement_timeout=5000", "5s"},
	}
	for _, tt := range tests {
		got, err := store.SettingForTest(context.Background(), openPG(t, tt.url), "statement_timeout")
		if err != nil || got != tt.want {
			t.Errorf("%s: statement_timeout = %q, %v; want %q", tt.name, got, err, tt.want)
		}
	}
}

// TestPostgresMigrateFromBeforeBinding: a store written before binding
// existed (plain SHA-256 token hashes, no MACs) migrates, and BindLegacy binds its
// rows in place.
func TestPostgresMigrateFromBeforeBinding(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	u := pgtest.URL(t)
	old, err := store.OpenPostgresAtForTest(ctx, u, store.LatestPostgresSchemaVersion()-1)
	if err != nil {
		t.Fatal(err)
	}
	hash := []byte("0123456789abcdef0123456789abcdef")
	if err := store.ExecForTest(ctx, old, `INSERT INTO credentials (owner, host, org, kind, sealed, updated_at) VALUES ('ann', 'dev.azure.com', '*', 'pat', 'c2VhbGVk', now())`); err != nil {
		t.Fatal(err)
	}
	if err := store.ExecForTest(ctx, old, `INSERT INTO environments (id, owner, token_hash, created_at) VALUES ('env_1', 'ann', $1, now())`, hash); err != nil {
		t.Fatal(err)
	}
	old.Close()
	s := openPG(t, u)
	if v, err := s.SchemaVersion(ctx); err != nil || v != store.LatestPostgresSchemaVersion() {
		t.Fatalf("SchemaVersion after upgrade = %d, %v; want %d", v, err, store.LatestPostgresSchemaVersion())
	}
	b, err := s.BindLegacy(ctx, pgBinder{})
	if err != nil || len(b.Credentials) != 1 || len(b.Environments) != 1 {
		t.Fatalf("BindLegacy = %+v, %v; want one credential and one environment", b, err)
	}
	cs, err := s.Credentials(ctx, "ann", "dev.azure.com")
	if err != nil || len(cs) != 1 || string(cs[0].MAC) != "cred:ann:c2VhbGVk" {
		t.Errorf("credential after bind = %+v, %v; want MAC cred:ann:c2VhbGVk", cs, err)
	}
	e, err := s.EnvironmentByTokenHash(ctx, append([]byte("keyed:"), hash...))
	if err != nil || e.ID != "env_1" || string(e.MAC) != "env:env_1" {
		t.Errorf("environment after bind = %+v, %v; want env_1 under its keyed hash", e, err)
	}
}

// pgBinder is a store.Binder whose output the test can predict.
type pgBinder struct{}

func (pgBinder) CredentialMAC(c store.Credential) []byte {
	return []byte("cred:" + c.Owner + ":" + c.Sealed)
}

func (pgBinder) BindEnvironment(e store.Environment) ([]byte, []byte) {
	return append([]byte("keyed:"), e.TokenHash...), []byte("env:" + e.ID)
}
