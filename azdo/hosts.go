// Package azdo is the Azure DevOps URL model: which hosts are Azure DevOps,
// how clone, web and SSH URLs name a repository and a revision, and which
// organization (or, on Azure DevOps Server, collection) a credential request
// is for.
//
// It imports only the standard library because it is linked into the small
// git-credential-azdo binary, whose start-up time git pays on every request.
package azdo

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"sort"
	"strconv"
	"strings"
)

// ServicesHost is the host of Azure DevOps Services.
const ServicesHost = "dev.azure.com"

// legacySuffix is the domain of legacy {org}.visualstudio.com hosts.
const legacySuffix = ".visualstudio.com"

// Hosts decides which hosts are Azure DevOps: dev.azure.com,
// {org}.visualstudio.com (exactly one DNS label before .visualstudio.com,
// and not a label Microsoft uses for one of its other sites, see
// NotOrganizations), and the configured self-hosted Azure DevOps Server
// hosts. It also knows the virtual directory of each server configured with
// one, which tells the collection in a URL apart from the path before it.
//
// A nil *Hosts knows the Azure DevOps Services hosts only. Hosts is
// immutable after NewHosts and safe for concurrent use.
type Hosts struct {
	self    map[string]bool       // normalized host[:port] of self-hosted servers and opted-in {label}.visualstudio.com
	list    []string              // the same, in configuration order, no duplicates
	servers []Server              // every entry, in configuration order
	vdirs   map[string][][]string // host[:port] -> known virtual directories (lower case segments), longest first
	legacy  map[string]bool       // {label}.visualstudio.com hosts configured although label is in NotOrganizations
}

// Server is one configured self-hosted entry: --host
// HOST[:PORT][/VIRTUAL/DIR], or the vault's providers[].host.
type Server struct {
	// Host is the normalized host[:port].
	Host string
	// VirtualDir is the path before the collections, decoded, segments
	// joined by "/" ("tfs", "virtual/dir"); "" for none.
	VirtualDir string
	// VirtualDirKnown is true when the entry said where the collections
	// are: HOST/VDIR, or HOST/ for a server without a virtual directory.
	// Without it the collection is found by the rules in Parse.
	VirtualDirKnown bool
}

// String returns the entry as it is configured: host[:port], then
// "/vdir" or "/" when the virtual directory is known.
func (s Server) String() string {
	if !s.VirtualDirKnown {
		return s.Host
	}
	return s.Host + "/" + s.VirtualDir
}

// NewHosts returns the Hosts for the given self-hosted entries:
// "host[:port]" (the virtual directory is found by the rules Parse
// documents), "host[:port]/vdir/..." (collections are right below vdir) or
// "host[:port]/" (collections are right below the root). An "https://"
// prefix is allowed. Each entry is validated; the error names the bad entry
// and what is allowed. A host may appear with several virtual directories,
// but not both with and without one.
func NewHosts(selfHosted []string) (*Hosts, error) {
	h := &Hosts{self: make(map[string]bool, len(selfHosted)), vdirs: map[string][][]string{}}
	unknown := map[string]bool{}
	seen := map[Server]bool{}
	for _, e := range selfHosted {
		s, err := ParseServer(e)
		if err != nil {
			return nil, err
		}
		if org := legacyLabel(s.Host); org != "" || s.Host == ServicesHost {
			if s.VirtualDirKnown {
				return nil, fmt.Errorf("azdo: host %q: Azure DevOps Services has no virtual directory (want %s)", e, s.Host)
			}
			if org != "" && reservedLabel(org) {
				if h.legacy == nil {
					h.legacy = map[string]bool{}
				}
				h.legacy[s.Host] = true
			}
		}
		if seen[s] {
			continue
		}
		seen[s] = true
		if s.VirtualDirKnown {
			if unknown[s.Host] {
				return nil, mixedVDirError(e, s.Host)
			}
			h.vdirs[s.Host] = append(h.vdirs[s.Host], splitVDir(strings.ToLower(s.VirtualDir)))
		} else {
			if len(h.vdirs[s.Host]) > 0 {
				return nil, mixedVDirError(e, s.Host)
			}
			unknown[s.Host] = true
		}
		h.servers = append(h.servers, s)
		if !h.self[s.Host] {
			h.self[s.Host] = true
			h.list = append(h.list, s.Host)
		}
	}
	for _, v := range h.vdirs {
		// Longest first, so /a/b wins over /a for a path under both.
		sort.SliceStable(v, func(i, j int) bool { return len(v[i]) > len(v[j]) })
	}
	return h, nil
}

func mixedVDirError(e, host string) error {
	return fmt.Errorf("azdo: host %q: %s is configured both with and without a virtual directory; give every entry for it its virtual directory (%s/VDIR, or %s/ for none)", e, host, host, host)
}

// ErrPlainHTTP is returned for an http:// self-hosted entry or URL: the
// sidecar sends credentials only over TLS.
var ErrPlainHTTP = errors.New("azdo: plain http is not supported")

// PlainHTTPAdvice is what to do about an Azure DevOps Server that answers on
// plain http only. The sidecar never sends a credential in clear (see the
// README, "Plain HTTP servers").
const PlainHTTPAdvice = "azdo-sidecar sends credentials only over TLS, and Azure DevOps Server installs default to plain http (http://server:8080/tfs); give the server an HTTPS binding (Azure DevOps Server Administration Console, Application Tier, Public URL) and use https://, e.g. --host server/tfs"

// ParseServer reads one self-hosted entry: [https://]host[:port][/vdir...]
// with an optional trailing "/". See NewHosts.
func ParseServer(e string) (Server, error) {
	bad := func(why string) (Server, error) {
		return Server{}, fmt.Errorf("azdo: self-hosted host %q: %s (want host[:port][/virtual/dir], e.g. tfs.example.com, tfs.example.com:8443 or tfs.example.com/tfs)", e, why)
	}
	in := e
	if scheme, rest, ok := strings.Cut(in, "://"); ok {
		switch strings.ToLower(scheme) {
		case "https":
			in = rest
		case "http":
			return Server{}, fmt.Errorf("azdo: self-hosted host %q: %w: %s", e, ErrPlainHTTP, PlainHTTPAdvice)
		default:
			return bad(fmt.Sprintf("scheme %q is not https", scheme))
		}
	}
	hp, path, hasPath := strings.Cut(in, "/")
	n, err := validateHostPort(hp)
	if err != nil {
		return bad(err.Error())
	}
	s := Server{Host: n, VirtualDirKnown: hasPath}
	if !hasPath {
		return s, nil
	}
	if strings.ContainsAny(path, "?#\\ \t\r\n") {
		return bad("the virtual directory has a query, a fragment, a backslash or spaces (encode spaces as %20)")
	}
	var segs []string
	if p := strings.TrimSuffix(path, "/"); p != "" {
		for _, seg := range strings.Split(p, "/") {
			d, err := url.PathUnescape(seg)
			if err != nil || !isName(d) || strings.HasPrefix(d, "_") {
				return bad(fmt.Sprintf("bad virtual directory segment %q", seg))
			}
			segs = append(segs, d)
		}
	}
	s.VirtualDir = strings.Join(segs, "/")
	return s, nil
}

// splitVDir splits a decoded virtual directory into its segments; "" has
// none.
func splitVDir(v string) []string {
	if v == "" {
		return []string{}
	}
	return strings.Split(v, "/")
}

// Match reports whether hostport (as in a URL, a CONNECT request or a Host
// header) is an Azure DevOps host. The comparison ignores case, a trailing
// dot and a default ":443".
func (h *Hosts) Match(hostport string) bool {
	n := NormalizeHost(hostport)
	if IsServicesHost(n) {
		return true
	}
	return h != nil && h.self[n]
}

// SelfHosted returns the normalized host[:port] of every configured entry
// (self-hosted servers, and {label}.visualstudio.com hosts configured
// explicitly), in configuration order, without virtual directories or
// duplicates. The caller may modify the returned slice.
func (h *Hosts) SelfHosted() []string {
	if h == nil {
		return nil
	}
	return append([]string(nil), h.list...)
}

// Servers returns every configured entry with its virtual directory, in
// configuration order. The caller may modify the returned slice.
func (h *Hosts) Servers() []Server {
	if h == nil {
		return nil
	}
	return append([]Server(nil), h.servers...)
}

// legacyOrg returns the organization of a normalized {org}.visualstudio.com
// host that h accepts: any one-label name except the labels in
// NotOrganizations, which count only when configured explicitly.
func (h *Hosts) legacyOrg(n string) string {
	label := legacyLabel(n)
	if label == "" || (reservedLabel(label) && (h == nil || !h.legacy[n])) {
		return ""
	}
	return label
}

// selfHostedByName returns the configured entry whose host name (ignoring the
// port) is name, for converting a self-hosted SSH URL to HTTPS.
func (h *Hosts) selfHostedByName(name string) (string, bool) {
	if h == nil {
		return "", false
	}
	for _, e := range h.list {
		if hostOnly(e) == name && legacyLabel(e) == "" {
			return e, true
		}
	}
	return "", false
}

// NormalizeHost returns hostport in lower case, without trailing dots on the
// host name and without the default port ":443". It does not validate: a
// malformed hostport comes back only lower-cased. NormalizeHost is
// idempotent.
func NormalizeHost(hostport string) string {
	hp := strings.ToLower(hostport)
	host, port, ok := splitHostPort(hp)
	if !ok {
		return hp
	}
	// One trailing dot is the fully qualified form of the same name; more
	// are invalid, and trimming them all keeps NormalizeHost idempotent.
	host = strings.TrimRight(host, ".")
	if port == "443" {
		port = ""
	}
	return joinHostPort(host, port)
}

// IsServicesHost reports whether hostport is an Azure DevOps Services host:
// exactly dev.azure.com, or {org}.visualstudio.com with one DNS label before
// .visualstudio.com that is not in NotOrganizations, on the default HTTPS
// port. A {label}.visualstudio.com host with such a label is Azure DevOps
// only when configured explicitly (Hosts.Match).
func IsServicesHost(hostport string) bool {
	n := NormalizeHost(hostport)
	if n == ServicesHost {
		return true
	}
	l := legacyLabel(n)
	return l != "" && !reservedLabel(l)
}

// NotOrganizations are the labels Microsoft uses under visualstudio.com for
// sites and services that are not Azure DevOps organizations:
// code.visualstudio.com is Visual Studio Code's site, marketplace. the
// extension marketplace, my. the subscriptions portal, vs-ssh. the SSH
// endpoint, app.vssps., {org}.vsrm. and their kin the service hosts of
// Azure DevOps itself, and so on (the README lists where each comes from).
// {label}.visualstudio.com with one of these labels is not an Azure DevOps
// host unless configured with --host.
var NotOrganizations = []string{
	"app", "aex", "blogs", "code", "developercommunity", "docs", "download",
	"feeds", "learn", "marketplace", "my", "online", "pkgs", "ssh", "status",
	"support", "visualstudio", "vs-ssh", "vsaex", "vsblob", "vsrm", "vssps",
	"vsspsext", "vstmr", "www",
}

var notOrganizations = func() map[string]bool {
	m := make(map[string]bool, len(NotOrganizations))
	for _, l := range NotOrganizations {
		m[l] = true
	}
	return m
}()

// reservedLabel reports whether label (lower case) is in NotOrganizations.
func reservedLabel(label string) bool { return notOrganizations[label] }

// legacyLabel returns the label of a normalized {label}.visualstudio.com
// host (one DNS label), or "" when n is not one. It does not look at
// NotOrganizations.
func legacyLabel(n string) string {
	label, ok := strings.CutSuffix(n, legacySuffix)
	if !ok || !isDNSLabel(label) {
		return ""
	}
	return label
}

// splitHostPort splits "host", "host:port", "[v6]" or "[v6]:port"; a bare
// IPv6 address is returned as the host. Brackets are kept off the returned
// host. ok is false for a stray bracket.
func splitHostPort(hp string) (host, port string, ok bool) {
	if rest, isV6 := strings.CutPrefix(hp, "["); isV6 {
		host, rest, found := strings.Cut(rest, "]")
		if !found || strings.ContainsAny(host, "[]") {
			return "", "", false
		}
		if rest == "" {
			return host, "", true
		}
		port, hasPort := strings.CutPrefix(rest, ":")
		if !hasPort || strings.ContainsAny(port, "[]:") {
			return "", "", false
		}
		return host, port, true
	}
	if strings.ContainsAny(hp, "[]") {
		return "", "", false
	}
	if strings.Count(hp, ":") > 1 {
		return hp, "", true // bare IPv6 address
	}
	host, port, _ = strings.Cut(hp, ":")
	return host, port, true
}

// joinHostPort is net.JoinHostPort that leaves out an empty port.
func joinHostPort(host, port string) string {
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port == "" {
		return host
	}
	return host + ":" + port
}

// hostOnly returns the host name of a normalized host[:port].
func hostOnly(hp string) string {
	h, _, _ := splitHostPort(hp)
	return h
}

// validateHostPort checks a configured "host[:port]" and returns it
// normalized.
func validateHostPort(e string) (string, error) {
	if e == "" {
		return "", fmt.Errorf("empty")
	}
	if strings.Contains(e, "://") || strings.ContainsAny(e, "/@?#\\ \t\r\n") {
		return "", fmt.Errorf("not a bare host name: no scheme, path, user or spaces allowed")
	}
	hp := strings.ToLower(e)
	host, port, ok := splitHostPort(hp)
	if !ok {
		return "", fmt.Errorf("misplaced '[' or ']' (an IPv6 address is written [::1]:8443)")
	}
	if port != "" || strings.HasSuffix(hp, ":") {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 || port[0] == '0' {
			return "", fmt.Errorf("port %q is not a number from 1 to 65535", port)
		}
	}
	host = strings.TrimSuffix(host, ".")
	if ip := net.ParseIP(host); ip != nil {
		if strings.Contains(host, ":") && !strings.HasPrefix(hp, "[") {
			return "", fmt.Errorf("IPv6 address must be in brackets, e.g. [::1]:8443")
		}
		return NormalizeHost(hp), nil
	}
	if !isDNSName(host) {
		return "", fmt.Errorf("%q is not a DNS name or IP address", host)
	}
	return NormalizeHost(hp), nil
}

// isDNSName reports whether s is a syntactically valid DNS name of one or
// more labels (letters, digits, hyphens; no empty label).
func isDNSName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, l := range strings.Split(s, ".") {
		if !isDNSLabel(l) {
			return false
		}
	}
	return true
}

// isDNSLabel reports whether s is one DNS label: 1 to 63 letters, digits
// and hyphens, not starting or ending with a hyphen.
func isDNSLabel(s string) bool {
	if len(s) == 0 || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// vdirList returns the virtual directories configured for host n, for
// error messages: "/tfs, /a/b".
func (h *Hosts) vdirList(n string) string {
	var out []string
	for _, s := range h.Servers() {
		if s.Host == n && s.VirtualDirKnown {
			out = append(out, "/"+s.VirtualDir)
		}
	}
	return strings.Join(out, ", ")
}

// Entries returns every configured entry as NewHosts accepts it back
// (Server.String: host[:port], with "/vdir" or "/" when the virtual
// directory is known), in configuration order: what to pass on to another
// process, such as the credential helper git runs.
func (h *Hosts) Entries() []string {
	var out []string
	for _, s := range h.Servers() {
		out = append(out, s.String())
	}
	return out
}
