package vault

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/azdo-sidecar/azdo-sidecar/sealbox"
)

func TestKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "runner.key")
	kp, err := WriteKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(path)
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode = %04o; want 0600", fi.Mode().Perm())
	}
	if _, err := WriteKeyFile(path); err == nil || !strings.Contains(err.Error(), "public key is "+kp.Public.String()) || strings.Contains(err.Error(), kp.Private.Encode()) {
		t.Errorf("WriteKeyFile over an existing key = %v; want a refusal naming its public key %s (and not its private key)", err, kp.Public)
	}
	got, err := LoadKeyFile(path)
	if err != nil || got.Public != kp.Public {
		t.Fatalf("LoadKeyFile = %v, %v; want public key %v", got.Public, err, kp.Public)
	}
	for _, mode := range []os.FileMode{0o640, 0o604, 0o644} {
		os.Chmod(path, mode)
		_, err := LoadKeyFile(path)
		if !errors.Is(err, ErrKeyFileMode) || !strings.Contains(err.Error(), "chmod 600 "+path) {
			t.Errorf("LoadKeyFile(mode %04o) = %v; want ErrKeyFileMode naming chmod 600 %s", mode, err, path)
		}
		if err != nil && strings.Contains(err.Error(), kp.Private.Encode()) {
			t.Errorf("error leaks the private key")
		}
	}
	os.Chmod(path, 0o400)
	if _, err := LoadKeyFile(path); err != nil {
		t.Errorf("LoadKeyFile(mode 0400) = %v; want nil", err)
	}
}

func TestOpenClientSecret(t *testing.T) {
	runner, _ := sealbox.Generate()
	other, _ := sealbox.Generate()
	good, _ := sealbox.Seal(runner.Public, []byte("client-secret-value"))
	wrong, _ := sealbox.Seal(other.Public, []byte("client-secret-value"))
	tests := []struct {
		name    string
		sealed  string
		wantErr string
	}{
		{name: "sealed to this runner", sealed: good},
		{name: "sealed to another runner", sealed: wrong, wantErr: runner.Public.String()},
		{name: "empty", sealed: "", wantErr: "azdo-vault seal --public-key " + runner.Public.String()},
		{name: "not base64", sealed: "!!!", wantErr: runner.Public.String()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := OpenClientSecret(runner, "dev.azure.com", tt.sealed)
			if tt.wantErr == "" {
				if err != nil || s.Reveal() != "client-secret-value" {
					t.Fatalf("OpenClientSecret = %v; want the secret", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("OpenClientSecret = %v; want an error naming %q", err, tt.wantErr)
			}
			if strings.Contains(err.Error(), "client-secret-value") {
				t.Errorf("error leaks the client secret")
			}
		})
	}
}
