package proxy

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"strings"
	"time"

	"github.com/azdo-sidecar/azdo-sidecar/azdo"
)

// Validity periods of the certificates the CA issues. The CA lives as long as
// the process; a leaf is renewed by the cache well before it expires.
const (
	caValidity      = 5 * 365 * 24 * time.Hour
	leafValidity    = 30 * 24 * time.Hour
	leafRenewBefore = 24 * time.Hour
	clockSkew       = time.Hour
)

// BuiltinDomains are the DNS names every interception CA permits: Azure
// DevOps Services. In X.509 name constraints "dev.azure.com" permits that
// name and names below it; "visualstudio.com" permits {org}.visualstudio.com.
// The proxy only ever issues leaves for hosts its matcher accepts, so the
// constraints are a second line of defence, not the policy itself.
var BuiltinDomains = []string{"dev.azure.com", "visualstudio.com"}

// ExcludedDomains returns the excluded DNS subtrees of the CA's name
// constraints: {label}.visualstudio.com for every label in
// azdo.NotOrganizations (Microsoft's other sites, which "visualstudio.com"
// would otherwise permit), except those configured as hosts in selfHosted.
func ExcludedDomains(selfHosted []string) []string {
	configured := map[string]bool{}
	for _, h := range selfHosted {
		configured[strings.ToLower(hostOnly(h))] = true
	}
	var out []string
	for _, l := range azdo.NotOrganizations {
		if d := l + ".visualstudio.com"; !configured[d] {
			out = append(out, d)
		}
	}
	return out
}

// CA is a per-process certificate authority whose name constraints permit
// only the Azure DevOps hosts the sidecar serves. Its private key never
// leaves memory.
//
// The name-constraints extension is not marked critical: mbedTLS 2.28
// (Debian's libgit2, so pygit2 and everything built on it) refuses to
// parse a certificate with a critical extension it does not implement, and
// fails the handshake. The constraints are enforced all the same by every
// stack that implements them (Go, OpenSSL, GnuTLS, Python, Node):
// criticality only tells a stack that does not understand an extension to
// reject the certificate. Stacks that ignore name constraints (mbedTLS,
// JSSE) trust this CA for every name either way; see the README.
type CA struct {
	cert    *x509.Certificate
	certPEM []byte
	key     *ecdsa.PrivateKey
	now     func() time.Time
}

// NewCA creates an ECDSA P-256 CA permitting BuiltinDomains and the given
// self-hosted hosts (HOST or HOST:PORT; an IP host is permitted as a /32 or
// /128 range), and excluding ExcludedDomains(selfHosted). now is the clock
// used for validity periods.
func NewCA(selfHosted []string, now func() time.Time) (*CA, error) {
	if now == nil {
		now = time.Now
	}
	dns := append([]string(nil), BuiltinDomains...)
	var ips []*net.IPNet
	for _, h := range selfHosted {
		name := hostOnly(h)
		if name == "" {
			return nil, fmt.Errorf("proxy: CA: empty self-hosted host %q", h)
		}
		if ip := net.ParseIP(name); ip != nil {
			bits := 128
			if ip4 := ip.To4(); ip4 != nil {
				ip, bits = ip4, 32
			}
			ips = append(ips, &net.IPNet{IP: ip, Mask: net.CIDRMask(bits, bits)})
			continue
		}
		dns = append(dns, strings.ToLower(name))
	}
	excluded := ExcludedDomains(selfHosted)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("proxy: CA key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	t := now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject: pkix.Name{
			CommonName:   "azdo-sidecar interception CA " + serial.Text(16)[:8],
			Organization: []string{"azdo-sidecar"},
		},
		NotBefore:             t.Add(-clockSkew),
		NotAfter:              t.Add(caValidity),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		PermittedDNSDomains:   dns,
		ExcludedDNSDomains:    excluded,
		PermittedIPRanges:     ips,
	}
	if len(ips) == 0 {
		// Without a permitted IP range, X.509 leaves IP names unconstrained;
		// exclude them all so no IP leaf could chain to this CA.
		tmpl.ExcludedIPRanges = []*net.IPNet{
			{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)},
			{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)},
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("proxy: CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("proxy: CA certificate: %w", err)
	}
	return &CA{
		cert:    cert,
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		key:     key,
		now:     now,
	}, nil
}

// CertPEM returns the CA certificate, PEM-encoded, for clients to trust.
func (ca *CA) CertPEM() []byte { return append([]byte(nil), ca.certPEM...) }

// Certificate returns the parsed CA certificate.
func (ca *CA) Certificate() *x509.Certificate { return ca.cert }

// ErrNotPermitted means a leaf was asked for a name outside the CA's
// constraints.
var ErrNotPermitted = errors.New("proxy: host not permitted by the interception CA")

// Issue returns a TLS server certificate for host (a DNS name or an IP, no
// port). The leaf carries the name in its SANs only, with an empty subject:
// GnuTLS (Debian's git) checks a subject CN against the CA's name
// constraints and rejects an IP leaf that has one.
func (ca *CA) Issue(host string) (*tls.Certificate, error) {
	host = strings.ToLower(strings.Trim(host, "[]"))
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("proxy: leaf key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	t := ca.now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		NotBefore:             t.Add(-clockSkew),
		NotAfter:              t.Add(leafValidity),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	if ip := net.ParseIP(host); ip != nil {
		tmpl.IPAddresses = []net.IP{ip}
	} else {
		tmpl.DNSNames = []string{host}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return nil, fmt.Errorf("proxy: leaf certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("proxy: leaf certificate: %w", err)
	}
	// Check the leaf against our own constraints, so a host outside them
	// fails here with a clear error instead of in the client's handshake.
	roots := x509.NewCertPool()
	roots.AddCert(ca.cert)
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: t}); err != nil {
		return nil, fmt.Errorf("%w: %s", ErrNotPermitted, host)
	}
	// The chain sent is the leaf alone. Every client must already hold
	// the CA as its trust anchor, which RFC 8446 §4.4.2 lets a server
	// omit; sending it anyway only adds its bytes to every handshake and
	// gives a strict parser (mbedTLS) one more certificate to refuse even
	// when verification is off.
	return &tls.Certificate{
		Certificate: [][]byte{der},
		PrivateKey:  key,
		Leaf:        leaf,
	}, nil
}

func randomSerial() (*big.Int, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("proxy: serial: %w", err)
	}
	return serial.Add(serial, big.NewInt(1<<32)), nil
}

// hostOnly strips a port and IPv6 brackets from host[:port].
func hostOnly(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return h
	}
	return strings.Trim(hostport, "[]")
}
