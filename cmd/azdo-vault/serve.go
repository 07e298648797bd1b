package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/azdo-sidecar/azdo-sidecar/config"
	"github.com/azdo-sidecar/azdo-sidecar/internal/certpool"
	"github.com/azdo-sidecar/azdo-sidecar/internal/cliapp"
	"github.com/azdo-sidecar/azdo-sidecar/sealbox"
	"github.com/azdo-sidecar/azdo-sidecar/vault"
	"github.com/azdo-sidecar/azdo-sidecar/vault/store"
)

// shutdownGrace bounds the drain on SIGTERM.
const shutdownGrace = 15 * time.Second

// serveDeps is what serve builds before it listens; mountConnect gets it to
// add the Connect and PAT pages to the vault's mux.
type serveDeps struct {
	Vault *vault.Vault
	// Providers are the vault's providers; their Entra refreshers hold
	// the discovered issuers the Connect pages reuse.
	Providers []vault.Provider
	File      *config.VaultFile
	Keys      sealbox.KeyPair
	Client    *http.Client // trusts system roots, SSL_CERT_FILE and --upstream-ca-file
	// OAuth holds each OAuth-enabled host's provider settings, with the
	// client secret opened (in memory only).
	OAuth map[string]vault.OAuthSettings
	// Disabled holds, by host, why an OAuth provider is disabled: its
	// Connect page says so.
	Disabled map[string]string
	Log      *slog.Logger
}

// serveCommand is `azdo-vault serve`.
func serveCommand(e *cliapp.Env) *cli.Command {
	kf := config.KeyFileFlag()
	kf.Required = true
	return &cli.Command{
		Name:  "serve",
		Usage: "run the vault service; print a JSON ready line on stdout",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: config.ConfigFlag, Required: true, Usage: "vault config `FILE` (YAML)", TakesFile: true},
			kf,
			&cli.StringFlag{Name: config.FlagListen, Value: "127.0.0.1:8443", Usage: "`ADDR` to listen on; plain HTTP (no --tls-cert) only on loopback unless --insecure-listen-any"},
			&cli.BoolFlag{Name: flagInsecureListenAny, Usage: "allow plain HTTP (no --tls-cert) on a non-loopback --listen address (environment tokens, connect links and pasted PATs then cross the network in clear)"},
			config.StoreFlag(),
			config.UpstreamCAFileFlag(),
			&cli.StringFlag{Name: "tls-cert", Usage: "serve HTTPS with this certificate `FILE` (PEM); without it, plain HTTP for a TLS-terminating ingress", TakesFile: true},
			&cli.StringFlag{Name: "tls-key", Usage: "private key `FILE` (PEM) of --tls-cert", TakesFile: true},
			&cli.BoolFlag{Name: "check-config", Usage: "verify the config and its providers, print what starting would delete from the store (credentials of removed providers or methods), and exit"},
			pidFileFlag(),
			&cli.DurationFlag{Name: "audit-retention", Value: vault.DefaultAuditRetention, Usage: "keep audit events (POST /v1/audit) this long (`DURATION`); older ones are deleted hourly by every replica; 0 keeps them forever"},
		},
		Action: func(c *cli.Context) error { return serve(c, e) },
	}
}

func serve(c *cli.Context, e *cliapp.Env) error {
	ctx := c.Context
	log := e.Log
	kp, err := vault.LoadKeyFile(c.String(config.FlagKeyFile))
	if err != nil {
		return err
	}
	vf, err := config.LoadVaultFile(c.String(config.ConfigFlag))
	if err != nil {
		return err
	}
	if c.Duration("audit-retention") < 0 {
		return cliapp.UsageError{Err: errors.New("--audit-retention must not be negative (0 keeps audit events forever)")}
	}
	certFile, keyFile := c.String("tls-cert"), c.String("tls-key")
	if (certFile == "") != (keyFile == "") {
		return errors.New("--tls-cert and --tls-key go together")
	}
	if err := checkListen(c.String(config.FlagListen), certFile != "", c.Bool(flagInsecureListenAny)); err != nil {
		return err
	}
	if c.Bool(flagInsecureListenAny) && certFile == "" && !isLoopback(c.String(config.FlagListen)) {
		log.Warn("--insecure-listen-any: serving plain HTTP on a non-loopback address; environment tokens, connect links and pasted PATs cross the network in clear up to this process", "listen", c.String(config.FlagListen))
	}
	client, err := upstreamClient(c.String(config.FlagUpstreamCAFile))
	if err != nil {
		return err
	}
	if c.Bool("check-config") {
		return checkConfig(c, e, vf, kp, client)
	}
	cur := loadSettings(ctx, vf, kp, client, nil, log)
	st, err := store.Open(ctx, c.String(config.FlagStore), time.Now)
	if err != nil {
		return err
	}
	defer st.Close()
	// What a removed provider or method left behind goes before anything
	// is served.
	if _, err := vault.Prune(ctx, st, cur.methods, log); err != nil {
		return err
	}
	v, err := vault.New(vault.Config{
		Keys:      kp,
		Store:     st,
		Providers: cur.providers,
		PublicURL: vf.PublicURL,
		Logger:    log,
		// Every replica sweeps; deleting twice is harmless.
		AuditRetention: c.Duration("audit-retention"),
	})
	if err != nil {
		return err
	}
	defer v.Close()
	v.SetProviderStates(cur.states)
	pages := &connectSwitch{}
	deps := &serveDeps{Vault: v, Providers: cur.providers, File: vf, Keys: kp, Client: client, OAuth: cur.oauth, Disabled: cur.disabled, Log: log}
	if err := mountConnect(deps, pages); err != nil {
		return err
	}
	// The pages' routes (whatever the connect package registers) reach
	// the current generation of pages, which a reload replaces.
	v.Mux().Handle("/", pages)
	rl := &reloader{path: c.String(config.ConfigFlag), keys: kp, client: client, store: st, vault: v, pages: pages, cur: cur, log: log}
	stopReload := rl.listen(ctx)
	defer stopReload()
	removePID, err := writePIDFile(c.String(flagPIDFile))
	if err != nil {
		return err
	}
	defer removePID()

	ln, err := net.Listen("tcp", c.String(config.FlagListen))
	if err != nil {
		return fmt.Errorf("--listen: %w", err)
	}
	srv := &http.Server{
		Handler:           v.Mux(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
		// net/http's own complaints (TLS handshakes, bad requests) go
		// through the structured logger like every other stderr line.
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	// Long-polls of waiting environments end at once on shutdown (their
	// sidecars ask again) rather than holding the drain.
	srv.RegisterOnShutdown(v.StopWaits)
	if certFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			ln.Close()
			return fmt.Errorf("--tls-cert/--tls-key: %w", err)
		}
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		ln = tls.NewListener(ln, srv.TLSConfig)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	ready, _ := json.Marshal(struct {
		Listen    string `json:"listen"`
		PublicKey string `json:"public_key"`
	}{ln.Addr().String(), kp.Public.String()})
	fmt.Fprintf(e.Stdout, "%s\n", ready)
	log.Info("vault serving", "listen", ln.Addr().String(), "tls", certFile != "", "providers", len(cur.providers), "public_key", kp.Public.String(), "pid_file", c.String(flagPIDFile))

	select {
	case err := <-served:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	err = srv.Shutdown(sctx)
	<-served
	if err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

func patHosts(vf *config.VaultFile) map[string]bool {
	out := map[string]bool{}
	for _, p := range vf.Providers {
		out[p.Host] = p.PAT != nil && p.PAT.Enabled
	}
	return out
}

// virtualDirs returns the virtual directory of every provider configured
// with one (host: tfs.example.com/tfs).
func virtualDirs(vf *config.VaultFile) map[string]string {
	out := map[string]string{}
	for _, p := range vf.Providers {
		if p.VirtualDir != "" {
			out[p.Host] = p.VirtualDir
		}
	}
	return out
}

// upstreamClient is the client for the identity provider and self-hosted
// servers: system roots, SSL_CERT_FILE and caFile; timeouts everywhere.
func upstreamClient(caFile string) (*http.Client, error) {
	roots, err := certpool.Load(caFile)
	if err != nil {
		return nil, fmt.Errorf("--upstream-ca-file: %w", err)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	tr.TLSHandshakeTimeout = 10 * time.Second
	tr.ResponseHeaderTimeout = 20 * time.Second
	tr.MaxIdleConnsPerHost = 16
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}, nil
}

// flagInsecureListenAny allows plain HTTP on a non-loopback address.
const flagInsecureListenAny = "insecure-listen-any"

// errNotLoopback refuses plain HTTP on an address other machines reach.
var errNotLoopback = errors.New("--listen is not loopback")

// checkListen refuses plain HTTP (no TLS) on an address reachable from
// other machines unless insecureAny: the vault's requests carry
// environment tokens, connect links and pasted PATs. HTTPS may listen
// anywhere; so may plain HTTP on loopback, behind a TLS-terminating
// ingress on the same host.
func checkListen(addr string, tls, insecureAny bool) error {
	if tls || insecureAny || isLoopback(addr) {
		return nil
	}
	return fmt.Errorf("%w: %q serves plain HTTP (anyone on the network path reads environment tokens, connect links and pasted PATs; serve HTTPS with --tls-cert/--tls-key, or pass --insecure-listen-any to allow it)", errNotLoopback, addr)
}

// isLoopback reports whether addr (host:port) listens on loopback only.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
