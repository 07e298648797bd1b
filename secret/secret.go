// Package secret holds values that must never be printed: tokens, PATs,
// refresh tokens, client secrets.
//
// A String redacts itself in every formatting path (fmt verbs, slog, JSON,
// text marshalling), so a secret that reaches a log line, an error message or
// a panic shows up as "[REDACTED]" instead of its value. The only way to get
// the value out is Reveal, which makes every use greppable.
package secret

import (
	"fmt"
	"log/slog"
)

// Redacted is what a String prints instead of its value.
const Redacted = "[REDACTED]"

// String is a secret string. The zero value is the empty secret.
//
// The value sits behind a pointer: fmt cannot call String or Format on a
// String kept in an unexported struct field (reflection gives it no method
// access), and would then print the struct's fields. Through the pointer it
// prints an address, never the value. Compare Strings with Equal, not ==.
type String struct {
	p *string
}

// New wraps v as a secret.
func New(v string) String {
	if v == "" {
		return String{}
	}
	return String{p: &v}
}

// Reveal returns the secret value. Call it only where the value is written to
// its one legitimate destination (an Authorization header, a sealed box, the
// git credential protocol).
func (s String) Reveal() string {
	if s.p == nil {
		return ""
	}
	return *s.p
}

// IsZero reports whether the secret is empty.
func (s String) IsZero() bool { return s.p == nil || *s.p == "" }

// Equal reports whether two secrets hold the same value.
func (s String) Equal(o String) bool { return s.Reveal() == o.Reveal() }

// String implements fmt.Stringer and redacts.
func (s String) String() string {
	if s.IsZero() {
		return ""
	}
	return Redacted
}

// GoString implements fmt.GoStringer and redacts, so %#v is safe too.
func (s String) GoString() string { return "secret.String(" + s.String() + ")" }

// Format implements fmt.Formatter so that every verb (%s %v %q %x %d...) redacts.
func (s String) Format(f fmt.State, verb rune) {
	switch verb {
	case 'q':
		fmt.Fprintf(f, "%q", s.String())
	default:
		fmt.Fprint(f, s.String())
	}
}

// LogValue implements slog.LogValuer and redacts.
func (s String) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalText implements encoding.TextMarshaler and redacts, which also
// covers encoding/json and YAML encoders. Wire formats that must carry the
// value use plain strings filled from Reveal.
func (s String) MarshalText() ([]byte, error) { return []byte(s.String()), nil }
