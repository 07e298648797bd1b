// Package vaultapi holds the wire types of the vault's HTTP API, shared by
// the vault server and the sidecar's client. The shapes are the contract
// (docs: README "Vault HTTP API"); change them only compatibly.
package vaultapi

import (
	"encoding/json"
	"time"
)

// TokenPath is the path of the token endpoint.
const TokenPath = "/v1/token"

// TokenRequest is the body of POST /v1/token. The request carries
// "Authorization: Bearer <environment token>".
type TokenRequest struct {
	Host            string `json:"host"`
	Org             string `json:"org"`
	MinValidSeconds int    `json:"min_valid_seconds,omitempty"`
	// SealTo is a standard base64 X25519 public key; when set, Token in the
	// response is sealed to it (box.SealAnonymous, standard base64).
	SealTo string `json:"seal_to,omitempty"`
}

// Token types.
const (
	TypeBearer = "bearer"
	TypeBasic  = "basic"
)

// TokenResponse is the 200 answer of POST /v1/token.
type TokenResponse struct {
	Type     string `json:"type"`
	Username string `json:"username"`
	Token    string `json:"token"`
	// ExpiresAt is when the token stops working. For a PAT whose expiry is
	// unknown it is a cache horizon after which the sidecar asks again.
	ExpiresAt time.Time `json:"expires_at"`
	Sealed    bool      `json:"sealed"`
	// Policy is the environment's policy (nil: none), which the sidecar
	// enforces on the proxy and the credential helper.
	// It is the JSON of a Policy, kept raw so that PolicyMAC is checked
	// over exactly the bytes the vault sent.
	Policy json.RawMessage `json:"policy,omitempty"`
	// PolicyMAC authenticates Policy (standard base64 HMAC-SHA256 of its
	// JSON, keyed with a key derived from the token): a relay that cannot
	// open a sealed token cannot alter the policy that travels with it.
	PolicyMAC string `json:"policy_mac,omitempty"`
	// Notice is a message for the user (an addition): the stored PAT
	// expires within 7 days, with the date and a link to the PAT page.
	Notice string `json:"notice,omitempty"`
}

// Error codes in ErrorResponse.Error.
const (
	ErrNotConnected      = "not_connected"      // 404
	ErrReconnectRequired = "reconnect_required" // 409
	ErrUnauthorized      = "unauthorized"       // 401
	ErrBadRequest        = "bad_request"        // 400
	// ErrSealRequired: the environment's policy is proxy_only, so the
	// vault answers only requests that seal the token (seal_to): a bare
	// token would reach whoever holds the environment token.
	ErrSealRequired = "seal_required" // 403
	ErrUnavailable  = "unavailable"   // 503, with Retry-After
	ErrInternal     = "internal"      // 500
)

// ErrorResponse is the body of every non-2xx answer.
type ErrorResponse struct {
	Error      string `json:"error"`
	Message    string `json:"message"`
	ConnectURL string `json:"connect_url,omitempty"`
	// PATURL, beside a connect_url that starts the OAuth flow, is the page
	// where the user may paste a personal access token instead, when the
	// host accepts PATs too (an addition to the contract's shape).
	PATURL string `json:"pat_url,omitempty"`
}
