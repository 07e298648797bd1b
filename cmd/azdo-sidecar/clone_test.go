package main

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/azdo-sidecar/azdo-sidecar/credential"
	"github.com/azdo-sidecar/azdo-sidecar/token"
)

// TestSocketSource: clone's token source over the sidecar's socket turns
// each kind of answer into the error clone branches on, with the sidecar's
// message once and without its program-name prefix.
func TestSocketSource(t *testing.T) {
	key := token.Key{Host: "dev.azure.com", Org: "contoso"}
	tests := []struct {
		name    string
		answer  *credential.Credential
		wantIs  error  // nil: a token
		wantMsg string // in the error
	}{
		{"connect required", &credential.Credential{Quit: true, Extra: []credential.Attr{{Key: credential.MessageKey, Value: "azdo-sidecar: Azure DevOps (dev.azure.com/contoso): connect required: open https://runner.example/connect?x=1"}}},
			errAny, "Azure DevOps (dev.azure.com/contoso): connect required: open https://runner.example/connect?x=1"},
		{"unconfigured sidecar", &credential.Credential{Extra: []credential.Attr{{Key: credential.MessageKey, Value: "azdo-sidecar: azdo-sidecar runs without a token source for dev.azure.com/contoso (start it with --pat-file)"}}},
			token.ErrNoCredential, "runs without a token source for dev.azure.com/contoso (start it with --pat-file)"},
		{"nothing", nil, token.ErrNoCredential, "the sidecar has no credential for dev.azure.com/contoso"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sock := filepath.Join(t.TempDir(), "run", "sock")
			ln, err := credential.Listen(sock)
			if err != nil {
				t.Fatal(err)
			}
			srv := &credential.Server{Handler: credential.HandlerFunc(func(context.Context, string, *credential.Credential) (*credential.Credential, error) {
				return tt.answer, nil
			})}
			go srv.Serve(ln)
			t.Cleanup(func() { srv.Shutdown(context.Background()) })

			_, err = socketSource{client: &credential.Client{Socket: sock}}.Token(context.Background(), key)
			if err == nil {
				t.Fatalf("Token(%v) = a token; want an error", key)
			}
			if tt.wantIs != errAny && !errors.Is(err, tt.wantIs) {
				t.Errorf("Token(%v) error = %v; want errors.Is %v", key, err, tt.wantIs)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) || strings.Contains(err.Error(), "azdo-sidecar: ") {
				t.Errorf("Token(%v) error = %q; want it to contain %q once, without the azdo-sidecar: prefix", key, err, tt.wantMsg)
			}
		})
	}

	t.Run("no sidecar yet is retryable", func(t *testing.T) {
		sock := filepath.Join(t.TempDir(), "absent", "sock")
		_, err := socketSource{client: &credential.Client{Socket: sock}}.Token(context.Background(), key)
		if !errors.Is(err, token.ErrUnavailable) || !strings.Contains(err.Error(), "start `azdo-sidecar serve` first") {
			t.Errorf("Token without a sidecar = %v; want token.ErrUnavailable saying to start the sidecar", err)
		}
	})
}

// errAny accepts any error.
var errAny = errors.New("any")
