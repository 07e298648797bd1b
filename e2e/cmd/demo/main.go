// Command demo runs the whole product on loopback so that someone with no
// Azure DevOps organization can see it work:
//
//	go run ./e2e/cmd/demo [--auto-connect]
//
// It starts the Azure DevOps emulator (organization demo, project demo,
// repository hello with a README), the Entra ID emulator (an app whose
// callback is the vault's, a user signed in automatically), an azdo-vault
// (in this process: a fresh key pair, the client secret sealed to it, a
// SQLite store, OAuth and PAT enabled for dev.azure.com, an environment
// for the demo user), and an `azdo-sidecar serve` in vault mode with
// dev.azure.com resolved to the emulator, whose git configuration
// `azdo-sidecar setup --file` writes to a file of its own. It prints the
// Connect link and the git command to try, then runs until SIGINT or
// SIGTERM and removes everything it created.
//
// --auto-connect follows the Connect link itself (through the emulator's
// sign-in, which approves at once), so the clone works straight away.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

// options are the demo's flags.
type options struct {
	autoConnect bool
	binDir      string // prebuilt azdo-sidecar and git-credential-azdo; empty: build them
	verbose     bool
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.BoolVar(&o.autoConnect, "auto-connect", false, "complete the Connect flow without a browser")
	fs.StringVar(&o.binDir, "bin-dir", "", "`DIR` holding azdo-sidecar and git-credential-azdo (default: build them from this module)")
	fs.BoolVar(&o.verbose, "v", false, "show the components' logs on stderr")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	return o, nil
}

// run starts the demo, prints the instructions on stdout and blocks until
// ctx ends; then it stops everything and removes its temporary directory.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) (err error) {
	o, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	logs := io.Discard
	if o.verbose {
		logs = stderr
	}
	dir, err := os.MkdirTemp("", "azdo-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	fmt.Fprintln(stderr, "Starting the emulators, the vault and the sidecar…")

	binDir := o.binDir
	if binDir == "" {
		if binDir, err = buildBinaries(ctx, dir); err != nil {
			return err
		}
	}
	w, err := startWorld(ctx, dir, logs)
	if err != nil {
		return err
	}
	defer w.Close()

	sc, err := startSidecar(ctx, dir, binDir, w, logs)
	if err != nil {
		return err
	}
	defer func() {
		if serr := sc.Stop(); serr != nil && err == nil {
			err = serr
		}
	}()
	gitconfig, err := setupGit(ctx, dir, binDir, sc, logs)
	if err != nil {
		return err
	}
	refused, err := w.RefusedIdentity(ctx)
	if err != nil {
		return fmt.Errorf("showing a refused identity: %w", err)
	}
	// An environment's start: a clone that waits for the user to connect,
	// its output on stderr, before anyone has connected.
	fmt.Fprintln(stderr, "Environment start: `azdo-sidecar clone --wait-connect 15m` waits for you to connect:")
	wc, err := startWaitingClone(dir, binDir, w, prefixed(stderr, "  clone | "))
	if err != nil {
		return err
	}
	defer wc.Stop()
	pushOut := prefixed(stderr, "  push  | ")
	link, err := w.ConnectURL(ctx)
	if err != nil {
		return err
	}
	if o.autoConnect {
		// Let the clone print its notice first, then connect.
		time.Sleep(time.Second)
		if err := w.AutoConnect(ctx, link); err != nil {
			return fmt.Errorf("--auto-connect: %w", err)
		}
		if err := wc.Wait(30 * time.Second); err != nil {
			return fmt.Errorf("the waiting clone: %w", err)
		}
		if err := showPolicy(ctx, dir, gitconfig, pushOut); err != nil {
			return fmt.Errorf("showing the policy: %w", err)
		}
	} else {
		// Once the user has connected and the clone at start is done,
		// show the policy refusing a push from it.
		go func() {
			if wc.Wait(15*time.Minute) == nil {
				if err := showPolicy(ctx, dir, gitconfig, pushOut); err != nil && ctx.Err() == nil {
					fmt.Fprintln(stderr, "demo: showing the policy:", err)
				}
			}
		}()
	}
	printInstructions(stdout, instructions{
		Link: link, CAFile: w.caFile, User: demoUPN, AutoConnect: o.autoConnect, Other: otherUPN, Refused: refused,
		Command: cloneCommand(gitconfig), Dir: dir,
	})
	<-ctx.Done()
	fmt.Fprintln(stderr, "Stopping the demo…")
	return nil
}

// instructions is what the demo tells its user.
type instructions struct {
	Link, CAFile, User, Command, Dir string
	// Other signed in on User's link and was refused with Refused.
	Other, Refused string
	AutoConnect    bool
}

// CommandPrefix starts the line that holds the command to try, so that
// scripts (and the demo's test) can find it.
const CommandPrefix = "   $ "

func printInstructions(w io.Writer, in instructions) {
	fmt.Fprintf(w, "\nThe azdo-sidecar demo is running on loopback: Azure DevOps and Entra ID emulators, azdo-vault and azdo-sidecar.\n\n")
	fmt.Fprintf(w, "0. The environment belongs to %s. The demo opened one of its connect links as %s,\n   and the vault refused it (403, nothing stored):\n\n   %s\n\n", in.User, in.Other, in.Refused)
	if in.AutoConnect {
		fmt.Fprintf(w, "1. Connected to Azure DevOps as %s (--auto-connect).\n\n", in.User)
	} else {
		fmt.Fprintf(w, "1. Connect Azure DevOps: open this link in a browser on this machine (it works once):\n\n   %s\n\n", in.Link)
		fmt.Fprintf(w, "   Sign-in is the Entra ID emulator, signed in as %s. Its certificate is self-signed:\n", in.User)
		fmt.Fprintf(w, "   accept the browser's warning, or import this CA first: %s\n\n", in.CAFile)
	}
	fmt.Fprintf(w, "2. Clone, from any shell on this machine:\n\n%s%s\n\n", CommandPrefix, in.Command)
	if !in.AutoConnect {
		fmt.Fprintf(w, "   Before you connect, the same command fails at once and git shows the link to open.\n\n")
	}
	fmt.Fprintf(w, "3. The environment has a policy: it may push only to %s. In the clone:\n\n", demoPushRef)
	fmt.Fprintf(w, "%sgit -C hello commit --allow-empty -m try && GIT_CONFIG_GLOBAL=… git -C hello push origin main\n\n", CommandPrefix[:3])
	fmt.Fprintf(w, "   is refused before anything reaches Azure DevOps (git shows \"[remote rejected] … refs/heads/main refused\"),\n")
	fmt.Fprintf(w, "   while \"git push origin HEAD:refs/heads/agent/demo\" goes through. The demo does both from the\n")
	fmt.Fprintf(w, "   clone made at environment start once you are connected (lines prefixed \"push |\" above).\n\n")
	fmt.Fprintf(w, "Press Ctrl-C to stop the demo (it removes %s).\n", in.Dir)
}

// cloneCommand is the shell command that clones the demo repository with
// the demo's git configuration only.
func cloneCommand(gitconfig string) string {
	return fmt.Sprintf("GIT_CONFIG_GLOBAL=%s GIT_CONFIG_NOSYSTEM=1 git clone %s", shellQuote(gitconfig), repoURL)
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '/' || r == '.' || r == '-' || r == '_') {
			return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
		}
	}
	if s == "" {
		return "''"
	}
	return s
}
