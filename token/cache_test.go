package token

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/azdo-sidecar/azdo-sidecar/secret"
)

// clock is a manual clock for expiry logic.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// fakeSource answers with results from a function and counts calls.
type fakeSource struct {
	calls atomic.Int64
	fn    func(ctx context.Context, n int64, key Key) (Token, error)
}

func (f *fakeSource) Token(ctx context.Context, key Key) (Token, error) {
	n := f.calls.Add(1)
	return f.fn(ctx, n, key)
}

var key = Key{Host: "dev.azure.com", Org: "contoso"}

func tokenN(n int64, exp time.Time) Token {
	return Token{Kind: Bearer, Secret: secret.New(fmt.Sprintf("secret-token-%d", n)), ExpiresAt: exp}
}

func mustToken(t *testing.T, c *Cache) Token {
	t.Helper()
	tok, err := c.Token(context.Background(), key)
	if err != nil {
		t.Fatalf("Token(%v) error = %v; want a token", key, err)
	}
	return tok
}

func TestCacheRefreshesExactlyAtMargin(t *testing.T) {
	clk := newClock()
	t0 := clk.Now()
	src := &fakeSource{fn: func(_ context.Context, n int64, _ Key) (Token, error) {
		return tokenN(n, clk.Now().Add(60*time.Minute)), nil
	}}
	c := NewCache(src, CacheOptions{Margin: 5 * time.Minute, Now: clk.Now})
	defer c.Close()

	first := mustToken(t, c)
	tests := []struct {
		name      string
		at        time.Time
		wantCalls int64
		wantSame  bool
	}{
		{"fresh", t0.Add(time.Minute), 1, true},
		{"one nanosecond before the margin", t0.Add(55*time.Minute - time.Nanosecond), 1, true},
		{"exactly at the margin", t0.Add(55 * time.Minute), 2, false},
	}
	for _, tt := range tests {
		clk.Set(tt.at)
		got := mustToken(t, c)
		if n := src.calls.Load(); n != tt.wantCalls {
			t.Errorf("%s: source calls = %d; want %d", tt.name, n, tt.wantCalls)
		}
		if same := got.Secret.Equal(first.Secret); same != tt.wantSame {
			t.Errorf("%s: same token as first = %v; want %v", tt.name, same, tt.wantSame)
		}
	}
}

func TestCacheColdThousandCallersOneFetch(t *testing.T) {
	clk := newClock()
	release := make(chan struct{})
	src := &fakeSource{fn: func(_ context.Context, n int64, _ Key) (Token, error) {
		<-release
		return tokenN(n, clk.Now().Add(time.Hour)), nil
	}}
	c := NewCache(src, CacheOptions{Now: clk.Now})
	defer c.Close()

	const callers = 1000
	var wg, started sync.WaitGroup
	errs := make(chan error, callers)
	started.Add(callers)
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			started.Done()
			tok, err := c.Token(context.Background(), key)
			if err == nil && tok.Secret.Reveal() != "secret-token-1" {
				err = fmt.Errorf("got %s", tok.Secret.Reveal())
			}
			errs <- err
		}()
	}
	started.Wait()
	time.Sleep(20 * time.Millisecond) // let most callers join the flight
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("caller: %v", err)
		}
	}
	if n := src.calls.Load(); n != 1 {
		t.Fatalf("source calls = %d for %d concurrent callers; want 1", n, callers)
	}
	if s := c.Stats(); s.Fetches != 1 {
		t.Errorf("Stats().Fetches = %d; want 1", s.Fetches)
	}
}

func TestCacheCancelledCallerDoesNotCancelSharedFetch(t *testing.T) {
	clk := newClock()
	release := make(chan struct{})
	fetchErr := make(chan error, 1)
	src := &fakeSource{fn: func(ctx context.Context, n int64, _ Key) (Token, error) {
		<-release
		fetchErr <- ctx.Err()
		return tokenN(n, clk.Now().Add(time.Hour)), nil
	}}
	c := NewCache(src, CacheOptions{Now: clk.Now})
	defer c.Close()

	ctx, cancel := context.WithCancel(context.Background())
	aDone := make(chan error, 1)
	go func() {
		_, err := c.Token(ctx, key)
		aDone <- err
	}()
	bDone := make(chan error, 1)
	go func() {
		_, err := c.Token(context.Background(), key)
		bDone <- err
	}()
	for src.calls.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-aDone; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled caller: err = %v; want context.Canceled", err)
	}
	close(release)
	if err := <-fetchErr; err != nil {
		t.Fatalf("shared fetch saw ctx.Err() = %v; want nil", err)
	}
	if err := <-bDone; err != nil {
		t.Fatalf("other caller: err = %v; want nil", err)
	}
	if n := src.calls.Load(); n != 1 {
		t.Fatalf("source calls = %d; want 1", n)
	}
}

func TestCacheSharedFetchHasItsOwnTimeout(t *testing.T) {
	src := &fakeSource{fn: func(ctx context.Context, _ int64, _ Key) (Token, error) {
		<-ctx.Done()
		return Token{}, ctx.Err()
	}}
	c := NewCache(src, CacheOptions{FetchTimeout: 30 * time.Millisecond, Backoff: func(int) time.Duration { return time.Millisecond }})
	defer c.Close()
	// The timed-out call is transient and retried while the caller
	// waits; at the caller's deadline it gets the last failure.
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := c.Token(ctx, key)
	if !errors.Is(err, ErrUnavailable) || !errors.Is(err, ErrTransient) {
		t.Fatalf("Token with hanging source: err = %v; want ErrUnavailable, transient", err)
	}
	if n := src.calls.Load(); n < 2 {
		t.Errorf("source calls = %d; want the timed-out call retried", n)
	}
}

func TestCacheServesValidTokenWhileSourceDown(t *testing.T) {
	clk := newClock()
	t0 := clk.Now()
	var down atomic.Bool
	src := &fakeSource{fn: func(_ context.Context, n int64, _ Key) (Token, error) {
		if down.Load() {
			return Token{}, &RetryAfterError{After: 3 * time.Second, Err: ErrUnavailable}
		}
		return tokenN(n, t0.Add(60*time.Minute)), nil
	}}
	c := NewCache(src, CacheOptions{Margin: 5 * time.Minute, Now: clk.Now})
	defer c.Close()
	first := mustToken(t, c)
	down.Store(true)

	// Inside the margin, the refresh fails: the old token is still served.
	clk.Set(t0.Add(56 * time.Minute))
	if got := mustToken(t, c); !got.Secret.Equal(first.Secret) {
		t.Fatalf("inside margin with source down: got another token")
	}
	calls := src.calls.Load()
	// Within the Retry-After, no new fetch.
	clk.Set(t0.Add(56*time.Minute + 2*time.Second))
	mustToken(t, c)
	if n := src.calls.Load(); n != calls {
		t.Errorf("source calls within Retry-After = %d; want %d", n, calls)
	}
	// After it, another (failing) attempt, still serving the old token.
	clk.Set(t0.Add(56*time.Minute + 4*time.Second))
	mustToken(t, c)
	if n := src.calls.Load(); n != calls+1 {
		t.Errorf("source calls after Retry-After = %d; want %d", n, calls+1)
	}
	// Once expired, the error surfaces.
	clk.Set(t0.Add(60 * time.Minute))
	if _, err := c.Token(context.Background(), key); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("expired token with source down: err = %v; want ErrUnavailable", err)
	}
	if s := c.Stats(); s.StaleHits < 2 || s.Errors < 2 {
		t.Errorf("Stats() = %+v; want StaleHits >= 2 and Errors >= 2", s)
	}
}

func TestCacheSlowRefreshServesStaleAfterStaleWait(t *testing.T) {
	clk := newClock()
	t0 := clk.Now()
	release := make(chan struct{})
	src := &fakeSource{fn: func(_ context.Context, n int64, _ Key) (Token, error) {
		if n > 1 {
			<-release
		}
		return tokenN(n, clk.Now().Add(60*time.Minute)), nil
	}}
	c := NewCache(src, CacheOptions{StaleWait: 10 * time.Millisecond, Now: clk.Now})
	defer c.Close()
	first := mustToken(t, c)
	clk.Set(t0.Add(58 * time.Minute))
	if got := mustToken(t, c); !got.Secret.Equal(first.Secret) {
		t.Fatal("slow refresh: want the still-valid old token")
	}
	close(release)
	// The background refresh completes and replaces the token.
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if got := mustToken(t, c); got.Secret.Reveal() == "secret-token-2" {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatal("refreshed token never served")
}

func TestCacheNegativeCache(t *testing.T) {
	tests := []struct {
		name string
		err  error
		ttl  time.Duration
	}{
		{"environment unauthorized", fmt.Errorf("vault: %w", ErrUnauthorized), DefaultNegativeTTL},
		{"no credential", fmt.Errorf("x: %w", ErrNoCredential), DefaultNegativeTTL},
		{"unavailable", ErrUnavailable, time.Second},
		{"retry after is capped", &RetryAfterError{After: time.Hour, Err: ErrUnavailable}, MaxRetryAfter},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newClock()
			t0 := clk.Now()
			src := &fakeSource{fn: func(context.Context, int64, Key) (Token, error) { return Token{}, tt.err }}
			c := NewCache(src, CacheOptions{Now: clk.Now})
			defer c.Close()
			for _, at := range []time.Time{t0, t0.Add(tt.ttl - time.Nanosecond)} {
				clk.Set(at)
				if _, err := c.Token(context.Background(), key); !errors.Is(err, tt.err) {
					t.Fatalf("Token at %v: err = %v; want %v", at.Sub(t0), err, tt.err)
				}
			}
			if n := src.calls.Load(); n != 1 {
				t.Fatalf("source calls within %v = %d; want 1", tt.ttl, n)
			}
			clk.Set(t0.Add(tt.ttl))
			c.Token(context.Background(), key)
			if n := src.calls.Load(); n != 2 {
				t.Fatalf("source calls after %v = %d; want 2", tt.ttl, n)
			}
		})
	}
}

// TestCacheConnectRequiredIsNotRemembered: right after "connect required"
// the user connects in a browser and runs git again at once; the next call
// must ask the source (and get a fresh, unspent link), not a remembered
// answer. (Concurrent callers of one fetch share it: TestCacheColdThousandCallersOneFetch.)
func TestCacheConnectRequiredIsNotRemembered(t *testing.T) {
	clk := newClock()
	var connected atomic.Bool
	src := &fakeSource{fn: func(_ context.Context, n int64, _ Key) (Token, error) {
		if connected.Load() {
			return tokenN(n, clk.Now().Add(time.Hour)), nil
		}
		return Token{}, &ConnectError{Key: key, ConnectURL: fmt.Sprintf("https://runner/connect?n=%d", n)}
	}}
	c := NewCache(src, CacheOptions{Now: clk.Now})
	defer c.Close()

	// The same instant, no clock step between the calls.
	var ce *ConnectError
	for i := int64(1); i <= 2; i++ {
		_, err := c.Token(context.Background(), key)
		if want := fmt.Sprintf("https://runner/connect?n=%d", i); !errors.As(err, &ce) || ce.ConnectURL != want {
			t.Fatalf("Token #%d = %v; want a *ConnectError from fetch %d (%s)", i, err, i, want)
		}
	}
	connected.Store(true)
	if got := mustToken(t, c); got.Secret.Reveal() != "secret-token-3" {
		t.Fatalf("Token right after connecting = %v; want the new token at once", got)
	}
}

func TestCacheAuthoritativeErrorDropsToken(t *testing.T) {
	clk := newClock()
	t0 := clk.Now()
	var revoked atomic.Bool
	src := &fakeSource{fn: func(_ context.Context, n int64, _ Key) (Token, error) {
		if revoked.Load() {
			return Token{}, &ConnectError{Key: key, Reconnect: true, ConnectURL: "https://runner/connect"}
		}
		return tokenN(n, t0.Add(60*time.Minute)), nil
	}}
	c := NewCache(src, CacheOptions{Now: clk.Now})
	defer c.Close()
	mustToken(t, c)
	revoked.Store(true)
	clk.Set(t0.Add(56 * time.Minute))
	var ce *ConnectError
	if _, err := c.Token(context.Background(), key); !errors.As(err, &ce) || !ce.Reconnect {
		t.Fatalf("Token after revocation: err = %v; want *ConnectError with Reconnect", err)
	}
}

func TestCacheInvalidate(t *testing.T) {
	clk := newClock()
	src := &fakeSource{fn: func(_ context.Context, n int64, _ Key) (Token, error) {
		return tokenN(n, clk.Now().Add(time.Hour)), nil
	}}
	c := NewCache(src, CacheOptions{Now: clk.Now})
	defer c.Close()
	first := mustToken(t, c)

	c.Invalidate(key, tokenN(99, time.Time{})) // not the cached one
	c.Invalidate(Key{Host: "dev.azure.com", Org: "other"}, first)
	if got := mustToken(t, c); !got.Secret.Equal(first.Secret) || src.calls.Load() != 1 {
		t.Fatalf("Invalidate with another token or key dropped the cached one (calls = %d)", src.calls.Load())
	}
	c.Invalidate(key, first)
	second := mustToken(t, c)
	if second.Secret.Equal(first.Secret) || src.calls.Load() != 2 {
		t.Fatalf("after Invalidate: calls = %d, same token = %v; want 2 and a new token", src.calls.Load(), second.Secret.Equal(first.Secret))
	}
	// Many requests rejected with the same old token: one refetch only.
	c.Invalidate(key, first)
	if got := mustToken(t, c); !got.Secret.Equal(second.Secret) || src.calls.Load() != 2 {
		t.Fatalf("second Invalidate of the old token refetched (calls = %d)", src.calls.Load())
	}
}

func TestCacheSnapshotAndErrorsHoldNoSecret(t *testing.T) {
	clk := newClock()
	const secretValue = "super-secret-token-value"
	src := &fakeSource{fn: func(_ context.Context, _ int64, k Key) (Token, error) {
		if k.Org == "broken" {
			return Token{}, &ConnectError{Key: k, ConnectURL: "https://runner/connect"}
		}
		return Token{Kind: Basic, Secret: secret.New(secretValue), ExpiresAt: clk.Now().Add(time.Hour)}, nil
	}}
	c := NewCache(src, CacheOptions{Now: clk.Now})
	defer c.Close()
	mustToken(t, c)
	_, err := c.Token(context.Background(), Key{Host: "dev.azure.com", Org: "broken"})
	snap := c.Snapshot()
	if len(snap) != 2 {
		t.Fatalf("Snapshot() has %d entries; want 2", len(snap))
	}
	if snap[1].Kind != Basic || snap[1].Username != DefaultUsername || snap[1].ExpiresAt.IsZero() {
		t.Errorf("Snapshot()[1] = %+v; want kind basic, default user, an expiry", snap[1])
	}
	if !strings.Contains(snap[0].LastError, "connect") {
		t.Errorf("Snapshot()[0].LastError = %q; want the connect error", snap[0].LastError)
	}
	// The connect link is signed and single-use: git shows it to the user
	// who asked; status (often pasted into bug reports) does not.
	if strings.Contains(snap[0].LastError, "https://runner/connect") {
		t.Errorf("Snapshot()[0].LastError = %q; want it without the connect link", snap[0].LastError)
	}
	b, _ := json.Marshal(snap)
	for _, s := range []string{string(b), fmt.Sprintf("%+v %#v %v %+v %#v %s", snap, c.Stats(), c, c, c, c), err.Error()} {
		if strings.Contains(s, secretValue) {
			t.Errorf("leaked the secret: %s", s)
		}
	}
}

func TestCacheOnFetchHook(t *testing.T) {
	var got []error
	var mu sync.Mutex
	src := &fakeSource{fn: func(context.Context, int64, Key) (Token, error) { return Token{}, ErrNoCredential }}
	c := NewCache(src, CacheOptions{OnFetch: func(_ Key, _ time.Duration, err error) {
		mu.Lock()
		got = append(got, err)
		mu.Unlock()
	}})
	c.Token(context.Background(), key)
	c.Close()
	if len(got) != 1 || !errors.Is(got[0], ErrNoCredential) {
		t.Fatalf("OnFetch errors = %v; want [ErrNoCredential]", got)
	}
}

func TestCacheBoundsKeys(t *testing.T) {
	clk := newClock()
	// A static PAT: every org gets a token that never expires, so no entry
	// ever becomes idle on its own.
	src := &fakeSource{fn: func(_ context.Context, n int64, _ Key) (Token, error) {
		return tokenN(n, time.Time{}), nil
	}}
	c := NewCache(src, CacheOptions{Now: clk.Now})
	defer c.Close()
	for i := range MaxCacheKeys + 50 {
		k := Key{Host: "dev.azure.com", Org: fmt.Sprintf("org%d", i)}
		if _, err := c.Token(context.Background(), k); err != nil {
			t.Fatalf("Token(%v) error = %v; want a token", k, err)
		}
		clk.Set(clk.Now().Add(time.Second))
	}
	if n := len(c.Snapshot()); n > MaxCacheKeys {
		t.Fatalf("cache holds %d keys after %d distinct ones; want at most %d", n, MaxCacheKeys+50, MaxCacheKeys)
	}
	// The most recent key is still served from memory.
	calls := src.calls.Load()
	last := Key{Host: "dev.azure.com", Org: fmt.Sprintf("org%d", MaxCacheKeys+49)}
	if _, err := c.Token(context.Background(), last); err != nil || src.calls.Load() != calls {
		t.Errorf("Token(%v) = %v after %d calls, now %d; want a cached token", last, err, calls, src.calls.Load())
	}
}

func TestCacheEvictsIdleKeysFirst(t *testing.T) {
	clk := newClock()
	src := &fakeSource{fn: func(_ context.Context, _ int64, k Key) (Token, error) {
		if k.Org == "keep" {
			return tokenN(0, time.Time{}), nil
		}
		return Token{}, fmt.Errorf("no: %w", ErrUnavailable)
	}}
	c := NewCache(src, CacheOptions{Now: clk.Now, RetryBackoff: time.Second})
	defer c.Close()
	keep := Key{Host: "dev.azure.com", Org: "keep"}
	mustTok := func(k Key) {
		if _, err := c.Token(context.Background(), k); err != nil {
			t.Fatalf("Token(%v) error = %v; want a token", k, err)
		}
	}
	mustTok(keep)
	for i := range MaxCacheKeys + 50 {
		_, _ = c.Token(context.Background(), Key{Host: "dev.azure.com", Org: fmt.Sprintf("gone%d", i)})
		clk.Set(clk.Now().Add(2 * time.Second)) // past the backoff: the failure is idle
	}
	if n := len(c.Snapshot()); n > MaxCacheKeys {
		t.Fatalf("cache holds %d keys; want at most %d", n, MaxCacheKeys)
	}
	calls := src.calls.Load()
	mustTok(keep)
	if src.calls.Load() != calls {
		t.Errorf("the key with a token was evicted before idle ones (source called again)")
	}
}

// TestCacheForbiddenIsNotRemembered: an administrator loosens the
// environment's policy (azdo-vault env update) and the user runs git again;
// the next call must ask the vault, not replay the refusal. A refusal also
// drops a cached token that is due for refresh: the vault said no.
func TestCacheForbiddenIsNotRemembered(t *testing.T) {
	clk := newClock()
	t0 := clk.Now()
	var forbidden atomic.Bool
	src := &fakeSource{fn: func(_ context.Context, n int64, _ Key) (Token, error) {
		if forbidden.Load() {
			return Token{}, &ForbiddenError{Key: key, Message: "not this org"}
		}
		return tokenN(n, t0.Add(60*time.Minute)), nil
	}}
	c := NewCache(src, CacheOptions{Now: clk.Now})
	defer c.Close()
	mustToken(t, c)
	forbidden.Store(true)
	clk.Set(t0.Add(56 * time.Minute)) // inside the refresh margin
	var fe *ForbiddenError
	for i := range 2 {
		if _, err := c.Token(context.Background(), key); !errors.As(err, &fe) || fe.Message != "not this org" {
			t.Fatalf("Token #%d after the policy changed: err = %v; want *ForbiddenError", i+1, err)
		}
	}
	if n := src.calls.Load(); n != 3 {
		t.Fatalf("source calls = %d; want 3 (a refusal is not remembered)", n)
	}
	forbidden.Store(false)
	if got := mustToken(t, c); got.Secret.Reveal() != "secret-token-4" {
		t.Fatalf("Token after the policy allows the org again = %v; want a fresh token", got)
	}
}
