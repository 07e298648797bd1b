package vaultsource

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"

	"github.com/azdo-sidecar/azdo-sidecar/secret"
	"github.com/azdo-sidecar/azdo-sidecar/token"
)

// TestUnreachableVaultNamesTheURL: a --vault-url where nothing listens is
// a configuration error: the message names the URL and the reason and
// says to check --vault-url, and callers that retry still see
// ErrUnavailable.
func TestUnreachableVaultNamesTheURL(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String()
	ln.Close() // nothing listens there now
	s, err := New(Options{URL: url, EnvToken: secret.New("env-token-value")})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Token(context.Background(), token.Key{Host: "dev.azure.com", Org: "contoso"})
	var ue *token.UnreachableError
	if !errors.As(err, &ue) || !errors.Is(err, token.ErrUnavailable) {
		t.Fatalf("Token() = %v; want an UnreachableError wrapping ErrUnavailable", err)
	}
	want := "cannot reach the vault at " + url + ": connection refused — check --vault-url"
	if !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "env-token-value") {
		t.Errorf("Token() = %q; want it to contain %q", err, want)
	}
	if _, err := s.ConnectWait(context.Background(), token.Key{Host: "dev.azure.com"}, 0, 0); !errors.As(err, &ue) {
		t.Errorf("ConnectWait() = %v; want an UnreachableError", err)
	}
}
