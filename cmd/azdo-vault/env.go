package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/azdo-sidecar/azdo-sidecar/config"
	"github.com/azdo-sidecar/azdo-sidecar/internal/cliapp"
	"github.com/azdo-sidecar/azdo-sidecar/vault"
	"github.com/azdo-sidecar/azdo-sidecar/vault/store"
)

// envCommand is `azdo-vault env create|revoke`. Both work on the store
// directly, so they run beside a serving vault (SQLite waits on its busy
// timeout; the vault reads environments on every request).
func envCommand(e *cliapp.Env) *cli.Command {
	return &cli.Command{
		Name:  "env",
		Usage: "register or revoke environments",
		Subcommands: []*cli.Command{
			{
				Name:  "create",
				Usage: "register an environment and print its token once",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "owner", Required: true, Usage: "the `USER` whose credentials the environment gets"},
					&cli.DurationFlag{Name: "ttl", Value: 30 * 24 * time.Hour, Usage: "lifetime of the environment token (`DURATION`, 0: no expiry)"},
					&cli.BoolFlag{Name: "json", Usage: `print {"id":…,"token":…,"expires_at":…} instead of two lines`},
					config.StoreFlag(),
				},
				Action: func(c *cli.Context) error {
					return withStore(c, func(ctx context.Context, st store.Store) error {
						env, tok, err := vault.NewEnvironment(ctx, st, time.Now(), c.String("owner"), c.Duration("ttl"))
						if err != nil {
							return err
						}
						e.Log.Info("environment created", "env", env.ID, "owner", env.Owner)
						exp := ""
						if !env.ExpiresAt.IsZero() {
							exp = env.ExpiresAt.Format(time.RFC3339)
						}
						// stdout is the one place the token is shown.
						if c.Bool("json") {
							_, err = fmt.Fprintf(e.Stdout, "{\"id\":%q,\"token\":%q,\"expires_at\":%q}\n", env.ID, tok.Reveal(), exp)
							return err
						}
						_, err = fmt.Fprintf(e.Stdout, "id: %s\ntoken: %s\n", env.ID, tok.Reveal())
						return err
					})
				},
			},
			{
				Name:      "revoke",
				Usage:     "revoke an environment's token",
				ArgsUsage: "ID",
				Flags:     []cli.Flag{config.StoreFlag()},
				Action: func(c *cli.Context) error {
					if c.NArg() != 1 {
						return cliapp.UsageError{Err: errors.New("env revoke takes one environment ID, after the flags: env revoke [--store URL] ID")}
					}
					id := c.Args().First()
					return withStore(c, func(ctx context.Context, st store.Store) error {
						if err := st.RevokeEnvironment(ctx, id, time.Now()); errors.Is(err, store.ErrNotFound) {
							return fmt.Errorf("no environment %q", id)
						} else if err != nil {
							return err
						}
						e.Log.Info("environment revoked", "env", id)
						return nil
					})
				},
			},
		},
	}
}

// withStore opens --store, runs fn and closes it.
func withStore(c *cli.Context, fn func(context.Context, store.Store) error) error {
	st, err := store.Open(c.Context, c.String(config.FlagStore), time.Now)
	if err != nil {
		return err
	}
	defer st.Close()
	return fn(c.Context, st)
}
