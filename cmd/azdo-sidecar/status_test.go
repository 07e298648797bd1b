package main

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

func writeCertPEM(t *testing.T, path, cn string) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn}, NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	b := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return b
}

// TestCheckGitCAInfo: status tells whether git will trust the proxy when
// GIT_SSL_CAINFO overrides every http.<url>.sslCAInfo — including when
// setup's http.<url>.sslCAPath adds the sidecar CA back.
func TestCheckGitCAInfo(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	if err := os.Mkdir(state, 0o700); err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(state, "ca.pem")
	ca := writeCertPEM(t, caFile, "sidecar")
	other := writeCertPEM(t, filepath.Join(dir, "other.pem"), "other")
	without := filepath.Join(dir, "bundle-without.pem")
	with := filepath.Join(dir, "bundle-with.pem")
	if err := os.WriteFile(without, other, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(with, append(append([]byte{}, other...), ca...), 0o644); err != nil {
		t.Fatal(err)
	}
	trust := filepath.Join(state, "trust")
	tests := []struct {
		name, cainfo, capath, envCAPath string
		wantHasCA                       bool
		want                            string
	}{
		{"unset", "", "", "", false, "not set"},
		{"bundle with the CA", with, "", "", true, "contains the sidecar CA"},
		{"bundle without the CA, no sslCAPath", without, "", "", false, "does NOT contain"},
		{"bundle without the CA, setup's sslCAPath", without, trust + "/", "", false, "sslCAPath=" + trust},
		{"bundle without the CA, another sslCAPath", without, filepath.Join(dir, "elsewhere"), "", false, "does NOT contain"},
		{"GIT_SSL_CAPATH overrides setup's sslCAPath", without, trust, "/etc/ssl/certs", false, "does NOT contain"},
		{"unreadable bundle", filepath.Join(dir, "missing.pem"), trust, "", false, "unreadable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("GIT_SSL_CAPATH", tt.envCAPath)
			got := checkGitCAInfo(tt.cainfo, caFile, tt.capath)
			if got.HasCA != tt.wantHasCA || !strings.Contains(got.Diagnosis, tt.want) {
				t.Errorf("checkGitCAInfo(%q, ca, %q) = %+v; want contains_sidecar_ca %v and a diagnosis with %q", tt.cainfo, tt.capath, got, tt.wantHasCA, tt.want)
			}
		})
	}
}
