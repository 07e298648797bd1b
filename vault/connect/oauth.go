package connect

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"golang.org/x/oauth2"

	"github.com/azdo-sidecar/azdo-sidecar/secret"
	"github.com/azdo-sidecar/azdo-sidecar/vault"
	"github.com/azdo-sidecar/azdo-sidecar/vault/entra"
	"github.com/azdo-sidecar/azdo-sidecar/vault/store"
)

// bindCookie ties the browser that started a sign-in to its callback, so a
// callback URL pushed into another browser (login CSRF) finds no flow.
const bindCookie = "azdo_connect"

// waitCookie tells the callback that an environment waits for this sign-in
// (the link said so), so the result page says the window may be closed.
// It changes only that sentence.
const waitCookie = "azdo_waiting"

// confirmCookie holds the signed confirmation session between GET and
// POST /connect; the form's CSRF token is derived from it.
const confirmCookie = "azdo_confirm"

// serveConnect is GET /connect: verify the link (without spending it) and
// show what it connects, for whom, from which runner, with one Continue
// button. Nothing goes to the identity provider from a GET, so a link
// opened by the wrong person, or loaded by a page behind their back,
// signs nobody in. A host with only PATs goes to /pat with the link
// unspent.
func (h *Handler) serveConnect(w http.ResponseWriter, r *http.Request) {
	link := r.URL.Query().Get("link")
	c, ok := h.openLink(w, r, false)
	if !ok {
		return
	}
	if h.oauth[c.Host].ClientID == "" {
		setHeaders(w)
		http.Redirect(w, r, h.path("/pat")+"?"+url.Values{"link": {link}}.Encode(), http.StatusSeeOther)
		return
	}
	if why, off := h.off[c.Host]; off {
		fix := "An administrator must fix the vault's configuration for " + c.Host + " and reload it (" + why + ")."
		if h.pat[c.Host] {
			fix += " Meanwhile you can connect with a personal access token: use the other link your environment printed."
		}
		h.renderProblem(w, problem{status: http.StatusServiceUnavailable, title: "Sign-in with Microsoft Entra ID is disabled on this runner",
			msg: "The vault could not verify its OAuth application for " + c.Host + ", so it does not start sign-ins for it.", who: "administrator",
			fix: fix, code: "provider_disabled"})
		return
	}
	// A spent link says so now, not after Continue.
	if used, err := h.nonces.Used(r.Context(), c.Nonce); err != nil || used {
		if err == nil {
			err = ErrLinkUsed
		}
		h.log.Info("connect link refused", "path", r.URL.Path, "owner", c.Owner, "host", c.Host, "reason", err.Error())
		h.linkProblem(w, err)
		return
	}
	p, err := h.provider(r.Context(), c.Host)
	if err != nil {
		h.log.Warn("identity provider unavailable for connect", "host", c.Host, "err", err)
		h.exchangeProblem(w, err)
		return
	}
	var formTo string
	if au, err := url.Parse(p.AuthCodeURL("", "", "", "")); err == nil && (au.Scheme == "https" || au.Scheme == "http") && au.Host != "" {
		formTo = au.Scheme + "://" + au.Host
	}
	sc := c
	sc.Nonce, sc.Exp = "confirm."+c.Nonce, min(c.Exp, h.now().Add(h.linkTTL).Unix())
	sess, err := h.signer.SignSession(sc)
	if err != nil {
		h.linkProblem(w, err)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: confirmCookie, Value: sess, Path: h.path("/connect"), MaxAge: int(h.linkTTL.Seconds()),
		HttpOnly: true, Secure: h.secureCookies(), SameSite: http.SameSiteStrictMode})
	expected := ""
	if !h.owners.InsecureSkip && h.owners.Expected(c.Owner) != c.Owner {
		expected = h.owners.Expected(c.Owner)
	}
	env := c.Env
	if env == "" {
		env = "none"
	}
	h.log.Info("connect confirmation shown", "owner", c.Owner, "env", c.Env, "host", c.Host)
	render(w, http.StatusOK, "confirm", page{Title: "Connect Azure DevOps", Host: c.Host, Owner: c.Owner, Expected: expected,
		Env: env, Runner: h.public.Host, Link: link, CSRF: h.signer.Token("csrf", sess), Action: h.path("/connect"), FormTo: formTo})
}

// serveConnectStart is POST /connect, the confirmation's Continue: check
// the confirmation session and its CSRF token, spend the link, keep the
// flow and redirect to the authorize endpoint (with login_hint).
func (h *Handler) serveConnectStart(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxPATForm)
	if err := r.ParseForm(); err != nil {
		h.renderProblem(w, problem{status: http.StatusBadRequest, title: "The form could not be read", msg: "The form was too large or malformed.", who: "you", fix: h.againText(), code: "bad_form"})
		return
	}
	c, err := h.signer.Verify(r.PostForm.Get("link"), h.now())
	if err == nil && h.oauth[c.Host].ClientID == "" {
		err = ErrLinkInvalid
	}
	if err != nil {
		h.log.Info("connect link refused", "path", r.URL.Path, "owner", c.Owner, "host", c.Host, "reason", err.Error())
		h.linkProblem(w, err)
		return
	}
	ck, cerr := r.Cookie(confirmCookie)
	var sess Claims
	if cerr == nil {
		sess, cerr = h.signer.VerifySession(ck.Value, h.now())
	}
	if cerr != nil || sess.Nonce != "confirm."+c.Nonce || !h.signer.CheckToken("csrf", ck.Value, r.PostForm.Get("csrf")) {
		h.log.Warn("connect refused: Continue not sent from the confirmation page", "owner", c.Owner, "host", c.Host)
		h.renderProblem(w, problem{status: http.StatusForbidden, title: "This was not sent from the confirmation page",
			msg: "Connecting starts only with the Continue button of the page the link opens, in the same browser.", who: "you",
			fix: "Open the link from your environment again, check what it connects, and press Continue.", code: "csrf"})
		return
	}
	http.SetCookie(w, &http.Cookie{Name: confirmCookie, Value: "", Path: h.path("/connect"), MaxAge: -1, HttpOnly: true, Secure: h.secureCookies(), SameSite: http.SameSiteStrictMode})
	p, err := h.provider(r.Context(), c.Host)
	if err != nil {
		h.log.Warn("identity provider unavailable for connect", "host", c.Host, "err", err)
		h.exchangeProblem(w, err)
		return
	}
	if err := h.nonces.Use(r.Context(), c.Nonce, c.Expires()); err != nil {
		h.linkProblem(w, err)
		return
	}
	state, nonce, verifier := randomString(32), randomString(32), oauth2.GenerateVerifier()
	f := Flow{Owner: c.Owner, Env: c.Env, Host: c.Host, Org: c.Org, Verifier: secret.New(verifier), Nonce: nonce, Expires: h.now().Add(h.flowTTL)}
	if err := h.flows.Put(r.Context(), state, f); err != nil {
		h.linkProblem(w, err)
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name: bindCookie, Value: h.signer.Token("bind", state), Path: h.path("/oauth/callback"),
		MaxAge: int(h.flowTTL.Seconds()), HttpOnly: true, Secure: h.secureCookies(),
		// Lax: the cookie must come along on the top-level redirect back
		// from the identity provider.
		SameSite: http.SameSiteLaxMode,
	})
	if c.Waiting {
		http.SetCookie(w, &http.Cookie{Name: waitCookie, Value: "1", Path: h.path("/oauth/callback"),
			MaxAge: int(h.flowTTL.Seconds()), HttpOnly: true, Secure: h.secureCookies(), SameSite: http.SameSiteLaxMode})
	}
	h.log.Info("connect started", "owner", c.Owner, "env", c.Env, "host", c.Host, "org", c.Org)
	setHeaders(w)
	// 303: the browser follows with a GET.
	http.Redirect(w, r, p.AuthCodeURL(state, nonce, verifier, h.owners.loginHint(c.Owner)), http.StatusSeeOther)
}

// serveCallback is GET /oauth/callback.
func (h *Handler) serveCallback(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	state := q.Get("state")
	var bound bool
	if ck, err := r.Cookie(bindCookie); err == nil && state != "" && len(state) < 256 {
		bound = h.signer.CheckToken("bind", state, ck.Value)
	}
	// Forget the binding whatever happens: a state is good once.
	http.SetCookie(w, &http.Cookie{Name: bindCookie, Value: "", Path: h.path("/oauth/callback"), MaxAge: -1, HttpOnly: true, Secure: h.secureCookies(), SameSite: http.SameSiteLaxMode})
	_, werr := r.Cookie(waitCookie)
	waiting := werr == nil
	if waiting {
		http.SetCookie(w, &http.Cookie{Name: waitCookie, Value: "", Path: h.path("/oauth/callback"), MaxAge: -1, HttpOnly: true, Secure: h.secureCookies(), SameSite: http.SameSiteLaxMode})
	}
	var f Flow
	var err error
	if bound {
		f, err = h.flows.Take(r.Context(), state)
	}
	if errors.Is(err, errStore) {
		h.linkProblem(w, err)
		return
	}
	if !bound || err != nil {
		h.log.Info("oauth callback refused: state mismatch", "bound", bound)
		h.renderProblem(w, problem{status: http.StatusBadRequest, title: "This sign-in does not match one started here",
			msg:  "The answer from the sign-in page carries a state this browser did not start, or the sign-in took too long or was already finished.",
			who:  "you",
			fix:  "Run the git command again in your environment and open the new link in this browser; finish the sign-in within " + minutes(h.flowTTL) + ".",
			code: "state_mismatch"})
		return
	}
	if e := q.Get("error"); e != "" {
		h.callbackError(r.Context(), w, f, e, q.Get("error_description"))
		return
	}
	code := q.Get("code")
	if code == "" {
		h.renderProblem(w, problem{status: http.StatusBadRequest, title: "The sign-in answer has no authorization code", msg: "The identity provider sent neither a code nor an error.", who: "you", fix: "Run the git command again for a new link and try once more.", code: "missing_code"})
		return
	}
	p, err := h.provider(r.Context(), f.Host)
	if err != nil {
		h.exchangeProblem(w, err)
		return
	}
	g, id, err := p.Exchange(r.Context(), code, f.Verifier.Reveal(), f.Nonce)
	if err != nil {
		h.log.Warn("oauth exchange failed", "owner", f.Owner, "host", f.Host, "err", err)
		h.exchangeProblem(w, err)
		return
	}
	// The flow is spent (Take) whatever follows: a refused sign-in cannot
	// be finished again.
	if got := id.Claim(h.owners.claim()); !h.owners.Matches(f.Owner, got) || (id.IssuerTenant != "" && !strings.EqualFold(id.TenantID, id.IssuerTenant)) {
		who := id.Who()
		if id.IssuerTenant != "" && !strings.EqualFold(id.TenantID, id.IssuerTenant) {
			who += " (tenant " + id.TenantID + ")"
		}
		h.ownerMismatch(r.Context(), w, f.Owner, f.Env, f.Host, store.OAuth, who)
		return
	}
	if _, err := h.vault.PutCredential(r.Context(), vault.Credential{Owner: f.Owner, Host: f.Host, Kind: store.OAuth, Secret: g.RefreshToken, Env: f.Env, Identity: id.Username}); err != nil {
		h.log.Error("storing the grant failed", "owner", f.Owner, "host", f.Host, "err", err)
		h.renderProblem(w, problem{status: http.StatusInternalServerError, title: "The authorization could not be saved", msg: "The vault could not store your grant.", who: "administrator", fix: "Check the vault's log and store, then run the git command again for a new link.", code: "store_error"})
		return
	}
	h.log.Info("connected", "owner", f.Owner, "env", f.Env, "host", f.Host, "tenant", id.TenantID, "oid", id.ObjectID)
	render(w, http.StatusOK, "connected", page{Title: "Connected", Host: f.Host, Org: f.Org, Owner: f.Owner, Who: id.Username, Waiting: waiting})
}

// callbackError renders an error the identity provider sent to the
// callback. Only the error code and the AADSTS number are shown: the
// description comes from the query string, which anyone can write.
func (h *Handler) callbackError(ctx context.Context, w http.ResponseWriter, f Flow, code, desc string) {
	n := aadsts(desc)
	h.log.Info("oauth callback error", "owner", f.Owner, "host", f.Host, "error", safeCode(code), "aadsts", n)
	ref := safeCode(code)
	if n != 0 {
		ref += " AADSTS" + strconv.Itoa(n)
	}
	reason := "the sign-in did not complete (" + ref + ")"
	switch {
	case n == 65001 || code == "consent_required":
		reason = "consent to Azure DevOps access is missing (" + ref + ")"
	case code == "access_denied":
		reason = "the sign-in was cancelled or access was denied (" + ref + ")"
	}
	h.vault.ConnectFailed(ctx, f.Owner, f.Env, f.Host, store.OAuth, reason)
	e := &entra.Error{Code: safeCode(code), AADSTS: n, ClientID: h.oauth[f.Host].ClientID, Class: callbackClass(code, n)}
	switch {
	case n == 65001 || code == "consent_required":
		h.renderProblem(w, problem{status: http.StatusForbidden, title: "Consent is missing",
			msg: "Azure DevOps access (Code: read & write) was not consented to for this application.",
			who: "you", fix: "Run the git command again, open the new link and accept the permissions. If your organization does not let users consent, ask an administrator to grant admin consent for Azure DevOps (vso.code, vso.code_write) to the application.",
			code: ref})
	case code == "access_denied":
		h.renderProblem(w, problem{status: http.StatusForbidden, title: "Sign-in was cancelled or denied",
			msg: "The identity provider reports that access was denied.", who: "you",
			fix: "Run the git command again, open the new link and accept the permissions.", code: ref})
	case e.Class == entra.Misconfigured:
		h.renderProblem(w, problem{status: http.StatusBadGateway, title: "The runner's sign-in is misconfigured",
			msg: "Entra ID refused the vault's application.", who: "administrator", fix: strings.TrimPrefix(e.Advice(), "Administrator: "), code: ref})
	default:
		h.renderProblem(w, problem{status: http.StatusForbidden, title: "Sign-in did not complete",
			msg: "The identity provider returned an error.", who: "you", fix: e.Advice(), code: ref})
	}
}

// exchangeProblem renders a failed discovery or code exchange.
func (h *Handler) exchangeProblem(w http.ResponseWriter, err error) {
	var ee *entra.Error
	switch {
	case errors.Is(err, entra.ErrIDToken):
		h.renderProblem(w, problem{status: http.StatusBadGateway, title: "The sign-in answer could not be verified",
			msg: "The identity token from the sign-in failed verification (signature, audience, issuer or nonce).", who: "you",
			fix: "Run the git command again for a new link. If it keeps happening, tell your administrator (check issuer_url and client_id).", code: "id_token_rejected"})
	case errors.Is(err, entra.ErrNoRefreshToken):
		h.renderProblem(w, problem{status: http.StatusBadGateway, title: "No refresh token was granted",
			msg: "The sign-in succeeded but Entra ID granted no offline access.", who: "administrator",
			fix: "Allow the offline_access permission for the application, then let the user connect again.", code: "no_refresh_token"})
	case errors.As(err, &ee) && ee.Class == entra.Misconfigured:
		h.renderProblem(w, problem{status: http.StatusBadGateway, title: "The runner's sign-in is misconfigured",
			msg: "Entra ID refused the vault's application.", who: "administrator", fix: strings.TrimPrefix(ee.Advice(), "Administrator: "), code: ee.Reason()})
	case errors.As(err, &ee) && ee.Class == entra.Permanent:
		h.renderProblem(w, problem{status: http.StatusBadRequest, title: "Sign-in did not complete",
			msg: "Entra ID did not accept the authorization (it may have expired, been used already, or not match this sign-in).", who: "you",
			fix: "Run the git command again for a new link and finish the sign-in within " + minutes(h.flowTTL) + ". " + ee.Advice(), code: ee.Reason()})
	default:
		h.renderProblem(w, problem{status: http.StatusServiceUnavailable, title: "Entra ID could not be reached",
			msg: "The vault could not talk to the identity provider.", who: "you",
			fix: "Wait a minute, run the git command again for a new link and retry. If it persists, tell your administrator (network, HTTPS_PROXY, --upstream-ca-file).", code: "unavailable"})
	}
}

// callbackClass classifies an authorize error: the administrator's when
// the application or tenant is wrong, the user's otherwise.
func callbackClass(code string, n int) entra.Class {
	switch n {
	case 50011, 700016, 500011, 90002, 70011, 7000215, 7000222, 900023, 9001023, 650057, 50194:
		return entra.Misconfigured
	}
	switch code {
	case "invalid_client", "unauthorized_client", "invalid_request", "invalid_scope", "unsupported_response_type", "invalid_resource":
		return entra.Misconfigured
	}
	return entra.Permanent
}

// aadsts finds the AADSTS number at the start of, or in, desc.
func aadsts(desc string) int {
	i := strings.Index(desc, "AADSTS")
	if i < 0 {
		return 0
	}
	j := i + len("AADSTS")
	k := j
	for k < len(desc) && k-j < 9 && desc[k] >= '0' && desc[k] <= '9' {
		k++
	}
	n, _ := strconv.Atoi(desc[j:k])
	return n
}

// safeCode keeps an OAuth error code shown on a page or logged to
// [a-z_], 40 characters.
func safeCode(s string) string {
	s = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r == '_' {
			return r
		}
		return -1
	}, strings.ToLower(s))
	if len(s) > 40 {
		s = s[:40]
	}
	return s
}
