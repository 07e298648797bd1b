package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/azdo-sidecar/azdo-sidecar/azdo"
	"github.com/azdo-sidecar/azdo-sidecar/clone"
	"github.com/azdo-sidecar/azdo-sidecar/config"
	"github.com/azdo-sidecar/azdo-sidecar/credential"
	"github.com/azdo-sidecar/azdo-sidecar/internal/certpool"
	"github.com/azdo-sidecar/azdo-sidecar/internal/cliapp"
	"github.com/azdo-sidecar/azdo-sidecar/internal/proxycred"
	"github.com/azdo-sidecar/azdo-sidecar/token"
	"github.com/azdo-sidecar/azdo-sidecar/token/vaultsource"
)

// cloneCommand is `azdo-sidecar clone URL [DIR]`, a go-git clone of any
// Azure DevOps repository, branch, commit, tag, pull-request or file URL.
func cloneCommand(e *cliapp.Env) *cli.Command {
	flags := []cli.Flag{
		&cli.IntFlag{Name: "depth", Usage: "shallow clone with `N` commits of history (0: full)"},
		&cli.BoolFlag{Name: "recurse-submodules", Usage: "clone submodules too (those on Azure DevOps hosts, with the same credentials)"},
		&cli.BoolFlag{Name: "proxy-only", Usage: "clone through the sidecar's proxy, which injects the credential: the clone never holds a token (automatic when the running sidecar is proxy-only)"},
		&cli.StringFlag{Name: "proxy-url-file", Usage: "with --proxy-only: `FILE` holding the proxy URL with its credential (default: the running sidecar's, asked through --socket)", TakesFile: true},
		&cli.StringFlag{Name: "proxy-ca-file", Usage: "with --proxy-only: the sidecar CA `FILE` (default: the running sidecar's)", TakesFile: true},
		&cli.DurationFlag{Name: flagWaitConnect, Usage: "when the user has not connected Azure DevOps yet, print the links and wait up to `DURATION` (e.g. 15m) for them to connect (vault mode; 0: fail at once)"},
	}
	flags = append(flags, config.TokenSourceFlags()...)
	flags = append(flags, config.SocketFlag(), config.HostFlag(), config.ResolveFlag(), config.UpstreamCAFileFlag(), config.UpstreamProxyFlag())
	return &cli.Command{
		Name:  "clone",
		Usage: "clone an Azure DevOps repository (any clone, web or SSH URL); progress on stderr",
		Description: "Token source: --vault-url/--env-token-file, --pat-file or AZDO_PAT; without one, the running\n" +
			"sidecar is asked through --socket. For a file URL the file's path is printed on stdout.",
		ArgsUsage: "URL [DIR]",
		Flags:     flags,
		Action: func(c *cli.Context) error {
			o, err := cloneOptions(c, e)
			if err != nil {
				return err
			}
			if wait := c.Duration(flagWaitConnect); wait > 0 {
				if err := waitBeforeClone(c, e, wait); err != nil {
					return err
				}
			} else if wait < 0 {
				return cliapp.UsageError{Err: fmt.Errorf("--%s %s: want 0 or more, e.g. 15m", flagWaitConnect, wait)}
			}
			res, err := clone.Clone(c.Context, o)
			if err != nil {
				return err
			}
			where := res.Branch
			if where == "" {
				where = "detached HEAD"
			}
			fmt.Fprintf(e.Stderr, "Cloned %s into %s at %s (%s)\n", res.Target.Repo.CloneURL(), res.Dir, where, res.Head)
			if res.File != "" {
				fmt.Fprintln(e.Stdout, res.File)
			}
			return nil
		},
	}
}

// cloneOptions turns the settings of c into clone.Options.
func cloneOptions(c *cli.Context, e *cliapp.Env) (clone.Options, error) {
	if c.NArg() < 1 || c.NArg() > 2 {
		return clone.Options{}, cliapp.UsageError{Err: errors.New("clone takes URL [DIR]")}
	}
	depth := c.Int("depth")
	if depth < 0 {
		return clone.Options{}, cliapp.UsageError{Err: fmt.Errorf("--depth %d: want 0 (full history) or more", depth)}
	}
	selfHosted, err := config.Hosts(c)
	if err != nil {
		return clone.Options{}, err
	}
	hosts, err := azdo.NewHosts(selfHosted)
	if err != nil {
		return clone.Options{}, err
	}
	hc, err := cloneHTTPClient(c)
	if err != nil {
		return clone.Options{}, err
	}
	src, err := cloneTokenSource(c, hosts)
	if err != nil {
		return clone.Options{}, err
	}
	viaProxy, err := cloneViaProxy(c, src)
	if err != nil {
		return clone.Options{}, err
	}
	if viaProxy != nil {
		hc, src = viaProxy, nil
	}
	return clone.Options{
		ViaProxy:          viaProxy != nil,
		URL:               c.Args().Get(0),
		Dir:               c.Args().Get(1),
		Depth:             depth,
		RecurseSubmodules: c.Bool("recurse-submodules"),
		Hosts:             hosts,
		Tokens:            src,
		HTTPClient:        hc,
		Progress:          e.Stderr,
	}, nil
}

// cloneHTTPClient builds the client for Azure DevOps from --resolve,
// --upstream-ca-file and --upstream-proxy.
func cloneHTTPClient(c *cli.Context) (*http.Client, error) {
	resolves, err := config.Resolves(c)
	if err != nil {
		return nil, err
	}
	ho := clone.HTTPOptions{Resolve: map[string]string{}}
	for _, r := range resolves {
		ho.Resolve[strings.ToLower(net.JoinHostPort(r.Host, r.Port))] = r.Addr
	}
	if f := c.String(config.FlagUpstreamCAFile); f != "" {
		roots, err := certpool.Load(f)
		if err != nil {
			return nil, fmt.Errorf("--%s: %w", config.FlagUpstreamCAFile, err)
		}
		ho.RootCAs = roots
	}
	if p := c.String(config.FlagUpstreamProxy); p != "" {
		u, err := url.Parse(p)
		if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
			return nil, fmt.Errorf("--%s: want http://host:port or https://host:port", config.FlagUpstreamProxy)
		}
		ho.Proxy = http.ProxyURL(u)
	}
	return clone.NewHTTPClient(ho), nil
}

// cloneMinValid is how long a token from the vault must stay valid.
const cloneMinValid = 15 * time.Minute

// cloneTokenSource is the vault, the PAT of standalone mode, or else the
// running sidecar behind --socket.
func cloneTokenSource(c *cli.Context, hosts *azdo.Hosts) (token.Source, error) {
	ts := config.TokenSourceFrom(c)
	if err := ts.Validate(); err != nil {
		return nil, err
	}
	switch ts.Mode() {
	case config.ModePAT:
		pat, err := ts.ReadPAT()
		if err != nil {
			return nil, err
		}
		return token.NewStatic(pat), nil
	case config.ModeVault:
		envTok, err := ts.ReadEnvToken()
		if err != nil {
			return nil, err
		}
		// The token is fetched once, before the transfer starts: ask for
		// one that outlives a long clone.
		return vaultsource.New(vaultsource.Options{URL: ts.VaultURL, EnvToken: envTok, CAFile: ts.VaultCAFile, MinValid: cloneMinValid})
	}
	return socketSource{client: &credential.Client{Socket: config.SocketPath(c)}, hosts: hosts}, nil
}

// socketSource asks the running sidecar for tokens over its credential
// socket, as git's credential helper does. hosts (the --host entries)
// builds the path that names the key's collection under its server's
// virtual directory.
type socketSource struct {
	client *credential.Client
	hosts  *azdo.Hosts
}

// Token implements token.Source.
func (s socketSource) Token(ctx context.Context, key token.Key) (token.Token, error) {
	path := s.hosts.OrgPath(key.Host, key.Org)
	req := &credential.Credential{
		Capabilities: []string{credential.CapAuthType},
		Protocol:     "https",
		Host:         key.Host,
		Path:         path,
	}
	ans, err := s.client.Do(ctx, credential.ActionGet, req)
	if errors.Is(err, credential.ErrNoServer) {
		// At environment start the clone may run before the sidecar
		// listens: ErrUnavailable makes clone retry with backoff, and the
		// message says what to do if it never comes.
		return token.Token{}, fmt.Errorf("no token source: pass --pat-file (or set %s) or --vault-url, or start `azdo-sidecar serve` first (%v): %w", config.EnvPAT, err, token.ErrUnavailable)
	}
	if err != nil {
		return token.Token{}, fmt.Errorf("%w: %v", token.ErrUnavailable, err)
	}
	// The sidecar's messages are written for git's stderr, prefixed with
	// the program's name; clone adds its own prefix.
	msg, hasMsg := ans.Get(credential.MessageKey)
	msg = strings.TrimPrefix(msg, "azdo-sidecar: ")
	if hasMsg && ans.Quit {
		return token.Token{}, errors.New(msg)
	}
	if strings.EqualFold(ans.AuthType, "Bearer") && !ans.Credential.IsZero() {
		return token.Token{Kind: token.Bearer, Secret: ans.Credential, ExpiresAt: ans.PasswordExpiry}, nil
	}
	if ans.Password.IsZero() {
		if hasMsg {
			return token.Token{}, fmt.Errorf("%s: %w", msg, token.ErrNoCredential)
		}
		return token.Token{}, fmt.Errorf("the sidecar has no credential for %s: %w", key, token.ErrNoCredential)
	}
	return token.Token{Kind: token.Basic, Username: ans.Username, Secret: ans.Password, ExpiresAt: ans.PasswordExpiry}, nil
}

// cloneViaProxy returns the HTTP client that clones through the sidecar's
// proxy when the environment is proxy-only (--proxy-only, or the running
// sidecar says so: in its status, or by answering the token request of the
// clone's repository with its proxy-only line), else nil.
func cloneViaProxy(c *cli.Context, src token.Source) (*http.Client, error) {
	sock, isSocket := src.(socketSource)
	want := c.Bool("proxy-only")
	if want && !isSocket {
		return nil, cliapp.UsageError{Err: errors.New("--proxy-only clones through the sidecar's proxy; it takes no --pat-file, AZDO_PAT or --vault-url")}
	}
	urlFile, caFile := c.String("proxy-url-file"), c.String("proxy-ca-file")
	if !want && isSocket && c.NArg() > 0 {
		if st, err := socketStatus(c.Context, config.SocketPath(c)); err == nil && st.ProxyOnly != "" {
			want = true
		} else if t, err := azdo.Parse(c.Args().Get(0), sock.hosts); err == nil {
			_, terr := sock.Token(c.Context, token.Key{Host: t.Repo.Host, Org: t.Repo.CredentialOrg()})
			want = terr != nil && strings.Contains(terr.Error(), "is proxy-only")
		}
	}
	if !want {
		return nil, nil
	}
	if urlFile == "" || caFile == "" {
		st, err := socketStatus(c.Context, config.SocketPath(c))
		if err != nil {
			return nil, fmt.Errorf("clone: proxy-only: pass --proxy-url-file and --proxy-ca-file, or start `azdo-sidecar serve` first: %w", err)
		}
		if urlFile == "" {
			urlFile = st.Ready.ProxyURLFile
		}
		if caFile == "" {
			caFile = st.Ready.CAFile
		}
	}
	pass, err := proxycred.Load(urlFile)
	if err != nil {
		return nil, fmt.Errorf("clone: proxy-only: %w", err)
	}
	raw, err := os.ReadFile(urlFile)
	if err != nil {
		return nil, fmt.Errorf("clone: proxy-only: %w", err)
	}
	pu, err := url.Parse(strings.TrimSpace(string(raw)))
	if err != nil || pu.Host == "" {
		return nil, fmt.Errorf("clone: proxy-only: %s does not hold a proxy URL", urlFile)
	}
	pu.User = url.UserPassword(proxycred.User, pass.Reveal())
	roots, err := certpool.Load(caFile)
	if err != nil {
		return nil, fmt.Errorf("clone: proxy-only: sidecar CA: %w", err)
	}
	return clone.NewHTTPClient(clone.HTTPOptions{RootCAs: roots, Proxy: http.ProxyURL(pu)}), nil
}
