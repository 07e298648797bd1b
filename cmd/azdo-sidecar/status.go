package main

import (
	"github.com/urfave/cli/v2"

	"github.com/azdo-sidecar/azdo-sidecar/config"
	"github.com/azdo-sidecar/azdo-sidecar/internal/cliapp"
)

// statusCommand is `azdo-sidecar status`: what the running sidecar serves,
// never a secret. Placeholder: owned by the proxy engineer.
func statusCommand(e *cliapp.Env) *cli.Command {
	return &cli.Command{
		Name:   "status",
		Usage:  "show what the running sidecar serves (hosts, token kind, expiry, counters)",
		Flags:  []cli.Flag{config.SocketFlag(), config.StateDirFlag(), config.MetricsListenFlag()},
		Action: cliapp.NotImplemented,
	}
}
