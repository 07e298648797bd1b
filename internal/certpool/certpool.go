// Package certpool builds the root pool every upstream TLS client of this
// project uses: the system's roots, plus an operator's extra PEM file
// (--upstream-ca-file, --vault-ca-file).
package certpool

import (
	"crypto/x509"
	"fmt"
	"os"
)

// defaultBundle is Debian's system bundle. When SSL_CERT_FILE is set, Go
// loads that file instead of the system roots; the contract says the system
// roots always apply, so the bundle is added back.
const defaultBundle = "/etc/ssl/certs/ca-certificates.crt"

// Load returns the system roots plus the certificates of the PEM file at
// extra (none when extra is ""). An unreadable file, or one without a PEM
// certificate, is an error naming the file.
func Load(extra string) (*x509.CertPool, error) {
	return load(extra, defaultBundle)
}

func load(extra, bundle string) (*x509.CertPool, error) {
	roots, err := x509.SystemCertPool()
	if err != nil || roots == nil {
		roots = x509.NewCertPool()
	}
	if os.Getenv("SSL_CERT_FILE") != "" {
		if pem, err := os.ReadFile(bundle); err == nil {
			roots.AppendCertsFromPEM(pem)
		}
	}
	if extra == "" {
		return roots, nil
	}
	pem, err := os.ReadFile(extra)
	if err != nil {
		return nil, fmt.Errorf("read CA file: %w", err)
	}
	if !roots.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("CA file %s holds no PEM certificate", extra)
	}
	return roots, nil
}
