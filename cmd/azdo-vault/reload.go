package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/azdo-sidecar/azdo-sidecar/config"
	"github.com/azdo-sidecar/azdo-sidecar/internal/cliapp"
	"github.com/azdo-sidecar/azdo-sidecar/sealbox"
	"github.com/azdo-sidecar/azdo-sidecar/vault"
	"github.com/azdo-sidecar/azdo-sidecar/vault/store"
)

// flagPIDFile is --pid-file of serve and reload.
const flagPIDFile = "pid-file"

// pidFileFlag is where serve writes its process ID for `azdo-vault reload`.
func pidFileFlag() cli.Flag {
	return &cli.StringFlag{Name: flagPIDFile, Value: defaultPIDFile(os.Getenv, os.Geteuid()), DefaultText: "$XDG_RUNTIME_DIR/azdo-vault/serve.pid, else /tmp/azdo-vault-<uid>/serve.pid",
		Usage: "`FILE` holding the serving vault's process ID, for azdo-vault reload (directory 0700, file 0600)", TakesFile: true}
}

// defaultPIDFile is $XDG_RUNTIME_DIR/azdo-vault/serve.pid, else
// /tmp/azdo-vault-<uid>/serve.pid.
func defaultPIDFile(getenv func(string) string, uid int) string {
	if d := getenv("XDG_RUNTIME_DIR"); d != "" {
		return filepath.Join(d, "azdo-vault", "serve.pid")
	}
	return filepath.Join(os.TempDir(), "azdo-vault-"+strconv.Itoa(uid), "serve.pid")
}

// writePIDFile writes this process's ID to path in a directory only its
// owner may enter; remove deletes it if it still names this process.
func writePIDFile(path string) (remove func(), err error) {
	if path == "" {
		return func() {}, nil
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("--%s: %w", flagPIDFile, err)
	}
	if err := checkOwnerOnly(dir, true); err != nil {
		return nil, fmt.Errorf("--%s: %w", flagPIDFile, err)
	}
	pid := strconv.Itoa(os.Getpid())
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(pid+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("--%s: %w", flagPIDFile, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return nil, fmt.Errorf("--%s: %w", flagPIDFile, err)
	}
	return func() {
		if b, err := os.ReadFile(path); err == nil && strings.TrimSpace(string(b)) == pid {
			os.Remove(path)
		}
	}, nil
}

// checkOwnerOnly refuses a file or directory that is not this user's, or
// that others may write (or, for a directory, enter).
func checkOwnerOnly(path string, dir bool) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if ok && int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("%s belongs to uid %d, not to this user (%d)", path, st.Uid, os.Geteuid())
	}
	bad := os.FileMode(0o022)
	if dir {
		bad = 0o077
	}
	if fi.Mode().Perm()&bad != 0 {
		return fmt.Errorf("%s has mode %o; others must not be able to change it (chmod go-rwx)", path, fi.Mode().Perm())
	}
	return nil
}

// reloadCommand is `azdo-vault reload [--dry-run]`.
func reloadCommand(e *cliapp.Env) *cli.Command {
	return &cli.Command{
		Name:  "reload",
		Usage: "make the running vault re-read its config (SIGHUP through --pid-file); --dry-run prints what it would delete",
		Description: "The vault re-reads and validates its config file, verifies the providers that changed and switches\n" +
			"to it whole, or keeps the running one and logs why. Credentials of removed providers or methods\n" +
			"are deleted. Each replica reloads its own file: run this on every replica's host.",
		Flags: []cli.Flag{
			pidFileFlag(),
			&cli.BoolFlag{Name: "dry-run", Usage: "do not signal: verify --config and print what the reload would delete from --store"},
			&cli.StringFlag{Name: config.ConfigFlag, Usage: "with --dry-run: the vault config `FILE` (YAML)", TakesFile: true},
			config.KeyFileFlag(),
			config.StoreFlag(),
			config.UpstreamCAFileFlag(),
		},
		Action: func(c *cli.Context) error {
			if c.Bool("dry-run") {
				if c.String(config.ConfigFlag) == "" || c.String(config.FlagKeyFile) == "" {
					return cliapp.UsageError{Err: errors.New("--dry-run needs --config and --key-file (and --store) of the vault")}
				}
				vf, err := config.LoadVaultFile(c.String(config.ConfigFlag))
				if err != nil {
					return err
				}
				kp, err := vault.LoadKeyFile(c.String(config.FlagKeyFile))
				if err != nil {
					return err
				}
				client, err := upstreamClient(c.String(config.FlagUpstreamCAFile))
				if err != nil {
					return err
				}
				return checkConfig(c, e, vf, kp, client)
			}
			pid, err := readPIDFile(c.String(flagPIDFile))
			if err != nil {
				return err
			}
			if err := syscall.Kill(pid, syscall.SIGHUP); err != nil {
				return fmt.Errorf("signal azdo-vault (pid %d): %w", pid, err)
			}
			fmt.Fprintf(e.Stderr, "azdo-vault: asked the vault (pid %d) to reload; its log says whether it took the new config\n", pid)
			return nil
		},
	}
}

// readPIDFile returns the process ID in path after checking that the file
// is this user's alone and names a running azdo-vault serve.
func readPIDFile(path string) (int, error) {
	if err := checkOwnerOnly(filepath.Dir(path), true); err != nil {
		return 0, fmt.Errorf("--%s: %w (is the vault running as this user, with the same --%s?)", flagPIDFile, err, flagPIDFile)
	}
	if err := checkOwnerOnly(path, false); err != nil {
		return 0, fmt.Errorf("--%s: %w", flagPIDFile, err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("--%s: %w", flagPIDFile, err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		return 0, fmt.Errorf("--%s: %s holds no process ID", flagPIDFile, path)
	}
	// A stale file may name a process ID reused by another program.
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return 0, fmt.Errorf("no vault runs with pid %d (from %s): %w", pid, path, err)
	}
	args := strings.Split(string(cmdline), "\x00")
	if !strings.Contains(filepath.Base(args[0]), "azdo-vault") || !containsArg(args, "serve") {
		return 0, fmt.Errorf("pid %d (from %s) is not azdo-vault serve", pid, path)
	}
	return pid, nil
}

func containsArg(args []string, want string) bool {
	for _, a := range args {
		if a == want {
			return true
		}
	}
	return false
}

// checkConfig is serve --check-config and reload --dry-run: the providers'
// states, and the credentials the store would lose.
func checkConfig(c *cli.Context, e *cliapp.Env, vf *config.VaultFile, kp sealbox.KeyPair, client *http.Client) error {
	ctx := c.Context
	s := loadSettings(ctx, vf, kp, client, nil, slog.New(slog.DiscardHandler))
	for _, st := range s.states {
		pat := "off"
		if st.PAT {
			pat = "on"
		}
		line := fmt.Sprintf("provider %s: oauth %s, pat %s", st.Host, st.OAuth, pat)
		if st.Reason != "" {
			line += ": " + st.Reason
		}
		fmt.Fprintln(e.Stdout, line)
	}
	if err := refuseMissingSQLite(c.String(config.FlagStore)); err != nil {
		return err
	}
	st, err := store.Open(ctx, c.String(config.FlagStore), time.Now)
	if err != nil {
		return err
	}
	defer st.Close()
	doomed, err := vault.PrunePlan(ctx, st, s.methods)
	if err != nil {
		return err
	}
	if len(doomed) == 0 {
		fmt.Fprintln(e.Stdout, "would delete no credentials")
	} else {
		fmt.Fprintf(e.Stdout, "would delete %d credentials:\n", len(doomed))
		for _, d := range doomed {
			fmt.Fprintf(e.Stdout, "  %d\t%s\t%s\t%s\t%s\n", d.Credential.ID, d.Credential.Owner, d.Credential.Host, d.Credential.Kind, d.Reason)
		}
	}
	for _, st := range s.states {
		if st.OAuth == vault.OAuthDisabled {
			return cli.Exit("", 1)
		}
	}
	return nil
}

// refuseMissingSQLite refuses a sqlite: store whose file does not exist,
// which opening would create empty.
func refuseMissingSQLite(url string) error {
	path, ok := store.SQLitePath(url)
	if !ok {
		return nil
	}
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("--store: %s does not exist (pass the vault's --store, or set AZDO_STORE)", path)
	}
	return nil
}

// reloader re-reads the config on SIGHUP and switches to it whole, or
// keeps the running one.
type reloader struct {
	path   string
	keys   sealbox.KeyPair
	client *http.Client
	store  store.Store
	vault  *vault.Vault
	pages  *connectSwitch
	cur    *settings
	log    *slog.Logger
}

// listen reloads on every SIGHUP until ctx ends or stop is called.
func (r *reloader) listen(ctx context.Context) (stop func()) {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGHUP)
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-sig:
				r.reload(ctx)
			case <-ctx.Done():
				return
			}
		}
	}()
	return func() {
		signal.Stop(sig)
		cancel()
		<-done
	}
}

// reload is one reload: validate, verify what changed, switch, prune.
func (r *reloader) reload(ctx context.Context) {
	r.log.Info("reloading the config", "config", r.path)
	vf, err := config.LoadVaultFile(r.path)
	if err != nil {
		r.log.Error("reload refused: the config is invalid; the running configuration stays", "config", r.path, "err", err)
		return
	}
	next := loadSettings(ctx, vf, r.keys, r.client, r.cur, r.log)
	d := &serveDeps{Vault: r.vault, Providers: next.providers, File: vf, Keys: r.keys, Client: r.client, OAuth: next.oauth, Disabled: next.disabled, Log: r.log}
	// The new pages are built (and the new providers checked) before
	// anything switches, so a failure leaves the running config whole.
	h, err := newConnectHandler(d)
	if err != nil {
		r.log.Error("reload refused; the running configuration stays", "config", r.path, "err", err)
		return
	}
	if err := r.vault.SetProviders(next.providers); err != nil {
		r.log.Error("reload refused; the running configuration stays", "config", r.path, "err", err)
		return
	}
	mux := http.NewServeMux()
	h.Register(mux)
	r.pages.cur.Store(mux)
	r.vault.SetLinker(h)
	r.vault.SetProviderStates(next.states)
	r.cur = next
	n, err := vault.Prune(ctx, r.store, next.methods, r.log)
	if err != nil {
		r.log.Error("reloaded, but deleting the credentials of removed providers failed; it is tried again at the next reload or start", "err", err)
	}
	r.log.Info("config reloaded", "config", r.path, "providers", len(next.providers), "credentials_deleted", n)
}
