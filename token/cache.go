package token

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of CacheOptions.
const (
	// DefaultMargin is how long before its expiry a cached token is
	// refreshed: git operations that start with less than this left could
	// see the token expire in the middle of a pack transfer.
	DefaultMargin = 5 * time.Minute
	// DefaultFetchTimeout bounds one call to the source, whatever the
	// callers' contexts say.
	DefaultFetchTimeout = 20 * time.Second
	// DefaultRetryWindow bounds how long a shared fetch keeps retrying
	// transient failures (ErrTransient) while callers wait: as long as the
	// credential helper's own timeout, so that a caller without a deadline
	// of its own is not held longer than git would wait.
	DefaultRetryWindow = 30 * time.Second
	// DefaultNegativeTTL is how long an authoritative "no" from the source
	// (environment not authorized, no credential) is answered from memory,
	// so that a thousand git processes hitting it ask the source once.
	// "Connect required" is not remembered past its shared fetch: a user
	// who just connected in a browser runs git again at once (a script,
	// within milliseconds) and must not be told to connect a second time,
	// nor be shown a link that was already spent.
	DefaultNegativeTTL = 2 * time.Second
	// MaxRetryAfter caps how long a source's Retry-After keeps the cache
	// from asking again: git commands fail fast meanwhile, so the wait
	// must stay short even when the vault asks for more.
	MaxRetryAfter = 5 * time.Second
	// DefaultRetryBackoff is how long a transient failure is remembered
	// when the source gave no Retry-After of its own.
	DefaultRetryBackoff = time.Second
	// MaxCacheKeys bounds the keys a Cache remembers. The org of a key
	// comes from request paths, so without a bound every distinct path
	// prefix ever requested would stay in memory (and in status) for the
	// life of the sidecar. Past the bound, idle keys are dropped first,
	// then the least recently fetched: a dropped key is fetched again when
	// next asked for.
	MaxCacheKeys = 1024
	// DefaultStaleWait is how long a caller that holds a still-valid (but
	// inside the margin) token waits for the refresh before being served
	// the old token; the refresh carries on in the background.
	DefaultStaleWait = 2 * time.Second
)

// CacheOptions configure a Cache. The zero value uses the defaults.
type CacheOptions struct {
	// Margin: a token is refreshed once it has less than Margin left.
	Margin time.Duration
	// FetchTimeout bounds one call to the wrapped Source.
	FetchTimeout time.Duration
	// RetryWindow bounds a shared fetch, retries of transient failures
	// included (default DefaultRetryWindow).
	RetryWindow time.Duration
	// Backoff is the delay before retry n (1, 2, …) of a transient
	// failure; a Retry-After from the source (at most MaxRetryAfter) is
	// waited for when longer. Default DefaultBackoff.
	Backoff func(n int) time.Duration
	// NegativeTTL is how long authoritative failures are cached.
	NegativeTTL time.Duration
	// RetryBackoff is how long transient failures are cached when the
	// source gave no Retry-After; a Retry-After is honoured up to
	// MaxRetryAfter.
	RetryBackoff time.Duration
	// StaleWait: see DefaultStaleWait.
	StaleWait time.Duration
	// Now is the clock used for all expiry decisions (default time.Now).
	Now func() time.Time
	// OnFetch, when set, is called after every call to the wrapped Source
	// with its duration and error (for metrics). It must not block.
	OnFetch func(key Key, took time.Duration, err error)
}

// Cache is a Source that keeps tokens from another Source in memory, per
// Key, and refreshes them ahead of expiry.
//
// Concurrency contract: Cache is safe for concurrent use. For each Key at
// most one call to the wrapped Source is in flight; every caller waiting for
// it still honours its own context, and a cancelled caller never cancels
// the shared fetch, which runs under its own FetchTimeout and is owned by
// the Cache (Close stops it).
//
// Failure policy:
//   - a token with more than Margin left is served from memory;
//   - inside the margin, the cache refreshes; if the source is unavailable
//     (any error that is not one of the authoritative ones below), the old
//     token keeps being served until it really expires;
//   - authoritative answers — *ConnectError, *ForbiddenError,
//     ErrUnauthorized, ErrNoCredential — drop the cached token (the vault
//     knows the user disconnected, the environment's policy forbids the
//     org, or the environment was revoked); ErrUnauthorized and
//     ErrNoCredential are then cached for NegativeTTL, a *ConnectError or
//     *ForbiddenError only shared with the callers of its fetch (the next
//     call asks again, so a fresh connection or a policy update is seen at
//     once);
//   - failures marked ErrTransient (or a call that ran out of
//     FetchTimeout) are retried with Backoff by the shared fetch as long
//     as a caller still waits for it, within RetryWindow: each caller gets
//     the first success, or the last failure once its own context is done;
//     authoritative answers and other failures are never retried;
//   - failures without a usable token are cached for RetryBackoff (or the
//     source's Retry-After, at most MaxRetryAfter).
//
// Tokens live in memory only; nothing is ever written to disk.
type Cache struct {
	src  Source
	opts CacheOptions

	ctx    context.Context // parent of every shared fetch; Close cancels it
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	entries map[Key]*entry

	fetches, hits, staleHits, negativeHits, errs, retries atomic.Uint64
}

type entry struct {
	tok       Token
	fetchedAt time.Time
	refreshAt time.Time // zero: never (a token without expiry)

	err      error     // last failure, answered until errUntil
	errUntil time.Time // zero: no failure remembered

	call *call // the fetch in flight, if any
}

// call is one shared fetch; done is closed once tok/err are set.
type call struct {
	done chan struct{}
	tok  Token
	err  error

	// Guarded by Cache.mu: how many callers wait for this fetch, and the
	// failure of its latest attempt (what a caller whose context ends
	// while a retry is pending is told).
	waiters int
	lastErr error
}

// DefaultBackoff is CacheOptions.Backoff's default: 100ms doubled per
// retry, at most 2s, with up to 50% jitter so that sidecars that failed
// together do not retry in step.
func DefaultBackoff(n int) time.Duration {
	d := min(100*time.Millisecond<<min(n-1, 5), 2*time.Second)
	return d/2 + rand.N(d/2+1)
}

// NewCache returns a Cache in front of src. Call Close when done with it.
func NewCache(src Source, opts CacheOptions) *Cache {
	if opts.Margin <= 0 {
		opts.Margin = DefaultMargin
	}
	if opts.FetchTimeout <= 0 {
		opts.FetchTimeout = DefaultFetchTimeout
	}
	if opts.RetryWindow <= 0 {
		opts.RetryWindow = DefaultRetryWindow
	}
	if opts.Backoff == nil {
		opts.Backoff = DefaultBackoff
	}
	if opts.NegativeTTL <= 0 {
		opts.NegativeTTL = DefaultNegativeTTL
	}
	if opts.RetryBackoff <= 0 {
		opts.RetryBackoff = DefaultRetryBackoff
	}
	if opts.StaleWait <= 0 {
		opts.StaleWait = DefaultStaleWait
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Cache{src: src, opts: opts, ctx: ctx, cancel: cancel, entries: make(map[Key]*entry)}
}

// String describes c without any token. fmt does not call the redacting
// methods of secret.String held in unexported fields, so Cache formats
// itself.
func (c *Cache) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return fmt.Sprintf("token.Cache(%d keys, margin %s)", len(c.entries), c.opts.Margin)
}

// Format implements fmt.Formatter so that every verb, %+v and %#v
// included, prints String.
func (c *Cache) Format(f fmt.State, _ rune) { fmt.Fprint(f, c.String()) }

// Margin returns the refresh margin in use.
func (c *Cache) Margin() time.Duration { return c.opts.Margin }

// Close cancels the fetches in flight and waits for them to return.
// Token calls after Close fail with ErrUnavailable unless a cached token is
// still fresh.
func (c *Cache) Close() error {
	c.cancel()
	c.wg.Wait()
	return nil
}

// Token returns a token for key valid now, from memory when possible.
func (c *Cache) Token(ctx context.Context, key Key) (Token, error) {
	c.mu.Lock()
	now := c.opts.Now()
	e := c.entries[key]
	if e == nil {
		if len(c.entries) >= MaxCacheKeys {
			c.evict(now)
		}
		e = &entry{}
		c.entries[key] = e
	}
	usable := e.tok.Valid(now, 0)
	if usable && (e.refreshAt.IsZero() || now.Before(e.refreshAt)) {
		c.mu.Unlock()
		c.hits.Add(1)
		return e.tok, nil
	}
	if now.Before(e.errUntil) {
		tok, err := e.tok, e.err
		c.mu.Unlock()
		if usable {
			c.staleHits.Add(1)
			return tok, nil
		}
		c.negativeHits.Add(1)
		return Token{}, err
	}
	stale := e.tok
	cl := e.call
	if cl == nil {
		cl = c.start(key, e)
	}
	cl.waiters++
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		cl.waiters--
		c.mu.Unlock()
	}()

	var staleTimer <-chan time.Time
	if usable {
		t := time.NewTimer(c.opts.StaleWait)
		defer t.Stop()
		staleTimer = t.C
	}
	select {
	case <-cl.done:
		if cl.err != nil && usable && !authoritative(cl.err) {
			c.staleHits.Add(1)
			return stale, nil
		}
		return cl.tok, cl.err
	case <-staleTimer:
		c.staleHits.Add(1)
		return stale, nil
	case <-ctx.Done():
		c.mu.Lock()
		last := cl.lastErr
		c.mu.Unlock()
		if last != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
			// Out of time while a retry was pending: the failure that
			// kept this caller waiting says more than "deadline exceeded".
			return Token{}, last
		}
		return Token{}, fmt.Errorf("token: waiting for %s: %w", key, ctx.Err())
	}
}

// start begins a shared fetch for key; c.mu is held.
func (c *Cache) start(key Key, e *entry) *call {
	cl := &call{done: make(chan struct{})}
	e.call = cl
	c.wg.Add(1)
	go c.fetch(key, cl)
	return cl
}

// fetch runs one shared fetch. It is owned by the Cache: each call to the
// source is bounded by FetchTimeout, transient failures are retried while
// a caller waits (within RetryWindow), and Close cancels it, never a
// caller.
func (c *Cache) fetch(key Key, cl *call) {
	defer c.wg.Done()
	began := time.Now()
	var tok Token
	var err error
	for n := 1; ; n++ {
		tok, err = c.attempt(key)
		if err == nil || !errors.Is(err, ErrTransient) || authoritative(err) {
			break
		}
		delay := max(c.opts.Backoff(n), c.retryAfter(err))
		c.mu.Lock()
		cl.lastErr = err
		waiting := cl.waiters > 0
		c.mu.Unlock()
		if !waiting || time.Since(began)+delay >= c.opts.RetryWindow {
			break
		}
		c.retries.Add(1)
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-c.ctx.Done():
			t.Stop()
		}
		if c.ctx.Err() != nil {
			break
		}
	}

	c.mu.Lock()
	now := c.opts.Now()
	e := c.entries[key]
	if e == nil { // cannot happen: an entry with a fetch in flight is never evicted
		e = &entry{}
		c.entries[key] = e
	}
	e.call = nil
	switch {
	case err == nil:
		e.tok, e.fetchedAt, e.err, e.errUntil = tok, now, nil, time.Time{}
		e.refreshAt = c.refreshAt(now, tok)
	case authoritative(err):
		e.tok, e.refreshAt = Token{}, time.Time{}
		e.err, e.errUntil = err, now.Add(c.opts.NegativeTTL)
		var ce *ConnectError
		var fe *ForbiddenError
		if errors.As(err, &ce) || errors.As(err, &fe) {
			e.errUntil = time.Time{}
		}
	default:
		e.err, e.errUntil = err, now.Add(c.backoff(err))
	}
	cl.tok, cl.err = tok, err
	if err != nil {
		cl.tok = Token{}
	}
	close(cl.done)
	c.mu.Unlock()
}

// attempt makes one call to the source, bounded by FetchTimeout. A call
// cut short by FetchTimeout (not by Close) is transient.
func (c *Cache) attempt(key Key) (Token, error) {
	c.fetches.Add(1)
	ctx, cancel := context.WithTimeout(c.ctx, c.opts.FetchTimeout)
	began := time.Now()
	tok, err := c.src.Token(ctx, key)
	took := time.Since(began)
	timedOut := ctx.Err() != nil && c.ctx.Err() == nil
	cancel()
	if err == nil && tok.Secret.IsZero() {
		err = fmt.Errorf("token: source returned an empty token for %s: %w", key, ErrUnavailable)
	}
	if err != nil && (errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)) && !errors.Is(err, ErrUnavailable) {
		err = fmt.Errorf("token: fetch for %s: %w (%v)", key, ErrUnavailable, err)
	}
	if err != nil && timedOut && !errors.Is(err, ErrTransient) {
		err = Transient(err)
	}
	if err != nil {
		c.errs.Add(1)
	}
	if c.opts.OnFetch != nil {
		c.opts.OnFetch(key, took, err)
	}
	return tok, err
}

// retryAfter is the delay a *RetryAfterError in err asks for, at most
// MaxRetryAfter (0 without one).
func (c *Cache) retryAfter(err error) time.Duration {
	var ra *RetryAfterError
	if errors.As(err, &ra) && ra.After > 0 {
		return min(ra.After, MaxRetryAfter)
	}
	return 0
}

// evict makes room for one more key; c.mu is held. It drops every idle
// entry (no usable token, no remembered failure, no fetch in flight) and,
// if that freed nothing, the least recently fetched entry without a fetch
// in flight.
func (c *Cache) evict(now time.Time) {
	var oldest *Key
	var oldestAt time.Time
	freed := false
	for k, e := range c.entries {
		if e.call != nil {
			continue
		}
		if !e.tok.Valid(now, 0) && !now.Before(e.errUntil) {
			delete(c.entries, k)
			freed = true
			continue
		}
		if oldest == nil || e.fetchedAt.Before(oldestAt) {
			oldest, oldestAt = &k, e.fetchedAt
		}
	}
	if !freed && oldest != nil {
		delete(c.entries, *oldest)
	}
}

// refreshAt says when a token fetched at now should be refreshed. A token
// that arrives already inside the margin (a PAT about to expire, a vault
// that cannot refresh yet) is kept for at least RetryBackoff, so that the
// cache does not turn every request into a fetch.
func (c *Cache) refreshAt(now time.Time, tok Token) time.Time {
	if tok.ExpiresAt.IsZero() {
		return time.Time{}
	}
	at := tok.ExpiresAt.Add(-c.opts.Margin)
	if floor := now.Add(c.opts.RetryBackoff); at.Before(floor) {
		at = floor
	}
	return at
}

func (c *Cache) backoff(err error) time.Duration {
	var ra *RetryAfterError
	if errors.As(err, &ra) && ra.After > 0 {
		return min(ra.After, MaxRetryAfter)
	}
	return c.opts.RetryBackoff
}

// authoritative reports whether err is the source's considered answer
// rather than a failure to reach it.
func authoritative(err error) bool {
	var ce *ConnectError
	var fe *ForbiddenError
	return errors.As(err, &ce) || errors.As(err, &fe) || errors.Is(err, ErrUnauthorized) || errors.Is(err, ErrNoCredential)
}

// Invalidate drops the cached token for key if it is still rejected (the
// one Azure DevOps turned down: git's "erase", an upstream 401), so that the
// next Token call fetches a fresh one — once: a token already replaced by a
// newer one is left alone, so that many requests failing with the same old
// token cause a single refetch.
func (c *Cache) Invalidate(key Key, rejected Token) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.entries[key]
	if e == nil || e.tok.Secret.IsZero() || !e.tok.Secret.Equal(rejected.Secret) {
		return
	}
	e.tok, e.refreshAt = Token{}, time.Time{}
	e.err, e.errUntil = nil, time.Time{}
}

// withoutLink returns err's message, for a *ConnectError without its
// connect link: the link is signed and single-use, meant for the git
// command that asked (which gets it), not for status output.
func withoutLink(err error) string {
	var ce *ConnectError
	if errors.As(err, &ce) {
		c := *ce
		c.ConnectURL = ""
		return c.Error()
	}
	return err.Error()
}

// CacheStats are the Cache's counters since it was created.
type CacheStats struct {
	Fetches      uint64 // calls to the wrapped Source
	Hits         uint64 // answered from memory with a fresh token
	StaleHits    uint64 // answered with a token inside the margin because the refresh failed or was slow
	NegativeHits uint64 // answered with a remembered failure
	Errors       uint64 // failed calls to the wrapped Source
	Retries      uint64 // calls to the wrapped Source that retried a transient failure
}

// Stats returns the counters.
func (c *Cache) Stats() CacheStats {
	return CacheStats{
		Fetches:      c.fetches.Load(),
		Hits:         c.hits.Load(),
		StaleHits:    c.staleHits.Load(),
		NegativeHits: c.negativeHits.Load(),
		Errors:       c.errs.Load(),
		Retries:      c.retries.Load(),
	}
}

// EntryInfo describes one cached key for `azdo-sidecar status`. It never
// holds the secret.
type EntryInfo struct {
	Key       Key       `json:"-"`
	Host      string    `json:"host"`
	Org       string    `json:"org,omitempty"`
	Kind      Kind      `json:"kind,omitempty"`
	Username  string    `json:"username,omitempty"`
	ExpiresAt time.Time `json:"expires_at,omitzero"`
	FetchedAt time.Time `json:"fetched_at,omitzero"`
	RefreshAt time.Time `json:"refresh_at,omitzero"`
	// LastError is the failure of the last fetch, if it failed (never
	// secret: sources must not put secrets in errors).
	LastError string `json:"last_error,omitempty"`
	Fetching  bool   `json:"fetching,omitempty"`
}

// Snapshot describes every key the cache knows, sorted by key.
func (c *Cache) Snapshot() []EntryInfo {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]EntryInfo, 0, len(c.entries))
	for k, e := range c.entries {
		info := EntryInfo{Key: k, Host: k.Host, Org: k.Org, Fetching: e.call != nil}
		if !e.tok.Secret.IsZero() {
			info.Kind, info.Username = e.tok.Kind, e.tok.User()
			info.ExpiresAt, info.FetchedAt, info.RefreshAt = e.tok.ExpiresAt, e.fetchedAt, e.refreshAt
		}
		if e.err != nil {
			info.LastError = withoutLink(e.err)
		}
		out = append(out, info)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key.String() < out[j].Key.String() })
	return out
}
