package main

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/azdo-sidecar/azdo-sidecar/config"
	"github.com/azdo-sidecar/azdo-sidecar/internal/cliapp"
	"github.com/azdo-sidecar/azdo-sidecar/secret"
	"github.com/azdo-sidecar/azdo-sidecar/vault"
	"github.com/azdo-sidecar/azdo-sidecar/vault/store"
	"github.com/azdo-sidecar/azdo-sidecar/vaultapi"
)

// envCommand is `azdo-vault env create|update|revoke|list`. They work on the store
// directly, so they run beside a serving vault (SQLite waits on its busy
// timeout; the vault reads environments on every request).
func envCommand(e *cliapp.Env) *cli.Command {
	return &cli.Command{
		Name:  "env",
		Usage: "register or revoke environments",
		Subcommands: []*cli.Command{
			{
				Name:  "create",
				Usage: "register an environment and print its token once (its ID, for env revoke, goes to stderr); the policy flags limit what it may do",
				Flags: append([]cli.Flag{
					&cli.StringFlag{Name: "owner", Required: true, Usage: "the `USER` whose credentials the environment gets"},
					&cli.DurationFlag{Name: "ttl", Value: 30 * 24 * time.Hour, Usage: "lifetime of the environment token (`DURATION`, 0: no expiry)"},
					&cli.BoolFlag{Name: "json", Usage: `print {"id":…,"token":…,"expires_at":…} instead of the token alone`},
					config.StoreFlag(),
					&cli.BoolFlag{Name: "create", Usage: "create the SQLite store if it does not exist (without it, a --store path that does not exist is refused: it is usually a mistyped path or a missing --store)"},
					requiredKeyFile(),
				}, policyFlags()...),
				Action: func(c *cli.Context) error { return envCreate(c, e) },
			},
			{
				Name:      "update",
				Usage:     "change an environment's policy, effective at its next token request: each policy flag given replaces that part; --clear-policy starts from none",
				ArgsUsage: "ID",
				Flags: append([]cli.Flag{
					&cli.BoolFlag{Name: flagClearPolicy, Usage: "remove the policy (then apply any other policy flag given)"},
					&cli.BoolFlag{Name: "json", Usage: "print the environment as env list --json does"},
					config.StoreFlag(),
					requiredKeyFile(),
				}, policyFlags()...),
				Action: func(c *cli.Context) error { return envUpdate(c, e) },
			},
			{
				Name:      "revoke",
				Usage:     "revoke an environment's token (ID: the env_… printed by env create, or the token itself, which needs --key-file)",
				ArgsUsage: "ID",
				Flags:     []cli.Flag{config.StoreFlag(), config.KeyFileFlag()},
				Action:    func(c *cli.Context) error { return envRevoke(c, e) },
			},
			{
				Name:  "list",
				Usage: "list environments (revoked and expired ones too): ID, owner, state, created, expires, revoked, policy; never a token or its hash",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "owner", Usage: "only the environments of `USER`"},
					&cli.BoolFlag{Name: "json", Usage: "print one JSON object per line (id, owner, state, created_at, expires_at, revoked_at, policy) instead of a table"},
					config.StoreFlag(),
				},
				Action: func(c *cli.Context) error { return envList(c, e, time.Now()) },
			},
		},
	}
}

// envRow is one line of `env list --json`. Its field names are an
// interface for scripts: keep them.
type envRow struct {
	ID    string `json:"id"`
	Owner string `json:"owner"`
	// State is "active", "expired" or "revoked" (revoked wins).
	State     string `json:"state"`
	CreatedAt string `json:"created_at"` // RFC 3339
	ExpiresAt string `json:"expires_at"` // RFC 3339; "" never
	RevokedAt string `json:"revoked_at"` // RFC 3339; "" not revoked
	// Policy has the shape of a token answer's policy: version 0 and no
	// rules for an environment never given one.
	Policy vaultapi.Policy `json:"policy"`
}

// newEnvRow keeps what an administrator may see of env at now: the token
// hash is not copied.
func newEnvRow(env store.Environment, now time.Time) envRow {
	state := "active"
	switch {
	case !env.RevokedAt.IsZero():
		state = "revoked"
	case !env.ExpiresAt.IsZero() && !now.Before(env.ExpiresAt):
		state = "expired"
	}
	return envRow{ID: env.ID, Owner: env.Owner, State: state,
		CreatedAt: rfc3339(env.CreatedAt), ExpiresAt: rfc3339(env.ExpiresAt), RevokedAt: rfc3339(env.RevokedAt),
		Policy: wirePolicy(env)}
}

// envList prints the environments as a table, or as JSON lines with
// --json; now decides which have expired.
func envList(c *cli.Context, e *cliapp.Env, now time.Time) error {
	if c.Args().Present() {
		return cliapp.UsageError{Err: errors.New("env list takes no arguments; filter with --owner USER")}
	}
	owner := c.String("owner")
	return withExistingStore(c, c.String(config.FlagStore), func(ctx context.Context, st store.Store) error {
		envs, err := st.ListEnvironments(ctx, owner)
		if err != nil {
			return err
		}
		rows := make([]envRow, len(envs))
		for i, env := range envs {
			rows[i] = newEnvRow(env, now)
		}
		if c.Bool("json") {
			return writeJSONLines(e.Stdout, rows)
		}
		if len(rows) == 0 {
			_, err := fmt.Fprintf(e.Stderr, "no environments%s\n", filterText(owner, ""))
			return err
		}
		tw := tabwriter.NewWriter(e.Stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tOWNER\tSTATE\tCREATED\tEXPIRES\tREVOKED\tPOLICY")
		for i, r := range rows {
			exp := r.ExpiresAt
			if exp == "" {
				exp = "never"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", cell(r.ID), cell(r.Owner), r.State, cell(r.CreatedAt), exp, cell(r.RevokedAt), policySummary(envs[i].Policy))
		}
		return tw.Flush()
	})
}

// envCreate registers an environment. stdout carries the token alone (so
// TOKEN=$(azdo-vault env create …) works), or one JSON object with --json;
// the ID an administrator needs for env revoke goes to stderr.
func envCreate(c *cli.Context, e *cliapp.Env) error {
	pol, err := vault.ValidatePolicy(policyFromFlags(c, store.Policy{}))
	if err != nil {
		return cliapp.UsageError{Err: err}
	}
	kp, err := vault.LoadKeyFile(c.String(config.FlagKeyFile))
	if err != nil {
		return err
	}
	open := withExistingStore
	if c.Bool("create") {
		open = withStore
	}
	return open(c, c.String(config.FlagStore), func(ctx context.Context, st store.Store) error {
		// The row is bound to the runner key, so that nobody who can only
		// write the store can add an environment (see vault.Binding).
		b, err := vault.Bind(ctx, st, kp, e.Log)
		if err != nil {
			return err
		}
		env, tok, err := vault.NewEnvironmentWithPolicy(ctx, st, b, time.Now(), c.String("owner"), c.Duration("ttl"), pol)
		if err != nil {
			return err
		}
		e.Log.Info("environment created", "env", env.ID, "owner", env.Owner, "policy_version", env.PolicyVersion)
		exp, expires := "", "never"
		if !env.ExpiresAt.IsZero() {
			exp = env.ExpiresAt.Format(time.RFC3339)
			expires = exp
		}
		// stdout is the one place the token is shown.
		if c.Bool("json") {
			_, err = fmt.Fprintf(e.Stdout, "{\"id\":%q,\"token\":%q,\"expires_at\":%q}\n", env.ID, tok.Reveal(), exp)
			return err
		}
		if _, err := fmt.Fprintln(e.Stdout, tok.Reveal()); err != nil {
			return err
		}
		_, err = fmt.Fprintf(e.Stderr, "environment %s of %s created (expires: %s; policy: %s); revoke it with: azdo-vault env revoke %s\n", env.ID, env.Owner, expires, policySummary(env.Policy), env.ID)
		return err
	})
}

// envIDShape is what environment IDs look like (vault.NewEnvironment).
var envIDShape = regexp.MustCompile(`^env_[0-9a-f]{16}$`)

// envRevoke revokes the environment named by its ID or by its token. Flags
// may follow the ID (env revoke ID --store URL), as admins type them.
func envRevoke(c *cli.Context, e *cliapp.Env) error {
	// run's config.Reorder has moved flags given after the ID (env revoke
	// ID --store URL) to where urfave/cli reads them.
	if c.Args().Len() != 1 {
		return cliapp.UsageError{Err: errors.New("env revoke takes one environment ID: env revoke [--store URL] ID")}
	}
	id := c.Args().First()
	return withExistingStore(c, c.String(config.FlagStore), func(ctx context.Context, st store.Store) error {
		name := id
		if strings.HasPrefix(id, vault.EnvTokenPrefix) {
			// Tokens are stored under a hash keyed by the runner key.
			if c.String(config.FlagKeyFile) == "" {
				return cliapp.UsageError{Err: errors.New("revoking by token needs the runner key to find it: add --key-file FILE (or revoke by the env_… ID, which env list prints)")}
			}
			kp, err := vault.LoadKeyFile(c.String(config.FlagKeyFile))
			if err != nil {
				return err
			}
			b, err := vault.Bind(ctx, st, kp, e.Log)
			if err != nil {
				return err
			}
			env, err := st.EnvironmentByTokenHash(ctx, b.EnvTokenHash(secret.New(id)))
			if errors.Is(err, store.ErrNotFound) {
				return errors.New("no environment has this token")
			} else if err != nil {
				return err
			}
			id, name = env.ID, env.ID+" (given by its token)"
		}
		if err := st.RevokeEnvironment(ctx, id, time.Now()); errors.Is(err, store.ErrNotFound) {
			if !envIDShape.MatchString(id) {
				// Not echoed: it may be a token pasted without its prefix.
				return errors.New("no environment with that ID (IDs look like env_0123456789abcdef; env create and env list print them)")
			}
			return fmt.Errorf("no environment %q (IDs look like env_0123456789abcdef; env create and env list print them)", id)
		} else if err != nil {
			return err
		}
		e.Log.Info("environment revoked", "env", id)
		_, err := fmt.Fprintf(e.Stderr, "environment %s revoked\n", name)
		return err
	})
}

// requiredKeyFile is --key-file for commands that write rows bound to the
// runner key.
func requiredKeyFile() cli.Flag {
	kf := config.KeyFileFlag()
	kf.Required = true
	return kf
}

// withStore opens the store at url, runs fn and closes it.
func withStore(c *cli.Context, url string, fn func(context.Context, store.Store) error) error {
	st, err := store.Open(c.Context, url, time.Now)
	if err != nil {
		return err
	}
	defer st.Close()
	return fn(c.Context, st)
}
