package vault

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"

	"github.com/azdo-sidecar/azdo-sidecar/secret"
)

// OAuthSettings are one host's OAuth ("Azure DevOps (Entra ID)") settings
// with the client secret opened, in memory only.
type OAuthSettings struct {
	Host         string
	IssuerURL    string
	ClientID     string
	ClientSecret secret.String
	RedirectURL  string // <public_url>/oauth/callback
}

// errOAuthUnavailable is returned while the Entra ID provider is missing.
var errOAuthUnavailable = errors.New("vault: OAuth refresh through Entra ID is not built in yet")

// NewProviders builds the vault's providers: for every host in pat (true:
// PATs enabled) and every host in oauth, with an Entra ID refresher for the
// latter. client is used for discovery and token requests.
func NewProviders(ctx context.Context, oauth map[string]OAuthSettings, pat map[string]bool, client *http.Client) ([]Provider, error) {
	hosts := map[string]bool{}
	for h := range oauth {
		hosts[h] = true
	}
	for h := range pat {
		hosts[h] = true
	}
	var out []Provider
	for h := range hosts {
		p := Provider{Host: h, PAT: pat[h]}
		if o, ok := oauth[h]; ok {
			r, err := newEntraRefresher(ctx, o, client)
			if err != nil {
				return nil, fmt.Errorf("provider %s: %w", h, err)
			}
			p.OAuth = r
		}
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Host < out[j].Host })
	return out, nil
}

func newEntraRefresher(ctx context.Context, o OAuthSettings, client *http.Client) (Refresher, error) {
	return nil, errOAuthUnavailable
}
