package vaultapi

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"time"
)

// ErrForbiddenByPolicy is the error code (403) of a token request for a host
// or organization that the environment's policy does not allow.
const ErrForbiddenByPolicy = "forbidden_by_policy"

// Policy is an environment's least-privilege policy, as the vault stores it
// and sends it with every token answer (TokenResponse.Policy). The zero
// Policy allows everything the owner's credential reaches, which is the
// behaviour of an environment created without policy flags.
//
// Patterns are HOST/ORG/PROJECT/REPO (self-hosted: HOST[/VDIR]/COLLECTION/
// PROJECT/REPO), lower-cased host, where "*" stands for one whole segment;
// ref patterns are git ref globs ("refs/heads/agent/*").
type Policy struct {
	// Version increases with every change of the environment's policy, so
	// the sidecar can tell a newer policy from an older one.
	Version int64 `json:"version"`
	// AllowRepos: the repositories the environment may use at all; empty
	// means every repository.
	AllowRepos []string `json:"allow_repos,omitempty"`
	// ReadOnlyRepos: repositories that may be fetched but never pushed.
	ReadOnlyRepos []string `json:"read_only_repos,omitempty"`
	// PushRefs: refs a push may create, update or delete; empty means any.
	PushRefs []string `json:"push_refs,omitempty"`
	// ProxyOnly: the environment never receives a token; only the proxy
	// uses it.
	ProxyOnly bool `json:"proxy_only,omitempty"`
}

// AuditPath is the path of the audit endpoint: POST a batch of events,
// authenticated with the environment token like TokenPath.
const AuditPath = "/v1/audit"

// AuditEvent is one git operation the sidecar proxied (or refused). It never
// holds a secret.
type AuditEvent struct {
	Time    time.Time `json:"time"`
	Env     string    `json:"env,omitempty"` // set by the vault from the token
	Owner   string    `json:"owner,omitempty"`
	Host    string    `json:"host"`
	Org     string    `json:"org,omitempty"`
	Project string    `json:"project,omitempty"`
	Repo    string    `json:"repo,omitempty"`
	// Operation is "fetch", "push", "ls-remote" or "rest".
	Operation string `json:"operation"`
	// Refs are a push's ref updates.
	Refs []AuditRef `json:"refs,omitempty"`
	// Status is the upstream's HTTP status when forwarded, or the status
	// of the refusal.
	Status int `json:"status"`
	// Refused is the reason of a refusal (empty when forwarded).
	Refused    string `json:"refused,omitempty"`
	BytesIn    int64  `json:"bytes_in"`  // from the client
	BytesOut   int64  `json:"bytes_out"` // to the client
	DurationMS int64  `json:"duration_ms"`
}

// AuditRef is one ref update of a push.
type AuditRef struct {
	Name string `json:"name"`
	Old  string `json:"old"`
	New  string `json:"new"`
}

// AuditRequest is the body of POST /v1/audit.
type AuditRequest struct {
	Events []AuditEvent `json:"events"`
}

// Limits of POST /v1/audit: a larger body or batch is refused whole with
// 413, so a sender splits its queue into batches of at most
// MaxAuditEvents events.
const (
	MaxAuditBody   = 1 << 20
	MaxAuditEvents = 500
)

// AuditResponse is the 200 answer of POST /v1/audit. Rejected events broke
// a limit (field size, operation, object ID, a value shaped like a token)
// and are dropped for good: resending them cannot succeed, so a sender
// treats the whole batch as delivered.
type AuditResponse struct {
	Stored   int `json:"stored"`
	Rejected int `json:"rejected"`
}

// PolicyMAC is the value of TokenResponse.PolicyMAC for policyJSON sent with
// token (the plaintext token, before any seal): standard base64 of
// HMAC-SHA256 over policyJSON, keyed with SHA-256 of a label and the token.
// Only the vault and whoever can open the token can compute it.
func PolicyMAC(token string, policyJSON []byte) string {
	k := sha256.Sum256([]byte("azdo-sidecar policy-mac v1\x00" + token))
	m := hmac.New(sha256.New, k[:])
	m.Write(policyJSON)
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// CheckPolicyMAC reports whether mac is PolicyMAC(token, policyJSON), in
// constant time.
func CheckPolicyMAC(token string, policyJSON []byte, mac string) bool {
	return hmac.Equal([]byte(PolicyMAC(token, policyJSON)), []byte(mac))
}
