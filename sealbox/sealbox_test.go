package sealbox

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestSealOpenRoundTrip(t *testing.T) {
	kp, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := Seal(kp.Public, []byte("client-secret~value"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := kp.Open(sealed)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if string(got) != "client-secret~value" {
		t.Fatalf("Open = %q; want %q", got, "client-secret~value")
	}
}

func TestOpenWithOtherKeyFails(t *testing.T) {
	a, _ := Generate()
	b, _ := Generate()
	sealed, err := Seal(a.Public, []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Open(sealed); !errors.Is(err, ErrOpen) {
		t.Fatalf("Open with other key: err = %v; want ErrOpen", err)
	}
}

func TestPrivateKeyRoundTripAndDerive(t *testing.T) {
	kp, _ := Generate()
	parsed, err := ParsePrivateKey(kp.Private.Encode())
	if err != nil {
		t.Fatal(err)
	}
	if parsed.Public != kp.Public {
		t.Fatalf("derived public key %s; want %s", parsed.Public, kp.Public)
	}
	pub, err := ParsePublicKey(kp.Public.String())
	if err != nil || pub != kp.Public {
		t.Fatalf("ParsePublicKey = %v, %v", pub, err)
	}
	for _, f := range []string{"%v", "%s", "%#v", "%+v"} {
		if out := fmt.Sprintf(f, kp); strings.Contains(out, kp.Private.Encode()) {
			t.Fatalf("%s printed the private key: %s", f, out)
		}
	}
}

// TestPrivateKeyNeverPrints covers the paths where fmt cannot call the
// key's methods: verbs such as %d, and a key pair kept in an unexported
// struct field (as the vault keeps its own).
func TestPrivateKeyNeverPrints(t *testing.T) {
	kp, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	type holder struct{ kp KeyPair }
	raw := kp.Private.Bytes()
	dec := strings.Trim(fmt.Sprint(raw), "[]") // "12 34 ..."
	hex := fmt.Sprintf("%x", raw)
	tests := []struct {
		name string
		out  string
	}{
		{"%d key", fmt.Sprintf("%d", kp.Private)},
		{"%x key", fmt.Sprintf("%x", kp.Private)},
		{"%v pair", fmt.Sprintf("%v", kp)},
		{"%d pair", fmt.Sprintf("%d", kp)},
		{"%v unexported field", fmt.Sprintf("%v", holder{kp})},
		{"%+v unexported field", fmt.Sprintf("%+v", holder{kp})},
		{"%#v unexported field", fmt.Sprintf("%#v", holder{kp})},
		{"%x unexported field", fmt.Sprintf("%x", holder{kp})},
	}
	for _, tt := range tests {
		if strings.Contains(tt.out, dec) || strings.Contains(tt.out, hex) || strings.Contains(tt.out, kp.Private.Encode()) {
			t.Errorf("%s printed the private key: %s", tt.name, tt.out)
		}
	}
	if parsed, err := ParsePrivateKey(kp.Private.Encode()); err != nil || parsed.Private.Encode() != kp.Private.Encode() {
		t.Fatalf("ParsePrivateKey(Encode()) = %v, %v; want the same key", parsed, err)
	}
	if !(PrivateKey{}).IsZero() || kp.Private.IsZero() {
		t.Fatalf("IsZero: zero value %t, generated key %t; want true, false", (PrivateKey{}).IsZero(), kp.Private.IsZero())
	}
}

func TestParseErrors(t *testing.T) {
	for _, in := range []string{"", "!!!", "AAAA"} {
		if _, err := ParsePublicKey(in); err == nil {
			t.Errorf("ParsePublicKey(%q) = nil error; want an error", in)
		}
		if _, err := ParsePrivateKey(in); err == nil {
			t.Errorf("ParsePrivateKey(%q) = nil error; want an error", in)
		}
	}
}
