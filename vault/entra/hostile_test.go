package entra_test

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
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/azdo-sidecar/azdo-sidecar/secret"
	"github.com/azdo-sidecar/azdo-sidecar/vault/entra"
)

// fakeIdP is a minimal, misbehaving identity provider: its token endpoint
// answers with whatever the test sets, and can echo the request's secrets.
type fakeIdP struct {
	srv    *httptest.Server
	answer func(w http.ResponseWriter, form url.Values)
}

func newFakeIdP(t *testing.T) *fakeIdP {
	t.Helper()
	f := &fakeIdP{}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /t/v2.0/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		base := f.srv.URL
		_ = json.NewEncoder(w).Encode(map[string]any{
			"issuer":                 base + "/t/v2.0",
			"authorization_endpoint": base + "/t/oauth2/v2.0/authorize",
			"token_endpoint":         base + "/t/oauth2/v2.0/token",
			"jwks_uri":               base + "/t/discovery/v2.0/keys",
		})
	})
	mux.HandleFunc("POST /t/oauth2/v2.0/token", func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		f.answer(w, r.PostForm)
	})
	f.srv = httptest.NewTLSServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeIdP) provider(t *testing.T, now func() time.Time) *entra.Provider {
	t.Helper()
	p, err := entra.New(context.Background(), entra.Config{
		IssuerURL:    f.srv.URL + "/t/oauth2/v2.0",
		ClientID:     clientID,
		ClientSecret: clientSecret,
		HTTPClient:   f.srv.Client(),
		Now:          now,
	})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestErrorsNeverEchoSecrets(t *testing.T) {
	f := newFakeIdP(t)
	rt := secret.New("0.refresh-token-that-must-stay-private")
	tests := []struct {
		name   string
		status int
		body   string
	}{
		{"json description echoes", 400, `{"error":"invalid_grant","error_description":"AADSTS50173: bad refresh_token=%s secret=%s","error_codes":[50173]}`},
		{"html page echoes", 502, `<html>upstream said refresh_token=%s client_secret=%s</html>`},
		{"form encoded echoes", 400, "error=invalid_grant&error_description=rt%%3D%s+cs%%3D%s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f.answer = func(w http.ResponseWriter, form url.Values) {
				if strings.HasPrefix(tt.body, "{") {
					w.Header().Set("Content-Type", "application/json")
				}
				w.WriteHeader(tt.status)
				fmt.Fprintf(w, tt.body, form.Get("refresh_token"), form.Get("client_secret"))
			}
			p := f.provider(t, time.Now)
			_, err := p.Refresh(context.Background(), rt)
			if err == nil {
				t.Fatal("Refresh = nil; want an error")
			}
			var e *entra.Error
			if !errors.As(err, &e) {
				t.Fatalf("Refresh = %T; want *entra.Error", err)
			}
			var logs bytes.Buffer
			slog.New(slog.NewJSONHandler(&logs, nil)).Error("refresh failed", "err", err, "reason", e.Reason(), "advice", e.Advice(), "detail", e)
			for _, s := range []secret.String{rt, clientSecret} {
				for name, text := range map[string]string{"Error()": err.Error(), "log": logs.String(), "%+v": fmt.Sprintf("%+v", e)} {
					if strings.Contains(text, s.Reveal()) {
						t.Errorf("%s holds a secret: %s", name, text)
					}
				}
			}
		})
	}
}

func TestRefreshExpiresIn(t *testing.T) {
	f := newFakeIdP(t)
	now := time.Date(2026, 11, 25, 5, 0, 0, 0, time.UTC)
	tests := []struct {
		name      string
		expiresIn string // JSON value, "" for absent
		rotate    bool
		want      time.Duration
	}{
		{"number", `4212`, true, 4212 * time.Second},
		{"string (v1 style)", `"3599"`, true, 3599 * time.Second},
		{"absent: short, never 3600", ``, false, entra.MissingExpiryLifetime},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f.answer = func(w http.ResponseWriter, form url.Values) {
				m := map[string]any{"access_token": "at-value", "token_type": "Bearer"}
				if tt.expiresIn != "" {
					m["expires_in"] = json.RawMessage(tt.expiresIn)
				}
				if tt.rotate {
					m["refresh_token"] = "rt-rotated"
				}
				if got := form.Get("scope"); got != strings.Join(entra.Scopes, " ") {
					t.Errorf("refresh scope = %q; want %q", got, strings.Join(entra.Scopes, " "))
				}
				w.Header().Set("Content-Type", "application/json")
				_ = json.NewEncoder(w).Encode(m)
			}
			g, err := f.provider(t, func() time.Time { return now }).Refresh(context.Background(), secret.New("rt-old"))
			if err != nil {
				t.Fatal(err)
			}
			if want := now.Add(tt.want); !g.ExpiresAt.Equal(want) {
				t.Errorf("ExpiresAt = %v; want %v", g.ExpiresAt, want)
			}
			if got := !g.RefreshToken.IsZero(); got != tt.rotate {
				t.Errorf("rotated = %t; want %t", got, tt.rotate)
			}
		})
	}
}

func TestResponseBodyLimited(t *testing.T) {
	f := newFakeIdP(t)
	f.answer = func(w http.ResponseWriter, form url.Values) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"access_token":"`)
		_, _ = io.Copy(w, io.LimitReader(neverEnding('a'), 4*entra.MaxResponseBytes))
		_, _ = io.WriteString(w, `"}`)
	}
	_, err := f.provider(t, time.Now).Refresh(context.Background(), secret.New("rt"))
	if entra.ClassOf(err) != entra.Transient {
		t.Errorf("Refresh(huge answer) = %v; want a transient error", err)
	}
}

type neverEnding byte

func (b neverEnding) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(b)
	}
	return len(p), nil
}
