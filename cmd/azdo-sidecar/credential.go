package main

import (
	"context"

	"github.com/urfave/cli/v2"

	"github.com/azdo-sidecar/azdo-sidecar/azdo"
	"github.com/azdo-sidecar/azdo-sidecar/config"
	"github.com/azdo-sidecar/azdo-sidecar/credential"
	"github.com/azdo-sidecar/azdo-sidecar/internal/cliapp"
	"github.com/azdo-sidecar/azdo-sidecar/token"
)

// credentialCommand is `azdo-sidecar credential get|store|erase`, git's
// credential helper protocol; git-credential-azdo is the same helper as a
// small binary of its own. The flags belong to `credential` itself because
// git appends the operation after the helper's own arguments
// (`credential.helper="azdo-sidecar credential --socket S"` runs
// `azdo-sidecar credential --socket S get`).
//
// With a PAT (--pat-file or AZDO_PAT) it answers in-process; otherwise it
// asks the running sidecar through --socket, in one round trip.
func credentialCommand(e *cliapp.Env) *cli.Command {
	op := func(name, usage string) *cli.Command {
		return &cli.Command{Name: name, Usage: usage, Action: func(c *cli.Context) error {
			return runCredential(c, e, name)
		}}
	}
	return &cli.Command{
		Name:      "credential",
		Usage:     "git credential helper (credential.helper=azdo runs git-credential-azdo, the same thing)",
		ArgsUsage: "get|store|erase",
		Flags:     []cli.Flag{config.SocketFlag(), &cli.StringFlag{Name: config.FlagPATFile, Usage: "`FILE` holding a personal access token (standalone mode; or set " + config.EnvPAT + ")", TakesFile: true}, config.HostFlag()},
		Subcommands: []*cli.Command{
			op(credential.ActionGet, "answer a credential request on stdin"),
			// store: the vault owns credentials; git must not push a token
			// back anywhere. erase: forwarded so the sidecar drops it.
			op(credential.ActionStore, "accept a credential git stored (no-op: the vault owns credentials)"),
			op(credential.ActionErase, "tell the sidecar git rejected a credential, so it fetches a fresh one"),
		},
		// git's protocol: helpers ignore actions they do not know.
		Action: func(*cli.Context) error { return nil },
	}
}

// runCredential runs one helper action and maps its exit code.
func runCredential(c *cli.Context, e *cliapp.Env, action string) error {
	selfHosted, err := config.Hosts(c)
	if err != nil {
		return cliapp.UsageError{Err: err}
	}
	hosts, err := azdo.NewHosts(selfHosted)
	if err != nil {
		return cliapp.UsageError{Err: err}
	}
	ts := config.TokenSourceFrom(c)
	if err := ts.Validate(); err != nil {
		return cliapp.UsageError{Err: err}
	}
	h := &credential.Helper{Stdin: e.Stdin, Stdout: e.Stdout, Stderr: e.Stderr, Hosts: hosts, Name: "azdo-sidecar"}
	if ts.Mode() == config.ModePAT {
		// The PAT is read only for a request that needs it.
		h.Local = credential.NewTokenHandler(token.SourceFunc(func(ctx context.Context, key token.Key) (token.Token, error) {
			pat, err := ts.ReadPAT()
			if err != nil {
				return token.Token{}, err
			}
			return token.NewStatic(pat).Token(ctx, key)
		}), hosts)
	} else {
		h.Client = &credential.Client{Socket: config.SocketPath(c)}
	}
	if code := h.Run(c.Context, action); code != 0 {
		// Helper already printed its one line.
		return cli.Exit("", code)
	}
	return nil
}
