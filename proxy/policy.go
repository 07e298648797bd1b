package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/azdo-sidecar/azdo-sidecar/azdo"
	"github.com/azdo-sidecar/azdo-sidecar/policy"
	"github.com/azdo-sidecar/azdo-sidecar/token"
	"github.com/azdo-sidecar/azdo-sidecar/vaultapi"
)

// This file is the policy hook: everything the proxy does to enforce an
// environment's policy (package policy) before a request goes upstream.
// proxy.go calls enforce once per intercepted request, after the token
// (which carries the policy) is known and before anything is sent.

// reasonBadPolicy is the refusal reason when the policy that came with the
// token does not compile: everything is refused, never allowed.
const reasonBadPolicy = "bad_policy"

// maxResolveBody bounds the repository answer read when resolving an ID.
const maxResolveBody = 1 << 20

// maxResolved bounds the repository ID cache.
const maxResolved = 4096

// enforcer holds the policy hook's state.
type enforcer struct {
	hosts    *azdo.Hosts // for policy.Map; nil: Azure DevOps Services only
	refusals *prometheus.CounterVec
	compiled atomic.Pointer[compiledPolicy]

	mu       sync.Mutex
	resolved map[string]policy.RepoName // host|prefix|ref (lower case) → names
}

// compiledPolicy is the last policy compiled, keyed by its JSON.
type compiledPolicy struct {
	raw string
	p   *policy.Policy
	err error
}

func newEnforcer(hosts Matcher, reg prometheus.Registerer) (*enforcer, error) {
	e := &enforcer{resolved: make(map[string]policy.RepoName)}
	e.hosts, _ = hosts.(*azdo.Hosts)
	e.refusals = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "azdo_sidecar_proxy", Name: "policy_refusals_total",
		Help: "Requests refused by the environment's policy before reaching Azure DevOps, by reason (" +
			strings.Join([]string{policy.ReasonRepoNotAllowed, policy.ReasonReadOnly, policy.ReasonRefNotAllowed,
				policy.ReasonUnmapped, policy.ReasonListRefused, policy.ReasonRESTWrite, policy.ReasonBadPush, reasonBadPolicy, vaultapi.ErrForbiddenByPolicy + " (by the vault)"}, ", ") + ").",
	}, []string{"reason"})
	for _, r := range []string{vaultapi.ErrForbiddenByPolicy, policy.ReasonRepoNotAllowed, policy.ReasonReadOnly, policy.ReasonRefNotAllowed,
		policy.ReasonUnmapped, policy.ReasonListRefused, policy.ReasonRESTWrite, policy.ReasonBadPush, reasonBadPolicy} {
		e.refusals.WithLabelValues(r)
	}
	if reg != nil {
		if err := reg.Register(e.refusals); err != nil {
			return nil, err
		}
	}
	return e, nil
}

// policyFor compiles the policy that came with tok, once per distinct JSON.
func (e *enforcer) policyFor(tok token.Token) (*policy.Policy, error) {
	if c := e.compiled.Load(); c != nil && c.raw == tok.Policy {
		return c.p, c.err
	}
	p, err := policy.Parse(json.RawMessage(tok.Policy))
	e.compiled.Store(&compiledPolicy{raw: tok.Policy, p: p, err: err})
	return p, err
}

// enforce checks req against the policy that came with tok. It returns the
// response that refuses req, or nil to forward it. It fills ev with what
// the request is (repository, operation, a push's refs). For a
// git-receive-pack request it reads the ref-update commands off the body
// and puts them back in front of the rest, which it does not read: the
// pack streams on.
func (p *Proxy) enforce(req *http.Request, host string, tok token.Token, ev *auditOp) *http.Response {
	e := p.enf
	pol, err := e.policyFor(tok)
	if err != nil {
		p.log.Error("proxy: the policy from the token source does not compile; refusing every request", "err", err)
		return p.refuse(req, ev, &policy.Refusal{Reason: reasonBadPolicy,
			Message: "this environment's policy cannot be read, so every request is refused; ask your administrator"}, nil)
	}
	m := policy.Map(host, req.Method, req.URL, e.hosts)
	ev.mapped(m)
	restricts := pol.Restricts()

	switch m.Kind {
	case policy.Unmapped:
		if restricts {
			return p.refuse(req, ev, &policy.Refusal{Reason: policy.ReasonUnmapped, Message: fmt.Sprintf(
				"this environment's policy allows only requests the proxy can tie to a repository; %s %s refused (%s)",
				req.Method, req.URL.EscapedPath(), m.Why)}, nil)
		}
		return nil
	case policy.RESTList:
		if restricts && (pol.LimitsRepos() || m.Write) {
			return p.refuse(req, ev, &policy.Refusal{Reason: policy.ReasonListRefused, Message: fmt.Sprintf(
				"this environment's policy does not allow routes that list or create repositories; %s %s refused",
				req.Method, req.URL.EscapedPath())}, nil)
		}
		return nil
	case policy.RESTRepo:
		if !restricts {
			return nil
		}
		repo, err := p.resolveRepo(req.Context(), host, m, tok)
		if err != nil {
			p.log.Info("proxy: cannot resolve a repository for the policy", "host", host, "err", err)
			return p.refuse(req, ev, &policy.Refusal{Reason: policy.ReasonUnmapped, Message: fmt.Sprintf(
				"cannot tell which repository %q is, so the request is refused under this environment's policy", m.RESTRef)}, nil)
		}
		m.Repo = repo
		ev.mapped(m)
		if r := pol.AllowsRepo(repo); r != nil {
			return p.refuse(req, ev, r, nil)
		}
		if m.Write {
			if r := pol.AllowsPush(repo); r != nil {
				return p.refuse(req, ev, r, nil)
			}
			if pol.LimitsRefs() {
				return p.refuse(req, ev, &policy.Refusal{Reason: policy.ReasonRESTWrite, Message: fmt.Sprintf(
					"this environment may push only to %s, and the proxy cannot vet the refs a REST %s changes; push with git instead",
					strings.Join(pol.Raw().PushRefs, ", "), req.Method)}, nil)
			}
		}
		return nil
	case policy.InfoRefs, policy.UploadPack:
		if r := pol.AllowsRepo(m.Repo); r != nil {
			return p.refuse(req, ev, r, nil)
		}
		if m.Write {
			if r := pol.AllowsPush(m.Repo); r != nil {
				return p.refuse(req, ev, r, nil)
			}
		}
		return nil
	case policy.ReceivePack:
		if r := pol.AllowsPush(m.Repo); r != nil {
			return p.refuse(req, ev, r, nil)
		}
		return p.inspectPush(req, pol, restricts, ev)
	}
	return nil
}

// inspectPush reads a receive-pack request's commands and checks them.
func (p *Proxy) inspectPush(req *http.Request, pol *policy.Policy, restricts bool, ev *auditOp) *http.Response {
	if req.Body == nil || req.Body == http.NoBody {
		return nil
	}
	if ce := req.Header.Get("Content-Encoding"); ce != "" && !strings.EqualFold(ce, "identity") {
		// git never compresses a push; one that is cannot be vetted.
		if restricts {
			return p.refuse(req, ev, &policy.Refusal{Reason: policy.ReasonBadPush,
				Message: "a compressed git-receive-pack request cannot be checked against this environment's policy; refused"}, nil)
		}
		return nil
	}
	body := req.Body
	push, err := policy.ReadCommands(body)
	if err != nil {
		if restricts {
			return p.refuse(req, ev, &policy.Refusal{Reason: policy.ReasonBadPush,
				Message: "cannot read the ref updates of this push, so it is refused under this environment's policy: " + err.Error()}, nil)
		}
		// No rule to check: pass on what was read, unchanged.
	}
	req.Body = &prefixedBody{Reader: io.MultiReader(bytes.NewReader(push.Raw), body), c: body}
	ev.push(push.Commands)
	refused, first := pol.CheckCommands(push.Commands)
	if first == nil {
		return nil
	}
	return p.refuse(req, ev, first, &pushRefusal{push: push, refused: refused})
}

// prefixedBody is a request body that replays the commands read before the
// rest of the original body.
type prefixedBody struct {
	io.Reader
	c io.Closer
}

func (b *prefixedBody) Close() error { return b.c.Close() }

// pushRefusal lets refuse answer with git's per-ref report.
type pushRefusal struct {
	push    *policy.Push
	refused map[string]string
}

// refuse answers req with r as the client shows it, counts it, and records
// it in ev: for git a 403 whose text/plain lines git prints as "remote:",
// or for a push whose client asked for report-status, git's own report
// with "ng REF REASON" per ref (git then prints "! [remote rejected]" and
// exits non-zero); for other clients a 403 JSON body.
func (p *Proxy) refuse(req *http.Request, ev *auditOp, r *policy.Refusal, push *pushRefusal) *http.Response {
	p.enf.refusals.WithLabelValues(r.Reason).Inc()
	p.log.Info("proxy: refused by policy", "reason", r.Reason, "method", req.Method, "path", req.URL.EscapedPath(), "message", r.Message)
	line := "azdo-sidecar: " + oneLine(r.Message)
	if push != nil {
		if body, ok := policy.Report(push.push, push.refused, []string{line}); ok {
			ev.refused(http.StatusOK, r.Reason+": "+r.Message)
			h := make(http.Header)
			h.Set("Content-Type", "application/x-git-receive-pack-result")
			h.Set("Cache-Control", "no-cache")
			return &http.Response{
				Status: "200 OK", StatusCode: http.StatusOK, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
				Header: h, Body: io.NopCloser(bytes.NewReader(body)), ContentLength: int64(len(body)), Request: req,
			}
		}
	}
	ev.refused(http.StatusForbidden, r.Reason+": "+r.Message)
	if isGit(req) {
		return textResponse(req, http.StatusForbidden, line+"\n")
	}
	b, _ := json.Marshal(vaultapi.ErrorResponse{Error: vaultapi.ErrForbiddenByPolicy, Message: r.Message})
	resp := textResponse(req, http.StatusForbidden, string(b)+"\n")
	resp.Header.Set("Content-Type", "application/json")
	return resp
}

// resolveRepo looks a REST request's repository up through the API, with
// the injected credential, once per host, path prefix and ID or name: the
// path may carry a GUID, a project GUID or no project, and only the
// answer's names can be compared with the policy's patterns.
func (p *Proxy) resolveRepo(ctx context.Context, host string, m policy.Request, tok token.Token) (policy.RepoName, error) {
	e := p.enf
	key := strings.ToLower(host + "|" + m.RESTPrefix + "|" + m.RESTRef)
	e.mu.Lock()
	r, ok := e.resolved[key]
	e.mu.Unlock()
	if ok {
		return r, nil
	}
	u := "https://" + host + m.RESTPrefix + "/_apis/git/repositories/" + url.PathEscape(m.RESTRef) + "?api-version=7.1"
	ctx, cancel := context.WithTimeout(ctx, p.tokenTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return policy.RepoName{}, fmt.Errorf("proxy: resolve repository: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := p.send(req, tok)
	if err != nil {
		return policy.RepoName{}, fmt.Errorf("proxy: resolve repository: %w", unwrapURLError(err))
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResolveBody))
	if err != nil {
		return policy.RepoName{}, fmt.Errorf("proxy: resolve repository: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return policy.RepoName{}, fmt.Errorf("proxy: resolve repository: HTTP %d", resp.StatusCode)
	}
	var ans struct {
		ID      string `json:"id"`
		Name    string `json:"name"`
		Project struct {
			Name string `json:"name"`
		} `json:"project"`
	}
	if err := json.Unmarshal(b, &ans); err != nil || ans.Name == "" || ans.Project.Name == "" {
		return policy.RepoName{}, fmt.Errorf("proxy: resolve repository: unexpected answer")
	}
	// The answer must be the repository asked for: by ID or by name.
	if !strings.EqualFold(ans.ID, m.RESTRef) && !strings.EqualFold(ans.Name, m.RESTRef) {
		return policy.RepoName{}, fmt.Errorf("proxy: resolve repository: the answer names another repository")
	}
	r = m.Repo
	r.Project, r.Name = ans.Project.Name, ans.Name
	e.mu.Lock()
	if len(e.resolved) >= maxResolved {
		clear(e.resolved)
	}
	e.resolved[key] = r
	e.mu.Unlock()
	return r, nil
}

// auditTokenError records what a request was when no token could be had
// for it; the vault's policy refusal is recorded as a refusal. Other token
// errors are not: a connect answer carries a single-use link.
func (p *Proxy) auditTokenError(req *http.Request, host string, ev *auditOp, err error) {
	if ev == nil {
		return
	}
	ev.mapped(policy.Map(host, req.Method, req.URL, p.enf.hosts))
	var fe *token.ForbiddenError
	if errors.As(err, &fe) {
		p.enf.refusals.WithLabelValues(vaultapi.ErrForbiddenByPolicy).Inc()
		ev.refused(http.StatusForbidden, vaultapi.ErrForbiddenByPolicy+": "+oneLine(fe.Error()))
	}
}
