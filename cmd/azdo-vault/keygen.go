package main

import (
	"github.com/urfave/cli/v2"

	"github.com/azdo-sidecar/azdo-sidecar/config"
	"github.com/azdo-sidecar/azdo-sidecar/internal/cliapp"
)

// keygenCommand is `azdo-vault keygen --key-file PATH`. Placeholder: owned
// by the vault engineer.
func keygenCommand(e *cliapp.Env) *cli.Command {
	kf := config.KeyFileFlag()
	kf.Required = true
	return &cli.Command{
		Name:   "keygen",
		Usage:  "write the runner's private key (0600) and print its public key (base64)",
		Flags:  []cli.Flag{kf},
		Action: cliapp.NotImplemented,
	}
}
