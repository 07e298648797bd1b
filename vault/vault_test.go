package vault

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/azdo-sidecar/azdo-sidecar/sealbox"
	"github.com/azdo-sidecar/azdo-sidecar/secret"
	"github.com/azdo-sidecar/azdo-sidecar/token"
	"github.com/azdo-sidecar/azdo-sidecar/vault/store"
	"github.com/azdo-sidecar/azdo-sidecar/vaultapi"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) { c.mu.Lock(); defer c.mu.Unlock(); c.t = c.t.Add(d) }

// fakeEntra behaves like Entra ID's token endpoint for refresh: each
// refresh token works once more after rotation is observed (like the real
// service, old ones stay valid), issues a new access and refresh token, and
// can be told to fail.
type fakeEntra struct {
	clock    *clock
	lifetime time.Duration

	mu      sync.Mutex
	n       int
	valid   map[string]bool
	revoked bool
	fail    error         // returned while set
	gate    chan struct{} // when set, Refresh waits for it
	hang    int           // calls left that wait for their context to end, as a call that never gets an answer
	calls   atomic.Int64
	seen    []string
}

func newFakeEntra(c *clock, initial string) *fakeEntra {
	return &fakeEntra{clock: c, lifetime: time.Hour, valid: map[string]bool{initial: true}}
}

func (f *fakeEntra) Refresh(ctx context.Context, rt secret.String) (Grant, error) {
	f.calls.Add(1)
	f.mu.Lock()
	gate := f.gate
	hang := f.hang > 0
	if hang {
		f.hang--
	}
	f.mu.Unlock()
	if hang {
		<-ctx.Done()
		return Grant{}, &RefreshError{Class: Transient, Reason: "network", Err: ctx.Err()}
	}
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return Grant{}, ctx.Err()
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seen = append(f.seen, rt.Reveal())
	if f.fail != nil {
		return Grant{}, f.fail
	}
	if f.revoked || !f.valid[rt.Reveal()] {
		return Grant{}, &RefreshError{Class: Permanent, Reason: "invalid_grant AADSTS50173"}
	}
	f.n++
	next := fmt.Sprintf("rt-rotated-%d-secretvalue", f.n)
	f.valid[next] = true
	return Grant{
		AccessToken:  secret.New(fmt.Sprintf("at-%d-secretvalue", f.n)),
		RefreshToken: secret.New(next),
		ExpiresAt:    f.clock.Now().Add(f.lifetime),
	}, nil
}

func (f *fakeEntra) set(fn func(f *fakeEntra)) { f.mu.Lock(); defer f.mu.Unlock(); fn(f) }

type harness struct {
	t      testing.TB
	clock  *clock
	keys   sealbox.KeyPair
	dbPath string
	st     *store.SQLite
	entra  *fakeEntra
	v      *Vault
	srv    *httptest.Server
	logs   *syncBuffer
	envTok secret.String
	env    store.Environment

	attemptTimeout time.Duration // Backoff.AttemptTimeout (0: the default)
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

const (
	host        = "dev.azure.com"
	initialRT   = "rt-initial-secretvalue"
	patSecret   = "pat-contoso-secretvalue"
	patAllOrgs  = "pat-allorgs-secretvalue"
	publicURL   = "https://runner.example.test"
	defaultUser = "ann"
)

func newHarness(t testing.TB) *harness {
	t.Helper()
	kp, err := sealbox.Generate()
	if err != nil {
		t.Fatal(err)
	}
	c := &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	h := &harness{t: t, clock: c, keys: kp, dbPath: filepath.Join(t.TempDir(), "vault.db"), logs: &syncBuffer{}}
	h.entra = newFakeEntra(c, initialRT)
	h.open()
	e, tok, err := NewEnvironment(context.Background(), h.st, h.v.Binding(), c.Now(), defaultUser, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	h.env, h.envTok = e, tok
	return h
}

// open starts (or restarts) the vault on the same database file.
func (h *harness) open() {
	h.t.Helper()
	st, err := store.OpenSQLite(context.Background(), h.dbPath, h.clock.Now)
	if err != nil {
		h.t.Fatal(err)
	}
	v, err := New(Config{
		Keys:      h.keys,
		Store:     st,
		Providers: []Provider{{Host: host, OAuth: h.entra, PAT: true}, {Host: "pat-only.example.test", PAT: true}},
		PublicURL: publicURL,
		Now:       h.clock.Now,
		Logger:    slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Backoff:   Backoff{Attempts: 3, Base: time.Millisecond, Max: 5 * time.Millisecond, AttemptTimeout: h.attemptTimeout},
	})
	if err != nil {
		h.t.Fatal(err)
	}
	h.st, h.v = st, v
	h.srv = httptest.NewServer(v.Mux())
	h.t.Cleanup(h.close)
}

func (h *harness) close() {
	if h.srv == nil {
		return
	}
	h.srv.Close()
	h.v.Close()
	h.st.Close()
	h.srv = nil
}

func (h *harness) restart() {
	h.close()
	h.open()
}

func (h *harness) put(c Credential) store.Credential {
	h.t.Helper()
	if c.Owner == "" {
		c.Owner = defaultUser
	}
	sc, err := h.v.PutCredential(context.Background(), c)
	if err != nil {
		h.t.Fatalf("PutCredential = %v", err)
	}
	return sc
}

type answer struct {
	code       int
	retryAfter string
	ok         vaultapi.TokenResponse
	err        vaultapi.ErrorResponse
	raw        string
}

func (h *harness) ask(envTok string, req vaultapi.TokenRequest) answer {
	h.t.Helper()
	return h.askCtx(context.Background(), envTok, req)
}

func (h *harness) askCtx(ctx context.Context, envTok string, req vaultapi.TokenRequest) answer {
	body, _ := json.Marshal(req)
	r, _ := http.NewRequestWithContext(ctx, http.MethodPost, h.srv.URL+vaultapi.TokenPath, bytes.NewReader(body))
	if envTok != "" {
		r.Header.Set("Authorization", "Bearer "+envTok)
	}
	resp, err := h.srv.Client().Do(r)
	if err != nil {
		return answer{code: -1, raw: err.Error()}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	a := answer{code: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After"), raw: string(b)}
	if resp.StatusCode == http.StatusOK {
		json.Unmarshal(b, &a.ok)
	} else {
		json.Unmarshal(b, &a.err)
	}
	return a
}

func (h *harness) token(org string, minValid int) answer {
	h.t.Helper()
	return h.ask(h.envTok.Reveal(), vaultapi.TokenRequest{Host: host, Org: org, MinValidSeconds: minValid})
}

func (h *harness) storedRefreshToken(id int64) string {
	h.t.Helper()
	c, err := h.st.Credential(context.Background(), id)
	if err != nil {
		h.t.Fatal(err)
	}
	b, err := h.keys.Open(c.Sealed)
	if err != nil {
		h.t.Fatal(err)
	}
	return string(b)
}

func TestRefreshAcrossExpiryPersistsRotation(t *testing.T) {
	h := newHarness(t)
	c := h.put(Credential{Host: host, Kind: store.OAuth, Secret: secret.New(initialRT)})

	a := h.token("contoso", 300)
	if a.code != 200 || a.ok.Type != vaultapi.TypeBearer || a.ok.Token != "at-1-secretvalue" || a.ok.Sealed {
		t.Fatalf("first token = %d %+v; want 200 bearer at-1", a.code, a.ok)
	}
	if got := h.storedRefreshToken(c.ID); got != "rt-rotated-1-secretvalue" {
		t.Errorf("stored refresh token = %q; want the rotated rt-rotated-1", got)
	}
	// Inside the token's life, answered from memory.
	h.clock.Add(30 * time.Minute)
	if a := h.token("contoso", 300); a.ok.Token != "at-1-secretvalue" {
		t.Errorf("token before expiry = %q; want the cached at-1", a.ok.Token)
	}
	if n := h.entra.calls.Load(); n != 1 {
		t.Errorf("refreshes = %d; want 1", n)
	}
	// Across the min_valid margin: refreshed with the rotated token.
	h.clock.Add(26 * time.Minute)
	a = h.token("contoso", 300)
	if a.ok.Token != "at-2-secretvalue" || !a.ok.ExpiresAt.Equal(h.clock.Now().Add(time.Hour)) {
		t.Fatalf("token across expiry = %q exp %v; want at-2 exp %v", a.ok.Token, a.ok.ExpiresAt, h.clock.Now().Add(time.Hour))
	}
	if last := h.entra.seen[len(h.entra.seen)-1]; last != "rt-rotated-1-secretvalue" {
		t.Errorf("refresh presented %q; want the rotated rt-rotated-1", last)
	}
	// A restart loses the memory cache but not the rotated refresh token.
	h.restart()
	h.clock.Add(2 * time.Hour)
	a = h.token("contoso", 300)
	if a.code != 200 || a.ok.Token != "at-3-secretvalue" {
		t.Fatalf("token after restart = %d %q; want at-3", a.code, a.ok.Token)
	}
	if last := h.entra.seen[len(h.entra.seen)-1]; last != "rt-rotated-2-secretvalue" {
		t.Errorf("refresh after restart presented %q; want rt-rotated-2", last)
	}
}

func TestConcurrentRequestsRefreshOnce(t *testing.T) {
	h := newHarness(t)
	h.put(Credential{Host: host, Kind: store.OAuth, Secret: secret.New(initialRT)})
	gate := make(chan struct{})
	h.entra.set(func(f *fakeEntra) { f.gate = gate })

	const n = 100
	var wg sync.WaitGroup
	answers := make([]answer, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			answers[i] = h.token("contoso", 300)
		}()
	}
	// Let the requests pile up on the one refresh, then release it.
	deadline := time.Now().Add(5 * time.Second)
	for h.entra.calls.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	close(gate)
	wg.Wait()
	for i, a := range answers {
		if a.code != 200 || a.ok.Token != "at-1-secretvalue" {
			t.Fatalf("answer %d = %d %q; want 200 at-1", i, a.code, a.ok.Token)
		}
	}
	if got := h.entra.calls.Load(); got != 1 {
		t.Errorf("refreshes for %d concurrent requests = %d; want 1", n, got)
	}
}

// TestHungRefreshRetriedWithinMaxWait: the first call to the identity
// provider never answers; it is cut at the attempt timeout and retried,
// and every request waiting for the refresh gets the token.
func TestHungRefreshRetriedWithinMaxWait(t *testing.T) {
	h := newHarness(t)
	h.attemptTimeout = 200 * time.Millisecond
	h.restart()
	h.put(Credential{Host: host, Kind: store.OAuth, Secret: secret.New(initialRT)})
	h.entra.set(func(f *fakeEntra) { f.hang = 1 })

	const n = 50
	var wg sync.WaitGroup
	answers := make([]answer, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			answers[i] = h.token("contoso", 300)
		}()
	}
	wg.Wait()
	for i, a := range answers {
		if a.code != 200 || a.ok.Token != "at-1-secretvalue" {
			t.Fatalf("answer %d = %d %q; want 200 at-1", i, a.code, a.ok.Token)
		}
	}
	if got := h.entra.calls.Load(); got != 2 {
		t.Errorf("calls to the identity provider = %d; want 2 (the hung one, then its retry)", got)
	}
}

// TestCancelledCallerDoesNotCancelRefresh: the first caller gives up, the
// refresh goes on for the others and its rotated token is saved.
func TestCancelledCallerDoesNotCancelRefresh(t *testing.T) {
	h := newHarness(t)
	c := h.put(Credential{Host: host, Kind: store.OAuth, Secret: secret.New(initialRT)})
	gate := make(chan struct{})
	h.entra.set(func(f *fakeEntra) { f.gate = gate })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan answer)
	go func() { done <- h.askCtx(ctx, h.envTok.Reveal(), vaultapi.TokenRequest{Host: host, Org: "contoso"}) }()
	for h.entra.calls.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	if a := <-done; a.code != -1 {
		t.Errorf("cancelled caller got %d; want a client-side cancellation", a.code)
	}
	second := make(chan answer)
	go func() { second <- h.token("contoso", 300) }()
	time.Sleep(20 * time.Millisecond)
	close(gate)
	if a := <-second; a.code != 200 || a.ok.Token != "at-1-secretvalue" {
		t.Errorf("second caller = %d %q; want 200 at-1", a.code, a.ok.Token)
	}
	if got := h.storedRefreshToken(c.ID); got != "rt-rotated-1-secretvalue" {
		t.Errorf("stored refresh token = %q; want rt-rotated-1", got)
	}
}

func TestRevokedGrantNeedsReconnect(t *testing.T) {
	h := newHarness(t)
	c := h.put(Credential{Host: host, Kind: store.OAuth, Secret: secret.New(initialRT)})
	h.entra.set(func(f *fakeEntra) { f.revoked = true })

	for i := range 3 {
		a := h.token("contoso", 300)
		if a.code != http.StatusConflict || a.err.Error != vaultapi.ErrReconnectRequired {
			t.Fatalf("request %d = %d %s; want 409 reconnect_required", i, a.code, a.raw)
		}
		want := publicURL + "/connect?host=dev.azure.com&org=contoso"
		if a.err.ConnectURL != want {
			t.Errorf("connect_url = %q; want %q", a.err.ConnectURL, want)
		}
		if !strings.Contains(a.err.Message, "AADSTS50173") {
			t.Errorf("message %q does not give the reason", a.err.Message)
		}
	}
	if got := h.entra.calls.Load(); got != 1 {
		t.Errorf("refresh attempts = %d; want 1 (permanent errors are never retried)", got)
	}
	sc, _ := h.st.Credential(context.Background(), c.ID)
	if sc.Status != store.StatusReconnectRequired || sc.Reason != "invalid_grant AADSTS50173" {
		t.Errorf("stored status = %q %q; want reconnect_required with the reason", sc.Status, sc.Reason)
	}
	// Connecting again makes it work.
	h.entra.set(func(f *fakeEntra) { f.revoked = false; f.valid["rt-new-grant-secretvalue"] = true })
	h.put(Credential{Host: host, Kind: store.OAuth, Secret: secret.New("rt-new-grant-secretvalue")})
	if a := h.token("contoso", 300); a.code != 200 {
		t.Errorf("after reconnect = %d %s; want 200", a.code, a.raw)
	}
}

// TestPermanentErrorAfterRotationElsewhere: the refresh fails because another
// replica rotated the grant meanwhile; the vault re-reads, uses the new
// refresh token and does not mark the credential.
func TestPermanentErrorAfterRotationElsewhere(t *testing.T) {
	h := newHarness(t)
	c := h.put(Credential{Host: host, Kind: store.OAuth, Secret: secret.New(initialRT)})
	other := &rotatingRefresher{fakeEntra: h.entra, h: h, id: c.ID}
	h.v.setProvider(Provider{Host: host, OAuth: other})
	a := h.token("contoso", 300)
	if a.code != 200 {
		t.Fatalf("token = %d %s; want 200 after re-reading the rotated grant", a.code, a.raw)
	}
	sc, _ := h.st.Credential(context.Background(), c.ID)
	if sc.Status != store.StatusOK {
		t.Errorf("status = %q; want ok", sc.Status)
	}
}

// rotatingRefresher plays another replica: on the first call it rotates the
// stored grant itself and revokes the token it was given.
type rotatingRefresher struct {
	*fakeEntra
	h    *harness
	id   int64
	done bool
}

func (r *rotatingRefresher) Refresh(ctx context.Context, rt secret.String) (Grant, error) {
	if !r.done {
		r.done = true
		c, err := r.h.st.Credential(ctx, r.id)
		if err != nil {
			return Grant{}, err
		}
		g, err := r.fakeEntra.Refresh(ctx, rt)
		if err != nil {
			return Grant{}, err
		}
		c.Sealed, _ = sealbox.Seal(r.h.keys.Public, []byte(g.RefreshToken.Reveal()))
		c.MAC = r.h.v.Binding().CredentialMAC(c)
		if _, err := r.h.st.UpdateCredential(ctx, c); err != nil {
			return Grant{}, err
		}
		r.fakeEntra.set(func(f *fakeEntra) { delete(f.valid, rt.Reveal()) })
	}
	return r.fakeEntra.Refresh(ctx, rt)
}

func TestOutageGives503ThenRecovers(t *testing.T) {
	h := newHarness(t)
	h.put(Credential{Host: host, Kind: store.OAuth, Secret: secret.New(initialRT)})
	h.entra.set(func(f *fakeEntra) {
		f.fail = &RefreshError{Class: Transient, Reason: "temporarily_unavailable", Err: errors.New("HTTP 503")}
	})
	a := h.token("contoso", 300)
	if a.code != http.StatusServiceUnavailable || a.retryAfter == "" || a.err.Error != vaultapi.ErrUnavailable {
		t.Fatalf("during outage = %d Retry-After %q %s; want 503 with Retry-After", a.code, a.retryAfter, a.raw)
	}
	if got := h.entra.calls.Load(); got != 3 {
		t.Errorf("attempts during outage = %d; want 3 (bounded retries)", got)
	}
	h.entra.set(func(f *fakeEntra) { f.fail = nil })
	if a := h.token("contoso", 300); a.code != 200 {
		t.Errorf("after outage = %d %s; want 200", a.code, a.raw)
	}
}

func TestMisconfiguredClientIsNotTheUsersFault(t *testing.T) {
	h := newHarness(t)
	c := h.put(Credential{Host: host, Kind: store.OAuth, Secret: secret.New(initialRT)})
	h.entra.set(func(f *fakeEntra) {
		f.fail = &RefreshError{Class: Misconfigured, Reason: "invalid_client AADSTS7000215"}
	})
	a := h.token("contoso", 300)
	if a.code != http.StatusServiceUnavailable || !strings.Contains(a.err.Message, "administrator") {
		t.Fatalf("misconfigured = %d %s; want 503 naming the administrator", a.code, a.raw)
	}
	if got := h.entra.calls.Load(); got != 1 {
		t.Errorf("attempts = %d; want 1 (not retried)", got)
	}
	if sc, _ := h.st.Credential(context.Background(), c.ID); sc.Status != store.StatusOK {
		t.Errorf("status = %q; want ok (the user's grant is fine)", sc.Status)
	}
}

func TestEnvironmentTokenRefused(t *testing.T) {
	h := newHarness(t)
	h.put(Credential{Host: host, Kind: store.PAT, Org: "contoso", Secret: secret.New(patSecret)})
	ctx := context.Background()
	expired, expiredTok, err := NewEnvironment(ctx, h.st, h.v.Binding(), h.clock.Now().Add(-2*time.Hour), defaultUser, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	_, revokedTok, err := NewEnvironment(ctx, h.st, h.v.Binding(), h.clock.Now(), defaultUser, 0)
	if err != nil {
		t.Fatal(err)
	}
	revoked, _ := h.st.EnvironmentByTokenHash(ctx, h.v.Binding().EnvTokenHash(revokedTok))
	if err := h.st.RevokeEnvironment(ctx, revoked.ID, h.clock.Now()); err != nil {
		t.Fatal(err)
	}
	_ = expired
	tests := []struct {
		name string
		tok  string
	}{
		{name: "missing", tok: ""},
		{name: "wrong", tok: EnvTokenPrefix + "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"},
		{name: "almost right", tok: h.envTok.Reveal() + "x"},
		{name: "expired", tok: expiredTok.Reveal()},
		{name: "revoked", tok: revokedTok.Reveal()},
	}
	var bodies []string
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := h.ask(tt.tok, vaultapi.TokenRequest{Host: host, Org: "contoso"})
			if a.code != http.StatusUnauthorized {
				t.Fatalf("token with %s env token = %d; want 401", tt.name, a.code)
			}
			bodies = append(bodies, a.raw)
			if tt.tok != "" && strings.Contains(a.raw+h.logs.String(), tt.tok) {
				t.Errorf("the env token leaked into the answer or the log")
			}
		})
	}
	for _, b := range bodies[1:] {
		if b != bodies[0] {
			t.Errorf("401 bodies differ (%q vs %q); a caller must learn nothing", b, bodies[0])
		}
	}
	if a := h.token("contoso", 0); a.code != 200 {
		t.Errorf("valid env token = %d; want 200", a.code)
	}
}

func TestCredentialSelection(t *testing.T) {
	tests := []struct {
		name     string
		creds    []Credential
		host     string
		org      string
		wantCode int
		wantTok  string
		wantType string
		wantLink string
	}{
		{name: "oauth first when both exist", creds: []Credential{
			{Kind: store.PAT, Org: "contoso", Secret: secret.New(patSecret)},
			{Kind: store.OAuth, Secret: secret.New(initialRT)},
		}, org: "contoso", wantCode: 200, wantTok: "at-1-secretvalue", wantType: "bearer"},
		{name: "pat for the org", creds: []Credential{
			{Kind: store.PAT, Org: "contoso", Secret: secret.New(patSecret)},
			{Kind: store.PAT, Secret: secret.New(patAllOrgs)},
		}, org: "Contoso", wantCode: 200, wantTok: patSecret, wantType: "basic"},
		{name: "pat for all orgs", creds: []Credential{
			{Kind: store.PAT, Org: "contoso", Secret: secret.New(patSecret)},
			{Kind: store.PAT, Secret: secret.New(patAllOrgs)},
		}, org: "fabrikam", wantCode: 200, wantTok: patAllOrgs, wantType: "basic"},
		{name: "pat of another org", creds: []Credential{
			{Kind: store.PAT, Org: "contoso", Secret: secret.New(patSecret)},
		}, org: "fabrikam", wantCode: 404, wantLink: publicURL + "/connect?host=dev.azure.com&org=fabrikam"},
		{name: "expired pat", creds: []Credential{
			{Kind: store.PAT, Org: "contoso", Secret: secret.New(patSecret), ExpiresAt: time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)},
		}, org: "contoso", wantCode: 409, wantLink: publicURL + "/connect?host=dev.azure.com&org=contoso"},
		{name: "nothing", org: "contoso", wantCode: 404, wantLink: publicURL + "/connect?host=dev.azure.com&org=contoso"},
		{name: "pat-only host links to the pat page", host: "pat-only.example.test", org: "coll", wantCode: 404,
			wantLink: publicURL + "/pat?host=pat-only.example.test&org=coll"},
		{name: "host not served", host: "dev.azure.com.evil.test", org: "contoso", wantCode: 404},
		{name: "legacy visualstudio.com host uses dev.azure.com's credential", creds: []Credential{
			{Kind: store.PAT, Org: "contoso", Secret: secret.New(patSecret)},
		}, host: "contoso.visualstudio.com", wantCode: 200, wantTok: patSecret, wantType: "basic"},
		// Microsoft's other sites under visualstudio.com are not
		// organizations: never mapped onto dev.azure.com (issue 11).
		{name: "code.visualstudio.com refused", creds: []Credential{
			{Kind: store.PAT, Secret: secret.New(patAllOrgs)},
		}, host: "code.visualstudio.com", wantCode: 404},
		{name: "marketplace.visualstudio.com refused", creds: []Credential{
			{Kind: store.PAT, Secret: secret.New(patAllOrgs)},
		}, host: "marketplace.visualstudio.com", org: "marketplace", wantCode: 404},
		{name: "legacy host keeps its org", creds: []Credential{
			{Kind: store.PAT, Org: "contoso", Secret: secret.New(patSecret)},
		}, host: "fabrikam.visualstudio.com", wantCode: 404, wantLink: publicURL + "/connect?host=dev.azure.com&org=fabrikam"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			for _, c := range tt.creds {
				c.Host = host
				h.put(c)
			}
			hst := tt.host
			if hst == "" {
				hst = host
			}
			a := h.ask(h.envTok.Reveal(), vaultapi.TokenRequest{Host: hst, Org: tt.org})
			if a.code != tt.wantCode {
				t.Fatalf("Token(%s/%s) = %d %s; want %d", hst, tt.org, a.code, a.raw, tt.wantCode)
			}
			if tt.wantCode == 200 && (a.ok.Token != tt.wantTok || a.ok.Type != tt.wantType || a.ok.Username == "") {
				t.Errorf("Token(%s/%s) = %s %q user %q; want %s %q", hst, tt.org, a.ok.Type, a.ok.Token, a.ok.Username, tt.wantType, tt.wantTok)
			}
			if tt.wantCode != 200 && a.err.ConnectURL != tt.wantLink {
				t.Errorf("connect_url = %q; want %q", a.err.ConnectURL, tt.wantLink)
			}
			// dev.azure.com takes both: the OAuth link comes with a PAT
			// page link; a PAT-only host's link is the PAT page itself.
			wantPAT := ""
			if strings.Contains(tt.wantLink, "/connect?") {
				wantPAT = strings.Replace(tt.wantLink, "/connect?", "/pat?", 1)
			}
			if tt.wantCode != 200 && a.err.PATURL != wantPAT {
				t.Errorf("pat_url = %q; want %q", a.err.PATURL, wantPAT)
			}
		})
	}
}

func TestPATExpiry(t *testing.T) {
	h := newHarness(t)
	exp := h.clock.Now().Add(30 * 24 * time.Hour)
	h.put(Credential{Host: host, Kind: store.PAT, Org: "contoso", Secret: secret.New(patSecret), ExpiresAt: exp})
	h.put(Credential{Host: host, Kind: store.PAT, Org: "fabrikam", Secret: secret.New(patAllOrgs)})
	if a := h.token("contoso", 300); !a.ok.ExpiresAt.Equal(exp) {
		t.Errorf("PAT expires_at = %v; want its expiry %v", a.ok.ExpiresAt, exp)
	}
	if a := h.token("fabrikam", 300); !a.ok.ExpiresAt.Equal(h.clock.Now().Add(time.Hour)) {
		t.Errorf("PAT of unknown expiry: expires_at = %v; want a horizon of 1h", a.ok.ExpiresAt)
	}
}

func TestSealTo(t *testing.T) {
	h := newHarness(t)
	h.put(Credential{Host: host, Kind: store.PAT, Secret: secret.New(patSecret)})
	envKey, err := sealbox.Generate()
	if err != nil {
		t.Fatal(err)
	}
	a := h.ask(h.envTok.Reveal(), vaultapi.TokenRequest{Host: host, Org: "contoso", SealTo: envKey.Public.String()})
	if a.code != 200 || !a.ok.Sealed || strings.Contains(a.raw, patSecret) {
		t.Fatalf("sealed answer = %d %s; want 200, sealed, no plaintext", a.code, a.raw)
	}
	b, err := envKey.Open(a.ok.Token)
	if err != nil || string(b) != patSecret {
		t.Errorf("Open(sealed token) = %q, %v; want the PAT", b, err)
	}
}

func TestBadRequests(t *testing.T) {
	h := newHarness(t)
	tests := []struct {
		name string
		body string
	}{
		{name: "not json", body: "host=dev.azure.com"},
		{name: "no host", body: `{"org":"contoso"}`},
		{name: "negative min valid", body: `{"host":"dev.azure.com","min_valid_seconds":-1}`},
		{name: "bad seal_to", body: `{"host":"dev.azure.com","seal_to":"bm90IGEga2V5"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, _ := http.NewRequest(http.MethodPost, h.srv.URL+vaultapi.TokenPath, strings.NewReader(tt.body))
			r.Header.Set("Authorization", "Bearer "+h.envTok.Reveal())
			resp, err := h.srv.Client().Do(r)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusBadRequest {
				t.Errorf("POST %s = %d; want 400", tt.body, resp.StatusCode)
			}
		})
	}
}

// TestNoPlaintextSecretAtRest stores every kind of secret, refreshes, and
// then searches the database file, its WAL and shared memory for each.
func TestNoPlaintextSecretAtRest(t *testing.T) {
	h := newHarness(t)
	h.put(Credential{Host: host, Kind: store.OAuth, Secret: secret.New(initialRT)})
	h.put(Credential{Host: host, Kind: store.PAT, Org: "contoso", Secret: secret.New(patSecret)})
	h.put(Credential{Host: host, Kind: store.PAT, Secret: secret.New(patAllOrgs)})
	for i := range 3 {
		if a := h.token("contoso", 300); a.code != 200 {
			t.Fatalf("token %d = %d %s", i, a.code, a.raw)
		}
		h.clock.Add(2 * time.Hour)
	}
	secrets := []string{initialRT, patSecret, patAllOrgs, h.envTok.Reveal(), h.keys.Private.Encode()}
	for i := 1; i <= 3; i++ {
		secrets = append(secrets, fmt.Sprintf("rt-rotated-%d-secretvalue", i), fmt.Sprintf("at-%d-secretvalue", i))
	}
	files, _ := filepath.Glob(h.dbPath + "*")
	if len(files) < 2 {
		t.Fatalf("database files = %v; want the file and its WAL", files)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range secrets {
			if bytes.Contains(b, []byte(s)) {
				t.Errorf("%s holds a plaintext secret (%.6s…)", filepath.Base(f), s)
			}
		}
	}
	// The canary: the test can fail — the sealed refresh token does open.
	if h.storedRefreshToken(1) != "rt-rotated-3-secretvalue" {
		t.Errorf("stored refresh token is not the last rotation")
	}
}

// TestNoSecretInLogsOrMetrics drives every path and searches the log and
// /metrics for every secret.
func TestNoSecretInLogsOrMetrics(t *testing.T) {
	h := newHarness(t)
	h.put(Credential{Host: host, Kind: store.OAuth, Secret: secret.New(initialRT)})
	h.put(Credential{Host: host, Kind: store.PAT, Org: "contoso", Secret: secret.New(patSecret)})
	h.token("contoso", 300)
	h.token("fabrikam", 300)
	h.clock.Add(2 * time.Hour)
	h.entra.set(func(f *fakeEntra) { f.fail = &RefreshError{Class: Transient, Reason: "temporarily_unavailable"} })
	h.token("contoso", 300)
	h.entra.set(func(f *fakeEntra) { f.fail = nil; f.revoked = true })
	h.token("fabrikam", 300)
	h.ask("azdoenv_wrong", vaultapi.TokenRequest{Host: host})
	resp, err := h.srv.Client().Get(h.srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	m, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(m), `azdo_vault_refreshes_total{host="dev.azure.com",result="ok"} 1`) ||
		!strings.Contains(string(m), `azdo_vault_refresh_failures_total{host="dev.azure.com",reason="permanent:invalid_grant"} 1`) {
		t.Errorf("metrics lack the refresh series:\n%s", grepLines(string(m), "azdo_vault_refresh"))
	}
	out := h.logs.String() + string(m)
	for _, s := range []string{initialRT, patSecret, h.envTok.Reveal(), "rt-rotated-1-secretvalue", "at-1-secretvalue", "azdoenv_wrong"} {
		if strings.Contains(out, s) {
			t.Errorf("log or metrics contain %.8s…", s)
		}
	}
	if !strings.Contains(h.logs.String(), "refreshed") {
		t.Errorf("log has no refresh line; the search above proves nothing")
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func TestPutCredentialRefusesUnknownHostOrKind(t *testing.T) {
	h := newHarness(t)
	tests := []struct {
		name string
		c    Credential
	}{
		{name: "unknown host", c: Credential{Owner: "ann", Host: "example.com", Kind: store.PAT, Secret: secret.New("x")}},
		{name: "oauth on pat-only host", c: Credential{Owner: "ann", Host: "pat-only.example.test", Kind: store.OAuth, Secret: secret.New("x")}},
		{name: "no secret", c: Credential{Owner: "ann", Host: host, Kind: store.PAT}},
		{name: "no owner", c: Credential{Host: host, Kind: store.PAT, Secret: secret.New("x")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := h.v.PutCredential(context.Background(), tt.c); err == nil {
				t.Errorf("PutCredential(%s) = nil error; want refusal", tt.name)
			}
		})
	}
}

// TestCloseStopsRefreshInFlight: Close cancels a refresh that is waiting on
// the identity provider and returns once its goroutine is gone.
func TestCloseStopsRefreshInFlight(t *testing.T) {
	h := newHarness(t)
	h.put(Credential{Host: host, Kind: store.OAuth, Secret: secret.New(initialRT)})
	h.entra.set(func(f *fakeEntra) { f.gate = make(chan struct{}) }) // never opened
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	env, _ := h.st.EnvironmentByTokenHash(ctx, h.v.Binding().EnvTokenHash(h.envTok))
	errc := make(chan error, 1)
	go func() {
		_, err := h.v.Token(ctx, env, token.Key{Host: host, Org: "contoso"}, 0)
		errc <- err
	}()
	for h.entra.calls.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	closed := make(chan struct{})
	go func() { h.v.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return while a refresh was in flight")
	}
	if err := <-errc; err == nil {
		t.Errorf("Token during Close = nil error; want a failure")
	}
	if _, err := h.v.Token(ctx, env, token.Key{Host: host, Org: "contoso"}, 0); !errors.Is(err, token.ErrUnavailable) {
		t.Errorf("Token after Close = %v; want ErrUnavailable", err)
	}
}

// TestSetLinker: the Connect flow's links replace the default ones.
func TestSetLinker(t *testing.T) {
	h := newHarness(t)
	h.v.SetLinker(linkerFunc(func(_ context.Context, r LinkRequest) (string, error) {
		return "https://signed.example.test/c/" + r.Owner + "/" + r.Host, nil
	}))
	a := h.token("contoso", 0)
	if a.code != 404 || a.err.ConnectURL != "https://signed.example.test/c/ann/dev.azure.com" {
		t.Errorf("connect_url = %q (%d); want the installed linker's", a.err.ConnectURL, a.code)
	}
}

type linkerFunc func(context.Context, LinkRequest) (string, error)

func (f linkerFunc) ConnectURL(ctx context.Context, r LinkRequest) (string, error) { return f(ctx, r) }

// meddlingRefresher changes the stored credential while a refresh is at
// the provider, as another replica or the user would.
type meddlingRefresher struct {
	*fakeEntra
	meddle func(ctx context.Context)
}

func (m *meddlingRefresher) Refresh(ctx context.Context, rt secret.String) (Grant, error) {
	g, err := m.fakeEntra.Refresh(ctx, rt)
	if m.meddle != nil {
		m.meddle(ctx)
		m.meddle = nil
	}
	return g, err
}

func TestSaveGrantConflicts(t *testing.T) {
	tests := []struct {
		name       string
		change     func(c *store.Credential, h *harness)
		wantStored string // the refresh token the store ends with
		wantStatus store.Status
	}{
		{
			name: "another replica marked it reconnect_required: our fresh grant wins",
			change: func(c *store.Credential, h *harness) {
				c.Status, c.Reason = store.StatusReconnectRequired, "invalid_grant AADSTS70000"
			},
			wantStored: "rt-rotated-1-secretvalue",
			wantStatus: store.StatusOK,
		},
		{
			name: "another replica rotated it: theirs wins",
			change: func(c *store.Credential, h *harness) {
				c.Sealed, _ = sealbox.Seal(h.keys.Public, []byte("rt-other-replica-secretvalue"))
				c.MAC = h.v.Binding().CredentialMAC(*c)
			},
			wantStored: "rt-other-replica-secretvalue",
			wantStatus: store.StatusOK,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			c := h.put(Credential{Host: host, Kind: store.OAuth, Secret: secret.New(initialRT)})
			m := &meddlingRefresher{fakeEntra: h.entra}
			m.meddle = func(ctx context.Context) {
				cur, err := h.st.Credential(ctx, c.ID)
				if err != nil {
					t.Error(err)
					return
				}
				tt.change(&cur, h)
				if _, err := h.st.UpdateCredential(ctx, cur); err != nil {
					t.Error(err)
				}
			}
			h.v.setProvider(Provider{Host: host, OAuth: m, PAT: true})
			if a := h.token("contoso", 300); a.code != 200 || a.ok.Token != "at-1-secretvalue" {
				t.Fatalf("token = %d %s; want 200 at-1", a.code, a.raw)
			}
			if got := h.storedRefreshToken(c.ID); got != tt.wantStored {
				t.Errorf("stored refresh token = %q; want %q", got, tt.wantStored)
			}
			if sc, _ := h.st.Credential(context.Background(), c.ID); sc.Status != tt.wantStatus {
				t.Errorf("status = %q; want %q", sc.Status, tt.wantStatus)
			}
		})
	}
}

// TestRotationElsewhereKeepsCachedToken: another replica's rotation bumps
// the credential's version, but this replica's access token is still valid,
// so the next request is served from the cache instead of refreshing again
// (with requests alternating between replicas, retiring it would refresh
// and rotate on every request).
func TestRotationElsewhereKeepsCachedToken(t *testing.T) {
	h := newHarness(t)
	c := h.put(Credential{Host: host, Kind: store.OAuth, Secret: secret.New(initialRT)})
	first := h.token("contoso", 300)
	if first.code != 200 {
		t.Fatalf("token = %d %s; want 200", first.code, first.raw)
	}
	calls := h.entra.calls.Load()
	// Another replica rotates the stored grant.
	ctx := context.Background()
	sc, err := h.st.Credential(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	sc.Sealed, _ = sealbox.Seal(h.keys.Public, []byte("rt-rotated-elsewhere-secretvalue"))
	sc.MAC = h.v.Binding().CredentialMAC(sc)
	if _, err := h.st.UpdateCredential(ctx, sc); err != nil {
		t.Fatal(err)
	}
	again := h.token("contoso", 300)
	if again.code != 200 || again.ok.Token != first.ok.Token {
		t.Errorf("after a rotation elsewhere = %d %s; want 200 with the cached token", again.code, again.raw)
	}
	if got := h.entra.calls.Load(); got != calls {
		t.Errorf("refreshes after a rotation elsewhere = %d; want %d (served from the cache)", got-calls, 0)
	}
}
