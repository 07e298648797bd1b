package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/azdo-sidecar/azdo-sidecar/secret"
	"github.com/azdo-sidecar/azdo-sidecar/vault"
)

// TestSharedProviderDiscoversOnce: the Connect pages reuse the issuer the
// vault discovered at start-up instead of discovering it again.
func TestSharedProviderDiscoversOnce(t *testing.T) {
	var discoveries atomic.Int32
	var srv *httptest.Server
	srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/contoso.onmicrosoft.test/v2.0/.well-known/openid-configuration" {
			http.NotFound(w, r)
			return
		}
		discoveries.Add(1)
		base := srv.URL + "/contoso.onmicrosoft.test"
		json.NewEncoder(w).Encode(map[string]string{
			"issuer":                 base + "/v2.0",
			"authorization_endpoint": base + "/oauth2/v2.0/authorize",
			"token_endpoint":         base + "/oauth2/v2.0/token",
			"jwks_uri":               base + "/discovery/v2.0/keys",
		})
	}))
	defer srv.Close()
	o := vault.OAuthSettings{Host: "dev.azure.com", IssuerURL: srv.URL + "/contoso.onmicrosoft.test/v2.0", ClientID: "client",
		ClientSecret: secret.New("s"), RedirectURL: "https://runner.test/oauth/callback"}
	ctx := context.Background()
	providers, err := vault.NewProviders(ctx, map[string]vault.OAuthSettings{o.Host: o}, nil, srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	if n := discoveries.Load(); n != 1 {
		t.Fatalf("discoveries after NewProviders = %d; want 1", n)
	}
	newProv := sharedProvider(&serveDeps{Providers: providers, Client: srv.Client()})
	want, err := providers[0].OAuth.(*vault.EntraRefresher).Provider(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got, err := newProv(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if got != want || discoveries.Load() != 1 {
		t.Errorf("sharedProvider = %p after %d discoveries; want the refresher's %p after 1", got, discoveries.Load(), want)
	}
	// A host the vault has no refresher for is discovered on its own.
	other := o
	other.Host = "tfs.example.test"
	if _, err := newProv(ctx, other); err != nil || discoveries.Load() != 2 {
		t.Errorf("sharedProvider(other host) = %v after %d discoveries; want nil after 2", err, discoveries.Load())
	}
}
