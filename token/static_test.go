package token

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/azdo-sidecar/azdo-sidecar/secret"
)

func TestStatic(t *testing.T) {
	src := NewStatic(secret.New("mypat"))
	tok, err := src.Token(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	if tok.Kind != Basic || tok.User() != DefaultUsername || tok.Secret.Reveal() != "mypat" || !tok.ExpiresAt.IsZero() {
		t.Fatalf("NewStatic(...).Token() = %v; want a basic PAT for %q without expiry", tok, DefaultUsername)
	}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
		if out := fmt.Sprintf(verb, src); strings.Contains(out, "mypat") {
			t.Errorf("Sprintf(%q, NewStatic(pat)) = %q; leaks the PAT", verb, out)
		}
	}
	if _, err := NewStatic(secret.String{}).Token(context.Background(), key); !errors.Is(err, ErrNoCredential) {
		t.Fatalf("empty static PAT: err = %v; want ErrNoCredential", err)
	}
}

func TestReadPATFile(t *testing.T) {
	const pat = "abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnop"
	tests := []struct {
		name    string
		content string
		want    string
		wantErr bool
	}{
		{"plain", pat, pat, false},
		{"trailing newline", pat + "\n", pat, false},
		{"crlf and spaces", "  " + pat + "\r\n", pat, false},
		{"empty", "", "", true},
		{"only whitespace", " \n\t\n", "", true},
		{"two lines", pat + "\nsecond-line-secret\n", "", true},
		{"inner space", "abc def-secret", "", true},
		{"too large", strings.Repeat("x", MaxSecretFileSize+1), "", true},
	}
	dir := t.TempDir()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "_"))
			if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			got, err := ReadPATFile(path)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("ReadPATFile(%q) = %v, nil; want an error", tt.content, got)
				}
				if !strings.Contains(err.Error(), path) {
					t.Errorf("error %q does not name the file", err)
				}
				for _, s := range []string{pat, "second-line-secret", "def-secret"} {
					if strings.Contains(err.Error(), s) {
						t.Errorf("error %q leaks the content", err)
					}
				}
				return
			}
			if err != nil || got.Reveal() != tt.want {
				t.Fatalf("ReadPATFile(%q) = %q, %v; want %q", tt.content, got.Reveal(), err, tt.want)
			}
		})
	}
	if _, err := ReadPATFile(filepath.Join(dir, "missing")); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("ReadPATFile(missing) err = %v; want an error naming the file", err)
	}
}

// TestReadSecretFileRefusesFilesOthersCanRead: a PAT or environment token
// file with any group or other permission is refused, the message says
// how to fix it, and never shows the secret.
func TestReadSecretFileRefusesFilesOthersCanRead(t *testing.T) {
	const value = "secret-file-value-0123456789"
	for _, tt := range []struct {
		mode os.FileMode
		ok   bool
	}{
		{0o600, true}, {0o400, true}, {0o640, false}, {0o644, false}, {0o604, false}, {0o620, false},
	} {
		t.Run(tt.mode.String(), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "pat")
			if err := os.WriteFile(path, []byte(value+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			os.Chmod(path, tt.mode)
			v, err := ReadSecretFile(path, "PAT")
			if tt.ok {
				if err != nil || v.Reveal() != value {
					t.Errorf("ReadSecretFile(%v) = %v; want the value", tt.mode, err)
				}
				return
			}
			if err == nil || !errors.Is(err, ErrBadSecretFile) || !strings.Contains(err.Error(), "chmod 600 "+path) {
				t.Errorf("ReadSecretFile(%v) = %v; want ErrBadSecretFile saying chmod 600 %s", tt.mode, err, path)
			}
			if err != nil && strings.Contains(err.Error(), value) {
				t.Errorf("the error shows the secret")
			}
		})
	}
}
