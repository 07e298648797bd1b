package certpool

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// selfSigned writes a self-signed CA certificate to a file and returns the
// file and the certificate.
func selfSigned(t *testing.T, name string) (string, *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
		DNSNames: []string{name},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	p := filepath.Join(t.TempDir(), name+".pem")
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	return p, cert
}

func trusts(pool *x509.CertPool, c *x509.Certificate) bool {
	_, err := c.Verify(x509.VerifyOptions{Roots: pool, DNSName: c.DNSNames[0]})
	return err == nil
}

func TestLoadAddsExtraFile(t *testing.T) {
	file, cert := selfSigned(t, "tfs.example.test")
	without, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	if trusts(without, cert) {
		t.Fatal("Load(\"\") trusts a private CA")
	}
	with, err := Load(file)
	if err != nil {
		t.Fatalf("Load(%q) = %v", file, err)
	}
	if !trusts(with, cert) {
		t.Errorf("Load(%q) does not trust the file's CA", file)
	}
}

func TestLoadAddsBundleBackUnderSSLCertFile(t *testing.T) {
	bundle, cert := selfSigned(t, "bundle.example.test")
	other, _ := selfSigned(t, "other.example.test")
	t.Setenv("SSL_CERT_FILE", other)
	pool, err := load("", bundle)
	if err != nil {
		t.Fatal(err)
	}
	if !trusts(pool, cert) {
		t.Error("with SSL_CERT_FILE set, the system bundle's roots are missing")
	}
}

func TestLoadErrors(t *testing.T) {
	empty := filepath.Join(t.TempDir(), "empty.pem")
	os.WriteFile(empty, []byte("not a certificate\n"), 0o644)
	for _, f := range []string{filepath.Join(t.TempDir(), "missing.pem"), empty} {
		if _, err := Load(f); err == nil || !strings.Contains(err.Error(), filepath.Base(f)) {
			t.Errorf("Load(%q) = %v; want an error naming the file", f, err)
		}
	}
}
