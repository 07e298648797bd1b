package config

import (
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"
)

// Reference renders the configuration reference of a prepared app as
// Markdown: one table per command (flag, environment variable, default,
// description). The README embeds it, and a test keeps the two equal.
func Reference(app *cli.App) string {
	var b strings.Builder
	if len(app.Flags) > 0 {
		if reordered(app) {
			fmt.Fprintf(&b, "#### `%s` global flags\n\nGiven before or after the command (`%s --log-format json serve`, `%s serve --log-format json`); every command's flags may also follow its arguments.\n\n", app.Name, app.Name, app.Name)
		} else {
			fmt.Fprintf(&b, "#### `%s` global flags\n\nGiven before the command (`%s --log-format json serve`).\n\n", app.Name, app.Name)
		}
		table(&b, app.Flags)
	}
	var walk func(prefix string, cmds []*cli.Command)
	walk = func(prefix string, cmds []*cli.Command) {
		for _, c := range cmds {
			if c.Hidden || c.Name == "help" {
				continue
			}
			name := prefix + " " + c.Name
			flags := visible(c.Flags)
			// Flagless subcommands (credential get) are named in their
			// parent's heading already.
			if len(flags) > 0 || len(c.Subcommands) == 0 && prefix == app.Name {
				head := name
				if c.ArgsUsage != "" {
					head += " " + c.ArgsUsage
				}
				fmt.Fprintf(&b, "#### `%s`\n\n%s.\n\n", head, upperFirst(c.Usage))
				if len(flags) == 0 {
					b.WriteString("No flags.\n\n")
				} else {
					table(&b, flags)
				}
			}
			walk(name, c.Subcommands)
		}
	}
	walk(app.Name, app.Commands)
	return b.String()
}

func visible(flags []cli.Flag) []cli.Flag {
	var out []cli.Flag
	for _, f := range flags {
		if v, ok := f.(cli.VisibleFlag); ok && !v.IsVisible() {
			continue
		}
		out = append(out, f)
	}
	return out
}

func table(b *strings.Builder, flags []cli.Flag) {
	b.WriteString("| flag | environment | default | description |\n| --- | --- | --- | --- |\n")
	for _, f := range flags {
		d, ok := f.(cli.DocGenerationFlag)
		if !ok {
			continue
		}
		placeholder, usage := unquoteUsage(d.GetUsage())
		flag := "--" + f.Names()[0]
		if d.TakesValue() {
			if placeholder == "" {
				placeholder = "value"
			}
			flag += " " + placeholder
		}
		if isMulti(f) {
			usage += " (repeatable; comma-separated in the environment)"
		}
		def := d.GetDefaultText()
		if _, isBool := f.(*cli.BoolFlag); isBool && def == "false" {
			def = ""
		}
		def = strings.Trim(def, `"`)
		fmt.Fprintf(b, "| %s | %s | %s | %s |\n", code(flag), code(strings.Join(d.GetEnvVars(), ", ")), code(def), cell(usage))
	}
	b.WriteString("\n")
}

func code(s string) string {
	if s == "" {
		return ""
	}
	return "`" + cell(s) + "`"
}

func cell(s string) string { return strings.ReplaceAll(s, "|", `\|`) }

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// unquoteUsage returns the `name` marked in a usage string (the value's
// placeholder, as urfave/cli shows it) and the usage without back quotes.
func unquoteUsage(usage string) (string, string) {
	if i := strings.Index(usage, "`"); i >= 0 {
		if j := strings.Index(usage[i+1:], "`"); j >= 0 {
			name := usage[i+1 : i+1+j]
			return name, usage[:i] + name + usage[i+1+j+1:]
		}
	}
	return "", usage
}
