package config

import (
	"strings"
	"testing"
)

// FuzzNormalizeHost: a normalized host is accepted again unchanged, and it
// never carries a scheme, user, path or white space.
func FuzzNormalizeHost(f *testing.F) {
	for _, s := range []string{"dev.azure.com", "TFS.example.com:8443", "[::1]:443", "::1", "127.0.0.1:80", "a@b", "https://x/y", "x:", "[x]:1", "xn--d1acufc.xn--p1ai"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := NormalizeHost("host", s)
		if err != nil {
			return
		}
		if strings.ContainsAny(n, "/@?# \t\r\n") || strings.Contains(n, "://") || n != strings.ToLower(n) {
			t.Fatalf("NormalizeHost(%q) = %q; want host[:port] in lower case", s, n)
		}
		if again, err := NormalizeHost("host", n); err != nil || again != n {
			t.Fatalf("NormalizeHost(NormalizeHost(%q) = %q) = %q, %v; want it unchanged", s, n, again, err)
		}
	})
}

// FuzzParseResolve: an accepted entry dials a valid host:port.
func FuzzParseResolve(f *testing.F) {
	for _, s := range []string{"dev.azure.com:443:127.0.0.1", "a:1:[::1]", "a:1:127.0.0.1:2", "a:1:[::1]:3", "::::", "a:b:c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseResolve(s)
		if err != nil {
			return
		}
		if _, err := NormalizeHost("resolve", r.Host); err != nil {
			t.Fatalf("ParseResolve(%q).Host = %q: %v", s, r.Host, err)
		}
		if _, err := ParseResolve(r.Host + ":" + r.Port + ":" + r.Addr); err != nil {
			t.Fatalf("ParseResolve(%q) = %+v, which does not parse again: %v", s, r, err)
		}
	})
}
