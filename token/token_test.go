package token

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/azdo-sidecar/azdo-sidecar/secret"
)

func TestAuthorizationHeader(t *testing.T) {
	tests := []struct {
		name string
		tok  Token
		want string
	}{
		{"bearer", Token{Kind: Bearer, Secret: secret.New("eyJ0")}, "Bearer eyJ0"},
		{"basic default user", Token{Kind: Basic, Secret: secret.New("pat")},
			"Basic " + base64.StdEncoding.EncodeToString([]byte(DefaultUsername+":pat"))},
		{"basic named user", Token{Kind: Basic, Username: "me", Secret: secret.New("pat")},
			"Basic " + base64.StdEncoding.EncodeToString([]byte("me:pat"))},
	}
	for _, tt := range tests {
		if got := tt.tok.AuthorizationHeader(); got != tt.want {
			t.Errorf("%s: AuthorizationHeader() = %q; want %q", tt.name, got, tt.want)
		}
	}
}

func TestValid(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	tok := Token{Kind: Bearer, Secret: secret.New("x"), ExpiresAt: now.Add(10 * time.Minute)}
	if !tok.Valid(now, 5*time.Minute) {
		t.Error("token with 10m left is not valid for 5m")
	}
	if tok.Valid(now, 10*time.Minute) {
		t.Error("token with exactly 10m left is valid for 10m")
	}
	if (Token{Kind: Basic}).Valid(now, 0) {
		t.Error("empty token is valid")
	}
}

func TestStringsNeverCarrySecret(t *testing.T) {
	tok := Token{Kind: Basic, Secret: secret.New("topsecretpat"), ExpiresAt: time.Unix(0, 0)}
	ce := &ConnectError{Key: Key{Host: "dev.azure.com", Org: "o"}, Reconnect: true, Reason: "AADSTS50173", ConnectURL: "https://r/connect?x"}
	for _, s := range []string{tok.String(), fmt.Sprintf("%v %+v %#v", tok, tok, tok), ce.Error()} {
		if strings.Contains(s, "topsecretpat") {
			t.Errorf("leaked: %s", s)
		}
	}
	if !strings.Contains(ce.Error(), "reconnect") || !strings.Contains(ce.Error(), "https://r/connect?x") {
		t.Errorf("ConnectError = %q; want reconnect and the URL", ce.Error())
	}
	var err error = &RetryAfterError{After: time.Second, Err: ErrUnavailable}
	if !errors.Is(err, ErrUnavailable) {
		t.Error("RetryAfterError does not unwrap to ErrUnavailable")
	}
}
