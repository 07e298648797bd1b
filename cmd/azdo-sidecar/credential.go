package main

import (
	"github.com/urfave/cli/v2"

	"github.com/azdo-sidecar/azdo-sidecar/config"
	"github.com/azdo-sidecar/azdo-sidecar/internal/cliapp"
)

// credentialCommand is `azdo-sidecar credential get|store|erase`, git's
// credential helper protocol. The flags belong to `credential` itself
// because git appends the operation after the helper's own arguments
// (`credential.helper="azdo-sidecar credential --socket S"` runs
// `azdo-sidecar credential --socket S get`). Placeholder: owned by the
// credential engineer.
func credentialCommand(e *cliapp.Env) *cli.Command {
	op := func(name, usage string) *cli.Command {
		return &cli.Command{Name: name, Usage: usage, Action: cliapp.NotImplemented}
	}
	return &cli.Command{
		Name:      "credential",
		Usage:     "git credential helper (credential.helper=azdo runs git-credential-azdo, the same thing)",
		ArgsUsage: "get|store|erase",
		Flags:     []cli.Flag{config.SocketFlag(), &cli.StringFlag{Name: config.FlagPATFile, Usage: "`FILE` holding a personal access token (standalone mode; or set " + config.EnvPAT + ")", TakesFile: true}, config.HostFlag()},
		Subcommands: []*cli.Command{
			op("get", "answer a credential request on stdin"),
			op("store", "accept a credential git stored (no-op)"),
			op("erase", "accept a credential git rejected (no-op)"),
		},
	}
}
