package config

import (
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/azdo-sidecar/azdo-sidecar/azdo"
	"github.com/azdo-sidecar/azdo-sidecar/secret"
)

// Flag names of azdo-sidecar shared by several commands. A flag name is also
// its YAML key and, through EnvName, its environment variable.
const (
	FlagListen         = "listen"
	FlagSocket         = "socket"
	FlagStateDir       = "state-dir"
	FlagVaultURL       = "vault-url"
	FlagEnvTokenFile   = "env-token-file"
	FlagVaultCAFile    = "vault-ca-file"
	FlagPATFile        = "pat-file"
	FlagHost           = "host"
	FlagResolve        = "resolve"
	FlagUpstreamCAFile = "upstream-ca-file"
	FlagUpstreamProxy  = "upstream-proxy"
	FlagMetricsListen  = "metrics-listen"
)

// EnvPAT is the environment variable holding a PAT for standalone mode. It
// is read directly, not through a flag, so that the secret never appears on
// a command line (ps) or in a settings file.
const EnvPAT = "AZDO_PAT"

// Defaults.
const (
	DefaultListen        = "127.0.0.1:3128"
	DefaultMetricsListen = "127.0.0.1:9464"
)

// ListenFlag is --listen, the proxy address.
func ListenFlag() cli.Flag {
	return &cli.StringFlag{Name: FlagListen, Value: DefaultListen, Usage: "`ADDR` of the HTTPS proxy (host:port; port 0 picks a free one)"}
}

// SocketFlag is --socket, the sidecar's local credential API.
func SocketFlag() cli.Flag {
	return &cli.StringFlag{Name: FlagSocket, Usage: "`PATH` of the sidecar's Unix socket (credential API)", DefaultText: "$XDG_RUNTIME_DIR/azdo-sidecar/sock, else sock in --state-dir", TakesFile: true}
}

// StateDirFlag is --state-dir, where ca.pem is written.
func StateDirFlag() cli.Flag {
	return &cli.StringFlag{Name: FlagStateDir, Usage: "`DIR` where the CA certificate ca.pem is written", DefaultText: "$XDG_STATE_HOME/azdo-sidecar, else ~/.local/state/azdo-sidecar", TakesFile: true}
}

// TokenSourceFlags are the flags that choose where tokens come from: the
// runner's vault or a static PAT (see TokenSource).
func TokenSourceFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: FlagVaultURL, Usage: "`URL` of the runner's azdo-vault (vault mode; needs --env-token-file)"},
		&cli.StringFlag{Name: FlagEnvTokenFile, Usage: "`FILE` holding this environment's vault token", TakesFile: true},
		&cli.StringFlag{Name: FlagVaultCAFile, Usage: "`FILE` of extra CA certificates (PEM) for the vault", TakesFile: true},
		&cli.StringFlag{Name: FlagPATFile, Usage: "`FILE` holding a personal access token (standalone mode; or set " + EnvPAT + ")", TakesFile: true},
	}
}

// HostFlag is --host, the self-hosted Azure DevOps Server hosts.
func HostFlag() cli.Flag {
	return &cli.StringSliceFlag{Name: FlagHost, Usage: "self-hosted Azure DevOps Server `HOST[:PORT][/VDIR]`; VDIR, the virtual directory before its collections (tfs.example.com/tfs, or HOST/ for none), tells the collection in a URL apart; dev.azure.com and {org}.visualstudio.com are always included"}
}

// ResolveFlag is --resolve, curl-style address overrides.
func ResolveFlag() cli.Flag {
	return &cli.StringSliceFlag{Name: FlagResolve, Usage: "`HOST:PORT:ADDR`: dial ADDR (an IP, optionally with its own port) when the upstream is HOST:PORT, like curl"}
}

// UpstreamCAFileFlag is --upstream-ca-file, extra roots for upstream TLS.
func UpstreamCAFileFlag() cli.Flag {
	return &cli.StringFlag{Name: FlagUpstreamCAFile, Usage: "`FILE` of extra CA certificates (PEM) for Azure DevOps servers; system roots always apply", TakesFile: true}
}

// UpstreamProxyFlag is --upstream-proxy, a corporate proxy to chain to.
func UpstreamProxyFlag() cli.Flag {
	return &cli.StringFlag{Name: FlagUpstreamProxy, Usage: "`URL` of a proxy to chain to (HTTPS_PROXY and NO_PROXY are honoured too)"}
}

// MetricsListenFlag is --metrics-listen, the /metrics and /healthz address.
func MetricsListenFlag() cli.Flag {
	return &cli.StringFlag{Name: FlagMetricsListen, Value: DefaultMetricsListen, Usage: "`ADDR` serving /metrics and /healthz"}
}

// Mode is the kind of token source configured.
type Mode int

const (
	// ModeNone: no token source. serve starts unconfigured and says what to
	// pass; other commands refuse.
	ModeNone Mode = iota
	// ModeVault: tokens come from the runner's vault.
	ModeVault
	// ModePAT: standalone mode with one static PAT.
	ModePAT
)

func (m Mode) String() string {
	switch m {
	case ModeVault:
		return "vault"
	case ModePAT:
		return "pat"
	}
	return "none"
}

// TokenSource is the token-source settings of one command.
type TokenSource struct {
	VaultURL     string
	EnvTokenFile string
	VaultCAFile  string
	PATFile      string
	// PAT is the value of AZDO_PAT, if set.
	PAT secret.String
}

// TokenSourceFrom reads the token-source settings of c and AZDO_PAT. Flags
// c does not declare read as empty.
func TokenSourceFrom(c *cli.Context) TokenSource {
	ts := TokenSource{
		VaultURL:     c.String(FlagVaultURL),
		EnvTokenFile: c.String(FlagEnvTokenFile),
		VaultCAFile:  c.String(FlagVaultCAFile),
		PATFile:      c.String(FlagPATFile),
	}
	if v, ok := os.LookupEnv(EnvPAT); ok {
		ts.PAT = secret.New(v)
	}
	return ts
}

// Mode returns which token source is configured. Call Validate first.
func (t TokenSource) Mode() Mode {
	switch {
	case t.VaultURL != "":
		return ModeVault
	case t.PATFile != "" || !t.PAT.IsZero():
		return ModePAT
	}
	return ModeNone
}

// Validate checks that at most one token source is set and that it is
// complete: --vault-url needs --env-token-file, the files exist, and
// --pat-file and AZDO_PAT are not both set. No source at all is valid.
func (t TokenSource) Validate() error {
	pat := t.PATFile != "" || !t.PAT.IsZero()
	switch {
	case t.VaultURL != "" && pat:
		return errorf(FlagVaultURL, ErrConflict, "two token sources: --%s (vault mode) and --%s/%s (standalone mode); allowed: exactly one", FlagVaultURL, FlagPATFile, EnvPAT)
	case t.PATFile != "" && !t.PAT.IsZero():
		return errorf(FlagPATFile, ErrConflict, "both --%s and %s are set; allowed: one of them", FlagPATFile, EnvPAT)
	case t.VaultURL == "" && (t.EnvTokenFile != "" || t.VaultCAFile != ""):
		key := FlagEnvTokenFile
		if t.EnvTokenFile == "" {
			key = FlagVaultCAFile
		}
		return errorf(key, ErrConflict, "set without --%s; it is only used in vault mode", FlagVaultURL)
	}
	if t.VaultURL != "" {
		if _, err := checkURL(FlagVaultURL, t.VaultURL); err != nil {
			return err
		}
		if t.EnvTokenFile == "" {
			return errorf(FlagEnvTokenFile, ErrMissing, "required with --%s: the file holding this environment's token", FlagVaultURL)
		}
		if err := CheckFile(FlagEnvTokenFile, t.EnvTokenFile); err != nil {
			return err
		}
		if t.VaultCAFile != "" {
			if err := CheckFile(FlagVaultCAFile, t.VaultCAFile); err != nil {
				return err
			}
		}
	}
	if t.PATFile != "" {
		if err := CheckFile(FlagPATFile, t.PATFile); err != nil {
			return err
		}
	}
	if v := t.PAT.Reveal(); strings.ContainsAny(v, " \t\r\n\x00") {
		return errorf(EnvPAT, ErrBadValue, "contains white space or a control character; a PAT is one word")
	}
	return nil
}

// ReadPAT returns the PAT of standalone mode, from AZDO_PAT or --pat-file.
func (t TokenSource) ReadPAT() (secret.String, error) {
	if !t.PAT.IsZero() {
		return t.PAT, nil
	}
	if t.PATFile == "" {
		return secret.String{}, errorf(FlagPATFile, ErrMissing, "no PAT: pass --%s or set %s", FlagPATFile, EnvPAT)
	}
	return ReadSecretFile(FlagPATFile, t.PATFile)
}

// ReadEnvToken returns the environment token of vault mode.
func (t TokenSource) ReadEnvToken() (secret.String, error) {
	return ReadSecretFile(FlagEnvTokenFile, t.EnvTokenFile)
}

// Hosts returns the --host values of c, checked (azdo.ParseServer) and
// normalized (host[:port], then /VDIR or / when the virtual directory is
// given), without duplicates.
func Hosts(c *cli.Context) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	for _, h := range c.StringSlice(FlagHost) {
		s, err := azdo.ParseServer(strings.TrimSpace(h))
		if err != nil {
			return nil, errorf(FlagHost, ErrBadValue, "%v", err)
		}
		n := s.String()
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	if _, err := azdo.NewHosts(out); err != nil {
		return nil, errorf(FlagHost, ErrBadValue, "%v", err)
	}
	return out, nil
}

// Resolves returns the parsed --resolve values of c.
func Resolves(c *cli.Context) ([]Resolve, error) {
	var out []Resolve
	for _, s := range c.StringSlice(FlagResolve) {
		r, err := ParseResolve(s)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// SocketPath returns --socket, or its default, as an absolute path: the
// sidecar listens there, and git runs the helper in other directories.
func SocketPath(c *cli.Context) string {
	s := c.String(FlagSocket)
	if s == "" {
		s = DefaultSocket(os.Getenv, StateDir(c))
	}
	return absPath(s)
}

// absPath returns p made absolute, or p when that fails.
func absPath(p string) string {
	if abs, err := filepath.Abs(p); err == nil {
		return abs
	}
	return p
}

// DefaultSocket is $XDG_RUNTIME_DIR/azdo-sidecar/sock, else sock in the
// state directory: never a directory in /tmp, which another user could
// create first (the contract's /tmp/azdo-sidecar-<uid>/sock was such a
// path).
func DefaultSocket(getenv func(string) string, stateDir string) string {
	if d := getenv("XDG_RUNTIME_DIR"); d != "" {
		return filepath.Join(d, "azdo-sidecar", "sock")
	}
	return filepath.Join(stateDir, "sock")
}

// StateDir returns --state-dir, or its default, as an absolute path.
func StateDir(c *cli.Context) string {
	s := c.String(FlagStateDir)
	if s == "" {
		s = DefaultStateDir(os.Getenv)
	}
	return absPath(s)
}

// DefaultStateDir is $XDG_STATE_HOME/azdo-sidecar, else
// ~/.local/state/azdo-sidecar.
func DefaultStateDir(getenv func(string) string) string {
	if d := getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "azdo-sidecar")
	}
	return filepath.Join(getenv("HOME"), ".local", "state", "azdo-sidecar")
}

// DefaultRefreshMargin is how long before expiry a cached token is renewed.
const DefaultRefreshMargin = 5 * time.Minute
