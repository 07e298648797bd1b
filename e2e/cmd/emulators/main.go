// Command emulators starts the Azure DevOps and Entra ID emulators for
// trying things by hand, prints their addresses and CA file as one JSON
// line on stdout and runs until SIGTERM or SIGINT.
//
//	go run ./e2e/cmd/emulators --repo contoso/Web/site --pat-file pat.txt
//
// Then, for example:
//
//	git -c http.sslCAInfo=$CA_FILE -c http.curloptResolve=$RESOLVE \
//	    -c http.extraHeader="Authorization: Basic $(printf u:%s "$(cat pat.txt)" | base64 -w0)" \
//	    clone https://dev.azure.com/contoso/Web/_git/site
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/azdo-sidecar/azdo-sidecar/e2e/azdoemu"
	"github.com/azdo-sidecar/azdo-sidecar/e2e/entraemu"
	"github.com/azdo-sidecar/azdo-sidecar/e2e/testenv"
	"github.com/azdo-sidecar/azdo-sidecar/secret"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "emulators:", err)
		os.Exit(1)
	}
}

// Ready is the JSON line printed once both emulators serve.
type Ready struct {
	AzDO     string `json:"azdo"`      // address of the Azure DevOps emulator
	Entra    string `json:"entra"`     // base URL of the Entra ID emulator
	CAFile   string `json:"ca_file"`   // both emulators' CAs, PEM
	TenantID string `json:"tenant_id"` // the organization's tenant
	// Resolve maps dev.azure.com onto the emulator, for git's
	// http.curloptResolve when AzDO is on port 443, and for the
	// sidecar's --resolve (HOST:PORT:ADDR with ADDR = IP:PORT).
	Resolve         string `json:"resolve"`
	SidecarResolve  string `json:"sidecar_resolve"`
	EntraIssuer     string `json:"entra_issuer"`
	EntraClientID   string `json:"entra_client_id,omitempty"`
	EntraUser       string `json:"entra_user,omitempty"`
	RepositoryCount int    `json:"repositories"`
}

type repeated []string

func (r *repeated) String() string     { return strings.Join(*r, ",") }
func (r *repeated) Set(v string) error { *r = append(*r, v); return nil }

// run starts the emulators, writes the ready line to stdout and blocks
// until ctx ends.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("emulators", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		listen       = fs.String("listen", "", "Azure DevOps emulator address (default: port 443 of a random 127.x.y.z when possible, else 127.0.0.1:0)")
		entraListen  = fs.String("entra-listen", "127.0.0.1:0", "Entra ID emulator address")
		tenant       = fs.String("tenant", "", "tenant ID (default random)")
		virtualDir   = fs.String("virtual-dir", "", "virtual directory of self-hosted hosts (e.g. tfs)")
		patFile      = fs.String("pat-file", "", "register the PAT in this file (all organizations)")
		clientID     = fs.String("entra-client-id", "", "register an Entra application with this client ID")
		secretFile   = fs.String("entra-client-secret-file", "", "its client secret")
		redirectURI  = fs.String("entra-redirect-uri", "", "its redirect URI")
		user         = fs.String("entra-user", "alice@contoso.example", "test user signed in at authorize")
		verbose      = fs.Bool("v", false, "log requests and diagnostics to stderr")
		selfHosted   repeated
		repositories repeated
	)
	fs.Var(&selfHosted, "self-hosted", "self-hosted Azure DevOps Server host name (repeatable)")
	fs.Var(&repositories, "repo", "create org/project/repo (repeatable)")
	if err := fs.Parse(args); err != nil {
		return err
	}

	logf := func(string, ...any) {}
	if *verbose {
		logf = func(f string, a ...any) { fmt.Fprintf(stderr, f+"\n", a...) }
	}
	azdo, err := testenv.NewAzDO(azdoemu.Config{
		Listen: *listen, TenantID: *tenant, SelfHosted: selfHosted, VirtualDir: *virtualDir, Logf: logf,
	})
	if err != nil {
		return err
	}
	defer azdo.Close()
	entra, err := entraemu.New(entraemu.Config{Addr: *entraListen, TenantID: azdo.TenantID()})
	if err != nil {
		return err
	}
	defer entra.Close()
	azdo.SetBearerVerifier(entra.AzureDevOpsVerifier(azdo.TenantID()))

	for _, r := range repositories {
		parts := strings.Split(r, "/")
		if len(parts) != 3 {
			return fmt.Errorf("--repo %q: want org/project/repo", r)
		}
		if _, err := azdo.CreateRepo(parts[0], parts[1], parts[2]); err != nil {
			return err
		}
	}
	if *patFile != "" {
		b, err := os.ReadFile(*patFile)
		if err != nil {
			return err
		}
		if err := azdo.AddPAT(azdoemu.PAT{Token: secret.New(strings.TrimSpace(string(b)))}); err != nil {
			return err
		}
	}
	ready := Ready{
		AzDO: azdo.Addr(), Entra: entra.URL(), TenantID: azdo.TenantID(),
		Resolve:         fmt.Sprintf("dev.azure.com:%d:%s", azdo.Port(), azdo.IP()),
		SidecarResolve:  testenv.ResolveFlag("dev.azure.com", azdo),
		EntraIssuer:     entra.IssuerURL(azdo.TenantID()),
		RepositoryCount: len(repositories),
	}
	if *clientID != "" {
		if *secretFile == "" || *redirectURI == "" {
			return errors.New("--entra-client-id needs --entra-client-secret-file and --entra-redirect-uri")
		}
		b, err := os.ReadFile(*secretFile)
		if err != nil {
			return err
		}
		entra.RegisterApp(*clientID, secret.New(strings.TrimSpace(string(b))), []string{*redirectURI})
		ready.EntraClientID = *clientID
	}
	if *user != "" {
		if _, err := entra.AddUser(entraemu.User{UPN: *user}); err != nil {
			return err
		}
		if err := entra.SetSignedInUser(*user); err != nil {
			return err
		}
		ready.EntraUser = *user
	}

	// One bundle for both CAs, next to the emulator's repositories.
	ready.CAFile = filepath.Join(azdo.Dir(), "emulators-ca.pem")
	bundle := append(azdo.CAPEM(), entra.CAPEM()...)
	if err := os.WriteFile(ready.CAFile, bundle, 0o644); err != nil {
		return err
	}
	azdo.Start()
	entra.Start()

	line, err := json.Marshal(ready)
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintf(stdout, "%s\n", line); err != nil {
		return err
	}
	<-ctx.Done()
	return nil
}
