package store

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"modernc.org/sqlite" // registers the "sqlite" driver
	sqlite3 "modernc.org/sqlite/lib"
)

// migrations are applied in order, each in its own transaction; the index
// + 1 is the schema version it produces. Append only: never edit one that
// has shipped.
var migrations = []string{
	// 1: credentials and environments.
	`CREATE TABLE credentials (
		id         INTEGER PRIMARY KEY AUTOINCREMENT,
		owner      TEXT    NOT NULL,
		host       TEXT    NOT NULL,
		org        TEXT    NOT NULL,
		kind       TEXT    NOT NULL CHECK (kind IN ('oauth', 'pat')),
		sealed     TEXT    NOT NULL,
		expires_at INTEGER NOT NULL DEFAULT 0,
		status     TEXT    NOT NULL DEFAULT 'ok',
		reason     TEXT    NOT NULL DEFAULT '',
		version    INTEGER NOT NULL DEFAULT 1,
		updated_at INTEGER NOT NULL,
		UNIQUE (owner, host, org, kind)
	);
	CREATE TABLE environments (
		id         TEXT    PRIMARY KEY,
		owner      TEXT    NOT NULL,
		token_hash BLOB    NOT NULL UNIQUE,
		created_at INTEGER NOT NULL,
		expires_at INTEGER NOT NULL DEFAULT 0,
		revoked_at INTEGER NOT NULL DEFAULT 0
	);`,
	// 2: Connect's single-use link nonces and pending sign-ins, shared by
	// every process on the file.
	`CREATE TABLE link_nonces (
		hash       BLOB    PRIMARY KEY,
		expires_at INTEGER NOT NULL
	);
	CREATE INDEX link_nonces_expires ON link_nonces (expires_at);
	CREATE TABLE connect_flows (
		state_hash      BLOB    PRIMARY KEY,
		owner           TEXT    NOT NULL,
		env             TEXT    NOT NULL,
		host            TEXT    NOT NULL,
		org             TEXT    NOT NULL,
		sealed_verifier TEXT    NOT NULL,
		nonce           TEXT    NOT NULL,
		expires_at      INTEGER NOT NULL
	);
	CREATE INDEX connect_flows_expires ON connect_flows (expires_at);`,
	// 3: each environment's policy (JSON, '' for none) and its version;
	// the audit trail of the git operations environments' sidecars
	// proxied (refs: JSON, '' for none).
	`ALTER TABLE environments ADD COLUMN policy TEXT NOT NULL DEFAULT '';
	ALTER TABLE environments ADD COLUMN policy_version INTEGER NOT NULL DEFAULT 0;
	CREATE TABLE audit_events (
		id          INTEGER PRIMARY KEY AUTOINCREMENT,
		time        INTEGER NOT NULL,
		env         TEXT    NOT NULL,
		owner       TEXT    NOT NULL,
		host        TEXT    NOT NULL,
		org         TEXT    NOT NULL DEFAULT '',
		project     TEXT    NOT NULL DEFAULT '',
		repo        TEXT    NOT NULL DEFAULT '',
		operation   TEXT    NOT NULL,
		refs        TEXT    NOT NULL DEFAULT '',
		status      INTEGER NOT NULL DEFAULT 0,
		refused     TEXT    NOT NULL DEFAULT '',
		bytes_in    INTEGER NOT NULL DEFAULT 0,
		bytes_out   INTEGER NOT NULL DEFAULT 0,
		duration_ms INTEGER NOT NULL DEFAULT 0
	);
	CREATE INDEX audit_events_time ON audit_events (time);
	CREATE INDEX audit_events_owner ON audit_events (owner, time);
	CREATE INDEX audit_events_env ON audit_events (env, time);`,
	// 4: outcomes of Connect and PAT flows, read by the replicas' pollers
	// to end the waits of environments (azdo-sidecar --wait-connect).
	`CREATE TABLE connect_events (
		id       INTEGER PRIMARY KEY AUTOINCREMENT,
		owner    TEXT    NOT NULL,
		env      TEXT    NOT NULL,
		host     TEXT    NOT NULL,
		kind     TEXT    NOT NULL,
		ok       INTEGER NOT NULL,
		identity TEXT    NOT NULL,
		reason   TEXT    NOT NULL,
		at       INTEGER NOT NULL
	);
	CREATE INDEX connect_events_at ON connect_events (at);`,
	// 5: rows bound to the runner key (MACs; environment token hashes are
	// rekeyed in place by BindLegacy), and the mark BindLegacy leaves.
	`ALTER TABLE credentials ADD COLUMN mac BLOB NOT NULL DEFAULT x'';
	ALTER TABLE environments ADD COLUMN mac BLOB NOT NULL DEFAULT x'';
	CREATE TABLE store_meta (
		name  TEXT PRIMARY KEY,
		value TEXT NOT NULL
	);`,
	// 6: which OAuth application (client ID and tenant) each provider
	// had when its credentials were last pruned, so that a changed
	// application deletes the refresh tokens of the old one, also across
	// a restart.
	`CREATE TABLE provider_fingerprints (
		host        TEXT PRIMARY KEY,
		fingerprint TEXT NOT NULL
	);`,
}

// bindingSchemaVersion is the migration that added row binding.
const bindingSchemaVersion = 5

// SQLite is the embedded Store: one file (plus its WAL), transactions,
// a busy timeout so that the CLI (env create) and a running vault can share
// it.
type SQLite struct {
	db  *sql.DB
	now func() time.Time
}

// OpenSQLite opens (creating if needed) the database at path and migrates
// its schema to the latest version. now stamps UpdatedAt.
func OpenSQLite(ctx context.Context, path string, now func() time.Time) (*SQLite, error) {
	return openSQLite(ctx, path, now, len(migrations))
}

// openSQLite is OpenSQLite migrating to schema version target (tests make
// old stores with it).
func openSQLite(ctx context.Context, path string, now func() time.Time, target int) (*SQLite, error) {
	if path == "" {
		return nil, errors.New("store: sqlite path is empty")
	}
	// The driver reads "?" and "#" as the start of its own parameters, so
	// it would open another file than the one created 0600 below.
	if strings.ContainsAny(path, "?#") {
		return nil, fmt.Errorf("store: sqlite path %q contains ? or #; rename it", path)
	}
	if now == nil {
		now = time.Now
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	// The file holds only sealed secrets and hashes, but there is no reason
	// for anyone else to read it: create it 0600 before SQLite does.
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	f.Close()
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(FULL)")
	q.Add("_pragma", "foreign_keys(1)")
	// IMMEDIATE takes the write lock at BEGIN, so two writers wait on the
	// busy timeout instead of failing with SQLITE_BUSY at upgrade time.
	q.Set("_txlock", "immediate")
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	s := &SQLite{db: db, now: now}
	if err := s.migrate(ctx, target); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// SchemaVersion returns the schema version of the database.
func (s *SQLite) SchemaVersion(ctx context.Context) (int, error) {
	var v int
	err := s.db.QueryRowContext(ctx, `SELECT version FROM schema_version`).Scan(&v)
	if err != nil {
		return 0, fmt.Errorf("store: schema version: %w", err)
	}
	return v, nil
}

// LatestSchemaVersion is the version OpenSQLite migrates to.
func LatestSchemaVersion() int { return len(migrations) }

func (s *SQLite) migrate(ctx context.Context, target int) error {
	if _, err := s.db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("store: migrate: %w", err)
	}
	for {
		done, err := s.migrateOne(ctx, target)
		if err != nil {
			return err
		}
		if done {
			return nil
		}
	}
}

// migrateOne applies the next migration, if any, in one transaction that
// also bumps schema_version, so a crash leaves the schema at a version.
func (s *SQLite) migrateOne(ctx context.Context, target int) (done bool, err error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("store: migrate: %w", err)
	}
	defer tx.Rollback()
	var v int
	switch err := tx.QueryRowContext(ctx, `SELECT version FROM schema_version`).Scan(&v); {
	case errors.Is(err, sql.ErrNoRows):
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_version (version) VALUES (0)`); err != nil {
			return false, fmt.Errorf("store: migrate: %w", err)
		}
	case err != nil:
		return false, fmt.Errorf("store: migrate: %w", err)
	}
	if v > len(migrations) {
		return false, fmt.Errorf("store: database schema version %d is newer than this binary's %d", v, len(migrations))
	}
	if v >= target {
		return true, tx.Commit()
	}
	if _, err := tx.ExecContext(ctx, migrations[v]); err != nil {
		return false, fmt.Errorf("store: migration %d: %w", v+1, err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE schema_version SET version = ?`, v+1); err != nil {
		return false, fmt.Errorf("store: migration %d: %w", v+1, err)
	}
	return false, tx.Commit()
}

// Close closes the database.
func (s *SQLite) Close() error { return s.db.Close() }

func unix(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromUnix(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

const credentialColumns = `id, owner, host, org, kind, sealed, expires_at, status, reason, version, updated_at, mac`

type scanner interface{ Scan(dest ...any) error }

func scanCredential(r scanner) (Credential, error) {
	var c Credential
	var kind, status string
	var exp, upd int64
	err := r.Scan(&c.ID, &c.Owner, &c.Host, &c.Org, &kind, &c.Sealed, &exp, &status, &c.Reason, &c.Version, &upd, &c.MAC)
	c.Kind, c.Status = Kind(kind), Status(status)
	c.ExpiresAt, c.UpdatedAt = fromUnix(exp), fromUnix(upd)
	if len(c.MAC) == 0 {
		c.MAC = nil
	}
	return c, err
}

// checkCredential refuses a credential that PutCredential must not store
// and defaults its status to StatusOK.
func checkCredential(c *Credential) error {
	if c.Owner == "" || c.Host == "" || c.Org == "" || c.Sealed == "" {
		return errors.New("store: credential needs owner, host, org and a sealed secret")
	}
	if c.Kind != OAuth && c.Kind != PAT {
		return fmt.Errorf("store: unknown credential kind %q", c.Kind)
	}
	if c.Status == "" {
		c.Status = StatusOK
	}
	return nil
}

// PutCredential implements Store.
func (s *SQLite) PutCredential(ctx context.Context, c Credential) (Credential, error) {
	if err := checkCredential(&c); err != nil {
		return Credential{}, err
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return Credential{}, fmt.Errorf("store: put credential: %w", err)
	}
	defer tx.Rollback()
	_, err = tx.ExecContext(ctx, `INSERT INTO credentials (owner, host, org, kind, sealed, expires_at, status, reason, version, updated_at, mac)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?)
		ON CONFLICT (owner, host, org, kind) DO UPDATE SET
			sealed = excluded.sealed, expires_at = excluded.expires_at,
			status = excluded.status, reason = excluded.reason,
			version = credentials.version + 1, updated_at = excluded.updated_at,
			mac = excluded.mac`,
		c.Owner, c.Host, c.Org, string(c.Kind), c.Sealed, unix(c.ExpiresAt), string(c.Status), c.Reason, unix(s.now()), blob(c.MAC))
	if err != nil {
		return Credential{}, fmt.Errorf("store: put credential: %w", err)
	}
	row := tx.QueryRowContext(ctx, `SELECT `+credentialColumns+` FROM credentials WHERE owner = ? AND host = ? AND org = ? AND kind = ?`,
		c.Owner, c.Host, c.Org, string(c.Kind))
	out, err := scanCredential(row)
	if err != nil {
		return Credential{}, fmt.Errorf("store: put credential: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return Credential{}, fmt.Errorf("store: put credential: %w", err)
	}
	return out, nil
}

// Credentials implements Store.
func (s *SQLite) Credentials(ctx context.Context, owner, host string) ([]Credential, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+credentialColumns+` FROM credentials WHERE owner = ? AND host = ? ORDER BY id`, owner, host)
	if err != nil {
		return nil, fmt.Errorf("store: credentials: %w", err)
	}
	defer rows.Close()
	var out []Credential
	for rows.Next() {
		c, err := scanCredential(rows)
		if err != nil {
			return nil, fmt.Errorf("store: credentials: %w", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: credentials: %w", err)
	}
	return out, nil
}

// Credential implements Store.
func (s *SQLite) Credential(ctx context.Context, id int64) (Credential, error) {
	c, err := scanCredential(s.db.QueryRowContext(ctx, `SELECT `+credentialColumns+` FROM credentials WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Credential{}, ErrNotFound
	}
	if err != nil {
		return Credential{}, fmt.Errorf("store: credential %d: %w", id, err)
	}
	return c, nil
}

// UpdateCredential implements Store.
func (s *SQLite) UpdateCredential(ctx context.Context, c Credential) (Credential, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return Credential{}, fmt.Errorf("store: update credential: %w", err)
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, `UPDATE credentials SET sealed = ?, expires_at = ?, status = ?, reason = ?,
		version = version + 1, updated_at = ?, mac = ? WHERE id = ? AND version = ?`,
		c.Sealed, unix(c.ExpiresAt), string(c.Status), c.Reason, unix(s.now()), blob(c.MAC), c.ID, c.Version)
	if err != nil {
		return Credential{}, fmt.Errorf("store: update credential %d: %w", c.ID, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return Credential{}, fmt.Errorf("store: update credential %d: %w", c.ID, err)
	}
	if n == 0 {
		var one int
		if err := tx.QueryRowContext(ctx, `SELECT 1 FROM credentials WHERE id = ?`, c.ID).Scan(&one); errors.Is(err, sql.ErrNoRows) {
			return Credential{}, ErrNotFound
		}
		return Credential{}, ErrConflict
	}
	out, err := scanCredential(tx.QueryRowContext(ctx, `SELECT `+credentialColumns+` FROM credentials WHERE id = ?`, c.ID))
	if err != nil {
		return Credential{}, fmt.Errorf("store: update credential %d: %w", c.ID, err)
	}
	if err := tx.Commit(); err != nil {
		return Credential{}, fmt.Errorf("store: update credential %d: %w", c.ID, err)
	}
	return out, nil
}

// DeleteCredential implements Store.
func (s *SQLite) DeleteCredential(ctx context.Context, id int64) error {
	res, err := s.db.ExecContext(ctx, `DELETE FROM credentials WHERE id = ?`, id)
	if err != nil {
		return fmt.Errorf("store: delete credential %d: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}

// credentialMetaColumns are credentialColumns with the sealed secret
// replaced by an empty string: what an administrator's listing reads.
const credentialMetaColumns = `id, owner, host, org, kind, '', expires_at, status, reason, version, updated_at, mac`

// errDeleteNoOwner refuses DeleteCredentials without an owner, which would
// otherwise read as "everyone's".
var errDeleteNoOwner = errors.New("store: delete credentials: an owner is needed")

// ListCredentials implements Store.
func (s *SQLite) ListCredentials(ctx context.Context, owner, host string) ([]Credential, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+credentialMetaColumns+` FROM credentials
		WHERE (?1 = '' OR owner = ?1) AND (?2 = '' OR host = ?2) ORDER BY id`, owner, host)
	if err != nil {
		return nil, fmt.Errorf("store: list credentials: %w", err)
	}
	out, err := scanCredentials(rows)
	if err != nil {
		return nil, fmt.Errorf("store: list credentials: %w", err)
	}
	sortCredentials(out)
	return out, nil
}

// DeleteCredentials implements Store with one DELETE … RETURNING.
func (s *SQLite) DeleteCredentials(ctx context.Context, owner, host string) ([]Credential, error) {
	if owner == "" {
		return nil, errDeleteNoOwner
	}
	rows, err := s.db.QueryContext(ctx, `DELETE FROM credentials WHERE owner = ?1 AND (?2 = '' OR host = ?2)
		RETURNING `+credentialMetaColumns, owner, host)
	if err != nil {
		return nil, fmt.Errorf("store: delete credentials: %w", err)
	}
	out, err := scanCredentials(rows)
	if err != nil {
		return nil, fmt.Errorf("store: delete credentials: %w", err)
	}
	// RETURNING promises no order.
	slices.SortFunc(out, func(a, b Credential) int { return cmp.Compare(a.ID, b.ID) })
	return out, nil
}

// sortCredentials orders a listing by owner, host and ID, comparing bytes
// so that every store agrees (a database's collation might not).
func sortCredentials(cs []Credential) {
	slices.SortFunc(cs, func(a, b Credential) int {
		return cmp.Or(strings.Compare(a.Owner, b.Owner), strings.Compare(a.Host, b.Host), cmp.Compare(a.ID, b.ID))
	})
}

// sortEnvironments orders a listing by creation time (none first) and ID,
// in Go for the same reason as sortCredentials.
func sortEnvironments(es []Environment) {
	slices.SortFunc(es, func(a, b Environment) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), strings.Compare(a.ID, b.ID))
	})
}

// scanCredentials reads and closes rows.
func scanCredentials(rows *sql.Rows) ([]Credential, error) {
	defer rows.Close()
	var out []Credential
	for rows.Next() {
		c, err := scanCredential(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// CreateEnvironment implements Store.
func (s *SQLite) CreateEnvironment(ctx context.Context, e Environment) error {
	if e.ID == "" || e.Owner == "" || len(e.TokenHash) == 0 {
		return errors.New("store: environment needs an ID, an owner and a token hash")
	}
	pol, err := encodePolicy(e.Policy)
	if err != nil {
		return err
	}
	_, err = s.db.ExecContext(ctx, `INSERT INTO environments (id, owner, token_hash, created_at, expires_at, revoked_at, policy, policy_version, mac) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		e.ID, e.Owner, e.TokenHash, unix(e.CreatedAt), unix(e.ExpiresAt), unix(e.RevokedAt), pol, e.PolicyVersion, blob(e.MAC))
	if isSQLiteUnique(err) {
		return fmt.Errorf("store: create environment %s: its ID or token hash is taken: %w", e.ID, ErrDuplicate)
	}
	if err != nil {
		return fmt.Errorf("store: create environment %s: %w", e.ID, err)
	}
	return nil
}

// environmentColumns are what scanEnvironment reads, token hash aside.
const environmentColumns = `id, owner, created_at, expires_at, revoked_at, policy, policy_version, mac`

// scanEnvironment reads environmentColumns, then extra.
func scanEnvironment(r scanner, extra ...any) (Environment, error) {
	var e Environment
	var created, expires, revoked int64
	var pol string
	if err := r.Scan(append([]any{&e.ID, &e.Owner, &created, &expires, &revoked, &pol, &e.PolicyVersion, &e.MAC}, extra...)...); err != nil {
		return Environment{}, err
	}
	e.CreatedAt, e.ExpiresAt, e.RevokedAt = fromUnix(created), fromUnix(expires), fromUnix(revoked)
	if len(e.MAC) == 0 {
		e.MAC = nil
	}
	p, err := decodePolicy(pol)
	if err != nil {
		return Environment{}, fmt.Errorf("environment %s: %w", e.ID, err)
	}
	e.Policy = p
	return e, nil
}

// isSQLiteUnique reports whether err is a broken UNIQUE or PRIMARY KEY
// constraint.
func isSQLiteUnique(err error) bool {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	return se.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || se.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
}

// EnvironmentByTokenHash implements Store.
func (s *SQLite) EnvironmentByTokenHash(ctx context.Context, hash []byte) (Environment, error) {
	var th []byte
	e, err := scanEnvironment(s.db.QueryRowContext(ctx, `SELECT `+environmentColumns+`, token_hash FROM environments WHERE token_hash = ?`, hash), &th)
	if errors.Is(err, sql.ErrNoRows) {
		return Environment{}, ErrNotFound
	}
	if err != nil {
		return Environment{}, fmt.Errorf("store: environment: %w", err)
	}
	e.TokenHash = th
	return e, nil
}

// SetEnvironmentPolicy implements Store: the read, the MAC and the write
// are one IMMEDIATE transaction, so concurrent updates count one version
// each and every MAC covers the version it is stored with.
func (s *SQLite) SetEnvironmentPolicy(ctx context.Context, id string, change func(cur Environment) (Policy, error), mac func(Environment) []byte) (Environment, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return Environment{}, fmt.Errorf("store: set policy of environment %s: %w", id, err)
	}
	defer tx.Rollback()
	var th []byte
	e, err := scanEnvironment(tx.QueryRowContext(ctx, `SELECT `+environmentColumns+`, token_hash FROM environments WHERE id = ?`, id), &th)
	if errors.Is(err, sql.ErrNoRows) {
		return Environment{}, ErrNotFound
	}
	if err != nil {
		return Environment{}, fmt.Errorf("store: set policy of environment %s: %w", id, err)
	}
	e.TokenHash = th
	p, err := change(e)
	if err != nil {
		return Environment{}, err
	}
	pol, err := encodePolicy(p)
	if err != nil {
		return Environment{}, err
	}
	e.Policy, e.PolicyVersion = p, e.PolicyVersion+1
	if mac != nil {
		e.MAC = mac(e)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE environments SET policy = ?, policy_version = ?, mac = ? WHERE id = ?`, pol, e.PolicyVersion, nonNil(e.MAC), id); err != nil {
		return Environment{}, fmt.Errorf("store: set policy of environment %s: %w", id, err)
	}
	if err := tx.Commit(); err != nil {
		return Environment{}, fmt.Errorf("store: set policy of environment %s: %w", id, err)
	}
	e.TokenHash = nil
	return e, nil
}

// nonNil maps a nil MAC to an empty one (the column is NOT NULL).
func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// RevokeEnvironment implements Store.
func (s *SQLite) RevokeEnvironment(ctx context.Context, id string, at time.Time) error {
	if at.IsZero() {
		at = s.now()
	}
	res, err := s.db.ExecContext(ctx, `UPDATE environments SET revoked_at = ? WHERE id = ? AND revoked_at = 0`, unix(at), id)
	if err != nil {
		return fmt.Errorf("store: revoke environment %s: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		var one int
		if err := s.db.QueryRowContext(ctx, `SELECT 1 FROM environments WHERE id = ?`, id).Scan(&one); errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
	}
	return nil
}

// ListEnvironments implements Store.
func (s *SQLite) ListEnvironments(ctx context.Context, owner string) ([]Environment, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+environmentColumns+` FROM environments
		WHERE ?1 = '' OR owner = ?1`, owner)
	if err != nil {
		return nil, fmt.Errorf("store: list environments: %w", err)
	}
	defer rows.Close()
	var out []Environment
	for rows.Next() {
		e, err := scanEnvironment(rows)
		if err != nil {
			return nil, fmt.Errorf("store: list environments: %w", err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: list environments: %w", err)
	}
	sortEnvironments(out)
	return out, nil
}

const auditColumns = `id, time, env, owner, host, org, project, repo, operation, refs, status, refused, bytes_in, bytes_out, duration_ms`

// AddAuditEvents implements Store.
func (s *SQLite) AddAuditEvents(ctx context.Context, events []AuditEvent) error {
	if len(events) == 0 {
		return nil
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: add audit events: %w", err)
	}
	defer tx.Rollback()
	stmt, err := tx.PrepareContext(ctx, `INSERT INTO audit_events (time, env, owner, host, org, project, repo, operation, refs, status, refused, bytes_in, bytes_out, duration_ms)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return fmt.Errorf("store: add audit events: %w", err)
	}
	defer stmt.Close()
	for _, e := range events {
		if err := checkAuditEvent(e); err != nil {
			return err
		}
		refs, err := encodeRefs(e.Refs)
		if err != nil {
			return err
		}
		if _, err := stmt.ExecContext(ctx, unix(e.Time), e.Env, e.Owner, e.Host, e.Org, e.Project, e.Repo, e.Operation, refs,
			e.Status, e.Refused, e.BytesIn, e.BytesOut, e.DurationMS); err != nil {
			return fmt.Errorf("store: add audit events: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: add audit events: %w", err)
	}
	return nil
}

// AuditEvents implements Store.
func (s *SQLite) AuditEvents(ctx context.Context, f AuditFilter) ([]AuditEvent, error) {
	limit := -1 // SQLite: no limit
	if f.Limit > 0 {
		limit = f.Limit
	}
	rows, err := s.db.QueryContext(ctx, `SELECT `+auditColumns+` FROM audit_events
		WHERE (?1 = '' OR owner = ?1) AND (?2 = '' OR env = ?2) AND (?3 = '' OR lower(repo) = lower(?3)) AND time >= ?4
		ORDER BY time DESC, id DESC LIMIT ?5`, f.Owner, f.Env, f.Repo, unix(f.Since), limit)
	if err != nil {
		return nil, fmt.Errorf("store: audit events: %w", err)
	}
	defer rows.Close()
	var out []AuditEvent
	for rows.Next() {
		var e AuditEvent
		var t int64
		var refs string
		if err := rows.Scan(&e.ID, &t, &e.Env, &e.Owner, &e.Host, &e.Org, &e.Project, &e.Repo, &e.Operation, &refs,
			&e.Status, &e.Refused, &e.BytesIn, &e.BytesOut, &e.DurationMS); err != nil {
			return nil, fmt.Errorf("store: audit events: %w", err)
		}
		e.Time = fromUnix(t)
		if e.Refs, err = decodeRefs(refs); err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: audit events: %w", err)
	}
	sortAuditEvents(out)
	return out, nil
}

// DeleteAuditEvents implements Store.
func (s *SQLite) DeleteAuditEvents(ctx context.Context, before time.Time) (int64, error) {
	res, err := s.db.ExecContext(ctx, `DELETE FROM audit_events WHERE time < ?`, unix(before))
	if err != nil {
		return 0, fmt.Errorf("store: delete audit events: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("store: delete audit events: %w", err)
	}
	return n, nil
}

// UseNonce implements Store. Expired nonces are deleted in the same
// transaction, so a conflict on insert means an unexpired one.
func (s *SQLite) UseNonce(ctx context.Context, hash []byte, expires time.Time) error {
	if len(hash) == 0 {
		return errors.New("store: use nonce: empty hash")
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: use nonce: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `DELETE FROM link_nonces WHERE expires_at <= ?`, unix(s.now())); err != nil {
		return fmt.Errorf("store: use nonce: %w", err)
	}
	res, err := tx.ExecContext(ctx, `INSERT INTO link_nonces (hash, expires_at) VALUES (?, ?) ON CONFLICT (hash) DO NOTHING`, hash, unix(expires))
	if err != nil {
		return fmt.Errorf("store: use nonce: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("store: use nonce: %w", err)
	} else if n == 0 {
		return ErrUsed
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: use nonce: %w", err)
	}
	return nil
}

// NonceUsed implements Store.
func (s *SQLite) NonceUsed(ctx context.Context, hash []byte) (bool, error) {
	var used bool
	err := s.db.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM link_nonces WHERE hash = ? AND expires_at > ?)`, hash, unix(s.now())).Scan(&used)
	if err != nil {
		return false, fmt.Errorf("store: nonce used: %w", err)
	}
	return used, nil
}

// checkFlow refuses a flow that PutFlow must not store.
func checkFlow(stateHash []byte, f Flow) error {
	if len(stateHash) == 0 || f.Owner == "" || f.Host == "" || f.SealedVerifier == "" || f.Nonce == "" || f.Expires.IsZero() {
		return errors.New("store: a sign-in needs a state hash, owner, host, sealed verifier, nonce and expiry")
	}
	return nil
}

// PutFlow implements Store; it also forgets expired flows.
func (s *SQLite) PutFlow(ctx context.Context, stateHash []byte, f Flow) error {
	if err := checkFlow(stateHash, f); err != nil {
		return err
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: put sign-in: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `DELETE FROM connect_flows WHERE expires_at <= ?`, unix(s.now())); err != nil {
		return fmt.Errorf("store: put sign-in: %w", err)
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO connect_flows (state_hash, owner, env, host, org, sealed_verifier, nonce, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		stateHash, f.Owner, f.Env, f.Host, f.Org, f.SealedVerifier, f.Nonce, unix(f.Expires))
	if isSQLiteUnique(err) {
		return fmt.Errorf("store: put sign-in: %w", ErrDuplicate)
	}
	if err != nil {
		return fmt.Errorf("store: put sign-in: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: put sign-in: %w", err)
	}
	return nil
}

// TakeFlow implements Store with one DELETE … RETURNING, so of two
// concurrent callbacks with one state only one gets the flow.
func (s *SQLite) TakeFlow(ctx context.Context, stateHash []byte) (Flow, error) {
	var f Flow
	var exp int64
	err := s.db.QueryRowContext(ctx, `DELETE FROM connect_flows WHERE state_hash = ? RETURNING owner, env, host, org, sealed_verifier, nonce, expires_at`, stateHash).
		Scan(&f.Owner, &f.Env, &f.Host, &f.Org, &f.SealedVerifier, &f.Nonce, &exp)
	if errors.Is(err, sql.ErrNoRows) {
		return Flow{}, ErrNotFound
	}
	if err != nil {
		return Flow{}, fmt.Errorf("store: take sign-in: %w", err)
	}
	f.Expires = fromUnix(exp)
	if !s.now().Before(f.Expires) {
		return Flow{}, ErrNotFound
	}
	return f, nil
}

// blob stores nil as an empty BLOB, which the NOT NULL columns need.
func blob(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// bindMark is the store_meta row BindLegacy leaves.
const bindMark = "rows_bound"

// CountUnbound implements Store.
func (s *SQLite) CountUnbound(ctx context.Context) (credentials, environments int, err error) {
	if err := s.db.QueryRowContext(ctx, `SELECT (SELECT count(*) FROM credentials WHERE length(mac) = 0),
		(SELECT count(*) FROM environments WHERE length(mac) = 0)`).Scan(&credentials, &environments); err != nil {
		return 0, 0, fmt.Errorf("store: count unbound rows: %w", err)
	}
	return credentials, environments, nil
}

// BindLegacy implements Store in one IMMEDIATE transaction, so two
// operators binding one file bind once.
func (s *SQLite) BindLegacy(ctx context.Context, b Binder) (Bound, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return Bound{}, fmt.Errorf("store: bind: %w", err)
	}
	defer tx.Rollback()
	var unbound, tampered bool
	if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM credentials WHERE length(mac) = 0)
		OR EXISTS (SELECT 1 FROM environments WHERE length(mac) = 0)`).Scan(&unbound); err != nil {
		return Bound{}, fmt.Errorf("store: bind: %w", err)
	}
	if !unbound {
		return Bound{}, nil
	}
	if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM credentials WHERE length(mac) > 0)
		OR EXISTS (SELECT 1 FROM environments WHERE length(mac) > 0)`).Scan(&tampered); err != nil {
		return Bound{}, fmt.Errorf("store: bind: %w", err)
	}
	if tampered {
		return Bound{}, ErrBindingTampered
	}
	var out Bound
	rows, err := tx.QueryContext(ctx, `SELECT `+credentialColumns+` FROM credentials ORDER BY id`)
	if err != nil {
		return Bound{}, fmt.Errorf("store: bind: %w", err)
	}
	if out.Credentials, err = scanCredentials(rows); err != nil {
		return Bound{}, fmt.Errorf("store: bind: %w", err)
	}
	for i, c := range out.Credentials {
		if _, err := tx.ExecContext(ctx, `UPDATE credentials SET mac = ? WHERE id = ?`, blob(b.CredentialMAC(c)), c.ID); err != nil {
			return Bound{}, fmt.Errorf("store: bind credential %d: %w", c.ID, err)
		}
		out.Credentials[i].Sealed = ""
	}
	erows, err := tx.QueryContext(ctx, `SELECT `+environmentColumns+`, token_hash FROM environments ORDER BY id`)
	if err != nil {
		return Bound{}, fmt.Errorf("store: bind: %w", err)
	}
	for erows.Next() {
		var th []byte
		e, err := scanEnvironment(erows, &th)
		if err != nil {
			erows.Close()
			return Bound{}, fmt.Errorf("store: bind: %w", err)
		}
		e.TokenHash = th
		out.Environments = append(out.Environments, e)
	}
	erows.Close()
	if err := erows.Err(); err != nil {
		return Bound{}, fmt.Errorf("store: bind: %w", err)
	}
	for i, e := range out.Environments {
		hash, mac := b.BindEnvironment(e)
		if _, err := tx.ExecContext(ctx, `UPDATE environments SET token_hash = ?, mac = ? WHERE id = ?`, hash, blob(mac), e.ID); err != nil {
			return Bound{}, fmt.Errorf("store: bind environment %s: %w", e.ID, err)
		}
		out.Environments[i].TokenHash = nil
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO store_meta (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value`, bindMark, s.now().UTC().Format(time.RFC3339)); err != nil {
		return Bound{}, fmt.Errorf("store: bind: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return Bound{}, fmt.Errorf("store: bind: %w", err)
	}
	return out, nil
}

// AddConnectEvent implements Store.
func (s *SQLite) AddConnectEvent(ctx context.Context, e ConnectEvent) (int64, error) {
	if err := checkConnectEvent(e); err != nil {
		return 0, err
	}
	now := s.now()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("store: add connect event: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `DELETE FROM connect_events WHERE at <= ?`, unix(now.Add(-ConnectEventRetention))); err != nil {
		return 0, fmt.Errorf("store: add connect event: %w", err)
	}
	var id int64
	err = tx.QueryRowContext(ctx, `INSERT INTO connect_events (owner, env, host, kind, ok, identity, reason, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
		e.Owner, e.Env, e.Host, string(e.Kind), e.OK, e.Identity, e.Reason, unix(now)).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("store: add connect event: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("store: add connect event: %w", err)
	}
	return id, nil
}

// ConnectEvents implements Store.
func (s *SQLite) ConnectEvents(ctx context.Context, after int64) ([]ConnectEvent, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, owner, env, host, kind, ok, identity, reason, at FROM connect_events WHERE id > ? ORDER BY id LIMIT ?`, after, MaxConnectEvents)
	if err != nil {
		return nil, fmt.Errorf("store: connect events: %w", err)
	}
	defer rows.Close()
	var out []ConnectEvent
	for rows.Next() {
		var e ConnectEvent
		var kind string
		var at int64
		if err := rows.Scan(&e.ID, &e.Owner, &e.Env, &e.Host, &kind, &e.OK, &e.Identity, &e.Reason, &at); err != nil {
			return nil, fmt.Errorf("store: connect events: %w", err)
		}
		e.Kind, e.At = Kind(kind), fromUnix(at)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: connect events: %w", err)
	}
	return out, nil
}

// LastConnectEventID implements Store. AUTOINCREMENT never reuses an ID,
// so the sequence is the high-water mark even after old events are gone.
func (s *SQLite) LastConnectEventID(ctx context.Context) (int64, error) {
	var id int64
	err := s.db.QueryRowContext(ctx, `SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'connect_events'), 0)`).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("store: last connect event: %w", err)
	}
	return id, nil
}

// ProviderFingerprints implements Store.
func (s *SQLite) ProviderFingerprints(ctx context.Context) (map[string]string, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT host, fingerprint FROM provider_fingerprints`)
	if err != nil {
		return nil, fmt.Errorf("store: provider fingerprints: %w", err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var h, f string
		if err := rows.Scan(&h, &f); err != nil {
			return nil, fmt.Errorf("store: provider fingerprints: %w", err)
		}
		out[h] = f
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: provider fingerprints: %w", err)
	}
	return out, nil
}

// SetProviderFingerprints implements Store.
func (s *SQLite) SetProviderFingerprints(ctx context.Context, fps map[string]string) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: set provider fingerprints: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `DELETE FROM provider_fingerprints`); err != nil {
		return fmt.Errorf("store: set provider fingerprints: %w", err)
	}
	for h, f := range fps {
		if _, err := tx.ExecContext(ctx, `INSERT INTO provider_fingerprints (host, fingerprint) VALUES (?, ?)`, h, f); err != nil {
			return fmt.Errorf("store: set provider fingerprints: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: set provider fingerprints: %w", err)
	}
	return nil
}

var _ Store = (*SQLite)(nil)
