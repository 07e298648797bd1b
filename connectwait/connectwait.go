// Package connectwait waits, at environment start, for the user to connect
// Azure DevOps: it shows the connect links once, in a block a person
// notices, long-polls the vault without a line per poll, and says who
// connected ("Azure DevOps (Entra ID) is now connected as alice@…"). It is
// what `azdo-sidecar clone --wait-connect` and `azdo-sidecar connect
// --wait` run.
package connectwait

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/azdo-sidecar/azdo-sidecar/token"
	"github.com/azdo-sidecar/azdo-sidecar/vaultapi"
)

// Vault is the vault's connect wait endpoint (*vaultsource.Source).
type Vault interface {
	ConnectWait(ctx context.Context, key token.Key, wait time.Duration, cursor int64) (vaultapi.ConnectWaitResponse, error)
}

// DefaultPoll is how long one long-poll asks the vault to hold the
// request: under the 60 s that ingresses commonly allow an idle request.
const DefaultPoll = 50 * time.Second

// Errors that end a wait. Both come wrapped with the links to try again.
var (
	// ErrTimeout: the user did not connect in time.
	ErrTimeout = errors.New("timed out waiting for Azure DevOps to be connected")
	// ErrFailed: the user used a link and it failed (FailedError says why).
	ErrFailed = errors.New("connecting Azure DevOps failed")
)

// FailedError is a used link that failed; Reason comes from the vault.
type FailedError struct {
	Reason string
	Links  vaultapi.ConnectWaitResponse
}

// Error implements error.
func (e *FailedError) Error() string { return ErrFailed.Error() + ": " + e.Reason }

// Unwrap makes errors.Is(err, ErrFailed) true.
func (e *FailedError) Unwrap() error { return ErrFailed }

// Options configure Wait.
type Options struct {
	// Timeout bounds the whole wait (--wait-connect). Required.
	Timeout time.Duration
	// Poll is one long-poll's length (default DefaultPoll).
	Poll time.Duration
	// Out receives the messages (stderr).
	Out io.Writer
	// Now and Sleep are the clock (tests replace them).
	Now   func() time.Time
	Sleep func(ctx context.Context, d time.Duration) error
}

// Result says how the wait ended well.
type Result struct {
	// Waited is false when the user was connected already (nothing was
	// printed).
	Waited   bool
	Kind     string // "oauth" or "pat"
	Identity string
}

// Wait returns once env's owner has a credential for key, printing the
// links and then the "now connected" line on o.Out; or an error wrapping
// ErrTimeout or ErrFailed (the links printed again), or the vault's error
// (token.ErrUnauthorized, a *token.ConnectError for a host the runner does
// not serve).
func Wait(ctx context.Context, v Vault, key token.Key, o Options) (Result, error) {
	if o.Poll <= 0 {
		o.Poll = DefaultPoll
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Sleep == nil {
		o.Sleep = sleep
	}
	deadline := o.Now().Add(o.Timeout)
	var (
		last    vaultapi.ConnectWaitResponse
		shown   bool
		cursor  int64
		started bool
		warned  bool
		backoff = time.Second
	)
	for {
		left := deadline.Sub(o.Now())
		if left <= 0 {
			break
		}
		wait := min(o.Poll, left)
		if !started {
			wait = 0
		}
		r, err := v.ConnectWait(ctx, key, wait, cursor)
		if err != nil {
			if ctx.Err() != nil {
				return Result{}, ctx.Err()
			}
			if !transient(err) {
				return Result{}, err
			}
			// The vault is restarting or unreachable: say so once, and
			// try again until the deadline; the user may be connecting
			// meanwhile.
			if !warned {
				warned = true
				fmt.Fprintf(o.Out, "azdo-sidecar: the vault did not answer (%v); trying again until %s\n", err, deadline.Format(time.TimeOnly))
			}
			d := backoff
			var ra *token.RetryAfterError
			if errors.As(err, &ra) && ra.After > d {
				d = ra.After
			}
			backoff = min(backoff*2, 15*time.Second)
			if err := o.Sleep(ctx, min(d, max(deadline.Sub(o.Now()), 0))); err != nil {
				return Result{}, err
			}
			continue
		}
		backoff = time.Second
		started, cursor = true, r.Cursor
		switch r.State {
		case vaultapi.WaitConnected:
			if !shown {
				return Result{Kind: r.Kind, Identity: r.Identity}, nil
			}
			fmt.Fprintln(o.Out, Connected(r.Kind, r.Identity))
			return Result{Waited: true, Kind: r.Kind, Identity: r.Identity}, nil
		case vaultapi.WaitFailed:
			fmt.Fprintf(o.Out, "\nazdo-sidecar: the connection did not complete: %s\n", r.Reason)
			printLinks(o.Out, key, r, "Try again")
			return Result{}, &FailedError{Reason: r.Reason, Links: r}
		}
		if r.ConnectURL != "" || r.PATURL != "" {
			last = r
		}
		if !shown {
			shown = true
			printBlock(o.Out, key, r, o.Timeout)
		}
	}
	fmt.Fprintf(o.Out, "\nazdo-sidecar: %s (after %s).\n", ErrTimeout, o.Timeout)
	printLinks(o.Out, key, last, "Connect, then run the command again")
	return Result{}, fmt.Errorf("%w (after %s)", ErrTimeout, o.Timeout)
}

// Connected is the line printed once the user has connected.
func Connected(kind, identity string) string {
	switch {
	case kind == "pat":
		return "Azure DevOps is now connected with a personal access token"
	case identity != "":
		return "Azure DevOps (Entra ID) is now connected as " + identity
	default:
		return "Azure DevOps (Entra ID) is now connected"
	}
}

// printBlock is the one notice of a wait: what is missing, the links, and
// that nothing else needs doing.
func printBlock(w io.Writer, key token.Key, r vaultapi.ConnectWaitResponse, timeout time.Duration) {
	bar := "──────────────────────────────────────────────────────────────"
	what := "is not connected"
	if r.Reconnect {
		what = "must be connected again"
		if r.Reason != "" {
			what += " (" + r.Reason + ")"
		}
	}
	fmt.Fprintf(w, "\n%s\n  Azure DevOps %s for %s.\n\n", bar, what, key)
	printLinks(w, key, r, "")
	fmt.Fprintf(w, "\n  Waiting up to %s; this environment continues by itself once you\n  have connected.\n%s\n", timeout, bar)
}

// printLinks prints the connect and PAT links of r.
func printLinks(w io.Writer, key token.Key, r vaultapi.ConnectWaitResponse, intro string) {
	if intro != "" {
		fmt.Fprintf(w, "%s:\n", intro)
	}
	switch {
	case r.ConnectURL != "" && r.PATURL != "":
		fmt.Fprintf(w, "  Sign in with Microsoft Entra ID:  %s\n  or use a personal access token:   %s\n", r.ConnectURL, r.PATURL)
	case r.ConnectURL != "":
		fmt.Fprintf(w, "  Open this link to connect:  %s\n", r.ConnectURL)
	default:
		fmt.Fprintf(w, "  (no link: run `azdo-sidecar connect --wait 15m` for one; %s)\n", key)
	}
}

// transient reports whether err may pass by itself (the vault restarting,
// a network blip).
func transient(err error) bool {
	var ce *token.ConnectError
	return errors.Is(err, token.ErrUnavailable) && !errors.As(err, &ce)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
