// Package proxycred keeps the sidecar proxy's client credential: a random
// password for the user "azdo-sidecar", stored as the full proxy URL
// (http://azdo-sidecar:SECRET@127.0.0.1:3128) in a file under the state
// directory that only its owner can read.
//
// The file outlives the sidecar on purpose: a restarted sidecar reuses the
// password it finds there, so the git configuration setup wrote (which
// carries the same URL) keeps working without running setup again. Setup,
// run before the first serve, creates the file, and serve adopts it.
// Deleting the file rotates the password at the next start; setup must
// then be run again.
package proxycred

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/azdo-sidecar/azdo-sidecar/secret"
)

// User is the user name of the proxy credential.
const User = "azdo-sidecar"

// FileName is the credential file's name under the state directory.
const FileName = "proxy-url"

// ErrInsecure means the file is not a regular file owned by the current
// user that only the owner can read; its password must not be trusted.
var ErrInsecure = errors.New("proxycred: insecure proxy URL file")

// Path returns the credential file under stateDir.
func Path(stateDir string) string { return filepath.Join(stateDir, FileName) }

// NewPassword returns a fresh random password (192 bits, URL-safe).
func NewPassword() secret.String {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		panic("proxycred: crypto/rand: " + err.Error())
	}
	return secret.New(base64.RawURLEncoding.EncodeToString(b))
}

// URL returns base (http://host:port) with the credential as its user
// info.
func URL(base string, password secret.String) (secret.String, error) {
	u, err := url.Parse(base)
	if err != nil || u.Host == "" {
		return secret.String{}, fmt.Errorf("proxycred: proxy URL %q: want http://host:port", base)
	}
	u.User = url.UserPassword(User, password.Reveal())
	return secret.New(u.String()), nil
}

// Load returns the password in the file at path. It returns an error
// wrapping fs.ErrNotExist when there is none, ErrInsecure when the file
// could have been read or written by someone else, and another error when
// it holds no proxy URL of ours. Error messages never include the content.
func Load(path string) (secret.String, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return secret.String{}, fmt.Errorf("proxycred: %w", err)
	}
	if err := checkPrivate(path, fi); err != nil {
		return secret.String{}, err
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return secret.String{}, fmt.Errorf("proxycred: %w", err)
	}
	u, err := url.Parse(strings.TrimSpace(string(b)))
	if err != nil || u.User == nil || u.User.Username() != User {
		return secret.String{}, fmt.Errorf("proxycred: %s does not hold an azdo-sidecar proxy URL", path)
	}
	pass, ok := u.User.Password()
	if !ok || len(pass) < 16 {
		return secret.String{}, fmt.Errorf("proxycred: %s does not hold an azdo-sidecar proxy URL", path)
	}
	return secret.New(pass), nil
}

func checkPrivate(path string, fi fs.FileInfo) error {
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%w: %s is not a regular file", ErrInsecure, path)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Getuid() {
		return fmt.Errorf("%w: %s is owned by uid %d, not %d", ErrInsecure, path, st.Uid, os.Getuid())
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("%w: %s has mode %04o; want 0600", ErrInsecure, path, perm)
	}
	return nil
}

// Write replaces the file at path with base's URL carrying password,
// atomically, mode 0600.
func Write(path, base string, password secret.String) error {
	full, err := URL(base, password)
	if err != nil {
		return err
	}
	return WritePrivate(path, []byte(full.Reveal()+"\n"))
}

// Ensure returns the password in the file at path, creating the file with
// a new password and base's URL when there is none. An insecure or
// foreign file is an error: Ensure never trusts nor silently replaces it.
func Ensure(path, base string) (secret.String, error) {
	pass, err := Load(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return pass, err
	}
	pass = NewPassword()
	full, err := URL(base, pass)
	if err != nil {
		return secret.String{}, err
	}
	tmp, err := writeTemp(filepath.Dir(path), []byte(full.Reveal()+"\n"))
	if err != nil {
		return secret.String{}, err
	}
	defer os.Remove(tmp)
	// link, unlike rename, fails when a sidecar created the file meanwhile;
	// then its password is the one.
	if err := os.Link(tmp, path); errors.Is(err, fs.ErrExist) {
		return Load(path)
	} else if err != nil {
		return secret.String{}, fmt.Errorf("proxycred: %w", err)
	}
	return pass, nil
}

// WritePrivate replaces the file at path with data, atomically, mode 0600.
func WritePrivate(path string, data []byte) error {
	tmp, err := writeTemp(filepath.Dir(path), data)
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("proxycred: %w", err)
	}
	return nil
}

// writeTemp writes data to a new 0600 file in dir and returns its name.
func writeTemp(dir string, data []byte) (string, error) {
	f, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return "", fmt.Errorf("proxycred: %w", err)
	}
	// CreateTemp makes the file 0600 already; say so for the reader.
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		os.Remove(f.Name())
		return "", fmt.Errorf("proxycred: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(f.Name())
		return "", fmt.Errorf("proxycred: %w", err)
	}
	if err := f.Close(); err != nil {
		os.Remove(f.Name())
		return "", fmt.Errorf("proxycred: %w", err)
	}
	return f.Name(), nil
}
