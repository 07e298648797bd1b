package vault

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/azdo-sidecar/azdo-sidecar/secret"
	"github.com/azdo-sidecar/azdo-sidecar/vault/store"
	"github.com/azdo-sidecar/azdo-sidecar/vaultapi"
)

func (h *harness) wait(ctx context.Context, req vaultapi.ConnectWaitRequest) (vaultapi.ConnectWaitResponse, int) {
	h.t.Helper()
	body, _ := json.Marshal(req)
	r, _ := http.NewRequestWithContext(ctx, http.MethodPost, h.srv.URL+vaultapi.ConnectWaitPath, bytes.NewReader(body))
	r.Header.Set("Authorization", "Bearer "+h.envTok.Reveal())
	resp, err := h.srv.Client().Do(r)
	if err != nil {
		h.t.Errorf("POST %s: %v", vaultapi.ConnectWaitPath, err)
		return vaultapi.ConnectWaitResponse{}, -1
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out vaultapi.ConnectWaitResponse
	json.Unmarshal(b, &out)
	return out, resp.StatusCode
}

func TestConnectWaitEndsWhenTheUserConnects(t *testing.T) {
	h := newHarness(t)
	first, code := h.wait(context.Background(), vaultapi.ConnectWaitRequest{Host: host, Org: "contoso"})
	if code != 200 || first.State != vaultapi.WaitWaiting || first.ConnectURL == "" || first.PATURL == "" {
		t.Fatalf("first wait = %d %+v; want 200 waiting with connect_url and pat_url", code, first)
	}
	type result struct {
		r    vaultapi.ConnectWaitResponse
		code int
		took time.Duration
	}
	done := make(chan result, 1)
	go func() {
		start := time.Now()
		r, code := h.wait(context.Background(), vaultapi.ConnectWaitRequest{Host: host, Org: "contoso", WaitSeconds: 30, Cursor: first.Cursor})
		done <- result{r, code, time.Since(start)}
	}()
	time.Sleep(300 * time.Millisecond)
	select {
	case r := <-done:
		t.Fatalf("wait ended before anyone connected: %+v", r)
	default:
	}
	connectedAt := time.Now()
	h.put(Credential{Host: host, Kind: store.OAuth, Secret: secret.New(initialRT), Env: h.env.ID, Identity: "ann@contoso.com"})
	r := <-done
	if r.code != 200 || r.r.State != vaultapi.WaitConnected || r.r.Identity != "ann@contoso.com" || r.r.Kind != "oauth" {
		t.Fatalf("wait = %d %+v; want connected as ann@contoso.com (oauth)", r.code, r.r)
	}
	if late := time.Since(connectedAt); late > 3*time.Second {
		t.Errorf("wait ended %v after the connection; want within 3s", late)
	}
	// Connected already: the first call says so at once.
	if got, _ := h.wait(context.Background(), vaultapi.ConnectWaitRequest{Host: host, Org: "contoso", WaitSeconds: 30}); got.State != vaultapi.WaitConnected {
		t.Errorf("wait when connected = %+v; want connected", got)
	}
}

func TestConnectWaitSeesWhatHappenedBetweenPolls(t *testing.T) {
	h := newHarness(t)
	first, _ := h.wait(context.Background(), vaultapi.ConnectWaitRequest{Host: host})
	// The user connects with a PAT between two long-polls.
	h.put(Credential{Host: host, Kind: store.PAT, Org: store.AllOrgs, Secret: secret.New(patAllOrgs), Env: h.env.ID})
	start := time.Now()
	r, _ := h.wait(context.Background(), vaultapi.ConnectWaitRequest{Host: host, WaitSeconds: 30, Cursor: first.Cursor})
	if r.State != vaultapi.WaitConnected || r.Kind != "pat" || r.Identity != "" {
		t.Fatalf("wait = %+v; want connected with a PAT", r)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("wait took %v; want an answer at once", d)
	}
}

func TestConnectWaitEndsWithAFailedLink(t *testing.T) {
	h := newHarness(t)
	first, _ := h.wait(context.Background(), vaultapi.ConnectWaitRequest{Host: host, Org: "contoso"})
	done := make(chan vaultapi.ConnectWaitResponse, 1)
	go func() {
		r, _ := h.wait(context.Background(), vaultapi.ConnectWaitRequest{Host: host, Org: "contoso", WaitSeconds: 30, Cursor: first.Cursor})
		done <- r
	}()
	time.Sleep(200 * time.Millisecond)
	// Another environment's failed link does not end this wait.
	h.v.ConnectFailed(context.Background(), defaultUser, "other-env", host, store.OAuth, "not this one")
	h.v.ConnectFailed(context.Background(), "someone-else", h.env.ID, host, store.OAuth, "not this one either")
	time.Sleep(1500 * time.Millisecond)
	select {
	case r := <-done:
		t.Fatalf("wait ended on another environment's or owner's failure: %+v", r)
	default:
	}
	h.v.ConnectFailed(context.Background(), defaultUser, h.env.ID, host, store.OAuth, "signed in as mallory@contoso.com, not ann")
	select {
	case r := <-done:
		if r.State != vaultapi.WaitFailed || !strings.Contains(r.Reason, "mallory") || r.ConnectURL == "" {
			t.Errorf("wait = %+v; want failed with the reason and fresh links", r)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("wait did not end on its link's failure")
	}
}

func TestConnectWaitTimesOutWithLinks(t *testing.T) {
	h := newHarness(t)
	start := time.Now()
	r, code := h.wait(context.Background(), vaultapi.ConnectWaitRequest{Host: host, Org: "contoso", WaitSeconds: 1, Cursor: 0})
	if code != 200 || r.State != vaultapi.WaitWaiting || r.ConnectURL == "" {
		t.Fatalf("wait = %d %+v; want waiting with links", code, r)
	}
	if d := time.Since(start); d < time.Second || d > 4*time.Second {
		t.Errorf("wait of 1s took %v", d)
	}
	for _, req := range []vaultapi.ConnectWaitRequest{{Host: ""}, {Host: host, WaitSeconds: -1}, {Host: host, Cursor: -1}} {
		if _, code := h.wait(context.Background(), req); code != http.StatusBadRequest {
			t.Errorf("wait(%+v) = %d; want 400", req, code)
		}
	}
}

// countingStore counts the store's queries.
type countingStore struct {
	store.Store
	n, events atomic.Int64
}

func (c *countingStore) EnvironmentByTokenHash(ctx context.Context, h []byte) (store.Environment, error) {
	c.n.Add(1)
	return c.Store.EnvironmentByTokenHash(ctx, h)
}
func (c *countingStore) Credentials(ctx context.Context, owner, host string) ([]store.Credential, error) {
	c.n.Add(1)
	return c.Store.Credentials(ctx, owner, host)
}
func (c *countingStore) ConnectEvents(ctx context.Context, after int64) ([]store.ConnectEvent, error) {
	c.n.Add(1)
	c.events.Add(1)
	return c.Store.ConnectEvents(ctx, after)
}
func (c *countingStore) LastConnectEventID(ctx context.Context) (int64, error) {
	c.n.Add(1)
	return c.Store.LastConnectEventID(ctx)
}

// TestConnectWaitCost: 200 environments waiting at once cost the store
// one events query per second (the replica's one poller), not one per
// waiter; each long-poll costs a few queries at its start and end only.
// BENCHMARKS.md quotes its output (go test -run TestConnectWaitCost -v ./vault).
func TestConnectWaitCost(t *testing.T) {
	h := newHarness(t)
	h.close()
	st, err := store.OpenSQLite(context.Background(), h.dbPath, h.clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	cs := &countingStore{Store: st}
	v, err := New(Config{Keys: h.keys, Store: cs, Providers: []Provider{{Host: host, OAuth: h.entra, PAT: true}}, PublicURL: publicURL, Now: h.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	hs := httptest.NewServer(v.Mux())
	defer hs.Close()
	ts := hs.URL
	const waiters, hold = 200, 4
	var wg sync.WaitGroup
	start := time.Now()
	before := cs.n.Load()
	for range waiters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body, _ := json.Marshal(vaultapi.ConnectWaitRequest{Host: host, WaitSeconds: hold, Cursor: 1})
			r, _ := http.NewRequest(http.MethodPost, ts+vaultapi.ConnectWaitPath, bytes.NewReader(body))
			r.Header.Set("Authorization", "Bearer "+h.envTok.Reveal())
			resp, err := http.DefaultClient.Do(r)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
		}()
	}
	wg.Wait()
	took := time.Since(start)
	queries := cs.n.Load() - before
	polls := float64(cs.events.Load())
	perWaiter := float64(queries-int64(polls)) / waiters
	t.Logf("%d waiters held %ds each: %d store queries in %v: %.0f events queries (the poller), %.1f per long-poll (authentication, state at start and end)", waiters, hold, queries, took.Round(time.Millisecond), polls, perWaiter)
	longPoll := 50.0 // the sidecar's wait_seconds
	t.Logf("at the sidecar's %gs long-poll: %.1f requests/s and %.1f queries/s for %d waiting environments", longPoll, waiters/longPoll, waiters/longPoll*perWaiter+1, waiters)
	if polls > took.Seconds()+2 {
		t.Errorf("%v events queries in %v of waiting; want about one a second", polls, took)
	}
	if perWaiter > 4 {
		t.Errorf("%.1f queries per long-poll; want at most 4", perWaiter)
	}
}

// setProvider replaces one host's provider, the others kept.
func (v *Vault) setProvider(p Provider) {
	m := map[string]Provider{}
	for h, q := range v.providerMap() {
		m[h] = q
	}
	m[p.Host] = p
	v.provs.Store(&m)
}

// TestConnectWaitForbiddenByPolicy: /v1/connect/wait applies the
// environment's policy as /v1/token does: a host or organization the
// policy does not allow is 403 forbidden_by_policy, without links.
func TestConnectWaitForbiddenByPolicy(t *testing.T) {
	h := policyHarness(t, store.Policy{AllowRepos: []string{"dev.azure.com/contoso/Fabrikam/web"}})
	for _, req := range []vaultapi.ConnectWaitRequest{{Host: host, Org: "fabrikam"}, {Host: "fabrikam.visualstudio.com"}, {Host: host}} {
		body, _ := json.Marshal(req)
		r, _ := http.NewRequest(http.MethodPost, h.srv.URL+vaultapi.ConnectWaitPath, bytes.NewReader(body))
		r.Header.Set("Authorization", "Bearer "+h.envTok.Reveal())
		resp, err := h.srv.Client().Do(r)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var er vaultapi.ErrorResponse
		json.Unmarshal(b, &er)
		if resp.StatusCode != http.StatusForbidden || er.Error != vaultapi.ErrForbiddenByPolicy || er.ConnectURL != "" {
			t.Errorf("wait for %+v = %d %s; want 403 forbidden_by_policy without links", req, resp.StatusCode, b)
		}
	}
	if got, code := h.wait(context.Background(), vaultapi.ConnectWaitRequest{Host: host, Org: "contoso"}); code != http.StatusOK || got.State != vaultapi.WaitConnected {
		t.Errorf("wait for the allowed org = %d %+v; want 200 connected", code, got)
	}
}

// TestPATExpiringSoonComesWithANotice: from 7 days before a stored PAT
// expires, its token answer carries a notice with the date and a PAT
// link; earlier it does not.
func TestPATExpiringSoonComesWithANotice(t *testing.T) {
	h := newHarness(t)
	exp := h.clock.Now().Add(3 * 24 * time.Hour)
	h.put(Credential{Host: host, Org: "contoso", Kind: store.PAT, Secret: secret.New(patSecret), ExpiresAt: exp})
	a := h.token("contoso", 300)
	if a.code != 200 || !strings.Contains(a.ok.Notice, "expires on "+exp.Format(time.DateOnly)) || !strings.Contains(a.ok.Notice, "/pat?") || strings.Contains(a.ok.Notice, patSecret) {
		t.Fatalf("token for a PAT expiring in 3 days = %d, notice %q; want the date and a PAT link", a.code, a.ok.Notice)
	}
	h.put(Credential{Host: host, Org: "contoso", Kind: store.PAT, Secret: secret.New(patSecret), ExpiresAt: h.clock.Now().Add(30 * 24 * time.Hour)})
	if a := h.token("contoso", 300); a.code != 200 || a.ok.Notice != "" {
		t.Errorf("token for a PAT expiring in 30 days = %d, notice %q; want none", a.code, a.ok.Notice)
	}
}
