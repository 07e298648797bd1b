// Package cliapp holds what azdo-sidecar and azdo-vault share around
// urfave/cli: the streams and logger handed to every command, the global
// flags, settings precedence (through package config), and the mapping of
// errors to one stderr line and an exit code.
package cliapp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/urfave/cli/v2"

	"github.com/azdo-sidecar/azdo-sidecar/config"
)

// Env is what every command works with: its streams and the logger.
// Commands receive it when the app is built and read Log when they run,
// after the settings (and so --log-format) are known.
type Env struct {
	Stdin  io.Reader
	Stdout io.Writer // command output only
	Stderr io.Writer // logs and errors
	Log    *slog.Logger
}

// NewEnv returns an Env over the given streams with a text logger on stderr
// until the settings choose one.
func NewEnv(stdin io.Reader, stdout, stderr io.Writer) *Env {
	return &Env{Stdin: stdin, Stdout: stdout, Stderr: stderr, Log: slog.New(slog.NewTextHandler(stderr, nil))}
}

// GlobalFlags are the flags of both binaries, given before the command.
func GlobalFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: config.FlagLogFormat, Value: "text", Usage: "log `FORMAT` on stderr: text or json"},
		&cli.StringFlag{Name: config.FlagLogLevel, Value: "info", Usage: "log `LEVEL`: debug, info, warn or error"},
	}
}

// Prepare finishes an app built over e: streams, settings precedence
// (config.Prepare), the logger chosen by --log-format/--log-level, and
// usage errors returned rather than printed on stdout.
func Prepare(app *cli.App, e *Env, opts config.Options) {
	app.Reader, app.Writer, app.ErrWriter = e.Stdin, e.Stdout, e.Stderr
	// Errors are printed and mapped to exit codes by Run, not by cli
	// (which would call os.Exit).
	app.ExitErrHandler = func(*cli.Context, error) {}
	loaded := opts.Loaded
	opts.Loaded = func(c *cli.Context) error {
		l, err := config.NewLogger(e.Stderr, c.String(config.FlagLogFormat), c.String(config.FlagLogLevel))
		if err != nil {
			return err
		}
		e.Log = l
		if loaded != nil {
			return loaded(c)
		}
		return nil
	}
	config.Prepare(app, opts)
	app.OnUsageError = onUsageError
	var walk func([]*cli.Command)
	walk = func(cmds []*cli.Command) {
		for _, c := range cmds {
			c.OnUsageError = onUsageError
			walk(c.Subcommands)
		}
	}
	walk(app.Commands)
}

// UsageError is a command line that does not parse; Run exits 2 for it.
type UsageError struct{ Err error }

func (u UsageError) Error() string { return u.Err.Error() }

// Unwrap returns the parse error.
func (u UsageError) Unwrap() error { return u.Err }

func onUsageError(_ *cli.Context, err error, _ bool) error { return UsageError{explainValue(err)} }

// Run runs app and returns the process exit code: 0 on success, the code of
// a cli.ExitCoder, 2 for a usage error, else 1. An error is printed on
// stderr as one line prefixed with the app's name; a cli.ExitCoder with an
// empty message prints nothing (for commands that already explained).
func Run(ctx context.Context, app *cli.App, args []string, stderr io.Writer) int {
	var err error
	if len(args) > 0 {
		err = unknownCommand(app, args[1:])
	}
	if err == nil {
		err = app.RunContext(ctx, args)
	}
	if err == nil {
		return 0
	}
	var ue UsageError
	var ec cli.ExitCoder
	switch {
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "%s: %v (see --help)\n", app.Name, err)
		return 2
	case errors.As(err, &ec):
		if msg := err.Error(); msg != "" {
			fmt.Fprintf(stderr, "%s: %s\n", app.Name, msg)
		}
		if ec.ExitCode() == 0 {
			return 1
		}
		return ec.ExitCode()
	}
	fmt.Fprintf(stderr, "%s: %v\n", app.Name, err)
	return 1
}
