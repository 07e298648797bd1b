package main

import (
	"github.com/urfave/cli/v2"

	"github.com/azdo-sidecar/azdo-sidecar/config"
	"github.com/azdo-sidecar/azdo-sidecar/internal/cliapp"
	"github.com/azdo-sidecar/azdo-sidecar/sidecar"
)

// serveCommand is `azdo-sidecar serve`: the proxy, the credential socket and
// the metrics endpoint, until SIGTERM.
func serveCommand(e *cliapp.Env) *cli.Command {
	flags := []cli.Flag{config.ListenFlag(), config.SocketFlag(), config.StateDirFlag()}
	flags = append(flags, config.TokenSourceFlags()...)
	flags = append(flags,
		config.HostFlag(),
		config.ResolveFlag(),
		config.UpstreamCAFileFlag(),
		config.UpstreamProxyFlag(),
		config.MetricsListenFlag(),
		&cli.IntSliceFlag{Name: "tunnel-port", Usage: "`PORT` blind tunnels (CONNECT to hosts that are not Azure DevOps) may go to, besides 443 and the ports of --host entries (repeatable)"},
		&cli.StringSliceFlag{Name: "plain-http-host", Usage: "`HOST[:PORT]` plain-http requests are forwarded to (repeatable); none by default"},
		&cli.BoolFlag{Name: "proxy-only", Usage: "never hand a token to the environment: the credential socket answers git without a password, and git reaches Azure DevOps through the proxy only (the environment's policy can also ask for this; this flag can only tighten)"},
		&cli.IntSliceFlag{Name: "proxy-client-uid", Usage: "`UID`, besides the sidecar's own, whose connections may use the proxy, still with the credential in proxy_url_file: the development user when the sidecar runs as a user of its own (proxy-only deployments)"},
		&cli.BoolFlag{Name: "insecure-no-proxy-auth", Usage: "let clients use the proxy without the credential in its proxy_url_file (on Linux a client of another uid is still refused)"},
		&cli.BoolFlag{Name: "insecure-listen-any", Usage: "allow --listen and --metrics-listen on a non-loopback address (anyone who reaches the proxy gets your Azure DevOps access)"},
		&cli.DurationFlag{Name: "refresh-margin", Value: config.DefaultRefreshMargin, Usage: "renew a token this `DURATION` before it expires"},
		&cli.DurationFlag{Name: "drain-timeout", Value: sidecar.DefaultDrainTimeout, Usage: "on SIGTERM, wait at most `DURATION` for requests in flight and open tunnels"},
	)
	return &cli.Command{
		Name:  "serve",
		Usage: "run the HTTPS proxy and the credential socket; print a JSON ready line on stdout",
		Flags: flags,
		Action: func(c *cli.Context) error {
			opts, err := serveOptions(c, e)
			if err != nil {
				return err
			}
			return sidecar.Run(c.Context, opts, e.Stdout)
		},
	}
}

// serveOptions turns the settings of c into sidecar.Options, reading the
// secret files once.
func serveOptions(c *cli.Context, e *cliapp.Env) (sidecar.Options, error) {
	ts := config.TokenSourceFrom(c)
	if err := ts.Validate(); err != nil {
		return sidecar.Options{}, err
	}
	hosts, err := config.Hosts(c)
	if err != nil {
		return sidecar.Options{}, err
	}
	if _, err := config.Resolves(c); err != nil {
		return sidecar.Options{}, err
	}
	opts := sidecar.Options{
		Listen:            c.String(config.FlagListen),
		MetricsListen:     c.String(config.FlagMetricsListen),
		Socket:            config.SocketPath(c),
		StateDir:          config.StateDir(c),
		InsecureListenAny: c.Bool("insecure-listen-any"),
		// Logged as a WARN by the proxy at start.
		InsecureNoProxyAuth: c.Bool("insecure-no-proxy-auth"),
		ProxyOnly:           c.Bool("proxy-only"),
		ProxyClientUIDs:     c.IntSlice("proxy-client-uid"),
		SelfHosted:          hosts,
		TunnelPorts:         c.IntSlice("tunnel-port"),
		PlainHTTPHosts:      c.StringSlice("plain-http-host"),
		Resolve:             c.StringSlice(config.FlagResolve),
		UpstreamCAFile:      c.String(config.FlagUpstreamCAFile),
		UpstreamProxy:       c.String(config.FlagUpstreamProxy),
		RefreshMargin:       c.Duration("refresh-margin"),
		DrainTimeout:        c.Duration("drain-timeout"),
		Logger:              e.Log,
	}
	switch ts.Mode() {
	case config.ModePAT:
		opts.Mode = sidecar.ModePAT
		if opts.PAT, err = ts.ReadPAT(); err != nil {
			return sidecar.Options{}, err
		}
	case config.ModeVault:
		opts.Mode = sidecar.ModeVault
		opts.VaultURL, opts.VaultCAFile = ts.VaultURL, ts.VaultCAFile
		if opts.EnvToken, err = ts.ReadEnvToken(); err != nil {
			return sidecar.Options{}, err
		}
	default:
		opts.Mode = sidecar.ModeNone
		e.Log.Warn("serve: no token source configured; Azure DevOps requests will be answered with an explanation",
			"want", "--pat-file or AZDO_PAT (standalone), or --vault-url and --env-token-file (vault)")
	}
	return opts, nil
}
