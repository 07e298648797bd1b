package connect

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/azdo-sidecar/azdo-sidecar/sealbox"
)

func testSigner(t testing.TB) *Signer {
	t.Helper()
	kp, err := sealbox.Generate()
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSigner(kp)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSignerVerify(t *testing.T) {
	s, other := testSigner(t), testSigner(t)
	now := time.Unix(1_800_000_000, 0)
	claims := Claims{Owner: "alice", Env: "env_1", Host: "dev.azure.com", Org: "contoso", Exp: now.Add(time.Minute).Unix(), Nonce: "n1"}
	good, err := s.Sign(claims)
	if err != nil {
		t.Fatal(err)
	}
	fromOther, _ := other.Sign(claims)
	payload, mac, _ := strings.Cut(good, ".")
	forged := base64.RawURLEncoding.EncodeToString([]byte(`{"v":1,"o":"mallory","h":"dev.azure.com","x":1900000000,"n":"n1"}`)) + "." + mac
	noNonce, _ := s.Sign(Claims{Owner: "alice", Host: "dev.azure.com", Exp: now.Add(time.Minute).Unix()})

	tests := []struct {
		name string
		in   string
		at   time.Time
		want error
	}{
		{"valid", good, now, nil},
		{"expired", good, now.Add(time.Minute), ErrLinkExpired},
		{"signed by another runner", fromOther, now, ErrLinkInvalid},
		{"payload changed", forged, now, ErrLinkInvalid},
		{"mac changed", payload + "." + strings.Repeat("A", len(mac)), now, ErrLinkInvalid},
		{"no mac", payload, now, ErrLinkInvalid},
		{"empty", "", now, ErrLinkInvalid},
		{"not base64", "!!!.???", now, ErrLinkInvalid},
		{"too long", good + strings.Repeat("A", maxLinkLen), now, ErrLinkInvalid},
		{"no nonce", noNonce, now, ErrLinkInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := s.Verify(tc.in, tc.at)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Verify(%.40q) = %+v, %v; want %v", tc.in, c, err, tc.want)
			}
			if err == nil && c.Owner != "alice" || err == nil && c.Org != "contoso" {
				t.Errorf("Verify(valid) = %+v; want the signed claims", c)
			}
		})
	}
}

func TestSignerTokens(t *testing.T) {
	s := testSigner(t)
	tok := s.Token("csrf", "session-a")
	if !s.CheckToken("csrf", "session-a", tok) {
		t.Errorf("CheckToken(own token) = false; want true")
	}
	for _, tc := range []struct{ name, purpose, v, tok string }{
		{"other session", "csrf", "session-b", tok},
		{"other purpose", "bind", "session-a", tok},
		{"empty", "csrf", "session-a", ""},
	} {
		if s.CheckToken(tc.purpose, tc.v, tc.tok) {
			t.Errorf("CheckToken(%s) = true; want false", tc.name)
		}
	}
}

// TestSignerNeverPrintsKey: the link key forges links; no verb prints it.
func TestSignerNeverPrintsKey(t *testing.T) {
	kp, err := sealbox.Generate()
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSigner(kp)
	if err != nil {
		t.Fatal(err)
	}
	dec := strings.Trim(fmt.Sprint(s.key), "[]")
	hex := fmt.Sprintf("%x", s.key)
	for _, verb := range []string{"%v", "%+v", "%#v", "%d", "%x", "%s"} {
		if out := fmt.Sprintf(verb, s); strings.Contains(out, dec) || strings.Contains(out, hex) {
			t.Errorf("Sprintf(%q, signer) = %s; want no key", verb, out)
		}
	}
}

func TestNewSignerNeedsKey(t *testing.T) {
	if _, err := NewSigner(sealbox.KeyPair{}); err == nil {
		t.Errorf("NewSigner(zero key) = nil error; want an error")
	}
}

func TestMemoryNonces(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	clock := func() time.Time { return now }
	n := NewMemoryNonces(clock, 2)
	ctx := context.Background()
	if err := n.Use(ctx, "a", now.Add(time.Minute)); err != nil {
		t.Fatalf("Use(a) = %v; want nil", err)
	}
	if err := n.Use(ctx, "a", now.Add(time.Minute)); !errors.Is(err, ErrLinkUsed) {
		t.Fatalf("Use(a) again = %v; want ErrLinkUsed", err)
	}
	if err := n.Use(ctx, "b", now.Add(time.Second)); err != nil {
		t.Fatalf("Use(b) = %v; want nil", err)
	}
	if err := n.Use(ctx, "c", now.Add(time.Minute)); !errors.Is(err, ErrBusy) {
		t.Fatalf("Use(c) beyond the bound = %v; want ErrBusy", err)
	}
	now = now.Add(2 * time.Second) // b expired: its room is reused
	if err := n.Use(ctx, "c", now.Add(time.Minute)); err != nil {
		t.Fatalf("Use(c) after b expired = %v; want nil", err)
	}
	if err := n.Use(ctx, "a", now.Add(time.Minute)); !errors.Is(err, ErrLinkUsed) {
		t.Fatalf("Use(a) after pruning = %v; want ErrLinkUsed", err)
	}
}

func TestMemoryFlows(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	f := NewMemoryFlows(func() time.Time { return now }, 0)
	ctx := context.Background()
	if err := f.Put(ctx, "s1", Flow{Owner: "alice", Expires: now.Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	if err := f.Put(ctx, "s2", Flow{Owner: "bob", Expires: now.Add(time.Second)}); err != nil {
		t.Fatal(err)
	}
	if got, err := f.Take(ctx, "s1"); err != nil || got.Owner != "alice" {
		t.Fatalf("Take(s1) = %+v, %v; want alice's flow", got, err)
	}
	if _, err := f.Take(ctx, "s1"); !errors.Is(err, ErrNoFlow) {
		t.Fatalf("Take(s1) again = %v; want ErrNoFlow", err)
	}
	now = now.Add(time.Second)
	if _, err := f.Take(ctx, "s2"); !errors.Is(err, ErrNoFlow) {
		t.Fatalf("Take(expired s2) = %v; want ErrNoFlow", err)
	}
}

// FuzzVerify: a link is untrusted input; Verify must never panic, and must
// accept nothing it did not sign.
func FuzzVerify(f *testing.F) {
	s := testSigner(f)
	good, _ := s.Sign(Claims{Owner: "alice", Host: "dev.azure.com", Exp: 1 << 40, Nonce: "n"})
	for _, seed := range []string{good, "", ".", "a.b", good + "x", strings.Replace(good, ".", "..", 1), "eyJ2IjoxfQ.AAAA"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in string) {
		c, err := s.Verify(in, time.Unix(0, 0))
		if err == nil && in != good {
			t.Fatalf("Verify(%q) = %+v; accepted a value it did not sign", in, c)
		}
	})
}

// TestSessionIsNeverALink: a session value (SignSession) does not verify
// as a link, nor a link as a session: the purposes are separate.
func TestSessionIsNeverALink(t *testing.T) {
	s := testSigner(t)
	now := time.Unix(1_800_000_000, 0)
	c := Claims{Owner: "ann", Host: "dev.azure.com", Exp: now.Add(time.Hour).Unix(), Nonce: "pat.n1"}
	sess, err := s.SignSession(c)
	if err != nil {
		t.Fatal(err)
	}
	link, err := s.Sign(c)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Verify(sess, now); !errors.Is(err, ErrLinkInvalid) {
		t.Errorf("Verify(session) = %v; want ErrLinkInvalid", err)
	}
	if _, err := s.VerifySession(link, now); !errors.Is(err, ErrLinkInvalid) {
		t.Errorf("VerifySession(link) = %v; want ErrLinkInvalid", err)
	}
	if got, err := s.VerifySession(sess, now); err != nil || got.Nonce != c.Nonce {
		t.Errorf("VerifySession(session) = %+v, %v; want the claims", got, err)
	}
}
