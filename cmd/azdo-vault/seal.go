package main

import (
	"github.com/urfave/cli/v2"

	"github.com/azdo-sidecar/azdo-sidecar/internal/cliapp"
)

// sealCommand is `azdo-vault seal --public-key B64`. Placeholder: owned by
// the vault engineer.
func sealCommand(e *cliapp.Env) *cli.Command {
	return &cli.Command{
		Name:  "seal",
		Usage: "read a secret on stdin and print it sealed to a runner's public key",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "public-key", Required: true, Usage: "the runner's public `KEY` (standard base64, from keygen)"},
		},
		Action: cliapp.NotImplemented,
	}
}
