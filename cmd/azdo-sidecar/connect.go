package main

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/azdo-sidecar/azdo-sidecar/azdo"
	"github.com/azdo-sidecar/azdo-sidecar/config"
	"github.com/azdo-sidecar/azdo-sidecar/connectwait"
	"github.com/azdo-sidecar/azdo-sidecar/internal/cliapp"
	"github.com/azdo-sidecar/azdo-sidecar/token"
	"github.com/azdo-sidecar/azdo-sidecar/token/vaultsource"
)

// flagWaitConnect is clone's --wait-connect.
const flagWaitConnect = "wait-connect"

// connectCommand is `azdo-sidecar connect [URL] --wait DURATION`: what
// clone --wait-connect does before cloning, for environment scripts that
// clone with plain git.
func connectCommand(e *cliapp.Env) *cli.Command {
	flags := []cli.Flag{
		&cli.DurationFlag{Name: "wait", Usage: "wait up to `DURATION` (e.g. 15m) for the user to connect; 0: only say whether they are"},
	}
	flags = append(flags, config.TokenSourceFlags()...)
	flags = append(flags, config.HostFlag())
	return &cli.Command{
		Name:  "connect",
		Usage: "make sure the environment's owner has connected Azure DevOps, waiting for them with --wait",
		Description: "URL is any Azure DevOps URL (repository or organization; default https://dev.azure.com).\n" +
			"Not connected: the connect links are printed on stderr, and with --wait the command returns\n" +
			"as soon as the user has connected. Exit 1 when they have not (timeout, or a failed link).",
		ArgsUsage: "[URL]",
		Flags:     flags,
		Action: func(c *cli.Context) error {
			if c.NArg() > 1 {
				return cliapp.UsageError{Err: errors.New("connect takes at most one URL")}
			}
			key, err := connectKey(c, c.Args().First())
			if err != nil {
				return err
			}
			src, err := waitSource(c, "connect")
			if err != nil {
				return err
			}
			wait := c.Duration("wait")
			if wait < 0 {
				return cliapp.UsageError{Err: fmt.Errorf("--wait %s: want 0 or more, e.g. 15m", wait)}
			}
			if wait == 0 {
				// Only say: links when not connected, exit 1.
				r, err := src.ConnectWait(c.Context, key, 0, 0)
				if err != nil {
					return err
				}
				if r.State == "connected" {
					fmt.Fprintf(e.Stderr, "Azure DevOps is connected for %s\n", key)
					return nil
				}
				fmt.Fprintf(e.Stderr, "Azure DevOps is not connected for %s.\n", key)
				if r.ConnectURL != "" {
					fmt.Fprintf(e.Stderr, "  Open this link to connect:       %s\n", r.ConnectURL)
				}
				if r.PATURL != "" {
					fmt.Fprintf(e.Stderr, "  or use a personal access token:  %s\n", r.PATURL)
				}
				return cli.Exit("", 1)
			}
			res, err := connectwait.Wait(c.Context, src, key, connectwait.Options{Timeout: wait, Out: e.Stderr})
			if err != nil {
				return err
			}
			if !res.Waited {
				fmt.Fprintf(e.Stderr, "Azure DevOps is connected for %s\n", key)
			}
			return nil
		},
	}
}

// waitSource is the vault client of a wait: it needs vault mode.
func waitSource(c *cli.Context, what string) (*vaultsource.Source, error) {
	ts := config.TokenSourceFrom(c)
	if err := ts.Validate(); err != nil {
		return nil, err
	}
	if ts.Mode() != config.ModeVault {
		return nil, cliapp.UsageError{Err: fmt.Errorf("%s needs the runner's vault: pass --%s and --%s (or set %s and %s)",
			what, config.FlagVaultURL, config.FlagEnvTokenFile, config.EnvName(config.FlagVaultURL), config.EnvName(config.FlagEnvTokenFile))}
	}
	envTok, err := ts.ReadEnvToken()
	if err != nil {
		return nil, err
	}
	return vaultsource.New(vaultsource.Options{URL: ts.VaultURL, EnvToken: envTok, CAFile: ts.VaultCAFile, MinValid: cloneMinValid})
}

// connectKey is the host and organization of raw: a repository URL (any
// form clone takes), or https://HOST[/ORG]; "" is dev.azure.com.
func connectKey(c *cli.Context, raw string) (token.Key, error) {
	if raw == "" {
		return token.Key{Host: azdo.ServicesHost}, nil
	}
	selfHosted, err := config.Hosts(c)
	if err != nil {
		return token.Key{}, err
	}
	hosts, err := azdo.NewHosts(selfHosted)
	if err != nil {
		return token.Key{}, err
	}
	if t, err := azdo.Parse(raw, hosts); err == nil {
		return token.Key{Host: t.Repo.Host, Org: t.Repo.CredentialOrg()}, nil
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "https" || u.Host == "" || !hosts.Match(u.Host) {
		return token.Key{}, cliapp.UsageError{Err: fmt.Errorf("%q is not an Azure DevOps URL (want e.g. https://dev.azure.com/ORG or a repository URL)", raw)}
	}
	host := strings.TrimSuffix(strings.ToLower(u.Host), ":443")
	return token.Key{Host: host, Org: strings.ToLower(azdo.OrgFor(host, u.Path, ""))}, nil
}

// waitBeforeClone runs clone's --wait-connect for the repository of c's URL.
func waitBeforeClone(c *cli.Context, e *cliapp.Env, wait time.Duration) error {
	key, err := connectKey(c, c.Args().First())
	if err != nil {
		return err
	}
	src, err := waitSource(c, "--"+flagWaitConnect)
	if err != nil {
		return err
	}
	_, err = connectwait.Wait(c.Context, src, key, connectwait.Options{Timeout: wait, Out: e.Stderr})
	return err
}
