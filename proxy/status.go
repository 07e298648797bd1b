package proxy

import (
	"sort"
	"time"

	"github.com/azdo-sidecar/azdo-sidecar/token"
)

// TokenStatus is what the proxy knows about the last token it used for a
// key: never the secret.
type TokenStatus struct {
	Host      string    `json:"host"`
	Org       string    `json:"org,omitempty"`
	Kind      string    `json:"kind"`
	ExpiresAt time.Time `json:"expires_at,omitzero"`
	LastUsed  time.Time `json:"last_used"`
}

// Status is a snapshot of the proxy's counters and tokens.
type Status struct {
	Requests struct {
		Azdo    int64 `json:"azdo"`
		Other   int64 `json:"other"`
		Refused int64 `json:"refused"`
	} `json:"requests"`
	Injections   int64         `json:"injections"`
	AuthRetries  int64         `json:"auth_retries"`
	InFlight     int64         `json:"in_flight"`
	OpenTunnels  int64         `json:"open_tunnels"`
	CachedLeaves int           `json:"cached_leaves"`
	Tokens       []TokenStatus `json:"tokens"`
}

// Status returns a snapshot of counters and token metadata.
func (p *Proxy) Status() Status {
	var s Status
	s.Requests.Azdo = p.m.counts.requests[0].Load()
	s.Requests.Other = p.m.counts.requests[1].Load()
	s.Requests.Refused = p.m.counts.requests[2].Load()
	s.Injections = p.m.counts.injections.Load()
	s.AuthRetries = p.m.counts.retries.Load()
	s.InFlight = p.inflight.Load()
	s.OpenTunnels = p.tunnels.Load()
	s.CachedLeaves = p.leaves.len()
	p.tokMu.Lock()
	for _, ts := range p.tokens {
		s.Tokens = append(s.Tokens, ts)
	}
	p.tokMu.Unlock()
	sort.Slice(s.Tokens, func(i, j int) bool {
		if s.Tokens[i].Host != s.Tokens[j].Host {
			return s.Tokens[i].Host < s.Tokens[j].Host
		}
		return s.Tokens[i].Org < s.Tokens[j].Org
	})
	return s
}

func (p *Proxy) noteToken(key token.Key, tok token.Token) {
	p.tokMu.Lock()
	defer p.tokMu.Unlock()
	if _, ok := p.tokens[key]; !ok && len(p.tokens) >= maxStatusTokens {
		return
	}
	p.tokens[key] = TokenStatus{Host: key.Host, Org: key.Org, Kind: string(tok.Kind), ExpiresAt: tok.ExpiresAt, LastUsed: p.now()}
}
