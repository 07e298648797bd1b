package vault

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/azdo-sidecar/azdo-sidecar/secret"
)

// Grant is what a refresh returns: a new access token and, because Entra ID
// rotates them, usually a new refresh token.
type Grant struct {
	AccessToken  secret.String
	RefreshToken secret.String // zero: the provider did not rotate it
	ExpiresAt    time.Time
}

// Refresher exchanges a refresh token for a Grant at one identity provider.
// Implementations must be safe for concurrent use, honour ctx, and return
// errors that never contain a token; errors the vault should branch on are
// *RefreshError (anything else counts as transient).
type Refresher interface {
	Refresh(ctx context.Context, refresh secret.String) (Grant, error)
}

// ErrorClass says what the vault does about a failed refresh.
type ErrorClass int

// Error classes.
const (
	// Transient failures (5xx, 429, temporarily_unavailable, network) are
	// retried with bounded backoff, then answered with 503.
	Transient ErrorClass = iota
	// Permanent failures (invalid_grant, interaction_required, consent) are
	// never retried: the credential is marked reconnect_required.
	Permanent
	// Misconfigured means the runner's OAuth client is wrong (secret, app,
	// redirect URI, resource): the administrator must fix it; the user's
	// grant is left alone.
	Misconfigured
)

// String names the class for logs and metric labels.
func (c ErrorClass) String() string {
	switch c {
	case Permanent:
		return "permanent"
	case Misconfigured:
		return "misconfigured"
	default:
		return "transient"
	}
}

// RefreshError is a classified refresh failure.
type RefreshError struct {
	Class ErrorClass
	// Reason is short, non-secret and bounded: an OAuth error code and an
	// AADSTS code ("invalid_grant AADSTS50173").
	Reason string
	// RetryAfter is the provider's Retry-After, if it sent one.
	RetryAfter time.Duration
	Err        error
}

// Error implements error.
func (e *RefreshError) Error() string {
	msg := fmt.Sprintf("refresh failed (%s", e.Class)
	if e.Reason != "" {
		msg += ": " + e.Reason
	}
	msg += ")"
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Unwrap returns the cause.
func (e *RefreshError) Unwrap() error { return e.Err }

// classify returns the class of a refresh error: *RefreshError says, and
// everything else (a network error, a context deadline) is transient.
func classify(err error) *RefreshError {
	var re *RefreshError
	if errors.As(err, &re) {
		return re
	}
	return &RefreshError{Class: Transient, Reason: "error", Err: err}
}
