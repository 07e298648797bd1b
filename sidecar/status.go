package sidecar

import (
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
	}
}

func (s *Sidecar) mode() Mode {
	if s.opts.Mode == "" {
		return ModeNone
	}
	return s.opts.Mode
}
