package entra

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/azdo-sidecar/azdo-sidecar/secret"
)

// Class says what the caller does about a failed request to Entra ID.
type Class int

// Error classes.
const (
	// Transient failures (5xx, 429, temporarily_unavailable, network
	// errors) are retried with backoff.
	Transient Class = iota
	// Permanent failures (invalid_grant, interaction_required, missing
	// consent) mean the user must connect again. Never retry them.
	Permanent
	// Misconfigured means the runner's OAuth client or issuer is wrong
	// (secret, application, redirect URI, tenant, resource): the
	// administrator must fix it. The user's grant is not at fault.
	Misconfigured
)

// String names the class for logs and metric labels.
func (c Class) String() string {
	switch c {
	case Permanent:
		return "permanent"
	case Misconfigured:
		return "misconfigured"
	default:
		return "transient"
	}
}

// Sentinel errors.
var (
	// ErrIssuerURL means the configured issuer URL has neither accepted
	// form, ".../{tenant}/v2.0" or ".../{tenant}/oauth2/v2.0".
	ErrIssuerURL = errors.New("entra: issuer URL must be https://<host>/<tenant>/v2.0 or https://<host>/<tenant>/oauth2/v2.0")
	// ErrIDToken means an ID token failed verification (signature,
	// audience, issuer, expiry or nonce).
	ErrIDToken = errors.New("entra: ID token rejected")
	// ErrCredentialsUnchecked is returned by Verify for a common or
	// organizations issuer without Config.VerifyTenant: discovery and keys
	// were checked, the client secret could not be. Report it as a
	// warning, not a failure.
	ErrCredentialsUnchecked = errors.New("entra: client ID and secret not checked: the issuer names no tenant (common/organizations); set a verify tenant to check them")
	// ErrNoRefreshToken means a grant came back without a refresh token
	// (offline_access was not granted).
	ErrNoRefreshToken = errors.New("entra: no refresh token in the grant (offline_access missing?)")
)

// maxDescription bounds the provider's error description kept in an Error.
const maxDescription = 600

// Error is a failed request to Entra ID, classified. It never holds a
// secret: the description is the provider's, scrubbed of the secrets the
// request carried.
type Error struct {
	Op          string // "discovery", "refresh", "exchange", "verify"
	URL         string // the endpoint tried, without query
	ClientID    string // non-secret
	Code        string // OAuth error ("invalid_grant"), or "network", "http_<status>", "invalid_response"
	AADSTS      int    // first of error_codes, 0 when none
	Description string // the provider's error_description, bounded
	Class       Class
	Status      int           // HTTP status, 0 for network errors
	RetryAfter  time.Duration // from Retry-After, if sent
	Err         error         // the cause (network errors), if any
}

// Error implements error.
func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "entra: %s at %s: %s", e.Op, e.URL, e.Reason())
	if e.Status != 0 {
		fmt.Fprintf(&b, " (HTTP %d, %s)", e.Status, e.Class)
	} else {
		fmt.Fprintf(&b, " (%s)", e.Class)
	}
	if e.Description != "" {
		b.WriteString(": " + e.Description)
	} else if e.Err != nil {
		b.WriteString(": " + e.Err.Error())
	}
	return b.String()
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Reason is short, bounded and never secret: the OAuth error and the AADSTS
// code, e.g. "invalid_grant AADSTS50173", for logs, metrics and the
// reconnect reason shown to users.
func (e *Error) Reason() string {
	if e.AADSTS != 0 {
		return fmt.Sprintf("%s AADSTS%d", e.Code, e.AADSTS)
	}
	return e.Code
}

// ClassOf returns the class of err: an *Error's, else Transient (an error
// this package did not classify is never taken as a reason to drop a
// user's grant).
func ClassOf(err error) Class {
	var e *Error
	if errors.As(err, &e) {
		return e.Class
	}
	return Transient
}

// Class by AADSTS code, from docs/azure-devops.md and Microsoft's error
// reference. The code wins over the OAuth error string.
var aadstsClass = map[int]Class{
	50173:   Permanent,     // grant revoked
	700082:  Permanent,     // refresh token inactive
	70008:   Permanent,     // code or refresh token expired
	70043:   Permanent,     // sign-in frequency
	50076:   Permanent,     // MFA required
	50079:   Permanent,     // MFA enrollment required
	53003:   Permanent,     // conditional access
	65001:   Permanent,     // consent missing
	54005:   Permanent,     // code already redeemed
	50148:   Permanent,     // PKCE verifier mismatch
	9002313: Permanent,     // malformed or unknown grant
	70000:   Permanent,     // invalid grant
	50020:   Permanent,     // user not in tenant
	500117:  Permanent,     // redirect URI differs from the authorize request
	7000215: Misconfigured, // wrong client secret
	7000222: Misconfigured, // client secret expired
	7000218: Misconfigured, // no client secret sent
	700016:  Misconfigured, // unknown application
	50011:   Misconfigured, // redirect URI not registered
	500011:  Misconfigured, // resource not in tenant
	90002:   Misconfigured, // tenant not found
	70011:   Misconfigured, // invalid scope
	1002012: Misconfigured, // client credentials scope must be /.default
	9001023: Misconfigured, // grant not supported on common
	900023:  Misconfigured, // tenant identifier not valid
	90033:   Transient,     // transient error
	50196:   Transient,     // request loop (throttling)
}

// Class by OAuth error, when the AADSTS code is unknown.
var oauthClass = map[string]Class{
	"invalid_grant":             Permanent,
	"interaction_required":      Permanent,
	"consent_required":          Permanent,
	"login_required":            Permanent,
	"access_denied":             Permanent,
	"invalid_client":            Misconfigured,
	"unauthorized_client":       Misconfigured,
	"invalid_resource":          Misconfigured,
	"invalid_scope":             Misconfigured,
	"unsupported_grant_type":    Misconfigured,
	"unsupported_response_type": Misconfigured,
	"invalid_request":           Misconfigured,
	"temporarily_unavailable":   Transient,
	"server_error":              Transient,
}

// entraBody is the JSON of an Entra ID error answer.
type entraBody struct {
	Error            string `json:"error"`
	ErrorDescription string `json:"error_description"`
	ErrorCodes       []int  `json:"error_codes"`
}

// classify turns an error from x/oauth2 or net/http into an *Error. It
// scrubs every secret in secrets out of what it keeps.
func classify(op, endpoint, clientID string, err error, secrets ...secret.String) *Error {
	e := &Error{Op: op, URL: endpoint, ClientID: clientID}
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) {
		// Network failure, timeout, cancellation or an unparsable answer:
		// nothing says the grant is bad, so it is transient. The cause is
		// kept (url.Error names the endpoint; no secret is in a URL here).
		e.Code, e.Class, e.Err = "network", Transient, scrubErr(err, secrets)
		if strings.HasPrefix(err.Error(), "oauth2: ") {
			e.Code = "invalid_response"
		}
		return e
	}
	// Never keep re itself: its Error() quotes the whole response body.
	if re.Response != nil {
		e.Status = re.Response.StatusCode
		e.RetryAfter = retryAfter(re.Response.Header.Get("Retry-After"))
	}
	var body entraBody
	_ = json.Unmarshal(re.Body, &body)
	e.Code = body.Error
	if e.Code == "" {
		e.Code = re.ErrorCode
	}
	if len(body.ErrorCodes) > 0 {
		e.AADSTS = body.ErrorCodes[0]
	} else if n, ok := parseAADSTS(body.ErrorDescription); ok {
		e.AADSTS = n
	}
	desc := body.ErrorDescription
	if desc == "" {
		desc = re.ErrorDescription
	}
	e.Description = bound(scrub(desc, secrets))
	if e.Code == "" {
		e.Code = "http_" + strconv.Itoa(e.Status)
	}
	e.Class = classOf(e.Code, e.AADSTS, e.Status)
	return e
}

func classOf(code string, aadsts, status int) Class {
	if status >= 500 || status == http.StatusTooManyRequests || status == http.StatusRequestTimeout {
		return Transient
	}
	if c, ok := aadstsClass[aadsts]; ok {
		return c
	}
	if c, ok := oauthClass[code]; ok {
		return c
	}
	// An unexplained 4xx (a proxy's page, say) is not evidence against
	// the user's grant: the administrator has to look.
	if status >= 400 {
		return Misconfigured
	}
	return Transient
}

// parseAADSTS reads the code at the start of "AADSTS50173: ...".
func parseAADSTS(desc string) (int, bool) {
	rest, ok := strings.CutPrefix(desc, "AADSTS")
	if !ok {
		return 0, false
	}
	num, _, _ := strings.Cut(rest, ":")
	n, err := strconv.Atoi(num)
	return n, err == nil
}

func retryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && n >= 0 {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := time.Until(t); d > 0 {
			return d
		}
	}
	return 0
}

// scrub replaces every non-empty secret found in s.
func scrub(s string, secrets []secret.String) string {
	for _, sec := range secrets {
		if v := sec.Reveal(); v != "" {
			s = strings.ReplaceAll(s, v, secret.Redacted)
		}
	}
	return s
}

// scrubErr returns err, or an error with err's text scrubbed when it
// contained a secret (the chain is then lost, the class is not).
func scrubErr(err error, secrets []secret.String) error {
	msg := err.Error()
	if clean := scrub(msg, secrets); clean != msg {
		return errors.New(clean)
	}
	return err
}

func bound(s string) string {
	if len(s) <= maxDescription {
		return s
	}
	return s[:maxDescription] + "…"
}

// Advice says who must do what about e, in a sentence for the user or the
// administrator.
func (e *Error) Advice() string {
	app := "the application"
	if e.ClientID != "" {
		app = "application " + e.ClientID
	}
	switch e.AADSTS {
	case 7000215:
		return "Administrator: the client secret of " + app + " is wrong. Create a new secret under App registrations > Certificates & secrets, copy its Value (not its Secret ID), seal it with `azdo-vault seal` and put it in client_secret_sealed."
	case 7000222:
		return "Administrator: the client secret of " + app + " has expired. Create a new one, seal it with `azdo-vault seal` and put it in client_secret_sealed."
	case 7000218:
		return "Administrator: no client secret was sent for " + app + ". Set client_secret_sealed in the vault configuration."
	case 700016:
		return "Administrator: " + app + " does not exist in this tenant. Check client_id, and that issuer_url names the tenant where the app is registered (or that the app is multi-tenant and consented in this tenant)."
	case 50011:
		return "Administrator: the redirect URI is not registered. Add <public_url>/oauth/callback, exactly, as a Web redirect URI of " + app + "."
	case 500011:
		return "Administrator: Azure DevOps (resource " + ResourceID + ") is not available in this tenant. The organization is probably connected to another Entra ID tenant: use that tenant in issuer_url."
	case 90002:
		return "Administrator: the tenant in issuer_url does not exist. Use the directory (tenant) ID of the Entra ID tenant your Azure DevOps organization is connected to."
	case 9001023, 900023:
		return "Administrator: this request needs a tenant-specific endpoint, not common or organizations. Use issuer_url https://login.microsoftonline.com/<tenant-id>/v2.0 (or give verify a tenant)."
	case 70011, 1002012:
		return "Administrator: Entra ID rejected the requested scopes. The vault asks for " + strings.Join(Scopes, " ") + "; check the API permissions of " + app + " (Azure DevOps: vso.code, vso.code_write)."
	case 65001:
		return "Consent is missing: connect again and accept the permissions, or ask an administrator to grant admin consent for Azure DevOps (vso.code, vso.code_write) to " + app + "."
	case 50076, 50079:
		return "Multi-factor authentication is required: connect again and complete the MFA prompt."
	case 53003:
		return "A conditional access policy blocks this sign-in: connect again from an allowed device or location, or ask your administrator."
	case 50173:
		return "Your Azure DevOps authorization was revoked (password change or an administrator's action): connect again."
	case 700082:
		return "Your Azure DevOps authorization expired after a long time unused: connect again."
	case 70043:
		return "Your organization's sign-in frequency policy requires a fresh sign-in: connect again."
	case 70008, 54005, 50148, 500117, 9002313, 70000:
		return "This authorization is no longer valid: connect again."
	}
	switch e.Class {
	case Permanent:
		return "Your Azure DevOps authorization is no longer valid: connect again."
	case Misconfigured:
		return "Administrator: Entra ID refused the vault's OAuth client (" + e.Reason() + "); check issuer_url, client_id and the client secret."
	}
	if e.Code == "network" {
		return "Cannot reach " + e.URL + ": check DNS, the firewall, HTTPS_PROXY/NO_PROXY and --upstream-ca-file. The vault retries by itself."
	}
	return "Entra ID is temporarily unavailable; the vault retries by itself."
}

// decodeJSON decodes one JSON value from r, which the client already
// limits to MaxResponseBytes.
func decodeJSON(r io.Reader, v any) error { return json.NewDecoder(r).Decode(v) }
