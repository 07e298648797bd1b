package main

import (
	"context"
	"io"

	"github.com/urfave/cli/v2"

	"github.com/azdo-sidecar/azdo-sidecar/config"
	"github.com/azdo-sidecar/azdo-sidecar/internal/cliapp"
	"github.com/azdo-sidecar/azdo-sidecar/internal/version"
)

// commands lists the commands of azdo-sidecar, one file each.
func commands(e *cliapp.Env) []*cli.Command {
	return []*cli.Command{
		serveCommand(e),
		credentialCommand(e),
		setupCommand(e),
		cloneCommand(e),
		connectCommand(e),
		statusCommand(e),
	}
}

// newApp builds the azdo-sidecar app over e's streams.
func newApp(e *cliapp.Env) *cli.App {
	app := &cli.App{
		Name:     "azdo-sidecar",
		Usage:    "make Azure DevOps git work in cloud development environments",
		Version:  version.Get().String(),
		Flags:    cliapp.GlobalFlags(),
		Commands: commands(e),
	}
	cliapp.Prepare(app, e, config.Options{})
	// run passes the arguments through config.Reorder.
	config.MarkReordered(app)
	return app
}

// run runs azdo-sidecar with args (args[0] is the program name) and returns
// the exit code.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	app := newApp(cliapp.NewEnv(stdin, stdout, stderr))
	// Flags are accepted after the command and its arguments too
	// (`serve --log-format json`, `credential get --socket S`,
	// `clone URL --depth 1`), where urfave/cli alone would refuse them.
	return cliapp.Run(ctx, app, config.Reorder(app, args), stderr)
}
