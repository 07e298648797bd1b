package vault

import (
	"net/http"
	"regexp"
	"testing"
	"time"

	"github.com/azdo-sidecar/azdo-sidecar/secret"
	"github.com/azdo-sidecar/azdo-sidecar/vault/store"
)

// TestMinValidHonoured: a cached token with less left than
// min_valid_seconds is refreshed whenever a fresh token could meet it; a
// min_valid no token can meet does not refresh on every request.
func TestMinValidHonoured(t *testing.T) {
	h := newHarness(t) // the fake identity provider issues 1h tokens
	h.put(Credential{Host: host, Kind: store.OAuth, Secret: secret.New(initialRT)})
	if a := h.token("contoso", 300); a.ok.Token != "at-1-secretvalue" {
		t.Fatalf("first token = %d %s; want at-1", a.code, a.raw)
	}
	h.clock.Add(10 * time.Minute) // 50 minutes left
	tests := []struct {
		name     string
		minValid int
		want     string
	}{
		{"less than what is left", 45 * 60, "at-1-secretvalue"},
		{"more than what is left, less than a lifetime", 55 * 60, "at-2-secretvalue"},
		{"more than a lifetime: served from memory", 2 * 3600, "at-2-secretvalue"},
	}
	for _, tt := range tests {
		a := h.token("contoso", tt.minValid)
		if a.code != 200 || a.ok.Token != tt.want {
			t.Errorf("%s: token(min_valid_seconds=%d) = %d %q; want %q", tt.name, tt.minValid, a.code, a.ok.Token, tt.want)
		}
	}
	if n := h.entra.calls.Load(); n != 2 {
		t.Errorf("refreshes = %d; want 2", n)
	}

	// Just under a lifetime: a token obtained moments ago is served (a
	// refresh would gain seconds and rotate the grant on every request);
	// once a tenth of its life has passed, min_valid is honoured again.
	h.clock.Add(5 * time.Second)
	if a := h.token("contoso", 3599); a.ok.Token != "at-2-secretvalue" {
		t.Errorf("token(min_valid_seconds=3599) 5s after a refresh = %d %q; want at-2 from memory", a.code, a.ok.Token)
	}
	h.clock.Add(7 * time.Minute)
	if a := h.token("contoso", 3599); a.ok.Token != "at-3-secretvalue" {
		t.Errorf("token(min_valid_seconds=3599) 7min after a refresh = %d %q; want at-3, refreshed", a.code, a.ok.Token)
	}
	if n := h.entra.calls.Load(); n != 3 {
		t.Errorf("refreshes = %d; want 3", n)
	}
}

// TestExpiresAtWholeSeconds: expires_at is plain RFC 3339 (no fraction),
// never later than the token's real expiry.
func TestExpiresAtWholeSeconds(t *testing.T) {
	h := newHarness(t)
	h.put(Credential{Host: host, Kind: store.OAuth, Secret: secret.New(initialRT)})
	h.clock.Add(1500 * time.Millisecond)
	a := h.token("contoso", 300)
	re := regexp.MustCompile(`"expires_at":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"`)
	if a.code != 200 || !re.MatchString(a.raw) {
		t.Fatalf("token = %d %s; want expires_at as YYYY-MM-DDTHH:MM:SSZ", a.code, a.raw)
	}
	if want := h.clock.Now().Add(time.Hour).Truncate(time.Second); !a.ok.ExpiresAt.Equal(want) {
		t.Errorf("expires_at = %v; want %v (rounded down)", a.ok.ExpiresAt, want)
	}
}

// TestSlowIdentityProviderAnswers503: a refresh that hangs holds a token
// request for MaxWait at most, then 503 with Retry-After; the refresh goes
// on and a later request gets its token without a second refresh.
func TestSlowIdentityProviderAnswers503(t *testing.T) {
	h := newHarness(t)
	h.v.maxWait = 100 * time.Millisecond
	h.put(Credential{Host: host, Kind: store.OAuth, Secret: secret.New(initialRT)})
	gate := make(chan struct{})
	h.entra.set(func(f *fakeEntra) { f.gate = gate })
	start := time.Now()
	a := h.token("contoso", 300)
	if took := time.Since(start); a.code != http.StatusServiceUnavailable || a.retryAfter == "" || took > 5*time.Second {
		t.Fatalf("token while the refresh hangs = %d Retry-After %q after %v; want 503 with Retry-After after about 100ms", a.code, a.retryAfter, took)
	}
	close(gate)
	deadline := time.Now().Add(5 * time.Second)
	for {
		a = h.token("contoso", 300)
		if a.code == http.StatusOK || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if a.code != http.StatusOK || a.ok.Token != "at-1-secretvalue" {
		t.Fatalf("token after the refresh finished = %d %s; want 200 at-1", a.code, a.raw)
	}
	if n := h.entra.calls.Load(); n != 1 {
		t.Errorf("refreshes = %d; want 1 (the slow one, shared)", n)
	}
}
