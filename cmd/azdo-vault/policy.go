package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/azdo-sidecar/azdo-sidecar/config"
	"github.com/azdo-sidecar/azdo-sidecar/internal/cliapp"
	"github.com/azdo-sidecar/azdo-sidecar/vault"
	"github.com/azdo-sidecar/azdo-sidecar/vault/store"
	"github.com/azdo-sidecar/azdo-sidecar/vaultapi"
)

// Policy flags of env create and env update.
const (
	flagAllowRepo    = "allow-repo"
	flagReadOnlyRepo = "read-only-repo"
	flagPushRef      = "push-ref"
	flagProxyOnly    = "proxy-only"
	flagClearPolicy  = "clear-policy"
)

// policyFlags are the flags that set an environment's policy.
func policyFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringSliceFlag{Name: flagAllowRepo, Usage: "the environment may use only repositories matching `HOST/ORG/PROJECT/REPO` (\"*\" for a whole segment; self-hosted: HOST[/VDIR]/COLLECTION/PROJECT/REPO); none: every repository the owner reaches"},
		&cli.StringSliceFlag{Name: flagReadOnlyRepo, Usage: "repositories matching `PATTERN` may be fetched, never pushed (same form as --allow-repo)"},
		&cli.StringSliceFlag{Name: flagPushRef, Usage: "a push may create, update or delete only refs matching `REFGLOB` (e.g. 'refs/heads/agent/*'); none: any ref"},
		&cli.BoolFlag{Name: flagProxyOnly, Usage: "the environment never receives a token: only the sidecar's proxy uses it (--proxy-only=false turns it off in env update)"},
	}
}

// patterns returns the values of a repeatable flag, without empty ones:
// `env update ID --push-ref ”` clears that part of the policy.
func patterns(c *cli.Context, name string) []string {
	var out []string
	for _, s := range c.StringSlice(name) {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// policyFromFlags returns base with every policy flag given on c applied:
// a repeatable flag replaces its list, --proxy-only sets or clears.
func policyFromFlags(c *cli.Context, base store.Policy) store.Policy {
	p := base
	if c.IsSet(flagAllowRepo) {
		p.AllowRepos = patterns(c, flagAllowRepo)
	}
	if c.IsSet(flagReadOnlyRepo) {
		p.ReadOnlyRepos = patterns(c, flagReadOnlyRepo)
	}
	if c.IsSet(flagPushRef) {
		p.PushRefs = patterns(c, flagPushRef)
	}
	if c.IsSet(flagProxyOnly) {
		p.ProxyOnly = c.Bool(flagProxyOnly)
	}
	return p
}

// anyPolicyFlag reports whether c was given a policy flag.
func anyPolicyFlag(c *cli.Context) bool {
	return slices.ContainsFunc([]string{flagAllowRepo, flagReadOnlyRepo, flagPushRef, flagProxyOnly, flagClearPolicy}, c.IsSet)
}

// envUpdate changes an environment's policy: each policy flag given
// replaces that part, --clear-policy starts from none. It needs the
// runner key, which binds the policy to its row. The vault reads the
// policy on every token request, so the change holds from the
// environment's next request, on every replica.
func envUpdate(c *cli.Context, e *cliapp.Env) error {
	if c.Args().Len() != 1 {
		return cliapp.UsageError{Err: errors.New("env update takes one environment ID: env update ID [--allow-repo …] [--read-only-repo …] [--push-ref …] [--proxy-only] [--clear-policy]")}
	}
	if !anyPolicyFlag(c) {
		return cliapp.UsageError{Err: errors.New("env update: nothing to change; give --allow-repo, --read-only-repo, --push-ref, --proxy-only or --clear-policy")}
	}
	id := c.Args().First()
	if !envIDShape.MatchString(id) {
		// Not echoed: it may be a token pasted by mistake.
		return cliapp.UsageError{Err: errors.New("env update: not an environment ID (IDs look like env_0123456789abcdef; env create and env list print them)")}
	}
	// Check the flags before the store: a typo is a usage error.
	if _, err := vault.ValidatePolicy(policyFromFlags(c, store.Policy{})); err != nil {
		return cliapp.UsageError{Err: err}
	}
	kp, err := vault.LoadKeyFile(c.String(config.FlagKeyFile))
	if err != nil {
		return err
	}
	return withExistingStore(c, c.String(config.FlagStore), func(ctx context.Context, st store.Store) error {
		// The policy is bound to the runner key with its row (see
		// vault.Binding): only a holder of the key may change it.
		b, err := vault.Bind(ctx, st, kp, e.Log)
		if err != nil {
			return err
		}
		// The flags apply to the policy as stored when the update runs, in
		// its transaction: a concurrent update is not lost.
		env, err := vault.UpdatePolicy(ctx, st, b, id, func(cur store.Policy) store.Policy {
			if c.Bool(flagClearPolicy) {
				cur = store.Policy{}
			}
			return policyFromFlags(c, cur)
		})
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("no environment %q (env list shows them)", id)
		} else if err != nil {
			return err
		}
		e.Log.Info("environment policy updated", "env", env.ID, "owner", env.Owner, "policy_version", env.PolicyVersion)
		if c.Bool("json") {
			return writeJSONLines(e.Stdout, []envRow{newEnvRow(env, time.Now())})
		}
		_, err = fmt.Fprintf(e.Stderr, "environment %s of %s: policy version %d: %s (effective at its next token request)\n",
			env.ID, cell(env.Owner), env.PolicyVersion, policySummary(env.Policy))
		return err
	})
}

// wirePolicy is the policy as env list --json shows it: the shape of the
// token answer's policy.
func wirePolicy(env store.Environment) vaultapi.Policy {
	return vaultapi.Policy{
		Version:       env.PolicyVersion,
		AllowRepos:    env.Policy.AllowRepos,
		ReadOnlyRepos: env.Policy.ReadOnlyRepos,
		PushRefs:      env.Policy.PushRefs,
		ProxyOnly:     env.Policy.ProxyOnly,
	}
}

// policySummary is one table cell: "none", or the rules in flag form.
func policySummary(p store.Policy) string {
	if p.IsZero() {
		return "none"
	}
	var parts []string
	for _, s := range p.AllowRepos {
		parts = append(parts, "allow "+s)
	}
	for _, s := range p.ReadOnlyRepos {
		parts = append(parts, "read-only "+s)
	}
	for _, s := range p.PushRefs {
		parts = append(parts, "push "+s)
	}
	if p.ProxyOnly {
		parts = append(parts, "proxy-only")
	}
	return cell(strings.Join(parts, "; "))
}
