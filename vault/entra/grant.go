package entra

import (
	"context"
	"crypto/subtle"
	"fmt"
	"net/http"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/azdo-sidecar/azdo-sidecar/secret"
)

// AuthCodeURL returns the authorize URL for the Connect flow: authorization
// code with PKCE (S256 challenge of pkceVerifier), state and nonce, the
// contract's scopes.
func (p *Provider) AuthCodeURL(state, nonce, pkceVerifier string) string {
	return p.oauth.AuthCodeURL(state, oidc.Nonce(nonce), oauth2.S256ChallengeOption(pkceVerifier))
}

// Refresh redeems refreshToken for a new access token. The returned
// Grant's RefreshToken replaces the old one (Entra rotates it); store it
// before anything else. Failures are *Error, classified; Permanent ones
// must never be retried.
func (p *Provider) Refresh(ctx context.Context, refreshToken secret.String) (Grant, error) {
	if refreshToken.IsZero() {
		return Grant{}, &Error{Op: "refresh", URL: p.TokenURL(), ClientID: p.cfg.ClientID, Code: "invalid_grant", Class: Permanent, Description: "no refresh token stored"}
	}
	ctx, cancel := p.callContext(ctx)
	defer cancel()
	ctx = oidc.ClientContext(ctx, p.client)
	// An expired token makes the source refresh at once.
	src := p.oauth.TokenSource(ctx, &oauth2.Token{RefreshToken: refreshToken.Reveal(), Expiry: time.Unix(1, 0)})
	tok, err := src.Token()
	if err != nil {
		return Grant{}, classify("refresh", p.TokenURL(), p.cfg.ClientID, err, p.cfg.ClientSecret, refreshToken)
	}
	g := p.grant(tok)
	// x/oauth2 carries the old refresh token over when the answer has none;
	// report "not rotated" as a zero RefreshToken instead.
	if g.RefreshToken.Equal(refreshToken) {
		g.RefreshToken = secret.String{}
	}
	return g, nil
}

// grant converts an oauth2 token, with the expiry from expires_in and the
// provider's clock (x/oauth2's Expiry uses time.Now).
func (p *Provider) grant(tok *oauth2.Token) Grant {
	life := time.Duration(tok.ExpiresIn) * time.Second
	if tok.ExpiresIn <= 0 {
		life = MissingExpiryLifetime
	}
	return Grant{
		AccessToken:  secret.New(tok.AccessToken),
		RefreshToken: secret.New(tok.RefreshToken),
		ExpiresAt:    p.now().Add(life),
	}
}

// Exchange redeems an authorization code with its PKCE verifier and
// verifies the ID token: signature (JWKS), audience (the client ID),
// expiry, issuer (including the tenant-placeholder case) and nonce. A
// grant without a refresh token is refused with ErrNoRefreshToken.
func (p *Provider) Exchange(ctx context.Context, code, pkceVerifier, nonce string) (Grant, Identity, error) {
	ctx, cancel := p.callContext(ctx)
	defer cancel()
	ctx = oidc.ClientContext(ctx, p.client)
	tok, err := p.oauth.Exchange(ctx, code, oauth2.VerifierOption(pkceVerifier))
	if err != nil {
		return Grant{}, Identity{}, classify("exchange", p.TokenURL(), p.cfg.ClientID, err, p.cfg.ClientSecret, secret.New(code), secret.New(pkceVerifier))
	}
	rawID, _ := tok.Extra("id_token").(string)
	if rawID == "" {
		return Grant{}, Identity{}, fmt.Errorf("%w: the token answer has no id_token", ErrIDToken)
	}
	idt, err := p.verifier.Verify(ctx, rawID)
	if err != nil {
		return Grant{}, Identity{}, fmt.Errorf("%w: %v", ErrIDToken, err)
	}
	if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(nonce)) != 1 || nonce == "" {
		return Grant{}, Identity{}, fmt.Errorf("%w: nonce does not match the one sent", ErrIDToken)
	}
	var c struct {
		OID               string `json:"oid"`
		TID               string `json:"tid"`
		PreferredUsername string `json:"preferred_username"`
		Name              string `json:"name"`
	}
	if err := idt.Claims(&c); err != nil {
		return Grant{}, Identity{}, fmt.Errorf("%w: claims: %v", ErrIDToken, err)
	}
	if err := p.checkIssuer(idt.Issuer, c.TID); err != nil {
		return Grant{}, Identity{}, err
	}
	g := p.grant(tok)
	if g.RefreshToken.IsZero() {
		return Grant{}, Identity{}, ErrNoRefreshToken
	}
	return g, Identity{
		Subject:  idt.Subject,
		ObjectID: c.OID,
		TenantID: c.TID,
		Username: c.PreferredUsername,
		Name:     c.Name,
		Issuer:   idt.Issuer,
	}, nil
}

// Verify is the verify command's check of this provider, beyond the
// discovery New already did: the signing keys can be fetched, and the
// token endpoint accepts the client ID and secret (a client-credentials
// grant for Azure DevOps). It returns the first failure, an *Error whose
// Advice says what the administrator must fix.
func (p *Provider) Verify(ctx context.Context) error {
	ctx, cancel := p.callContext(ctx)
	defer cancel()
	if err := p.verifyKeys(ctx); err != nil {
		return err
	}
	cc := clientcredentials.Config{
		ClientID:     p.cfg.ClientID,
		ClientSecret: p.cfg.ClientSecret.Reveal(),
		TokenURL:     p.TokenURL(),
		Scopes:       []string{VerifyScope},
		AuthStyle:    oauth2.AuthStyleInParams,
	}
	if _, err := cc.Token(oidc.ClientContext(ctx, p.client)); err != nil {
		return classify("verify", p.TokenURL(), p.cfg.ClientID, err, p.cfg.ClientSecret)
	}
	return nil
}

// verifyKeys fetches the JWKS and checks it holds at least one key.
func (p *Provider) verifyKeys(ctx context.Context) error {
	fail := func(code string, class Class, status int, err error) error {
		return &Error{Op: "verify", URL: p.jwksURL, ClientID: p.cfg.ClientID, Code: code, Class: class, Status: status, Err: err}
	}
	if p.jwksURL == "" {
		return fail("invalid_response", Misconfigured, 0, fmt.Errorf("discovery document has no jwks_uri"))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.jwksURL, nil)
	if err != nil {
		return fail("invalid_response", Misconfigured, 0, err)
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return fail("network", Transient, 0, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fail(fmt.Sprintf("http_%d", resp.StatusCode), classOf("", 0, resp.StatusCode), resp.StatusCode, nil)
	}
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := decodeJSON(resp.Body, &set); err != nil || len(set.Keys) == 0 {
		return fail("invalid_response", Misconfigured, resp.StatusCode, fmt.Errorf("no signing keys in the JWKS"))
	}
	return nil
}
