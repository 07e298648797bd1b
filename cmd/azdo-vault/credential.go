package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/urfave/cli/v2"

	"github.com/azdo-sidecar/azdo-sidecar/config"
	"github.com/azdo-sidecar/azdo-sidecar/internal/cliapp"
	"github.com/azdo-sidecar/azdo-sidecar/vault"
	"github.com/azdo-sidecar/azdo-sidecar/vault/store"
)

// credentialCommand is `azdo-vault credential list|delete`: what users have
// connected, and removing a departed user's refresh tokens and PATs. Like
// env, both work on the store directly beside a serving vault, which reads
// the credentials on every request: a deletion takes effect at once.
func credentialCommand(e *cliapp.Env) *cli.Command {
	return &cli.Command{
		Name:  "credential",
		Usage: "list or delete the users' stored credentials (never their secrets)",
		Subcommands: []*cli.Command{
			{
				Name:  "list",
				Usage: "list stored credentials: ID, owner, host, org, kind, status and reason, expiry, last update",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "owner", Usage: "only the credentials of `USER`"},
					&cli.StringFlag{Name: "host", Usage: "only the credentials for `HOST` (dev.azure.com, or a self-hosted host[:port])"},
					&cli.BoolFlag{Name: "json", Usage: "print one JSON object per line (id, owner, host, org, kind, status, reason, expires_at, updated_at) instead of a table"},
					config.StoreFlag(),
				},
				Action: func(c *cli.Context) error { return credentialList(c, e, time.Now()) },
			},
			{
				Name:      "delete",
				Usage:     "delete one credential by its ID (from credential list), or all of --owner's (for --host only, if given)",
				ArgsUsage: "[ID]",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "owner", Usage: "delete every credential of `USER` instead of one ID"},
					&cli.StringFlag{Name: "host", Usage: "with --owner: only the credentials for `HOST`"},
					config.StoreFlag(),
				},
				Action: func(c *cli.Context) error { return credentialDelete(c, e) },
			},
		},
	}
}

// credentialRow is one line of `credential list --json`. Its field names
// are an interface for scripts: keep them.
type credentialRow struct {
	ID        int64  `json:"id"`
	Owner     string `json:"owner"`
	Host      string `json:"host"`
	Org       string `json:"org"` // "*": every org of the host
	Kind      string `json:"kind"`
	Status    string `json:"status"`
	Reason    string `json:"reason"`
	ExpiresAt string `json:"expires_at"` // RFC 3339; "" when unknown
	UpdatedAt string `json:"updated_at"` // RFC 3339
}

// patWarnWithin is how long before its expiry a PAT is marked as
// expiring soon.
const patWarnWithin = 7 * 24 * time.Hour

// newCredentialRow keeps what an administrator may see of c at now:
// everything but the sealed secret, which is not copied. A PAT past its
// expiry is reported reconnect_required ("PAT expired"), as the vault
// answers for it, although its row may still say ok; one expiring within
// patWarnWithin says so in its reason.
func newCredentialRow(c store.Credential, now time.Time) credentialRow {
	status, reason := string(c.Status), c.Reason
	if c.Kind == store.PAT && c.Status == store.StatusOK && !c.ExpiresAt.IsZero() && !now.Before(c.ExpiresAt) {
		status, reason = string(store.StatusReconnectRequired), "PAT expired"
	} else if c.Kind == store.PAT && c.Status == store.StatusOK && !c.ExpiresAt.IsZero() && c.ExpiresAt.Sub(now) < patWarnWithin {
		// Still served, but the user must make a new one soon.
		reason = "PAT expires " + c.ExpiresAt.UTC().Format(time.DateOnly) + " (within 7 days)"
	}
	return credentialRow{
		ID: c.ID, Owner: c.Owner, Host: c.Host, Org: c.Org, Kind: string(c.Kind),
		Status: status, Reason: reason,
		ExpiresAt: rfc3339(c.ExpiresAt), UpdatedAt: rfc3339(c.UpdatedAt),
	}
}

// credentialList prints the stored credentials as a table, or as JSON lines
// with --json; stdout carries nothing else. now decides which PATs have
// expired.
func credentialList(c *cli.Context, e *cliapp.Env, now time.Time) error {
	if c.Args().Present() {
		return cliapp.UsageError{Err: errors.New("credential list takes no arguments; filter with --owner USER and --host HOST")}
	}
	owner, host := c.String("owner"), hostFilter(c.String("host"))
	return withExistingStore(c, c.String(config.FlagStore), func(ctx context.Context, st store.Store) error {
		creds, err := st.ListCredentials(ctx, owner, host)
		if err != nil {
			return err
		}
		rows := make([]credentialRow, len(creds))
		for i, cr := range creds {
			rows[i] = newCredentialRow(cr, now)
		}
		if c.Bool("json") {
			return writeJSONLines(e.Stdout, rows)
		}
		if len(rows) == 0 {
			_, err := fmt.Fprintf(e.Stderr, "no credentials stored%s\n", filterText(owner, host))
			return err
		}
		tw := tabwriter.NewWriter(e.Stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tOWNER\tHOST\tORG\tKIND\tSTATUS\tEXPIRES\tUPDATED\tREASON")
		for _, r := range rows {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, cell(r.Owner), cell(r.Host), cell(r.Org), cell(r.Kind),
				cell(r.Status), cell(r.ExpiresAt), cell(r.UpdatedAt), cell(r.Reason))
		}
		return tw.Flush()
	})
}

// credentialDelete deletes one credential by ID, or all of --owner's
// (optionally for --host), and says on stderr what it removed.
func credentialDelete(c *cli.Context, e *cliapp.Env) error {
	args := c.Args().Slice()
	owner, host := c.String("owner"), hostFilter(c.String("host"))
	const usage = "credential delete takes one credential ID (credential list shows them), or --owner USER [--host HOST]"
	switch {
	case len(args) > 1, len(args) == 1 && owner != "", len(args) == 0 && owner == "":
		return cliapp.UsageError{Err: errors.New(usage)}
	case owner == "" && host != "":
		return cliapp.UsageError{Err: errors.New("--host needs --owner: " + usage)}
	}
	if owner != "" {
		return withExistingStore(c, c.String(config.FlagStore), func(ctx context.Context, st store.Store) error {
			removed, err := st.DeleteCredentials(ctx, owner, host)
			if err != nil {
				return err
			}
			if len(removed) == 0 {
				_, err := fmt.Fprintf(e.Stderr, "nothing to delete: no credentials stored%s\n", filterText(owner, host))
				return err
			}
			for _, r := range removed {
				e.Log.Info("credential deleted", "credential_id", r.ID, "owner", r.Owner, "host", r.Host)
				if _, err := fmt.Fprintf(e.Stderr, "deleted %s\n", describe(r)); err != nil {
					return err
				}
			}
			return nil
		})
	}
	// The argument is not echoed when it is not an ID: it may be a secret
	// pasted by mistake.
	id, err := strconv.ParseInt(args[0], 10, 64)
	if err != nil || id <= 0 {
		return cliapp.UsageError{Err: errors.New("the credential ID must be a positive number (credential list shows the IDs)")}
	}
	return withExistingStore(c, c.String(config.FlagStore), func(ctx context.Context, st store.Store) error {
		notFound := fmt.Errorf("no credential %d (credential list shows the IDs)", id)
		cr, err := st.Credential(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			return notFound
		} else if err != nil {
			return err
		}
		if err := st.DeleteCredential(ctx, id); errors.Is(err, store.ErrNotFound) {
			return notFound
		} else if err != nil {
			return err
		}
		e.Log.Info("credential deleted", "credential_id", cr.ID, "owner", cr.Owner, "host", cr.Host)
		_, err = fmt.Fprintf(e.Stderr, "deleted %s\n", describe(cr))
		return err
	})
}

// describe names a credential for the administrator, without its secret.
func describe(c store.Credential) string {
	return fmt.Sprintf("credential %d: %s on %s, org %s, %s", c.ID, cell(c.Owner), cell(c.Host), cell(c.Org), c.Kind)
}

// hostFilter normalizes a --host value as the vault stores hosts (lower
// case, no :443); empty stays empty (every host).
func hostFilter(h string) string {
	if strings.TrimSpace(h) == "" {
		return ""
	}
	return vault.NormalizeHost(h)
}

// filterText says which filter matched nothing: " (owner ann, host
// dev.azure.com)", or "" without a filter.
func filterText(owner, host string) string {
	var f []string
	if owner != "" {
		f = append(f, "owner "+cell(owner))
	}
	if host != "" {
		f = append(f, "host "+cell(host))
	}
	if len(f) == 0 {
		return ""
	}
	return " (" + strings.Join(f, ", ") + ")"
}

// rfc3339 formats t in UTC to the second; the zero time is "".
func rfc3339(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// cell makes s one table cell: control characters (a tab or newline in a
// reason or an owner would break the columns or forge a row) become spaces,
// and an empty value is "-".
func cell(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	if s == "" {
		return "-"
	}
	return s
}

// writeJSONLines writes each row as one JSON object on its own line.
func writeJSONLines[T any](w io.Writer, rows []T) error {
	enc := json.NewEncoder(w)
	for _, r := range rows {
		if err := enc.Encode(r); err != nil {
			return err
		}
	}
	return nil
}

// withExistingStore is withStore for commands that only read or delete: a
// SQLite path that does not exist is refused, where opening it would
// create an empty store and report that nothing is there.
func withExistingStore(c *cli.Context, url string, fn func(context.Context, store.Store) error) error {
	if path, ok := store.SQLitePath(url); ok {
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("no store at %s: --store (or AZDO_STORE) must name the vault's database, as given to azdo-vault serve (default %s); env create --create makes a new one", path, config.DefaultStore)
		}
	}
	return withStore(c, url, fn)
}
