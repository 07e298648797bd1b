package main

import (
	"github.com/urfave/cli/v2"

	"github.com/azdo-sidecar/azdo-sidecar/config"
	"github.com/azdo-sidecar/azdo-sidecar/internal/cliapp"
)

// verifyCommand is `azdo-vault verify --config FILE`. Placeholder: owned by
// the vault engineer.
func verifyCommand(e *cliapp.Env) *cli.Command {
	return &cli.Command{
		Name:  "verify",
		Usage: "check every provider of the config: discovery, token endpoint, client ID and secret",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: config.ConfigFlag, Required: true, Usage: "vault config `FILE` (YAML)", TakesFile: true},
			config.KeyFileFlag(),
			config.UpstreamCAFileFlag(),
		},
		Action: func(c *cli.Context) error {
			if _, err := config.LoadVaultFile(c.String(config.ConfigFlag)); err != nil {
				return err
			}
			return cliapp.NotImplemented(c)
		},
	}
}
