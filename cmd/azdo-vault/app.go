package main

import (
	"context"
	"io"

	"github.com/urfave/cli/v2"

	"github.com/azdo-sidecar/azdo-sidecar/config"
	"github.com/azdo-sidecar/azdo-sidecar/internal/cliapp"
	"github.com/azdo-sidecar/azdo-sidecar/internal/version"
)

// commands lists the commands of azdo-vault, one file each.
func commands(e *cliapp.Env) []*cli.Command {
	return []*cli.Command{
		keygenCommand(e),
		sealCommand(e),
		verifyCommand(e),
		envCommand(e),
		credentialCommand(e),
		auditCommand(e),
		serveCommand(e),
		reloadCommand(e),
		migrateCommand(e),
	}
}

// newApp builds the azdo-vault app over e's streams.
func newApp(e *cliapp.Env) *cli.App {
	app := &cli.App{
		Name:     "azdo-vault",
		Usage:    "hold Azure DevOps credentials sealed on the runner and serve fresh tokens to environments",
		Version:  version.Get().String(),
		Flags:    cliapp.GlobalFlags(),
		Commands: commands(e),
	}
	// The --config file is the vault config (public_url, providers), which
	// may also set the flags' keys.
	cliapp.Prepare(app, e, config.Options{FileKeys: config.VaultFileKeys})
	// run passes the arguments through config.Reorder.
	config.MarkReordered(app)
	return app
}

// run runs azdo-vault with args (args[0] is the program name) and returns
// the exit code.
//
// Flags are accepted after the command and its arguments too (`serve
// --log-format json`, `env revoke ID --store URL`), where urfave/cli alone
// would refuse them.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	app := newApp(cliapp.NewEnv(stdin, stdout, stderr))
	return cliapp.Run(ctx, app, config.Reorder(app, args), stderr)
}
