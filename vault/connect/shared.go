package connect

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"time"

	"github.com/azdo-sidecar/azdo-sidecar/sealbox"
	"github.com/azdo-sidecar/azdo-sidecar/secret"
	"github.com/azdo-sidecar/azdo-sidecar/vault/store"
)

// StateStore is the part of the vault's store that keeps Connect's state
// for every replica (store.Store has it).
type StateStore interface {
	UseNonce(ctx context.Context, hash []byte, expires time.Time) error
	NonceUsed(ctx context.Context, hash []byte) (bool, error)
	PutFlow(ctx context.Context, stateHash []byte, f store.Flow) error
	TakeFlow(ctx context.Context, stateHash []byte) (store.Flow, error)
}

// hashOf returns the SHA-256 of v with a purpose label. Nonces and states
// are 18 to 32 random bytes, so the hash alone cannot be reversed; the
// store holds only hashes, and a copy of it cannot finish a sign-in.
func hashOf(purpose, v string) []byte {
	h := sha256.New()
	h.Write([]byte(purpose))
	h.Write([]byte{0})
	h.Write([]byte(v))
	return h.Sum(nil)
}

// errStore means the shared store failed (it is down, or a sign-in was
// sealed to another runner's key): the pages say so instead of blaming the
// link.
var errStore = errors.New("connect: the vault's store is unavailable")

// StoreNonces is Nonces kept in the shared store, so a link spent on one
// replica is refused by all of them (and after a restart).
type StoreNonces struct {
	st StateStore
}

// NewStoreNonces returns Nonces kept in st.
func NewStoreNonces(st StateStore) *StoreNonces { return &StoreNonces{st: st} }

// Use implements Nonces.
func (n *StoreNonces) Use(ctx context.Context, nonce string, expires time.Time) error {
	err := n.st.UseNonce(ctx, hashOf("link nonce", nonce), expires)
	if errors.Is(err, store.ErrUsed) {
		return ErrLinkUsed
	}
	if err != nil {
		return fmt.Errorf("%w: %w", errStore, err)
	}
	return nil
}

// Used implements Nonces.
func (n *StoreNonces) Used(ctx context.Context, nonce string) (bool, error) {
	used, err := n.st.NonceUsed(ctx, hashOf("link nonce", nonce))
	if err != nil {
		return false, fmt.Errorf("%w: %w", errStore, err)
	}
	return used, nil
}

// StoreFlows is Flows kept in the shared store, so the OAuth callback may
// reach another replica than /connect did. The state is stored as its
// hash and the PKCE verifier sealed to the runner's public key: only a
// replica holding the runner's private key can open it.
type StoreFlows struct {
	st   StateStore
	keys sealbox.KeyPair
}

// NewStoreFlows returns Flows kept in st, with verifiers sealed to keys.
func NewStoreFlows(st StateStore, keys sealbox.KeyPair) *StoreFlows {
	return &StoreFlows{st: st, keys: keys}
}

// Put implements Flows.
func (s *StoreFlows) Put(ctx context.Context, state string, f Flow) error {
	sealed, err := sealbox.Seal(s.keys.Public, []byte(f.Verifier.Reveal()))
	if err != nil {
		return fmt.Errorf("connect: seal PKCE verifier: %w", err)
	}
	err = s.st.PutFlow(ctx, hashOf("oauth state", state), store.Flow{
		Owner: f.Owner, Env: f.Env, Host: f.Host, Org: f.Org,
		SealedVerifier: sealed, Nonce: f.Nonce, Expires: f.Expires,
	})
	if err != nil {
		return fmt.Errorf("%w: %w", errStore, err)
	}
	return nil
}

// Take implements Flows.
func (s *StoreFlows) Take(ctx context.Context, state string) (Flow, error) {
	sf, err := s.st.TakeFlow(ctx, hashOf("oauth state", state))
	if errors.Is(err, store.ErrNotFound) {
		return Flow{}, ErrNoFlow
	}
	if err != nil {
		return Flow{}, fmt.Errorf("%w: %w", errStore, err)
	}
	v, err := s.keys.Open(sf.SealedVerifier)
	if err != nil {
		// Sealed by a replica with another runner key: this one cannot
		// finish that sign-in.
		return Flow{}, fmt.Errorf("%w: open PKCE verifier: %w", errStore, err)
	}
	return Flow{Owner: sf.Owner, Env: sf.Env, Host: sf.Host, Org: sf.Org,
		Verifier: secret.New(string(v)), Nonce: sf.Nonce, Expires: sf.Expires}, nil
}

var (
	_ Nonces = (*StoreNonces)(nil)
	_ Flows  = (*StoreFlows)(nil)
)
