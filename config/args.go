package config

import (
	"slices"
	"strings"

	"github.com/urfave/cli/v2"
)

// Reorder returns args (args[0] is the program name) with every flag moved
// right after the command that declares it, so that urfave/cli, which reads
// a command's flags only between its name and its first argument, accepts
// them anywhere:
//
//   - a global flag after the command: `azdo-sidecar serve --log-format json`;
//   - a parent's flag after the subcommand: `azdo-sidecar credential get
//     --socket S` (git's own order is `credential --socket S get`);
//   - a flag after the arguments: `azdo-sidecar clone URL DIR --depth 1`.
//
// A flag no command on the path declares (a typo, --help) stays where the
// deepest command reads it, so urfave/cli reports it as before. Everything
// after "--" is left alone. Call it on an app before Run.
func Reorder(app *cli.App, args []string) []string {
	if len(args) == 0 {
		return args
	}
	type level struct {
		name  string // the command's name; "" for the app
		flags []cli.Flag
		args  []string // its flags, in the order given
	}
	appFlags := app.Flags
	if app.Version != "" && !app.HideVersion && cli.VersionFlag != nil {
		// urfave/cli adds --version to the app's flags only when it runs;
		// `azdo-sidecar serve --version` means the same as before the command.
		appFlags = append(slices.Clip(appFlags), cli.VersionFlag)
	}
	levels := []*level{{flags: appFlags}}
	cmds := app.Commands
	var positional []string
	for i := 1; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			positional = append(positional, args[i:]...)
			break
		}
		if strings.HasPrefix(a, "-") && a != "-" {
			name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
			at, f := len(levels)-1, cli.Flag(nil)
			for j := len(levels) - 1; j >= 0; j-- {
				if f = lookupIn(levels[j].flags, name); f != nil {
					at = j
					break
				}
			}
			levels[at].args = append(levels[at].args, a)
			if d, ok := f.(cli.DocGenerationFlag); ok && d.TakesValue() && !hasValue && i+1 < len(args) {
				i++
				levels[at].args = append(levels[at].args, args[i])
			}
			continue
		}
		if len(positional) == 0 {
			if c := findCommand(cmds, a); c != nil {
				levels = append(levels, &level{name: a, flags: c.Flags})
				cmds = c.Subcommands
				continue
			}
		}
		positional = append(positional, a)
	}
	out := []string{args[0]}
	for _, l := range levels {
		if l.name != "" {
			out = append(out, l.name)
		}
		out = append(out, l.args...)
	}
	return append(out, positional...)
}

// flagsAnywhereKey marks, in cli.App.Metadata, an app run through Reorder.
const flagsAnywhereKey = "config.flags-anywhere"

// MarkReordered records that app's arguments go through Reorder, so that
// Reference documents flags as accepted before or after the command.
func MarkReordered(app *cli.App) {
	if app.Metadata == nil {
		app.Metadata = map[string]any{}
	}
	app.Metadata[flagsAnywhereKey] = true
}

func reordered(app *cli.App) bool {
	b, _ := app.Metadata[flagsAnywhereKey].(bool)
	return b
}

// findCommand finds the command called name (or an alias) in cmds.
func findCommand(cmds []*cli.Command, name string) *cli.Command {
	for _, c := range cmds {
		if c.Name == name || slices.Contains(c.Aliases, name) {
			return c
		}
	}
	return nil
}

// lookupIn finds the flag called name (or an alias) in flags.
func lookupIn(flags []cli.Flag, name string) cli.Flag {
	for _, f := range flags {
		if slices.Contains(f.Names(), name) {
			return f
		}
	}
	return nil
}
