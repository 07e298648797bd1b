// Command azdo-sidecar makes Azure DevOps git work inside a cloud
// development environment: an HTTPS proxy that injects credentials, a git
// credential helper, git setup and clone. See README.md.
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
