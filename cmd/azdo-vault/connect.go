package main

import (
	"context"

	"github.com/azdo-sidecar/azdo-sidecar/vault/connect"
)

func init() { mounters = append(mounters, mountConnect) }

// mountConnect mounts the Connect and PAT pages (vault/connect) and makes
// the vault hand out their signed, single-use connect_url links.
func mountConnect(_ context.Context, d *serveDeps) error {
	h, err := connect.New(connect.Config{
		PublicURL: d.File.PublicURL,
		Keys:      d.Keys,
		Vault:     d.Vault,
		OAuth:     d.OAuth,
		PAT:       patHosts(d.File),
		Client:    d.Client,
		Logger:    d.Log,
	})
	if err != nil {
		return err
	}
	h.Register(d.Vault.Mux())
	d.Vault.SetLinker(h)
	return nil
}
