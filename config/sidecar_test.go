package config

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"

	"github.com/azdo-sidecar/azdo-sidecar/secret"
)

func TestTokenSourceValidate(t *testing.T) {
	dir := t.TempDir()
	envTok := writeFile(t, "env-token", "tok\n", 0o600)
	patFile := writeFile(t, "pat", "pat\n", 0o600)
	missing := dir + "/missing"
	const patValue = "patvalue-that-must-not-leak-0123456789"
	tests := []struct {
		name     string
		ts       TokenSource
		mode     Mode
		sentinel error
		key      string
	}{
		{name: "none", ts: TokenSource{}, mode: ModeNone},
		{name: "vault", ts: TokenSource{VaultURL: "https://vault.example.com", EnvTokenFile: envTok}, mode: ModeVault},
		{name: "vault with CA", ts: TokenSource{VaultURL: "https://vault.example.com:8443/base", EnvTokenFile: envTok, VaultCAFile: envTok}, mode: ModeVault},
		{name: "vault on loopback http", ts: TokenSource{VaultURL: "http://127.0.0.1:8080", EnvTokenFile: envTok}, mode: ModeVault},
		{name: "pat file", ts: TokenSource{PATFile: patFile}, mode: ModePAT},
		{name: "pat env", ts: TokenSource{PAT: secret.New(patValue)}, mode: ModePAT},
		{name: "vault and pat file", ts: TokenSource{VaultURL: "https://v.test", EnvTokenFile: envTok, PATFile: patFile}, mode: ModeVault, sentinel: ErrConflict, key: FlagVaultURL},
		{name: "vault and AZDO_PAT", ts: TokenSource{VaultURL: "https://v.test", EnvTokenFile: envTok, PAT: secret.New(patValue)}, mode: ModeVault, sentinel: ErrConflict, key: FlagVaultURL},
		{name: "pat file and AZDO_PAT", ts: TokenSource{PATFile: patFile, PAT: secret.New(patValue)}, mode: ModePAT, sentinel: ErrConflict, key: FlagPATFile},
		{name: "env token without vault", ts: TokenSource{EnvTokenFile: envTok}, sentinel: ErrConflict, key: FlagEnvTokenFile},
		{name: "vault CA without vault", ts: TokenSource{VaultCAFile: envTok}, sentinel: ErrConflict, key: FlagVaultCAFile},
		{name: "vault without env token", ts: TokenSource{VaultURL: "https://v.test"}, mode: ModeVault, sentinel: ErrMissing, key: FlagEnvTokenFile},
		{name: "env token file missing", ts: TokenSource{VaultURL: "https://v.test", EnvTokenFile: missing}, mode: ModeVault, sentinel: ErrMissingFile, key: FlagEnvTokenFile},
		{name: "vault CA file missing", ts: TokenSource{VaultURL: "https://v.test", EnvTokenFile: envTok, VaultCAFile: missing}, mode: ModeVault, sentinel: ErrMissingFile, key: FlagVaultCAFile},
		{name: "pat file missing", ts: TokenSource{PATFile: missing}, mode: ModePAT, sentinel: ErrMissingFile, key: FlagPATFile},
		{name: "vault over plain http", ts: TokenSource{VaultURL: "http://vault.example.com", EnvTokenFile: envTok}, mode: ModeVault, sentinel: ErrBadValue, key: FlagVaultURL},
		{name: "vault url relative", ts: TokenSource{VaultURL: "vault.example.com", EnvTokenFile: envTok}, mode: ModeVault, sentinel: ErrBadValue, key: FlagVaultURL},
		{name: "vault url with user", ts: TokenSource{VaultURL: "https://u:" + patValue + "@v.test", EnvTokenFile: envTok}, mode: ModeVault, sentinel: ErrBadValue, key: FlagVaultURL},
		{name: "AZDO_PAT with newline", ts: TokenSource{PAT: secret.New(patValue + "\n" + patValue)}, mode: ModePAT, sentinel: ErrBadValue, key: EnvPAT},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.ts.Mode(); got != tt.mode {
				t.Errorf("Mode() = %v; want %v", got, tt.mode)
			}
			err := tt.ts.Validate()
			if tt.sentinel == nil {
				if err != nil {
					t.Errorf("Validate() = %v; want nil", err)
				}
				return
			}
			var ce *Error
			if !errors.Is(err, tt.sentinel) || !errors.As(err, &ce) || ce.Key != tt.key {
				t.Fatalf("Validate() = %v; want %v naming %s", err, tt.sentinel, tt.key)
			}
			if strings.Contains(err.Error(), patValue) {
				t.Errorf("Validate() = %q; contains the PAT", err)
			}
		})
	}
}

func TestReadPAT(t *testing.T) {
	p := writeFile(t, "pat", "from-file\n", 0o600)
	if got, err := (TokenSource{PATFile: p}).ReadPAT(); err != nil || got.Reveal() != "from-file" {
		t.Errorf("ReadPAT(file) = %v, %v; want from-file", got, err)
	}
	if got, err := (TokenSource{PAT: secret.New("from-env")}).ReadPAT(); err != nil || got.Reveal() != "from-env" {
		t.Errorf("ReadPAT(env) = %v, %v; want from-env", got, err)
	}
	if _, err := (TokenSource{}).ReadPAT(); !errors.Is(err, ErrMissing) {
		t.Errorf("ReadPAT(none) = %v; want ErrMissing", err)
	}
}

func TestDefaults(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	tests := []struct {
		name string
		got  string
		want string
	}{
		{name: "socket xdg", got: DefaultSocket(env(map[string]string{"XDG_RUNTIME_DIR": "/run/user/1000"}), "/home/me/.local/state/azdo-sidecar"), want: "/run/user/1000/azdo-sidecar/sock"},
		{name: "socket state dir", got: DefaultSocket(env(nil), "/home/me/.local/state/azdo-sidecar"), want: "/home/me/.local/state/azdo-sidecar/sock"},
		{name: "state xdg", got: DefaultStateDir(env(map[string]string{"XDG_STATE_HOME": "/s", "HOME": "/h"})), want: "/s/azdo-sidecar"},
		{name: "state home", got: DefaultStateDir(env(map[string]string{"HOME": "/h"})), want: "/h/.local/state/azdo-sidecar"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s = %q; want %q", tt.name, tt.got, tt.want)
		}
	}
}

// TestPathsAreAbsolute: a relative --socket or --state-dir is taken from
// the working directory, so the ready line and the git config that setup
// writes name paths that work from anywhere.
func TestPathsAreAbsolute(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	var sock, state string
	app := &cli.App{
		Name:           "t",
		ExitErrHandler: func(*cli.Context, error) {},
		Writer:         &strings.Builder{},
		ErrWriter:      &strings.Builder{},
		Commands: []*cli.Command{{
			Name:  "serve",
			Flags: []cli.Flag{SocketFlag(), StateDirFlag()},
			Action: func(c *cli.Context) error {
				sock, state = SocketPath(c), StateDir(c)
				return nil
			},
		}},
	}
	Prepare(app, Options{})
	args := []string{"t", "serve", "--socket", "run/sock", "--state-dir", "state"}
	if err := app.RunContext(context.Background(), args); err != nil {
		t.Fatalf("Run(%q) = %v", args, err)
	}
	if want := filepath.Join(wd, "run", "sock"); sock != want {
		t.Errorf("SocketPath(--socket run/sock) = %q; want %q", sock, want)
	}
	if want := filepath.Join(wd, "state"); state != want {
		t.Errorf("StateDir(--state-dir state) = %q; want %q", state, want)
	}
}
