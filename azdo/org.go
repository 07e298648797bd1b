package azdo

import (
	"errors"
	"net/url"
	"strings"
)

// OrgFor returns the organization (on Azure DevOps Server, the collection)
// that a credential request for host, path and username is for, in lower
// case because Azure DevOps compares these names case-insensitively. It
// returns "" when the request does not say.
//
// path is the URL path (with or without a leading slash, still
// percent-encoded, as git sends it with credential.useHttpPath). username is
// the URL's userinfo: the web UI puts the organization there
// (https://{org}@dev.azure.com/...), so that git hands it to credential
// helpers even without useHttpPath. It is only taken when it has the shape of
// an organization name, so a token pasted as a user name is never used.
//
//   - dev.azure.com: the first path segment, else the user name.
//   - {org}.visualstudio.com: the subdomain.
//   - self-hosted: the collection, found in the segments before the first
//     one that starts with "_" (/_git/, /_apis/, /_usersSettings/...) by
//     the same rules as Parse, so a git path and a REST path on the same
//     server give the same collection; "" where those rules find the path
//     ambiguous.
func (h *Hosts) OrgFor(host, path, username string) string {
	n := NormalizeHost(host)
	if org := h.legacyOrg(n); org != "" {
		return org
	}
	segs := pathSegments(path)
	if n == ServicesHost {
		if len(segs) > 0 && isOrgName(segs[0]) {
			return strings.ToLower(segs[0])
		}
		if isOrgName(username) {
			return strings.ToLower(username)
		}
		return ""
	}
	if legacyLabel(n) != "" {
		return "" // a Microsoft site, not an organization
	}
	before := segs
	for i, s := range segs {
		if strings.HasPrefix(s, "_") {
			before = segs[:i]
			break
		}
	}
	loc, err := h.splitServer(n, before)
	if err != nil || !isName(loc.collection) {
		return ""
	}
	return strings.ToLower(loc.collection)
}

// OrgFor is (*Hosts)(nil).OrgFor: without configured virtual directories,
// which a caller that knows the configuration should not use for a
// self-hosted host.
func OrgFor(host, path, username string) string {
	return (*Hosts)(nil).OrgFor(host, path, username)
}

// RepoFor returns the repository a request path on an Azure DevOps host is
// for: escapedPath is the percent-encoded path of a git smart HTTP request
// (.../_git/{repo}/info/refs, .../git-upload-pack) or of any URL with
// /_git/{repo} in it. rest is what follows the repository name, decoded
// (["info", "refs"]). The error is a *ParseError, as Parse's.
func (h *Hosts) RepoFor(hostport, escapedPath string) (repo Repo, rest []string, err error) {
	n := NormalizeHost(hostport)
	p := parser{raw: "https://" + n + escapedPath, hosts: h}
	r, rest, perr := p.repo(n, escapedPath, "_git")
	if perr != nil {
		return Repo{}, nil, perr
	}
	return r, rest, nil
}

// pathSegments splits a percent-encoded path into decoded segments, dropping
// empty ones. A segment that does not decode is kept as it is; callers
// validate names.
func pathSegments(p string) []string {
	if i := strings.IndexAny(p, "?#"); i >= 0 {
		p = p[:i]
	}
	var out []string
	for _, s := range strings.Split(p, "/") {
		if s == "" {
			continue
		}
		if d, err := url.PathUnescape(s); err == nil {
			s = d
		}
		out = append(out, s)
	}
	return out
}

// indexFold returns the index of the first segment equal to want ignoring
// case, or -1.
func indexFold(segs []string, want string) int {
	for i, s := range segs {
		if strings.EqualFold(s, want) {
			return i
		}
	}
	return -1
}

// serverPath is where the segments before /_git/ (or /_apis/) on a
// self-hosted server put the virtual directory, the collection, the
// project and the team.
type serverPath struct {
	vdir       []string
	collection string
	tail       []string // project and team: zero, one or two segments
}

// errAmbiguous means the collection cannot be told from the path without
// the server's virtual directory.
var errAmbiguous = errors.New("azdo: ambiguous collection")

// splitServer splits the decoded segments before /_git/ on the self-hosted
// host n (normalized) into virtual directory, collection and
// [project[/team]].
//
// With a configured virtual directory (--host host/vdir, or host/ for none)
// the path must start with it and the collection is the segment after it.
// Without one, the rules of Microsoft's own tools apply: a DefaultCollection
// segment is the collection (the default collection's name on every
// install); otherwise a "tfs" segment is the virtual directory (the default
// of Team Foundation Server and of Azure DevOps Server before 2019) and the
// collection follows it; otherwise one segment is the collection and two
// are {collection}/{project} (Azure DevOps Server 2019 and later install
// without a virtual directory). Three or more segments without such a
// segment could be [vdir/]collection/project[/team] in more than one way:
// errAmbiguous, and the caller says which flag to set.
func (h *Hosts) splitServer(n string, before []string) (serverPath, error) {
	if h != nil {
		if vdirs := h.vdirs[n]; len(vdirs) > 0 {
			for _, v := range vdirs {
				if len(before) > len(v) && hasPrefixFold(before, v) {
					return tailCheck(serverPath{vdir: before[:len(v)], collection: before[len(v)], tail: before[len(v)+1:]})
				}
			}
			return serverPath{}, errNotUnderVDir
		}
	}
	if i := indexFold(before, "DefaultCollection"); i >= 0 {
		return tailCheck(serverPath{vdir: before[:i], collection: before[i], tail: before[i+1:]})
	}
	if i := indexFold(before, "tfs"); i >= 0 {
		if i+1 >= len(before) {
			return serverPath{vdir: before[:i+1]}, nil // no collection
		}
		return tailCheck(serverPath{vdir: before[:i+1], collection: before[i+1], tail: before[i+2:]})
	}
	switch len(before) {
	case 0:
		return serverPath{}, nil
	case 1, 2:
		return serverPath{collection: before[0], tail: before[1:]}, nil
	}
	return serverPath{}, errAmbiguous
}

// errNotUnderVDir means the path is not under any virtual directory
// configured for its host.
var errNotUnderVDir = errors.New("azdo: not under the configured virtual directory")

// errTooDeep means more than project and team stand between the collection
// and /_git/.
var errTooDeep = errors.New("azdo: too many segments after the collection")

func tailCheck(sp serverPath) (serverPath, error) {
	if len(sp.tail) > 2 {
		return serverPath{}, errTooDeep
	}
	return sp, nil
}

// hasPrefixFold reports whether segs starts with prefix, ignoring case (IIS
// paths are case-insensitive).
func hasPrefixFold(segs, prefix []string) bool {
	if len(prefix) > len(segs) {
		return false
	}
	for i := range prefix {
		if !strings.EqualFold(segs[i], prefix[i]) {
			return false
		}
	}
	return true
}

// isOrgName reports whether s has the shape of an Azure DevOps organization
// name: 1 to 50 letters, digits and hyphens, starting and ending with a
// letter or digit. Personal access tokens are longer (52 or 84 characters),
// so one pasted as a URL user name is never taken for an organization.
func isOrgName(s string) bool {
	return len(s) <= 50 && isDNSLabel(s)
}

// isName reports whether s can be an organization, collection, project or
// repository name: non-empty, not "." or "..", no slash, backslash or
// control character.
func isName(s string) bool {
	if s == "" || s == "." || s == ".." || len(s) > 256 {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f || r == '/' || r == '\\' {
			return false
		}
	}
	return true
}

// OrgPath returns a percent-encoded request path, without a leading slash,
// for which h.OrgFor(host, path, "") is org (lower-cased): what a client
// that knows only the credential key (host and organization or collection)
// sends as git's credential path. On a self-hosted host configured with a
// virtual directory the path starts with it (the first one configured);
// on {org}.visualstudio.com it is empty, the host naming the organization.
func (h *Hosts) OrgPath(host, org string) string {
	n := NormalizeHost(host)
	if org == "" || h.legacyOrg(n) != "" {
		return ""
	}
	p := url.PathEscape(org) + "/"
	if n == ServicesHost || h == nil {
		return p
	}
	for _, s := range h.servers {
		if s.Host == n && s.VirtualDirKnown {
			if s.VirtualDir != "" {
				p = escapedPathOf(strings.Split(s.VirtualDir, "/")) + "/" + p
			}
			break
		}
	}
	return p
}

// Collection returns the virtual directory (decoded, segments joined by
// "/") and the organization or collection (as written) of a request path on
// an Azure DevOps host, by the rules of OrgFor: the segments before the
// first one that starts with "_" (/_git/, /_apis/...) on a self-hosted
// server; the first segment on dev.azure.com; the host's label on
// {org}.visualstudio.com. ok is false when the path names none, or names
// it ambiguously.
func (h *Hosts) Collection(host, escapedPath string) (vdir, org string, ok bool) {
	n := NormalizeHost(host)
	if o := h.legacyOrg(n); o != "" {
		return "", o, true
	}
	segs := pathSegments(escapedPath)
	if n == ServicesHost {
		if len(segs) > 0 && isOrgName(segs[0]) {
			return "", segs[0], true
		}
		return "", "", false
	}
	if legacyLabel(n) != "" {
		return "", "", false
	}
	before := segs
	for i, s := range segs {
		if strings.HasPrefix(s, "_") {
			before = segs[:i]
			break
		}
	}
	sp, err := h.splitServer(n, before)
	if err != nil || !isName(sp.collection) || strings.HasPrefix(sp.collection, "_") {
		return "", "", false
	}
	return strings.Join(sp.vdir, "/"), sp.collection, true
}
