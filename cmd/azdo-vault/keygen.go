package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/azdo-sidecar/azdo-sidecar/config"
	"github.com/azdo-sidecar/azdo-sidecar/internal/cliapp"
	"github.com/azdo-sidecar/azdo-sidecar/vault"
)

// keygenCommand is `azdo-vault keygen --key-file PATH`: it writes the
// runner's private key (0600, never over an existing file) and prints the
// public key, which administrators seal client secrets to.
func keygenCommand(e *cliapp.Env) *cli.Command {
	kf := config.KeyFileFlag()
	kf.Required = true
	return &cli.Command{
		Name:  "keygen",
		Usage: "write the runner's private key (0600) and print its public key (base64)",
		Flags: []cli.Flag{kf},
		Action: func(c *cli.Context) error {
			kp, err := vault.WriteKeyFile(c.String(config.FlagKeyFile))
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(e.Stdout, kp.Public.String())
			return err
		},
	}
}
