package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/azdo-sidecar/azdo-sidecar/config"
	"github.com/azdo-sidecar/azdo-sidecar/sealbox"
	"github.com/azdo-sidecar/azdo-sidecar/vault"
	"github.com/azdo-sidecar/azdo-sidecar/vault/entra"
)

// settings is one generation of the vault's provider settings: the config
// file as read, each OAuth provider verified (or disabled with its
// reason), and what the store may keep. serve builds one at start and one
// per reload, and switches to it whole.
type settings struct {
	file *config.VaultFile
	// oauth holds every OAuth provider whose client secret opened (the
	// disabled ones too, so their Connect links show the reason).
	oauth    map[string]vault.OAuthSettings
	sealed   map[string]string // host → client_secret_sealed, to see a change
	disabled map[string]string // host → why its OAuth is disabled
	// providers are the vault's; a disabled OAuth provider has a
	// vault.DisabledRefresher.
	providers []vault.Provider
	states    []vault.ProviderState
	methods   map[string]vault.Methods
}

// loadSettings builds the settings of vf. Each OAuth provider is verified
// as `azdo-vault verify` does (discovery, token endpoint, client ID and
// secret), unless prev has it unchanged and working. A provider that fails
// is disabled with its reason; the others serve. An identity provider that
// cannot be reached (network, 5xx) does not disable a provider: its
// refreshes retry anyway, and the state says it is unverified.
func loadSettings(ctx context.Context, vf *config.VaultFile, kp sealbox.KeyPair, client *http.Client, prev *settings, log *slog.Logger) *settings {
	s := &settings{file: vf, oauth: map[string]vault.OAuthSettings{}, sealed: map[string]string{},
		disabled: map[string]string{}, methods: map[string]vault.Methods{}}
	type result struct {
		p     vault.Provider
		state vault.ProviderState
	}
	results := make([]result, len(vf.Providers))
	var wg sync.WaitGroup
	var mu sync.Mutex
	for i, pc := range vf.Providers {
		pat := pc.PAT != nil && pc.PAT.Enabled
		m := vault.Methods{PAT: pat}
		if pc.OAuth == nil {
			results[i] = result{vault.Provider{Host: pc.Host, PAT: pat}, vault.ProviderState{Host: pc.Host, OAuth: vault.OAuthOff, PAT: pat}}
			s.methods[pc.Host] = m
			continue
		}
		m.OAuthApp = vault.OAuthApp(pc.OAuth.ClientID, pc.OAuth.IssuerURL)
		s.methods[pc.Host] = m
		s.sealed[pc.Host] = pc.OAuth.ClientSecretSealed
		o := vault.OAuthSettings{Host: pc.Host, IssuerURL: pc.OAuth.IssuerURL, ClientID: pc.OAuth.ClientID, RedirectURL: vf.CallbackURL()}
		sec, err := vault.OpenClientSecret(kp, pc.Host, pc.OAuth.ClientSecretSealed)
		if err != nil {
			reason := fmt.Sprintf("providers[%d].oauth.client_secret_sealed: %v", i, err)
			s.oauth[pc.Host], s.disabled[pc.Host] = o, reason
			results[i] = result{vault.Provider{Host: pc.Host, PAT: pat, OAuth: vault.DisabledRefresher{Reason: reason}},
				vault.ProviderState{Host: pc.Host, OAuth: vault.OAuthDisabled, PAT: pat, Reason: reason}}
			continue
		}
		o.ClientSecret = sec
		s.oauth[pc.Host] = o
		if old, ok := prev.reusable(pc.Host, o, pc.OAuth.ClientSecretSealed); ok {
			results[i] = result{vault.Provider{Host: pc.Host, PAT: pat, OAuth: old.p}, vault.ProviderState{Host: pc.Host, OAuth: vault.OAuthOK, PAT: pat, Reason: old.reason}}
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := &vault.EntraRefresher{Config: o.EntraConfig(client, nil)}
			p := vault.Provider{Host: pc.Host, PAT: pat, OAuth: r}
			st := vault.ProviderState{Host: pc.Host, OAuth: vault.OAuthOK, PAT: pat}
			err := verifyOne(ctx, o, "", client)
			if err == nil || errors.Is(err, entra.ErrCredentialsUnchecked) {
				// Discover once now, as the refreshes and the Connect
				// pages share it, rather than on the first request.
				_, _ = r.Provider(ctx)
			}
			switch {
			case err == nil:
			case errors.Is(err, entra.ErrCredentialsUnchecked):
				st.Reason = "issuer discovered; the client secret cannot be checked for a multi-tenant issuer"
			case entra.ClassOf(err) == entra.Transient:
				st.Reason = "not verified: the identity provider could not be reached (" + oneLine(err) + ")"
			default:
				st.OAuth, st.Reason = vault.OAuthDisabled, oneLine(err)
				p.OAuth = vault.DisabledRefresher{Reason: st.Reason}
				mu.Lock()
				s.disabled[pc.Host] = st.Reason
				mu.Unlock()
			}
			results[i] = result{p, st}
		}()
	}
	wg.Wait()
	for _, r := range results {
		s.providers = append(s.providers, r.p)
		s.states = append(s.states, r.state)
		switch {
		case r.state.OAuth == vault.OAuthDisabled:
			log.Error("provider disabled: its OAuth verification failed; fix the config and reload (SIGHUP or azdo-vault reload)", "host", r.state.Host, "reason", r.state.Reason)
		case r.state.OAuth == vault.OAuthOK && r.state.Reason != "":
			log.Warn("provider enabled without full verification", "host", r.state.Host, "reason", r.state.Reason)
		case r.state.OAuth == vault.OAuthOK:
			log.Info("provider verified", "host", r.state.Host, "pat", r.state.PAT)
		default:
			log.Info("provider serves PATs only", "host", r.state.Host)
		}
	}
	return s
}

// reusable returns prev's refresher for host when its settings did not
// change and it was not disabled, so a reload re-verifies only what
// changed.
func (prev *settings) reusable(host string, o vault.OAuthSettings, sealed string) (struct {
	p      vault.Refresher
	reason string
}, bool) {
	var out struct {
		p      vault.Refresher
		reason string
	}
	if prev == nil || prev.sealed[host] != sealed || prev.disabled[host] != "" {
		return out, false
	}
	po, ok := prev.oauth[host]
	if !ok || po.IssuerURL != o.IssuerURL || po.ClientID != o.ClientID || po.RedirectURL != o.RedirectURL {
		return out, false
	}
	for i, p := range prev.providers {
		if p.Host == host {
			out.p, out.reason = p.OAuth, prev.states[i].Reason
			return out, out.p != nil
		}
	}
	return out, false
}

// oneLine is err's message on one line (verifyOne puts its advice first).
func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}

// connectSwitch serves the Connect and PAT pages of the current settings;
// a reload swaps in the pages of the new ones.
type connectSwitch struct{ cur atomic.Pointer[http.ServeMux] }

// ServeHTTP implements http.Handler.
func (c *connectSwitch) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.cur.Load().ServeHTTP(w, r)
}
