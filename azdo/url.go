package azdo

import (
	"errors"
	"fmt"
	"net/url"
	pathpkg "path"
	"strconv"
	"strings"
)

// Sentinel errors wrapped by *ParseError; check them with errors.Is.
var (
	// ErrNotAzureDevOps means the URL's host is not an Azure DevOps host.
	ErrNotAzureDevOps = errors.New("azdo: not an Azure DevOps host")
	// ErrInvalidURL means the host is Azure DevOps but the URL does not
	// name a repository (or a revision of one) in a form Parse knows.
	ErrInvalidURL = errors.New("azdo: not an Azure DevOps repository URL")
)

// WantClone is the shape Parse asks for in its errors.
const WantClone = "https://dev.azure.com/{org}/{project}/_git/{repo}"

// ParseError says why Parse rejected a URL and what it expected. URL is the
// input with any user information removed, so the error never carries a
// token pasted into a URL.
type ParseError struct {
	URL    string
	Reason string
	Want   string
	Err    error // ErrNotAzureDevOps or ErrInvalidURL
}

// Error implements error.
func (e *ParseError) Error() string {
	want := e.Want
	if want == "" {
		want = WantClone
	}
	return fmt.Sprintf("not an Azure DevOps repository URL: %q: %s (want %s)", e.URL, e.Reason, want)
}

// Unwrap returns the sentinel.
func (e *ParseError) Unwrap() error { return e.Err }

// Repo is one Azure DevOps git repository.
type Repo struct {
	// Host is the normalized host[:port]: dev.azure.com,
	// {org}.visualstudio.com or a self-hosted server.
	Host string
	// Org is the organization or, on Azure DevOps Server, the collection,
	// as written in the URL (Azure DevOps compares it case-insensitively;
	// see CredentialOrg).
	Org string
	// Project is the project, "" when the URL leaves it out because the
	// repository has the project's name.
	Project string
	// Name is the repository name, decoded; a ".git" suffix is part of it
	// because Azure DevOps does not strip it.
	Name string
	// VirtualDir is, on Azure DevOps Server, the path before the
	// collection (often "tfs"), decoded, segments joined by "/".
	VirtualDir string
	// Legacy is true for {org}.visualstudio.com hosts.
	Legacy bool
	// DefaultCollection is true for legacy URLs that carry
	// /DefaultCollection before the project.
	DefaultCollection bool
}

// SelfHosted reports whether r is on Azure DevOps Server.
func (r Repo) SelfHosted() bool { return !IsServicesHost(r.Host) }

// CredentialOrg returns the organization or collection in lower case, the
// same value OrgFor returns for a request to r.
func (r Repo) CredentialOrg() string { return strings.ToLower(r.Org) }

// CloneURL returns the clean HTTPS clone URL of r: no user information, the
// project and repository names %20-escaped, /_optimized/ and /_full/
// dropped, a ".git" suffix kept.
func (r Repo) CloneURL() string {
	var b strings.Builder
	b.WriteString("https://")
	b.WriteString(r.Host)
	switch {
	case r.Legacy:
		if r.DefaultCollection {
			b.WriteString("/DefaultCollection")
		}
	default:
		if r.VirtualDir != "" {
			for _, s := range strings.Split(r.VirtualDir, "/") {
				b.WriteString("/" + url.PathEscape(s))
			}
		}
		b.WriteString("/" + url.PathEscape(r.Org))
	}
	if r.Project != "" {
		b.WriteString("/" + url.PathEscape(r.Project))
	}
	b.WriteString("/_git/" + url.PathEscape(r.Name))
	return b.String()
}

// String returns the clone URL.
func (r Repo) String() string { return r.CloneURL() }

// Kind says what a Target designates in its repository.
type Kind int

// The kinds of Target.
const (
	Default     Kind = iota // the repository's default branch
	Branch                  // Target.Branch
	Tag                     // Target.Tag
	Commit                  // Target.Commit, detached
	PullRequest             // refs/pull/{Target.PullRequest}/merge
	File                    // Target.Path on Target.Branch, Tag or Commit (all empty: default branch)
)

var kindNames = [...]string{"default", "branch", "tag", "commit", "pull request", "file"}

// String returns the kind's name.
func (k Kind) String() string {
	if k >= 0 && int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// Target is what an Azure DevOps URL designates: a repository and, for web
// URLs, a revision in it.
type Target struct {
	Repo        Repo
	Kind        Kind
	Branch      string // Kind Branch, or File with version=GB...
	Tag         string // Kind Tag, or File with version=GT...
	Commit      string // Kind Commit, or File with version=GC...; 40 or 64 lower-case hex digits
	PullRequest int    // Kind PullRequest
	Path        string // the file path of ?path=, cleaned, starting with "/"; may be set with any kind
}

// Parse reads any Azure DevOps repository URL: clone URLs (with or without
// the org@ user information), legacy {org}.visualstudio.com URLs (with or
// without /DefaultCollection, with or without a team segment after the
// project), Azure DevOps Server URLs (see below), project-less
// .../_git/{repo}, /_git/_optimized/ and /_git/_full/, SSH URLs
// (git@ssh.dev.azure.com:v3/{org}/{project}[/{team}]/{repo}, ssh://...,
// {org}@vs-ssh.visualstudio.com:v3/..., the older
// ssh://{org}@vs-ssh.visualstudio.com:22/[DefaultCollection/]{project}[/{team}]/_ssh/{repo},
// and ssh://{server}[:port]/[{vdir}/]{collection}/{project}[/{team}]/_ssh/{repo}
// on a configured server, _full/_optimized allowed in each), and web URLs
// of a branch (?version=GB), tag (GT), commit (GC or /commit/{sha}), pull
// request (/pullrequest/{id}) or file (?path=; an empty ?path names no
// file). Names are percent-decoded once; "+" stays "+". A team segment
// names a team's view of the repository and is dropped. hosts decides which
// hosts are Azure DevOps (nil: Azure DevOps Services only) and where each
// server's collections are. Errors are *ParseError.
//
// On Azure DevOps Server the collection is known when the server was
// configured with its virtual directory (--host tfs.example.com/tfs, or
// tfs.example.com/ for none): {vdir}/{collection}/{project}[/{team}]/_git/{repo}.
// Otherwise the rules of Microsoft's tools find it: a DefaultCollection
// segment is the collection, a "tfs" segment the virtual directory before
// it, one or two segments are {collection}[/{project}]; any other path
// could be read in more than one way and is refused with an error that
// names the --host form to configure.
func Parse(raw string, hosts *Hosts) (*Target, error) {
	in := strings.TrimSpace(raw)
	p := parser{raw: in, hosts: hosts}
	if in == "" {
		return nil, p.invalid("empty URL")
	}
	if strings.ContainsAny(in, "\x00\r\n\t ") {
		return nil, p.invalid("URL contains spaces or control characters (encode spaces as %20)")
	}
	scheme, rest, hasScheme := strings.Cut(in, "://")
	if !hasScheme {
		if isSCPLike(in) {
			return p.scp(in)
		}
		// A URL pasted without its scheme, e.g. dev.azure.com/org/p/_git/r.
		scheme, rest = "https", in
	}
	switch strings.ToLower(scheme) {
	case "https":
	case "ssh":
		u, err := url.Parse("ssh://" + rest)
		if err != nil {
			return nil, p.invalid("malformed SSH URL")
		}
		return p.ssh(u.User.Username(), u.Hostname(), u.EscapedPath())
	case "http":
		return nil, &ParseError{URL: stripUserinfo(p.raw), Reason: "plain http: " + PlainHTTPAdvice, Want: WantClone, Err: ErrInvalidURL}
	default:
		return nil, p.invalid(fmt.Sprintf("unsupported scheme %q", strings.ToLower(scheme)))
	}
	u, err := url.Parse("https://" + rest)
	if err != nil {
		return nil, p.invalid("malformed URL")
	}
	if u.Host == "" {
		return nil, p.invalid("no host")
	}
	if !hasScheme && isSSHHost(u.Hostname()) {
		// {org}@vs-ssh.visualstudio.com:22/... pasted without ssh://.
		return p.ssh(u.User.Username(), u.Hostname(), u.EscapedPath())
	}
	t, err := p.https(NormalizeHost(u.Host), u.EscapedPath())
	if err != nil {
		return nil, err
	}
	if err := p.query(t, u.RawQuery); err != nil {
		return nil, err
	}
	return t, nil
}

// parser carries the input for error messages.
type parser struct {
	raw   string
	hosts *Hosts
}

func (p parser) fail(sentinel error, reason, want string) *ParseError {
	return &ParseError{URL: stripUserinfo(p.raw), Reason: reason, Want: want, Err: sentinel}
}

func (p parser) invalid(reason string) *ParseError { return p.fail(ErrInvalidURL, reason, "") }

// https parses the path of an https URL on host (normalized).
func (p parser) https(host, escapedPath string) (*Target, error) {
	r, rest, err := p.repo(host, escapedPath, "_git")
	if err != nil {
		return nil, err
	}
	t := &Target{Repo: r}
	if err := p.webPath(t, rest); err != nil {
		return nil, err
	}
	return t, nil
}

// WantServer is the shape of an Azure DevOps Server repository URL.
const WantServer = "https://{server}[/{virtual-dir}]/{collection}/{project}[/{team}]/_git/{repo}"

// repo reads the repository from the path of a URL on host (normalized):
// the segments up to marker ("_git", or "_ssh" in an SSH URL), an optional
// _optimized or _full, the repository name; rest is what follows.
func (p parser) repo(host, escapedPath, marker string) (Repo, []string, *ParseError) {
	if !p.hosts.Match(host) {
		return Repo{}, nil, p.fail(ErrNotAzureDevOps, fmt.Sprintf("%s is not an Azure DevOps host (dev.azure.com, {org}.visualstudio.com, or a self-hosted server configured with --host)", host), "")
	}
	segs, err := decodeSegments(escapedPath)
	if err != nil {
		return Repo{}, nil, p.invalid("bad percent-encoding in path")
	}
	i := indexFold(segs, marker)
	if i < 0 {
		return Repo{}, nil, p.invalid("no /" + marker + "/ in path")
	}
	before := segs[:i]
	j := i + 1
	if j < len(segs) && (strings.EqualFold(segs[j], "_optimized") || strings.EqualFold(segs[j], "_full")) {
		j++
	}
	if j >= len(segs) {
		return Repo{}, nil, p.invalid("no repository name after /" + marker + "/")
	}
	r := Repo{Host: host, Name: segs[j]}
	rest := segs[j+1:]

	switch org := p.hosts.legacyOrg(host); {
	case host == ServicesHost:
		switch len(before) {
		case 1:
			r.Org = before[0]
		case 2:
			r.Org, r.Project = before[0], before[1]
		default:
			return Repo{}, nil, p.invalid(fmt.Sprintf("want {org}/{project}/_git/{repo} after the host, got %d segments before /_git/", len(before)))
		}
	case org != "":
		r.Org, r.Legacy = org, true
		if len(before) > 0 && strings.EqualFold(before[0], "DefaultCollection") {
			r.DefaultCollection = true
			before = before[1:]
		}
		switch len(before) {
		case 0:
		case 1, 2:
			// {project} or {project}/{team}: a team's view of the same
			// repository.
			r.Project = before[0]
		default:
			return Repo{}, nil, p.fail(ErrInvalidURL, "too many segments before /_git/", "https://{org}.visualstudio.com/{project}[/{team}]/_git/{repo}")
		}
	default:
		for _, s := range before {
			if !isName(s) || strings.HasPrefix(s, "_") {
				return Repo{}, nil, p.invalid(fmt.Sprintf("bad path segment %q", s))
			}
		}
		sp, err := p.hosts.splitServer(host, before)
		switch {
		case errors.Is(err, errAmbiguous):
			return Repo{}, nil, p.fail(ErrInvalidURL, fmt.Sprintf(
				"cannot tell which of %q is the collection without the server's virtual directory; configure it with --host %s/VDIR (AZDO_HOST, or host: in the vault config), or --host %s/ for a server without one",
				strings.Join(before, "/"), host, host), WantServer)
		case errors.Is(err, errNotUnderVDir):
			return Repo{}, nil, p.fail(ErrInvalidURL, fmt.Sprintf(
				"the path is not under the virtual directory configured for %s (%s); add its virtual directory with another --host %s/VDIR",
				host, p.hosts.vdirList(host), host), WantServer)
		case errors.Is(err, errTooDeep):
			return Repo{}, nil, p.fail(ErrInvalidURL, "too many segments between the collection and /_git/", WantServer)
		}
		if sp.collection == "" {
			return Repo{}, nil, p.fail(ErrInvalidURL, "no collection before /_git/", WantServer)
		}
		r.VirtualDir = strings.Join(sp.vdir, "/")
		r.Org = sp.collection
		if len(sp.tail) > 0 {
			r.Project = sp.tail[0]
		}
	}
	if !isName(r.Org) || strings.HasPrefix(r.Org, "_") || (host == ServicesHost && !isOrgName(r.Org)) {
		return Repo{}, nil, p.invalid(fmt.Sprintf("bad organization name %q", r.Org))
	}
	if r.Project != "" && (!isName(r.Project) || strings.HasPrefix(r.Project, "_")) {
		return Repo{}, nil, p.invalid(fmt.Sprintf("bad project name %q", r.Project))
	}
	if !isName(r.Name) {
		return Repo{}, nil, p.invalid(fmt.Sprintf("bad repository name %q", r.Name))
	}
	return r, rest, nil
}

// webPages are web UI pages under a repository that designate nothing more
// than the repository.
var webPages = map[string]bool{"branches": true, "tags": true, "commits": true, "pullrequests": true, "pushes": true}

// webPath reads what follows the repository name in a web URL.
func (p parser) webPath(t *Target, rest []string) error {
	switch {
	case len(rest) == 0:
		return nil
	case len(rest) == 1 && webPages[strings.ToLower(rest[0])]:
		return nil
	case len(rest) == 2 && strings.EqualFold(rest[0], "commit"):
		sha, ok := commitID(rest[1])
		if !ok {
			return p.invalid(fmt.Sprintf("commit %q is not a full commit id (40 or 64 hex digits)", rest[1]))
		}
		t.Kind, t.Commit = Commit, sha
		return nil
	case len(rest) == 2 && strings.EqualFold(rest[0], "pullrequest"):
		id, err := strconv.Atoi(rest[1])
		if err != nil || id <= 0 || id > 1<<31-1 || rest[1][0] == '0' || rest[1][0] == '+' {
			return p.invalid(fmt.Sprintf("pull request %q is not a positive number", rest[1]))
		}
		t.Kind, t.PullRequest = PullRequest, id
		return nil
	}
	return p.fail(ErrInvalidURL, fmt.Sprintf("unexpected %q after the repository", strings.Join(rest, "/")),
		"a clone URL, or a web URL with /commit/{sha}, /pullrequest/{id}, ?version=GB{branch}|GT{tag}|GC{sha}, ?path=/{file}")
}

// query reads the version and path parameters of a web URL. Values are
// percent-decoded once and "+" is kept, unlike form decoding: Azure DevOps
// never encodes a space as "+", and "+" is legal in branch names.
func (p parser) query(t *Target, raw string) error {
	var version, path string
	var haveVersion, havePath bool
	for _, kv := range strings.Split(raw, "&") {
		k, v, _ := strings.Cut(kv, "=")
		switch strings.ToLower(k) {
		case "version", "path":
		default:
			continue // _a=contents, line=..., refName=... designate nothing more
		}
		d, err := url.PathUnescape(v)
		if err != nil {
			return p.invalid(fmt.Sprintf("bad percent-encoding in %s=", k))
		}
		if strings.EqualFold(k, "version") {
			version, haveVersion = d, true
		} else {
			path, havePath = d, true
		}
	}
	if havePath && path == "" {
		// ?path and ?path= name no file: the web UI writes them for the
		// repository's root.
		havePath = false
	}
	if havePath {
		if strings.ContainsAny(path, "\x00\r\n") {
			return p.invalid("invalid path=")
		}
		// The file is in the working tree: clean it as an absolute path,
		// so that "/../x" cannot name a file outside the clone.
		t.Path = pathpkg.Clean("/" + path)
	}
	if t.Kind != Default {
		// /commit/{sha} and /pullrequest/{id} already say the revision.
		return nil
	}
	if haveVersion {
		if len(version) < 3 {
			return p.invalid(fmt.Sprintf("version=%q: want GB{branch}, GT{tag} or GC{commit}", version))
		}
		prefix, name := strings.ToUpper(version[:2]), version[2:]
		switch prefix {
		case "GB":
			if !validRefName(name) {
				return p.invalid(fmt.Sprintf("bad branch name %q", name))
			}
			t.Kind, t.Branch = Branch, name
		case "GT":
			if !validRefName(name) {
				return p.invalid(fmt.Sprintf("bad tag name %q", name))
			}
			t.Kind, t.Tag = Tag, name
		case "GC":
			sha, ok := commitID(name)
			if !ok {
				return p.invalid(fmt.Sprintf("commit %q is not a full commit id (40 or 64 hex digits)", name))
			}
			t.Kind, t.Commit = Commit, sha
		default:
			return p.invalid(fmt.Sprintf("version=%q: want GB{branch}, GT{tag} or GC{commit}", version))
		}
	}
	if havePath {
		t.Kind = File
	}
	return nil
}

// ssh converts an SSH URL's user, host and path to the HTTPS repository.
// user is the URL's user name, which the old vs-ssh.visualstudio.com URLs
// use for the organization.
func (p parser) ssh(user, hostname, escapedPath string) (*Target, error) {
	host := strings.TrimSuffix(strings.ToLower(hostname), ".")
	segs, err := decodeSegments(escapedPath)
	if err != nil {
		return nil, p.invalid("bad percent-encoding in path")
	}
	switch host {
	case "ssh.dev.azure.com", "vs-ssh.visualstudio.com":
		if len(segs) > 0 && strings.EqualFold(segs[0], "v3") {
			return p.sshV3(host, segs)
		}
		if host == "ssh.dev.azure.com" {
			return nil, p.fail(ErrInvalidURL, "want v3/{org}/{project}[/{team}]/{repo} in an SSH URL", "git@ssh.dev.azure.com:v3/{org}/{project}/{repo}")
		}
		// The v1/v2 form of the legacy SSH host:
		// {org}@vs-ssh.visualstudio.com:22/[DefaultCollection/][{project}[/{team}]/]_ssh/[_full/|_optimized/]{repo}.
		org := strings.ToLower(user)
		lh := org + legacySuffix
		// Only an organization-shaped user name (at most 50 characters) is
		// taken: a PAT pasted as the user name (52 or 84 characters) must
		// never become a host name, and is not echoed in the error.
		if !isOrgName(org) || p.hosts.legacyOrg(lh) == "" {
			return nil, p.fail(ErrInvalidURL, "the user name of a vs-ssh.visualstudio.com URL is not an organization",
				"ssh://{org}@vs-ssh.visualstudio.com:22/{project}/_ssh/{repo}")
		}
		r, rest, perr := p.repo(lh, "/"+escapedPathOf(segs), "_ssh")
		if perr != nil {
			return nil, perr
		}
		if len(rest) > 0 {
			return nil, p.invalid(fmt.Sprintf("unexpected %q after the repository", strings.Join(rest, "/")))
		}
		return &Target{Repo: r}, nil
	}
	if hp, ok := p.hosts.selfHostedByName(host); ok {
		// Azure DevOps Server SSH URLs carry the HTTPS path with /_ssh/
		// (or, in some tools, /_git/) where HTTPS has /_git/. The SSH port
		// is not the HTTPS port: the configured entry says which that is.
		marker := "_ssh"
		if indexFold(segs, "_ssh") < 0 {
			marker = "_git"
		}
		r, rest, perr := p.repo(hp, "/"+escapedPathOf(segs), marker)
		if perr != nil {
			return nil, perr
		}
		if len(rest) > 0 {
			return nil, p.invalid(fmt.Sprintf("unexpected %q after the repository", strings.Join(rest, "/")))
		}
		return &Target{Repo: r}, nil
	}
	return nil, p.fail(ErrNotAzureDevOps, fmt.Sprintf("%s is not an Azure DevOps SSH host (ssh.dev.azure.com, vs-ssh.visualstudio.com, or a configured self-hosted server)", host), "git@ssh.dev.azure.com:v3/{org}/{project}/{repo}")
}

// sshV3 reads v3/{org}/{project}[/{team}][/_full|/_optimized]/{repo} on
// ssh.dev.azure.com or vs-ssh.visualstudio.com.
func (p parser) sshV3(host string, segs []string) (*Target, error) {
	bad := func() (*Target, error) {
		return nil, p.fail(ErrInvalidURL, "want v3/{org}/{project}[/{team}]/{repo} in an SSH URL", "git@ssh.dev.azure.com:v3/{org}/{project}/{repo}")
	}
	if len(segs) < 4 {
		return bad()
	}
	org, rest := segs[1], segs[2:]
	name := rest[len(rest)-1]
	rest = rest[:len(rest)-1]
	if n := len(rest); n > 0 && (strings.EqualFold(rest[n-1], "_full") || strings.EqualFold(rest[n-1], "_optimized")) {
		rest = rest[:n-1]
	}
	if len(rest) != 1 && len(rest) != 2 { // {project} or {project}/{team}
		return bad()
	}
	r := Repo{Host: ServicesHost, Org: org, Project: rest[0], Name: name}
	if host == "ssh.dev.azure.com" && !isOrgName(org) {
		return nil, p.invalid(fmt.Sprintf("bad organization name %q", org))
	}
	if host == "vs-ssh.visualstudio.com" {
		lo := strings.ToLower(org)
		if !isOrgName(lo) || p.hosts.legacyOrg(lo+legacySuffix) == "" {
			return nil, p.invalid(fmt.Sprintf("bad organization name %q", org))
		}
		// The legacy SSH host belongs to {org}.visualstudio.com.
		r = Repo{Host: lo + legacySuffix, Org: lo, Project: rest[0], Name: name, Legacy: true}
	}
	if !isName(r.Org) || strings.HasPrefix(r.Org, "_") || !isName(r.Project) || strings.HasPrefix(r.Project, "_") || !isName(r.Name) || strings.HasPrefix(r.Name, "_") {
		return nil, p.invalid("bad organization, project or repository name")
	}
	return &Target{Repo: r}, nil
}

// escapedPathOf joins decoded segments back into an escaped path.
func escapedPathOf(segs []string) string {
	out := make([]string, len(segs))
	for i, s := range segs {
		out[i] = url.PathEscape(s)
	}
	return strings.Join(out, "/")
}

// scp parses the scp-like SSH form [user@]host:path.
func (p parser) scp(in string) (*Target, error) {
	hostpart, path, _ := strings.Cut(in, ":")
	var user string
	if at := strings.LastIndexByte(hostpart, '@'); at >= 0 {
		user, hostpart = hostpart[:at], hostpart[at+1:]
	}
	if i := strings.IndexAny(path, "?#"); i >= 0 {
		path = path[:i]
	}
	return p.ssh(user, hostpart, path)
}

// isSSHHost reports whether host is one of Azure DevOps Services' SSH hosts.
func isSSHHost(host string) bool {
	h := strings.TrimSuffix(strings.ToLower(host), ".")
	return h == "ssh.dev.azure.com" || h == "vs-ssh.visualstudio.com"
}

// isSCPLike reports whether s (which has no "://") is [user@]host:path: a
// colon before any slash.
func isSCPLike(s string) bool {
	colon := strings.IndexByte(s, ':')
	slash := strings.IndexByte(s, '/')
	return colon > 0 && (slash < 0 || colon < slash) && !isPortThenPath(s[colon+1:])
}

// isPortThenPath reports whether s starts with a port number followed by a
// slash or nothing, as in "dev.azure.com:443/org/...".
func isPortThenPath(s string) bool {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	return i > 0 && (i == len(s) || s[i] == '/')
}

// decodeSegments splits an escaped path into segments decoded exactly once,
// dropping empty ones (a trailing slash, a doubled slash).
func decodeSegments(escaped string) ([]string, error) {
	var out []string
	for _, s := range strings.Split(escaped, "/") {
		if s == "" {
			continue
		}
		d, err := url.PathUnescape(s)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, nil
}

// commitID returns s in lower case when it is a full SHA-1 or SHA-256 commit
// id.
func commitID(s string) (string, bool) {
	if len(s) != 40 && len(s) != 64 {
		return "", false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return "", false
		}
	}
	return strings.ToLower(s), true
}

// validRefName reports whether name is acceptable as a branch or tag name,
// following git check-ref-format: no control characters, space, ~ ^ : ? * [
// or backslash, no "..", "@{" or "//", no leading or trailing "/" or ".",
// no ".lock" suffix, no component starting with ".".
func validRefName(name string) bool {
	if name == "" || name == "@" || len(name) > 1024 {
		return false
	}
	if strings.Contains(name, "..") || strings.Contains(name, "@{") || strings.Contains(name, "//") ||
		strings.HasPrefix(name, "/") || strings.HasSuffix(name, "/") || strings.HasSuffix(name, ".") ||
		strings.HasSuffix(name, ".lock") || strings.HasPrefix(name, "-") {
		return false
	}
	for _, c := range []byte(name) {
		if c < 0x20 || c == 0x7f || strings.IndexByte(" ~^:?*[\\", c) >= 0 {
			return false
		}
	}
	for _, comp := range strings.Split(name, "/") {
		if strings.HasPrefix(comp, ".") || strings.HasSuffix(comp, ".lock") {
			return false
		}
	}
	return true
}

// stripUserinfo removes the user information from a URL-like string, for
// error messages: it may be a token pasted into the URL.
func stripUserinfo(s string) string {
	if scheme, rest, ok := strings.Cut(s, "://"); ok {
		end := strings.IndexAny(rest, "/?#")
		if end < 0 {
			end = len(rest)
		}
		if at := strings.LastIndexByte(rest[:end], '@'); at >= 0 {
			rest = rest[at+1:]
		}
		return scheme + "://" + rest
	}
	// Scheme-less: [user[:password]@]host[:port]/path or the scp-like
	// [user@]host:path. The authority ends at the first '/', '?' or '#'.
	end := strings.IndexAny(s, "/?#")
	if end < 0 {
		end = len(s)
	}
	if at := strings.LastIndexByte(s[:end], '@'); at >= 0 {
		return s[at+1:]
	}
	return s
}
