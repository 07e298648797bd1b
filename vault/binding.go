package vault

import (
	"context"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"

	"github.com/azdo-sidecar/azdo-sidecar/sealbox"
	"github.com/azdo-sidecar/azdo-sidecar/secret"
	"github.com/azdo-sidecar/azdo-sidecar/vault/store"
)

// Binding holds the keys, derived from the runner's private key, that bind
// the store's rows to this runner: nobody who can write the store but lacks
// the runner key can make a row the vault accepts.
//
// NaCl anonymous boxes carry no additional authenticated data, and anyone
// holding the (public) runner public key can seal a value, so the seal
// alone says nothing about which row a value belongs to. Each credential
// therefore carries a MAC (HMAC-SHA256) over its owner, host, org, kind and
// sealed value; a value copied into another row, or a row forged with a
// value sealed by anyone, fails the check and is treated as absent. The
// credential ID is not covered: (owner, host, org, kind) is the row's
// unique key, so no two rows share what the MAC covers, and IDs are
// assigned by the database after the MAC is computed.
//
// Environment tokens are looked up by HMAC-SHA256(k, SHA-256(token)), so a
// row inserted with a hash of an attacker's choosing matches no token
// (existing rows, which hold SHA-256(token), are rekeyed in place at
// start), and each environment row carries a MAC over its ID, owner, keyed
// token hash and expiry, so an environment cannot be moved to another owner
// or given a longer life.
//
// The three keys are HKDF-SHA256 of the runner's private key with labels
// of their own, so none of them can stand for another or for the key
// itself.
type Binding struct {
	credKey, envKey, lookupKey []byte
}

// Labels of the derived keys (HKDF info). Never change them: every stored
// row is bound with them.
const (
	labelCredential = "azdo-vault credential-binding v1"
	labelEnvRow     = "azdo-vault environment-binding v1"
	labelEnvLookup  = "azdo-vault environment-token-hash v1"
)

// newBinding derives the binding keys from kp's private key.
func newBinding(kp sealbox.KeyPair) (*Binding, error) {
	if kp.Private.IsZero() {
		return nil, errors.New("vault: binding needs the runner's private key")
	}
	derive := func(label string) ([]byte, error) {
		k, err := hkdf.Key(sha256.New, kp.Private.Bytes(), nil, label, 32)
		if err != nil {
			return nil, fmt.Errorf("vault: derive %s: %w", label, err)
		}
		return k, nil
	}
	var b Binding
	var err error
	if b.credKey, err = derive(labelCredential); err != nil {
		return nil, err
	}
	if b.envKey, err = derive(labelEnvRow); err != nil {
		return nil, err
	}
	if b.lookupKey, err = derive(labelEnvLookup); err != nil {
		return nil, err
	}
	return &b, nil
}

// BindLegacyCommand is the one-time operator command that binds a store's
// unbound rows; errors that refuse such a store name it.
const BindLegacyCommand = "azdo-vault migrate --bind-legacy --store URL --key-file FILE"

// Bind derives the binding keys from the runner key pair. Every process
// that reads or writes rows with the runner key (serve, env create, env
// update) calls it first. It refuses a store that holds unbound rows
// (no MAC): nothing in the database tells a row written before binding
// existed from one written by someone with write access to the store but
// not the runner key, so such rows are bound only by an operator's
// explicit, one-time BindLegacy (azdo-vault migrate --bind-legacy), never
// at start.
func Bind(ctx context.Context, st store.Store, kp sealbox.KeyPair, log *slog.Logger) (*Binding, error) {
	b, err := newBinding(kp)
	if err != nil {
		return nil, err
	}
	creds, envs, err := st.CountUnbound(ctx)
	if err != nil {
		return nil, fmt.Errorf("vault: check the store's rows are bound to the runner key: %w", err)
	}
	if creds+envs > 0 {
		return nil, fmt.Errorf("vault: the store holds %d credentials and %d environments not bound to the runner key: written before row binding existed, or by someone with write access to the store but not the runner key. If this store was written by a version before row binding, stop the vault and run once: %s (it prints each row it binds); otherwise restore the store from a backup", creds, envs, BindLegacyCommand)
	}
	return b, nil
}

// BindLegacy binds, on an operator's explicit request, the rows of st
// written before row binding existed, and returns what it bound (Sealed
// and TokenHash left empty) so the operator can see it. A store holding
// bound rows next to unbound ones is refused (store.ErrBindingTampered).
func BindLegacy(ctx context.Context, st store.Store, kp sealbox.KeyPair) (store.Bound, error) {
	b, err := newBinding(kp)
	if err != nil {
		return store.Bound{}, err
	}
	bound, err := st.BindLegacy(ctx, b)
	if errors.Is(err, store.ErrBindingTampered) {
		return store.Bound{}, fmt.Errorf("vault: %w; refusing to bind its unbound rows, which anyone with write access to the store could have inserted. Restore the store from a backup taken before, or start from an empty store (users connect again and environments are created again)", err)
	}
	if err != nil {
		return store.Bound{}, fmt.Errorf("vault: bind stored rows to the runner key: %w", err)
	}
	return bound, nil
}

// field appends s to buf with its length first, so that no two lists of
// fields encode to the same bytes.
func field(buf []byte, s string) []byte {
	buf = binary.BigEndian.AppendUint32(buf, uint32(len(s)))
	return append(buf, s...)
}

func (b *Binding) mac(key []byte, label string, fields ...string) []byte {
	buf := field(nil, label)
	for _, f := range fields {
		buf = field(buf, f)
	}
	m := hmac.New(sha256.New, key)
	m.Write(buf)
	return m.Sum(nil)
}

// CredentialMAC implements store.Binder: the MAC of c's owner, host, org,
// kind and sealed value.
func (b *Binding) CredentialMAC(c store.Credential) []byte {
	return b.mac(b.credKey, "credential", c.Owner, c.Host, c.Org, string(c.Kind), c.Sealed)
}

// credentialOK reports whether c carries the MAC of its own row.
func (b *Binding) credentialOK(c store.Credential) bool {
	return len(c.MAC) > 0 && hmac.Equal(c.MAC, b.CredentialMAC(c))
}

// EnvTokenHash returns the keyed hash under which an environment token is
// stored: HMAC-SHA256(k, SHA-256(token)).
func (b *Binding) EnvTokenHash(tok secret.String) []byte {
	h := sha256.Sum256([]byte(tok.Reveal()))
	return b.rekey(h[:])
}

func (b *Binding) rekey(plain []byte) []byte {
	m := hmac.New(sha256.New, b.lookupKey)
	m.Write(plain)
	return m.Sum(nil)
}

// EnvironmentMAC returns the MAC of e's ID, owner, (keyed) token hash and
// expiry, and of its policy and policy version once it has one. Revocation is not covered: it must stay possible without the
// runner key (env revoke), and see the README on what that leaves open.
func (b *Binding) EnvironmentMAC(e store.Environment) []byte {
	var exp string
	if !e.ExpiresAt.IsZero() {
		// Seconds: every store keeps at least that precision.
		exp = fmt.Sprint(e.ExpiresAt.Unix())
	}
	if e.PolicyVersion == 0 && e.Policy.IsZero() {
		// An environment never given a policy: the fields of the rows
		// bound before policies existed.
		return b.mac(b.envKey, "environment", e.ID, e.Owner, string(e.TokenHash), exp)
	}
	// The policy and its version too, so that nobody without the runner
	// key can loosen, remove or renumber it. (A row never given one cannot
	// be given one either: its MAC would not match.)
	pol, _ := json.Marshal(e.Policy) // a struct of strings and a bool: cannot fail
	return b.mac(b.envKey, "environment", e.ID, e.Owner, string(e.TokenHash), exp, "policy", string(pol), fmt.Sprint(e.PolicyVersion))
}

// environmentOK reports whether e carries the MAC of its own row.
func (b *Binding) environmentOK(e store.Environment) bool {
	return len(e.MAC) > 0 && subtle.ConstantTimeCompare(e.MAC, b.EnvironmentMAC(e)) == 1
}

// BindEnvironment implements store.Binder for a row that still holds the
// plain SHA-256 of its token.
func (b *Binding) BindEnvironment(e store.Environment) (tokenHash, mac []byte) {
	e.TokenHash = b.rekey(e.TokenHash)
	return e.TokenHash, b.EnvironmentMAC(e)
}
