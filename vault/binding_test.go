package vault

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/azdo-sidecar/azdo-sidecar/sealbox"
	"github.com/azdo-sidecar/azdo-sidecar/secret"
	"github.com/azdo-sidecar/azdo-sidecar/token"
	"github.com/azdo-sidecar/azdo-sidecar/vault/store"
	"github.com/azdo-sidecar/azdo-sidecar/vault/store/pgtest"
	"github.com/azdo-sidecar/azdo-sidecar/vaultapi"
)

// TestMain stops the PostgreSQL cluster that the PostgreSQL cases start.
func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// rawDB opens the harness's database as someone with write access to the
// store but not the runner key.
func rawDB(t *testing.T, h *harness) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+h.dbPath+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// newEnvFor registers an environment of owner the honest way and returns
// its token.
func newEnvFor(t *testing.T, h *harness, owner string) (store.Environment, secret.String) {
	t.Helper()
	e, tok, err := NewEnvironment(context.Background(), h.st, h.v.Binding(), h.clock.Now(), owner, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return e, tok
}

// TestMovedSealedValueDoesNotOpen: a store writer copies ann's sealed PAT
// (and its MAC) into his own rows, for the same and for another org; the
// vault serves none of them, answers not_connected with a connect link and
// logs why. Ann still gets hers.
func TestMovedSealedValueDoesNotOpen(t *testing.T) {
	h := newHarness(t)
	ann := h.put(Credential{Host: host, Kind: store.PAT, Org: "contoso", Secret: secret.New(patSecret)})
	annRow, err := h.st.Credential(context.Background(), ann.ID)
	if err != nil {
		t.Fatal(err)
	}
	_, malloryTok := newEnvFor(t, h, "mallory")
	moves := []struct {
		name string
		row  store.Credential
	}{
		{"to another owner", store.Credential{Owner: "mallory", Host: host, Org: "contoso", Kind: store.PAT}},
		{"to another owner, every org", store.Credential{Owner: "mallory", Host: host, Org: store.AllOrgs, Kind: store.PAT}},
		{"to another kind", store.Credential{Owner: "mallory", Host: host, Org: store.AllOrgs, Kind: store.OAuth}},
	}
	for _, m := range moves {
		t.Run(m.name, func(t *testing.T) {
			m.row.Sealed, m.row.MAC = annRow.Sealed, annRow.MAC
			moved, err := h.st.PutCredential(context.Background(), m.row)
			if err != nil {
				t.Fatal(err)
			}
			defer h.st.DeleteCredential(context.Background(), moved.ID)
			a := h.ask(malloryTok.Reveal(), vaultapi.TokenRequest{Host: host, Org: "contoso"})
			if a.code != http.StatusNotFound || a.err.Error != vaultapi.ErrNotConnected || a.err.ConnectURL == "" {
				t.Fatalf("mallory's token with ann's moved PAT = %d %s; want 404 not_connected with a connect link", a.code, a.raw)
			}
			if strings.Contains(a.raw, patSecret) {
				t.Fatalf("the moved PAT was served: %s", a.raw)
			}
			if !strings.Contains(h.logs.String(), "not bound to its row") {
				t.Errorf("log does not say why the credential was ignored:\n%s", h.logs.String())
			}
		})
	}
	// The same value under a MAC its writer made up does not open either.
	forged := store.Credential{Owner: "mallory", Host: host, Org: "contoso", Kind: store.PAT, Sealed: annRow.Sealed, MAC: []byte("made-up")}
	if _, err := h.st.PutCredential(context.Background(), forged); err != nil {
		t.Fatal(err)
	}
	if a := h.ask(malloryTok.Reveal(), vaultapi.TokenRequest{Host: host, Org: "contoso"}); a.code != http.StatusNotFound {
		t.Errorf("forged MAC = %d %s; want 404", a.code, a.raw)
	}
	if a := h.token("contoso", 0); a.code != 200 || a.ok.Token != patSecret {
		t.Errorf("ann's own PAT = %d %s; want 200 with it", a.code, a.raw)
	}
	if strings.Contains(h.logs.String(), patSecret) {
		t.Errorf("the PAT leaked into the log")
	}
}

// TestMovedRefreshTokenDoesNotRefresh: an OAuth credential whose sealed
// refresh token was replaced by another row's (with that row's MAC) is not
// refreshed: not_connected, and the identity provider never sees it.
func TestMovedRefreshTokenDoesNotRefresh(t *testing.T) {
	h := newHarness(t)
	h.put(Credential{Host: host, Kind: store.OAuth, Secret: secret.New(initialRT)})
	other := h.put(Credential{Owner: "mallory", Host: host, Kind: store.OAuth, Secret: secret.New("rt-mallory-secretvalue")})
	db := rawDB(t, h)
	// Mallory's row gets ann's sealed refresh token and MAC.
	if _, err := db.Exec(`UPDATE credentials SET sealed = (SELECT sealed FROM credentials WHERE owner = 'ann'),
		mac = (SELECT mac FROM credentials WHERE owner = 'ann') WHERE id = ?`, other.ID); err != nil {
		t.Fatal(err)
	}
	_, malloryTok := newEnvFor(t, h, "mallory")
	a := h.ask(malloryTok.Reveal(), vaultapi.TokenRequest{Host: host, Org: "contoso"})
	if a.code != http.StatusNotFound || a.err.Error != vaultapi.ErrNotConnected || a.err.ConnectURL == "" {
		t.Fatalf("token with a moved refresh token = %d %s; want 404 not_connected with a link", a.code, a.raw)
	}
	if n := h.entra.calls.Load(); n != 0 {
		t.Errorf("the identity provider was called %d times; want never with a moved refresh token", n)
	}
}

// TestHandInsertedEnvironmentAuthenticatesNothing: rows written by someone
// without the runner key authenticate nothing — a new row with the plain
// SHA-256 of a token he chose, his own environment moved to ann, or given
// a longer life.
func TestHandInsertedEnvironmentAuthenticatesNothing(t *testing.T) {
	h := newHarness(t)
	h.put(Credential{Host: host, Kind: store.PAT, Org: "contoso", Secret: secret.New(patSecret)})
	db := rawDB(t, h)
	chosen := EnvTokenPrefix + "mallory-chose-this-token-secretvalue"
	sum := sha256.Sum256([]byte(chosen))
	if _, err := db.Exec(`INSERT INTO environments (id, owner, token_hash, created_at) VALUES ('env_forged', 'ann', ?, 1)`, sum[:]); err != nil {
		t.Fatal(err)
	}
	if a := h.ask(chosen, vaultapi.TokenRequest{Host: host, Org: "contoso"}); a.code != http.StatusUnauthorized {
		t.Errorf("hand-inserted environment row = %d %s; want 401", a.code, a.raw)
	}
	// With the keyed hash copied from a real row and no MAC: still nothing.
	mine, mineTok := newEnvFor(t, h, "mallory")
	if a := h.ask(mineTok.Reveal(), vaultapi.TokenRequest{Host: host, Org: "contoso"}); a.code != http.StatusNotFound {
		t.Fatalf("mallory's own environment = %d; want 404 (mallory has no credential)", a.code)
	}
	if _, err := db.Exec(`UPDATE environments SET owner = 'ann' WHERE id = ?`, mine.ID); err != nil {
		t.Fatal(err)
	}
	if a := h.ask(mineTok.Reveal(), vaultapi.TokenRequest{Host: host, Org: "contoso"}); a.code != http.StatusUnauthorized || strings.Contains(a.raw, patSecret) {
		t.Errorf("environment moved to ann = %d %s; want 401", a.code, a.raw)
	}
	short, shortTok := newEnvFor(t, h, "ann")
	if _, err := db.Exec(`UPDATE environments SET expires_at = 0 WHERE id = ?`, short.ID); err != nil {
		t.Fatal(err)
	}
	if a := h.ask(shortTok.Reveal(), vaultapi.TokenRequest{Host: host, Org: "contoso"}); a.code != http.StatusUnauthorized {
		t.Errorf("environment whose expiry was removed = %d; want 401", a.code)
	}
	if !strings.Contains(h.logs.String(), "not bound to this runner's key") {
		t.Errorf("log does not say why:\n%s", h.logs.String())
	}
	if a := h.token("contoso", 0); a.code != 200 {
		t.Errorf("ann's real environment = %d; want 200", a.code)
	}
}

// TestLegacyStoreIsBoundOnlyByExplicitCommand: a store written before
// binding existed (plain SHA-256 token hashes, no MACs) stops the vault at
// start with a message naming azdo-vault migrate --bind-legacy; after
// BindLegacy (what that command runs) its environment tokens and
// credentials keep working. A row inserted in the old form afterwards
// stops the next start again, and BindLegacy refuses to bind it next to
// bound rows.
func TestLegacyStoreIsBoundOnlyByExplicitCommand(t *testing.T) {
	ctx := context.Background()
	kp, err := sealbox.Generate()
	if err != nil {
		t.Fatal(err)
	}
	dbPath := filepath.Join(t.TempDir(), "vault.db")
	st, err := store.OpenSQLite(ctx, dbPath, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	// What the previous version wrote.
	legacyTok := EnvTokenPrefix + "legacy-token-secretvalue"
	sum := sha256.Sum256([]byte(legacyTok))
	if err := st.CreateEnvironment(ctx, store.Environment{ID: "env_00000000000000aa", Owner: "ann", TokenHash: sum[:], CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	sealed, _ := sealbox.Seal(kp.Public, []byte(patSecret))
	if _, err := st.PutCredential(ctx, store.Credential{Owner: "ann", Host: host, Org: "contoso", Kind: store.PAT, Sealed: sealed}); err != nil {
		t.Fatal(err)
	}
	start := func() (*Vault, error) {
		v, err := New(Config{Keys: kp, Store: st, Providers: []Provider{{Host: host, PAT: true}}, PublicURL: publicURL,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err == nil {
			t.Cleanup(func() { v.Close() })
		}
		return v, err
	}
	if _, err := start(); err == nil || !strings.Contains(err.Error(), "azdo-vault migrate --bind-legacy") {
		t.Fatalf("start on a legacy store = %v; want a refusal naming azdo-vault migrate --bind-legacy", err)
	}
	bound, err := BindLegacy(ctx, st, kp)
	if err != nil || len(bound.Credentials) != 1 || len(bound.Environments) != 1 || bound.Environments[0].ID != "env_00000000000000aa" {
		t.Fatalf("BindLegacy = %+v, %v; want ann's credential and env_00000000000000aa", bound, err)
	}
	v, err := start()
	if err != nil {
		t.Fatalf("start after migrate --bind-legacy: %v", err)
	}
	env, reason, err := authenticate(ctx, st, v.Binding(), time.Now(), secret.New(legacyTok))
	if err != nil {
		t.Fatalf("legacy token after binding: %v (%s)", err, reason)
	}
	tok, err := v.Token(ctx, env, token.Key{Host: host, Org: "contoso"}, 0)
	if err != nil || tok.Secret.Reveal() != patSecret {
		t.Fatalf("legacy PAT after binding = %v; want it served", err)
	}
	// Written in the old form after the binding: the next start refuses,
	// and the command refuses to bind it next to bound rows.
	lateTok := EnvTokenPrefix + "late-token-secretvalue"
	lateSum := sha256.Sum256([]byte(lateTok))
	if err := st.CreateEnvironment(ctx, store.Environment{ID: "env_00000000000000bb", Owner: "ann", TokenHash: lateSum[:]}); err != nil {
		t.Fatal(err)
	}
	if _, err := start(); err == nil || !strings.Contains(err.Error(), "1 environments not bound") {
		t.Errorf("start with a late unbound row = %v; want a refusal", err)
	}
	if b, err := BindLegacy(ctx, st, kp); !errors.Is(err, store.ErrBindingTampered) {
		t.Errorf("BindLegacy with bound and unbound rows = %+v, %v; want ErrBindingTampered", b, err)
	}
}

// TestWipedMACsDoNotGetSignedAtStart: a store writer without the runner
// key blanks every MAC, deletes the binding mark and inserts an
// environment of ann's with a token of his choosing; the next start
// refuses the store (naming the explicit command) instead of signing every
// row, his among them.
func TestWipedMACsDoNotGetSignedAtStart(t *testing.T) {
	h := newHarness(t)
	h.put(Credential{Host: host, Kind: store.PAT, Org: "contoso", Secret: secret.New(patSecret)})
	db := rawDB(t, h)
	chosen := EnvTokenPrefix + "mallory-chose-this-token-secretvalue"
	sum := sha256.Sum256([]byte(chosen))
	for _, q := range []string{
		`UPDATE credentials SET mac = x''`,
		`UPDATE environments SET mac = x''`,
		`DELETE FROM store_meta`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(q, err)
		}
	}
	if _, err := db.Exec(`INSERT INTO environments (id, owner, token_hash, created_at) VALUES ('env_forged', ?, ?, 1)`, defaultUser, sum[:]); err != nil {
		t.Fatal(err)
	}
	h.close()
	st, err := store.OpenSQLite(context.Background(), h.dbPath, h.clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	v, err := New(Config{Keys: h.keys, Store: st, Providers: []Provider{{Host: host, PAT: true}}, PublicURL: publicURL})
	if err == nil {
		v.Close()
		t.Fatal("the vault started on a store whose MACs were wiped; want a refusal")
	}
	if !strings.Contains(err.Error(), "azdo-vault migrate --bind-legacy") {
		t.Errorf("refusal = %v; want it to name azdo-vault migrate --bind-legacy", err)
	}
	var mac []byte
	if err := db.QueryRow(`SELECT mac FROM environments WHERE id = 'env_forged'`).Scan(&mac); err != nil || len(mac) != 0 {
		t.Errorf("forged row's MAC = %x, %v; want it left unbound", mac, err)
	}
}

// TestRearrangedStoreOnBothStores: the same attacks as above, on SQLite and
// on PostgreSQL, through the store's own API (what anyone who can write
// the database can do without the runner key): ann's sealed PAT copied
// into mallory's row answers not_connected with a link, and an environment
// row inserted with the SHA-256 of a token of the writer's choosing
// authenticates nothing.
func TestRearrangedStoreOnBothStores(t *testing.T) {
	stores := map[string]func(t *testing.T) store.Store{
		"sqlite": func(t *testing.T) store.Store {
			st, err := store.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "v.db"), time.Now)
			if err != nil {
				t.Fatal(err)
			}
			return st
		},
		"postgres": func(t *testing.T) store.Store {
			st, err := store.OpenPostgres(context.Background(), pgtest.URL(t), time.Now)
			if err != nil {
				t.Fatal(err)
			}
			return st
		},
	}
	for name, open := range stores {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			st := open(t)
			defer st.Close()
			kp, err := sealbox.Generate()
			if err != nil {
				t.Fatal(err)
			}
			v, err := New(Config{Keys: kp, Store: st, Providers: []Provider{{Host: host, PAT: true}}, PublicURL: publicURL,
				Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
			if err != nil {
				t.Fatal(err)
			}
			defer v.Close()
			ann, err := v.PutCredential(ctx, Credential{Owner: "ann", Host: host, Org: "contoso", Kind: store.PAT, Secret: secret.New(patSecret)})
			if err != nil {
				t.Fatal(err)
			}
			annRow, err := st.Credential(ctx, ann.ID)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := st.PutCredential(ctx, store.Credential{Owner: "mallory", Host: host, Org: "contoso", Kind: store.PAT, Sealed: annRow.Sealed, MAC: annRow.MAC}); err != nil {
				t.Fatal(err)
			}
			mallory, _, err := NewEnvironment(ctx, st, v.Binding(), time.Now(), "mallory", time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			tok, err := v.Token(ctx, mallory, token.Key{Host: host, Org: "contoso"}, 0)
			var ce *token.ConnectError
			if !errors.As(err, &ce) || ce.Reconnect || ce.ConnectURL == "" || tok.Secret.Reveal() == patSecret {
				t.Errorf("mallory's token with ann's copied PAT = %v; want not_connected with a link, never the PAT", err)
			}
			chosen := EnvTokenPrefix + "writer-chose-this-token-secretvalue"
			sum := sha256.Sum256([]byte(chosen))
			if err := st.CreateEnvironment(ctx, store.Environment{ID: "env_forged000000000", Owner: "ann", TokenHash: sum[:], CreatedAt: time.Now()}); err != nil {
				t.Fatal(err)
			}
			if e, _, err := authenticate(ctx, st, v.Binding(), time.Now(), secret.New(chosen)); err == nil {
				t.Errorf("a hand-inserted environment row authenticates (as %s)", e.ID)
			}
			annEnv, annTok, err := NewEnvironment(ctx, st, v.Binding(), time.Now(), "ann", time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := authenticate(ctx, st, v.Binding(), time.Now(), annTok); err != nil {
				t.Fatalf("ann's real environment: %v", err)
			}
			if got, err := v.Token(ctx, annEnv, token.Key{Host: host, Org: "contoso"}, 0); err != nil || got.Secret.Reveal() != patSecret {
				t.Errorf("ann's own PAT = %v; want it served", err)
			}
		})
	}
}
