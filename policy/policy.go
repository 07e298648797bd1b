// Package policy enforces an environment's least-privilege policy
// (vaultapi.Policy) on the requests the sidecar's proxy intercepts: which
// repositories it may use, which only fetch, which refs a push may touch.
//
// It has three parts: Compile turns the vault's policy into matchers; Map
// says which repository and operation a request is for (git smart HTTP and
// the REST API), refusing what it cannot tell; ReadCommands reads the
// ref-update commands at the start of a git-receive-pack request without
// buffering the pack that follows.
//
// The package decides; it never touches the network. Resolving a REST
// repository ID to its name is the caller's job (Request.Resolve says when).
package policy

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/azdo-sidecar/azdo-sidecar/azdo"
	"github.com/azdo-sidecar/azdo-sidecar/vaultapi"
)

// Refusal reasons: the only values of the proxy's refusal metric label and
// of an audit event's Refused field's first word.
const (
	ReasonRepoNotAllowed = "repo_not_allowed" // no --allow-repo pattern matches
	ReasonReadOnly       = "read_only"        // a push to a --read-only-repo
	ReasonRefNotAllowed  = "ref_not_allowed"  // a pushed ref outside --push-ref
	ReasonUnmapped       = "unmapped"         // the request names no repository the proxy can tell
	ReasonListRefused    = "list_refused"     // a route that lists or spans repositories
	ReasonRESTWrite      = "rest_write"       // a REST write the push rules cannot vet
	ReasonBadPush        = "bad_push"         // a receive-pack request that does not parse
)

// Policy is a compiled vaultapi.Policy. A nil *Policy allows everything;
// its methods accept a nil receiver. Policy is immutable and safe for
// concurrent use.
type Policy struct {
	raw       vaultapi.Policy
	allow     []repoPattern
	readOnly  []repoPattern
	pushRefs  []refGlob
	proxyOnly bool
}

// Parse decodes and compiles the JSON policy of a token answer. Empty input
// or JSON null is no policy (nil, nil).
func Parse(raw json.RawMessage) (*Policy, error) {
	s := strings.TrimSpace(string(raw))
	if s == "" || s == "null" {
		return nil, nil
	}
	var vp vaultapi.Policy
	if err := json.Unmarshal(raw, &vp); err != nil {
		return nil, fmt.Errorf("policy: decode: %w", err)
	}
	return Compile(vp)
}

// Compile checks vp's patterns and builds its matchers.
func Compile(vp vaultapi.Policy) (*Policy, error) {
	p := &Policy{raw: vp, proxyOnly: vp.ProxyOnly}
	for _, s := range vp.AllowRepos {
		rp, err := parseRepoPattern(s)
		if err != nil {
			return nil, fmt.Errorf("policy: allow_repos: %w", err)
		}
		p.allow = append(p.allow, rp)
	}
	for _, s := range vp.ReadOnlyRepos {
		rp, err := parseRepoPattern(s)
		if err != nil {
			return nil, fmt.Errorf("policy: read_only_repos: %w", err)
		}
		p.readOnly = append(p.readOnly, rp)
	}
	for _, s := range vp.PushRefs {
		g, err := parseRefGlob(s)
		if err != nil {
			return nil, fmt.Errorf("policy: push_refs: %w", err)
		}
		p.pushRefs = append(p.pushRefs, g)
	}
	return p, nil
}

// CheckPattern validates one repository pattern (for flags).
func CheckPattern(s string) error { _, err := parseRepoPattern(s); return err }

// CheckRefPattern validates one ref glob (for flags).
func CheckRefPattern(s string) error { _, err := parseRefGlob(s); return err }

// Raw returns the policy as the vault sent it.
func (p *Policy) Raw() vaultapi.Policy {
	if p == nil {
		return vaultapi.Policy{}
	}
	return p.raw
}

// Version returns the policy's version (0 for nil).
func (p *Policy) Version() int64 {
	if p == nil {
		return 0
	}
	return p.raw.Version
}

// ProxyOnly reports whether the environment must never receive a token.
func (p *Policy) ProxyOnly() bool { return p != nil && p.proxyOnly }

// Restricts reports whether p limits requests at all: with no repository,
// read-only or ref rule every request is allowed, mapped or not.
func (p *Policy) Restricts() bool {
	return p != nil && (len(p.allow) > 0 || len(p.readOnly) > 0 || len(p.pushRefs) > 0)
}

// LimitsRepos reports whether p has --allow-repo patterns.
func (p *Policy) LimitsRepos() bool { return p != nil && len(p.allow) > 0 }

// RepoName names a repository for matching. Host is the normalized
// host[:port]; VirtualDir, Org, Project and Name are decoded. An empty
// Project means the project of the same name as the repository (the
// project-less URL form).
type RepoName struct {
	Host       string
	VirtualDir string
	Org        string
	Project    string
	Name       string
}

// FromRepo returns the RepoName of an azdo.Repo.
func FromRepo(r azdo.Repo) RepoName {
	return RepoName{Host: r.Host, VirtualDir: r.VirtualDir, Org: r.Org, Project: r.Project, Name: r.Name}
}

// String returns HOST[/VDIR]/ORG/PROJECT/REPO, the pattern form, lower case.
func (n RepoName) String() string {
	host, org := matchHostOrg(n.Host, n.Org)
	parts := []string{host}
	if n.VirtualDir != "" {
		parts = append(parts, strings.ToLower(n.VirtualDir))
	}
	proj := n.Project
	if proj == "" {
		proj = n.Name
	}
	parts = append(parts, org, strings.ToLower(proj), strings.ToLower(n.Name))
	return strings.Join(parts, "/")
}

// Refusal is a request the policy refuses: Reason is one of the Reason
// constants, Message the sentence the user reads.
type Refusal struct {
	Reason  string
	Message string
}

// Error implements error.
func (r *Refusal) Error() string { return r.Message }

// ErrRefused is matched by every *Refusal with errors.Is.
var ErrRefused = errors.New("policy: refused")

// Is makes errors.Is(r, ErrRefused) true.
func (r *Refusal) Is(target error) bool { return target == ErrRefused }

// AllowsRepo returns nil when the environment may use repo at all: no
// --allow-repo pattern, or one of them or of the --read-only-repo patterns
// names it (a read-only repository is one the environment may fetch, as
// the vault reads it too).
func (p *Policy) AllowsRepo(repo RepoName) *Refusal {
	if p == nil || len(p.allow) == 0 {
		return nil
	}
	for _, rp := range p.allow {
		if rp.match(repo) {
			return nil
		}
	}
	for _, rp := range p.readOnly {
		if rp.match(repo) {
			return nil
		}
	}
	allowed := strings.Join(p.raw.AllowRepos, ", ")
	if len(p.raw.ReadOnlyRepos) > 0 {
		allowed += "; read-only: " + strings.Join(p.raw.ReadOnlyRepos, ", ")
	}
	return &Refusal{Reason: ReasonRepoNotAllowed, Message: fmt.Sprintf(
		"this environment may not use %s (allowed: %s)", repo, allowed)}
}

// AllowsOrg reports whether p lets the environment use host's organization
// (collection) org at all: p has no --allow-repo, or one of its --allow-repo
// or --read-only-repo patterns names the host, its virtual directory aside,
// and org (or "*" for it). The vault decides with it whether to hand out a
// token for an organization; the proxy then checks each repository.
func (p *Policy) AllowsOrg(host, org string) bool {
	if p == nil || len(p.allow) == 0 {
		return true
	}
	host, _, _ = strings.Cut(host, "/")
	host, org = matchHostOrg(host, org)
	for _, rp := range append(slices.Clip(p.allow), p.readOnly...) {
		if rp.host == host && (rp.org == "*" || (org != "" && rp.org == org)) {
			return true
		}
	}
	return false
}

// AllowsPush returns nil when the environment may push to repo at all: it is
// allowed and not read-only. Ref rules are checked by AllowsRefs.
func (p *Policy) AllowsPush(repo RepoName) *Refusal {
	if r := p.AllowsRepo(repo); r != nil {
		return r
	}
	if p == nil {
		return nil
	}
	for _, rp := range p.readOnly {
		if rp.match(repo) {
			return &Refusal{Reason: ReasonReadOnly, Message: fmt.Sprintf(
				"%s is read-only for this environment; every push is refused", repo)}
		}
	}
	return nil
}

// AllowsRef returns nil when a push may create, update or delete ref.
func (p *Policy) AllowsRef(ref string) *Refusal {
	if p == nil || len(p.pushRefs) == 0 {
		return nil
	}
	for _, g := range p.pushRefs {
		if g.match(ref) {
			return nil
		}
	}
	return &Refusal{Reason: ReasonRefNotAllowed, Message: fmt.Sprintf(
		"this environment may push only to %s; %s refused", strings.Join(p.raw.PushRefs, ", "), ref)}
}

// LimitsRefs reports whether p has --push-ref patterns.
func (p *Policy) LimitsRefs() bool { return p != nil && len(p.pushRefs) > 0 }

// repoPattern is HOST[/VDIR...]/ORG/PROJECT/REPO; "*" in a segment matches
// any one segment. Segments are lower case; vdir nil means any.
type repoPattern struct {
	host    string
	vdir    []string // nil: any virtual directory
	org     string
	project string
	repo    string
}

// parseRepoPattern reads one --allow-repo or --read-only-repo value.
func parseRepoPattern(s string) (repoPattern, error) {
	in := strings.TrimSpace(s)
	in = strings.TrimPrefix(strings.TrimPrefix(in, "https://"), "HTTPS://")
	segs := strings.Split(strings.Trim(in, "/"), "/")
	if len(segs) < 4 {
		return repoPattern{}, fmt.Errorf("repository pattern %q: want HOST/ORG/PROJECT/REPO (self-hosted: HOST[/VDIR]/COLLECTION/PROJECT/REPO), \"*\" for a whole segment", s)
	}
	for i, seg := range segs {
		if d, err := url.PathUnescape(seg); err == nil {
			seg = d
		}
		if seg == "" || seg == "." || seg == ".." || strings.ContainsAny(seg, "\\\x00\r\n") {
			return repoPattern{}, fmt.Errorf("repository pattern %q: bad segment %q", s, seg)
		}
		if strings.Contains(seg, "*") && seg != "*" {
			return repoPattern{}, fmt.Errorf("repository pattern %q: \"*\" must be a whole segment, not part of %q", s, seg)
		}
		segs[i] = strings.ToLower(seg)
	}
	host := segs[0]
	if host == "*" {
		return repoPattern{}, fmt.Errorf("repository pattern %q: the host cannot be \"*\"", s)
	}
	host = azdo.NormalizeHost(host)
	n := len(segs)
	rp := repoPattern{org: segs[n-3], project: segs[n-2], repo: segs[n-1]}
	if n > 4 {
		rp.vdir = segs[1 : n-3]
	}
	if azdo.IsServicesHost(host) && n > 4 {
		return repoPattern{}, fmt.Errorf("repository pattern %q: want HOST/ORG/PROJECT/REPO on Azure DevOps Services", s)
	}
	// {org}.visualstudio.com is the same organization as dev.azure.com/{org}.
	rp.host, rp.org = matchHostOrg(host, rp.org)
	if org := legacyOrg(host); org != "" && segs[n-3] != "*" && segs[n-3] != org {
		return repoPattern{}, fmt.Errorf("repository pattern %q: organization %q on %s; want %s/%s/PROJECT/REPO or dev.azure.com/%s/PROJECT/REPO", s, segs[n-3], host, host, org, org)
	}
	if org := legacyOrg(host); org != "" {
		rp.org = org
	}
	return rp, nil
}

// legacyOrg returns ORG for ORG.visualstudio.com, else "".
func legacyOrg(host string) string {
	if !azdo.IsServicesHost(host) || host == azdo.ServicesHost {
		return ""
	}
	return strings.TrimSuffix(host, ".visualstudio.com")
}

// matchHostOrg returns the host and organization repositories are compared
// by: dev.azure.com and the organization for {org}.visualstudio.com, which
// names the same organization; lower case.
func matchHostOrg(host, org string) (string, string) {
	host = azdo.NormalizeHost(host)
	if lo := legacyOrg(host); lo != "" {
		return azdo.ServicesHost, lo
	}
	return host, strings.ToLower(org)
}

func (rp repoPattern) match(n RepoName) bool {
	host, org := matchHostOrg(n.Host, n.Org)
	proj := n.Project
	if proj == "" {
		proj = n.Name
	}
	if host != rp.host || !segMatch(rp.org, org) || !segMatch(rp.project, proj) || !segMatch(rp.repo, n.Name) {
		return false
	}
	if rp.vdir == nil {
		return true
	}
	var vd []string
	if n.VirtualDir != "" {
		vd = strings.Split(n.VirtualDir, "/")
	}
	if len(vd) != len(rp.vdir) {
		return false
	}
	for i := range vd {
		if !segMatch(rp.vdir[i], vd[i]) {
			return false
		}
	}
	return true
}

// segMatch compares a lower-case pattern segment with a name, ignoring case
// as Azure DevOps does.
func segMatch(pat, name string) bool {
	if pat == "*" {
		return name != ""
	}
	return strings.EqualFold(pat, name)
}

// refGlob is a git ref pattern: "*" matches any run of characters, "/"
// included (git's refspec globs); everything else is literal.
type refGlob struct{ parts []string }

func parseRefGlob(s string) (refGlob, error) {
	if !strings.HasPrefix(s, "refs/") || strings.ContainsAny(s, " \t\r\n\x00\\?[~^:") || strings.Contains(s, "..") {
		return refGlob{}, fmt.Errorf("ref pattern %q: want a full ref glob such as refs/heads/agent/* (\"*\" matches any characters)", s)
	}
	return refGlob{parts: strings.Split(s, "*")}, nil
}

// match reports whether ref matches: the literal parts appear in order,
// the first at the start and the last at the end.
func (g refGlob) match(ref string) bool {
	if len(g.parts) == 1 {
		return ref == g.parts[0]
	}
	if !strings.HasPrefix(ref, g.parts[0]) {
		return false
	}
	rest := ref[len(g.parts[0]):]
	last := g.parts[len(g.parts)-1]
	for _, mid := range g.parts[1 : len(g.parts)-1] {
		i := strings.Index(rest, mid)
		if i < 0 {
			return false
		}
		rest = rest[i+len(mid):]
	}
	return len(rest) >= len(last) && strings.HasSuffix(rest, last)
}

// CheckCommands checks each command of a push against the ref rules. It
// returns the refused refs with their messages, and the first refusal (nil
// when every command is allowed).
func (p *Policy) CheckCommands(cmds []Command) (map[string]string, *Refusal) {
	var refused map[string]string
	var first *Refusal
	for _, c := range cmds {
		if r := p.AllowsRef(c.Ref); r != nil {
			if refused == nil {
				refused = make(map[string]string)
				first = r
			}
			refused[c.Ref] = r.Message
		}
	}
	return refused, first
}
