package sidecar

import (
	"context"
	"encoding/json"
	"sync"

	"github.com/azdo-sidecar/azdo-sidecar/azdo"
	"github.com/azdo-sidecar/azdo-sidecar/credential"
	"github.com/azdo-sidecar/azdo-sidecar/policy"
	"github.com/azdo-sidecar/azdo-sidecar/token"
)

// ProxyOnlyMessage is the line git's stderr shows (through our helper)
// instead of a password when the environment is proxy-only.
const ProxyOnlyMessage = "azdo-sidecar: this environment is proxy-only: no token is handed out; git reaches Azure DevOps through the sidecar's proxy (run `azdo-sidecar setup`, which configures http.<url>.proxy and the CA)"

// proxyOnlyHandler answers git's credential requests for Azure DevOps
// without a password when the environment is proxy-only: always with
// serve --proxy-only, or when the policy that came with the token says so
// (the vault's --proxy-only; serve's flag can only tighten). The answer has
// quit=1, so git neither prompts nor asks another helper, and a message
// line our helper prints. Every other request goes to next.
type proxyOnlyHandler struct {
	next   credential.Handler
	src    token.Source
	hosts  *azdo.Hosts
	always bool

	mu   sync.Mutex
	last string // raw policy last parsed
	po   bool   // its ProxyOnly
}

// ServeCredential implements credential.Handler.
func (h *proxyOnlyHandler) ServeCredential(ctx context.Context, action string, req *credential.Credential) (*credential.Credential, error) {
	if action != credential.ActionGet || req.Host == "" || req.Protocol != "https" || !h.hosts.Match(req.Host) {
		return h.next.ServeCredential(ctx, action, req)
	}
	if h.always || h.policySays(ctx, req) {
		return &credential.Credential{Quit: true, Extra: []credential.Attr{{Key: credential.MessageKey, Value: ProxyOnlyMessage}}}, nil
	}
	return h.next.ServeCredential(ctx, action, req)
}

// policySays reports whether the policy of the environment, as the token
// source last handed it out for this request's key, is proxy-only. A token
// error is left to next, which explains it.
func (h *proxyOnlyHandler) policySays(ctx context.Context, req *credential.Credential) bool {
	key := token.Key{Host: azdo.NormalizeHost(req.Host), Org: h.hosts.OrgFor(req.Host, req.Path, req.Username)}
	tok, err := h.src.Token(ctx, key)
	if err != nil {
		return false
	}
	return h.proxyOnly(tok.Policy)
}

// proxyOnly parses raw once per distinct policy. A policy that does not
// parse is treated as proxy-only: never hand out a token on doubt.
func (h *proxyOnlyHandler) proxyOnly(raw string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if raw == h.last && raw != "" {
		return h.po
	}
	p, err := policy.Parse(json.RawMessage(raw))
	h.last, h.po = raw, err != nil || p.ProxyOnly()
	return h.po
}

// why says why the handler hands out no token, or "".
func (h *proxyOnlyHandler) why() string {
	if h == nil {
		return ""
	}
	if h.always {
		return "serve --proxy-only"
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.po {
		return "environment policy"
	}
	return ""
}
