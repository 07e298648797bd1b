// Package connect is the vault's Connect flows: the signed, short-lived,
// single-use connect_url links the vault hands to environments, the OAuth
// "Connect" through Microsoft Entra ID (authorization code + PKCE S256,
// state, nonce, ID token verified through vault/entra) and the PAT page
// (deep link to create a token, a form to paste it, a check against the
// Azure DevOps host before it is stored).
//
// Pages are small server-rendered html/template pages: no scripts, no
// external assets, CSRF-protected forms, strict security headers.
//
// State. A link is an HMAC-signed claim (owner, environment, host, org,
// expiry, nonce) with a key derived from the runner's private key, so any
// replica can verify any link. Single use and the pending OAuth flows
// (state, PKCE verifier, OIDC nonce) live in the vault's store when Config
// gives StoreNonces and StoreFlows (azdo-vault serve does): every replica
// then sees them, so no sticky sessions are needed; the store holds only
// hashes of nonces and states and the verifier sealed to the runner's key.
// Without them they are kept in memory (MemoryNonces, MemoryFlows), which
// serves one process. The PAT session between GET and POST /pat is a
// signed cookie, so it needs no server state.
package connect

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/azdo-sidecar/azdo-sidecar/sealbox"
	"github.com/azdo-sidecar/azdo-sidecar/vault"
	"github.com/azdo-sidecar/azdo-sidecar/vault/entra"
	"github.com/azdo-sidecar/azdo-sidecar/vault/store"
)

// Defaults.
const (
	// DefaultLinkTTL is how long a connect link stays usable.
	DefaultLinkTTL = 15 * time.Minute
	// DefaultFlowTTL is how long a sign-in may take between /connect and
	// the callback (Entra's codes live about 10 minutes).
	DefaultFlowTTL = 10 * time.Minute
	// PATDefaultValidity is Azure DevOps' default PAT lifetime.
	PATDefaultValidity = 30 * 24 * time.Hour
	// PATWarnWithin is when a PAT's coming expiry is worth a warning.
	PATWarnWithin = 7 * 24 * time.Hour
)

// CredentialStore stores a user's credential: the vault's internal API
// (*vault.Vault implements it).
type CredentialStore interface {
	PutCredential(ctx context.Context, c vault.Credential) (store.Credential, error)
	// ConnectFailed records that a used link failed, for the environment
	// that waits for it.
	ConnectFailed(ctx context.Context, owner, env, host string, kind store.Kind, reason string)
}

// OAuthProvider is the part of *entra.Provider the Connect flow uses.
type OAuthProvider interface {
	AuthCodeURL(state, nonce, pkceVerifier, loginHint string) string
	Exchange(ctx context.Context, code, pkceVerifier, nonce string) (entra.Grant, entra.Identity, error)
}

// Config configures a Handler. PublicURL, Keys and Vault are required.
type Config struct {
	// PublicURL is the vault's public base URL (config public_url).
	PublicURL string
	// Keys is the runner's key pair; the link key is derived from it.
	Keys sealbox.KeyPair
	// Vault stores the credentials.
	Vault CredentialStore
	// OAuth holds the OAuth-enabled hosts' settings (client secret opened,
	// in memory only). Providers are discovered on first use.
	OAuth map[string]vault.OAuthSettings
	// Disabled holds, by host, why its OAuth provider is disabled (its
	// verification failed): /connect shows the reason instead of starting
	// a sign-in.
	Disabled map[string]string
	// PAT lists the hosts on which PATs are enabled.
	PAT map[string]bool
	// Owners is the owner check applied to every Connect and PAT.
	Owners OwnerCheck
	// VirtualDirs holds the virtual directory of self-hosted hosts
	// configured with one (providers[].host: tfs.example.com/tfs), which
	// the PAT page's links put before the collection.
	VirtualDirs map[string]string
	// Client is the upstream HTTP client (identity provider, PAT checks):
	// system roots plus --upstream-ca-file, with timeouts.
	Client *http.Client
	// NewProvider makes the OAuth provider of a host (default: entra.New
	// with the settings' configuration). Tests may replace it.
	NewProvider func(ctx context.Context, s vault.OAuthSettings) (OAuthProvider, error)
	Nonces      Nonces           // default NewMemoryNonces
	Flows       Flows            // default NewMemoryFlows
	Now         func() time.Time // default time.Now
	Logger      *slog.Logger     // default slog.Default()
	LinkTTL     time.Duration    // default DefaultLinkTTL
	FlowTTL     time.Duration    // default DefaultFlowTTL
}

// Handler serves GET /connect, GET /oauth/callback, GET and POST /pat and
// makes connect_url links (it is a vault.Linker). It is safe for
// concurrent use.
type Handler struct {
	public  *url.URL
	signer  *Signer
	vault   CredentialStore
	oauth   map[string]vault.OAuthSettings
	off     map[string]string
	pat     map[string]bool
	owners  OwnerCheck
	vdirs   map[string]string
	client  *http.Client
	newProv func(ctx context.Context, s vault.OAuthSettings) (OAuthProvider, error)
	nonces  Nonces
	flows   Flows
	now     func() time.Time
	log     *slog.Logger
	linkTTL time.Duration
	flowTTL time.Duration

	mu    sync.Mutex
	provs map[string]OAuthProvider
}

// New returns a Handler.
func New(cfg Config) (*Handler, error) {
	u, err := url.Parse(cfg.PublicURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("connect: public URL %q is not an http(s) URL", cfg.PublicURL)
	}
	if cfg.Vault == nil {
		return nil, errors.New("connect: no vault")
	}
	s, err := NewSigner(cfg.Keys)
	if err != nil {
		return nil, err
	}
	h := &Handler{
		public: u, signer: s, vault: cfg.Vault,
		oauth: map[string]vault.OAuthSettings{}, pat: map[string]bool{}, vdirs: map[string]string{}, owners: cfg.Owners,
		client: cfg.Client, newProv: cfg.NewProvider,
		nonces: cfg.Nonces, flows: cfg.Flows, now: cfg.Now, log: cfg.Logger,
		linkTTL: cfg.LinkTTL, flowTTL: cfg.FlowTTL,
		provs: map[string]OAuthProvider{},
	}
	for host, o := range cfg.OAuth {
		h.oauth[vault.NormalizeHost(host)] = o
	}
	h.off = map[string]string{}
	for host, why := range cfg.Disabled {
		h.off[vault.NormalizeHost(host)] = why
	}
	for host, v := range cfg.VirtualDirs {
		h.vdirs[vault.NormalizeHost(host)] = strings.Trim(v, "/")
	}
	for host, on := range cfg.PAT {
		if on {
			h.pat[vault.NormalizeHost(host)] = true
		}
	}
	if h.now == nil {
		h.now = time.Now
	}
	if h.log == nil {
		h.log = slog.Default()
	}
	if h.client == nil {
		h.client = &http.Client{Timeout: 30 * time.Second}
	}
	if h.owners.InsecureSkip {
		h.log.Warn("identity.insecure_skip_owner_check is set: any account's sign-in or PAT is stored for whichever owner's link was used; a link sent to someone else connects their Azure DevOps access to the link's owner")
	}
	if h.newProv == nil {
		client, now := h.client, h.now
		h.newProv = func(ctx context.Context, s vault.OAuthSettings) (OAuthProvider, error) {
			return entra.New(ctx, s.EntraConfig(client, now))
		}
	}
	if h.nonces == nil {
		h.nonces = NewMemoryNonces(h.now, 0)
	}
	if h.flows == nil {
		h.flows = NewMemoryFlows(h.now, 0)
	}
	if h.linkTTL <= 0 {
		h.linkTTL = DefaultLinkTTL
	}
	if h.flowTTL <= 0 {
		h.flowTTL = DefaultFlowTTL
	}
	return h, nil
}

// Register mounts the pages on mux.
func (h *Handler) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /connect", h.serveConnect)
	mux.HandleFunc("POST /connect", h.serveConnectStart)
	mux.HandleFunc("GET /oauth/callback", h.serveCallback)
	mux.HandleFunc("GET /pat", h.servePATForm)
	mux.HandleFunc("POST /pat", h.servePATSubmit)
}

// ConnectURL implements vault.Linker: a signed link, valid for LinkTTL and
// once, bound to the environment's owner, host and org. It leads to the
// PAT page when the request asks for a PAT or the host has no OAuth.
func (h *Handler) ConnectURL(_ context.Context, r vault.LinkRequest) (string, error) {
	host := vault.NormalizeHost(r.Host)
	if r.Owner == "" || host == "" {
		return "", errors.New("connect: a link needs an owner and a host")
	}
	signed, err := h.signer.Sign(Claims{
		Owner: r.Owner, Env: r.EnvID, Host: host, Org: strings.ToLower(strings.TrimSpace(r.Org)),
		Exp: h.now().Add(h.linkTTL).Unix(), Nonce: randomString(18), Reconnect: r.Reconnect, Waiting: r.Waiting,
	})
	if err != nil {
		return "", err
	}
	path := "/connect"
	if r.Kind == store.PAT || h.oauth[host].ClientID == "" {
		path = "/pat"
	}
	return linkURL(h.public.String(), path, signed), nil
}

// openLink verifies the link of r and, when use is set, spends its nonce.
// On failure it has written the error page and returns false.
func (h *Handler) openLink(w http.ResponseWriter, r *http.Request, use bool) (Claims, bool) {
	c, err := h.signer.Verify(r.URL.Query().Get("link"), h.now())
	if err == nil && h.oauth[c.Host].ClientID == "" && !h.pat[c.Host] {
		err = ErrLinkInvalid // a host this runner no longer serves
	}
	if err == nil && use {
		err = h.nonces.Use(r.Context(), c.Nonce, c.Expires())
	}
	if err != nil {
		h.log.Info("connect link refused", "path", r.URL.Path, "owner", c.Owner, "host", c.Host, "reason", err.Error())
		h.linkProblem(w, err)
		return Claims{}, false
	}
	return c, true
}

// linkProblem renders the page for a link that cannot be used.
func (h *Handler) linkProblem(w http.ResponseWriter, err error) {
	again := h.againText()
	switch {
	case errors.Is(err, ErrLinkExpired):
		h.renderProblem(w, problem{status: http.StatusGone, title: "This link has expired", msg: "Connect links are valid for a short time only.", who: "you", fix: again, code: "link_expired"})
	case errors.Is(err, ErrLinkUsed):
		h.renderProblem(w, problem{status: http.StatusGone, title: "This link was already used", msg: "Each connect link works once.", who: "you", fix: again, code: "link_used"})
	case errors.Is(err, errStore):
		h.log.Error("connect state store failed", "err", err)
		h.renderProblem(w, problem{status: http.StatusServiceUnavailable, title: "The vault cannot reach its store", msg: "Connecting needs the vault's database, which did not answer.", who: "administrator", fix: "Check the vault's log and store; then " + strings.ToLower(again[:1]) + again[1:], code: "store_error"})
	case errors.Is(err, ErrBusy):
		h.renderProblem(w, problem{status: http.StatusServiceUnavailable, title: "Too many connections in progress", msg: err.Error(), who: "you", fix: "Try again in a few minutes.", code: "busy"})
	default:
		h.renderProblem(w, problem{status: http.StatusBadRequest, title: "This link is not valid", msg: "The link is incomplete, was changed, or was made by another runner.", who: "you", fix: "Copy the whole link from your environment's git output, or " + strings.ToLower(again[:1]) + again[1:], code: "link_invalid"})
	}
}

// provider returns the (discovered) OAuth provider of host.
func (h *Handler) provider(ctx context.Context, host string) (OAuthProvider, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if p, ok := h.provs[host]; ok {
		return p, nil
	}
	s, ok := h.oauth[host]
	if !ok {
		return nil, fmt.Errorf("connect: OAuth is not enabled for %s", host)
	}
	p, err := h.newProv(ctx, s)
	if err != nil {
		return nil, err
	}
	h.provs[host] = p
	return p, nil
}

// path returns p under the public URL's path: public_url may carry a
// prefix that an ingress strips before the vault sees the request.
func (h *Handler) path(p string) string { return strings.TrimRight(h.public.Path, "/") + p }

// againText tells the user how to get a fresh link.
func (h *Handler) againText() string {
	return fmt.Sprintf("Run the git command again in your environment: it prints a fresh link. Open it within %s.", minutes(h.linkTTL))
}

func minutes(d time.Duration) string {
	if m := int(d.Round(time.Minute) / time.Minute); m != 1 {
		return fmt.Sprintf("%d minutes", m)
	}
	return "1 minute"
}

// secureCookies reports whether cookies get the Secure attribute: when the
// public URL is https.
func (h *Handler) secureCookies() bool { return h.public.Scheme == "https" }
