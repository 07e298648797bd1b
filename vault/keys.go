package vault

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/azdo-sidecar/azdo-sidecar/sealbox"
	"github.com/azdo-sidecar/azdo-sidecar/secret"
)

// ErrKeyFileMode is returned by LoadKeyFile when the private key file can be
// read by its group or by others.
var ErrKeyFileMode = errors.New("vault: private key file is readable by group or others")

// WriteKeyFile generates the runner's key pair and writes the private key
// to path with mode 0600. It refuses to overwrite an existing file: losing
// the key loses every credential sealed to it.
func WriteKeyFile(path string) (sealbox.KeyPair, error) {
	kp, err := sealbox.Generate()
	if err != nil {
		return sealbox.KeyPair{}, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		msg := fmt.Sprintf("vault: %s already exists; refusing to overwrite a runner key (every credential sealed to it would be lost)", path)
		if old, lerr := LoadKeyFile(path); lerr == nil {
			// What the admin usually wanted: the public key to seal to.
			msg += fmt.Sprintf("; its public key is %s", old.Public)
		}
		return sealbox.KeyPair{}, errors.New(msg)
	}
	if err != nil {
		return sealbox.KeyPair{}, fmt.Errorf("vault: write key file: %w", err)
	}
	if _, err := f.WriteString(kp.Private.Encode() + "\n"); err != nil {
		f.Close()
		os.Remove(path)
		return sealbox.KeyPair{}, fmt.Errorf("vault: write key file: %w", err)
	}
	if err := f.Close(); err != nil {
		os.Remove(path)
		return sealbox.KeyPair{}, fmt.Errorf("vault: write key file: %w", err)
	}
	return kp, nil
}

// LoadKeyFile reads the runner's private key from path. It refuses a file
// that its group or others may read, naming the chmod that fixes it.
func LoadKeyFile(path string) (sealbox.KeyPair, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return sealbox.KeyPair{}, fmt.Errorf("vault: key file: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return sealbox.KeyPair{}, fmt.Errorf("%w: %s has mode %04o; run: chmod 600 %s", ErrKeyFileMode, path, fi.Mode().Perm(), path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return sealbox.KeyPair{}, fmt.Errorf("vault: key file: %w", err)
	}
	kp, err := sealbox.ParsePrivateKey(string(b))
	if err != nil {
		return sealbox.KeyPair{}, fmt.Errorf("vault: key file %s: %w", path, err)
	}
	return kp, nil
}

// OpenClientSecret opens a provider's client_secret_sealed with the runner's
// key. When it was sealed to another key, the error names this runner's
// public key so the administrator can seal it again.
func OpenClientSecret(kp sealbox.KeyPair, host, sealed string) (secret.String, error) {
	if sealed == "" {
		return secret.String{}, fmt.Errorf("vault: provider %s: client_secret_sealed is empty; seal the client secret with: azdo-vault seal --public-key %s", host, kp.Public)
	}
	b, err := kp.Open(sealed)
	if err != nil {
		return secret.String{}, fmt.Errorf("vault: provider %s: client_secret_sealed cannot be opened by this runner's key (public key %s); seal it again with: azdo-vault seal --public-key %s: %w", host, kp.Public, kp.Public, err)
	}
	return secret.New(string(b)), nil
}
