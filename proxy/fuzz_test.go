package proxy

import (
	"encoding/base64"
	"net/http"
	"strings"
	"testing"
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
