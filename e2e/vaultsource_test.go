package e2e

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/azdo-sidecar/azdo-sidecar/e2e/entraemu"
	"github.com/azdo-sidecar/azdo-sidecar/secret"
	"github.com/azdo-sidecar/azdo-sidecar/token"
	"github.com/azdo-sidecar/azdo-sidecar/token/vaultsource"
	"github.com/azdo-sidecar/azdo-sidecar/vault"
	"github.com/azdo-sidecar/azdo-sidecar/vault/store"
)

// newVaultSource returns the sidecar's vault client for envTok against the
// running vault of w.
func newVaultSource(t *testing.T, w *vaultWorld, envTok string) *vaultsource.Source {
	t.Helper()
	src, err := vaultsource.New(vaultsource.Options{
		URL:      "http://" + w.proc.addr, // loopback: plain http allowed
		EnvToken: secret.New(envTok),
		MinValid: token.DefaultMargin,
		Timeout:  30 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	return src
}

// TestVaultSourceAgainstVault runs token/vaultsource against the real
// azdo-vault binary: not connected (404 → ConnectError), a sealed Entra
// token opened with the per-process key, a PAT, a revoked grant (409 →
// reconnect) and a bad environment token (401 → ErrUnauthorized).
func TestVaultSourceAgainstVault(t *testing.T) {
	w := newVaultWorld(t, entraemu.Config{})
	const pat = "e2e-vaultsource-pat-0123456789abcdefghijklmnopqrs"
	w.put(vault.Credential{Owner: "pat-user", Host: vaultHost, Org: "contoso", Kind: store.PAT, Secret: secret.New(pat)})
	w.start()
	_, envOAuth := w.envCreate(vaultUser, time.Hour)
	_, envPAT := w.envCreate("pat-user", time.Hour)
	ctx := context.Background()
	key := token.Key{Host: vaultHost, Org: "contoso"}
	oauth := newVaultSource(t, w, envOAuth)

	_, err := oauth.Token(ctx, key)
	var ce *token.ConnectError
	if !errors.As(err, &ce) || ce.Reconnect || !strings.Contains(ce.ConnectURL, "/connect?") {
		t.Fatalf("Token before connecting: err = %v; want *ConnectError with a connect URL", err)
	}

	w.connect(vaultUser)
	tok, err := oauth.Token(ctx, key)
	if err != nil {
		t.Fatalf("Token after connecting: %v", err)
	}
	if tok.Kind != token.Bearer || !tok.ExpiresAt.After(time.Now()) {
		t.Fatalf("Token after connecting = %v; want a bearer token valid now", tok)
	}
	if sub, err := w.entra.VerifyAccessToken(tok.Secret.Reveal()); err != nil || sub != vaultUser {
		t.Fatalf("VerifyAccessToken(opened token) = %q, %v; want %s", sub, err, vaultUser)
	}

	ptok, err := newVaultSource(t, w, envPAT).Token(ctx, key)
	if err != nil || ptok.Kind != token.Basic || ptok.Secret.Reveal() != pat || ptok.User() == pat {
		t.Fatalf("PAT Token = %v, %v; want the basic PAT with a non-secret user name", ptok, err)
	}

	if _, err := newVaultSource(t, w, vault.EnvTokenPrefix+strings.Repeat("A", 43)).Token(ctx, key); !errors.Is(err, token.ErrUnauthorized) {
		t.Fatalf("Token with a wrong environment token: err = %v; want ErrUnauthorized", err)
	}

	// A cache in front: 200 concurrent callers on a cold cache, one fetch.
	cache := token.NewCache(newVaultSource(t, w, envOAuth), token.CacheOptions{})
	defer cache.Close()
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := cache.Token(ctx, token.Key{Host: vaultHost, Org: "fabrikam"})
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("cached Token: %v", err)
		}
	}
	if s := cache.Stats(); s.Fetches != 1 {
		t.Errorf("cache fetches for 200 concurrent callers = %d; want 1", s.Fetches)
	}

	if err := w.entra.RevokeUser(vaultUser); err != nil {
		t.Fatal(err)
	}
	// The vault serves the access token it holds in memory for the first
	// half of its life; a restart makes it refresh, and learn of the
	// revocation.
	w.proc.stop(t)
	w.start()
	_, err = newVaultSource(t, w, envOAuth).Token(ctx, key)
	if !errors.As(err, &ce) || !ce.Reconnect || ce.ConnectURL == "" {
		t.Fatalf("Token after revocation: err = %v; want *ConnectError with Reconnect and a URL", err)
	}
	for _, s := range []string{envOAuth, envPAT, pat, tok.Secret.Reveal()} {
		if strings.Contains(err.Error(), s) {
			t.Fatalf("error %q holds a secret", err)
		}
	}
}
