package store

import "context"

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
