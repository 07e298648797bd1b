package main

import (
	"github.com/urfave/cli/v2"

	"github.com/azdo-sidecar/azdo-sidecar/config"
	"github.com/azdo-sidecar/azdo-sidecar/internal/cliapp"
)

// setupCommand is `azdo-sidecar setup`: URL-scoped git configuration for
// every Azure DevOps host. Placeholder: owned by the token/setup engineer.
func setupCommand(e *cliapp.Env) *cli.Command {
	return &cli.Command{
		Name:  "setup",
		Usage: "write the git configuration that sends Azure DevOps URLs through the sidecar",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "global", Usage: "write the user's global git config (default)"},
			&cli.BoolFlag{Name: "system", Usage: "write the system git config"},
			&cli.StringFlag{Name: "file", Usage: "write the git config `FILE`", TakesFile: true},
			&cli.BoolFlag{Name: "undo", Usage: "remove exactly what setup wrote"},
			&cli.StringFlag{Name: "mode", Value: "both", Usage: "what to configure: proxy, helper or both (`MODE`)"},
			config.ListenFlag(),
			config.SocketFlag(),
			config.StateDirFlag(),
			config.HostFlag(),
		},
		Action: cliapp.NotImplemented,
	}
}
