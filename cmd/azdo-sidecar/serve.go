package main

import (
	"github.com/urfave/cli/v2"

	"github.com/azdo-sidecar/azdo-sidecar/config"
	"github.com/azdo-sidecar/azdo-sidecar/internal/cliapp"
)

// serveCommand is `azdo-sidecar serve`: the proxy, the credential socket and
// the metrics endpoint. Placeholder: owned by the proxy engineer.
func serveCommand(e *cliapp.Env) *cli.Command {
	flags := []cli.Flag{config.ListenFlag(), config.SocketFlag(), config.StateDirFlag()}
	flags = append(flags, config.TokenSourceFlags()...)
	flags = append(flags,
		config.HostFlag(),
		config.ResolveFlag(),
		config.UpstreamCAFileFlag(),
		config.UpstreamProxyFlag(),
		config.MetricsListenFlag(),
		&cli.BoolFlag{Name: "insecure-listen-any", Usage: "allow --listen and --metrics-listen on a non-loopback address (anyone who reaches the proxy gets your Azure DevOps access)"},
		&cli.DurationFlag{Name: "refresh-margin", Value: config.DefaultRefreshMargin, Usage: "renew a token this `DURATION` before it expires"},
	)
	return &cli.Command{
		Name:  "serve",
		Usage: "run the HTTPS proxy and the credential socket; print a JSON ready line on stdout",
		Flags: flags,
		Action: func(c *cli.Context) error {
			ts := config.TokenSourceFrom(c)
			if err := ts.Validate(); err != nil {
				return err
			}
			if _, err := config.Hosts(c); err != nil {
				return err
			}
			if _, err := config.Resolves(c); err != nil {
				return err
			}
			return cliapp.NotImplemented(c)
		},
	}
}
