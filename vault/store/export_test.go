package store

import (
	"context"
	"time"
)

// OpenPostgresAtForTest opens the database at rawURL migrated only up to
// schema version v, as an older binary left it.
func OpenPostgresAtForTest(ctx context.Context, rawURL string, v int) (*Postgres, error) {
	return openPostgres(ctx, rawURL, time.Now, v)
}

// ExecForTest runs one statement on s, as someone with write access to
// the database (and no runner key) could.
func ExecForTest(ctx context.Context, s *Postgres, sql string, args ...any) error {
	_, err := s.pool.Exec(ctx, sql, args...)
	return err
}

// SetSchemaVersionForTest overwrites the schema version of s.
func SetSchemaVersionForTest(ctx context.Context, s *Postgres, v int) error {
	_, err := s.pool.Exec(ctx, `UPDATE schema_version SET version = $1`, v)
	return err
}

// SettingForTest returns a server setting as one of s's connections sees it.
func SettingForTest(ctx context.Context, s *Postgres, name string) (string, error) {
	var v string
	err := s.pool.QueryRow(ctx, `SELECT current_setting($1)`, name).Scan(&v)
	return v, err
}
