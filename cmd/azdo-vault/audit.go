package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/azdo-sidecar/azdo-sidecar/config"
	"github.com/azdo-sidecar/azdo-sidecar/internal/cliapp"
	"github.com/azdo-sidecar/azdo-sidecar/vault/store"
	"github.com/azdo-sidecar/azdo-sidecar/vaultapi"
)

// auditCommand is `azdo-vault audit list`: the git operations environments'
// sidecars reported (POST /v1/audit), read from the store.
func auditCommand(e *cliapp.Env) *cli.Command {
	return &cli.Command{
		Name:  "audit",
		Usage: "show the audit trail of git operations environments proxied",
		Subcommands: []*cli.Command{
			{
				Name:  "list",
				Usage: "list audit events, oldest first: time, environment, owner, operation, repository, status, result, refs, bytes, duration",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "owner", Usage: "only the events of `USER`'s environments"},
					&cli.StringFlag{Name: "env", Usage: "only the events of environment `ID`"},
					&cli.StringFlag{Name: "repo", Usage: "only the events for repository `NAME` (any case), or HOST/ORG/PROJECT/REPO"},
					&cli.DurationFlag{Name: "since", Usage: "only the events of the last `DURATION` (e.g. 24h)"},
					&cli.IntFlag{Name: "limit", Value: 1000, Usage: "show at most the newest `N` events (0: all)"},
					&cli.BoolFlag{Name: "json", Usage: "print one JSON object per line (the POST /v1/audit event, with env and owner) instead of a table"},
					config.StoreFlag(),
				},
				Action: func(c *cli.Context) error { return auditList(c, e, time.Now()) },
			},
		},
	}
}

// auditList prints the events the flags select; now anchors --since.
func auditList(c *cli.Context, e *cliapp.Env, now time.Time) error {
	if c.Args().Present() {
		return cliapp.UsageError{Err: errors.New("audit list takes no arguments; filter with --owner, --env, --repo, --since")}
	}
	if c.Duration("since") < 0 || c.Int("limit") < 0 {
		return cliapp.UsageError{Err: errors.New("--since and --limit must not be negative")}
	}
	f := store.AuditFilter{Owner: c.String("owner"), Env: c.String("env"), Limit: c.Int("limit")}
	if d := c.Duration("since"); d > 0 {
		f.Since = now.Add(-d)
	}
	repo := strings.Trim(c.String("repo"), "/")
	path := ""
	if strings.Contains(repo, "/") {
		// HOST/ORG/PROJECT/REPO: the store selects by name, the rest here.
		// The limit then applies after this filter, so it is not given to
		// the store.
		path = strings.ToLower(repo)
		repo = repo[strings.LastIndex(repo, "/")+1:]
		f.Limit = 0
	}
	f.Repo = repo
	return withExistingStore(c, c.String(config.FlagStore), func(ctx context.Context, st store.Store) error {
		events, err := st.AuditEvents(ctx, f)
		if err != nil {
			return err
		}
		if path != "" {
			kept := events[:0]
			for _, ev := range events {
				if strings.ToLower(auditRepo(ev)) == path {
					kept = append(kept, ev)
				}
			}
			events = kept
			if n := c.Int("limit"); n > 0 && len(events) > n {
				events = events[len(events)-n:]
			}
		}
		if c.Bool("json") {
			rows := make([]vaultapi.AuditEvent, len(events))
			for i, ev := range events {
				rows[i] = wireAuditEvent(ev)
			}
			return writeJSONLines(e.Stdout, rows)
		}
		if len(events) == 0 {
			_, err := fmt.Fprintln(e.Stderr, "no audit events")
			return err
		}
		tw := tabwriter.NewWriter(e.Stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "TIME\tENV\tOWNER\tOPERATION\tREPOSITORY\tSTATUS\tRESULT\tREFS\tBYTES IN/OUT\tDURATION")
		for _, ev := range events {
			result := "forwarded"
			if ev.Refused != "" {
				result = "refused: " + ev.Refused
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%d/%d\t%s\n",
				ev.Time.UTC().Format(time.RFC3339), cell(ev.Env), cell(ev.Owner), cell(ev.Operation), cell(auditRepo(ev)),
				ev.Status, cell(result), cell(auditRefs(ev.Refs)), ev.BytesIn, ev.BytesOut, time.Duration(ev.DurationMS)*time.Millisecond)
		}
		return tw.Flush()
	})
}

// auditRepo is HOST/ORG/PROJECT/REPO with the parts the event has.
func auditRepo(ev store.AuditEvent) string {
	parts := []string{ev.Host}
	for _, p := range []string{ev.Org, ev.Project, ev.Repo} {
		if p != "" {
			parts = append(parts, p)
		}
	}
	return strings.Join(parts, "/")
}

// auditRefs is "NAME OLD..NEW" per ref, object IDs shortened.
func auditRefs(refs []store.AuditRef) string {
	var out []string
	for _, r := range refs {
		out = append(out, fmt.Sprintf("%s %s..%s", r.Name, short(r.Old), short(r.New)))
	}
	return strings.Join(out, ", ")
}

func short(oid string) string {
	if len(oid) > 10 {
		return oid[:10]
	}
	return oid
}

// wireAuditEvent is ev in the shape of POST /v1/audit, env and owner set.
func wireAuditEvent(ev store.AuditEvent) vaultapi.AuditEvent {
	out := vaultapi.AuditEvent{
		Time: ev.Time.UTC(), Env: ev.Env, Owner: ev.Owner, Host: ev.Host, Org: ev.Org, Project: ev.Project, Repo: ev.Repo,
		Operation: ev.Operation, Status: ev.Status, Refused: ev.Refused, BytesIn: ev.BytesIn, BytesOut: ev.BytesOut, DurationMS: ev.DurationMS,
	}
	for _, r := range ev.Refs {
		out.Refs = append(out.Refs, vaultapi.AuditRef{Name: r.Name, Old: r.Old, New: r.New})
	}
	return out
}
