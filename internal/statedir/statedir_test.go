package statedir

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestEnsure(t *testing.T) {
	base := t.TempDir()
	foreign := filepath.Join(base, "foreign")
	os.Mkdir(foreign, 0o700)
	foreignOK := os.Getuid() == 0 && os.Chown(foreign, 65534, 65534) == nil
	shared := filepath.Join(base, "shared")
	os.Mkdir(shared, 0o700)
	os.Chmod(shared, 0o777|os.ModeSticky)
	file := filepath.Join(base, "file")
	os.WriteFile(file, nil, 0o600)
	tests := []struct {
		name string
		dir  string
		want error // nil: ok
		skip bool
	}{
		{"missing, with parents", filepath.Join(base, "a", "b", "c"), nil, false},
		{"existing 0700", base, nil, false},
		{"shared", shared, ErrInsecure, false},
		{"someone else's", foreign, ErrInsecure, !foreignOK},
		{"a file", file, ErrInsecure, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.skip {
				t.Skip("chown needs root")
			}
			before, _ := os.Stat(tt.dir)
			err := Ensure(tt.dir)
			if (tt.want == nil) != (err == nil) || (tt.want != nil && !errors.Is(err, tt.want)) {
				t.Fatalf("Ensure(%s) = %v; want %v", tt.dir, err, tt.want)
			}
			after, _ := os.Stat(tt.dir)
			if before != nil && before.Mode() != after.Mode() {
				t.Errorf("Ensure changed the mode of an existing path: %v -> %v", before.Mode(), after.Mode())
			}
			if before == nil && after.Mode().Perm() != 0o700 {
				t.Errorf("created with %v; want 0700", after.Mode().Perm())
			}
		})
	}
	if err := Ensure("relative/dir"); err == nil {
		t.Errorf("Ensure(relative) = nil; want an error")
	}
}
