package testca

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"net"
	"testing"
	"time"
)

func TestNewLeafHasOnlySANs(t *testing.T) {
	now := time.Now()
	ca, err := New("test CA", []string{"dev.azure.com", "127.0.0.1", "::1", "dev.azure.com", ""}, now)
	if err != nil {
		t.Fatal(err)
	}
	if !ca.Cert.IsCA || !ca.Cert.MaxPathLenZero {
		t.Errorf("CA IsCA=%v MaxPathLenZero=%v; want both true", ca.Cert.IsCA, ca.Cert.MaxPathLenZero)
	}
	leaf := ca.Leaf.Leaf
	if s := leaf.Subject.String(); s != "" {
		t.Errorf("leaf subject = %q; want empty", s)
	}
	if len(leaf.DNSNames) != 1 || leaf.DNSNames[0] != "dev.azure.com" {
		t.Errorf("leaf DNSNames = %v; want [dev.azure.com]", leaf.DNSNames)
	}
	if len(leaf.IPAddresses) != 2 || !leaf.IPAddresses[0].Equal(net.ParseIP("127.0.0.1")) || !leaf.IPAddresses[1].Equal(net.IPv6loopback) {
		t.Errorf("leaf IPAddresses = %v; want [127.0.0.1 ::1]", leaf.IPAddresses)
	}
	for _, c := range []*x509.Certificate{ca.Cert, leaf} {
		if k, ok := c.PublicKey.(*ecdsa.PublicKey); !ok || k.Curve != elliptic.P256() {
			t.Errorf("%q key is %T; want ECDSA P-256", c.Subject, c.PublicKey)
		}
	}
	for _, name := range []string{"dev.azure.com", "127.0.0.1", "::1"} {
		if _, err := leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: ca.Pool, CurrentTime: now}); err != nil {
			t.Errorf("leaf.Verify(%q) = %v; want nil", name, err)
		}
	}
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: "other.example", Roots: ca.Pool, CurrentTime: now}); err == nil {
		t.Errorf("leaf.Verify(%q) = nil; want an error", "other.example")
	}
}
