// Command policyproxy runs package proxy alone, with a static PAT whose
// token carries the policy given with --policy, for bench/policy.sh: the
// same proxy the sidecar runs, with and without a policy to enforce. It
// prints {"proxy":ADDR,"ca_file":PATH} on stdout once it listens and stops
// on SIGTERM. Not for production: its proxy has no client authentication.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/azdo-sidecar/azdo-sidecar/azdo"
	"github.com/azdo-sidecar/azdo-sidecar/internal/certpool"
	"github.com/azdo-sidecar/azdo-sidecar/proxy"
	"github.com/azdo-sidecar/azdo-sidecar/secret"
	"github.com/azdo-sidecar/azdo-sidecar/token"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "policyproxy:", err)
		os.Exit(1)
	}
}

func run() error {
	pol := flag.String("policy", "", "policy JSON the tokens carry (empty: none)")
	resolve := flag.String("resolve", "", "HOST:PORT:ADDR")
	caFile := flag.String("upstream-ca-file", "", "upstream CA")
	dir := flag.String("dir", os.TempDir(), "where ca.pem is written")
	flag.Parse()
	pat := os.Getenv("AZDO_PAT")
	if pat == "" {
		return fmt.Errorf("AZDO_PAT is not set")
	}
	hosts, _ := azdo.NewHosts(nil)
	var res proxy.Resolve
	if *resolve != "" {
		r, err := proxy.ParseResolve([]string{*resolve})
		if err != nil {
			return err
		}
		res = r
	}
	roots, err := certpool.Load(*caFile)
	if err != nil {
		return err
	}
	tok := token.Token{Kind: token.Basic, Secret: secret.New(pat), Policy: *pol}
	p, err := proxy.New(proxy.Config{
		Hosts: hosts, OrgFor: hosts.OrgFor, Source: token.SourceFunc(func(context.Context, token.Key) (token.Token, error) { return tok, nil }),
		UpstreamRoots: roots, Resolve: res, Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		return err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	ca := filepath.Join(*dir, "ca.pem")
	if err := os.WriteFile(ca, p.CA().CertPEM(), 0o600); err != nil {
		return err
	}
	line, _ := json.Marshal(map[string]string{"proxy": l.Addr().String(), "ca_file": ca})
	fmt.Println(string(line))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	go func() { <-ctx.Done(); _ = p.Shutdown(context.Background()) }()
	if err := p.Serve(l); err != nil && ctx.Err() == nil {
		return err
	}
	return nil
}
