// Package azdo is the Azure DevOps URL model: which hosts are Azure DevOps,
// how clone, web and SSH URLs name a repository and a revision, and which
// organization (or, on Azure DevOps Server, collection) a credential request
// is for.
//
// It imports only the standard library because it is linked into the small
// git-credential-azdo binary, whose start-up time git pays on every request.
package azdo

import (
	"fmt"
	"net"
	"strconv"
	"strings"
)

// ServicesHost is the host of Azure DevOps Services.
const ServicesHost = "dev.azure.com"

// legacySuffix is the domain of legacy {org}.visualstudio.com hosts.
const legacySuffix = ".visualstudio.com"

// Hosts decides which hosts are Azure DevOps: dev.azure.com,
// {org}.visualstudio.com (exactly one DNS label before .visualstudio.com),
// and the configured self-hosted Azure DevOps Server hosts.
//
// A nil *Hosts knows the Azure DevOps Services hosts only. Hosts is
// immutable after NewHosts and safe for concurrent use.
type Hosts struct {
	self map[string]bool // normalized host[:port]
	list []string        // normalized, in configuration order, no duplicates
}

// NewHosts returns the Hosts for the given self-hosted "host[:port]"
// entries. Each entry is validated; the error names the bad entry and what
// is allowed.
func NewHosts(selfHosted []string) (*Hosts, error) {
	h := &Hosts{self: make(map[string]bool, len(selfHosted))}
	for _, e := range selfHosted {
		n, err := validateHostPort(e)
		if err != nil {
			return nil, fmt.Errorf("azdo: self-hosted host %q: %w (want host[:port], e.g. tfs.example.com or tfs.example.com:8443)", e, err)
		}
		if !h.self[n] {
			h.self[n] = true
			h.list = append(h.list, n)
		}
	}
	return h, nil
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

// SelfHosted returns the normalized self-hosted entries, in configuration
// order. The caller may modify the returned slice.
func (h *Hosts) SelfHosted() []string {
	if h == nil {
		return nil
	}
	return append([]string(nil), h.list...)
}

// selfHostedByName returns the configured entry whose host name (ignoring the
// port) is name, for converting a self-hosted SSH URL to HTTPS.
func (h *Hosts) selfHostedByName(name string) (string, bool) {
	if h == nil {
		return "", false
	}
	for _, e := range h.list {
		if hostOnly(e) == name {
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
// .visualstudio.com, on the default HTTPS port.
func IsServicesHost(hostport string) bool {
	n := NormalizeHost(hostport)
	if n == ServicesHost {
		return true
	}
	return legacyOrg(n) != ""
}

// legacyOrg returns the organization of a normalized {org}.visualstudio.com
// host, or "" when n is not one.
func legacyOrg(n string) string {
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
