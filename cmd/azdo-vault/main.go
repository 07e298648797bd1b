// Command azdo-vault runs on the runner: it holds the users' Azure DevOps
// credentials sealed at rest, refreshes Entra ID tokens and serves fresh
// tokens to environments. See README.md.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args, os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
