package store

import "context"

// SetSchemaVersionForTest overwrites the schema version of s.
func SetSchemaVersionForTest(ctx context.Context, s *Postgres, v int) error {
	_, err := s.pool.Exec(ctx, `UPDATE schema_version SET version = $1`, v)
	return err
}
