package sidecar

import (
	"crypto/sha256"
	"encoding/hex"
	"time"

	"github.com/azdo-sidecar/azdo-sidecar/proxy"
	"github.com/azdo-sidecar/azdo-sidecar/token"
)

// StatusPath is where the metrics listener serves Status as JSON.
const StatusPath = "/status"

// Status is what `azdo-sidecar status` shows: what the sidecar serves and
// how it is doing. It never holds a secret.
type Status struct {
	Mode          string            `json:"mode"`
	Ready         Ready             `json:"listen"`
	Hosts         []string          `json:"hosts"`
	StartedAt     time.Time         `json:"started_at"`
	RefreshMargin string            `json:"refresh_margin"`
	Tokens        []token.EntryInfo `json:"tokens"`
	Cache         token.CacheStats  `json:"cache"`
	Proxy         proxy.Status      `json:"proxy"`
	// ProxyOnly says why the credential socket hands out no token:
	// "serve --proxy-only", "environment policy", or "" when it does.
	ProxyOnly string `json:"proxy_only,omitempty"`
	// CASHA256 is the SHA-256 of this sidecar's CA certificate (DER, hex):
	// status compares it with ca.pem on disk, which another sidecar
	// started on the same state dir could have replaced.
	CASHA256 string `json:"ca_sha256"`
	// Vault is, in vault mode, what the start-up check of --vault-url
	// found: "reachable", or why not ("cannot reach the vault at …").
	Vault string `json:"vault,omitempty"`
}

// CertSHA256 returns the hex SHA-256 of a DER certificate.
func CertSHA256(der []byte) string {
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}

// Status returns the current status.
func (s *Sidecar) Status() Status {
	return Status{
		Mode:          string(s.mode()),
		Ready:         s.ready,
		Hosts:         s.hostList(),
		StartedAt:     s.started.UTC(),
		RefreshMargin: s.cache.Margin().String(),
		Tokens:        s.cache.Snapshot(),
		Cache:         s.cache.Stats(),
		Proxy:         s.proxy.Status(),
		ProxyOnly:     s.po.why(),
		CASHA256:      CertSHA256(s.proxy.CA().Certificate().Raw),
		Vault:         s.vaultState(),
	}
}

func (s *Sidecar) vaultState() string {
	if p := s.vault.Load(); p != nil {
		return *p
	}
	if s.mode() == ModeVault {
		return "checking"
	}
	return ""
}

func (s *Sidecar) mode() Mode {
	if s.opts.Mode == "" {
		return ModeNone
	}
	return s.opts.Mode
}
