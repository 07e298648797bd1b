package policy

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"

	"github.com/azdo-sidecar/azdo-sidecar/azdo"
)

// Operation is what a request does, as audit events name it.
type Operation string

// The operations.
const (
	OpFetch    Operation = "fetch"     // git-upload-pack
	OpPush     Operation = "push"      // git-receive-pack
	OpLsRemote Operation = "ls-remote" // info/refs?service=git-upload-pack alone
	OpREST     Operation = "rest"      // the REST API
)

// Kind is the shape of a mapped request.
type Kind int

// The kinds of Request.
const (
	Unmapped    Kind = iota // nothing the proxy can tie to a repository
	InfoRefs                // GET .../info/refs?service=...
	UploadPack              // POST .../git-upload-pack
	ReceivePack             // POST .../git-receive-pack
	RESTRepo                // .../_apis/git/repositories/{id or name}[/...]
	RESTList                // a route that lists or spans repositories
)

// Request is what Map makes of one intercepted request.
type Request struct {
	Kind Kind
	// Op is the audit operation; for InfoRefs it is OpLsRemote (upload-pack)
	// or OpPush (receive-pack), and a following UploadPack makes it a fetch.
	Op Operation
	// Service is "git-upload-pack" or "git-receive-pack" for git requests.
	Service string
	// Repo is the repository; for RESTRepo only Host, VirtualDir and Org
	// until the caller resolved RESTRef (see Resolve).
	Repo RepoName
	// Write is true for a push and for a REST request other than GET, HEAD
	// or OPTIONS.
	Write bool
	// RESTPrefix is the escaped path before /_apis/ (for RESTRepo and
	// RESTList), the base the caller resolves RESTRef against.
	RESTPrefix string
	// RESTRef is the repository ID or name in a RESTRepo path, decoded.
	RESTRef string
	// Why says, for Unmapped, what the request lacks (for the user).
	Why string
}

// Resolve reports whether the caller must look the repository up through
// the API before checking it: every RESTRepo request, because the path may
// carry an ID, a project ID or no project at all, and only the API's answer
// gives the names a pattern compares.
func (r Request) Resolve() bool { return r.Kind == RESTRepo }

// gitSuffixes are the smart HTTP endpoints after a repository path.
var gitSuffixes = []struct {
	suffix, service, method string
	kind                    Kind
}{
	{"/info/refs", "", http.MethodGet, InfoRefs},
	{"/git-upload-pack", "git-upload-pack", http.MethodPost, UploadPack},
	{"/git-receive-pack", "git-receive-pack", http.MethodPost, ReceivePack},
}

// guid matches a GUID as Azure DevOps writes repository and project IDs.
var guid = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// IsGUID reports whether s is a GUID.
func IsGUID(s string) bool { return guid.MatchString(s) }

// Map says which repository and operation a request to host (the
// normalized CONNECT target) is for. hosts is the Azure DevOps host list
// (azdo.Parse's). A request Map cannot tie to a repository is Unmapped,
// never guessed: the caller refuses it under a policy.
func Map(host, method string, u *url.URL, hosts *azdo.Hosts) Request {
	escaped := u.EscapedPath()
	if why := unsafePath(escaped); why != "" {
		return Request{Why: why}
	}
	for _, g := range gitSuffixes {
		prefix, ok := cutSuffixFold(escaped, g.suffix)
		if !ok {
			continue
		}
		if method != g.method && !(g.kind == InfoRefs && method == http.MethodHead) {
			return Request{Why: "unexpected method " + method + " for a git request"}
		}
		r := Request{Kind: g.kind, Service: g.service}
		if g.kind == InfoRefs {
			q, err := url.ParseQuery(u.RawQuery)
			if err != nil || len(q["service"]) != 1 {
				return Request{Why: "info/refs without one service= parameter (dumb HTTP is not supported)"}
			}
			r.Service = q.Get("service")
		}
		switch r.Service {
		case "git-upload-pack":
			r.Op = OpFetch
			if r.Kind == InfoRefs {
				r.Op = OpLsRemote
			}
		case "git-receive-pack":
			r.Op, r.Write = OpPush, true
		default:
			return Request{Why: "unknown git service"}
		}
		t, err := azdo.Parse("https://"+host+prefix, hosts)
		if err != nil || t.Kind != azdo.Default || !repoLast(prefix) {
			return Request{Why: "git request that names no repository"}
		}
		r.Repo = FromRepo(t.Repo)
		return r
	}
	r := mapREST(host, method, escaped, hosts)
	if r.Kind == RESTRepo || r.Kind == RESTList {
		if why := crossRepoQuery(u.RawQuery); why != "" {
			return Request{Why: why}
		}
	}
	return r
}

// crossRepoQuery returns why a REST request's query cannot be checked: a
// parameter naming another repository or collection
// (…/commits/{id}/mergebases?otherRepositoryId=…, otherCollectionId),
// which the repository in the path would not cover. Any other*Id
// parameter but otherCommitId counts, in any case; so does a query that
// does not parse.
func crossRepoQuery(raw string) string {
	if raw == "" {
		return ""
	}
	q, err := url.ParseQuery(raw)
	if err != nil {
		return "REST query that does not parse"
	}
	for k := range q {
		l := strings.ToLower(strings.TrimSpace(k))
		// otherCommitId names a commit, which the path's repository holds.
		if strings.HasPrefix(l, "other") && strings.HasSuffix(l, "id") && l != "othercommitid" {
			return "REST query naming another repository or collection (other…Id)"
		}
	}
	return ""
}

// mapREST maps {prefix}/_apis/git/repositories[/{id or name}[/...]].
func mapREST(host, method, escaped string, hosts *azdo.Hosts) Request {
	lower := strings.ToLower(escaped)
	i := strings.Index(lower, "/_apis/")
	if i < 0 {
		return Request{Why: "not a git or REST API request"}
	}
	prefix, rest := escaped[:i], escaped[i+len("/_apis/"):]
	segs := strings.Split(strings.Trim(rest, "/"), "/")
	if len(segs) < 2 || !strings.EqualFold(segs[0], "git") || !strings.EqualFold(segs[1], "repositories") {
		return Request{Kind: Unmapped, Why: "REST route outside _apis/git/repositories"}
	}
	r := Request{Kind: RESTRepo, Op: OpREST, RESTPrefix: prefix}
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
	default:
		r.Write = true
	}
	// The collection by the URL model's rules (the server's configured
	// virtual directory, else Microsoft's): an ambiguous path is not
	// mapped.
	vdir, org, ok := hosts.Collection(host, prefix)
	org = strings.ToLower(org)
	if !ok {
		return Request{Why: "REST request without an organization"}
	}
	r.Repo = RepoName{Host: azdo.NormalizeHost(host), VirtualDir: vdir, Org: org}
	if len(segs) == 2 {
		r.Kind = RESTList
		return r
	}
	ref, err := url.PathUnescape(segs[2])
	if err != nil || ref == "" {
		return Request{Why: "bad repository in REST path"}
	}
	r.RESTRef = ref
	return r
}

// unsafePath returns why an escaped path cannot be mapped safely: a dot
// segment, a backslash or an encoded slash that a server might normalize
// into another repository's path after the proxy checked it.
func unsafePath(escaped string) string {
	if escaped == "" || escaped[0] != '/' {
		return "relative path"
	}
	lower := strings.ToLower(escaped)
	if strings.Contains(lower, "%2f") || strings.Contains(lower, "%5c") || strings.Contains(lower, "\\") ||
		strings.Contains(lower, "%00") || strings.Contains(lower, ";") || strings.Contains(lower, "//") {
		return "path with an encoded slash, backslash, NUL, ';' or empty segment"
	}
	for _, s := range strings.Split(escaped, "/") {
		d, err := url.PathUnescape(s)
		if err != nil {
			return "bad percent-encoding in path"
		}
		if d == "." || d == ".." || strings.ContainsAny(d, "\x00\r\n%") {
			return "path with a dot segment, a control character or double encoding"
		}
	}
	return ""
}

// repoLast reports whether the repository is the last segment of an escaped
// git path prefix: .../_git/{repo} or .../_git/_optimized|_full/{repo}, so
// that web paths such as .../_git/{repo}/branches never pass for it.
func repoLast(prefix string) bool {
	segs := strings.Split(strings.ToLower(prefix), "/")
	n := len(segs)
	switch {
	case n >= 2 && segs[n-2] == "_git":
		return true
	case n >= 3 && segs[n-3] == "_git" && (segs[n-2] == "_optimized" || segs[n-2] == "_full"):
		return true
	}
	return false
}

// cutSuffixFold is strings.CutSuffix ignoring ASCII case.
func cutSuffixFold(s, suffix string) (string, bool) {
	if len(s) < len(suffix) || !strings.EqualFold(s[len(s)-len(suffix):], suffix) {
		return s, false
	}
	return s[:len(s)-len(suffix)], true
}
