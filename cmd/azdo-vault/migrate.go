package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/azdo-sidecar/azdo-sidecar/config"
	"github.com/azdo-sidecar/azdo-sidecar/internal/cliapp"
	"github.com/azdo-sidecar/azdo-sidecar/vault"
	"github.com/azdo-sidecar/azdo-sidecar/vault/store"
)

// flagBindLegacy is migrate's --bind-legacy.
const flagBindLegacy = "bind-legacy"

// migrateCommand is `azdo-vault migrate --bind-legacy`: the explicit,
// one-time binding of a store written before row binding existed.
func migrateCommand(e *cliapp.Env) *cli.Command {
	return &cli.Command{
		Name:  "migrate",
		Usage: "one-time operator changes to the store; --bind-legacy binds the rows written before row binding existed to the runner key (serve refuses a store with unbound rows)",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: flagBindLegacy, Usage: "bind every credential and environment that has no binding to the runner key, printing each one: run it once, with the vault stopped, on a store written by a version before row binding and nobody else could write"},
			config.StoreFlag(),
			requiredKeyFile(),
		},
		Action: func(c *cli.Context) error { return migrate(c, e) },
	}
}

// migrate binds the legacy rows of --store and prints each one it bound.
func migrate(c *cli.Context, e *cliapp.Env) error {
	if !c.Bool(flagBindLegacy) {
		return cliapp.UsageError{Err: errors.New("migrate: say what to do: --bind-legacy")}
	}
	kp, err := vault.LoadKeyFile(c.String(config.FlagKeyFile))
	if err != nil {
		return err
	}
	return withExistingStore(c, c.String(config.FlagStore), func(ctx context.Context, st store.Store) error {
		bound, err := vault.BindLegacy(ctx, st, kp)
		if err != nil {
			return err
		}
		for _, cr := range bound.Credentials {
			e.Log.Warn("bound a credential stored before row binding existed", "credential_id", cr.ID, "owner", cr.Owner, "host", cr.Host, "org", cr.Org, "kind", string(cr.Kind))
			if _, err := fmt.Fprintf(e.Stdout, "bound credential %d: owner %s, %s/%s, %s\n", cr.ID, cell(cr.Owner), cell(cr.Host), cell(cr.Org), cr.Kind); err != nil {
				return err
			}
		}
		for _, en := range bound.Environments {
			e.Log.Warn("bound an environment stored before row binding existed", "env", en.ID, "owner", en.Owner)
			if _, err := fmt.Fprintf(e.Stdout, "bound environment %s: owner %s\n", cell(en.ID), cell(en.Owner)); err != nil {
				return err
			}
		}
		_, err = fmt.Fprintf(e.Stderr, "bound %d credentials and %d environments to the runner key\n", len(bound.Credentials), len(bound.Environments))
		return err
	})
}
