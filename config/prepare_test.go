package config

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v2"
)

// got is what a test app's command saw.
type got struct {
	listen string
	hosts  []string
	margin time.Duration
	socket string
	log    string // --log-format, a global flag
}

// testApp is a small app shaped like azdo-sidecar: a global flag, a plain
// command and a credential-like parent whose flags precede the operation.
func testApp(out *got) *cli.App {
	app := &cli.App{
		Name:           "t",
		Flags:          []cli.Flag{&cli.StringFlag{Name: FlagLogFormat, Value: "text"}},
		ExitErrHandler: func(*cli.Context, error) {},
		Writer:         &strings.Builder{},
		ErrWriter:      &strings.Builder{},
		Commands: []*cli.Command{
			{
				Name: "serve",
				Flags: []cli.Flag{
					ListenFlag(),
					HostFlag(),
					&cli.DurationFlag{Name: "refresh-margin", Value: DefaultRefreshMargin},
				},
				Action: func(c *cli.Context) error {
					*out = got{listen: c.String(FlagListen), hosts: c.StringSlice(FlagHost), margin: c.Duration("refresh-margin"), log: c.String(FlagLogFormat)}
					return nil
				},
			},
			{
				Name:  "credential",
				Flags: []cli.Flag{SocketFlag(), HostFlag()},
				Subcommands: []*cli.Command{{
					Name: "get",
					Action: func(c *cli.Context) error {
						*out = got{socket: c.String(FlagSocket), hosts: c.StringSlice(FlagHost), log: c.String(FlagLogFormat)}
						return nil
					},
				}},
			},
			{
				Name:   "need",
				Flags:  []cli.Flag{&cli.StringFlag{Name: "owner", Required: true}},
				Action: func(c *cli.Context) error { out.listen = c.String("owner"); return nil },
			},
		},
	}
	Prepare(app, Options{FileKeys: []string{"providers"}})
	return app
}

func writeFile(t *testing.T, name, content string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPrecedence(t *testing.T) {
	file := writeFile(t, "c.yaml", "listen: 127.0.0.1:1111\nhost: [file-a.test, file-b.test]\nrefresh_margin: 2m\nsocket: /file/sock\nproviders:\n  - host: x\n", 0o644)
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want got
	}{
		{name: "defaults", args: []string{"serve"}, want: got{listen: DefaultListen, margin: DefaultRefreshMargin}},
		{name: "file beats default", args: []string{"serve", "--config", file}, want: got{listen: "127.0.0.1:1111", hosts: []string{"file-a.test", "file-b.test"}, margin: 2 * time.Minute}},
		{name: "config from env", args: []string{"serve"}, env: map[string]string{"AZDO_CONFIG": file}, want: got{listen: "127.0.0.1:1111", hosts: []string{"file-a.test", "file-b.test"}, margin: 2 * time.Minute}},
		{
			name: "env beats file",
			args: []string{"serve", "--config", file},
			env:  map[string]string{"AZDO_LISTEN": "127.0.0.1:2222", "AZDO_HOST": "env-a.test,env-b.test"},
			want: got{listen: "127.0.0.1:2222", hosts: []string{"env-a.test", "env-b.test"}, margin: 2 * time.Minute},
		},
		{
			name: "flag beats env",
			args: []string{"serve", "--config", file, "--listen", "127.0.0.1:3333", "--host", "flag-a.test", "--host", "flag-b.test"},
			env:  map[string]string{"AZDO_LISTEN": "127.0.0.1:2222", "AZDO_HOST": "env-a.test"},
			want: got{listen: "127.0.0.1:3333", hosts: []string{"flag-a.test", "flag-b.test"}, margin: 2 * time.Minute},
		},
		{name: "env beats default", args: []string{"serve"}, env: map[string]string{"AZDO_REFRESH_MARGIN": "90s"}, want: got{listen: DefaultListen, margin: 90 * time.Second}},
		{name: "parent flags from file", args: []string{"credential", "--config", file, "get"}, want: got{socket: "/file/sock", hosts: []string{"file-a.test", "file-b.test"}}},
		{name: "parent flags from env", args: []string{"credential", "get"}, env: map[string]string{"AZDO_SOCKET": "/env/sock", "AZDO_HOST": "e.test"}, want: got{socket: "/env/sock", hosts: []string{"e.test"}}},
		{name: "parent flag beats env", args: []string{"credential", "--socket", "/flag/sock", "get"}, env: map[string]string{"AZDO_SOCKET": "/env/sock"}, want: got{socket: "/flag/sock"}},
		{name: "parent flag after the subcommand", args: []string{"credential", "get", "--socket", "/flag/sock", "--host", "a.test", "--host", "b.test"}, env: map[string]string{"AZDO_SOCKET": "/env/sock"},
			want: got{socket: "/flag/sock", hosts: []string{"a.test", "b.test"}}},
		{name: "flag after the subcommand beats the parent's", args: []string{"credential", "--socket", "/parent/sock", "get", "--socket", "/child/sock"}, want: got{socket: "/child/sock"}},
		{name: "config after the subcommand", args: []string{"credential", "get", "--config", file}, want: got{socket: "/file/sock", hosts: []string{"file-a.test", "file-b.test"}}},
		{name: "env beats file after the subcommand", args: []string{"credential", "get", "--config", file}, env: map[string]string{"AZDO_HOST": "e.test"}, want: got{socket: "/file/sock", hosts: []string{"e.test"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			var out got
			args := append([]string{"t"}, tt.args...)
			app := testApp(&out)
			if err := app.RunContext(context.Background(), Reorder(app, args)); err != nil {
				t.Fatalf("Run(%q) = %v", args, err)
			}
			if out.listen != tt.want.listen || out.margin != tt.want.margin || out.socket != tt.want.socket || !slices.Equal(out.hosts, tt.want.hosts) {
				t.Errorf("Run(%q) saw %+v; want %+v", args, out, tt.want)
			}
		})
	}
}

func TestPrepareErrors(t *testing.T) {
	tests := []struct {
		name     string
		file     string
		args     []string
		sentinel error
		key      string
		inMsg    string
	}{
		{name: "unknown key", file: "listen: a:1\nlisten_adress: b:2\n", args: []string{"serve"}, sentinel: ErrUnknownKey, key: "listen_adress", inMsg: "allowed keys: host, listen"},
		{name: "list for single value", file: "listen: [a:1, b:2]\n", args: []string{"serve"}, sentinel: ErrBadValue, key: "listen", inMsg: "single value"},
		{name: "both spellings", file: "refresh-margin: 1m\nrefresh_margin: 2m\n", args: []string{"serve"}, sentinel: ErrConflict, inMsg: "set twice"},
		{name: "bad duration", file: "refresh-margin: soon\n", args: []string{"serve"}, sentinel: ErrBadValue, key: "refresh-margin"},
		{name: "not a mapping", file: "- a\n- b\n", args: []string{"serve"}, sentinel: ErrBadValue, key: "config"},
		{name: "required missing", args: []string{"need"}, sentinel: ErrMissing, key: "owner", inMsg: "AZDO_OWNER"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"t"}, tt.args...)
			if tt.file != "" {
				args = append(args, "--config", writeFile(t, "c.yaml", tt.file, 0o644))
			}
			var out got
			err := testApp(&out).RunContext(context.Background(), args)
			if !errors.Is(err, tt.sentinel) {
				t.Fatalf("Run(%q) = %v; want %v", args, err, tt.sentinel)
			}
			var ce *Error
			if tt.key != "" && (!errors.As(err, &ce) || ce.Key != tt.key) {
				t.Errorf("Run(%q) = %v; want the key %q named", args, err, tt.key)
			}
			if !strings.Contains(err.Error(), tt.inMsg) {
				t.Errorf("Run(%q) = %q; want it to contain %q", args, err, tt.inMsg)
			}
		})
	}
}

func TestRequiredFromFileAndEnv(t *testing.T) {
	file := writeFile(t, "c.yaml", "owner: alice\n", 0o644)
	var out got
	if err := testApp(&out).RunContext(context.Background(), []string{"t", "need", "--config", file}); err != nil || out.listen != "alice" {
		t.Errorf("need --config: err %v, owner %q; want alice", err, out.listen)
	}
	t.Setenv("AZDO_OWNER", "bob")
	if err := testApp(&out).RunContext(context.Background(), []string{"t", "need", "--config", file}); err != nil || out.listen != "bob" {
		t.Errorf("need with AZDO_OWNER: err %v, owner %q; want bob", err, out.listen)
	}
}

func TestMissingConfigFile(t *testing.T) {
	var out got
	err := testApp(&out).RunContext(context.Background(), []string{"t", "serve", "--config", "/nonexistent/c.yaml"})
	if !errors.Is(err, ErrMissingFile) || !strings.Contains(err.Error(), "/nonexistent/c.yaml") {
		t.Errorf("serve --config /nonexistent = %v; want ErrMissingFile naming the path", err)
	}
}

func TestPrepareSetsEnvVars(t *testing.T) {
	var out got
	app := testApp(&out)
	for _, cmd := range app.Commands {
		for _, f := range cmd.Flags {
			name := f.Names()[0]
			env := f.(cli.DocGenerationFlag).GetEnvVars()
			if want := []string{EnvName(name)}; !slices.Equal(env, want) {
				t.Errorf("%s --%s EnvVars = %q; want %q", cmd.Name, name, env, want)
			}
		}
	}
}

func TestEnvName(t *testing.T) {
	for in, want := range map[string]string{"vault-url": "AZDO_VAULT_URL", "host": "AZDO_HOST", "upstream-ca-file": "AZDO_UPSTREAM_CA_FILE"} {
		if got := EnvName(in); got != want {
			t.Errorf("EnvName(%q) = %q; want %q", in, got, want)
		}
	}
}

// TestGlobalFlagAfterCommand: with Reorder, a global flag works before the
// command, after it, from the environment and from the file, with the usual
// precedence.
func TestGlobalFlagAfterCommand(t *testing.T) {
	file := writeFile(t, "c.yaml", "log-format: json\n", 0o644)
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{name: "default", args: []string{"serve"}, want: "text"},
		{name: "before the command", args: []string{"--log-format", "json", "serve"}, want: "json"},
		{name: "after the command", args: []string{"serve", "--log-format", "json"}, want: "json"},
		{name: "after a parent command", args: []string{"credential", "--log-format", "json", "get"}, want: "json"},
		{name: "before a parent command", args: []string{"--log-format", "json", "credential", "get"}, want: "json"},
		{name: "env", args: []string{"serve"}, env: map[string]string{"AZDO_LOG_FORMAT": "json"}, want: "json"},
		{name: "file", args: []string{"serve", "--config", file}, want: "json"},
		{name: "global flag beats file", args: []string{"--log-format", "text", "serve", "--config", file}, want: "text"},
		{name: "flag after command beats env", args: []string{"serve", "--log-format", "text"}, env: map[string]string{"AZDO_LOG_FORMAT": "json"}, want: "text"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			var out got
			args := append([]string{"t"}, tt.args...)
			app := testApp(&out)
			if err := app.RunContext(context.Background(), Reorder(app, args)); err != nil {
				t.Fatalf("Run(%q) = %v", args, err)
			}
			if out.log != tt.want {
				t.Errorf("Run(%q) saw --log-format %q; want %q", args, out.log, tt.want)
			}
		})
	}
}
