package main

import (
	"github.com/urfave/cli/v2"

	"github.com/azdo-sidecar/azdo-sidecar/config"
	"github.com/azdo-sidecar/azdo-sidecar/internal/cliapp"
)

// cloneCommand is `azdo-sidecar clone URL [DIR]`, a go-git clone of any
// Azure DevOps repository, branch, commit, tag, pull-request or file URL.
// Placeholder: owned by the URL/clone engineer.
func cloneCommand(e *cliapp.Env) *cli.Command {
	flags := []cli.Flag{
		&cli.IntFlag{Name: "depth", Usage: "shallow clone with `N` commits of history (0: full)"},
		&cli.BoolFlag{Name: "recurse-submodules", Usage: "clone submodules too"},
	}
	flags = append(flags, config.TokenSourceFlags()...)
	flags = append(flags, config.SocketFlag(), config.HostFlag(), config.ResolveFlag(), config.UpstreamCAFileFlag(), config.UpstreamProxyFlag())
	return &cli.Command{
		Name:      "clone",
		Usage:     "clone an Azure DevOps repository (any clone, web or SSH URL); progress on stderr",
		ArgsUsage: "URL [DIR]",
		Flags:     flags,
		Action:    cliapp.NotImplemented,
	}
}
