package entraemu

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"html"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/azdo-sidecar/azdo-sidecar/secret"
)

// maxForm bounds the body of a token request.
const maxForm = 64 << 10

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{tenant}/v2.0/.well-known/openid-configuration", s.discovery)
	mux.HandleFunc("GET /{tenant}/discovery/v2.0/keys", s.keys)
	mux.HandleFunc("GET /{tenant}/oauth2/v2.0/authorize", s.authorize)
	mux.HandleFunc("POST /{tenant}/oauth2/v2.0/token", s.token)
	return s.outageMiddleware(mux)
}

// outageMiddleware fails every request while an outage is on.
func (s *Server) outageMiddleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		mode := s.outage
		if mode != OutageOff && strings.HasSuffix(r.URL.Path, "/token") {
			s.countGrantLocked(r.PostFormValue("grant_type"))
			s.counts.Failed++
		}
		s.mu.Unlock()
		switch mode {
		case OutageUnavailable:
			body, status := newErrorBody(s.base, s.now(), CodeTransient)
			w.Header().Set("Retry-After", "1")
			writeJSON(w, status, body)
		case OutageThrottled:
			body, status := newErrorBody(s.base, s.now(), CodeThrottled)
			w.Header().Set("Retry-After", "2")
			writeJSON(w, status, body)
		case OutageReset:
			if hj, ok := w.(http.Hijacker); ok {
				if conn, _, err := hj.Hijack(); err == nil {
					_ = conn.Close()
					return
				}
			}
			panic(http.ErrAbortHandler)
		default:
			next.ServeHTTP(w, r)
		}
	})
}

// tenantRef is the tenant segment of a request path, resolved.
type tenantRef struct {
	segment string // as written in the path
	tid     string // the tenant ID; "" for common and organizations
}

func (t tenantRef) multi() bool { return t.tid == "" }

// resolveTenant resolves a path's tenant segment: a known tenant ID, a
// known domain, "common" or "organizations".
func (s *Server) resolveTenant(seg string) (tenantRef, bool) {
	if seg == "common" || seg == "organizations" {
		return tenantRef{segment: seg}, true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.resolveTenantLocked(seg)
}

// resolveTenantLocked is resolveTenant with s.mu held.
func (s *Server) resolveTenantLocked(seg string) (tenantRef, bool) {
	if seg == "common" || seg == "organizations" {
		return tenantRef{segment: seg}, true
	}
	if _, ok := s.tenants[seg]; ok {
		return tenantRef{segment: seg, tid: seg}, true
	}
	if tid, ok := s.domains[strings.ToLower(seg)]; ok {
		return tenantRef{segment: seg, tid: tid}, true
	}
	return tenantRef{}, false
}

func (s *Server) fail(w http.ResponseWriter, code int, args ...any) {
	body, status := newErrorBody(s.base, s.now(), code, args...)
	writeJSON(w, status, body)
}

func (s *Server) discovery(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.counts.Discovery++
	s.mu.Unlock()
	seg := r.PathValue("tenant")
	t, ok := s.resolveTenant(seg)
	if !ok {
		s.fail(w, CodeTenantNotFound, seg)
		return
	}
	// Endpoints name the tenant ID when the path named a domain; for common
	// and organizations they keep the segment, and the issuer is the literal
	// placeholder, as Entra ID publishes it.
	epTenant, issTenant := t.tid, t.tid
	if t.multi() {
		epTenant, issTenant = t.segment, IssuerPlaceholder
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                                s.base + "/" + issTenant + "/v2.0",
		"authorization_endpoint":                s.AuthorizeURL(epTenant),
		"token_endpoint":                        s.TokenURL(epTenant),
		"jwks_uri":                              s.base + "/" + epTenant + "/discovery/v2.0/keys",
		"token_endpoint_auth_methods_supported": []string{"client_secret_post", "private_key_jwt", "client_secret_basic"},
		"response_modes_supported":              []string{"query", "fragment", "form_post"},
		"subject_types_supported":               []string{"pairwise"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"response_types_supported":              []string{"code", "id_token", "code id_token", "id_token token"},
		"scopes_supported":                      []string{"openid", "profile", "email", "offline_access"},
		"claims_supported":                      []string{"sub", "iss", "aud", "exp", "iat", "nonce", "name", "oid", "preferred_username", "tid", "ver"},
		"request_uri_parameter_supported":       false,
		"tenant_region_scope":                   "EU",
		"cloud_instance_name":                   "microsoftonline.com",
		"cloud_graph_host_name":                 "graph.windows.net",
		"msgraph_host":                          "graph.microsoft.com",
	})
}

func (s *Server) keys(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.counts.Keys++
	s.mu.Unlock()
	seg := r.PathValue("tenant")
	if _, ok := s.resolveTenant(seg); !ok {
		s.fail(w, CodeTenantNotFound, seg)
		return
	}
	writeJSON(w, http.StatusOK, jose.JSONWebKeySet{Keys: []jose.JSONWebKey{s.key.jwk}})
}

// errorPage answers an authorize request that cannot be redirected (unknown
// tenant or app, redirect URI not registered): Entra shows such errors on
// its own page, never at an unverified redirect URI.
func (s *Server) errorPage(w http.ResponseWriter, code int, args ...any) {
	body, status := newErrorBody(s.base, s.now(), code, args...)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("X-Entraemu-Error", body.Error)
	w.Header().Set("X-Entraemu-Error-Code", strconv.Itoa(code))
	w.WriteHeader(status)
	fmt.Fprintf(w, "<!doctype html><title>Sign in to your account</title><h1>Sorry, but we’re having trouble signing you in.</h1><p id=\"error\">%s</p>\n",
		html.EscapeString(body.ErrorDescription))
}

// redirectError sends an authorize error back to the client's (registered)
// redirect URI, with the state echoed.
func (s *Server) redirectError(w http.ResponseWriter, r *http.Request, redirectURI, state string, code int, oauthErr string, args ...any) {
	body, _ := newErrorBody(s.base, s.now(), code, args...)
	if oauthErr == "" {
		oauthErr = body.Error
	}
	q := url.Values{}
	q.Set("error", oauthErr)
	q.Set("error_description", body.ErrorDescription)
	q.Set("error_uri", body.ErrorURI)
	if state != "" {
		q.Set("state", state)
	}
	http.Redirect(w, r, withQuery(redirectURI, q), http.StatusFound)
}

func withQuery(u string, q url.Values) string {
	sep := "?"
	if strings.Contains(u, "?") {
		sep = "&"
	}
	return u + sep + q.Encode()
}

func (s *Server) authorize(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.counts.Authorize++
	s.mu.Unlock()
	q := r.URL.Query()
	seg := r.PathValue("tenant")
	t, ok := s.resolveTenant(seg)
	if !ok {
		s.errorPage(w, CodeTenantNotFound, seg)
		return
	}
	clientID := q.Get("client_id")
	if clientID == "" {
		s.errorPage(w, CodeMissingParameter, "client_id")
		return
	}
	s.mu.Lock()
	a := s.apps[clientID]
	s.mu.Unlock()
	if a == nil {
		s.errorPage(w, CodeUnknownApp, clientID, t.segment)
		return
	}
	redirectURI := q.Get("redirect_uri")
	if !slices.Contains(a.redirectURIs, redirectURI) {
		s.errorPage(w, CodeRedirectMismatch, redirectURI, clientID)
		return
	}
	state := q.Get("state")
	if rt := q.Get("response_type"); rt != "code" {
		s.redirectError(w, r, redirectURI, state, CodeUnsupportedRespTyp, "")
		return
	}
	if scopes, bad := parseScopes(q.Get("scope"), false); bad != "" {
		s.redirectError(w, r, redirectURI, state, CodeInvalidScope, "", bad)
		return
	} else if multipleResources(scopes) {
		s.redirectError(w, r, redirectURI, state, CodeMultipleResources, "", q.Get("scope"))
		return
	}
	if q.Get("code_challenge") == "" || q.Get("code_challenge_method") != "S256" {
		s.redirectError(w, r, redirectURI, state, CodePKCERequired, "")
		return
	}
	code, f, oauthErr := s.approve(q, a, t)
	switch {
	case f != nil && f.code == CodeMissingParameter:
		s.errorPage(w, f.code, f.args...)
		return
	case f != nil:
		s.redirectError(w, r, redirectURI, state, f.code, oauthErr, f.args...)
		return
	}
	v := url.Values{}
	v.Set("code", code)
	if state != "" {
		v.Set("state", state)
	}
	v.Set("session_state", guid())
	http.Redirect(w, r, withQuery(redirectURI, v), http.StatusFound)
}

// approve signs the test user in and issues a code, or says why not (and
// the OAuth error to redirect with, when it differs from the catalog's).
func (s *Server) approve(q url.Values, a *app, t tenantRef) (string, *tokenFailure, string) {
	scopes, _ := parseScopes(q.Get("scope"), false)
	s.mu.Lock()
	defer s.mu.Unlock()
	// Who signs in: the browser's session with the account login_hint
	// names; else the person at the browser with their own account (a
	// hint for an account they cannot sign in to does not make them that
	// user); with no session at all, the hinted account (its user typed
	// the password).
	hint := strings.ToLower(q.Get("login_hint"))
	s.lastHint = q.Get("login_hint")
	var u *userState
	switch {
	case slices.Contains(s.signedIn, hint):
		u = s.users[hint]
	case len(s.signedIn) > 0:
		u = s.users[s.signedIn[0]]
	default:
		u = s.users[hint]
	}
	if u == nil {
		return "", failure(CodeMissingParameter, "login_hint (emulator: no test user is signed in)"), ""
	}
	if !t.multi() && u.TenantID != t.tid {
		return "", failure(CodeUserNotInTenant, u.UPN, t.tid, a.clientID), ""
	}
	tid := u.TenantID
	if hasResource(scopes) && s.tenants[tid].noAzureDevOps {
		return "", failure(CodeResourceNotFound, ResourceID, tid), ""
	}
	if u.consentMissing {
		return "", failure(CodeConsentMissing, a.clientID, a.name), "consent_required"
	}
	code := "1.AXkA" + randomToken(48)
	s.codes[code] = &authCode{
		clientID:    a.clientID,
		redirectURI: q.Get("redirect_uri"),
		challenge:   q.Get("code_challenge"),
		nonce:       q.Get("nonce"),
		scopes:      scopes,
		user:        u,
		tid:         tid,
		issued:      s.now(),
	}
	return code, nil, ""
}

// parseScopes splits a scope parameter and checks every scope: the OIDC
// scopes, or a scope of Azure DevOps (or Graph) carrying its resource
// prefix. A bare "vso.code" is invalid, as it is with Entra ID. With
// appOnly (client credentials) exactly one "<resource>/.default" is
// allowed. It returns the first invalid scope, if any.
func parseScopes(param string, appOnly bool) ([]string, string) {
	scopes := strings.Fields(param)
	if len(scopes) == 0 {
		return nil, param
	}
	if appOnly {
		if len(scopes) != 1 || !strings.HasSuffix(scopes[0], "/.default") {
			return nil, param
		}
	}
	for _, sc := range scopes {
		switch sc {
		case "openid", "profile", "email", "offline_access":
			if appOnly {
				return nil, sc
			}
			continue
		}
		res, perm, ok := splitScope(sc)
		if !ok || perm == "" || (res != ResourceID && res != GraphResourceID && res != "graph.microsoft.com") {
			return nil, sc
		}
		if res == ResourceID && perm != ".default" && perm != "user_impersonation" && !strings.HasPrefix(perm, "vso.") {
			return nil, sc
		}
	}
	return scopes, ""
}

// splitScope splits a resource scope ("{resource}/{permission}",
// "api://{resource}/{permission}" or "https://{host}/{permission}") into
// its resource and permission.
func splitScope(sc string) (res, perm string, ok bool) {
	sc = strings.TrimPrefix(strings.TrimPrefix(sc, "api://"), "https://")
	return strings.Cut(sc, "/")
}

// multipleResources reports whether scopes name more than one resource
// (Azure DevOps and Microsoft Graph, say): Entra ID issues a token for one
// resource per request and answers such a request with AADSTS28000. The
// OIDC scopes belong to none.
func multipleResources(scopes []string) bool {
	seen := ""
	for _, sc := range scopes {
		res, _, ok := splitScope(sc)
		if !ok {
			continue
		}
		if res == "graph.microsoft.com" {
			res = GraphResourceID
		}
		if seen != "" && res != seen {
			return true
		}
		seen = res
	}
	return false
}

func hasResource(scopes []string) bool {
	return slices.ContainsFunc(scopes, func(s string) bool { return strings.HasPrefix(s, ResourceID+"/") })
}

func randomToken(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func (s *Server) countGrantLocked(grant string) {
	switch grant {
	case "authorization_code":
		s.counts.AuthorizationCode++
	case "refresh_token":
		s.counts.RefreshToken++
	case "client_credentials":
		s.counts.ClientCredentials++
	default:
		s.counts.OtherGrant++
	}
}

// tokenFailure is an error answer decided under the lock and written after.
type tokenFailure struct {
	code int
	args []any
}

func failure(code int, args ...any) *tokenFailure { return &tokenFailure{code: code, args: args} }

func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxForm)
	if err := r.ParseForm(); err != nil {
		s.mu.Lock()
		s.counts.OtherGrant++
		s.counts.Failed++
		s.mu.Unlock()
		s.fail(w, CodeMissingParameter, "grant_type")
		return
	}
	resp, f := s.tokenLocked(r)
	if f != nil {
		s.fail(w, f.code, f.args...)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

// tokenLocked decides a token request under the lock.
func (s *Server) tokenLocked(r *http.Request) (*tokenResponse, *tokenFailure) {
	grant := r.PostForm.Get("grant_type")
	s.mu.Lock()
	defer s.mu.Unlock()
	s.countGrantLocked(grant)
	resp, f := s.decideLocked(r, grant)
	if f != nil {
		s.counts.Failed++
	}
	return resp, f
}

func (s *Server) decideLocked(r *http.Request, grant string) (*tokenResponse, *tokenFailure) {
	seg := r.PathValue("tenant")
	t, ok := s.resolveTenantLocked(seg)
	if !ok {
		return nil, failure(CodeTenantNotFound, seg)
	}
	if grant == "" {
		return nil, failure(CodeMissingParameter, "grant_type")
	}
	// Client authentication: HTTP Basic or client_id/client_secret in the
	// body (x/oauth2 may use either).
	clientID, clientSecret, basic := r.BasicAuth()
	if basic {
		// RFC 6749 2.3.1: Basic credentials are form-urlencoded.
		if v, err := url.QueryUnescape(clientID); err == nil {
			clientID = v
		}
		if v, err := url.QueryUnescape(clientSecret); err == nil {
			clientSecret = v
		}
	} else {
		clientID, clientSecret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	if clientID == "" {
		return nil, failure(CodeMissingParameter, "client_id")
	}
	a := s.apps[clientID]
	if a == nil {
		return nil, failure(CodeUnknownApp, clientID, t.segment)
	}
	if clientSecret == "" {
		return nil, failure(CodeMissingSecret)
	}
	if subtle.ConstantTimeCompare([]byte(clientSecret), []byte(a.secret.Reveal())) != 1 {
		return nil, failure(CodeWrongSecret, clientID)
	}
	now := s.now()
	switch grant {
	case "authorization_code":
		return s.redeemCodeLocked(r, t, a, now)
	case "refresh_token":
		return s.redeemRefreshLocked(r, t, a, now)
	case "client_credentials":
		return s.clientCredentialsLocked(r, t, a, now)
	default:
		return nil, failure(CodeUnsupportedGrant)
	}
}

func (s *Server) redeemCodeLocked(r *http.Request, t tenantRef, a *app, now time.Time) (*tokenResponse, *tokenFailure) {
	code := r.PostForm.Get("code")
	if code == "" {
		return nil, failure(CodeMissingParameter, "code")
	}
	c := s.codes[code]
	if c == nil || c.clientID != a.clientID || (!t.multi() && t.tid != c.tid) {
		return nil, failure(CodeMalformedGrant)
	}
	if c.used {
		return nil, failure(CodeCodeRedeemed)
	}
	if !now.Before(c.issued.Add(s.cfg.CodeLifetime)) {
		return nil, failure(CodeCodeExpired)
	}
	if r.PostForm.Get("redirect_uri") != c.redirectURI {
		return nil, failure(CodeRedirectAtToken)
	}
	verifier := r.PostForm.Get("code_verifier")
	sum := sha256.Sum256([]byte(verifier))
	if verifier == "" || base64.RawURLEncoding.EncodeToString(sum[:]) != c.challenge {
		return nil, failure(CodePKCEMismatch)
	}
	// A code is single-use even when its redemption fails further down.
	c.used = true
	if f := s.userFailureLocked(c.user, a, c.tid, c.scopes); f != nil {
		return nil, f
	}
	resp, err := s.issueLocked(c.user, c.tid, a.clientID, c.scopes, c.nonce, now)
	if err != nil {
		return nil, failure(CodeTransient)
	}
	return resp, nil
}

func (s *Server) redeemRefreshLocked(r *http.Request, t tenantRef, a *app, now time.Time) (*tokenResponse, *tokenFailure) {
	rt := r.PostForm.Get("refresh_token")
	if rt == "" {
		return nil, failure(CodeMissingParameter, "refresh_token")
	}
	g := s.refresh[rt]
	if g == nil || g.clientID != a.clientID || (!t.multi() && t.tid != g.tid) {
		return nil, failure(CodeMalformedGrant)
	}
	scopes := g.scopes
	if sp := r.PostForm.Get("scope"); sp != "" {
		req, bad := parseScopes(sp, false)
		if bad != "" {
			return nil, failure(CodeInvalidScope, bad)
		}
		if multipleResources(req) {
			return nil, failure(CodeMultipleResources, sp)
		}
		// offline_access and openid stay granted for the grant's life:
		// a refresh always returns a new refresh token.
		for _, keep := range []string{"offline_access", "openid"} {
			if slices.Contains(g.scopes, keep) && !slices.Contains(req, keep) {
				req = append(req, keep)
			}
		}
		scopes = req
	}
	stamp := func(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.0000000Z") }
	switch {
	case g.revoked:
		return nil, failure(CodeRevoked, stamp(g.issued), stamp(now))
	case g.expired || !now.Before(g.issued.Add(s.cfg.RefreshInactivity)):
		return nil, failure(CodeInactive, stamp(g.issued), formatSpan(s.cfg.RefreshInactivity))
	}
	if g.used {
		s.doubleUse++
		if s.strict {
			return nil, failure(CodeRefreshReused)
		}
	}
	if f := s.userFailureLocked(g.user, a, g.tid, scopes); f != nil {
		return nil, f
	}
	g.used = true
	resp, err := s.issueLocked(g.user, g.tid, a.clientID, scopes, "", g.authTime)
	if err != nil {
		return nil, failure(CodeTransient)
	}
	return resp, nil
}

// userFailureLocked returns the failure a user's state forces, if any.
func (s *Server) userFailureLocked(u *userState, a *app, tid string, scopes []string) *tokenFailure {
	if hasResource(scopes) && s.tenants[tid].noAzureDevOps {
		return failure(CodeResourceNotFound, ResourceID, tid)
	}
	if u.consentMissing {
		return failure(CodeConsentMissing, a.clientID, a.name)
	}
	switch u.forcedError {
	case 0:
		return nil
	case CodeRevoked, CodeInactive, CodeSignInFrequency:
		ts := s.now().UTC().Format(time.RFC3339)
		return failure(u.forcedError, ts, ts)
	case CodeMFARequired, CodeMFAEnrollment:
		return failure(u.forcedError, ResourceID)
	case CodeConsentMissing, CodeWrongSecret:
		return failure(u.forcedError, a.clientID, a.name)
	case CodeResourceNotFound:
		return failure(u.forcedError, ResourceID, tid)
	default:
		n := strings.Count(catalog[u.forcedError].text, "%s")
		args := make([]any, n)
		for i := range args {
			args[i] = "-"
		}
		return failure(u.forcedError, args...)
	}
}

func (s *Server) clientCredentialsLocked(r *http.Request, t tenantRef, a *app, now time.Time) (*tokenResponse, *tokenFailure) {
	sp := r.PostForm.Get("scope")
	if sp == "" {
		return nil, failure(CodeMissingParameter, "scope")
	}
	if _, bad := parseScopes(sp, true); bad != "" {
		return nil, failure(CodeInvalidScope, bad)
	}
	// App-only tokens need a tenant: Entra refuses or guesses on common
	// and organizations, and MSAL refuses them; the emulator refuses.
	if t.multi() {
		return nil, failure(CodeTenantRequired)
	}
	tid := t.tid
	if strings.HasPrefix(sp, ResourceID+"/") && s.tenants[tid].noAzureDevOps {
		return nil, failure(CodeResourceNotFound, ResourceID, tid)
	}
	lifetime := s.accessLifetime
	at, err := s.key.sign(AccessClaims{
		Aud:      ResourceID,
		Iss:      AccessTokenIssuer(tid),
		Iat:      now.Unix(),
		Nbf:      now.Unix(),
		Exp:      now.Add(lifetime).Unix(),
		AppID:    a.clientID,
		AppIDAcr: "1",
		OID:      a.spOID,
		Sub:      a.spOID,
		TID:      tid,
		Uti:      randomToken(16),
		Ver:      "1.0",
	})
	if err != nil {
		return nil, failure(CodeTransient)
	}
	return &tokenResponse{
		TokenType:    "Bearer",
		ExpiresIn:    int(lifetime / time.Second),
		ExtExpiresIn: int(lifetime / time.Second),
		AccessToken:  at,
	}, nil
}

// tokenResponse is the JSON of a successful token answer.
type tokenResponse struct {
	TokenType    string `json:"token_type"`
	Scope        string `json:"scope,omitempty"`
	ExpiresIn    int    `json:"expires_in"`
	ExtExpiresIn int    `json:"ext_expires_in"`
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token,omitempty"`
	IDToken      string `json:"id_token,omitempty"`
}

func (t *tokenResponse) tokens(now time.Time) Tokens {
	return Tokens{
		AccessToken:  secret.New(t.AccessToken),
		RefreshToken: secret.New(t.RefreshToken),
		IDToken:      t.IDToken,
		ExpiresIn:    t.ExpiresIn,
		ExpiresAt:    now.Add(time.Duration(t.ExpiresIn) * time.Second),
	}
}

// issueLocked mints tokens for u in tenant tid: an access token for the
// resource of scopes (Azure DevOps, else Graph), a rotated refresh token when
// offline_access was granted and an ID token when openid was.
func (s *Server) issueLocked(u *userState, tid, clientID string, scopes []string, nonce string, authTime time.Time) (*tokenResponse, error) {
	now := s.now()
	lifetime := s.accessLifetime
	aud := GraphResourceID
	var perms, granted []string
	for _, sc := range scopes {
		res, perm, ok := strings.Cut(sc, "/")
		if !ok {
			continue
		}
		granted = append(granted, sc)
		if res == ResourceID {
			aud = ResourceID
		}
		if perm == ".default" {
			perm = "user_impersonation"
		}
		perms = append(perms, perm)
	}
	at, err := s.key.sign(AccessClaims{
		Aud:        aud,
		Iss:        AccessTokenIssuer(tid),
		Iat:        now.Unix(),
		Nbf:        now.Unix(),
		Exp:        now.Add(lifetime).Unix(),
		Acr:        "1",
		Amr:        []string{"pwd"},
		AppID:      clientID,
		AppIDAcr:   "1",
		Name:       u.Name,
		OID:        u.OID,
		Scp:        strings.Join(perms, " "),
		Sub:        u.OID,
		TID:        tid,
		UniqueName: u.UPN,
		UPN:        u.UPN,
		Uti:        randomToken(16),
		Ver:        "1.0",
	})
	if err != nil {
		return nil, err
	}
	resp := &tokenResponse{
		TokenType:    "Bearer",
		Scope:        strings.Join(granted, " "),
		ExpiresIn:    int(lifetime / time.Second),
		ExtExpiresIn: int(lifetime / time.Second),
		AccessToken:  at,
	}
	if slices.Contains(scopes, "offline_access") {
		rt := "1.AXkA" + randomToken(96)
		s.refresh[rt] = &refreshGrant{
			user:     u,
			clientID: clientID,
			tid:      tid,
			scopes:   scopes,
			authTime: authTime,
			issued:   now,
		}
		resp.RefreshToken = rt
	}
	if slices.Contains(scopes, "openid") {
		id, err := s.key.sign(IDClaims{
			Aud:               clientID,
			Iss:               s.base + "/" + tid + "/v2.0",
			Iat:               now.Unix(),
			Nbf:               now.Unix(),
			Exp:               now.Add(DefaultIDTokenLifetime).Unix(),
			Name:              u.Name,
			Nonce:             nonce,
			OID:               u.OID,
			PreferredUsername: u.UPN,
			Sub:               pairwiseSub(u.OID, clientID),
			TID:               tid,
			Uti:               randomToken(16),
			Ver:               "2.0",
		})
		if err != nil {
			return nil, err
		}
		resp.IDToken = id
	}
	return resp, nil
}

// pairwiseSub is the v2 "sub": stable per user and application.
func pairwiseSub(oid, clientID string) string {
	sum := sha256.Sum256([]byte(oid + "|" + clientID))
	return base64.RawURLEncoding.EncodeToString(sum[:24])
}

// formatSpan renders a duration the way Entra's messages do, "d.hh:mm:ss".
func formatSpan(d time.Duration) string {
	days := int(d / (24 * time.Hour))
	d -= time.Duration(days) * 24 * time.Hour
	return fmt.Sprintf("%d.%02d:%02d:%02d", days, int(d.Hours()), int(d.Minutes())%60, int(d.Seconds())%60)
}
