package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/azdo-sidecar/azdo-sidecar/config"
	"github.com/azdo-sidecar/azdo-sidecar/internal/cliapp"
	"github.com/azdo-sidecar/azdo-sidecar/vault"
	"github.com/azdo-sidecar/azdo-sidecar/vault/entra"
)

// verifyTimeout bounds the checks of one provider.
const verifyTimeout = 30 * time.Second

// verifyCommand is `azdo-vault verify --config FILE`: for every OAuth
// provider, the sealed client secret opens with this runner's key, OIDC
// discovery of the issuer works, the signing keys and token endpoint answer,
// and the client ID and secret are accepted (client-credentials grant). It
// stops at the first failure with what the administrator must fix.
func verifyCommand(e *cliapp.Env) *cli.Command {
	return &cli.Command{
		Name:  "verify",
		Usage: "check every provider of the config: discovery, token endpoint, client ID and secret",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: config.ConfigFlag, Required: true, Usage: "vault config `FILE` (YAML)", TakesFile: true},
			config.KeyFileFlag(),
			config.UpstreamCAFileFlag(),
			&cli.StringFlag{Name: "verify-tenant", Usage: "`TENANT` (ID or domain) in which to check the client ID and secret when issuer_url names common or organizations"},
		},
		Action: func(c *cli.Context) error {
			vf, err := config.LoadVaultFile(c.String(config.ConfigFlag))
			if err != nil {
				return err
			}
			client, err := upstreamClient(c.String(config.FlagUpstreamCAFile))
			if err != nil {
				return err
			}
			for i, p := range vf.Providers {
				at := fmt.Sprintf("providers[%d] (%s)", i, p.Host)
				if p.OAuth == nil {
					fmt.Fprintf(e.Stdout, "%s: PAT only, nothing to verify\n", at)
					continue
				}
				o := vault.OAuthSettings{Host: p.Host, IssuerURL: p.OAuth.IssuerURL, ClientID: p.OAuth.ClientID, RedirectURL: vf.CallbackURL()}
				keyFile := c.String(config.FlagKeyFile)
				if keyFile == "" {
					// Without the runner's key the sealed secret stays
					// shut; everything else is still worth checking.
					return verifyWithoutSecret(c.Context, at, o, c.String("verify-tenant"), client)
				}
				kp, err := vault.LoadKeyFile(keyFile)
				if err != nil {
					return err
				}
				sec, err := vault.OpenClientSecret(kp, p.Host, p.OAuth.ClientSecretSealed)
				if err != nil {
					return fmt.Errorf("%s: %w", at, err)
				}
				o.ClientSecret = sec
				err = verifyOne(c.Context, o, c.String("verify-tenant"), client)
				if errors.Is(err, entra.ErrCredentialsUnchecked) {
					fmt.Fprintf(e.Stdout, "%s: warning: issuer %s discovered, but %v (--verify-tenant)\n", at, p.OAuth.IssuerURL, err)
					continue
				}
				if err != nil {
					return fmt.Errorf("%s: %w", at, err)
				}
				fmt.Fprintf(e.Stdout, "%s: ok: issuer %s discovered, token endpoint accepts client %s\n", at, p.OAuth.IssuerURL, p.OAuth.ClientID)
			}
			return nil
		},
	}
}

// verifyOne runs discovery and Verify for one provider; an *entra.Error
// becomes its advice followed by the precise failure.
func verifyOne(ctx context.Context, o vault.OAuthSettings, tenant string, client *http.Client) error {
	ctx, cancel := context.WithTimeout(ctx, verifyTimeout)
	defer cancel()
	cfg := o.EntraConfig(client, nil)
	cfg.VerifyTenant = tenant
	p, err := entra.New(ctx, cfg)
	if err == nil {
		err = p.Verify(ctx)
	}
	var ee *entra.Error
	if errors.As(err, &ee) {
		return fmt.Errorf("%s\n  (%w)", ee.Advice(), err)
	}
	return err
}

// errNoKeyFile ends a verify that could not open client_secret_sealed.
var errNoKeyFile = errors.New("the client secret was not checked: oauth.client_secret_sealed opens only with the runner's private key; pass --key-file (or set AZDO_KEY_FILE, or key-file: in the config)")

// verifyWithoutSecret checks what can be checked without the runner's key
// (discovery, signing keys, the token endpoint and that it knows the
// client ID: a request without a secret is refused with AADSTS7000218 for
// a known application, AADSTS700016 for an unknown one), then fails with
// errNoKeyFile: a verify that passed must have checked the secret.
func verifyWithoutSecret(ctx context.Context, at string, o vault.OAuthSettings, tenant string, client *http.Client) error {
	err := verifyOne(ctx, o, tenant, client)
	var ee *entra.Error
	if err == nil || errors.Is(err, entra.ErrCredentialsUnchecked) || (errors.As(err, &ee) && ee.AADSTS == 7000218) {
		return fmt.Errorf("%s: issuer %s discovered and its token endpoint answers, but %w", at, o.IssuerURL, errNoKeyFile)
	}
	return fmt.Errorf("%s: %w", at, err)
}
