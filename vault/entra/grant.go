package entra

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/azdo-sidecar/azdo-sidecar/secret"
)

// AuthCodeURL returns the authorize URL for the Connect flow: authorization
// code with PKCE (S256 challenge of pkceVerifier), state and nonce, the
// contract's scopes; loginHint, when not empty, is sent as login_hint so
// that Entra ID offers that account instead of silently using whichever
// one the browser is signed in with.
func (p *Provider) AuthCodeURL(state, nonce, pkceVerifier, loginHint string) string {
	opts := []oauth2.AuthCodeOption{oidc.Nonce(nonce), oauth2.S256ChallengeOption(pkceVerifier)}
	if loginHint != "" {
		opts = append(opts, oauth2.SetAuthURLParam("login_hint", loginHint))
	}
	return p.oauth.AuthCodeURL(state, opts...)
}

// Refresh redeems refreshToken for a new access token. The returned
// Grant's RefreshToken replaces the old one (Entra rotates it); store it
// before anything else. Failures are *Error, classified; Permanent ones
// must never be retried. Refresh makes exactly one request: retrying is the
// caller's decision.
//
// The request names the scopes again, as Entra's v2.0 documentation asks,
// so that the access token is for Azure DevOps whatever else the original
// grant covered; x/oauth2's refresh cannot send a scope, so the request is
// made here.
func (p *Provider) Refresh(ctx context.Context, refreshToken secret.String) (Grant, error) {
	endpoint := p.TokenURL()
	fail := func(err error) (Grant, error) {
		return Grant{}, classify("refresh", endpoint, p.cfg.ClientID, err, p.cfg.ClientSecret, refreshToken)
	}
	if refreshToken.IsZero() {
		return Grant{}, &Error{Op: "refresh", URL: endpoint, ClientID: p.cfg.ClientID, Code: "invalid_grant", Class: Permanent, Description: "no refresh token stored"}
	}
	ctx, cancel := p.callContext(ctx)
	defer cancel()
	form := url.Values{
		"grant_type":    {"refresh_token"},
		"refresh_token": {refreshToken.Reveal()},
		"client_id":     {p.cfg.ClientID},
		"client_secret": {p.cfg.ClientSecret.Reveal()},
		"scope":         {strings.Join(Scopes, " ")},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return fail(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, err := p.client.Do(req)
	if err != nil {
		return fail(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseBytes))
	if err != nil {
		return fail(err)
	}
	if resp.StatusCode != http.StatusOK {
		return fail(&oauth2.RetrieveError{Response: resp, Body: body})
	}
	var tj struct {
		AccessToken  string          `json:"access_token"`
		RefreshToken string          `json:"refresh_token"`
		ExpiresIn    json.RawMessage `json:"expires_in"`
		Error        string          `json:"error"`
	}
	if err := json.Unmarshal(body, &tj); err != nil || tj.Error != "" {
		return fail(&oauth2.RetrieveError{Response: resp, Body: body})
	}
	if tj.AccessToken == "" {
		return Grant{}, &Error{Op: "refresh", URL: endpoint, ClientID: p.cfg.ClientID, Code: "invalid_response", Class: Transient, Status: resp.StatusCode, Description: "token answer without access_token"}
	}
	g := p.grant(&oauth2.Token{AccessToken: tj.AccessToken, RefreshToken: tj.RefreshToken, ExpiresIn: parseSeconds(tj.ExpiresIn)})
	if g.RefreshToken.Equal(refreshToken) {
		g.RefreshToken = secret.String{}
	}
	return g, nil
}

// parseSeconds reads expires_in, a number or (older endpoints) a string;
// 0 when absent or invalid.
func parseSeconds(raw json.RawMessage) int64 {
	s := strings.Trim(string(raw), `"`)
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0
	}
	return n
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
		UPN               string `json:"upn"`
		Email             string `json:"email"`
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
		Subject:      idt.Subject,
		ObjectID:     c.OID,
		TenantID:     c.TID,
		Username:     c.PreferredUsername,
		UPN:          c.UPN,
		Email:        c.Email,
		Name:         c.Name,
		Issuer:       idt.Issuer,
		IssuerTenant: p.issuerTenant(),
	}, nil
}

// Verify is the verify command's check of this provider, beyond the
// discovery New already did: the signing keys can be fetched, and the
// token endpoint accepts the client ID and secret (a client-credentials
// grant for Azure DevOps, at Config.VerifyTenant for a common or
// organizations issuer). It returns the first failure, an *Error whose
// Advice says what the administrator must fix.
func (p *Provider) Verify(ctx context.Context) error {
	ctx, cancel := p.callContext(ctx)
	defer cancel()
	if err := p.verifyKeys(ctx); err != nil {
		return err
	}
	tokenURL := p.TokenURL()
	if p.issuerTemplate != "" {
		if p.cfg.VerifyTenant == "" {
			return ErrCredentialsUnchecked
		}
		tokenURL = strings.Replace(tokenURL, "/"+p.tenant+"/oauth2/", "/"+p.cfg.VerifyTenant+"/oauth2/", 1)
	}
	cc := clientcredentials.Config{
		ClientID:     p.cfg.ClientID,
		ClientSecret: p.cfg.ClientSecret.Reveal(),
		TokenURL:     tokenURL,
		Scopes:       []string{VerifyScope},
		AuthStyle:    oauth2.AuthStyleInParams,
	}
	if _, err := cc.Token(oidc.ClientContext(ctx, p.client)); err != nil {
		return classify("verify", tokenURL, p.cfg.ClientID, err, p.cfg.ClientSecret)
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
