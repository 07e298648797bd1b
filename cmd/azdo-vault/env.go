package main

import (
	"time"

	"github.com/urfave/cli/v2"

	"github.com/azdo-sidecar/azdo-sidecar/config"
	"github.com/azdo-sidecar/azdo-sidecar/internal/cliapp"
)

// envCommand is `azdo-vault env create|revoke`. Placeholder: owned by the
// vault engineer.
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
					&cli.DurationFlag{Name: "ttl", Value: 30 * 24 * time.Hour, Usage: "lifetime of the environment token (`DURATION`)"},
					config.StoreFlag(),
				},
				Action: cliapp.NotImplemented,
			},
			{
				Name:      "revoke",
				Usage:     "revoke an environment's token",
				ArgsUsage: "ID",
				Flags:     []cli.Flag{config.StoreFlag()},
				Action:    cliapp.NotImplemented,
			},
		},
	}
}
