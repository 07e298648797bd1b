package store

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// pgMigrations are PostgreSQL's schema versions, applied in order; the
// index + 1 is the version each produces. Append only: never edit one that
// has shipped.
var pgMigrations = []string{
	// 1: credentials and environments.
	`CREATE TABLE credentials (
		id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
		owner      TEXT        NOT NULL,
		host       TEXT        NOT NULL,
		org        TEXT        NOT NULL,
		kind       TEXT        NOT NULL CHECK (kind IN ('oauth', 'pat')),
		sealed     TEXT        NOT NULL,
		expires_at TIMESTAMPTZ,
		status     TEXT        NOT NULL DEFAULT 'ok',
		reason     TEXT        NOT NULL DEFAULT '',
		version    BIGINT      NOT NULL DEFAULT 1,
		updated_at TIMESTAMPTZ NOT NULL,
		CONSTRAINT credentials_key UNIQUE (owner, host, org, kind)
	);
	CREATE TABLE environments (
		id         TEXT        PRIMARY KEY,
		owner      TEXT        NOT NULL,
		token_hash BYTEA       NOT NULL UNIQUE,
		created_at TIMESTAMPTZ,
		expires_at TIMESTAMPTZ,
		revoked_at TIMESTAMPTZ
	);`,
	// 2: Connect's single-use link nonces and pending sign-ins, so that
	// replicas need no sticky sessions.
	`CREATE TABLE link_nonces (
		hash       BYTEA       PRIMARY KEY,
		expires_at TIMESTAMPTZ NOT NULL
	);
	CREATE INDEX link_nonces_expires ON link_nonces (expires_at);
	CREATE TABLE connect_flows (
		state_hash      BYTEA       PRIMARY KEY,
		owner           TEXT        NOT NULL,
		env             TEXT        NOT NULL,
		host            TEXT        NOT NULL,
		org             TEXT        NOT NULL,
		sealed_verifier TEXT        NOT NULL,
		nonce           TEXT        NOT NULL,
		expires_at      TIMESTAMPTZ NOT NULL
	);
	CREATE INDEX connect_flows_expires ON connect_flows (expires_at);`,
	// 3: each environment's policy (JSON, '' for none) and its version;
	// the audit trail of the git operations environments' sidecars
	// proxied (refs: JSON, '' for none).
	`ALTER TABLE environments
		ADD COLUMN policy         TEXT   NOT NULL DEFAULT '',
		ADD COLUMN policy_version BIGINT NOT NULL DEFAULT 0;
	CREATE TABLE audit_events (
		id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
		time        TIMESTAMPTZ NOT NULL,
		env         TEXT        NOT NULL,
		owner       TEXT        NOT NULL,
		host        TEXT        NOT NULL,
		org         TEXT        NOT NULL DEFAULT '',
		project     TEXT        NOT NULL DEFAULT '',
		repo        TEXT        NOT NULL DEFAULT '',
		operation   TEXT        NOT NULL,
		refs        TEXT        NOT NULL DEFAULT '',
		status      INTEGER     NOT NULL DEFAULT 0,
		refused     TEXT        NOT NULL DEFAULT '',
		bytes_in    BIGINT      NOT NULL DEFAULT 0,
		bytes_out   BIGINT      NOT NULL DEFAULT 0,
		duration_ms BIGINT      NOT NULL DEFAULT 0
	);
	CREATE INDEX audit_events_time ON audit_events (time);
	CREATE INDEX audit_events_owner ON audit_events (owner, time);
	CREATE INDEX audit_events_env ON audit_events (env, time);`,
	// 4: outcomes of Connect and PAT flows, read by the replicas' pollers
	// to end the waits of environments (azdo-sidecar --wait-connect).
	`CREATE TABLE connect_events (
		id       BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
		owner    TEXT        NOT NULL,
		env      TEXT        NOT NULL,
		host     TEXT        NOT NULL,
		kind     TEXT        NOT NULL,
		ok       BOOLEAN     NOT NULL,
		identity TEXT        NOT NULL,
		reason   TEXT        NOT NULL,
		at       TIMESTAMPTZ NOT NULL
	);
	CREATE INDEX connect_events_at ON connect_events (at);`,
	// 5: rows bound to the runner key (MACs; environment token hashes are
	// rekeyed in place by BindLegacy), and the mark BindLegacy leaves.
	`ALTER TABLE credentials ADD COLUMN mac BYTEA NOT NULL DEFAULT ''::bytea;
	ALTER TABLE environments ADD COLUMN mac BYTEA NOT NULL DEFAULT ''::bytea;
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

// migrateLockKey names the advisory lock that serialises migrations of
// replicas starting at once ("azdo-vault" in ASCII, as a bigint).
const migrateLockKey int64 = 0x617a646f7661756c

// pgConnectTimeout bounds one connection attempt when the URL does not set
// connect_timeout.
const pgConnectTimeout = 10 * time.Second

// pgStatementTimeout is the server-side statement_timeout when the URL does
// not set one.
const pgStatementTimeout = "30s"

// Postgres is the Store for several vault replicas sharing one PostgreSQL
// database. Times are stored as timestamptz (to the microsecond); a zero
// time is NULL.
//
// It uses pgxpool rather than database/sql over pgx's stdlib driver: the
// migration holds one connection for its transaction-scoped advisory lock,
// pgx.BeginFunc keeps each method one transaction with no Rollback
// bookkeeping, and errors arrive as *pgconn.PgError with their SQLSTATE
// and constraint name, which is how a broken uniqueness rule becomes
// ErrDuplicate.
type Postgres struct {
	pool *pgxpool.Pool
	now  func() time.Time
}

// OpenPostgres connects to the database at rawURL (postgres:// or
// postgresql://, any libpq parameter pgx accepts) and migrates its schema
// under an advisory lock, so that replicas starting together migrate once.
// now stamps UpdatedAt. Errors never contain the URL's password.
func OpenPostgres(ctx context.Context, rawURL string, now func() time.Time) (*Postgres, error) {
	return openPostgres(ctx, rawURL, now, len(pgMigrations))
}

// openPostgres is OpenPostgres migrating to schema version target (tests
// make old stores with it).
func openPostgres(ctx context.Context, rawURL string, now func() time.Time, target int) (*Postgres, error) {
	if now == nil {
		now = time.Now
	}
	pw := urlPasswords(rawURL)
	cfg, err := pgxpool.ParseConfig(rawURL)
	if err != nil {
		return nil, scrub(fmt.Errorf("store: postgres URL: %w", err), pw)
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = pgConnectTimeout
	}
	// Every method honours its ctx; the server-side limit also ends a
	// statement whose client went away or never set a deadline.
	if _, ok := cfg.ConnConfig.RuntimeParams["statement_timeout"]; !ok {
		cfg.ConnConfig.RuntimeParams["statement_timeout"] = pgStatementTimeout
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, scrub(fmt.Errorf("store: postgres: %w", err), pw)
	}
	s := &Postgres{pool: pool, now: now}
	if err := s.migrate(ctx, target); err != nil {
		pool.Close()
		return nil, scrub(err, pw)
	}
	return s, nil
}

// migrate brings the schema to the latest version in one transaction that
// first takes a transaction-scoped advisory lock: a replica that starts
// while another migrates waits, then finds the work done. PostgreSQL's DDL
// is transactional, so a failure leaves the schema at its old version.
func (s *Postgres) migrate(ctx context.Context, target int) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, migrateLockKey); err != nil {
			return fmt.Errorf("store: migrate: lock: %w", err)
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)`); err != nil {
			return fmt.Errorf("store: migrate: %w", err)
		}
		var v int
		switch err := tx.QueryRow(ctx, `SELECT version FROM schema_version`).Scan(&v); {
		case errors.Is(err, pgx.ErrNoRows):
			if _, err := tx.Exec(ctx, `INSERT INTO schema_version (version) VALUES (0)`); err != nil {
				return fmt.Errorf("store: migrate: %w", err)
			}
		case err != nil:
			return fmt.Errorf("store: migrate: %w", err)
		}
		if v > len(pgMigrations) {
			return fmt.Errorf("store: database schema version %d is newer than this binary's %d", v, len(pgMigrations))
		}
		for ; v < target; v++ {
			if _, err := tx.Exec(ctx, pgMigrations[v]); err != nil {
				return fmt.Errorf("store: migration %d: %w", v+1, err)
			}
		}
		if _, err := tx.Exec(ctx, `UPDATE schema_version SET version = $1`, v); err != nil {
			return fmt.Errorf("store: migrate: %w", err)
		}
		return nil
	})
}

// SchemaVersion returns the schema version of the database.
func (s *Postgres) SchemaVersion(ctx context.Context) (int, error) {
	var v int
	if err := s.pool.QueryRow(ctx, `SELECT version FROM schema_version`).Scan(&v); err != nil {
		return 0, fmt.Errorf("store: schema version: %w", err)
	}
	return v, nil
}

// LatestPostgresSchemaVersion is the version OpenPostgres migrates to.
func LatestPostgresSchemaVersion() int { return len(pgMigrations) }

// Close closes the pool's connections.
func (s *Postgres) Close() error {
	s.pool.Close()
	return nil
}

// pgTime maps the zero time to NULL.
func pgTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// fromPG maps NULL to the zero time and any other to UTC.
func fromPG(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.UTC()
}

func scanPGCredential(r pgx.Row) (Credential, error) {
	var c Credential
	var kind, status string
	var exp, upd *time.Time
	err := r.Scan(&c.ID, &c.Owner, &c.Host, &c.Org, &kind, &c.Sealed, &exp, &status, &c.Reason, &c.Version, &upd, &c.MAC)
	c.Kind, c.Status = Kind(kind), Status(status)
	c.ExpiresAt, c.UpdatedAt = fromPG(exp), fromPG(upd)
	if len(c.MAC) == 0 {
		c.MAC = nil
	}
	return c, err
}

// PutCredential implements Store: one INSERT … ON CONFLICT DO UPDATE, which
// PostgreSQL keeps atomic against concurrent puts of the same key.
func (s *Postgres) PutCredential(ctx context.Context, c Credential) (Credential, error) {
	if err := checkCredential(&c); err != nil {
		return Credential{}, err
	}
	out, err := scanPGCredential(s.pool.QueryRow(ctx, `INSERT INTO credentials (owner, host, org, kind, sealed, expires_at, status, reason, version, updated_at, mac)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 1, $9, $10)
		ON CONFLICT ON CONSTRAINT credentials_key DO UPDATE SET
			sealed = excluded.sealed, expires_at = excluded.expires_at,
			status = excluded.status, reason = excluded.reason,
			version = credentials.version + 1, updated_at = excluded.updated_at,
			mac = excluded.mac
		RETURNING `+credentialColumns,
		c.Owner, c.Host, c.Org, string(c.Kind), c.Sealed, pgTime(c.ExpiresAt), string(c.Status), c.Reason, s.now(), blob(c.MAC)))
	if err != nil {
		return Credential{}, fmt.Errorf("store: put credential: %w", err)
	}
	return out, nil
}

// Credentials implements Store.
func (s *Postgres) Credentials(ctx context.Context, owner, host string) ([]Credential, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+credentialColumns+` FROM credentials WHERE owner = $1 AND host = $2 ORDER BY id`, owner, host)
	if err != nil {
		return nil, fmt.Errorf("store: credentials: %w", err)
	}
	defer rows.Close()
	var out []Credential
	for rows.Next() {
		c, err := scanPGCredential(rows)
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
func (s *Postgres) Credential(ctx context.Context, id int64) (Credential, error) {
	c, err := scanPGCredential(s.pool.QueryRow(ctx, `SELECT `+credentialColumns+` FROM credentials WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return Credential{}, ErrNotFound
	}
	if err != nil {
		return Credential{}, fmt.Errorf("store: credential %d: %w", id, err)
	}
	return c, nil
}

// UpdateCredential implements Store with a compare-and-swap on version. At
// READ COMMITTED, a second UPDATE of the same row waits for the first to
// commit and then re-checks its WHERE clause against the new row, so of
// two replicas holding the same version exactly one matches.
func (s *Postgres) UpdateCredential(ctx context.Context, c Credential) (Credential, error) {
	var out Credential
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		out, err = scanPGCredential(tx.QueryRow(ctx, `UPDATE credentials SET sealed = $3, expires_at = $4, status = $5, reason = $6,
			version = version + 1, updated_at = $7, mac = $8 WHERE id = $1 AND version = $2 RETURNING `+credentialColumns,
			c.ID, c.Version, c.Sealed, pgTime(c.ExpiresAt), string(c.Status), c.Reason, s.now(), blob(c.MAC)))
		if !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		var exists bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM credentials WHERE id = $1)`, c.ID).Scan(&exists); err != nil {
			return err
		}
		if !exists {
			return ErrNotFound
		}
		return ErrConflict
	})
	if errors.Is(err, ErrNotFound) || errors.Is(err, ErrConflict) {
		return Credential{}, err
	}
	if err != nil {
		return Credential{}, fmt.Errorf("store: update credential %d: %w", c.ID, err)
	}
	return out, nil
}

// DeleteCredential implements Store.
func (s *Postgres) DeleteCredential(ctx context.Context, id int64) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM credentials WHERE id = $1`, id)
	if err != nil {
		return fmt.Errorf("store: delete credential %d: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return ErrNotFound
	}
	return nil
}

// ListCredentials implements Store.
func (s *Postgres) ListCredentials(ctx context.Context, owner, host string) ([]Credential, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+credentialMetaColumns+` FROM credentials
		WHERE ($1 = '' OR owner = $1) AND ($2 = '' OR host = $2) ORDER BY id`, owner, host)
	if err != nil {
		return nil, fmt.Errorf("store: list credentials: %w", err)
	}
	out, err := scanPGCredentials(rows)
	if err != nil {
		return nil, fmt.Errorf("store: list credentials: %w", err)
	}
	sortCredentials(out)
	return out, nil
}

// DeleteCredentials implements Store with one DELETE … RETURNING.
func (s *Postgres) DeleteCredentials(ctx context.Context, owner, host string) ([]Credential, error) {
	if owner == "" {
		return nil, errDeleteNoOwner
	}
	rows, err := s.pool.Query(ctx, `DELETE FROM credentials WHERE owner = $1 AND ($2 = '' OR host = $2)
		RETURNING `+credentialMetaColumns, owner, host)
	if err != nil {
		return nil, fmt.Errorf("store: delete credentials: %w", err)
	}
	out, err := scanPGCredentials(rows)
	if err != nil {
		return nil, fmt.Errorf("store: delete credentials: %w", err)
	}
	// RETURNING promises no order.
	slices.SortFunc(out, func(a, b Credential) int { return cmp.Compare(a.ID, b.ID) })
	return out, nil
}

// scanPGCredentials reads and closes rows.
func scanPGCredentials(rows pgx.Rows) ([]Credential, error) {
	defer rows.Close()
	var out []Credential
	for rows.Next() {
		c, err := scanPGCredential(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// CreateEnvironment implements Store.
func (s *Postgres) CreateEnvironment(ctx context.Context, e Environment) error {
	if e.ID == "" || e.Owner == "" || len(e.TokenHash) == 0 {
		return errors.New("store: environment needs an ID, an owner and a token hash")
	}
	pol, err := encodePolicy(e.Policy)
	if err != nil {
		return err
	}
	_, err = s.pool.Exec(ctx, `INSERT INTO environments (id, owner, token_hash, created_at, expires_at, revoked_at, policy, policy_version, mac) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
		e.ID, e.Owner, e.TokenHash, pgTime(e.CreatedAt), pgTime(e.ExpiresAt), pgTime(e.RevokedAt), pol, e.PolicyVersion, blob(e.MAC))
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "23505" { // unique_violation
		// pe.Detail would quote the token hash: name the rule instead.
		what := "ID"
		if strings.Contains(pe.ConstraintName, "token_hash") {
			what = "token hash"
		}
		return fmt.Errorf("store: create environment %s: its %s is taken: %w", e.ID, what, ErrDuplicate)
	}
	if err != nil {
		return fmt.Errorf("store: create environment %s: %w", e.ID, err)
	}
	return nil
}

// scanPGEnvironment reads environmentColumns, then extra.
func scanPGEnvironment(r pgx.Row, extra ...any) (Environment, error) {
	var e Environment
	var created, expires, revoked *time.Time
	var pol string
	if err := r.Scan(append([]any{&e.ID, &e.Owner, &created, &expires, &revoked, &pol, &e.PolicyVersion, &e.MAC}, extra...)...); err != nil {
		return Environment{}, err
	}
	e.CreatedAt, e.ExpiresAt, e.RevokedAt = fromPG(created), fromPG(expires), fromPG(revoked)
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

// EnvironmentByTokenHash implements Store.
func (s *Postgres) EnvironmentByTokenHash(ctx context.Context, hash []byte) (Environment, error) {
	var th []byte
	e, err := scanPGEnvironment(s.pool.QueryRow(ctx, `SELECT `+environmentColumns+`, token_hash FROM environments WHERE token_hash = $1`, hash), &th)
	if errors.Is(err, pgx.ErrNoRows) {
		return Environment{}, ErrNotFound
	}
	if err != nil {
		return Environment{}, fmt.Errorf("store: environment: %w", err)
	}
	e.TokenHash = th
	return e, nil
}

// SetEnvironmentPolicy implements Store: SELECT … FOR UPDATE, the MAC and
// the UPDATE in one transaction, so concurrent updates through any replica
// count one version each and every MAC covers the version it is stored
// with.
func (s *Postgres) SetEnvironmentPolicy(ctx context.Context, id string, change func(cur Environment) (Policy, error), mac func(Environment) []byte) (Environment, error) {
	var e Environment
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var th []byte
		var err error
		e, err = scanPGEnvironment(tx.QueryRow(ctx, `SELECT `+environmentColumns+`, token_hash FROM environments WHERE id = $1 FOR UPDATE`, id), &th)
		if err != nil {
			return err
		}
		e.TokenHash = th
		p, err := change(e)
		if err != nil {
			return &changeError{err}
		}
		pol, err := encodePolicy(p)
		if err != nil {
			return err
		}
		e.Policy, e.PolicyVersion = p, e.PolicyVersion+1
		if mac != nil {
			e.MAC = mac(e)
		}
		_, err = tx.Exec(ctx, `UPDATE environments SET policy = $1, policy_version = $2, mac = $3 WHERE id = $4`, pol, e.PolicyVersion, nonNil(e.MAC), id)
		return err
	})
	var ce *changeError
	if errors.As(err, &ce) {
		return Environment{}, ce.err
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return Environment{}, ErrNotFound
	}
	if err != nil {
		return Environment{}, fmt.Errorf("store: set policy of environment %s: %w", id, err)
	}
	e.TokenHash = nil
	return e, nil
}

// changeError carries the error of a caller's change function out of a
// transaction unwrapped.
type changeError struct{ err error }

func (e *changeError) Error() string { return e.err.Error() }

// RevokeEnvironment implements Store. Revoking twice keeps the first time.
func (s *Postgres) RevokeEnvironment(ctx context.Context, id string, at time.Time) error {
	if at.IsZero() {
		at = s.now()
	}
	var found bool
	// One statement: the UPDATE touches the row only when not yet revoked,
	// the outer SELECT says whether the environment exists at all.
	err := s.pool.QueryRow(ctx, `WITH upd AS (
			UPDATE environments SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL RETURNING 1
		) SELECT EXISTS (SELECT 1 FROM upd) OR EXISTS (SELECT 1 FROM environments WHERE id = $1)`, id, at).Scan(&found)
	if err != nil {
		return fmt.Errorf("store: revoke environment %s: %w", id, err)
	}
	if !found {
		return ErrNotFound
	}
	return nil
}

// ListEnvironments implements Store.
func (s *Postgres) ListEnvironments(ctx context.Context, owner string) ([]Environment, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+environmentColumns+` FROM environments
		WHERE $1 = '' OR owner = $1 `, owner)
	if err != nil {
		return nil, fmt.Errorf("store: list environments: %w", err)
	}
	defer rows.Close()
	var out []Environment
	for rows.Next() {
		e, err := scanPGEnvironment(rows)
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

// AddAuditEvents implements Store: one batch, one transaction.
func (s *Postgres) AddAuditEvents(ctx context.Context, events []AuditEvent) error {
	if len(events) == 0 {
		return nil
	}
	b := &pgx.Batch{}
	for _, e := range events {
		if err := checkAuditEvent(e); err != nil {
			return err
		}
		refs, err := encodeRefs(e.Refs)
		if err != nil {
			return err
		}
		b.Queue(`INSERT INTO audit_events (time, env, owner, host, org, project, repo, operation, refs, status, refused, bytes_in, bytes_out, duration_ms)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)`,
			e.Time, e.Env, e.Owner, e.Host, e.Org, e.Project, e.Repo, e.Operation, refs, e.Status, e.Refused, e.BytesIn, e.BytesOut, e.DurationMS)
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		return tx.SendBatch(ctx, b).Close()
	})
	if err != nil {
		return fmt.Errorf("store: add audit events: %w", err)
	}
	return nil
}

// AuditEvents implements Store.
func (s *Postgres) AuditEvents(ctx context.Context, f AuditFilter) ([]AuditEvent, error) {
	var limit *int // NULL: no limit
	if f.Limit > 0 {
		limit = &f.Limit
	}
	rows, err := s.pool.Query(ctx, `SELECT `+auditColumns+` FROM audit_events
		WHERE ($1 = '' OR owner = $1) AND ($2 = '' OR env = $2) AND ($3 = '' OR lower(repo) = lower($3)) AND ($4::timestamptz IS NULL OR time >= $4)
		ORDER BY time DESC, id DESC LIMIT $5`, f.Owner, f.Env, f.Repo, pgTime(f.Since), limit)
	if err != nil {
		return nil, fmt.Errorf("store: audit events: %w", err)
	}
	defer rows.Close()
	var out []AuditEvent
	for rows.Next() {
		var e AuditEvent
		var refs string
		if err := rows.Scan(&e.ID, &e.Time, &e.Env, &e.Owner, &e.Host, &e.Org, &e.Project, &e.Repo, &e.Operation, &refs,
			&e.Status, &e.Refused, &e.BytesIn, &e.BytesOut, &e.DurationMS); err != nil {
			return nil, fmt.Errorf("store: audit events: %w", err)
		}
		e.Time = e.Time.UTC()
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
func (s *Postgres) DeleteAuditEvents(ctx context.Context, before time.Time) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM audit_events WHERE time < $1`, before)
	if err != nil {
		return 0, fmt.Errorf("store: delete audit events: %w", err)
	}
	return tag.RowsAffected(), nil
}

// UseNonce implements Store. Expired nonces are deleted in the same
// transaction; of two concurrent inserts of one hash, ON CONFLICT DO
// NOTHING lets the second wait for the first and then insert nothing.
func (s *Postgres) UseNonce(ctx context.Context, hash []byte, expires time.Time) error {
	if len(hash) == 0 {
		return errors.New("store: use nonce: empty hash")
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM link_nonces WHERE expires_at <= $1`, s.now()); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `INSERT INTO link_nonces (hash, expires_at) VALUES ($1, $2) ON CONFLICT (hash) DO NOTHING`, hash, expires)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return ErrUsed
		}
		return nil
	})
	if err != nil && !errors.Is(err, ErrUsed) {
		return fmt.Errorf("store: use nonce: %w", err)
	}
	return err
}

// NonceUsed implements Store.
func (s *Postgres) NonceUsed(ctx context.Context, hash []byte) (bool, error) {
	var used bool
	err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM link_nonces WHERE hash = $1 AND expires_at > $2)`, hash, s.now()).Scan(&used)
	if err != nil {
		return false, fmt.Errorf("store: nonce used: %w", err)
	}
	return used, nil
}

// PutFlow implements Store; it also forgets expired flows.
func (s *Postgres) PutFlow(ctx context.Context, stateHash []byte, f Flow) error {
	if err := checkFlow(stateHash, f); err != nil {
		return err
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM connect_flows WHERE expires_at <= $1`, s.now()); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO connect_flows (state_hash, owner, env, host, org, sealed_verifier, nonce, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
			stateHash, f.Owner, f.Env, f.Host, f.Org, f.SealedVerifier, f.Nonce, f.Expires)
		return err
	})
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "23505" {
		return fmt.Errorf("store: put sign-in: %w", ErrDuplicate)
	}
	if err != nil {
		return fmt.Errorf("store: put sign-in: %w", err)
	}
	return nil
}

// TakeFlow implements Store with one DELETE … RETURNING, so of two
// concurrent callbacks with one state only one gets the flow.
func (s *Postgres) TakeFlow(ctx context.Context, stateHash []byte) (Flow, error) {
	var f Flow
	err := s.pool.QueryRow(ctx, `DELETE FROM connect_flows WHERE state_hash = $1 RETURNING owner, env, host, org, sealed_verifier, nonce, expires_at`, stateHash).
		Scan(&f.Owner, &f.Env, &f.Host, &f.Org, &f.SealedVerifier, &f.Nonce, &f.Expires)
	if errors.Is(err, pgx.ErrNoRows) {
		return Flow{}, ErrNotFound
	}
	if err != nil {
		return Flow{}, fmt.Errorf("store: take sign-in: %w", err)
	}
	f.Expires = f.Expires.UTC()
	if !s.now().Before(f.Expires) {
		return Flow{}, ErrNotFound
	}
	return f, nil
}

// CountUnbound implements Store.
func (s *Postgres) CountUnbound(ctx context.Context) (credentials, environments int, err error) {
	if err := s.pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM credentials WHERE length(mac) = 0),
		(SELECT count(*) FROM environments WHERE length(mac) = 0)`).Scan(&credentials, &environments); err != nil {
		return 0, 0, fmt.Errorf("store: count unbound rows: %w", err)
	}
	return credentials, environments, nil
}

// BindLegacy implements Store in one transaction under the migration's
// advisory lock, so two operators binding at once bind once.
func (s *Postgres) BindLegacy(ctx context.Context, b Binder) (Bound, error) {
	var out Bound
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		out = Bound{}
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, migrateLockKey); err != nil {
			return fmt.Errorf("lock: %w", err)
		}
		var unbound, tampered bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM credentials WHERE length(mac) = 0)
			OR EXISTS (SELECT 1 FROM environments WHERE length(mac) = 0)`).Scan(&unbound); err != nil {
			return err
		}
		if !unbound {
			return nil
		}
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM credentials WHERE length(mac) > 0)
			OR EXISTS (SELECT 1 FROM environments WHERE length(mac) > 0)`).Scan(&tampered); err != nil {
			return err
		}
		if tampered {
			return ErrBindingTampered
		}
		rows, err := tx.Query(ctx, `SELECT `+credentialColumns+` FROM credentials ORDER BY id`)
		if err != nil {
			return err
		}
		if out.Credentials, err = scanPGCredentials(rows); err != nil {
			return err
		}
		for i, c := range out.Credentials {
			if _, err := tx.Exec(ctx, `UPDATE credentials SET mac = $2 WHERE id = $1`, c.ID, blob(b.CredentialMAC(c))); err != nil {
				return fmt.Errorf("credential %d: %w", c.ID, err)
			}
			out.Credentials[i].Sealed = ""
		}
		erows, err := tx.Query(ctx, `SELECT `+environmentColumns+`, token_hash FROM environments ORDER BY id`)
		if err != nil {
			return err
		}
		for erows.Next() {
			var th []byte
			e, err := scanPGEnvironment(erows, &th)
			if err != nil {
				erows.Close()
				return err
			}
			e.TokenHash = th
			out.Environments = append(out.Environments, e)
		}
		erows.Close()
		if err := erows.Err(); err != nil {
			return err
		}
		for i, e := range out.Environments {
			hash, mac := b.BindEnvironment(e)
			if _, err := tx.Exec(ctx, `UPDATE environments SET token_hash = $2, mac = $3 WHERE id = $1`, e.ID, hash, blob(mac)); err != nil {
				return fmt.Errorf("environment %s: %w", e.ID, err)
			}
			out.Environments[i].TokenHash = nil
		}
		_, err = tx.Exec(ctx, `INSERT INTO store_meta (name, value) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET value = excluded.value`, bindMark, s.now().UTC().Format(time.RFC3339))
		return err
	})
	if errors.Is(err, ErrBindingTampered) {
		return Bound{}, err
	}
	if err != nil {
		return Bound{}, fmt.Errorf("store: bind: %w", err)
	}
	return out, nil
}

// AddConnectEvent implements Store.
func (s *Postgres) AddConnectEvent(ctx context.Context, e ConnectEvent) (int64, error) {
	if err := checkConnectEvent(e); err != nil {
		return 0, err
	}
	now := s.now()
	var id int64
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM connect_events WHERE at <= $1`, now.Add(-ConnectEventRetention)); err != nil {
			return err
		}
		return tx.QueryRow(ctx, `INSERT INTO connect_events (owner, env, host, kind, ok, identity, reason, at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id`,
			e.Owner, e.Env, e.Host, string(e.Kind), e.OK, e.Identity, e.Reason, now).Scan(&id)
	})
	if err != nil {
		return 0, fmt.Errorf("store: add connect event: %w", err)
	}
	return id, nil
}

// ConnectEvents implements Store.
func (s *Postgres) ConnectEvents(ctx context.Context, after int64) ([]ConnectEvent, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, owner, env, host, kind, ok, identity, reason, at FROM connect_events WHERE id > $1 ORDER BY id LIMIT $2`, after, MaxConnectEvents)
	if err != nil {
		return nil, fmt.Errorf("store: connect events: %w", err)
	}
	defer rows.Close()
	var out []ConnectEvent
	for rows.Next() {
		var e ConnectEvent
		var kind string
		var at time.Time
		if err := rows.Scan(&e.ID, &e.Owner, &e.Env, &e.Host, &kind, &e.OK, &e.Identity, &e.Reason, &at); err != nil {
			return nil, fmt.Errorf("store: connect events: %w", err)
		}
		e.Kind, e.At = Kind(kind), at.UTC()
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: connect events: %w", err)
	}
	return out, nil
}

// LastConnectEventID implements Store.
func (s *Postgres) LastConnectEventID(ctx context.Context) (int64, error) {
	var id int64
	if err := s.pool.QueryRow(ctx, `SELECT COALESCE(MAX(id), 0) FROM connect_events`).Scan(&id); err != nil {
		return 0, fmt.Errorf("store: last connect event: %w", err)
	}
	return id, nil
}

// ProviderFingerprints implements Store.
func (s *Postgres) ProviderFingerprints(ctx context.Context) (map[string]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT host, fingerprint FROM provider_fingerprints`)
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
func (s *Postgres) SetProviderFingerprints(ctx context.Context, fps map[string]string) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM provider_fingerprints`); err != nil {
			return err
		}
		for h, f := range fps {
			if _, err := tx.Exec(ctx, `INSERT INTO provider_fingerprints (host, fingerprint) VALUES ($1, $2)`, h, f); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: set provider fingerprints: %w", err)
	}
	return nil
}

var _ Store = (*Postgres)(nil)

// userinfoPassword finds the password of a URL that url.Parse may refuse.
var userinfoPassword = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]*://[^/?#@:]*:([^/?#@]*)@`)

// urlPasswords returns the password of rawURL, in the forms an error might
// quote it: as written, decoded, and from a password= parameter.
func urlPasswords(rawURL string) []string {
	var out []string
	if m := userinfoPassword.FindStringSubmatch(rawURL); m != nil && m[1] != "" {
		out = append(out, m[1])
		if d, err := url.PathUnescape(m[1]); err == nil && d != m[1] {
			out = append(out, d)
		}
	}
	if i := strings.IndexByte(rawURL, '?'); i >= 0 {
		if q, err := url.ParseQuery(rawURL[i+1:]); err == nil {
			for _, p := range q["password"] {
				if p != "" {
					out = append(out, p, url.QueryEscape(p))
				}
			}
		}
	}
	return out
}

// scrub returns err, or — when its text holds one of the passwords — a
// new error with the passwords replaced. The replacement keeps the
// message but not the chain: the cause itself would still quote them.
func scrub(err error, passwords []string) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	leaked := false
	for _, p := range passwords {
		if strings.Contains(msg, p) {
			msg, leaked = strings.ReplaceAll(msg, p, "xxxxx"), true
		}
	}
	if !leaked {
		return err
	}
	return errors.New(msg)
}
