package connect

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/azdo-sidecar/azdo-sidecar/secret"
	"github.com/azdo-sidecar/azdo-sidecar/vault"
	"github.com/azdo-sidecar/azdo-sidecar/vault/store"
)

// patCookie holds the signed PAT session between GET and POST /pat.
const patCookie = "azdo_pat"

// Limits of the PAT form.
const (
	maxPATForm   = 16 << 10
	maxPATLen    = 1024
	maxCheckBody = 1 << 20
	// checkTimeout bounds the PAT check when the client has no timeout.
	checkTimeout = 20 * time.Second
)

// PAT check results.
var (
	// ErrPATInvalid means the host refused the PAT (401, or the 203
	// sign-in page, or a redirect to it).
	ErrPATInvalid = errors.New("connect: the personal access token was not accepted")
	// ErrPATUnchecked means the host could not be asked (network, 5xx, an
	// unexpected answer); the PAT is not stored.
	ErrPATUnchecked = errors.New("connect: the personal access token could not be checked")
)

// anonymousID is the authenticatedUser id Azure DevOps reports for an
// anonymous caller.
const anonymousID = "aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa"

// PATURLs are where a user creates a PAT for host and org, and where the
// vault checks one.
type PATURLs struct {
	Create string // the "Personal access tokens" page
	Check  string // _apis/connectionData
}

// PATLinks returns the PAT URLs of host (normalized, ":port" when not 443)
// and org: dev.azure.com/{org}, {org}.visualstudio.com (the org is the
// host's first label), or a self-hosted {server}/{collection} (org may hold
// a virtual directory, "tfs/DefaultCollection"). ok is false when the org
// is needed and missing or not a plausible name.
func PATLinks(host, org string) (PATURLs, bool) {
	host = vault.NormalizeHost(host)
	if host == "" || strings.ContainsAny(host, "/?#@ \\") {
		return PATURLs{}, false
	}
	base := "https://" + host
	if label, ok := strings.CutSuffix(host, ".visualstudio.com"); ok && label != "" && !strings.Contains(label, ".") {
		return PATURLs{Create: base + "/_details/security/tokens", Check: base + "/_apis/connectionData"}, true
	}
	segs := strings.Split(strings.Trim(strings.TrimSpace(org), "/"), "/")
	if org == "" || (host == "dev.azure.com" && len(segs) != 1) || len(segs) > 8 {
		return PATURLs{}, false
	}
	for i, s := range segs {
		if s == "" || s == "." || s == ".." || len(s) > 128 || strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f || strings.ContainsRune("?#%\\", r) }) {
			return PATURLs{}, false
		}
		segs[i] = url.PathEscape(s)
	}
	p := base + "/" + strings.Join(segs, "/")
	create := p + "/_usersSettings/tokens"
	if host == "dev.azure.com" {
		// Azure DevOps Services opens its New Token panel directly with
		// action=edit. Azure DevOps Server's page (User settings >
		// Personal access tokens, the same path under the collection)
		// has no documented equivalent: the user chooses New Token.
		create += "?action=edit"
	}
	return PATURLs{Create: create, Check: p + "/_apis/connectionData"}, true
}

// patLinks is PATLinks with the configured virtual directory of a
// self-hosted host put before the collection.
func (h *Handler) patLinks(host, org string) (PATURLs, bool) {
	if v := h.vdirs[vault.NormalizeHost(host)]; v != "" && org != "" {
		org = v + "/" + org
	}
	return PATLinks(host, org)
}

// PATUser is who a PAT belongs to, as connectionData names them.
type PATUser struct {
	// ID is authenticatedUser.id.
	ID string
	// Account is authenticatedUser.properties.Account.$value: the user's
	// sign-in name (the UPN on Azure DevOps Services).
	Account string
}

// Claim returns the value compared with the owner's identity for an
// identity claim: the ID for oid, else the account name.
func (u PATUser) Claim(claim string) string {
	if claim == "oid" {
		return u.ID
	}
	return u.Account
}

// Who names the user for a person.
func (u PATUser) Who() string {
	if u.Account != "" {
		return u.Account
	}
	return "the user " + u.ID
}

// CheckPAT asks the host who pat is (GET _apis/connectionData, Basic auth,
// X-TFS-FedAuthRedirect: Suppress, redirects not followed): the user when
// the host names an authenticated one, ErrPATInvalid when it refuses the
// PAT, ErrPATUnchecked (wrapped) otherwise. The one request both checks
// the PAT and says whose it is. Errors never contain the PAT.
func CheckPAT(ctx context.Context, client *http.Client, checkURL string, pat secret.String) (PATUser, error) {
	c := *client
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	if c.Timeout == 0 {
		c.Timeout = checkTimeout
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, checkURL, nil)
	if err != nil {
		return PATUser{}, fmt.Errorf("%w: %v", ErrPATUnchecked, err)
	}
	req.SetBasicAuth("azdo-sidecar", pat.Reveal())
	req.Header.Set("X-TFS-FedAuthRedirect", "Suppress")
	req.Header.Set("Accept", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return PATUser{}, fmt.Errorf("%w: %s", ErrPATUnchecked, scrubPAT(err.Error(), pat))
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusUnauthorized, resp.StatusCode == http.StatusNonAuthoritativeInfo,
		resp.StatusCode == http.StatusForbidden,
		resp.StatusCode >= 300 && resp.StatusCode < 400 && strings.Contains(resp.Header.Get("Location"), "_signin"):
		return PATUser{}, ErrPATInvalid
	case resp.StatusCode != http.StatusOK:
		return PATUser{}, fmt.Errorf("%w: %s answered HTTP %d", ErrPATUnchecked, req.URL.Host, resp.StatusCode)
	}
	var cd struct {
		AuthenticatedUser *struct {
			ID         string `json:"id"`
			Properties struct {
				Account struct {
					Value string `json:"$value"`
				} `json:"Account"`
			} `json:"properties"`
		} `json:"authenticatedUser"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxCheckBody)).Decode(&cd); err != nil {
		return PATUser{}, fmt.Errorf("%w: %s answered something other than connection data", ErrPATUnchecked, req.URL.Host)
	}
	if cd.AuthenticatedUser == nil || cd.AuthenticatedUser.ID == "" || strings.EqualFold(cd.AuthenticatedUser.ID, anonymousID) {
		return PATUser{}, ErrPATInvalid
	}
	return PATUser{ID: cd.AuthenticatedUser.ID, Account: cd.AuthenticatedUser.Properties.Account.Value}, nil
}

func scrubPAT(s string, pat secret.String) string {
	if v := pat.Reveal(); v != "" {
		s = strings.ReplaceAll(s, v, secret.Redacted)
	}
	return s
}

// patSession returns the session claims of a link: the link's, with the
// session nonce derived from the link's (so reloading the page within the
// session works) and a fresh lifetime.
func patSession(c Claims, exp time.Time) Claims {
	c.Nonce = "pat." + c.Nonce
	c.Exp = exp.Unix()
	return c
}

// servePATForm is GET /pat: verify and spend the link, start a PAT
// session (a signed cookie), show the instructions and the form.
func (h *Handler) servePATForm(w http.ResponseWriter, r *http.Request) {
	c, err := h.signer.Verify(r.URL.Query().Get("link"), h.now())
	if err == nil && !h.pat[c.Host] {
		h.renderProblem(w, problem{status: http.StatusNotFound, title: "Personal access tokens are not enabled for this host",
			msg: "This runner does not accept PATs for " + c.Host + ".", who: "administrator",
			fix: "Enable pat for this host in the vault configuration, or use the Connect (sign-in) link instead.", code: "pat_disabled"})
		return
	}
	if err == nil {
		if err = h.nonces.Use(r.Context(), c.Nonce, c.Expires()); errors.Is(err, ErrLinkUsed) && h.sameSession(r, c) {
			err = nil // a reload of the page this browser opened
		}
	}
	if err != nil {
		h.log.Info("connect link refused", "path", r.URL.Path, "owner", c.Owner, "host", c.Host, "reason", err.Error())
		h.linkProblem(w, err)
		return
	}
	sess, err := h.signer.SignSession(patSession(c, h.now().Add(h.linkTTL)))
	if err != nil {
		h.linkProblem(w, err)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: patCookie, Value: sess, Path: h.path("/pat"), MaxAge: int(h.linkTTL.Seconds()),
		HttpOnly: true, Secure: h.secureCookies(), SameSite: http.SameSiteStrictMode})
	h.log.Info("pat page shown", "owner", c.Owner, "env", c.Env, "host", c.Host, "org", c.Org)
	render(w, http.StatusOK, "pat", h.patPage(c, sess, c.Org, h.now().Add(PATDefaultValidity).Format(time.DateOnly), false, ""))
}

// sameSession reports whether r carries the PAT session of link c.
func (h *Handler) sameSession(r *http.Request, c Claims) bool {
	ck, err := r.Cookie(patCookie)
	if err != nil {
		return false
	}
	s, err := h.signer.VerifySession(ck.Value, h.now())
	return err == nil && s.Nonce == "pat."+c.Nonce && s.Owner == c.Owner && s.Host == c.Host
}

func (h *Handler) patPage(c Claims, sess, org, expires string, allOrgs bool, msg string) page {
	links, _ := h.patLinks(c.Host, org)
	return page{
		Title: "Connect with a personal access token", Host: c.Host, Org: org, Owner: c.Owner,
		Error: msg, Action: h.path("/pat"), CreateURL: links.Create, TokenName: "azdo-sidecar " + h.public.Hostname(),
		CSRF: h.signer.Token("csrf", sess), Expires: expires, AskOrg: c.Org == "" && !isVSHost(c.Host),
		AllOrgs: allOrgs, DefaultDays: int(PATDefaultValidity / (24 * time.Hour)),
	}
}

func isVSHost(host string) bool {
	label, ok := strings.CutSuffix(host, ".visualstudio.com")
	return ok && label != "" && !strings.Contains(label, ".")
}

// servePATSubmit is POST /pat: check the session and CSRF token, check the
// PAT against the host, and only then store it.
func (h *Handler) servePATSubmit(w http.ResponseWriter, r *http.Request) {
	ck, err := r.Cookie(patCookie)
	if err != nil {
		h.renderProblem(w, problem{status: http.StatusForbidden, title: "This form is not part of a session",
			msg: "The browser did not send the session of the PAT page (cookies off, or the page came from elsewhere).", who: "you",
			fix: "Open the link from your environment again in this browser, with cookies allowed for the vault.", code: "no_session"})
		return
	}
	c, err := h.signer.VerifySession(ck.Value, h.now())
	if err != nil || !strings.HasPrefix(c.Nonce, "pat.") {
		if err == nil {
			err = ErrLinkInvalid
		}
		h.linkProblem(w, err)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxPATForm)
	if err := r.ParseForm(); err != nil {
		h.renderProblem(w, problem{status: http.StatusBadRequest, title: "The form could not be read", msg: "The form was too large or malformed.", who: "you", fix: "Go back, paste only the token, and send it again.", code: "bad_form"})
		return
	}
	if !h.signer.CheckToken("csrf", ck.Value, r.PostForm.Get("csrf")) {
		h.log.Warn("pat form refused: CSRF token mismatch", "owner", c.Owner, "host", c.Host)
		h.renderProblem(w, problem{status: http.StatusForbidden, title: "This form was not sent from the PAT page",
			msg: "The form's security token does not match this browser's session.", who: "you",
			fix: "Open the link from your environment again and submit the form from that page.", code: "csrf"})
		return
	}
	org := c.Org
	if org == "" && !isVSHost(c.Host) {
		org = strings.ToLower(strings.TrimSpace(r.PostForm.Get("org")))
	}
	allOrgs := r.PostForm.Get("all_orgs") != ""
	expRaw := strings.TrimSpace(r.PostForm.Get("expires"))
	again := func(code int, msg string) {
		render(w, code, "pat", h.patPage(c, ck.Value, org, expRaw, allOrgs, msg))
	}
	links, ok := h.patLinks(c.Host, org)
	if !ok {
		again(http.StatusUnprocessableEntity, "Enter the name of your Azure DevOps organization (as in https://dev.azure.com/NAME).")
		return
	}
	now := h.now()
	// The form pre-fills the expiry; a client that leaves the field out
	// stores the PAT with an unknown expiry rather than failing.
	var exp time.Time
	if expRaw != "" {
		exp, err = time.Parse(time.DateOnly, expRaw)
	}
	switch {
	case expRaw == "":
	case err != nil:
		again(http.StatusUnprocessableEntity, "Enter the token's expiry date (as shown by Azure DevOps) as YYYY-MM-DD.")
		return
	case !exp.After(now):
		again(http.StatusUnprocessableEntity, "That expiry date is today or in the past: create a token that expires later.")
		return
	case exp.After(now.Add(366 * 24 * time.Hour)):
		again(http.StatusUnprocessableEntity, "Azure DevOps tokens live at most one year: check the expiry date.")
		return
	}
	pat := secret.New(strings.TrimSpace(r.PostForm.Get("pat")))
	if pat.IsZero() || len(pat.Reveal()) > maxPATLen || strings.ContainsAny(pat.Reveal(), " \t\r\n:") {
		again(http.StatusUnprocessableEntity, "Paste the token itself: one line, no spaces.")
		return
	}
	user, err := CheckPAT(r.Context(), h.client, links.Check, pat)
	switch {
	case errors.Is(err, ErrPATInvalid):
		h.log.Info("pat refused by host", "owner", c.Owner, "host", c.Host, "org", org)
		again(http.StatusUnprocessableEntity, "Azure DevOps did not accept this token (wrong, expired or revoked, or not valid for this organization). Nothing was saved; create a new one and paste it again.")
		return
	case err != nil:
		h.log.Warn("pat could not be checked", "owner", c.Owner, "host", c.Host, "org", org, "err", err)
		again(http.StatusBadGateway, "The token could not be checked: "+c.Host+" did not answer as expected. Nothing was saved; try again in a minute.")
		return
	}
	if err := h.nonces.Use(r.Context(), c.Nonce, c.Expires()); err != nil {
		h.linkProblem(w, err)
		return
	}
	if !h.owners.Matches(c.Owner, user.Claim(h.owners.claim())) {
		// The session is spent (above) and ends here, as a refused
		// sign-in does.
		http.SetCookie(w, &http.Cookie{Name: patCookie, Value: "", Path: h.path("/pat"), MaxAge: -1, HttpOnly: true, Secure: h.secureCookies(), SameSite: http.SameSiteStrictMode})
		h.ownerMismatch(r.Context(), w, c.Owner, c.Env, c.Host, store.PAT, user.Who())
		return
	}
	storeOrg := org
	switch {
	case allOrgs:
		storeOrg = store.AllOrgs
	case isVSHost(c.Host):
		storeOrg = strings.TrimSuffix(c.Host, ".visualstudio.com")
	}
	if _, err := h.vault.PutCredential(r.Context(), vault.Credential{Owner: c.Owner, Host: c.Host, Org: storeOrg, Kind: store.PAT, Secret: pat, ExpiresAt: exp, Env: c.Env}); err != nil {
		h.log.Error("storing the pat failed", "owner", c.Owner, "host", c.Host, "err", err)
		h.renderProblem(w, problem{status: http.StatusInternalServerError, title: "The token could not be saved", msg: "The vault could not store your token.", who: "administrator", fix: "Check the vault's log and store, then run the git command again for a new link.", code: "store_error"})
		return
	}
	http.SetCookie(w, &http.Cookie{Name: patCookie, Value: "", Path: h.path("/pat"), MaxAge: -1, HttpOnly: true, Secure: h.secureCookies(), SameSite: http.SameSiteStrictMode})
	var warn string
	if left := exp.Sub(now); !exp.IsZero() && left < PATWarnWithin {
		warn = fmt.Sprintf("This token expires on %s, in less than %d days. Git will stop working then: create a longer-lived token soon and connect again.", exp.Format(time.DateOnly), int(PATWarnWithin/(24*time.Hour)))
	}
	expLog := "unknown"
	if !exp.IsZero() {
		expLog = exp.Format(time.DateOnly)
	}
	h.log.Info("pat stored", "owner", c.Owner, "env", c.Env, "host", c.Host, "org", storeOrg, "expires", expLog)
	render(w, http.StatusOK, "pat_saved", page{Title: "Connected", Host: c.Host, Org: org, Owner: c.Owner, Warning: warn, Waiting: c.Waiting})
}
