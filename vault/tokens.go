package vault

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/azdo-sidecar/azdo-sidecar/azdo"
	"github.com/azdo-sidecar/azdo-sidecar/sealbox"
	"github.com/azdo-sidecar/azdo-sidecar/secret"
	"github.com/azdo-sidecar/azdo-sidecar/token"
	"github.com/azdo-sidecar/azdo-sidecar/vault/store"
)

// DefaultMinValid is the validity a token must have left when the request
// does not say (min_valid_seconds 0).
const DefaultMinValid = 5 * time.Minute

// errMisconfigured is wrapped in the 503 answered when the runner's OAuth
// client is rejected by the identity provider.
var errMisconfigured = errors.New("the runner's OAuth client is misconfigured; an administrator must fix it (azdo-vault verify)")

// errSealedElsewhere means a stored credential cannot be opened with the
// runner's key (the key file was replaced).
var errSealedElsewhere = errors.New("vault: stored credential cannot be opened with this runner's key")

// Token returns a token for env's owner and key that is valid for at least
// minValid (or as long as a freshly refreshed token is, if less). Errors are
// token.ErrUnavailable (as *token.RetryAfterError), *token.ConnectError
// (with its ConnectURL), ErrHostNotConfigured, or internal failures. None
// contains a secret.
func (v *Vault) Token(ctx context.Context, env store.Environment, key token.Key, minValid time.Duration) (token.Token, error) {
	key = v.canonicalKey(token.Key{Host: NormalizeHost(key.Host), Org: normalizeOrg(key.Org)})
	p, ok := v.providerMap()[key.Host]
	if !ok {
		return token.Token{}, fmt.Errorf("%w: %s", ErrHostNotConfigured, key.Host)
	}
	if minValid <= 0 {
		minValid = DefaultMinValid
	}
	creds, err := v.st.Credentials(ctx, env.Owner, key.Host)
	if err != nil {
		return token.Token{}, err
	}
	now := v.now()
	var oauthOK, oauthBad, patOK, patBad *store.Credential
	for _, c := range preferExactOrg(creds, key.Org) {
		if !v.binding.credentialOK(c) {
			// Copied from another row, or written without the runner key:
			// never opened, never served. The user connects again.
			v.log.Error("stored credential is not bound to its row; ignoring it", "credential_id", c.ID, "owner", c.Owner, "host", c.Host, "org", c.Org, "kind", string(c.Kind))
			continue
		}
		switch {
		case c.Kind == store.OAuth && p.OAuth != nil:
			if c.Status == store.StatusOK {
				oauthOK = first(oauthOK, c)
			} else {
				oauthBad = first(oauthBad, c)
			}
		case c.Kind == store.PAT && p.PAT:
			if c.Status == store.StatusOK && (c.ExpiresAt.IsZero() || now.Before(c.ExpiresAt)) {
				patOK = first(patOK, c)
			} else {
				patBad = first(patBad, c)
			}
		}
	}
	var ce *token.ConnectError
	switch {
	case oauthOK != nil:
		tok, err := v.oauthToken(ctx, p, *oauthOK, minValid)
		if errors.As(err, &ce) && patOK != nil {
			// The grant just turned out revoked; a PAT still serves.
			return v.patNotice(ctx, env, key, *patOK, now)
		}
		if errors.As(err, &ce) {
			return token.Token{}, v.connectError(ctx, env, key, store.OAuth, ce.Reconnect, ce.Reason)
		}
		return tok, err
	case patOK != nil:
		return v.patNotice(ctx, env, key, *patOK, now)
	case oauthBad != nil:
		return token.Token{}, v.connectError(ctx, env, key, store.OAuth, true, oauthBad.Reason)
	case patBad != nil:
		reason := patBad.Reason
		if reason == "" {
			reason = "PAT expired"
		}
		return token.Token{}, v.connectError(ctx, env, key, v.connectKind(p), true, reason)
	default:
		return token.Token{}, v.connectError(ctx, env, key, v.connectKind(p), false, "")
	}
}

// connectKind is the flow a connect link starts for p: OAuth when enabled.
func (v *Vault) connectKind(p Provider) store.Kind {
	if p.OAuth != nil {
		return store.OAuth
	}
	return store.PAT
}

func (v *Vault) connectError(ctx context.Context, env store.Environment, key token.Key, kind store.Kind, reconnect bool, reason string) error {
	return v.connectLinks(ctx, env, key, kind, reconnect, reason, false)
}

// connectLinks is connectError with links that say whether an environment
// waits for them (waiting).
func (v *Vault) connectLinks(ctx context.Context, env store.Environment, key token.Key, kind store.Kind, reconnect bool, reason string, waiting bool) error {
	links := *v.links.Load()
	req := LinkRequest{Owner: env.Owner, EnvID: env.ID, Host: key.Host, Org: key.Org, Kind: kind, Reconnect: reconnect, Waiting: waiting}
	u, err := links.ConnectURL(ctx, req)
	if err != nil {
		return fmt.Errorf("vault: connect link: %w", err)
	}
	ce := &token.ConnectError{Key: key, Reconnect: reconnect, Reason: reason, ConnectURL: u}
	if p, ok := v.providerMap()[key.Host]; ok && kind == store.OAuth && p.PAT {
		// Both ways in are enabled: offer the PAT page too, with a link
		// of its own (each is single-use).
		req.Kind = store.PAT
		if ce.PATURL, err = links.ConnectURL(ctx, req); err != nil {
			return fmt.Errorf("vault: connect link: %w", err)
		}
	}
	return ce
}

// preferExactOrg returns the credentials that serve org: those for exactly
// org first, then those for all orgs.
func preferExactOrg(creds []store.Credential, org string) []store.Credential {
	var exact, all []store.Credential
	for _, c := range creds {
		switch {
		case org != "" && c.Org == org:
			exact = append(exact, c)
		case c.Org == store.AllOrgs:
			all = append(all, c)
		}
	}
	return append(exact, all...)
}

func first(have *store.Credential, c store.Credential) *store.Credential {
	if have != nil {
		return have
	}
	return &c
}

// PATWarnWithin is how long before its expiry a stored PAT comes with a
// notice to replace it.
const PATWarnWithin = 7 * 24 * time.Hour

// patNotice is patToken with, from PATWarnWithin before the PAT expires,
// a notice naming the date and a link to the PAT page.
func (v *Vault) patNotice(ctx context.Context, env store.Environment, key token.Key, c store.Credential, now time.Time) (token.Token, error) {
	tok, err := v.patToken(c, now)
	if err != nil || c.ExpiresAt.IsZero() || c.ExpiresAt.Sub(now) >= PATWarnWithin {
		return tok, err
	}
	links := *v.links.Load()
	u, lerr := links.ConnectURL(ctx, LinkRequest{Owner: env.Owner, EnvID: env.ID, Host: key.Host, Org: key.Org, Kind: store.PAT})
	tok.Notice = fmt.Sprintf("your personal access token for %s expires on %s; create a new one and paste it at %s", key, c.ExpiresAt.UTC().Format(time.DateOnly), u)
	if lerr != nil {
		tok.Notice = fmt.Sprintf("your personal access token for %s expires on %s; create a new one and connect again", key, c.ExpiresAt.UTC().Format(time.DateOnly))
	}
	return tok, nil
}

func (v *Vault) patToken(c store.Credential, now time.Time) (token.Token, error) {
	b, err := v.keys.Open(c.Sealed)
	if err != nil {
		return token.Token{}, fmt.Errorf("%w (credential %d)", errSealedElsewhere, c.ID)
	}
	exp := c.ExpiresAt
	if exp.IsZero() {
		exp = now.Add(v.patHorizon)
	}
	return token.Token{Kind: token.Basic, Username: token.DefaultUsername, Secret: secret.New(string(b)), ExpiresAt: exp}, nil
}

// oauthToken answers from the cache when it can, else joins (or starts)
// the one refresh in flight for the credential.
func (v *Vault) oauthToken(ctx context.Context, p Provider, c store.Credential, minValid time.Duration) (token.Token, error) {
	if e, ok := v.cache.get(c.ID, c.Version); ok && e.usable(v.now(), minValid) {
		v.m.cacheHits.Inc()
		return e.tok, nil
	}
	return v.do(ctx, c.ID, func(ctx context.Context) (token.Token, error) {
		return v.refresh(ctx, p, c.ID, minValid)
	})
}

// refresh re-reads the credential, refreshes it and saves the rotated
// refresh token before returning the access token. It runs once per
// credential at a time (see do).
func (v *Vault) refresh(ctx context.Context, p Provider, id int64, minValid time.Duration) (token.Token, error) {
	// Each round re-reads the credential; a round repeats only when
	// another request or replica changed it meanwhile.
	for range 3 {
		c, err := v.st.Credential(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			v.cache.drop(id) // deleted: its access token has no use any more
			return token.Token{}, &token.ConnectError{}
		}
		if err != nil {
			return token.Token{}, err
		}
		if !v.binding.credentialOK(c) {
			v.log.Error("stored credential is not bound to its row; ignoring it", "credential_id", c.ID, "owner", c.Owner, "host", c.Host, "org", c.Org, "kind", string(c.Kind))
			v.cache.drop(id)
			return token.Token{}, &token.ConnectError{}
		}
		if c.Status != store.StatusOK {
			return token.Token{}, &token.ConnectError{Reconnect: true, Reason: c.Reason}
		}
		if e, ok := v.cache.get(c.ID, c.Version); ok && e.usable(v.now(), minValid) {
			return e.tok, nil
		}
		rt, err := v.keys.Open(c.Sealed)
		if err != nil {
			return token.Token{}, fmt.Errorf("%w (credential %d)", errSealedElsewhere, c.ID)
		}
		g, rerr := v.refreshWithRetry(ctx, p, c, secret.New(string(rt)))
		if rerr == nil {
			return v.saveGrant(ctx, p, c, g)
		}
		re := classify(rerr)
		v.m.refreshes.WithLabelValues(p.Host, re.Class.String()).Inc()
		switch re.Class {
		case Permanent:
			// Another replica may have rotated the grant while ours was in
			// flight: then the failure says nothing about the new one.
			cur, err := v.st.Credential(ctx, id)
			if err != nil {
				return token.Token{}, err
			}
			if cur.Version != c.Version {
				continue
			}
			c.Status, c.Reason = store.StatusReconnectRequired, re.Reason
			if _, err := v.st.UpdateCredential(ctx, c); errors.Is(err, store.ErrConflict) {
				continue
			} else if err != nil {
				return token.Token{}, err
			}
			v.cache.drop(id)
			v.log.Warn("grant needs reconnect", "credential_id", id, "owner", c.Owner, "host", c.Host, "reason", re.Reason)
			return token.Token{}, &token.ConnectError{Reconnect: true, Reason: re.Reason}
		case Misconfigured:
			v.log.Error("identity provider rejects the runner's OAuth client", "host", p.Host, "reason", re.Reason, "err", rerr)
			return token.Token{}, &token.RetryAfterError{After: max(v.retryAfter, time.Minute), Err: fmt.Errorf("%w: %w", token.ErrUnavailable, errMisconfigured)}
		default:
			return token.Token{}, &token.RetryAfterError{After: max(v.retryAfter, re.RetryAfter), Err: token.ErrUnavailable}
		}
	}
	return token.Token{}, &token.RetryAfterError{After: v.retryAfter, Err: fmt.Errorf("%w: the credential kept changing during refresh", token.ErrUnavailable)}
}

// refreshWithRetry calls the provider, retrying transient failures with
// bounded exponential backoff and jitter; other failures return at once.
// Each call is bounded by Backoff.AttemptTimeout (doubled per retry), so a
// call that hangs is retried within MaxWait.
func (v *Vault) refreshWithRetry(ctx context.Context, p Provider, c store.Credential, rt secret.String) (Grant, error) {
	for attempt := 0; ; attempt++ {
		v.m.refreshAttempts.WithLabelValues(p.Host).Inc()
		actx, cancel := context.WithTimeout(ctx, v.backoff.AttemptTimeout<<min(attempt, 8))
		g, err := p.OAuth.Refresh(actx, rt)
		cancel()
		if err == nil && g.AccessToken.IsZero() {
			err = &RefreshError{Class: Transient, Reason: "empty_access_token", Err: errors.New("identity provider returned no access token")}
		}
		if err == nil {
			return g, nil
		}
		re := classify(err)
		v.m.refreshFailures.WithLabelValues(p.Host, reasonLabel(re)).Inc()
		v.log.Warn("refresh failed", "credential_id", c.ID, "host", p.Host, "class", re.Class.String(), "reason", re.Reason, "attempt", attempt+1, "err", err)
		if re.Class != Transient || attempt+1 >= v.backoff.Attempts || ctx.Err() != nil {
			return Grant{}, err
		}
		d := min(v.backoff.Base<<attempt, v.backoff.Max)
		d = d/2 + rand.N(d/2+1) // jitter, so replicas do not retry in step
		if re.RetryAfter > v.backoff.Max {
			return Grant{}, err // the provider asks for longer than we wait
		}
		d = max(d, re.RetryAfter)
		if serr := v.sleep(ctx, d); serr != nil {
			return Grant{}, err
		}
	}
}

// saveGrant persists the rotated refresh token (compare-and-swap) and only
// then caches and returns the access token.
func (v *Vault) saveGrant(ctx context.Context, p Provider, c store.Credential, g Grant) (token.Token, error) {
	now := v.now()
	exp := g.ExpiresAt
	if exp.IsZero() {
		exp = now.Add(10 * time.Minute) // never assume an hour
	}
	tok := token.Token{Kind: token.Bearer, Username: token.DefaultUsername, Secret: g.AccessToken, ExpiresAt: exp}
	if !g.RefreshToken.IsZero() {
		sealed, err := sealbox.Seal(v.keys.Public, []byte(g.RefreshToken.Reveal()))
		if err != nil {
			return token.Token{}, err
		}
		c.Sealed = sealed
		c.MAC = v.binding.CredentialMAC(c)
	}
	c.Status, c.Reason = store.StatusOK, ""
	saved, err := v.st.UpdateCredential(ctx, c)
	if errors.Is(err, store.ErrConflict) {
		saved, err = v.resolveConflict(ctx, c)
		if err == nil && saved.ID == 0 {
			// Another replica rotated (or the user reconnected) meanwhile;
			// its row wins. Our access token is still good for the user:
			// cache it against the winning version, or every request on
			// this replica would refresh again until it had one of its own.
			if cur, rerr := v.st.Credential(ctx, c.ID); rerr == nil && cur.Status == store.StatusOK {
				v.cache.put(cur.ID, cacheEntry{version: cur.Version, tok: tok, obtained: now})
			}
			v.m.refreshes.WithLabelValues(p.Host, "ok").Inc()
			v.log.Info("credential changed during refresh; kept the stored one", "credential_id", c.ID, "host", p.Host)
			return tok, nil
		}
	}
	if errors.Is(err, store.ErrNotFound) {
		// An administrator deleted the credential (azdo-vault credential
		// delete) while its refresh was at the provider: the access token
		// obtained from it is not handed out, as for any deleted one.
		v.log.Info("credential deleted during refresh; its access token is discarded", "credential_id", c.ID, "host", p.Host)
		v.cache.drop(c.ID)
		return token.Token{}, &token.ConnectError{}
	}
	if err != nil {
		// Without the rotated refresh token saved, the grant could be lost:
		// do not hand out the access token as if all were well.
		v.m.refreshes.WithLabelValues(p.Host, "store_error").Inc()
		return token.Token{}, fmt.Errorf("vault: save rotated refresh token: %w", err)
	}
	v.m.refreshes.WithLabelValues(p.Host, "ok").Inc()
	v.cache.put(saved.ID, cacheEntry{version: saved.Version, tok: tok, obtained: now})
	v.log.Info("refreshed", "credential_id", c.ID, "owner", c.Owner, "host", p.Host, "expires_at", exp.UTC().Format(time.RFC3339))
	return tok, nil
}

// resolveConflict decides what to do when saving a rotated grant lost its
// compare-and-swap. If the row was meanwhile marked reconnect_required —
// another replica presented the same refresh token after we did, and a
// provider that enforces single use refused it — the grant we just
// obtained proves the credential works, so ours is written over the mark.
// Any other change (a rotation that succeeded elsewhere, a reconnect) wins:
// then it returns a zero Credential and no error.
func (v *Vault) resolveConflict(ctx context.Context, ours store.Credential) (store.Credential, error) {
	cur, err := v.st.Credential(ctx, ours.ID)
	if err != nil {
		return store.Credential{}, err
	}
	if cur.Status == store.StatusOK {
		return store.Credential{}, nil
	}
	cur.Sealed, cur.Status, cur.Reason = ours.Sealed, store.StatusOK, ""
	cur.MAC = v.binding.CredentialMAC(cur)
	saved, err := v.st.UpdateCredential(ctx, cur)
	if errors.Is(err, store.ErrConflict) {
		return store.Credential{}, nil
	}
	return saved, err
}

// reasonLabel makes a bounded metric label of a refresh failure: the class
// and the OAuth error code, which is [a-z_] in practice.
func reasonLabel(re *RefreshError) string {
	code, _, _ := strings.Cut(re.Reason, " ")
	clean := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r == '_' {
			return r
		}
		return -1
	}, strings.ToLower(code))
	if len(clean) > 40 {
		clean = clean[:40]
	}
	if clean == "" {
		return re.Class.String()
	}
	return re.Class.String() + ":" + clean
}

// flight is one refresh in progress, shared by every request that needs it.
type flight struct {
	done chan struct{}
	tok  token.Token
	err  error
}

// do runs fn once per key at a time: callers for a key that is in flight
// wait for the same result. fn runs on a context of its own, derived from
// the vault's (cancelled by Close) with RefreshTimeout, so one caller giving
// up neither cancels the refresh for the others nor loses a rotated refresh
// token; each caller still returns as soon as its own ctx is done, and
// after MaxWait with token.ErrUnavailable (503 + Retry-After), so a slow
// identity provider never holds a request longer than its client waits.
func (v *Vault) do(ctx context.Context, key int64, fn func(context.Context) (token.Token, error)) (token.Token, error) {
	v.mu.Lock()
	f, ok := v.flight[key]
	if !ok {
		if v.closed {
			v.mu.Unlock()
			return token.Token{}, &token.RetryAfterError{After: v.retryAfter, Err: fmt.Errorf("%w: vault shutting down", token.ErrUnavailable)}
		}
		f = &flight{done: make(chan struct{})}
		v.flight[key] = f
		v.wg.Add(1)
		go func() {
			defer v.wg.Done()
			fctx, cancel := context.WithTimeout(v.base, v.refreshTimeout)
			defer cancel()
			f.tok, f.err = fn(fctx)
			v.mu.Lock()
			delete(v.flight, key)
			v.mu.Unlock()
			close(f.done)
		}()
	}
	v.mu.Unlock()
	wait := time.NewTimer(v.maxWait)
	defer wait.Stop()
	select {
	case <-f.done:
		return f.tok, f.err
	case <-ctx.Done():
		return token.Token{}, ctx.Err()
	case <-wait.C:
		return token.Token{}, &token.RetryAfterError{After: v.retryAfter, Err: fmt.Errorf("%w: the identity provider is slow to answer; the refresh goes on", token.ErrUnavailable)}
	}
}

// cache keeps access tokens in memory, by credential ID. Token reads the
// user's credential rows from the store on every request and looks up only
// those that are usable (status ok, bound to their row), so a deleted,
// revoked or tampered credential's entry is never served again; a refresh
// that finds its credential deleted drops the entry (IDs are never reused).
//
// An entry outlives later versions of its row on purpose. Another replica's
// rotation bumps the version, but the access token this replica obtained
// stays valid until it expires; retiring it would make every replica
// refresh again on its next request after any other replica's refresh, and
// requests alternating between replicas would refresh (and rotate) on every
// request. A reconnect keeps the row and its ID, and since Connect and PAT
// accept only the owner's own identity, the grant it replaces is the same
// user's: its access token may be served until it needs refreshing.
type cache struct {
	mu sync.Mutex
	m  map[int64]cacheEntry
}

type cacheEntry struct {
	version  int64
	tok      token.Token
	obtained time.Time
}

// usable reports whether e can be served to a request asking for minValid.
// min_valid_seconds is honoured whenever a fresh token could meet it; a
// token that never can (minValid at least its whole lifetime) is served for
// the first half of its life, instead of being refreshed on every request.
// A token obtained in the last tenth of its lifetime is served too: a
// refresh now would gain less than that, and a minValid just under the
// lifetime would otherwise refresh (and rotate) on nearly every request.
func (e cacheEntry) usable(now time.Time, minValid time.Duration) bool {
	life := e.tok.ExpiresAt.Sub(e.obtained)
	need := minValid
	if need >= life {
		need = life / 2
	}
	if now.Sub(e.obtained) < life/10 {
		return e.tok.Valid(now, 0)
	}
	return e.tok.Valid(now, need)
}

func (c *cache) get(id, version int64) (cacheEntry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[id]
	if !ok || e.version > version {
		// An entry newer than the row just read means that read raced
		// with this replica's own save: read again rather than serve.
		return cacheEntry{}, false
	}
	return e, true
}

func (c *cache) put(id int64, e cacheEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[int64]cacheEntry{}
	}
	c.m[id] = e
}

func (c *cache) drop(id int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, id)
}

// canonicalKey maps a legacy {org}.visualstudio.com host onto dev.azure.com
// when the administrator configured only dev.azure.com: both names are the
// same Azure DevOps Services organization, with the same Entra ID resource
// and the same PATs. The org comes from the subdomain when the request had
// none. A provider configured for the legacy host itself wins.
func (v *Vault) canonicalKey(key token.Key) token.Key {
	if _, ok := v.providerMap()[key.Host]; ok || key.Host == devAzureCom || !azdo.IsServicesHost(key.Host) {
		return key
	}
	if _, ok := v.providerMap()[devAzureCom]; !ok {
		return key
	}
	if key.Org == "" {
		key.Org = normalizeOrg(azdo.OrgFor(key.Host, "", ""))
	}
	key.Host = devAzureCom
	return key
}

const devAzureCom = "dev.azure.com"
