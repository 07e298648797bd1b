package vault

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"sort"
	"strings"

	"github.com/azdo-sidecar/azdo-sidecar/vault/store"
)

// Methods is what the configuration enables for one host: the vault keeps
// only the credentials a method still enabled can use.
type Methods struct {
	// OAuthApp identifies the OAuth application ("client_id|tenant", see
	// OAuthApp); "" when OAuth is off for the host. A refresh token of
	// another application is useless, so a changed one counts as OAuth
	// removed.
	OAuthApp string
	PAT      bool
}

// OAuthApp is the fingerprint of an OAuth application: its client ID and
// the tenant its issuer URL names (lower case), never a secret.
func OAuthApp(clientID, issuerURL string) string {
	tenant := issuerURL
	if u, err := url.Parse(issuerURL); err == nil {
		tenant, _, _ = strings.Cut(strings.TrimPrefix(u.Path, "/"), "/")
	}
	return strings.ToLower(strings.TrimSpace(clientID)) + "|" + strings.ToLower(tenant)
}

// Doomed is a stored credential that the configuration no longer allows,
// and why.
type Doomed struct {
	Credential store.Credential
	Reason     string
}

// PrunePlan returns the stored credentials that methods (by host) no
// longer allow: those of a removed provider, of a disabled method, and the
// OAuth grants of a provider whose application changed since the last
// Prune (store.ProviderFingerprints). Nothing is deleted.
func PrunePlan(ctx context.Context, st store.Store, methods map[string]Methods) ([]Doomed, error) {
	creds, err := st.ListCredentials(ctx, "", "")
	if err != nil {
		return nil, err
	}
	fps, err := st.ProviderFingerprints(ctx)
	if err != nil {
		return nil, err
	}
	var out []Doomed
	for _, c := range creds {
		m, ok := methods[c.Host]
		var why string
		switch {
		case !ok:
			why = "provider removed from the configuration"
		case c.Kind == store.OAuth && m.OAuthApp == "":
			why = "oauth removed from the provider"
		case c.Kind == store.OAuth && fps[c.Host] != "" && fps[c.Host] != m.OAuthApp:
			why = "the provider's OAuth application changed (client ID or tenant)"
		case c.Kind == store.PAT && !m.PAT:
			why = "pat disabled for the provider"
		}
		if why != "" {
			out = append(out, Doomed{Credential: c, Reason: why})
		}
	}
	return out, nil
}

// Prune deletes what PrunePlan finds, logging one INFO line per owner and
// host with the count, and a total; then it records the applications of
// methods for the next Prune. It returns how many it deleted.
func Prune(ctx context.Context, st store.Store, methods map[string]Methods, log *slog.Logger) (int, error) {
	doomed, err := PrunePlan(ctx, st, methods)
	if err != nil {
		return 0, fmt.Errorf("vault: prune credentials: %w", err)
	}
	type group struct{ owner, host, reason string }
	counts := map[group]int{}
	n := 0
	for _, d := range doomed {
		err := st.DeleteCredential(ctx, d.Credential.ID)
		if err != nil && err != store.ErrNotFound {
			return n, fmt.Errorf("vault: prune credential %d: %w", d.Credential.ID, err)
		}
		if err == nil {
			n++
			counts[group{d.Credential.Owner, d.Credential.Host, d.Reason}]++
		}
	}
	groups := make([]group, 0, len(counts))
	for g := range counts {
		groups = append(groups, g)
	}
	sort.Slice(groups, func(i, j int) bool {
		a, b := groups[i], groups[j]
		return a.owner+"\x00"+a.host+"\x00"+a.reason < b.owner+"\x00"+b.host+"\x00"+b.reason
	})
	for _, g := range groups {
		log.Info("credentials deleted", "owner", g.owner, "host", g.host, "count", counts[g], "reason", g.reason)
	}
	if n > 0 {
		log.Info("credentials deleted for removed providers or methods", "count", n)
	}
	fps := map[string]string{}
	for h, m := range methods {
		fps[h] = m.OAuthApp
	}
	if err := st.SetProviderFingerprints(ctx, fps); err != nil {
		return n, fmt.Errorf("vault: prune credentials: %w", err)
	}
	return n, nil
}
