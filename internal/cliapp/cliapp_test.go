package cliapp

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"

	"github.com/azdo-sidecar/azdo-sidecar/config"
)

func TestRun(t *testing.T) {
	tests := []struct {
		name   string
		action cli.ActionFunc
		args   []string
		code   int
		stderr string
	}{
		{name: "ok", action: func(*cli.Context) error { return nil }, code: 0},
		{name: "error", action: func(*cli.Context) error { return errors.New("boom") }, code: 1, stderr: "app: boom\n"},
		{name: "exit coder", action: func(*cli.Context) error { return cli.Exit("no such host", 4) }, code: 4, stderr: "app: no such host\n"},
		{name: "silent exit coder", action: func(*cli.Context) error { return cli.Exit("", 5) }, code: 5},
		{name: "exit coder zero is still a failure", action: func(*cli.Context) error { return cli.Exit("odd", 0) }, code: 1, stderr: "app: odd\n"},
		{name: "usage error", action: func(*cli.Context) error { return nil }, args: []string{"--nope"}, code: 2, stderr: "app: flag provided but not defined: -nope (see --help)\n"},
		{name: "usage error from action", action: func(*cli.Context) error { return UsageError{errors.New("takes one ID")} }, code: 2, stderr: "app: takes one ID (see --help)\n"},
		{name: "bad log level", action: func(*cli.Context) error { return nil }, args: []string{"--log-level", "loud"}, code: 1, stderr: "app: log-level: \"loud\"; allowed: debug, info, warn, error\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			e := NewEnv(strings.NewReader(""), &out, &errb)
			app := &cli.App{Name: "app", Commands: []*cli.Command{{Name: "cmd", Action: tt.action}}}
			app.Flags = GlobalFlags()
			Prepare(app, e, config.Options{})
			args := []string{"app"}
			if len(tt.args) > 0 && tt.args[0] == "--log-level" {
				args = append(append(args, tt.args...), "cmd")
			} else {
				args = append(append(args, "cmd"), tt.args...)
			}
			code := Run(context.Background(), app, args, &errb)
			if code != tt.code || errb.String() != tt.stderr {
				t.Errorf("Run(%q) = %d, stderr %q; want %d, %q", args, code, errb.String(), tt.code, tt.stderr)
			}
			if out.Len() != 0 {
				t.Errorf("Run(%q) wrote %q on stdout; want nothing", args, out.String())
			}
		})
	}
}

func TestLoggerFollowsSettings(t *testing.T) {
	var out, errb bytes.Buffer
	e := NewEnv(strings.NewReader(""), &out, &errb)
	app := &cli.App{Name: "app", Flags: GlobalFlags(), Commands: []*cli.Command{{
		Name:   "cmd",
		Action: func(*cli.Context) error { e.Log.Info("hello"); return nil },
	}}}
	Prepare(app, e, config.Options{})
	t.Setenv("AZDO_LOG_FORMAT", "json")
	if code := Run(context.Background(), app, []string{"app", "cmd"}, &errb); code != 0 {
		t.Fatalf("Run = %d, stderr %q", code, errb.String())
	}
	if !strings.HasPrefix(errb.String(), "{") || !strings.Contains(errb.String(), `"msg":"hello"`) || out.Len() != 0 {
		t.Errorf("with AZDO_LOG_FORMAT=json: stderr %q, stdout %q; want one JSON log line on stderr only", errb.String(), out.String())
	}
}
