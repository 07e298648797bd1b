package e2e

import (
	"os"
	"testing"

	"github.com/azdo-sidecar/azdo-sidecar/e2e/testenv"
)

// TestMain removes the binaries testenv built once for the whole run.
func TestMain(m *testing.M) {
	code := m.Run()
	testenv.CleanupBinaries()
	os.Exit(code)
}
