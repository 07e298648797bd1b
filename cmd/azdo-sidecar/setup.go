package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/azdo-sidecar/azdo-sidecar/azdo"
	"github.com/azdo-sidecar/azdo-sidecar/config"
	"github.com/azdo-sidecar/azdo-sidecar/credential"
	"github.com/azdo-sidecar/azdo-sidecar/gitsetup"
	"github.com/azdo-sidecar/azdo-sidecar/internal/cliapp"
	"github.com/azdo-sidecar/azdo-sidecar/internal/proxycred"
	"github.com/azdo-sidecar/azdo-sidecar/internal/statedir"
	"github.com/azdo-sidecar/azdo-sidecar/secret"
)

// setupCommand is `azdo-sidecar setup`: URL-scoped git configuration for
// every Azure DevOps host (see package gitsetup).
func setupCommand(e *cliapp.Env) *cli.Command {
	return &cli.Command{
		Name:  "setup",
		Usage: "write the git configuration that sends Azure DevOps URLs through the sidecar",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "global", Usage: "write the user's global git config (default)"},
			&cli.BoolFlag{Name: "system", Usage: "write the system git config"},
			&cli.StringFlag{Name: "file", Usage: "write the git config `FILE`", TakesFile: true},
			&cli.BoolFlag{Name: "undo", Usage: "remove exactly what setup wrote"},
			&cli.StringFlag{Name: "mode", Value: "both", Usage: "what to configure: proxy, helper or both (`MODE`)"},
			&cli.BoolFlag{Name: "proxy-only", Usage: "configure the proxy only, never the credential helper (what setup also does when the running sidecar is proxy-only)"},
			config.ListenFlag(),
			config.SocketFlag(),
			config.StateDirFlag(),
			config.HostFlag(),
		},
		Action: func(c *cli.Context) error {
			opts, note, err := setupOptions(c)
			if err != nil {
				return err
			}
			if note != "" {
				fmt.Fprintf(e.Stderr, "azdo-sidecar setup: note: %s\n", note)
			}
			return runSetup(c, opts, c.Bool("undo"), e.Stdout, e.Stderr)
		},
	}
}

// setupOptions turns the command line into gitsetup.Options, and a note
// for the user when it had to narrow the mode.
func setupOptions(c *cli.Context) (gitsetup.Options, string, error) {
	mode, err := gitsetup.ParseMode(c.String("mode"))
	if err != nil {
		return gitsetup.Options{}, "", cliapp.UsageError{Err: err}
	}
	self, err := config.Hosts(c)
	if err != nil {
		return gitsetup.Options{}, "", err
	}
	hosts, err := azdo.NewHosts(self)
	if err != nil {
		return gitsetup.Options{}, "", err
	}
	note := ""
	if !c.Bool("undo") && mode != gitsetup.ModeProxy {
		if c.Bool("proxy-only") {
			mode = gitsetup.ModeProxy
		} else if st, err := socketStatus(c.Context, config.SocketPath(c)); err == nil && st.ProxyOnly != "" {
			// The helper would only ever answer "use the proxy".
			mode, note = gitsetup.ModeProxy, "the running sidecar is proxy-only ("+st.ProxyOnly+"); configured the proxy only"
		}
	}
	exe, err := helperExecutable(mode)
	if err != nil && mode == gitsetup.ModeBoth {
		// The proxy alone makes git work; the helper can be added later.
		mode, note = gitsetup.ModeProxy, err.Error()+"; configured the proxy only"
	} else if err != nil {
		return gitsetup.Options{}, "", err
	}
	// The socket is passed to the helper only when chosen explicitly: its
	// default depends on XDG_RUNTIME_DIR, which git's environment may lack
	// or set differently, and the helper computes the same default. Git's
	// cache client, asked first, cannot compute it: it gets the path as
	// resolved here (if git's environment resolves another one, the cache
	// client finds no one there and git asks our helper, only slower).
	cacheSocket := config.SocketPath(c)
	helperSocket := ""
	if c.String(config.FlagSocket) != "" || c.String(config.FlagStateDir) != "" {
		// The default socket follows the state dir, which the helper
		// does not know.
		helperSocket = cacheSocket
	}
	// git's cache client connects to whatever listens on its socket
	// without checking who that is: it gets the socket only where no one
	// else can create the directory first. Our helper checks.
	gitCacheSocket := cacheSocket
	if err := credential.CheckPrivatePath(filepath.Dir(cacheSocket)); err != nil {
		gitCacheSocket = ""
		if mode != gitsetup.ModeProxy {
			note = joinNote(note, fmt.Sprintf("not using git's credential-cache client on %s: %v; git asks git-credential-azdo, which checks the socket's owner", cacheSocket, err))
		}
	}
	listen := c.String(config.FlagListen)
	if mode != gitsetup.ModeHelper && !c.Bool("undo") && portZero(listen) {
		// The same AZDO_LISTEN=127.0.0.1:0 may reach serve and setup: the
		// running sidecar knows the port it got.
		st, err := socketStatus(c.Context, cacheSocket)
		if err != nil {
			return gitsetup.Options{}, "", fmt.Errorf("setup: --listen %s has port 0, which git cannot dial; start `azdo-sidecar serve` first (setup then asks it through %s) or pass the \"proxy\" address of its ready line: %w", listen, cacheSocket, err)
		}
		listen = st.Ready.Proxy
	}
	var proxyPass secret.String
	if mode != gitsetup.ModeHelper && !c.Bool("undo") {
		if proxyPass, err = proxyCredential(c, cacheSocket, listen); err != nil {
			return gitsetup.Options{}, "", err
		}
	}
	return gitsetup.Options{
		ProxyPassword: proxyPass,
		Scope:         gitsetup.Scope{Global: c.Bool("global"), System: c.Bool("system"), File: c.String("file")},
		Mode:          mode,
		Listen:        listen,
		StateDir:      config.StateDir(c),
		Hosts:         hosts,
		HelperCommand: gitsetup.HelperCommand(exe, helperSocket, hosts.Entries()...),
		CacheSocket:   gitCacheSocket,
	}, note, nil
}

// proxyCredential returns the proxy's credential: the running sidecar's
// (it names its proxy_url_file in its status), else the one in
// --state-dir, which is created when missing and adopted by the sidecar
// when it starts (package proxycred).
func proxyCredential(c *cli.Context, sock, listen string) (secret.String, error) {
	if st, err := socketStatus(c.Context, sock); err == nil && st.Ready.ProxyURLFile != "" {
		pass, err := proxycred.Load(st.Ready.ProxyURLFile)
		if err != nil {
			return secret.String{}, fmt.Errorf("setup: the running sidecar's proxy credential: %w", err)
		}
		return pass, nil
	}
	stateDir := config.StateDir(c)
	if err := statedir.Ensure(stateDir); err != nil {
		return secret.String{}, fmt.Errorf("setup: --state-dir: %w", err)
	}
	pass, err := proxycred.Ensure(proxycred.Path(stateDir), gitsetup.ProxyURL(listen))
	if err != nil {
		return secret.String{}, fmt.Errorf("setup: the proxy's credential: %w (remove that file and start the sidecar again)", err)
	}
	return pass, nil
}

// joinNote appends b to the note a.
func joinNote(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

// portZero reports whether addr is host:0, "pick a free port".
func portZero(addr string) bool {
	_, port, err := net.SplitHostPort(addr)
	return err == nil && port == "0"
}

// helperExecutable returns the binary the credential helper runs: this
// one, unless it is a temporary `go run` build that will be gone when git
// needs it; then an installed azdo-sidecar or git-credential-azdo on PATH.
func helperExecutable(mode gitsetup.Mode) (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("setup: locating this binary for the credential helper: %w", err)
	}
	if mode == gitsetup.ModeProxy || !isGoRunBuild(exe) {
		return exe, nil
	}
	for _, name := range []string{"azdo-sidecar", "git-credential-azdo"} {
		if p, err := exec.LookPath(name); err == nil && !isGoRunBuild(p) {
			if abs, err := filepath.Abs(p); err == nil {
				return abs, nil
			}
		}
	}
	return "", fmt.Errorf("setup: this is a temporary `go run` build (%s), which git could not run later as the credential helper; install the binaries (go install ./cmd/...) and run setup again for the helper", exe)
}

// isGoRunBuild reports whether path is inside a go build cache work
// directory ($TMPDIR/go-buildNNN/...), which `go run` deletes on exit.
func isGoRunBuild(path string) bool {
	for _, part := range strings.Split(filepath.ToSlash(path), "/") {
		if strings.HasPrefix(part, "go-build") {
			return true
		}
	}
	return false
}

// runSetup applies or undoes opts and reports on stdout (what changed)
// and stderr (what the user must know).
func runSetup(c *cli.Context, opts gitsetup.Options, undo bool, stdout, stderr io.Writer) error {
	var res gitsetup.Result
	var err error
	if undo {
		res, err = gitsetup.Undo(c.Context, opts)
	} else {
		res, err = gitsetup.Apply(c.Context, opts)
	}
	for _, s := range res.Removed {
		fmt.Fprintf(stdout, "- %s\n", s)
	}
	for _, s := range res.Written {
		fmt.Fprintf(stdout, "+ %s\n", s)
	}
	for _, f := range res.FilesRemoved {
		fmt.Fprintf(stdout, "- file %s\n", f)
	}
	for _, f := range res.FilesWritten {
		fmt.Fprintf(stdout, "+ file %s (the proxy URL with its credential; mode 0600, included by git config %s)\n", f, opts.Scope)
	}
	for _, n := range res.Notes {
		fmt.Fprintf(stderr, "azdo-sidecar setup: note: %s\n", n)
	}
	if err != nil {
		return err
	}
	switch {
	case undo && !res.Changed():
		fmt.Fprintf(stdout, "nothing to undo in git config %s\n", opts.Scope)
	case undo:
		fmt.Fprintf(stdout, "removed %d settings from git config %s\n", len(res.Removed), opts.Scope)
	case !res.Changed():
		fmt.Fprintf(stdout, "git config %s already set up (mode %s); nothing changed\n", opts.Scope, res.Mode)
	default:
		fmt.Fprintf(stdout, "git config %s set up for Azure DevOps (mode %s): %d added, %d removed\n", opts.Scope, res.Mode, len(res.Written), len(res.Removed))
	}
	return nil
}
