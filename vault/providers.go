package vault

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/azdo-sidecar/azdo-sidecar/secret"
	"github.com/azdo-sidecar/azdo-sidecar/vault/entra"
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

// EntraConfig returns the vault/entra configuration of o.
func (o OAuthSettings) EntraConfig(client *http.Client, now func() time.Time) entra.Config {
	return entra.Config{
		Host:         o.Host,
		IssuerURL:    o.IssuerURL,
		ClientID:     o.ClientID,
		ClientSecret: o.ClientSecret,
		RedirectURL:  o.RedirectURL,
		HTTPClient:   client,
		Now:          now,
	}
}

// NewProviders builds the vault's providers: one for every host in pat
// (true: PATs enabled) and in oauth, with an Entra ID refresher for the
// latter. An issuer that cannot be reached now (a transient failure) does
// not stop the vault: discovery is retried on the next refresh. Any other
// discovery failure is a configuration error and is returned.
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
			r := &EntraRefresher{Config: o.EntraConfig(client, nil)}
			if _, err := r.Provider(ctx); err != nil && entra.ClassOf(err) != entra.Transient {
				var ee *entra.Error
				if errors.As(err, &ee) {
					return nil, fmt.Errorf("provider %s: %s (%w)", h, ee.Advice(), err)
				}
				return nil, fmt.Errorf("provider %s: %w", h, err)
			}
			p.OAuth = r
		}
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Host < out[j].Host })
	return out, nil
}

// EntraRefresher is a Refresher over vault/entra: it discovers the issuer
// on first use (and again after a failed discovery) and classifies
// *entra.Error into *RefreshError.
type EntraRefresher struct {
	Config entra.Config

	mu sync.Mutex
	p  *entra.Provider
}

// Provider returns the discovered provider, discovering it if needed. The
// Connect pages use it too, so a host's issuer is discovered once per
// process.
func (r *EntraRefresher) Provider(ctx context.Context) (*entra.Provider, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.p != nil {
		return r.p, nil
	}
	p, err := entra.New(ctx, r.Config)
	if err != nil {
		return nil, err
	}
	r.p = p
	return p, nil
}

// Refresh implements Refresher.
func (r *EntraRefresher) Refresh(ctx context.Context, refresh secret.String) (Grant, error) {
	p, err := r.Provider(ctx)
	if err != nil {
		return Grant{}, fromEntra(err)
	}
	g, err := p.Refresh(ctx, refresh)
	if err != nil {
		return Grant{}, fromEntra(err)
	}
	return Grant{AccessToken: g.AccessToken, RefreshToken: g.RefreshToken, ExpiresAt: g.ExpiresAt}, nil
}

// fromEntra classifies an error of vault/entra.
func fromEntra(err error) error {
	var e *entra.Error
	if !errors.As(err, &e) {
		return &RefreshError{Class: Transient, Reason: "error", Err: err}
	}
	class := Transient
	switch e.Class {
	case entra.Permanent:
		class = Permanent
	case entra.Misconfigured:
		class = Misconfigured
	}
	return &RefreshError{Class: class, Reason: e.Reason(), RetryAfter: e.RetryAfter, Err: err}
}
