// Package store keeps the vault's durable state: users' credentials (sealed
// to the runner's public key, never in plaintext) and environments (whose
// tokens are kept only as SHA-256 hashes).
//
// Store is the interface the vault needs; SQLite (embedded, one file, the
// default) and PostgreSQL (several replicas on one database) implement it
// here, and the storetest package holds the contract both pass.
// Implementations never see a plaintext secret: the vault seals before it
// writes and opens after it reads.
package store

import (
	"context"
	"errors"
	"strings"
	"time"
)

// Kind is the kind of a user's credential.
type Kind string

// Credential kinds.
const (
	// OAuth is an Entra ID grant: the sealed secret is a refresh token.
	OAuth Kind = "oauth"
	// PAT is an Azure DevOps personal access token.
	PAT Kind = "pat"
)

// AllOrgs is the Org of a credential that serves every organization of its
// host (an Entra ID grant, or a PAT created for "All accessible
// organizations").
const AllOrgs = "*"

// Status says whether a credential can be used.
type Status string

// Credential statuses.
const (
	StatusOK Status = "ok"
	// StatusReconnectRequired means the grant was revoked or expired (or the
	// PAT expired): the user must connect again; the vault never retries it.
	StatusReconnectRequired Status = "reconnect_required"
)

// Sentinel errors.
var (
	// ErrNotFound means no row matched.
	ErrNotFound = errors.New("store: not found")
	// ErrConflict means a compare-and-swap lost: the row changed since it
	// was read (another request or another replica rotated it).
	ErrConflict = errors.New("store: version conflict")
	// ErrDuplicate means an insert would break a uniqueness rule (an
	// environment ID or token hash that exists already).
	ErrDuplicate = errors.New("store: already exists")
	// ErrUsed means a single-use value was spent already.
	ErrUsed = errors.New("store: already used")
	// ErrBindingTampered means the store holds rows bound to a runner key
	// but not the mark BindLegacy leaves once it has bound the rows that
	// predate binding: someone deleted the mark (or restored part of the
	// database), and binding the unbound rows now could bless rows an
	// attacker inserted.
	ErrBindingTampered = errors.New("store: rows are bound to a runner key but the store's binding mark is missing (tampered with, or partly restored from a backup)")
)

// Binder computes the bindings of rows written before binding existed.
// The vault implements it with keys derived from the runner's private key;
// the store never sees those keys.
type Binder interface {
	// CredentialMAC returns the MAC of c (its Owner, Host, Org, Kind and
	// Sealed).
	CredentialMAC(c Credential) []byte
	// BindEnvironment returns the keyed token hash of an environment whose
	// TokenHash is still the plain SHA-256 of its token, and the MAC of
	// the row with that keyed hash.
	BindEnvironment(e Environment) (tokenHash, mac []byte)
}

// Bound is what BindLegacy bound: rows that existed before binding, Sealed
// and TokenHash left empty.
type Bound struct {
	Credentials  []Credential
	Environments []Environment
}

// Credential is one user's credential for one host and org (or all orgs).
type Credential struct {
	ID    int64
	Owner string
	Host  string // lower case, ":port" only when not 443
	Org   string // lower case, or AllOrgs
	Kind  Kind
	// Sealed is the secret (refresh token or PAT) sealed to the runner's
	// public key, standard base64. The store never holds it in plaintext.
	Sealed string
	// ExpiresAt is when the secret stops working (zero: unknown).
	ExpiresAt time.Time
	Status    Status
	// Reason explains StatusReconnectRequired (an AADSTS code, "PAT
	// expired"); never secret.
	Reason string
	// Version increases with every change; UpdateCredential compares it.
	Version   int64
	UpdatedAt time.Time
	// MAC binds Sealed to this row's owner, host, org and kind: the vault
	// computes it with a key derived from the runner's private key and
	// refuses a value whose MAC does not match, so a sealed secret copied
	// into another row opens for nobody. Empty on rows written before
	// binding existed until BindLegacy binds them. Not secret.
	MAC []byte
}

// Environment is a registered environment, authenticated by its token.
type Environment struct {
	ID    string
	Owner string
	// TokenHash is the keyed hash of the environment token (HMAC-SHA256,
	// with a key derived from the runner's private key, of the token's
	// SHA-256); the token itself is shown once at creation and never
	// stored. Rows written before binding existed hold the plain SHA-256
	// until BindLegacy rekeys them in place.
	TokenHash []byte
	CreatedAt time.Time
	ExpiresAt time.Time // zero: never
	RevokedAt time.Time // zero: not revoked
	// MAC binds the row (ID, owner, token hash, expiry) to the runner's
	// key, so a row inserted or edited by someone without the key
	// authenticates nothing. Empty on rows written before binding existed
	// until BindLegacy binds them. Not secret.
	MAC []byte
}

// Flow is a pending OAuth sign-in (Connect) between GET /connect and GET
// /oauth/callback, kept in the store so that the callback may reach another
// replica than the one that started it.
type Flow struct {
	Owner, Env, Host, Org string
	// SealedVerifier is the PKCE code verifier sealed to the runner's
	// public key; the store never holds it in plaintext.
	SealedVerifier string
	// Nonce is the OIDC nonce the ID token must carry (not a secret).
	Nonce   string
	Expires time.Time
}

// Store is the vault's durable state. Implementations are safe for
// concurrent use and keep each method atomic (one transaction).
type Store interface {
	// PutCredential inserts c, or replaces the credential of the same
	// (Owner, Host, Org, Kind), whatever its version: a user who connects
	// again replaces the old grant. It returns the stored row (ID, Version,
	// UpdatedAt set).
	PutCredential(ctx context.Context, c Credential) (Credential, error)
	// Credentials returns owner's credentials for host, any org and kind.
	Credentials(ctx context.Context, owner, host string) ([]Credential, error)
	// Credential returns one credential by ID, or ErrNotFound.
	Credential(ctx context.Context, id int64) (Credential, error)
	// UpdateCredential writes c if the stored version is still c.Version
	// (compare-and-swap), else returns ErrConflict. It returns the stored
	// row with its new Version.
	UpdateCredential(ctx context.Context, c Credential) (Credential, error)
	// DeleteCredential removes one credential; ErrNotFound if absent.
	DeleteCredential(ctx context.Context, id int64) error
	// ListCredentials returns the credentials of owner for host, for an
	// administrator; an empty owner or host matches every one. Sealed is
	// left empty: a listing never needs the secret. They come ordered by
	// owner, host and ID.
	ListCredentials(ctx context.Context, owner, host string) ([]Credential, error)
	// DeleteCredentials removes, in one statement, every credential of
	// owner (which must not be empty) for host (empty: every host) and
	// returns what it removed, Sealed left empty, in ID order. Nothing to
	// remove is not an error.
	DeleteCredentials(ctx context.Context, owner, host string) ([]Credential, error)

	// CreateEnvironment inserts e; its ID and TokenHash must be unique,
	// else it returns ErrDuplicate.
	CreateEnvironment(ctx context.Context, e Environment) error
	// EnvironmentByTokenHash returns the environment whose token hashes to
	// hash, or ErrNotFound.
	EnvironmentByTokenHash(ctx context.Context, hash []byte) (Environment, error)
	// RevokeEnvironment marks environment id revoked at at; ErrNotFound
	// if there is no such environment.
	RevokeEnvironment(ctx context.Context, id string, at time.Time) error
	// ListEnvironments returns owner's environments (empty owner: every
	// owner's), revoked and expired ones included, ordered by creation
	// time and ID. TokenHash is left empty: a listing never needs it.
	ListEnvironments(ctx context.Context, owner string) ([]Environment, error)

	// UseNonce spends a single-use value (a connect link's nonce), known
	// by its hash, until expires: ErrUsed if it was spent already and has
	// not expired. Of concurrent uses through any replicas, one wins.
	UseNonce(ctx context.Context, hash []byte, expires time.Time) error
	// PutFlow keeps a pending sign-in under the hash of its OAuth state
	// until f.Expires.
	PutFlow(ctx context.Context, stateHash []byte, f Flow) error
	// TakeFlow removes and returns the flow kept under stateHash, or
	// ErrNotFound (also when it has expired): a state is good for one
	// callback, whichever replica gets it.
	TakeFlow(ctx context.Context, stateHash []byte) (Flow, error)

	// BindLegacy binds, once in the store's life and in one transaction,
	// every credential and environment written before binding existed (MAC
	// empty): it sets each credential's MAC, rekeys each environment's
	// token hash in place and sets its MAC, with b, and leaves a mark.
	// Once the mark is there it binds nothing again, so a row inserted
	// later without the key stays unbound (and useless). A missing mark
	// next to bound rows is ErrBindingTampered.
	BindLegacy(ctx context.Context, b Binder) (Bound, error)

	// Close releases the store.
	Close() error
}

// Open opens the store named by url: "sqlite:PATH" (or a bare path; the
// URL forms sqlite://RELATIVE and sqlite:///ABSOLUTE are accepted too).
// "postgres://…" and "postgresql://…" open PostgreSQL (OpenPostgres), for
// several replicas sharing one database.
func Open(ctx context.Context, url string, now func() time.Time) (Store, error) {
	if path, ok := SQLitePath(url); ok {
		return OpenSQLite(ctx, path, now)
	}
	switch {
	case strings.HasPrefix(url, "postgres://"), strings.HasPrefix(url, "postgresql://"):
		return OpenPostgres(ctx, url, now)
	default:
		// The URL may hold a password: do not echo it.
		return nil, errors.New("store: unknown store URL scheme; use sqlite:PATH or postgres://")
	}
}

// SQLitePath returns the file that Open would open for url, and whether url
// names a SQLite store at all. Commands that only read or delete use it to
// refuse a mistyped path, which Open would create as an empty store.
func SQLitePath(url string) (string, bool) {
	switch {
	case strings.HasPrefix(url, "sqlite://"):
		// Without this, the driver would read the path as a URI authority.
		return strings.TrimPrefix(url, "sqlite://"), true
	case strings.HasPrefix(url, "sqlite:"):
		return strings.TrimPrefix(url, "sqlite:"), true
	case strings.HasPrefix(url, "postgres://"), strings.HasPrefix(url, "postgresql://"), strings.Contains(url, "://"):
		return "", false
	default:
		return url, true
	}
}
