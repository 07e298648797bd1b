package main

import (
	"github.com/urfave/cli/v2"

	"github.com/azdo-sidecar/azdo-sidecar/config"
	"github.com/azdo-sidecar/azdo-sidecar/internal/cliapp"
)

// serveCommand is `azdo-vault serve`. Placeholder: owned by the vault
// engineer.
func serveCommand(e *cliapp.Env) *cli.Command {
	kf := config.KeyFileFlag()
	kf.Required = true
	return &cli.Command{
		Name:  "serve",
		Usage: "run the vault service; print a JSON ready line on stdout",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: config.ConfigFlag, Required: true, Usage: "vault config `FILE` (YAML)", TakesFile: true},
			kf,
			&cli.StringFlag{Name: config.FlagListen, Value: ":8443", Usage: "`ADDR` to listen on"},
			config.StoreFlag(),
			config.UpstreamCAFileFlag(),
			&cli.StringFlag{Name: "tls-cert", Usage: "serve HTTPS with this certificate `FILE` (PEM); without it, plain HTTP for a TLS-terminating ingress", TakesFile: true},
			&cli.StringFlag{Name: "tls-key", Usage: "private key `FILE` (PEM) of --tls-cert", TakesFile: true},
		},
		Action: func(c *cli.Context) error {
			if err := config.CheckPrivateFile(config.FlagKeyFile, c.String(config.FlagKeyFile)); err != nil {
				return err
			}
			if _, err := config.LoadVaultFile(c.String(config.ConfigFlag)); err != nil {
				return err
			}
			return cliapp.NotImplemented(c)
		},
	}
}
