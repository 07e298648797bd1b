// Package vault is the runner's vault: it holds users' Azure DevOps
// credentials sealed to the runner's key, registers environments, refreshes
// Entra ID grants and serves fresh tokens to environments over
// POST /v1/token.
//
// The vault keeps access tokens in memory only; refresh tokens and PATs are
// sealed before they reach the store and opened only to be used.
package vault

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/azdo-sidecar/azdo-sidecar/sealbox"
	"github.com/azdo-sidecar/azdo-sidecar/secret"
	"github.com/azdo-sidecar/azdo-sidecar/vault/store"
	"github.com/azdo-sidecar/azdo-sidecar/vaultapi"
)

// Provider is how the vault gets credentials for one Azure DevOps host.
type Provider struct {
	Host  string    // lower case, ":port" only when not 443
	OAuth Refresher // nil: OAuth (Connect) is not enabled for this host
	PAT   bool      // PATs may be stored for this host
}

// Backoff bounds the retries of transient refresh failures.
type Backoff struct {
	Attempts int           // total tries, the first included (default 4)
	Base     time.Duration // first delay, doubled each time (default 250ms)
	Max      time.Duration // cap of one delay (default 2s)
	// AttemptTimeout bounds the first call to the identity provider, and
	// doubles for each retry (default MaxWait/2): a call that hangs (a TLS
	// handshake or an answer that never comes) is cut and tried again
	// while requests still wait for it, instead of holding the whole
	// RefreshTimeout. A refresh token sent in a call that was cut stays
	// usable: Entra ID does not retire a refresh token when it rotates it.
	AttemptTimeout time.Duration
}

// Config configures a Vault. Keys and Store are required.
type Config struct {
	Keys      sealbox.KeyPair
	Store     store.Store
	Providers []Provider
	// PublicURL is the base of the links made by the default Linker.
	PublicURL string
	// Links makes connect_url links (default PublicURLLinker{PublicURL}).
	Links  Linker
	Now    func() time.Time // default time.Now
	Logger *slog.Logger     // default slog.Default()
	// Registry receives the metrics and serves /metrics (default: a new
	// registry of its own).
	Registry *prometheus.Registry
	Backoff  Backoff
	// RetryAfter is the Retry-After sent with 503 when the identity
	// provider stays down (default 10s).
	RetryAfter time.Duration
	// RefreshTimeout bounds one refresh, retries included (default 30s).
	RefreshTimeout time.Duration
	// MaxWait bounds how long a token request waits for a refresh in
	// flight (default 10s, below the sidecar's 15s request timeout): past
	// it the request gets 503 with Retry-After while the refresh goes on,
	// and a later request gets its result.
	MaxWait time.Duration
	// PATHorizon is the expires_at given for a PAT whose expiry is unknown
	// (default 1h): the sidecar asks again after it.
	PATHorizon time.Duration
	// Sleep waits between retries (default: a timer honouring ctx). Tests
	// replace it.
	Sleep func(ctx context.Context, d time.Duration) error
	// PollInterval is how often the replica reads new connect events while
	// environments wait for their users (default DefaultPollInterval).
	PollInterval time.Duration
	// AuditRetention is how long audit events are kept (0: forever;
	// azdo-vault serve defaults to DefaultAuditRetention). The vault deletes
	// older ones at start and every AuditSweep (default DefaultAuditSweep).
	AuditRetention time.Duration
	AuditSweep     time.Duration
	// AuditRate bounds the events one environment may POST to this
	// replica per minute (default DefaultAuditRate); past it, 429 with
	// Retry-After.
	AuditRate int
}

// Vault serves tokens to environments. It is safe for concurrent use.
type Vault struct {
	keys    sealbox.KeyPair
	binding *Binding
	st      store.Store
	provs   atomic.Pointer[map[string]Provider]
	states  atomic.Pointer[[]ProviderState]
	links   atomic.Pointer[Linker]
	now     func() time.Time
	log     *slog.Logger
	reg     *prometheus.Registry
	m       *metrics
	backoff Backoff
	retryAfter,
	refreshTimeout,
	maxWait,
	patHorizon time.Duration
	sleep func(ctx context.Context, d time.Duration) error
	mux   *http.ServeMux

	cache cache
	hub   *waitHub

	auditRetention time.Duration
	auditM         *prometheus.CounterVec
	auditLimit     auditLimiter

	// base is the parent of every refresh: a refresh outlives the request
	// that started it (its result is shared, its rotated refresh token must
	// be saved), but not Close.
	base   context.Context
	cancel context.CancelFunc
	mu     sync.Mutex
	flight map[int64]*flight
	closed bool
	wg     sync.WaitGroup
}

// New returns a Vault. Call Close to stop its refreshes.
func New(cfg Config) (*Vault, error) {
	if cfg.Store == nil {
		return nil, errors.New("vault: no store")
	}
	if cfg.Keys.Public == (sealbox.PublicKey{}) {
		return nil, errors.New("vault: no key pair")
	}
	v := &Vault{
		keys:           cfg.Keys,
		st:             cfg.Store,
		now:            cfg.Now,
		log:            cfg.Logger,
		reg:            cfg.Registry,
		backoff:        cfg.Backoff,
		retryAfter:     cfg.RetryAfter,
		refreshTimeout: cfg.RefreshTimeout,
		maxWait:        cfg.MaxWait,
		patHorizon:     cfg.PATHorizon,
		sleep:          cfg.Sleep,
		flight:         map[int64]*flight{},
	}
	if err := v.SetProviders(cfg.Providers); err != nil {
		return nil, err
	}
	if cfg.Links == nil {
		cfg.Links = PublicURLLinker{PublicURL: cfg.PublicURL}
	}
	v.SetLinker(cfg.Links)
	if v.now == nil {
		v.now = time.Now
	}
	if v.log == nil {
		v.log = slog.Default()
	}
	bctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	b, err := Bind(bctx, v.st, v.keys, v.log)
	cancel()
	if err != nil {
		return nil, err
	}
	v.binding = b
	if v.reg == nil {
		v.reg = prometheus.NewRegistry()
	}
	if v.backoff.Attempts <= 0 {
		v.backoff.Attempts = 4
	}
	if v.backoff.Base <= 0 {
		v.backoff.Base = 250 * time.Millisecond
	}
	if v.backoff.Max <= 0 {
		v.backoff.Max = 2 * time.Second
	}
	if v.retryAfter <= 0 {
		v.retryAfter = 10 * time.Second
	}
	if v.refreshTimeout <= 0 {
		v.refreshTimeout = 30 * time.Second
	}
	if v.maxWait <= 0 {
		v.maxWait = 10 * time.Second
	}
	if v.backoff.AttemptTimeout <= 0 {
		v.backoff.AttemptTimeout = v.maxWait / 2
	}
	if v.patHorizon <= 0 {
		v.patHorizon = time.Hour
	}
	if v.sleep == nil {
		v.sleep = sleepCtx
	}
	v.m = newMetrics(v.reg)
	v.hub = newWaitHub(v.st, cfg.PollInterval, v.now, v.log, v.m.eventPolls.Inc)
	v.base, v.cancel = context.WithCancel(context.Background())
	v.mux = http.NewServeMux()
	v.mux.HandleFunc("POST "+vaultapi.TokenPath, v.serveToken)
	v.mux.HandleFunc("POST "+vaultapi.ConnectWaitPath, v.serveConnectWait)
	v.mux.HandleFunc("POST "+vaultapi.AuditPath, v.serveAudit)
	v.mux.HandleFunc("GET /healthz", v.serveHealth)
	v.states.Store(&[]ProviderState{})
	v.mux.Handle("GET /metrics", promhttp.HandlerFor(v.reg, promhttp.HandlerOpts{}))
	v.auditM = newAuditMetrics(v.reg)
	v.auditRetention = cfg.AuditRetention
	v.auditLimit.rate = cfg.AuditRate
	if v.auditLimit.rate <= 0 {
		v.auditLimit.rate = DefaultAuditRate
	}
	if v.auditRetention > 0 {
		every := cfg.AuditSweep
		if every <= 0 {
			every = DefaultAuditSweep
		}
		v.wg.Add(1)
		go v.sweepAuditLoop(every)
	}
	return v, nil
}

// Mux returns the vault's HTTP routes: POST /v1/token, POST /v1/audit,
// GET /healthz, GET /metrics. The Connect and PAT pages mount their own routes on it
// (/connect, /oauth/callback, /pat) before serving starts.
func (v *Vault) Mux() *http.ServeMux { return v.mux }

// SetLinker replaces the maker of connect_url links (the Connect flow
// installs its signed, single-use links). Safe to call while serving.
func (v *Vault) SetLinker(l Linker) { v.links.Store(&l) }

// PublicKey returns the runner's public key.
func (v *Vault) PublicKey() sealbox.PublicKey { return v.keys.Public }

// Binding returns the keys that bind the store's rows to the runner key
// (what NewEnvironment needs).
func (v *Vault) Binding() *Binding { return v.binding }

// Store returns the vault's store.
func (v *Vault) Store() store.Store { return v.st }

// Close stops refreshes in flight and waits for them. It does not close the
// store, which the caller opened.
func (v *Vault) Close() error {
	v.mu.Lock()
	v.closed = true
	v.mu.Unlock()
	v.cancel()
	v.hub.stop()
	v.wg.Wait()
	return nil
}

// StopWaits ends every connect wait at once (their clients ask again): for
// http.Server.RegisterOnShutdown, so that a graceful shutdown does not
// wait out long-polls.
func (v *Vault) StopWaits() { v.hub.stop() }

// Credential is a user's credential as given to PutCredential, with its
// secret in the clear (in memory only).
type Credential struct {
	Owner string
	Host  string
	Org   string     // "" or store.AllOrgs: every organization of the host
	Kind  store.Kind // store.OAuth (Secret is a refresh token) or store.PAT
	// Secret is the refresh token or the PAT; it is sealed to the runner's
	// key before it is stored.
	Secret    secret.String
	ExpiresAt time.Time // zero: unknown
	// Env is the environment whose link was used, and Identity who signed
	// in (a UPN; "" for a PAT): both only tell a waiting environment
	// (connect wait) who connected; neither is stored with the secret.
	Env, Identity string
}

// ErrHostNotConfigured is returned for a host that no provider serves.
var ErrHostNotConfigured = errors.New("vault: host not configured on this runner")

// PutCredential seals c's secret to the runner's key and stores it,
// replacing the owner's credential of the same host, org and kind (a user
// who connects again gets a fresh, usable credential). It is what the
// Connect and PAT pages call.
func (v *Vault) PutCredential(ctx context.Context, c Credential) (store.Credential, error) {
	host := NormalizeHost(c.Host)
	p, ok := v.providerMap()[host]
	if !ok {
		return store.Credential{}, fmt.Errorf("%w: %s", ErrHostNotConfigured, host)
	}
	switch {
	case c.Kind == store.OAuth && p.OAuth == nil:
		return store.Credential{}, fmt.Errorf("vault: OAuth is not enabled for %s", host)
	case c.Kind == store.PAT && !p.PAT:
		return store.Credential{}, fmt.Errorf("vault: PATs are not enabled for %s", host)
	case c.Kind != store.OAuth && c.Kind != store.PAT:
		return store.Credential{}, fmt.Errorf("vault: unknown credential kind %q", c.Kind)
	}
	if c.Owner == "" || c.Secret.IsZero() {
		return store.Credential{}, errors.New("vault: a credential needs an owner and a secret")
	}
	sealed, err := sealbox.Seal(v.keys.Public, []byte(c.Secret.Reveal()))
	if err != nil {
		return store.Credential{}, err
	}
	org := normalizeOrg(c.Org)
	if org == "" {
		org = store.AllOrgs
	}
	row := store.Credential{
		Owner: c.Owner, Host: host, Org: org, Kind: c.Kind,
		Sealed: sealed, ExpiresAt: c.ExpiresAt, Status: store.StatusOK,
	}
	row.MAC = v.binding.CredentialMAC(row)
	sc, err := v.st.PutCredential(ctx, row)
	if err != nil {
		return store.Credential{}, err
	}
	v.cache.drop(sc.ID)
	v.log.Info("credential stored", "owner", c.Owner, "host", host, "org", org, "kind", string(c.Kind), "credential_id", sc.ID)
	v.addConnectEvent(ctx, store.ConnectEvent{Owner: c.Owner, Env: c.Env, Host: host, Kind: c.Kind, OK: true, Identity: c.Identity})
	return sc, nil
}

// ConnectFailed records that a connect link of owner for host was used and
// failed (the signed-in identity is not the owner's, consent was denied),
// so that an environment waiting for the connection ends its wait with
// reason, which must be fit to show the user and hold no secret.
func (v *Vault) ConnectFailed(ctx context.Context, owner, env, host string, kind store.Kind, reason string) {
	v.addConnectEvent(ctx, store.ConnectEvent{Owner: owner, Env: env, Host: NormalizeHost(host), Kind: kind, Reason: reason})
}

// addConnectEvent records e for the waiting environments; a failure costs
// them only the early end of their wait, so it is logged, not returned.
func (v *Vault) addConnectEvent(ctx context.Context, e store.ConnectEvent) {
	if _, err := v.st.AddConnectEvent(ctx, e); err != nil {
		v.log.Warn("recording the connect outcome failed; a waiting environment learns of it at its next token request", "owner", e.Owner, "host", e.Host, "err", err)
	}
}

// NormalizeHost lower-cases host and drops a ":443" port.
func NormalizeHost(host string) string {
	return strings.TrimSuffix(strings.ToLower(strings.TrimSpace(host)), ":443")
}

// normalizeOrg lower-cases an organization name: Azure DevOps treats them
// case-insensitively.
func normalizeOrg(org string) string { return strings.ToLower(strings.TrimSpace(org)) }

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// SetProviders replaces the providers (a reload): requests already running
// finish with the ones they started with.
func (v *Vault) SetProviders(ps []Provider) error {
	m := map[string]Provider{}
	for _, p := range ps {
		p.Host = NormalizeHost(p.Host)
		if _, dup := m[p.Host]; dup {
			return fmt.Errorf("vault: provider %s configured twice", p.Host)
		}
		m[p.Host] = p
	}
	v.provs.Store(&m)
	return nil
}

// providerMap returns the current providers by host; callers must not
// change it.
func (v *Vault) providerMap() map[string]Provider { return *v.provs.Load() }

// ProviderState is how one configured provider serves, as /healthz shows
// it: OAuth is "ok", "disabled" (Reason says why: its verification failed)
// or "off" (not configured); PAT says whether PATs are taken.
type ProviderState struct {
	Host   string `json:"host"`
	OAuth  string `json:"oauth"`
	PAT    bool   `json:"pat"`
	Reason string `json:"reason,omitempty"`
}

// Provider OAuth states.
const (
	OAuthOK       = "ok"
	OAuthDisabled = "disabled"
	OAuthOff      = "off"
)

// SetProviderStates publishes the providers' states in /healthz and the
// azdo_vault_provider_up metric.
func (v *Vault) SetProviderStates(states []ProviderState) {
	cp := append([]ProviderState(nil), states...)
	v.states.Store(&cp)
	v.m.providerUp.Reset()
	for _, s := range cp {
		if s.OAuth != OAuthOff {
			v.m.providerUp.WithLabelValues(s.Host, "oauth").Set(b2f(s.OAuth == OAuthOK))
		}
		if s.PAT {
			v.m.providerUp.WithLabelValues(s.Host, "pat").Set(1)
		}
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// health is the body of GET /healthz.
type health struct {
	// Status is "ok", or "degraded" when a provider is disabled.
	Status    string          `json:"status"`
	Providers []ProviderState `json:"providers"`
}

func (v *Vault) serveHealth(w http.ResponseWriter, r *http.Request) {
	h := health{Status: "ok", Providers: *v.states.Load()}
	for _, s := range h.Providers {
		if s.OAuth == OAuthDisabled {
			h.Status = "degraded"
		}
	}
	// 200 either way: the vault serves (the other providers, PATs); the
	// state says what an administrator must fix.
	writeJSON(w, http.StatusOK, h)
}

// DisabledRefresher stands for an OAuth provider whose verification
// failed: every refresh fails as misconfigured (503 to environments,
// grants left alone) with the reason, until a reload fixes it.
type DisabledRefresher struct{ Reason string }

// Refresh implements Refresher.
func (d DisabledRefresher) Refresh(context.Context, secret.String) (Grant, error) {
	return Grant{}, &RefreshError{Class: Misconfigured, Reason: "provider disabled", Err: errors.New(d.Reason)}
}
