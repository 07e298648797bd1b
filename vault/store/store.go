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
	// next to unbound ones: a store written before binding existed has no
	// bound rows, so the unbound ones were written by someone without the
	// key (or the database was partly restored), and binding them could
	// bless rows an attacker inserted.
	ErrBindingTampered = errors.New("store: rows bound to a runner key sit next to unbound ones (written without the key, or partly restored from a backup)")
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
	// Policy is the environment's policy (zero: none).
	Policy Policy
	// PolicyVersion increases with every change of Policy: 0 for an
	// environment never given one, then 1, 2, … (a cleared policy keeps
	// counting), so a sidecar can tell a newer policy from an older one.
	PolicyVersion int64
}

// Policy is an environment's least-privilege policy as the store keeps it:
// vaultapi.Policy without its version, which is Environment.PolicyVersion.
// The zero Policy allows everything the owner's credential reaches. The
// store keeps the patterns as given; the vault validates them.
type Policy struct {
	AllowRepos    []string `json:"allow_repos,omitempty"`
	ReadOnlyRepos []string `json:"read_only_repos,omitempty"`
	PushRefs      []string `json:"push_refs,omitempty"`
	ProxyOnly     bool     `json:"proxy_only,omitempty"`
}

// IsZero reports whether p restricts nothing.
func (p Policy) IsZero() bool {
	return len(p.AllowRepos) == 0 && len(p.ReadOnlyRepos) == 0 && len(p.PushRefs) == 0 && !p.ProxyOnly
}

// AuditEvent is one git operation an environment's sidecar proxied or
// refused (vaultapi.AuditEvent), as the vault stores it. It never holds a
// secret: the vault validates every field before it stores one.
type AuditEvent struct {
	ID        int64 // set by the store
	Time      time.Time
	Env       string
	Owner     string
	Host      string
	Org       string
	Project   string
	Repo      string
	Operation string
	Refs      []AuditRef
	Status    int
	Refused   string
	BytesIn   int64
	BytesOut  int64
	// DurationMS is the operation's duration in milliseconds.
	DurationMS int64
}

// AuditRef is one ref update of a pushed AuditEvent.
type AuditRef struct {
	Name string `json:"name"`
	Old  string `json:"old"`
	New  string `json:"new"`
}

// AuditFilter selects audit events; its zero value selects every one.
type AuditFilter struct {
	Owner string // exact
	Env   string // exact
	// Repo is a repository name, compared without regard to ASCII case as
	// Azure DevOps compares names.
	Repo  string
	Since time.Time // events at or after; zero: any
	// Limit keeps the newest Limit events (still returned oldest first);
	// 0: no limit.
	Limit int
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

	// CreateEnvironment inserts e, with its Policy and PolicyVersion; its
	// ID and TokenHash must be unique, else it returns ErrDuplicate.
	CreateEnvironment(ctx context.Context, e Environment) error
	// EnvironmentByTokenHash returns the environment whose token hashes to
	// hash, its policy included, or ErrNotFound.
	EnvironmentByTokenHash(ctx context.Context, hash []byte) (Environment, error)
	// RevokeEnvironment marks environment id revoked at at; ErrNotFound
	// if there is no such environment.
	RevokeEnvironment(ctx context.Context, id string, at time.Time) error
	// ListEnvironments returns owner's environments (empty owner: every
	// owner's), revoked and expired ones included, ordered by creation
	// time and ID. TokenHash is left empty: a listing never needs it.
	ListEnvironments(ctx context.Context, owner string) ([]Environment, error)

	// SetEnvironmentPolicy replaces environment id's policy with what
	// change returns for the stored row, increases its PolicyVersion by one
	// and sets its MAC to mac(the row as it will be: new policy and
	// version, TokenHash included), all in one transaction, so an update
	// made of the current policy loses no concurrent one. An error from
	// change is returned as it is and nothing is written. It returns the
	// environment (TokenHash left empty), or ErrNotFound. mac may be nil
	// (the MAC is then left as it was).
	SetEnvironmentPolicy(ctx context.Context, id string, change func(cur Environment) (Policy, error), mac func(Environment) []byte) (Environment, error)

	// AddAuditEvents stores events in one transaction and sets nothing
	// else on them; IDs increase in the order given.
	AddAuditEvents(ctx context.Context, events []AuditEvent) error
	// AuditEvents returns the events that f selects, oldest first (by
	// Time, then ID).
	AuditEvents(ctx context.Context, f AuditFilter) ([]AuditEvent, error)
	// DeleteAuditEvents removes the events older than before and returns
	// how many it removed (retention).
	DeleteAuditEvents(ctx context.Context, before time.Time) (int64, error)

	// UseNonce spends a single-use value (a connect link's nonce), known
	// by its hash, until expires: ErrUsed if it was spent already and has
	// not expired. Of concurrent uses through any replicas, one wins.
	UseNonce(ctx context.Context, hash []byte, expires time.Time) error
	// NonceUsed reports whether the value known by hash was spent and has
	// not expired, without spending it.
	NonceUsed(ctx context.Context, hash []byte) (bool, error)
	// PutFlow keeps a pending sign-in under the hash of its OAuth state
	// until f.Expires.
	PutFlow(ctx context.Context, stateHash []byte, f Flow) error
	// TakeFlow removes and returns the flow kept under stateHash, or
	// ErrNotFound (also when it has expired): a state is good for one
	// callback, whichever replica gets it.
	TakeFlow(ctx context.Context, stateHash []byte) (Flow, error)

	// CountUnbound returns how many credentials and environments carry no
	// MAC: rows written before binding existed, or by someone without the
	// runner key. The vault refuses to start on a store that has any; only
	// an operator's explicit `azdo-vault migrate --bind-legacy` binds them.
	CountUnbound(ctx context.Context) (credentials, environments int, err error)
	// BindLegacy binds, in one transaction, every credential and
	// environment written before binding existed (MAC empty): it sets each
	// credential's MAC, rekeys each environment's token hash in place and
	// sets its MAC, with b, and leaves a mark. Nothing in the store's
	// content says whether a row is legacy or forged, so only an
	// operator's explicit command calls it, never a start. A store that
	// holds bound rows next to unbound ones is ErrBindingTampered: a
	// legacy store has no bound rows, so the unbound ones were written
	// without the key.
	BindLegacy(ctx context.Context, b Binder) (Bound, error)

	// AddConnectEvent records e (its ID and At are set by the store) and
	// forgets events older than ConnectEventRetention. It returns the ID.
	AddConnectEvent(ctx context.Context, e ConnectEvent) (int64, error)
	// ConnectEvents returns up to MaxConnectEvents events with an ID
	// above after, in ID order. It is what each vault replica's one
	// poller reads, once a second while environments wait.
	ConnectEvents(ctx context.Context, after int64) ([]ConnectEvent, error)
	// LastConnectEventID returns the highest event ID (0: none yet).
	LastConnectEventID(ctx context.Context) (int64, error)

	// ProviderFingerprints returns, per host, the fingerprint of the
	// OAuth application ("client_id|tenant", "" without OAuth) the
	// vault's credentials were last pruned against.
	ProviderFingerprints(ctx context.Context) (map[string]string, error)
	// SetProviderFingerprints replaces them all, in one transaction.
	SetProviderFingerprints(ctx context.Context, fps map[string]string) error

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
