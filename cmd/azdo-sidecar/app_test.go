package main

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"

	"github.com/azdo-sidecar/azdo-sidecar/config"
	"github.com/azdo-sidecar/azdo-sidecar/internal/cliapp"
	"github.com/azdo-sidecar/azdo-sidecar/internal/version"
)

func runForTest(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), append([]string{"azdo-sidecar"}, args...), strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

func TestRunExitCodes(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		env    map[string]string
		code   int
		stdout string // substring; "" means stdout must be empty
		stderr string // substring of the one stderr line; "" means empty
	}{
		{name: "version", args: []string{"--version"}, stdout: version.Get().String()},
		{name: "unknown flag", args: []string{"serve", "--no-such-flag"}, code: 2, stderr: "no-such-flag"},
		{name: "unknown command", args: []string{"no-such-command"}, code: 2, stderr: `unknown command "no-such-command"; the commands are clone, connect,`},
		{name: "mistyped command", args: []string{"clon", "https://dev.azure.com/o/p/_git/r"}, code: 2, stderr: `unknown command "clon"; did you mean "clone"?`},
		{name: "bad log format", args: []string{"--log-format", "xml", "status"}, code: 1, stderr: "log-format: \"xml\"; allowed: text, json"},
		{name: "flags after the arguments", args: []string{"clone", "https://dev.azure.com/o/p/_git/r", "dir", "--depth", "-1"}, code: 2, stderr: "--depth -1: want 0"},
		{name: "bad log format after the command", args: []string{"status", "--log-format", "xml"}, code: 1, stderr: "log-format: \"xml\"; allowed: text, json"},
		{name: "bad log format from env", args: []string{"status"}, env: map[string]string{"AZDO_LOG_FORMAT": "yaml"}, code: 1, stderr: "log-format: "},
		{name: "missing config file", args: []string{"status", "--config", "/nonexistent/azdo.yaml"}, code: 1, stderr: "config: \"/nonexistent/azdo.yaml\" does not exist"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			code, stdout, stderr := runForTest(t, tt.args...)
			if code != tt.code {
				t.Errorf("run(%q) = %d; want %d (stderr %q)", tt.args, code, tt.code, stderr)
			}
			if tt.stdout == "" && stdout != "" || !strings.Contains(stdout, tt.stdout) {
				t.Errorf("run(%q) stdout = %q; want %q", tt.args, stdout, tt.stdout)
			}
			if tt.stderr == "" && stderr != "" || !strings.Contains(stderr, tt.stderr) {
				t.Errorf("run(%q) stderr = %q; want %q", tt.args, stderr, tt.stderr)
			}
			if tt.stderr != "" && strings.Count(strings.TrimSuffix(stderr, "\n"), "\n") != 0 {
				t.Errorf("run(%q) stderr = %q; want one line", tt.args, stderr)
			}
		})
	}
}

// TestEveryFlagReadsEnvAndFile: each flag of each command, subcommands
// included, has exactly its AZDO_* variable, and each runnable command can
// reach a --config flag.
func TestEveryFlagReadsEnvAndFile(t *testing.T) {
	app := newApp(cliapp.NewEnv(strings.NewReader(""), &bytes.Buffer{}, &bytes.Buffer{}))
	checkFlags(t, "global", app.Flags)
	var walk func(path string, cmds []*cli.Command, hasConfig bool)
	walk = func(path string, cmds []*cli.Command, hasConfig bool) {
		for _, c := range cmds {
			name := path + " " + c.Name
			checkFlags(t, name, c.Flags)
			has := hasConfig || slices.ContainsFunc(c.Flags, func(f cli.Flag) bool { return f.Names()[0] == config.ConfigFlag })
			if !has && len(c.Subcommands) == 0 {
				t.Errorf("%s: no --config flag reachable", name)
			}
			walk(name, c.Subcommands, has)
		}
	}
	walk("azdo-sidecar", app.Commands, false)
}

func checkFlags(t *testing.T, where string, flags []cli.Flag) {
	t.Helper()
	for _, f := range flags {
		d, ok := f.(cli.DocGenerationFlag)
		if !ok {
			t.Errorf("%s --%s: flag type %T has no documentation", where, f.Names()[0], f)
			continue
		}
		if got, want := d.GetEnvVars(), []string{config.EnvName(f.Names()[0])}; !slices.Equal(got, want) {
			t.Errorf("%s --%s: EnvVars = %q; want %q", where, f.Names()[0], got, want)
		}
	}
}

// TestNoPATFlag: the PAT itself is never a flag (command lines are visible
// to every process) and never a config file key.
func TestNoPATFlag(t *testing.T) {
	app := newApp(cliapp.NewEnv(strings.NewReader(""), &bytes.Buffer{}, &bytes.Buffer{}))
	var walk func(cmds []*cli.Command)
	walk = func(cmds []*cli.Command) {
		for _, c := range cmds {
			for _, f := range c.Flags {
				for _, n := range f.Names() {
					if n == "pat" || n == "token" || n == "password" {
						t.Errorf("%s has a --%s flag; secrets come from files or %s only", c.Name, n, config.EnvPAT)
					}
				}
			}
			walk(c.Subcommands)
		}
	}
	walk(app.Commands)
}
