// Package sealbox seals and opens secrets with NaCl anonymous boxes
// (X25519 + XSalsa20-Poly1305, libsodium's crypto_box_seal), the scheme the
// runner uses for its OAuth client secrets, for users' credentials at rest
// and for tokens sent to an environment.
//
// Keys and sealed values travel as standard base64.
package sealbox

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strings"

	"golang.org/x/crypto/nacl/box"
)

// KeySize is the size of an X25519 key.
const KeySize = 32

// Overhead is what sealing adds to a message (ephemeral key + tag).
const Overhead = box.AnonymousOverhead

// ErrOpen is returned when a sealed value cannot be opened with the key at
// hand: it was sealed to another key, or it was altered.
var ErrOpen = errors.New("sealbox: cannot open: sealed to another key or corrupted")

// PublicKey is an X25519 public key.
type PublicKey [KeySize]byte

// PrivateKey is an X25519 private key. It prints as "[REDACTED]" with
// every fmt verb. The key sits behind a pointer, as secret.String's value
// does: fmt cannot call methods on a key kept in an unexported struct field
// (a Vault's, say) and would print its 32 bytes; through the pointer it
// prints an address. The zero value is no key (IsZero).
type PrivateKey struct {
	k *[KeySize]byte
}

// IsZero reports whether p holds no key (or one of all zero bytes).
func (p PrivateKey) IsZero() bool { return p.k == nil || *p.k == [KeySize]byte{} }

// Bytes returns a copy of the key material, for key derivation.
func (p PrivateKey) Bytes() []byte {
	if p.k == nil {
		return make([]byte, KeySize)
	}
	return append([]byte(nil), p.k[:]...)
}

// array returns the key as an array (zeros when there is none).
func (p PrivateKey) array() [KeySize]byte {
	if p.k == nil {
		return [KeySize]byte{}
	}
	return *p.k
}

// KeyPair is a private key with its public key.
type KeyPair struct {
	Public  PublicKey
	Private PrivateKey
}

// Generate creates a key pair from crypto/rand.
func Generate() (KeyPair, error) {
	return GenerateFrom(rand.Reader)
}

// GenerateFrom creates a key pair from r.
func GenerateFrom(r io.Reader) (KeyPair, error) {
	pub, priv, err := box.GenerateKey(r)
	if err != nil {
		return KeyPair{}, fmt.Errorf("sealbox: generate key: %w", err)
	}
	return KeyPair{Public: *pub, Private: PrivateKey{k: priv}}, nil
}

// String returns the standard base64 form of the public key.
func (p PublicKey) String() string { return base64.StdEncoding.EncodeToString(p[:]) }

// String redacts: a private key is never printed.
func (PrivateKey) String() string { return "[REDACTED]" }

// GoString redacts.
func (PrivateKey) GoString() string { return "sealbox.PrivateKey([REDACTED])" }

// Format implements fmt.Formatter so that every verb (%d and %x included)
// redacts.
func (p PrivateKey) Format(f fmt.State, verb rune) {
	switch {
	case verb == 'v' && f.Flag('#'):
		fmt.Fprint(f, p.GoString())
	case verb == 'q':
		fmt.Fprintf(f, "%q", p.String())
	default:
		fmt.Fprint(f, p.String())
	}
}

// Encode returns the standard base64 form of the private key, for the key file.
func (p PrivateKey) Encode() string {
	a := p.array()
	return base64.StdEncoding.EncodeToString(a[:])
}

// ParsePublicKey decodes a standard base64 public key of 32 bytes.
func ParsePublicKey(s string) (PublicKey, error) {
	var k PublicKey
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil {
		return k, fmt.Errorf("sealbox: public key is not standard base64: %w", err)
	}
	if len(b) != KeySize {
		return k, fmt.Errorf("sealbox: public key has %d bytes; want %d", len(b), KeySize)
	}
	copy(k[:], b)
	return k, nil
}

// ParsePrivateKey decodes a standard base64 private key of 32 bytes and
// derives its public key. Errors never include the key material.
func ParsePrivateKey(s string) (KeyPair, error) {
	var kp KeyPair
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil {
		return kp, errors.New("sealbox: private key is not standard base64")
	}
	if len(b) != KeySize {
		return kp, fmt.Errorf("sealbox: private key has %d bytes; want %d", len(b), KeySize)
	}
	var k [KeySize]byte
	copy(k[:], b)
	kp.Private = PrivateKey{k: &k}
	pub, err := publicFromPrivate(kp.Private)
	if err != nil {
		return kp, err
	}
	kp.Public = pub
	return kp, nil
}

// Seal seals msg to pub and returns the standard base64 of the box.
func Seal(pub PublicKey, msg []byte) (string, error) {
	k := [KeySize]byte(pub)
	out, err := box.SealAnonymous(nil, msg, &k, rand.Reader)
	if err != nil {
		return "", fmt.Errorf("sealbox: seal: %w", err)
	}
	return base64.StdEncoding.EncodeToString(out), nil
}

// Open opens a standard base64 sealed box with kp.
func (kp KeyPair) Open(sealed string) ([]byte, error) {
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(sealed))
	if err != nil {
		return nil, errors.New("sealbox: sealed value is not standard base64")
	}
	pub := [KeySize]byte(kp.Public)
	priv := kp.Private.array()
	out, ok := box.OpenAnonymous(nil, b, &pub, &priv)
	if !ok {
		return nil, ErrOpen
	}
	return out, nil
}
