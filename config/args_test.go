package config

import (
	"slices"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

func TestReorder(t *testing.T) {
	app := &cli.App{
		Name:    "t",
		Version: "v1.2.3",
		Flags:   []cli.Flag{&cli.StringFlag{Name: FlagLogFormat}},
		Commands: []*cli.Command{
			{Name: "serve", Flags: []cli.Flag{ListenFlag(), HostFlag(), &cli.BoolFlag{Name: "insecure"}}},
			{Name: "clone", Flags: []cli.Flag{&cli.IntFlag{Name: "depth"}, &cli.BoolFlag{Name: "recurse-submodules"}}},
			{
				Name:        "credential",
				Aliases:     []string{"cred"},
				Flags:       []cli.Flag{SocketFlag(), HostFlag()},
				Subcommands: []*cli.Command{{Name: "get"}, {Name: "store"}},
			},
		},
	}
	tests := []struct {
		name string
		in   string
		want string
	}{
		{name: "already in place", in: "t --log-format json serve --listen a:1", want: "t --log-format json serve --listen a:1"},
		{name: "global flag after the command", in: "t serve --log-format json --listen a:1", want: "t --log-format json serve --listen a:1"},
		{name: "global flag with =", in: "t serve --listen=a:1 --log-format=json", want: "t --log-format=json serve --listen=a:1"},
		{name: "parent flags after the subcommand", in: "t credential get --socket /s --host h1 --host h2", want: "t credential --socket /s --host h1 --host h2 get"},
		{name: "alias", in: "t cred get --socket /s", want: "t cred --socket /s get"},
		{name: "flags after arguments", in: "t clone https://x/_git/r dir --depth 1 --recurse-submodules", want: "t clone --depth 1 --recurse-submodules https://x/_git/r dir"},
		{name: "bool flag takes no value", in: "t serve --insecure a:1", want: "t serve --insecure a:1"},
		{name: "value that looks like a command", in: "t serve --listen serve", want: "t serve --listen serve"},
		{name: "value that looks like a flag", in: "t credential get --socket -odd", want: "t credential --socket -odd get"},
		{name: "unknown flag stays with the deepest command", in: "t credential get --frob", want: "t credential get --frob"},
		{name: "help stays", in: "t serve --help", want: "t serve --help"},
		{name: "version after the command", in: "t serve --version", want: "t --version serve"},
		{name: "flag of a deeper command before it stays", in: "t --listen a:1 serve", want: "t --listen a:1 serve"},
		{name: "after --", in: "t clone --depth 1 -- --weird-url", want: "t clone --depth 1 -- --weird-url"},
		{name: "no command", in: "t --log-format json", want: "t --log-format json"},
		{name: "flag without its value at the end", in: "t serve --listen", want: "t serve --listen"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Reorder(app, strings.Fields(tt.in))
			if want := strings.Fields(tt.want); !slices.Equal(got, want) {
				t.Errorf("Reorder(%q) = %q; want %q", tt.in, got, want)
			}
		})
	}
}
