package cliapp

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
)

// unknownCommand returns a UsageError naming the nearest command when args
// (without the program name) name a command or subcommand that does not
// exist ("env creat" → did you mean "create"?), else nil. urfave/cli
// would otherwise blame the next flag, or look for a help topic.
func unknownCommand(app *cli.App, args []string) error {
	cmds, flags, path := app.Commands, app.Flags, ""
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return nil
		}
		if strings.HasPrefix(a, "-") {
			if !strings.Contains(a, "=") && takesValue(flags, strings.TrimLeft(a, "-")) {
				i++
			}
			continue
		}
		if len(cmds) == 0 {
			return nil // an argument of a command
		}
		var found *cli.Command
		for _, c := range cmds {
			if c.HasName(a) {
				found = c
			}
		}
		if found == nil {
			if a == "help" || a == "h" {
				return nil
			}
			return UsageError{Err: fmt.Errorf("unknown command %q%s", path+a, nearest(path, a, cmds))}
		}
		if len(found.Subcommands) == 0 {
			return nil
		}
		cmds, flags, path = found.Subcommands, append(append([]cli.Flag(nil), flags...), found.Flags...), path+found.Name+" "
	}
	return nil
}

// takesValue reports whether the flag name (among flags) takes a value.
func takesValue(flags []cli.Flag, name string) bool {
	for _, f := range flags {
		for _, n := range f.Names() {
			if n == name {
				if dg, ok := f.(cli.DocGenerationFlag); ok {
					return dg.TakesValue()
				}
				return false
			}
		}
	}
	return false
}

// nearest says which command a mistyped one probably meant, or lists them.
func nearest(path, a string, cmds []*cli.Command) string {
	best, bestD := "", 3
	var names []string
	for _, c := range cmds {
		if c.Hidden {
			continue
		}
		names = append(names, c.Name)
		d := distance(a, c.Name)
		if strings.HasPrefix(c.Name, a) && len(a) >= 3 {
			d = min(d, 1)
		}
		if d < bestD {
			best, bestD = c.Name, d
		}
	}
	if best != "" {
		return fmt.Sprintf("; did you mean %q?", path+best)
	}
	sort.Strings(names)
	return "; the commands are " + path + strings.Join(names, ", "+path)
}

// distance is the Levenshtein distance of a and b.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

// badValue matches the flag package's message for a value that does not
// parse.
var badValue = regexp.MustCompile(`^invalid value "(.*)" for flag -([a-z0-9-]+): parse error$`)

// explainValue rewrites the flag package's "parse error" for a duration
// flag into one that shows the expected form.
func explainValue(err error) error {
	m := badValue.FindStringSubmatch(err.Error())
	if m == nil {
		return err
	}
	if _, derr := time.ParseDuration(m[1]); derr != nil && looksLikeDuration(m[1]) {
		return fmt.Errorf("--%s %q is not a duration: write it like 30m, 720h or 1h30m (units ns, us, ms, s, m, h; no days)", m[2], m[1])
	}
	return fmt.Errorf("--%s %q does not parse", m[2], m[1])
}

// looksLikeDuration: the value starts with a digit and has letters, as a
// duration would (a non-number for an integer flag does not).
func looksLikeDuration(v string) bool {
	return v != "" && v[0] >= '0' && v[0] <= '9' && strings.IndexFunc(v, func(r rune) bool { return r >= 'a' && r <= 'z' }) > 0
}
