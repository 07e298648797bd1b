// Package gitsetup writes (and removes) the git configuration that makes
// plain `git clone https://dev.azure.com/...` work through the sidecar:
// URL-scoped proxy, CA and credential helper for every Azure DevOps host,
// and nothing for any other host.
//
// What it writes, for each host URL U (https://dev.azure.com,
// https://*.visualstudio.com — git matches one DNS label for "*" — and
// https://HOST[:PORT] for each self-hosted server):
//
//	[include]                        (mode proxy or both)
//		path = <state-dir>/proxy.gitconfig
//	[http "U"]                       (mode proxy or both)
//		sslCAInfo = <state-dir>/ca.pem
//		sslCAPath = <state-dir>/trust
//	[credential "U"]                 (mode helper or both)
//		helper =
//		helper = cache --timeout=0 --socket=/run/user/1000/azdo-sidecar/sock
//		helper = /usr/local/bin/git-credential-azdo
//		useHttpPath = true
//
// The proxy lines (http.<U>.proxy = http://azdo-sidecar:SECRET@127.0.0.1:3128)
// carry the proxy's credential, so they go to <state-dir>/proxy.gitconfig,
// mode 0600, which the scope's file includes: ~/.gitconfig is usually
// readable by everyone. --system is refused for them (every other user's
// git would fail to read the include).
//
// The cache line (written when Options.CacheSocket is set) makes git's own
// credential-cache client talk straight to the sidecar's socket, which
// speaks that protocol: no process of ours starts per request. When the
// user must connect, the sidecar gives that client an empty answer
// (credential.ClientKey), so git asks git-credential-azdo next, which
// prints the connect URL and tells git to quit.
//
// --timeout=0 is for the sidecar being down: git sends "store" to every
// helper after a success (a PAT helper, a typed password), and git's
// cache client, finding no one on the socket, then spawns git's own
// credential-cache daemon on that path. With --timeout=0 that daemon
// drops the credential at once (it never answers a get with it), holds
// nothing, and exits by itself within 30 seconds, removing its socket;
// a sidecar starting meanwhile asks it to exit (credential.Listen). The
// sidecar itself ignores the timeout, and "store" is a no-op there.
//
// The empty helper resets, for Azure DevOps URLs only, the helpers
// configured before it (a global credential.helper=store, a system-wide
// Git Credential Manager). That is deliberate: git sends "store" to every
// helper after a success, so a store or cache helper would write our
// short-lived tokens to disk, and a helper asked before ours could answer
// with a stale PAT or prompt. Helpers for other hosts are untouched.
//
// sslCAPath is there because GIT_SSL_CAINFO, exported globally by many
// images (and on these machines), overrides every sslCAInfo setting, so
// git would verify the sidecar's certificates against the system bundle
// and fail. Git does not let the environment override sslCAPath unless
// GIT_SSL_CAPATH is set, and curl uses the CA path in addition to the CA
// file; with GnuTLS (Debian and Ubuntu's git) the directory's files are
// loaded as they are, so <state-dir>/trust holds one symlink to ../ca.pem,
// which follows the sidecar's CA across restarts. Verified with git 2.39.5
// (libcurl-gnutls); OpenSSL builds of curl need hashed names there and are
// a known gap (use --mode helper, or unset GIT_SSL_CAINFO).
//
// Everything written is recorded in the same file under
// [azdo-sidecar] written = "<key> <value>", so that Undo removes exactly
// those lines and nothing the user wrote, and Apply is idempotent: values
// already present (ours or the user's) are not written again.
package gitsetup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/azdo-sidecar/azdo-sidecar/azdo"
	"github.com/azdo-sidecar/azdo-sidecar/internal/proxycred"
	"github.com/azdo-sidecar/azdo-sidecar/internal/statedir"
	"github.com/azdo-sidecar/azdo-sidecar/secret"
)

// Mode says what setup configures.
type Mode string

// Modes.
const (
	ModeProxy  Mode = "proxy"  // proxy and CA only: the proxy injects credentials
	ModeHelper Mode = "helper" // credential helper only: git talks to Azure DevOps directly
	ModeBoth   Mode = "both"   // both (default): the helper answers git's credential requests that reach it
)

// ParseMode parses --mode.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(s); m {
	case ModeProxy, ModeHelper, ModeBoth:
		return m, nil
	case "":
		return ModeBoth, nil
	}
	return "", fmt.Errorf("gitsetup: mode %q: allowed: proxy, helper, both", s)
}

func (m Mode) proxy() bool  { return m == ModeProxy || m == ModeBoth }
func (m Mode) helper() bool { return m == ModeHelper || m == ModeBoth }

// RecordKey is the multi-valued git config key under which setup records
// the lines it wrote, as "<key> <value>".
const RecordKey = "azdo-sidecar.written"

// TrustDir is the name of the CA directory under the state dir.
const TrustDir = "trust"

// ServicesURLs are the URL patterns of Azure DevOps Services, as git's
// urlmatch understands them ("*" matches exactly one DNS label).
var ServicesURLs = []string{"https://" + azdo.ServicesHost, "https://*.visualstudio.com"}

// Scope says which git config file to write: exactly one of Global, System
// or File; the zero value means Global.
type Scope struct {
	Global bool
	System bool
	File   string
}

func (s Scope) args() ([]string, error) {
	n := 0
	for _, b := range []bool{s.Global, s.System, s.File != ""} {
		if b {
			n++
		}
	}
	switch {
	case n > 1:
		return nil, errors.New("gitsetup: choose one of --global, --system, --file")
	case s.System:
		return []string{"--system"}, nil
	case s.File != "":
		abs, err := filepath.Abs(s.File)
		if err != nil {
			return nil, fmt.Errorf("gitsetup: --file: %w", err)
		}
		return []string{"--file", abs}, nil
	}
	return []string{"--global"}, nil
}

// String names the scope for messages.
func (s Scope) String() string {
	a, err := s.args()
	if err != nil {
		return "?"
	}
	return strings.Join(a, " ")
}

// Options configure Apply and Undo.
type Options struct {
	Scope Scope
	Mode  Mode
	// Listen is the sidecar's proxy address (--listen).
	Listen string
	// StateDir is where the sidecar writes ca.pem (--state-dir).
	StateDir string
	// Hosts are the Azure DevOps hosts; the self-hosted ones get their own
	// URL (nil: Azure DevOps Services only).
	Hosts *azdo.Hosts
	// HelperCommand is the credential.helper value (see HelperCommand).
	HelperCommand string
	// CacheSocket, when set, is the sidecar's socket for a
	// "cache --timeout=0 --socket=<CacheSocket>" helper written before
	// HelperCommand (see CacheHelper); empty: HelperCommand only.
	CacheSocket string
	// Git is the git binary (default "git").
	Git string
	// Env is the environment of git and of the GIT_SSL_* checks (default
	// os.Environ()).
	Env []string
	// ProxyPassword is the proxy's client credential (package proxycred).
	// When set, the proxy lines carry it and go to ProxyInclude, a file
	// only its owner can read, which the scope's file includes; the
	// scope's file itself (~/.gitconfig is usually world-readable) never
	// holds it. Zero: the proxy lines go to the scope's file, without a
	// credential.
	ProxyPassword secret.String
}

// ProxyInclude is the name, under the state dir, of the git config file
// holding the proxy URL with its credential.
const ProxyInclude = "proxy.gitconfig"

// includeHeader starts every ProxyInclude file; Undo removes only a file
// that starts with it.
const includeHeader = "# Written by azdo-sidecar setup: the proxy URL with its credential.\n# Readable by its owner alone; azdo-sidecar setup --undo removes it.\n"

// Setting is one git config line.
type Setting struct {
	Key   string
	Value string
}

func (s Setting) String() string { return s.Key + "=" + s.Value }

// Result is what Apply or Undo did.
type Result struct {
	Mode    Mode      // the mode applied (Apply may narrow ModeBoth, see Notes)
	Written []Setting // lines added, in order
	Removed []Setting // lines removed
	// FilesWritten and FilesRemoved are the private files (ProxyInclude)
	// written or removed besides the scope's file.
	FilesWritten []string
	FilesRemoved []string
	// Notes are things the user must know (environment variables that
	// defeat the configuration, lines left in place); one sentence each.
	Notes []string
}

// Changed reports whether the config file was modified.
func (r Result) Changed() bool {
	return len(r.Written)+len(r.Removed)+len(r.FilesWritten)+len(r.FilesRemoved) > 0
}

// HelperCommand returns the credential.helper value for the binary exe
// (the running azdo-sidecar): git-credential-azdo next to it when present
// (started faster), else "exe credential". socket, when not empty, is
// passed with --socket, and each self-hosted host with --host: the helper
// answers only hosts it knows as Azure DevOps, and git's environment need
// not carry AZDO_HOST. Paths with shell metacharacters are quoted in
// git's "!" form.
func HelperCommand(exe, socket string, selfHosted ...string) string {
	dir := filepath.Dir(exe)
	args := []string{exe, "credential"}
	small := filepath.Join(dir, "git-credential-azdo")
	if fi, err := os.Stat(small); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
		args = []string{small}
	}
	if socket != "" {
		args = append(args, "--socket", socket)
	}
	for _, h := range selfHosted {
		args = append(args, "--host", h)
	}
	quoted := false
	for i, a := range args {
		if strings.ContainsAny(a, " \t\n'\"\\$`|&;<>()*?[#~=%!{}") {
			args[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
			quoted = true
		}
	}
	cmd := strings.Join(args, " ")
	if quoted || !filepath.IsAbs(exe) {
		// git runs a value that is not an absolute path as
		// "git credential-<value>"; "!" makes it a shell command.
		return "!" + cmd
	}
	return cmd
}

// CacheHelper returns the credential.helper value that makes git's own
// credential-cache client ask the sidecar on socket (see the package
// comment for --timeout=0). Git runs it through the shell, so a socket path
// with shell metacharacters is quoted.
func CacheHelper(socket string) string {
	arg := "--socket=" + socket
	if strings.ContainsAny(arg, " \t\n'\"\\$`|&;<>()*?[#~%!{}") {
		arg = "'" + strings.ReplaceAll(arg, "'", `'\''`) + "'"
	}
	return "cache --timeout=0 " + arg
}

// HostURLs returns the URL patterns to configure for h.
func HostURLs(h *azdo.Hosts) []string {
	urls := slices.Clone(ServicesURLs)
	for _, hp := range h.SelfHosted() {
		urls = append(urls, "https://"+hp)
	}
	return urls
}

// ProxyURL returns the proxy URL for a --listen address: a wildcard
// listen address is reached on loopback.
func ProxyURL(listen string) string {
	host, port, ok := strings.Cut(listen, ":")
	if strings.HasPrefix(listen, "[") {
		i := strings.LastIndex(listen, "]:")
		if i < 0 {
			return "http://" + listen
		}
		host, port, ok = listen[:i+1], listen[i+2:], true
	} else if strings.Count(listen, ":") > 1 {
		i := strings.LastIndex(listen, ":")
		host, port, ok = "["+listen[:i]+"]", listen[i+1:], true
	}
	if !ok {
		return "http://" + listen
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "[::]":
		host = "[::1]"
	}
	return "http://" + host + ":" + port
}

// unit is a group of lines written together; present reports whether the
// config already holds it.
type unit []Setting

// desired returns the units for opts, in write order.
func desired(opts Options, mode Mode) []unit {
	var out []unit
	trust := filepath.Join(opts.StateDir, TrustDir)
	if mode.proxy() && !opts.ProxyPassword.IsZero() {
		out = append(out, unit{{"include.path", filepath.Join(opts.StateDir, ProxyInclude)}})
	}
	for _, u := range HostURLs(opts.Hosts) {
		if mode.proxy() && opts.ProxyPassword.IsZero() {
			out = append(out, unit{{"http." + u + ".proxy", ProxyURL(opts.Listen)}})
		}
		if mode.proxy() {
			out = append(out,
				unit{{"http." + u + ".sslCAInfo", filepath.Join(opts.StateDir, "ca.pem")}},
				unit{{"http." + u + ".sslCAPath", trust}},
			)
		}
		if mode.helper() {
			helpers := unit{{"credential." + u + ".helper", ""}}
			if opts.CacheSocket != "" {
				helpers = append(helpers, Setting{"credential." + u + ".helper", CacheHelper(opts.CacheSocket)})
			}
			out = append(out,
				append(helpers, Setting{"credential." + u + ".helper", opts.HelperCommand}),
				unit{{"credential." + u + ".useHttpPath", "true"}},
			)
		}
	}
	return out
}

// config is the parsed content of one git config file.
type config struct {
	vals map[string][]string // canonical key -> values in file order
}

func (c config) get(key string) []string { return c.vals[canon(key)] }

// present reports whether c holds u: a single line anywhere, or the
// lines of u (a reset and the helpers, one key) one after the other.
func (c config) present(u unit) bool {
	vals := c.get(u[0].Key)
	if len(u) == 1 {
		return slices.Contains(vals, u[0].Value)
	}
	for i := 0; i+len(u) <= len(vals); i++ {
		if slices.EqualFunc(vals[i:i+len(u)], u, func(v string, s Setting) bool { return v == s.Value }) {
			return true
		}
	}
	return false
}

// canon returns the canonical form of a config key: section and variable
// name are case-insensitive, the subsection (the URL) is not.
func canon(key string) string {
	first := strings.IndexByte(key, '.')
	last := strings.LastIndexByte(key, '.')
	if first < 0 {
		return strings.ToLower(key)
	}
	return strings.ToLower(key[:first]) + key[first:last] + strings.ToLower(key[last:])
}

// git runs git config commands on one file.
type git struct {
	bin   string
	scope []string
	env   []string
}

func (g git) run(ctx context.Context, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, g.bin, append(append([]string{"config"}, g.scope...), args...)...)
	cmd.Env = g.env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), &gitError{args: args, err: err, stderr: strings.TrimSpace(stderr.String())}
	}
	return stdout.String(), nil
}

// gitError is a failed git config command. Setup writes no secrets, so the
// arguments can be shown.
type gitError struct {
	args   []string
	err    error
	stderr string
}

func (e *gitError) Error() string {
	msg := fmt.Sprintf("git config %s: %v", strings.Join(e.args, " "), e.err)
	if e.stderr != "" {
		msg += ": " + e.stderr
	}
	return msg
}

func (e *gitError) Unwrap() error { return e.err }

func (e *gitError) exitCode() int {
	var ee *exec.ExitError
	if errors.As(e.err, &ee) {
		return ee.ExitCode()
	}
	return -1
}

func (g git) read(ctx context.Context) (config, error) {
	out, err := g.run(ctx, "--null", "--list")
	c := config{vals: map[string][]string{}}
	if err != nil {
		var ge *gitError
		// A config file that does not exist yet is an empty one.
		if errors.As(err, &ge) && strings.Contains(ge.stderr, "No such file or directory") {
			return c, nil
		}
		if errors.As(err, &ge) && ge.stderr == "" && ge.exitCode() == 1 {
			return c, nil
		}
		return c, err
	}
	for _, entry := range strings.Split(out, "\x00") {
		if entry == "" {
			continue
		}
		k, v, _ := strings.Cut(entry, "\n")
		k = canon(k)
		c.vals[k] = append(c.vals[k], v)
	}
	return c, nil
}

func (g git) add(ctx context.Context, s Setting) error {
	_, err := g.run(ctx, "--add", s.Key, s.Value)
	return err
}

// unset removes the one line key=value; it reports false when there is no
// such line or there are several (then it removes none).
func (g git) unset(ctx context.Context, s Setting) (bool, error) {
	_, err := g.run(ctx, "--fixed-value", "--unset", s.Key, s.Value)
	var ge *gitError
	if errors.As(err, &ge) && ge.exitCode() == 5 {
		return false, nil // no such line, or several
	}
	return err == nil, err
}

func record(s Setting) string { return s.Key + " " + s.Value }

func parseRecord(v string) (Setting, bool) {
	k, val, ok := strings.Cut(v, " ")
	if !ok || k == "" {
		return Setting{}, false
	}
	return Setting{Key: k, Value: val}, true
}

func (opts *Options) defaults() error {
	if opts.Git == "" {
		opts.Git = "git"
	}
	if opts.Env == nil {
		opts.Env = os.Environ()
	}
	if opts.Mode == "" {
		opts.Mode = ModeBoth
	}
	if _, err := ParseMode(string(opts.Mode)); err != nil {
		return err
	}
	return nil
}

func (opts Options) git() (git, error) {
	scope, err := opts.Scope.args()
	if err != nil {
		return git{}, err
	}
	return git{bin: opts.Git, scope: scope, env: opts.Env}, nil
}

func getenv(env []string, name string) string {
	for i := len(env) - 1; i >= 0; i-- {
		if k, v, ok := strings.Cut(env[i], "="); ok && k == name {
			return v
		}
	}
	return ""
}

// Apply writes the configuration for opts. Running it again with the same
// options changes nothing; with other options (a new --listen, another
// mode) it removes the lines it wrote before that are no longer wanted.
func Apply(ctx context.Context, opts Options) (Result, error) {
	if err := opts.defaults(); err != nil {
		return Result{}, err
	}
	res := Result{Mode: opts.Mode}
	if opts.Mode.proxy() {
		if opts.Listen == "" || opts.StateDir == "" {
			return res, errors.New("gitsetup: proxy mode needs the listen address and the state dir")
		}
		abs, err := filepath.Abs(opts.StateDir)
		if err != nil {
			return res, fmt.Errorf("gitsetup: state dir: %w", err)
		}
		opts.StateDir = abs
	}
	if opts.Mode.helper() && opts.HelperCommand == "" {
		return res, errors.New("gitsetup: helper mode needs the helper command")
	}
	res.Mode, res.Notes = checkEnv(opts)
	g, err := opts.git()
	if err != nil {
		return res, err
	}
	if res.Mode.proxy() && !opts.ProxyPassword.IsZero() {
		if opts.Scope.System {
			return res, errors.New("gitsetup: --system cannot carry the proxy's credential, which must stay in a file only you can read (every other user's git would fail to read it); use --global or --file, or --mode helper")
		}
		wrote, err := writeProxyInclude(opts)
		if err != nil {
			return res, err
		}
		if wrote {
			res.FilesWritten = append(res.FilesWritten, filepath.Join(opts.StateDir, ProxyInclude))
		}
	}
	cfg, err := g.read(ctx)
	if err != nil {
		return res, fmt.Errorf("gitsetup: %w", err)
	}
	want := desired(opts, res.Mode)
	wanted := map[string]bool{}
	for _, u := range want {
		for _, s := range u {
			wanted[canon(s.Key)+" "+s.Value] = true
		}
	}

	// A group of helper lines not present in order (an older setup wrote
	// the reset and our helper without the cache line) is written anew:
	// the lines we recorded for its key go, so that none is doubled.
	regroup := map[string]bool{}
	for _, u := range want {
		if len(u) > 1 && !cfg.present(u) {
			regroup[canon(u[0].Key)] = true
		}
	}

	// Lines we wrote earlier that are no longer wanted go first, so that a
	// changed --listen replaces the old proxy rather than shadowing it.
	recs := cfg.get(RecordKey)
	for i := len(recs) - 1; i >= 0; i-- {
		s, ok := parseRecord(recs[i])
		if !ok || (wanted[canon(s.Key)+" "+s.Value] && !regroup[canon(s.Key)]) {
			continue
		}
		if err := removeRecorded(ctx, g, s, recs[i], &res); err != nil {
			return res, err
		}
	}
	if len(res.Removed) > 0 {
		if cfg, err = g.read(ctx); err != nil {
			return res, fmt.Errorf("gitsetup: %w", err)
		}
	}

	for _, u := range want {
		if cfg.present(u) {
			continue
		}
		for _, s := range u {
			if err := g.add(ctx, s); err != nil {
				return res, fmt.Errorf("gitsetup: %w", err)
			}
			if err := g.add(ctx, Setting{RecordKey, record(s)}); err != nil {
				return res, fmt.Errorf("gitsetup: %w", err)
			}
			res.Written = append(res.Written, s)
		}
	}
	if res.Mode.proxy() {
		if err := makeTrustDir(opts.StateDir); err != nil {
			return res, err
		}
	}
	return res, nil
}

// Undo removes every line recorded by Apply in the scope's file, and
// nothing else. A recorded line the user has since changed is gone already
// and is skipped; one the user has duplicated is left in place, with a note.
func Undo(ctx context.Context, opts Options) (Result, error) {
	if err := opts.defaults(); err != nil {
		return Result{}, err
	}
	res := Result{Mode: opts.Mode}
	g, err := opts.git()
	if err != nil {
		return res, err
	}
	cfg, err := g.read(ctx)
	if err != nil {
		return res, fmt.Errorf("gitsetup: %w", err)
	}
	recs := cfg.get(RecordKey)
	var trustDirs, includes []string
	for i := len(recs) - 1; i >= 0; i-- {
		s, ok := parseRecord(recs[i])
		if !ok {
			continue
		}
		if strings.HasSuffix(canon(s.Key), ".sslcapath") && !slices.Contains(trustDirs, s.Value) {
			trustDirs = append(trustDirs, s.Value)
		}
		if canon(s.Key) == "include.path" && filepath.Base(s.Value) == ProxyInclude && !slices.Contains(includes, s.Value) {
			includes = append(includes, s.Value)
		}
		if err := removeRecorded(ctx, g, s, recs[i], &res); err != nil {
			return res, err
		}
	}
	for _, d := range trustDirs {
		removeTrustDir(d)
	}
	for _, f := range includes {
		if removeProxyInclude(f) {
			res.FilesRemoved = append(res.FilesRemoved, f)
		}
	}
	return res, nil
}

// removeRecorded removes the recorded line s and its record rec.
func removeRecorded(ctx context.Context, g git, s Setting, rec string, res *Result) error {
	ok, err := g.unset(ctx, s)
	if err != nil {
		return fmt.Errorf("gitsetup: %w", err)
	}
	if ok {
		res.Removed = append(res.Removed, s)
	} else {
		// Either the user removed or changed it (nothing to do) or it
		// now appears more than once (we cannot tell ours apart).
		cfg, err := g.read(ctx)
		if err != nil {
			return fmt.Errorf("gitsetup: %w", err)
		}
		n := 0
		for _, v := range cfg.get(s.Key) {
			if v == s.Value {
				n++
			}
		}
		if n > 1 {
			res.Notes = append(res.Notes, fmt.Sprintf("left %s in place: it appears %d times and setup cannot tell which one it wrote", s, n))
		}
	}
	if _, err := g.unset(ctx, Setting{RecordKey, rec}); err != nil {
		return fmt.Errorf("gitsetup: %w", err)
	}
	return nil
}

// makeTrustDir creates <stateDir>/trust with a relative symlink to
// ../ca.pem, which the sidecar (re)writes at every start.
func makeTrustDir(stateDir string) error {
	dir := filepath.Join(stateDir, TrustDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("gitsetup: %w", err)
	}
	link := filepath.Join(dir, "ca.pem")
	if target, err := os.Readlink(link); err == nil && target == filepath.Join("..", "ca.pem") {
		return nil
	}
	if err := os.Symlink(filepath.Join("..", "ca.pem"), link); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("gitsetup: %w", err)
	}
	return nil
}

// writeProxyInclude writes the ProxyInclude file (mode 0600): the proxy
// lines of every Azure DevOps URL, with the credential. It reports whether
// the file changed.
func writeProxyInclude(opts Options) (bool, error) {
	path := filepath.Join(opts.StateDir, ProxyInclude)
	var b strings.Builder
	b.WriteString(includeHeader)
	for _, u := range HostURLs(opts.Hosts) {
		full, err := proxyURLWith(ProxyURL(opts.Listen), opts.ProxyPassword)
		if err != nil {
			return false, err
		}
		// proxyAuthMethod=basic sends the credential at once: with git's
		// default (anyauth) every connection first gets a 407.
		fmt.Fprintf(&b, "[http %s]\n\tproxy = %s\n\tproxyAuthMethod = basic\n", quoteSubsection(u), quoteValue(full.Reveal()))
	}
	if old, err := os.ReadFile(path); err == nil && string(old) == b.String() {
		if fi, err := os.Lstat(path); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o077 == 0 {
			return false, nil
		}
	}
	if err := statedir.Ensure(opts.StateDir); err != nil {
		return false, fmt.Errorf("gitsetup: %w", err)
	}
	if err := proxycred.WritePrivate(path, []byte(b.String())); err != nil {
		return false, fmt.Errorf("gitsetup: %w", err)
	}
	return true, nil
}

// proxyURLWith returns base with the proxy credential as its user info.
func proxyURLWith(base string, pass secret.String) (secret.String, error) {
	return proxycred.URL(base, pass)
}

// quoteSubsection quotes a git config subsection name.
func quoteSubsection(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// quoteValue quotes a git config value.
func quoteValue(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// removeProxyInclude removes a ProxyInclude file setup wrote (it starts
// with includeHeader) and reports whether it did.
func removeProxyInclude(path string) bool {
	b, err := os.ReadFile(path)
	if err != nil || !strings.HasPrefix(string(b), includeHeader) {
		return false
	}
	return os.Remove(path) == nil
}

// removeTrustDir removes what makeTrustDir made, and only that.
func removeTrustDir(dir string) {
	link := filepath.Join(dir, "ca.pem")
	if target, err := os.Readlink(link); err == nil && target == filepath.Join("..", "ca.pem") {
		os.Remove(link)
		os.Remove(dir) // fails, harmlessly, if anything else is in it
	}
}

// checkEnv looks for environment variables that defeat the configuration
// and returns the mode to apply and what to tell the user.
func checkEnv(opts Options) (Mode, []string) {
	mode := opts.Mode
	var notes []string
	if !mode.proxy() {
		return mode, nil
	}
	caPath := getenv(opts.Env, "GIT_SSL_CAPATH")
	caInfo := getenv(opts.Env, "GIT_SSL_CAINFO")
	switch {
	case caPath != "" && mode == ModeBoth:
		mode = ModeHelper
		notes = append(notes, fmt.Sprintf("GIT_SSL_CAPATH is set (%s): it overrides http.sslCAInfo and http.sslCAPath, so git cannot trust the sidecar's certificate; configured the credential helper only (git talks to Azure DevOps directly). To use the proxy, unset GIT_SSL_CAPATH and GIT_SSL_CAINFO and run setup again.", caPath))
	case caPath != "":
		notes = append(notes, fmt.Sprintf("GIT_SSL_CAPATH is set (%s): it overrides http.sslCAInfo and http.sslCAPath, so git will reject the sidecar's certificate until you unset GIT_SSL_CAPATH and GIT_SSL_CAINFO (or use --mode helper).", caPath))
	case caInfo != "":
		notes = append(notes, fmt.Sprintf("GIT_SSL_CAINFO is set (%s): it overrides http.sslCAInfo; setup also set http.<url>.sslCAPath=%s, which git uses in addition (verified with GnuTLS builds: Debian, Ubuntu). If git still says \"server certificate verification failed\" for Azure DevOps, unset GIT_SSL_CAINFO or run setup --mode helper.", caInfo, filepath.Join(opts.StateDir, TrustDir)))
	}
	for _, name := range []string{"NO_PROXY", "no_proxy"} {
		if v := getenv(opts.Env, name); v != "" && noProxyCovers(v, opts.Hosts) {
			notes = append(notes, fmt.Sprintf("%s (%s) covers an Azure DevOps host: git will bypass the proxy for it; remove that entry.", name, v))
			break
		}
	}
	return mode, notes
}

// noProxyCovers reports whether a NO_PROXY list (curl's rules: "*",
// domain suffixes with or without a leading dot) covers an Azure DevOps host.
func noProxyCovers(list string, h *azdo.Hosts) bool {
	hosts := append([]string{azdo.ServicesHost, "org.visualstudio.com"}, h.SelfHosted()...)
	for _, e := range strings.Split(list, ",") {
		e = strings.ToLower(strings.TrimPrefix(strings.TrimSpace(e), "."))
		if e == "" {
			continue
		}
		if e == "*" {
			return true
		}
		for _, hp := range hosts {
			host := hp
			if i := strings.LastIndex(hp, ":"); i > 0 && !strings.HasSuffix(hp, "]") {
				host = hp[:i]
			}
			if host == e || strings.HasSuffix(host, "."+e) {
				return true
			}
		}
	}
	return false
}
