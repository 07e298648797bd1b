package vault

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/azdo-sidecar/azdo-sidecar/secret"
	"github.com/azdo-sidecar/azdo-sidecar/vault/store"
	"github.com/azdo-sidecar/azdo-sidecar/vaultapi"
)

// TestDeletedCredentialIsNotServed: an administrator's `azdo-vault
// credential delete` (another process on the store) takes effect at the
// next request, even while the vault holds the credential's access token in
// memory, and whether it lands before or during a refresh.
func TestDeletedCredentialIsNotServed(t *testing.T) {
	tests := []struct {
		name string
		// duringRefresh deletes the credential while its refresh is at
		// the identity provider; otherwise it is deleted after a first
		// token was served and cached.
		duringRefresh bool
	}{
		{name: "cached access token"},
		{name: "deleted during the refresh", duringRefresh: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			c := h.put(Credential{Host: host, Kind: store.OAuth, Secret: secret.New(initialRT)})
			// The CLI opens a handle of its own on the same file.
			admin, err := store.OpenSQLite(context.Background(), h.dbPath, h.clock.Now)
			if err != nil {
				t.Fatal(err)
			}
			defer admin.Close()
			del := func(ctx context.Context) {
				if got, err := admin.DeleteCredentials(ctx, defaultUser, ""); err != nil || len(got) != 1 || got[0].ID != c.ID {
					t.Errorf("DeleteCredentials = %+v, %v; want credential %d", got, err, c.ID)
				}
			}
			if tt.duringRefresh {
				h.v.setProvider(Provider{Host: host, OAuth: &meddlingRefresher{fakeEntra: h.entra, meddle: del}, PAT: true})
			} else {
				if a := h.token("contoso", 300); a.code != 200 || a.ok.Token != "at-1-secretvalue" {
					t.Fatalf("token before the delete = %d %s; want 200 at-1", a.code, a.raw)
				}
				del(context.Background())
			}
			a := h.token("contoso", 300)
			if a.code != http.StatusNotFound || a.err.Error != vaultapi.ErrNotConnected || !strings.HasPrefix(a.err.ConnectURL, publicURL+"/connect?") {
				t.Errorf("token after the delete = %d %s; want 404 not_connected with a connect_url", a.code, a.raw)
			}
			if strings.Contains(a.raw, "at-1-secretvalue") {
				t.Errorf("the deleted credential's access token was served: %s", a.raw)
			}
			if n := h.entra.calls.Load(); n != 1 {
				t.Errorf("refreshes = %d; want 1 (none for a deleted credential)", n)
			}
		})
	}
}
