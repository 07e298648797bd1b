package cliapp

import (
	"errors"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

func TestUnknownCommand(t *testing.T) {
	app := &cli.App{Name: "azdo-vault", Flags: []cli.Flag{&cli.StringFlag{Name: "log-format"}}, Commands: []*cli.Command{
		{Name: "serve"},
		{Name: "env", Subcommands: []*cli.Command{{Name: "create"}, {Name: "list"}, {Name: "revoke"}}},
	}}
	tests := []struct {
		name string
		args []string
		want string // "" = no error
	}{
		{name: "known", args: []string{"env", "create", "--owner", "x"}},
		{name: "arguments of a command", args: []string{"serve", "whatever"}},
		{name: "help", args: []string{"help", "serve"}},
		{name: "flag value is not a command", args: []string{"--log-format", "json", "serve"}},
		{name: "typo in a subcommand", args: []string{"env", "creat", "--owner", "x"}, want: `unknown command "env creat"; did you mean "env create"?`},
		{name: "typo at the top", args: []string{"serv"}, want: `unknown command "serv"; did you mean "serve"?`},
		{name: "nothing close", args: []string{"xyzzy"}, want: `unknown command "xyzzy"; the commands are env, serve`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := unknownCommand(app, tt.args)
			var ue UsageError
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("unknownCommand(%q) = %v; want nil", tt.args, err)
			case tt.want != "" && (err == nil || !errors.As(err, &ue) || err.Error() != tt.want):
				t.Errorf("unknownCommand(%q) = %v; want usage error %q", tt.args, err, tt.want)
			}
		})
	}
}

func TestExplainValue(t *testing.T) {
	tests := []struct{ in, want string }{
		{`invalid value "30days" for flag -ttl: parse error`, `e.g. 30m`},
		{`invalid value "abc" for flag -depth: parse error`, `--depth "abc" does not parse`},
		{`some other error`, `some other error`},
	}
	for _, tt := range tests {
		got := explainValue(errors.New(tt.in)).Error()
		if !strings.Contains(got, strings.TrimPrefix(tt.want, "e.g. ")) {
			t.Errorf("explainValue(%q) = %q; want it to contain %q", tt.in, got, tt.want)
		}
	}
}
