package azdoemu

import (
	"net"
	"net/url"
	"strings"
)

// routeKind says what a request path addresses.
type routeKind int

const (
	routeNotFound routeKind = iota // nothing Azure DevOps would serve
	routeGit                       // …/_git/{repo}[/info/refs|/git-upload-pack|/git-receive-pack]
	routeAPI                       // …/_apis/…
	routeSignin                    // …/_signin
)

// route is a parsed request: which organization (or collection), project
// and repository it is for, and what it asks of it. Names are decoded once.
type route struct {
	kind    routeKind
	host    string // lower case, without port
	org     string
	project string // the repository's name when the URL omits it
	repo    string
	rest    string // after the repository: "", "info/refs", "git-upload-pack", "git-receive-pack"
	api     string // after _apis, e.g. "connectionData"
	prefix  string // escaped path up to and including the org/collection, for sign-in redirects
}

// hostKind classifies a Host header.
type hostKind int

const (
	hostUnknown hostKind = iota
	hostDevAzure
	hostVisualStudio
	hostSelfHosted
)

// hostName returns the lower-case host of a Host header without its port.
func hostName(hostport string) string {
	h := hostport
	if hh, _, err := net.SplitHostPort(hostport); err == nil {
		h = hh
	}
	h = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
	return strings.ToLower(h)
}

// microsoftSites are labels under visualstudio.com that are Microsoft's
// other sites and services (Visual Studio Code, the marketplace, the
// subscriptions portal, the SSH endpoint...), where no organization lives.
var microsoftSites = map[string]bool{
	"app": true, "code": true, "marketplace": true, "www": true, "my": true, "status": true,
	"docs": true, "learn": true, "visualstudio": true, "developercommunity": true, "vs-ssh": true,
}

// classifyHost says which URL layout a host uses. Loopback names count as
// self-hosted servers, so a client that reaches the emulator by its address
// sees an Azure DevOps Server.
func (s *Server) classifyHost(h string) (hostKind, string) {
	switch {
	case h == "dev.azure.com":
		return hostDevAzure, ""
	case strings.HasSuffix(h, ".visualstudio.com"):
		label := strings.TrimSuffix(h, ".visualstudio.com")
		if label == "" || strings.Contains(label, ".") || microsoftSites[label] {
			return hostUnknown, ""
		}
		return hostVisualStudio, label
	}
	if s.selfHosted[h] || h == "localhost" || net.ParseIP(h) != nil && net.ParseIP(h).IsLoopback() {
		return hostSelfHosted, ""
	}
	return hostUnknown, ""
}

// parseRoute maps a request's host and escaped path onto a route. It
// returns routeNotFound for anything the real service would not serve.
func (s *Server) parseRoute(hostport, escapedPath string) route {
	r := route{host: hostName(hostport)}
	kind, label := s.classifyHost(r.host)
	if kind == hostUnknown {
		return r
	}
	raw := strings.Split(strings.TrimPrefix(escapedPath, "/"), "/")
	if len(raw) > 0 && raw[len(raw)-1] == "" {
		raw = raw[:len(raw)-1]
	}
	segs := make([]string, len(raw))
	for i, e := range raw {
		d, err := url.PathUnescape(e)
		if err != nil || d == "" || strings.Contains(d, "/") {
			return r
		}
		segs[i] = d
	}
	for _, seg := range segs {
		if strings.EqualFold(seg, "_signin") {
			r.kind = routeSignin
			return r
		}
	}

	// Consume the part before the project: the organization or collection.
	prefixLen := 0
	switch kind {
	case hostDevAzure:
		if len(segs) < 1 || strings.HasPrefix(segs[0], "_") {
			return r
		}
		r.org, prefixLen = segs[0], 1
	case hostVisualStudio:
		r.org = label
		if len(segs) > 0 && strings.EqualFold(segs[0], "DefaultCollection") {
			prefixLen = 1
		}
	case hostSelfHosted:
		// The virtual directory may have several segments (IIS paths:
		// "virtual/dir"); IIS compares paths case-insensitively.
		if vd := strings.Trim(s.cfg.VirtualDir, "/"); vd != "" {
			want := strings.Split(vd, "/")
			if len(segs) < len(want) {
				return r
			}
			for i, w := range want {
				if !strings.EqualFold(segs[i], w) {
					return r
				}
			}
			prefixLen = len(want)
		}
		if len(segs) <= prefixLen || strings.HasPrefix(segs[prefixLen], "_") {
			return r
		}
		r.org = segs[prefixLen]
		prefixLen++
	}
	r.prefix = "/" + strings.Join(raw[:prefixLen], "/")
	if prefixLen == 0 {
		r.prefix = ""
	}
	segs = segs[prefixLen:]

	// Then an optional project, then _git or _apis. On Azure DevOps Server
	// and {org}.visualstudio.com a team may stand between the project and
	// _git (a team's view of the project's repository); the emulator
	// accepts any team name.
	if len(segs) > 0 && !strings.HasPrefix(segs[0], "_") {
		r.project = segs[0]
		segs = segs[1:]
		if kind != hostDevAzure && len(segs) > 1 && !strings.HasPrefix(segs[0], "_") && segs[1] == "_git" {
			segs = segs[1:]
		}
	}
	if len(segs) == 0 {
		return r
	}
	switch {
	case segs[0] == "_apis":
		if len(segs) < 2 {
			return r
		}
		r.kind, r.api = routeAPI, strings.Join(segs[1:], "/")
		return r
	case segs[0] != "_git":
		return r
	}
	segs = segs[1:]
	if len(segs) > 0 && (segs[0] == "_optimized" || segs[0] == "_full") {
		segs = segs[1:]
	}
	if len(segs) == 0 {
		return r
	}
	r.repo, segs = segs[0], segs[1:]
	if r.project == "" {
		// Project-less URL: the repository is named like its project.
		r.project = r.repo
	}
	r.rest = strings.Join(segs, "/")
	switch r.rest {
	case "", "info/refs", "git-upload-pack", "git-receive-pack":
		r.kind = routeGit
	}
	return r
}
