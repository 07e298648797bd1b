package main

import (
	"context"
	"net/http"

	"github.com/azdo-sidecar/azdo-sidecar/vault"
	"github.com/azdo-sidecar/azdo-sidecar/vault/connect"
	"github.com/azdo-sidecar/azdo-sidecar/vault/entra"
)

// mountConnect mounts the Connect and PAT pages (vault/connect) and makes
// the vault hand out their signed, single-use connect_url links, with their
// state in the vault's store.
func mountConnect(d *serveDeps, pages *connectSwitch) error {
	h, err := newConnectHandler(d)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	h.Register(mux)
	pages.cur.Store(mux)
	d.Vault.SetLinker(h)
	return nil
}

// newConnectHandler builds the Connect and PAT pages of d's settings.
func newConnectHandler(d *serveDeps) (*connect.Handler, error) {
	return connect.New(connect.Config{
		PublicURL:   d.File.PublicURL,
		Keys:        d.Keys,
		Vault:       d.Vault,
		OAuth:       d.OAuth,
		Disabled:    d.Disabled,
		PAT:         patHosts(d.File),
		VirtualDirs: virtualDirs(d.File),
		Client:      d.Client,
		Logger:      d.Log,
		NewProvider: sharedProvider(d),
		Owners: connect.OwnerCheck{
			Claim:        d.File.Identity.Claim,
			Owners:       d.File.Identity.Owners,
			InsecureSkip: d.File.Identity.InsecureSkipOwnerCheck,
		},
		// Link nonces and pending sign-ins live in the store, so that
		// replicas on one database need no sticky sessions.
		Nonces: connect.NewStoreNonces(d.Vault.Store()),
		Flows:  connect.NewStoreFlows(d.Vault.Store(), d.Keys),
	})
}

// sharedProvider makes the Connect pages use the issuer the vault's
// refresher already discovered for a host, instead of running OIDC
// discovery a second time on the first sign-in.
func sharedProvider(d *serveDeps) func(context.Context, vault.OAuthSettings) (connect.OAuthProvider, error) {
	return func(ctx context.Context, s vault.OAuthSettings) (connect.OAuthProvider, error) {
		for _, p := range d.Providers {
			if r, ok := p.OAuth.(*vault.EntraRefresher); ok && p.Host == vault.NormalizeHost(s.Host) {
				return r.Provider(ctx)
			}
		}
		return entra.New(ctx, s.EntraConfig(d.Client, nil))
	}
}
