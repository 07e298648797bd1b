package azdo

import (
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
//   - self-hosted: the collection, the segment before the project in
//     .../{collection}/{project}/_git/{repo}; see Parse for how a virtual
//     directory is told apart.
func OrgFor(host, path, username string) string {
	n := NormalizeHost(host)
	if org := legacyOrg(n); org != "" {
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
	// Self-hosted.
	if i := indexFold(segs, "_git"); i >= 0 {
		_, coll, _ := splitSelfHosted(segs[:i])
		if isName(coll) {
			return strings.ToLower(coll)
		}
		return ""
	}
	// Without /_git/ (REST calls, the bare collection URL) the collection is
	// the first segment after a well-known virtual directory.
	if len(segs) > 0 && strings.EqualFold(segs[0], "tfs") {
		segs = segs[1:]
	}
	if len(segs) > 0 && isName(segs[0]) && !strings.HasPrefix(segs[0], "_") {
		return strings.ToLower(segs[0])
	}
	return ""
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

// splitSelfHosted splits the segments before /_git/ on Azure DevOps Server
// into the virtual directory, the collection and the project.
//
// The shapes are [vdir...]/{collection}/{project} and, for a repository
// named like its project, [vdir...]/{collection}. Two segments are
// ambiguous ({collection}/{project} or {vdir}/{collection}); they are read
// as {collection}/{project} unless the first is "tfs", the virtual directory
// Team Foundation Server installs by default.
func splitSelfHosted(before []string) (vdir []string, collection, project string) {
	switch n := len(before); {
	case n == 0:
		return nil, "", ""
	case n == 1:
		return nil, before[0], ""
	case n == 2 && strings.EqualFold(before[0], "tfs"):
		return before[:1], before[1], ""
	default:
		return before[:n-2], before[n-2], before[n-1]
	}
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
