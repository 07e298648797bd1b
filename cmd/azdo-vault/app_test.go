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

func testApp() *cli.App {
	return newApp(cliapp.NewEnv(strings.NewReader(""), &bytes.Buffer{}, &bytes.Buffer{}))
}

// TestVaultFileAcceptsServeFlags: the vault config file may set every flag
// of `serve` (and the global flags), so LoadVaultFile must know them all.
// When this fails, add the new flag's name to config.VaultFlagKeys.
func TestVaultFileAcceptsServeFlags(t *testing.T) {
	app := testApp()
	flags := slices.Clone(app.Flags)
	for _, c := range app.Commands {
		if c.Name == "serve" {
			flags = append(flags, c.Flags...)
		}
	}
	for _, f := range flags {
		name := f.Names()[0]
		if name == config.ConfigFlag {
			continue
		}
		if !slices.Contains(config.VaultFlagKeys, name) {
			t.Errorf("azdo-vault flag --%s is not in config.VaultFlagKeys; a vault config file setting %q would be rejected", name, name)
		}
	}
}

func TestEveryFlagReadsEnv(t *testing.T) {
	var walk func(path string, flags []cli.Flag, cmds []*cli.Command)
	walk = func(path string, flags []cli.Flag, cmds []*cli.Command) {
		for _, f := range flags {
			d := f.(cli.DocGenerationFlag)
			if got, want := d.GetEnvVars(), []string{config.EnvName(f.Names()[0])}; !slices.Equal(got, want) {
				t.Errorf("%s --%s: EnvVars = %q; want %q", path, f.Names()[0], got, want)
			}
		}
		for _, c := range cmds {
			walk(path+" "+c.Name, c.Flags, c.Subcommands)
		}
	}
	app := testApp()
	walk("azdo-vault", app.Flags, app.Commands)
}

func TestVersion(t *testing.T) {
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"azdo-vault", "--version"}, strings.NewReader(""), &out, &errb)
	if code != 0 || !strings.Contains(out.String(), version.Get().String()) || errb.Len() != 0 {
		t.Errorf("azdo-vault --version = %d, stdout %q, stderr %q; want 0 and the version on stdout", code, out.String(), errb.String())
	}
}

// TestGlobalFlagsAfterTheCommand: `azdo-vault keygen --key-file K
// --log-format json` works as it does before the command, and a bad value
// there is refused the same way.
func TestGlobalFlagsAfterTheCommand(t *testing.T) {
	key := t.TempDir() + "/runner.key"
	tests := []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"after the command", []string{"azdo-vault", "keygen", "--key-file", key, "--log-format", "json"}, 0, ""},
		{"bad value after the command", []string{"azdo-vault", "seal", "--public-key", "x", "--log-format", "xml"}, 1, `log-format: "xml"; allowed: text, json`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(context.Background(), tt.args, strings.NewReader(""), &out, &errb)
			if code != tt.code || !strings.Contains(errb.String(), tt.stderr) {
				t.Errorf("run(%q) = %d, stderr %q; want %d with %q", tt.args, code, errb.String(), tt.code, tt.stderr)
			}
		})
	}
}

// TestServeListenDefaults: serve listens on loopback by default; plain
// HTTP elsewhere needs --insecure-listen-any, HTTPS may listen anywhere.
func TestServeListenDefaults(t *testing.T) {
	var def string
	for _, f := range serveCommand(nil).Flags {
		if sf, ok := f.(*cli.StringFlag); ok && sf.Name == "listen" {
			def = sf.Value
		}
	}
	if def != "127.0.0.1:8443" {
		t.Errorf("serve --listen default = %q; want 127.0.0.1:8443", def)
	}
	tests := []struct {
		addr             string
		tls, insecureAny bool
		ok               bool
	}{
		{"127.0.0.1:8443", false, false, true},
		{"[::1]:8443", false, false, true},
		{"localhost:8443", false, false, true},
		{"0.0.0.0:8443", false, false, false},
		{":8443", false, false, false},
		{"10.1.2.3:8443", false, false, false},
		{"0.0.0.0:8443", true, false, true},
		{":8443", false, true, true},
	}
	for _, tt := range tests {
		err := checkListen(tt.addr, tt.tls, tt.insecureAny)
		if (err == nil) != tt.ok {
			t.Errorf("checkListen(%q, tls %v, insecure %v) = %v; want ok %v", tt.addr, tt.tls, tt.insecureAny, err, tt.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "--insecure-listen-any") {
			t.Errorf("checkListen(%q) = %v; want it to name --insecure-listen-any", tt.addr, err)
		}
	}
}
