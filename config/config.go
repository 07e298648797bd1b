// Package config reads the settings of azdo-sidecar and azdo-vault.
//
// Every setting is a command-line flag. Declaring a flag once gives it all
// four sources, in this order of precedence:
//
//  1. the flag itself (--vault-url URL);
//  2. the environment variable AZDO_<FLAG> in upper snake case
//     (AZDO_VAULT_URL); a repeatable flag's variable holds a comma-separated
//     list;
//  3. the YAML file named by --config (or AZDO_CONFIG), whose keys are the
//     flag names; "vault-url" and "vault_url" are the same key;
//  4. the flag's default.
//
// Prepare wires this into a cli.App. The typed readers (TokenSourceFrom,
// Hosts, ParseResolve, LoadVaultFile) validate values and return *Error
// values that name the offending key and say what is allowed.
package config

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// Sentinel errors, wrapped by *Error; check them with errors.Is.
var (
	// ErrUnknownKey: a YAML key that is no setting.
	ErrUnknownKey = errors.New("unknown key")
	// ErrBadValue: a value of the wrong form.
	ErrBadValue = errors.New("bad value")
	// ErrConflict: settings that exclude each other are both set.
	ErrConflict = errors.New("conflicting settings")
	// ErrMissing: a required setting is not set.
	ErrMissing = errors.New("missing setting")
	// ErrMissingFile: a file named by a setting does not exist.
	ErrMissingFile = errors.New("file not found")
	// ErrInsecureFile: a private file is readable or writable by group or others.
	ErrInsecureFile = errors.New("file accessible by group or others")
)

// Error is a configuration problem with one setting.
type Error struct {
	// Key names the setting: a flag name ("vault-url") or a path into a
	// YAML file ("providers[1].oauth.client_id").
	Key string
	// Err is one of the sentinel errors above.
	Err error
	// Detail says what is wrong and what is allowed. It never contains a
	// secret.
	Detail string
}

func (e *Error) Error() string {
	return e.Key + ": " + e.Detail
}

// Unwrap returns the sentinel.
func (e *Error) Unwrap() error { return e.Err }

func errorf(key string, sentinel error, detail string, args ...any) *Error {
	if len(args) > 0 {
		detail = fmt.Sprintf(detail, args...)
	}
	return &Error{Key: key, Err: sentinel, Detail: detail}
}

// EnvName returns the environment variable of a flag: "vault-url" ↔
// "AZDO_VAULT_URL".
func EnvName(flag string) string {
	return "AZDO_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// normalizeKey turns a YAML key into a flag name: "vault_url" → "vault-url".
func normalizeKey(k string) string { return strings.ReplaceAll(k, "_", "-") }

// quote quotes a user-supplied value for an error message. Values that carry
// userinfo ("https://user:pass@host", "pat@host") may hold a secret, so that
// part is replaced; everything else is shown so the user can see the typo.
func quote(v string) string {
	if i := strings.LastIndex(v, "@"); i >= 0 {
		if u, err := url.Parse(v); err == nil && u.User != nil {
			u.User = url.User("REDACTED")
			return strconv.Quote(u.String())
		}
		return strconv.Quote("REDACTED" + v[i:])
	}
	if len(v) > 200 {
		v = v[:200] + "…"
	}
	return strconv.Quote(v)
}
