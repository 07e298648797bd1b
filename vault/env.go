package vault

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/azdo-sidecar/azdo-sidecar/secret"
	"github.com/azdo-sidecar/azdo-sidecar/token"
	"github.com/azdo-sidecar/azdo-sidecar/vault/store"
)

// EnvTokenPrefix starts every environment token, so that one found in a log
// or a repository is recognisable (and greppable by secret scanners).
const EnvTokenPrefix = "azdoenv_"

// NewEnvironment registers an environment for owner that expires after ttl
// (0: never) and returns it with its token. The token is 32 random bytes,
// shown to the caller once and stored only as its keyed hash, in a row
// bound to the runner key by b (see Binding).
func NewEnvironment(ctx context.Context, st store.Store, b *Binding, now time.Time, owner string, ttl time.Duration) (store.Environment, secret.String, error) {
	return NewEnvironmentWithPolicy(ctx, st, b, now, owner, ttl, store.Policy{})
}

// NewEnvironmentWithPolicy is NewEnvironment for an environment limited by
// policy (validated first; the zero Policy limits nothing). A policy given
// at creation is version 1.
func NewEnvironmentWithPolicy(ctx context.Context, st store.Store, b *Binding, now time.Time, owner string, ttl time.Duration, policy store.Policy) (store.Environment, secret.String, error) {
	if b == nil {
		return store.Environment{}, secret.String{}, errors.New("vault: creating an environment needs the runner key")
	}
	policy, err := ValidatePolicy(policy)
	if err != nil {
		return store.Environment{}, secret.String{}, err
	}
	if owner == "" {
		return store.Environment{}, secret.String{}, errors.New("vault: an environment needs an owner")
	}
	if ttl < 0 {
		return store.Environment{}, secret.String{}, errors.New("vault: environment ttl must not be negative")
	}
	var raw [32]byte
	var id [8]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return store.Environment{}, secret.String{}, fmt.Errorf("vault: environment token: %w", err)
	}
	if _, err := rand.Read(id[:]); err != nil {
		return store.Environment{}, secret.String{}, fmt.Errorf("vault: environment id: %w", err)
	}
	tok := secret.New(EnvTokenPrefix + base64.RawURLEncoding.EncodeToString(raw[:]))
	e := store.Environment{
		ID:        "env_" + hex.EncodeToString(id[:]),
		Owner:     owner,
		TokenHash: b.EnvTokenHash(tok),
		CreatedAt: now.UTC(),
	}
	if ttl > 0 {
		e.ExpiresAt = now.Add(ttl).UTC()
	}
	if !policy.IsZero() {
		e.Policy, e.PolicyVersion = policy, 1
	}
	e.MAC = b.EnvironmentMAC(e)
	if err := st.CreateEnvironment(ctx, e); err != nil {
		return store.Environment{}, secret.String{}, err
	}
	return e, tok, nil
}

// authenticate returns the environment that tok belongs to, if it is
// neither revoked nor expired at now. Every refusal is the same
// token.ErrUnauthorized, so a caller learns nothing about why; reason is
// for the log only.
func authenticate(ctx context.Context, st store.Store, b *Binding, now time.Time, tok secret.String) (e store.Environment, reason string, err error) {
	if tok.IsZero() {
		return store.Environment{}, "no bearer token", token.ErrUnauthorized
	}
	// The lookup is by a keyed hash, so its timing tells an attacker
	// nothing about the stored tokens; the constant-time compares below
	// keep the final decision free of early exits too.
	h := b.EnvTokenHash(tok)
	e, err = st.EnvironmentByTokenHash(ctx, h)
	if errors.Is(err, store.ErrNotFound) {
		return store.Environment{}, "unknown token", token.ErrUnauthorized
	}
	if err != nil {
		return store.Environment{}, "", err
	}
	if subtle.ConstantTimeCompare(h, e.TokenHash) != 1 {
		return store.Environment{}, "unknown token", token.ErrUnauthorized
	}
	if !b.environmentOK(e) {
		// Inserted or edited by someone without the runner key.
		return store.Environment{}, "environment row not bound to this runner's key (written without it)", token.ErrUnauthorized
	}
	if !e.RevokedAt.IsZero() {
		return e, "revoked", token.ErrUnauthorized
	}
	if !e.ExpiresAt.IsZero() && !now.Before(e.ExpiresAt) {
		return e, "expired", token.ErrUnauthorized
	}
	return e, "", nil
}
