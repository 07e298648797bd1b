package token

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"unicode"

	"github.com/azdo-sidecar/azdo-sidecar/secret"
)

// MaxSecretFileSize bounds the files ReadSecretFile accepts: a PAT is under
// 100 bytes and an environment token a few hundred; anything larger is the
// wrong file.
const MaxSecretFileSize = 64 << 10

// ErrBadSecretFile is wrapped by every ReadSecretFile failure that is about
// the file's content (empty, too large, more than one line).
var ErrBadSecretFile = errors.New("token: unusable secret file")

// NewStatic returns the Source of standalone mode: one personal access token
// presented as HTTP Basic with DefaultUsername, for every key, with no
// expiry (the cache keeps it until Azure DevOps rejects it). With an empty
// PAT every call fails with ErrNoCredential.
func NewStatic(pat secret.String) Source {
	return static{tok: Token{Kind: Basic, Username: DefaultUsername, Secret: pat}}
}

type static struct{ tok Token }

// String describes s without the PAT: fmt does not call the redacting
// methods of a secret.String reached through unexported fields.
func (s static) String() string { return "token.Static(" + s.tok.String() + ")" }

// Format makes every verb, %+v and %#v included, print String.
func (s static) Format(f fmt.State, _ rune) { fmt.Fprint(f, s.String()) }

func (s static) Token(ctx context.Context, key Key) (Token, error) {
	if err := ctx.Err(); err != nil {
		return Token{}, err
	}
	if s.tok.Secret.IsZero() {
		return Token{}, fmt.Errorf("token: standalone mode has no PAT for %s: %w", key, ErrNoCredential)
	}
	return s.tok, nil
}

// ReadPATFile reads a personal access token from path (--pat-file).
func ReadPATFile(path string) (secret.String, error) {
	return ReadSecretFile(path, "PAT")
}

// ReadSecretFile reads a one-line secret (a PAT, an environment token) from
// path: surrounding whitespace and the trailing newline are trimmed; an
// empty file, a file over MaxSecretFileSize and a value with inner
// whitespace or control characters are refused, and so is a file group or
// others may read or write (mode 0600 or stricter). Errors name the file and
// what was wrong, never the content. what names the secret in errors.
func ReadSecretFile(path, what string) (secret.String, error) {
	f, err := os.Open(path)
	if err != nil {
		// *PathError names the path and the reason only.
		return secret.String{}, fmt.Errorf("token: read %s file: %w", what, err)
	}
	defer f.Close()
	// A secret file others can read is a secret no longer (the vault
	// refuses its key file the same way).
	if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o077 != 0 {
		return secret.String{}, fmt.Errorf("%w: %s file %s has mode %04o, so others may read it; allowed: 0600 or stricter (chmod 600 %s)", ErrBadSecretFile, what, path, fi.Mode().Perm(), path)
	}
	b, err := io.ReadAll(io.LimitReader(f, MaxSecretFileSize+1))
	if err != nil {
		return secret.String{}, fmt.Errorf("token: read %s file %s: %w", what, path, err)
	}
	if len(b) > MaxSecretFileSize {
		return secret.String{}, fmt.Errorf("%w: %s file %s is larger than %d bytes", ErrBadSecretFile, what, path, MaxSecretFileSize)
	}
	v := strings.TrimSpace(string(b))
	if v == "" {
		return secret.String{}, fmt.Errorf("%w: %s file %s is empty", ErrBadSecretFile, what, path)
	}
	if strings.IndexFunc(v, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0 {
		return secret.String{}, fmt.Errorf("%w: %s file %s must hold one value on one line", ErrBadSecretFile, what, path)
	}
	return secret.New(v), nil
}
