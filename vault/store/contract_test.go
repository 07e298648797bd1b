package store_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/azdo-sidecar/azdo-sidecar/vault/store"
	"github.com/azdo-sidecar/azdo-sidecar/vault/store/storetest"
)

// TestSQLiteContract runs the store contract on SQLite; every handle of one
// test opens the same file, as the CLI and a running vault do.
func TestSQLiteContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Opener {
		path := filepath.Join(t.TempDir(), "vault.db")
		return func(ctx context.Context, now func() time.Time) (store.Store, error) {
			return store.OpenSQLite(ctx, path, now)
		}
	})
}
