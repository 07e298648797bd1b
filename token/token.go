// Package token knows what an Azure DevOps credential is, where it comes
// from and when it expires.
//
// The centre is Source: everything that hands out tokens (the runner's vault,
// a static PAT, the in-memory cache in front of them) implements it, and
// behaviour is added by wrapping one Source in another.
//
// This package is imported by the small git-credential-azdo binary, so it
// must stay light: no net/http, no crypto beyond what the standard library
// already links. Network sources live in sub-packages.
package token

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/azdo-sidecar/azdo-sidecar/secret"
)

// Kind says how a token is presented to Azure DevOps.
type Kind string

const (
	// Bearer is a Microsoft Entra ID access token, sent as
	// "Authorization: Bearer <token>".
	Bearer Kind = "bearer"
	// Basic is a personal access token, sent as HTTP Basic with a
	// non-secret user name and the PAT as password.
	Basic Kind = "basic"
)

// DefaultUsername is the non-secret user name presented with a PAT or, to
// tools that only speak Basic, with an Entra token. Azure DevOps accepts any
// non-empty user name; it is never a secret and never the token itself.
const DefaultUsername = "azdo-sidecar"

// Key identifies which credential a request needs: the Azure DevOps host
// (lower case, with ":port" only when not 443) and the organization or, for
// Azure DevOps Server, the collection. Org may be empty when it is unknown.
type Key struct {
	Host string
	Org  string
}

// String returns "host/org", for logs and metrics (never secret).
func (k Key) String() string {
	if k.Org == "" {
		return k.Host
	}
	return k.Host + "/" + k.Org
}

// Token is one credential for one Key.
type Token struct {
	Kind     Kind
	Username string // non-secret; DefaultUsername when empty
	Secret   secret.String
	// ExpiresAt is when the token stops working (zero: unknown). For a PAT
	// without a known expiry the vault sends a cache horizon instead.
	ExpiresAt time.Time
	// Policy is the environment's policy that came with the token: the
	// JSON of a vaultapi.Policy, authenticated by the source (the vault's
	// policy_mac) before it was put here. Empty: the source has none.
	// It is not secret.
	Policy string
	// Notice is a message for the user that comes with the token, never
	// secret: a stored PAT expires soon, with the link to replace it.
	Notice string
}

// User returns the user name to present with Basic authentication.
func (t Token) User() string {
	if t.Username == "" {
		return DefaultUsername
	}
	return t.Username
}

// Valid reports whether t is usable at now for at least minValid more.
func (t Token) Valid(now time.Time, minValid time.Duration) bool {
	if t.Secret.IsZero() {
		return false
	}
	return t.ExpiresAt.IsZero() || now.Add(minValid).Before(t.ExpiresAt)
}

// AuthorizationHeader returns the value of the Authorization header that
// presents t to Azure DevOps. The result is a secret: write it to the
// upstream request and nowhere else.
func (t Token) AuthorizationHeader() string {
	switch t.Kind {
	case Bearer:
		return "Bearer " + t.Secret.Reveal()
	default:
		return "Basic " + base64.StdEncoding.EncodeToString([]byte(t.User()+":"+t.Secret.Reveal()))
	}
}

// String describes t without its secret.
func (t Token) String() string {
	exp := "no expiry"
	if !t.ExpiresAt.IsZero() {
		exp = "expires " + t.ExpiresAt.UTC().Format(time.RFC3339)
	}
	return fmt.Sprintf("%s token for user %q, %s", t.Kind, t.User(), exp)
}

// Source hands out tokens.
//
// Token returns a token for key that is valid now. Implementations must be
// safe for concurrent use by multiple goroutines, must honour ctx's deadline
// and cancellation, and must never include a secret in a returned error.
type Source interface {
	Token(ctx context.Context, key Key) (Token, error)
}

// Invalidator is implemented by sources that cache: Invalidate drops the
// cached token for key when Azure DevOps rejected it (git's "erase", an
// upstream 401), so that the next Token call fetches a fresh one.
type Invalidator interface {
	Invalidate(key Key, rejected Token)
}

// SourceFunc adapts a function to Source.
type SourceFunc func(ctx context.Context, key Key) (Token, error)

// Token calls f.
func (f SourceFunc) Token(ctx context.Context, key Key) (Token, error) { return f(ctx, key) }

// Sentinel errors a caller branches on with errors.Is.
var (
	// ErrUnavailable means the token source could not be reached or
	// answered with a transient failure; trying again later may work.
	ErrUnavailable = errors.New("token: source unavailable")
	// ErrUnauthorized means the environment itself is not allowed to ask
	// (its environment token is wrong, expired or revoked).
	ErrUnauthorized = errors.New("token: environment not authorized by the vault")
	// ErrNoCredential means no credential is configured for this key and
	// there is no way to connect one (e.g. standalone mode, wrong host).
	ErrNoCredential = errors.New("token: no credential for this host")
	// ErrTransient marks a failure to reach the source that says nothing
	// about the answer and is worth trying again at once: connection
	// refused or reset, a TLS handshake or response timeout, a 502, 503 or
	// 504 from the source or a proxy in front of it. Sources mark such
	// errors with Transient; the Cache retries them while callers wait.
	ErrTransient = errors.New("token: transient failure")
)

// Transient marks err as transient (errors.Is(err, ErrTransient) holds)
// without changing its message. A nil err stays nil.
func Transient(err error) error {
	if err == nil {
		return nil
	}
	return transientError{err}
}

type transientError struct{ err error }

func (e transientError) Error() string        { return e.err.Error() }
func (e transientError) Unwrap() error        { return e.err }
func (e transientError) Is(target error) bool { return target == ErrTransient }

// ConnectError says the user must connect (or reconnect) before a token can
// be had, and where to do it.
type ConnectError struct {
	Key        Key
	Reconnect  bool   // true: a grant existed but was revoked or expired
	Reason     string // human-readable, never secret (e.g. an AADSTS code)
	ConnectURL string // the link to open in a browser
	// PATURL, when the host also accepts personal access tokens and
	// ConnectURL starts the OAuth flow, is the link to the page where the
	// user pastes a PAT instead. Error does not show it; what shows the
	// link also offers this one.
	PATURL string
}

// Error implements error.
func (e *ConnectError) Error() string {
	verb := "connect"
	if e.Reconnect {
		verb = "reconnect"
	}
	msg := fmt.Sprintf("Azure DevOps (%s): %s required", e.Key, verb)
	if e.Reason != "" {
		msg += " (" + e.Reason + ")"
	}
	if e.ConnectURL != "" {
		msg += ": open " + e.ConnectURL
	}
	return msg
}

// UnreachableError is a token source that could not be reached at all
// (connection refused, no such host, a timeout): usually a configuration
// error, such as a wrong --vault-url, rather than an outage. It wraps
// ErrUnavailable, so callers that retry still do.
type UnreachableError struct {
	URL    string // the source's base URL (never secret)
	Reason string // "connection refused", "no such host", …
}

// Error implements error.
func (e *UnreachableError) Error() string {
	return "cannot reach the vault at " + e.URL + ": " + e.Reason + " — check --vault-url"
}

// Unwrap makes errors.Is(err, ErrUnavailable) true.
func (e *UnreachableError) Unwrap() error { return ErrUnavailable }

// RetryAfterError wraps ErrUnavailable with the delay the source asked for.
type RetryAfterError struct {
	After time.Duration
	Err   error
}

// Error implements error.
func (e *RetryAfterError) Error() string {
	return fmt.Sprintf("%v (retry after %s)", e.Err, e.After)
}

// Unwrap returns the wrapped error.
func (e *RetryAfterError) Unwrap() error { return e.Err }
