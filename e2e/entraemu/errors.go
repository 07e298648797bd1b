package entraemu

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// AADSTS codes the emulator produces. The names say what each one means;
// the wire shape (error, HTTP status, wording) is in the catalog below.
const (
	CodeRevoked            = 50173   // invalid_grant: grant revoked (password reset, revokeSignInSessions)
	CodeInactive           = 700082  // invalid_grant: refresh token expired by inactivity
	CodeCodeExpired        = 70008   // invalid_grant: authorization code or refresh token expired
	CodeSignInFrequency    = 70043   // invalid_grant: conditional access sign-in frequency
	CodeMFARequired        = 50076   // interaction_required: MFA needed
	CodeMFAEnrollment      = 50079   // interaction_required: MFA enrollment needed
	CodeConditionalAccess  = 53003   // interaction_required: blocked by conditional access
	CodeConsentMissing     = 65001   // invalid_grant (consent_required on authorize)
	CodeWrongSecret        = 7000215 // invalid_client: wrong client secret
	CodeMissingSecret      = 7000218 // invalid_client: no client_secret or assertion
	CodeUnknownApp         = 700016  // unauthorized_client: application not found in directory
	CodeRedirectMismatch   = 50011   // redirect URI not registered
	CodeResourceNotFound   = 500011  // invalid_resource: Azure DevOps not in tenant
	CodeInvalidScope       = 70011   // invalid_scope
	CodeMultipleResources  = 28000   // invalid_scope: scopes of more than one resource in one request
	CodeCodeRedeemed       = 54005   // invalid_grant: authorization code already redeemed
	CodePKCEMismatch       = 50148   // invalid_grant: code_verifier does not match
	CodeMalformedGrant     = 9002313 // invalid_grant: unknown or malformed code/refresh token
	CodeRefreshReused      = 70000   // invalid_grant: refresh token already used (strict rotation)
	CodeTenantNotFound     = 90002   // invalid_request: unknown tenant
	CodeUserNotInTenant    = 50020   // invalid_request: user from another tenant
	CodeMissingParameter   = 900144  // invalid_request: a required parameter is missing
	CodeUnsupportedGrant   = 70003   // unsupported_grant_type
	CodeTransient          = 90033   // temporarily_unavailable
	CodeRedirectAtToken    = 500117  // invalid_grant: redirect_uri differs from the one authorized
	CodePKCERequired       = 9002325 // invalid_request: PKCE S256 required (emulator is strict)
	CodeUnsupportedRespTyp = 700054  // unsupported_response_type
	CodeThrottled          = 50196   // temporarily_unavailable, HTTP 429
	CodeTenantRequired     = 9001023 // invalid_request: grant needs a tenant-specific endpoint
)

// aadError is one entry of the catalog: the OAuth error, the HTTP status of
// the token endpoint and a description template whose %s verbs are filled
// by the caller.
type aadError struct {
	err    string
	status int
	text   string
}

var catalog = map[int]aadError{
	CodeRevoked:            {"invalid_grant", 400, "The provided grant has expired due to it being revoked, a fresh auth token is needed. The user might have changed or reset their password. The grant was issued on '%s' and the TokensValidFrom date (before which tokens are not valid) for this user is '%s'."},
	CodeInactive:           {"invalid_grant", 400, "The refresh token has expired due to inactivity. The token was issued on %s and was inactive for %s."},
	CodeCodeExpired:        {"invalid_grant", 400, "The provided authorization code or refresh token has expired due to inactivity. Send a new interactive authorization request for this user and resource."},
	CodeSignInFrequency:    {"invalid_grant", 400, "The refresh token has expired or is invalid due to sign-in frequency checks by conditional access. The token was issued on %s and the maximum allowed lifetime for this request is %s."},
	CodeMFARequired:        {"interaction_required", 400, "Due to a configuration change made by your administrator, or because you moved to a new location, you must use multi-factor authentication to access '%s'."},
	CodeMFAEnrollment:      {"interaction_required", 400, "Due to a configuration change made by your administrator, or because you moved to a new location, you must enroll in multi-factor authentication to access '%s'."},
	CodeConditionalAccess:  {"interaction_required", 400, "Access has been blocked by Conditional Access policies. The access policy does not allow token issuance."},
	CodeConsentMissing:     {"invalid_grant", 400, "The user or administrator has not consented to use the application with ID '%s' named '%s'. Send an interactive authorization request for this user and resource."},
	CodeWrongSecret:        {"invalid_client", 401, "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '%s'."},
	CodeMissingSecret:      {"invalid_client", 401, "The request body must contain the following parameter: 'client_assertion' or 'client_secret'."},
	CodeUnknownApp:         {"unauthorized_client", 400, "Application with identifier '%s' was not found in the directory '%s'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant."},
	CodeRedirectMismatch:   {"invalid_request", 400, "The redirect URI '%s' specified in the request does not match the redirect URIs configured for the application '%s'. Make sure the redirect URI sent in the request matches one added to your application in the Azure portal."},
	CodeResourceNotFound:   {"invalid_resource", 400, "The resource principal named %s was not found in the tenant named %s. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant."},
	CodeInvalidScope:       {"invalid_scope", 400, "The provided value for the input parameter 'scope' is not valid. The scope '%s' does not exist or is not valid."},
	CodeMultipleResources:  {"invalid_scope", 400, "Provided value for the input parameter scope is not valid because it contains more than one resource. Scope %s is not valid."},
	CodeCodeRedeemed:       {"invalid_grant", 400, "OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an existing refresh token."},
	CodePKCEMismatch:       {"invalid_grant", 400, "The code_verifier does not match the code_challenge supplied in the authorization request for PKCE."},
	CodeMalformedGrant:     {"invalid_grant", 400, "Invalid request. Request is malformed or invalid."},
	CodeRefreshReused:      {"invalid_grant", 400, "The provided refresh token has already been redeemed and was replaced by a newer one (emulator: strict rotation)."},
	CodeTenantNotFound:     {"invalid_request", 400, "Tenant '%s' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."},
	CodeUserNotInTenant:    {"invalid_request", 400, "User account '%s' from identity provider does not exist in tenant '%s' and cannot access the application '%s' in that tenant."},
	CodeMissingParameter:   {"invalid_request", 400, "The request body must contain the following parameter: '%s'."},
	CodeUnsupportedGrant:   {"unsupported_grant_type", 400, "The provided value for the input parameter 'grant_type' is not valid. Expected values are the following: 'authorization_code', 'refresh_token', 'client_credentials'."},
	CodeTransient:          {"temporarily_unavailable", 503, "A transient error has occurred. Please try again."},
	CodeRedirectAtToken:    {"invalid_grant", 400, "The reply uri specified in the request isn't expected: it differs from the one used in the authorization request."},
	CodePKCERequired:       {"invalid_request", 400, "Proof Key for Code Exchange is required: code_challenge with code_challenge_method 'S256'."},
	CodeTenantRequired:     {"invalid_request", 400, "The grant type is not supported over the /common or /consumers endpoints. Please use the /organizations or tenant-specific endpoint. (emulator: client credentials need a tenant-specific endpoint, as MSAL requires)"},
	CodeThrottled:          {"temporarily_unavailable", 429, "The server terminated an operation because it encountered a client request loop or too many requests. Please retry later."},
	CodeUnsupportedRespTyp: {"unsupported_response_type", 400, "The provided value for the input parameter 'response_type' is not allowed for this request. Expected value: 'code'."},
}

// ErrorBody is the JSON body of an Entra ID error, as the token endpoint
// sends it.
type ErrorBody struct {
	Error            string `json:"error"`
	ErrorDescription string `json:"error_description"`
	ErrorCodes       []int  `json:"error_codes"`
	Timestamp        string `json:"timestamp"`
	TraceID          string `json:"trace_id"`
	CorrelationID    string `json:"correlation_id"`
	ErrorURI         string `json:"error_uri,omitempty"`
}

// OAuthError returns the OAuth error string and the HTTP status the token
// endpoint uses for an AADSTS code ("", 0 for an unknown code).
func OAuthError(code int) (string, int) {
	e, ok := catalog[code]
	if !ok {
		return "", 0
	}
	return e.err, e.status
}

// newErrorBody renders the catalog entry for code with args.
func newErrorBody(base string, now time.Time, code int, args ...any) (ErrorBody, int) {
	e, ok := catalog[code]
	if !ok {
		e = aadError{"invalid_request", 400, "Unknown error."}
	}
	trace, corr := guid(), guid()
	ts := now.UTC().Format("2006-01-02 15:04:05Z")
	desc := fmt.Sprintf("AADSTS%d: %s Trace ID: %s Correlation ID: %s Timestamp: %s",
		code, fmt.Sprintf(e.text, args...), trace, corr, ts)
	return ErrorBody{
		Error:            e.err,
		ErrorDescription: desc,
		ErrorCodes:       []int{code},
		Timestamp:        ts,
		TraceID:          trace,
		CorrelationID:    corr,
		ErrorURI:         base + "/error?code=" + fmt.Sprint(code),
	}, e.status
}

// writeJSON writes v as a JSON answer with status and no caching, like
// Entra's token endpoint.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store, no-cache")
	w.Header().Set("Pragma", "no-cache")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// guid returns a random version-4 GUID.
func guid() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
