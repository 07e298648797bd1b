package proxy

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestCAIssuesOnlyPermittedNames(t *testing.T) {
	ca, err := NewCA([]string{"tfs.example.com:8443", "127.0.0.1:9000", "[::1]:443"}, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		host string
		ok   bool
	}{
		{"dev.azure.com", true},
		{"contoso.visualstudio.com", true},
		{"tfs.example.com", true},
		{"127.0.0.1", true},
		{"::1", true},
		{"example.com", false},
		{"dev.azure.com.evil.test", false},
		{"azure.com", false},
		{"127.0.0.2", false},
		{"tfs.example.com.evil", false},
	}
	for _, tc := range tests {
		cert, err := ca.Issue(tc.host)
		if (err == nil) != tc.ok {
			t.Errorf("Issue(%q) error = %v; want ok=%v", tc.host, err, tc.ok)
			continue
		}
		if !tc.ok {
			if !errors.Is(err, ErrNotPermitted) {
				t.Errorf("Issue(%q) = %v; want ErrNotPermitted", tc.host, err)
			}
			continue
		}
		leaf := cert.Leaf
		if len(leaf.RawSubject) == 0 || leaf.Subject.String() != "" {
			t.Errorf("Issue(%q) subject = %q; want empty", tc.host, leaf.Subject)
		}
		roots := x509.NewCertPool()
		roots.AddCert(ca.Certificate())
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: tc.host}); err != nil {
			t.Errorf("Issue(%q) does not verify for its host: %v", tc.host, err)
		}
	}
}

func TestCAWithoutIPHostsExcludesAllIPs(t *testing.T) {
	ca, err := NewCA(nil, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	c := ca.Certificate()
	if c.PermittedDNSDomainsCritical || len(c.PermittedDNSDomains) != 2 {
		t.Errorf("constraints = %v (critical %v); want dev.azure.com, visualstudio.com, not critical (mbedTLS refuses critical ones)", c.PermittedDNSDomains, c.PermittedDNSDomainsCritical)
	}
	if len(c.ExcludedIPRanges) != 2 {
		t.Errorf("excluded IP ranges = %v; want all IPv4 and IPv6", c.ExcludedIPRanges)
	}
	if _, err := ca.Issue("10.0.0.1"); !errors.Is(err, ErrNotPermitted) {
		t.Errorf("Issue(10.0.0.1) = %v; want ErrNotPermitted", err)
	}
	if ip := net.ParseIP("127.0.0.1"); ip == nil {
		t.Fatal("bad test")
	}
}

func TestLeafCacheSingleFlightAndBound(t *testing.T) {
	ca, err := NewCA(nil, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	var issued atomic.Int32
	c := newLeafCache(2, time.Now, func(h string) (*tls.Certificate, error) {
		issued.Add(1)
		time.Sleep(20 * time.Millisecond)
		return ca.Issue(h)
	})
	var wg sync.WaitGroup
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := c.get("dev.azure.com"); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if n := issued.Load(); n != 1 {
		t.Errorf("50 concurrent gets issued %d leaves; want 1", n)
	}
	for _, h := range []string{"a.visualstudio.com", "b.visualstudio.com", "c.visualstudio.com"} {
		if _, err := c.get(h); err != nil {
			t.Fatal(err)
		}
	}
	if n := c.len(); n != 2 {
		t.Errorf("cache holds %d leaves; want the bound 2", n)
	}
	before := issued.Load()
	c.get("c.visualstudio.com") // most recent: cached
	c.get("dev.azure.com")      // evicted: issued again
	if got := issued.Load() - before; got != 1 {
		t.Errorf("issued %d leaves for one hit and one miss; want 1", got)
	}
}

func TestLeafRenewedBeforeExpiry(t *testing.T) {
	now := time.Now()
	clock := func() time.Time { return now }
	ca, err := NewCA(nil, clock)
	if err != nil {
		t.Fatal(err)
	}
	var issued int
	c := newLeafCache(4, clock, func(h string) (*tls.Certificate, error) { issued++; return ca.Issue(h) })
	c.get("dev.azure.com")
	now = now.Add(leafValidity - leafRenewBefore - time.Minute)
	c.get("dev.azure.com")
	if issued != 1 {
		t.Fatalf("issued = %d before the renewal point; want 1", issued)
	}
	now = now.Add(2 * time.Minute)
	c.get("dev.azure.com")
	if issued != 2 {
		t.Errorf("issued = %d after the renewal point; want 2", issued)
	}
}

func TestParseResolve(t *testing.T) {
	tests := []struct {
		in      string
		key     string
		want    string
		wantErr bool
	}{
		{"dev.azure.com:443:127.0.0.1", "dev.azure.com:443", "127.0.0.1:443", false},
		{"DEV.azure.com:443:127.0.0.1:8443", "dev.azure.com:443", "127.0.0.1:8443", false},
		{"dev.azure.com:443:[::1]:8443", "dev.azure.com:443", "[::1]:8443", false},
		{"dev.azure.com:443:::1", "dev.azure.com:443", "[::1]:443", false},
		{"[::1]:443:127.0.0.1", "[::1]:443", "127.0.0.1:443", false},
		{"dev.azure.com:443", "", "", true},
		{"dev.azure.com:x:127.0.0.1", "", "", true},
		{"dev.azure.com:443:not-an-ip", "", "", true},
		{"dev.azure.com:443:127.0.0.1:99999", "", "", true},
	}
	for _, tc := range tests {
		r, err := ParseResolve([]string{tc.in})
		if (err != nil) != tc.wantErr {
			t.Errorf("ParseResolve(%q) error = %v; wantErr %v", tc.in, err, tc.wantErr)
			continue
		}
		if err == nil && r[tc.key] != tc.want {
			t.Errorf("ParseResolve(%q)[%q] = %q; want %q", tc.in, tc.key, r[tc.key], tc.want)
		}
	}
}

func TestCanonicalHost(t *testing.T) {
	tests := []struct{ in, port, want string }{
		{"dev.azure.com:443", "443", "dev.azure.com"},
		{"DEV.Azure.com.:443", "443", "dev.azure.com"},
		{"dev.azure.com:8443", "443", "dev.azure.com:8443"},
		{"dev.azure.com", "443", "dev.azure.com"},
		{"[::1]:443", "443", "[::1]"},
		{"[::1]:80", "443", "[::1]:80"},
		{"dev.azure.com:80", "80", "dev.azure.com"},
	}
	for _, tc := range tests {
		if got := canonicalHost(tc.in, tc.port); got != tc.want {
			t.Errorf("canonicalHost(%q, %q) = %q; want %q", tc.in, tc.port, got, tc.want)
		}
	}
}

// TestCAExcludesMicrosoftSites: the labels Microsoft uses for other sites
// under visualstudio.com are excluded subtrees of the CA (issue 11, item 4),
// unless configured as hosts, so not even a bug in the matcher could make
// the sidecar impersonate code.visualstudio.com.
func TestCAExcludesMicrosoftSites(t *testing.T) {
	ca, err := NewCA(nil, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	optIn, err := NewCA([]string{"code.visualstudio.com"}, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		ca   *CA
		host string
		ok   bool
	}{
		{ca, "contoso.visualstudio.com", true},
		{ca, "code.visualstudio.com", false},
		{ca, "marketplace.visualstudio.com", false},
		{ca, "update.code.visualstudio.com", false},
		{ca, "vs-ssh.visualstudio.com", false},
		{ca, "xcode.visualstudio.com", true},
		{optIn, "code.visualstudio.com", true},
		{optIn, "marketplace.visualstudio.com", false},
	} {
		_, err := tc.ca.Issue(tc.host)
		if (err == nil) != tc.ok {
			t.Errorf("Issue(%q) error = %v; want ok=%v", tc.host, err, tc.ok)
		}
	}
	excl := ca.Certificate().ExcludedDNSDomains
	if !slices.Contains(excl, "code.visualstudio.com") || !slices.Contains(excl, "www.visualstudio.com") {
		t.Errorf("ExcludedDNSDomains = %q; want code. and www.visualstudio.com", excl)
	}
	if slices.Contains(optIn.Certificate().ExcludedDNSDomains, "code.visualstudio.com") {
		t.Errorf("opt-in CA excludes code.visualstudio.com")
	}
}
