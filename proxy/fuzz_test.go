package proxy

import (
	"encoding/base64"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/azdo-sidecar/azdo-sidecar/secret"
	"github.com/azdo-sidecar/azdo-sidecar/token"
)

// FuzzBasicUser: the client's Authorization header is untrusted input;
// basicUser must never panic and never return the password part.
func FuzzBasicUser(f *testing.F) {
	for _, s := range []string{
		"Basic " + base64.StdEncoding.EncodeToString([]byte("contoso:secret")),
		"Basic " + base64.StdEncoding.EncodeToString([]byte("nocolon")),
		"basic !!!", "Bearer abc", "Basic", "", "Basic " + base64.StdEncoding.EncodeToString([]byte(":only-pass")),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		h := http.Header{}
		h.Set("Authorization", v)
		user := basicUser(h)
		if strings.Contains(user, ":") {
			t.Errorf("basicUser(%q) = %q; contains the password separator", v, user)
		}
	})
}

// FuzzParseResolve: --resolve values come from flags, env and files.
func FuzzParseResolve(f *testing.F) {
	for _, s := range []string{"dev.azure.com:443:127.0.0.1", "dev.azure.com:443:127.0.0.1:8443", "[::1]:443:[::1]:1", "a:b:c", ":::", "x:1:"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseResolve([]string{s})
		if err != nil {
			return
		}
		for k, v := range r {
			if k == "" || v == "" {
				t.Errorf("ParseResolve(%q) = %v; empty key or value", s, r)
			}
		}
	})
}

// FuzzCanonicalHost: CONNECT targets and Host headers are untrusted.
func FuzzCanonicalHost(f *testing.F) {
	for _, s := range []string{"dev.azure.com:443", "DEV.azure.com.", "[::1]:443", "a:b:c", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c := canonicalHost(s, "443")
		if again := canonicalHost(c, "443"); again != c {
			t.Errorf("canonicalHost not idempotent: %q -> %q -> %q", s, c, again)
		}
	})
}

// FuzzScrubReader: whatever an upstream sends, in whatever pieces, the
// scrubbed body has the same length, holds none of the patterns, and
// differs from the input only where an occurrence was replaced by '*'.
func FuzzScrubReader(f *testing.F) {
	f.Add([]byte("Authorization: Basic "), uint16(3), uint8(7))
	f.Add([]byte(strings.Repeat("pat-SECRET-", 20)), uint16(0), uint8(1))
	f.Add([]byte{}, uint16(0), uint8(0))
	pats := reflections(token.Token{Kind: token.Basic, Secret: secret.New(testPAT)})
	f.Fuzz(func(t *testing.T, body []byte, at uint16, chunk uint8) {
		if int(at) <= len(body) {
			body = append(body[:at:at], append([]byte(testPAT), body[at:]...)...)
		}
		r := newScrubReader(io.NopCloser(&chunkReader{b: body, n: int(chunk%64) + 1}), pats, nil)
		got, err := io.ReadAll(r)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(body) {
			t.Fatalf("length %d; want %d", len(got), len(body))
		}
		if containsAny(got, pats) {
			t.Fatalf("a pattern survived: %q", got)
		}
		for i := range got {
			if got[i] != body[i] && got[i] != '*' {
				t.Fatalf("byte %d changed to %q", i, got[i])
			}
		}
	})
}

// chunkReader returns at most n bytes per Read.
type chunkReader struct {
	b []byte
	n int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), c.n)], c.b)
	c.b = c.b[n:]
	return n, nil
}
