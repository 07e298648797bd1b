package proxy

import (
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// The proxy is not an open proxy: besides what it intercepts, it opens
// blind tunnels only to the ports a git client of Azure DevOps needs, and
// forwards plain http only to hosts it was told to. Anything refused here
// never reaches the upstream proxy, so its credentials (--upstream-proxy
// http://user:pass@…) serve only requests that passed these checks.

// admission is what the proxy lets through besides Azure DevOps.
type admission struct {
	tunnelPorts []int           // blind CONNECT targets' ports
	plainHosts  map[string]bool // canonical host[:port] of plain-http targets
}

func newAdmission(tunnelPorts []int, selfHosted, plainHosts []string) (admission, error) {
	a := admission{tunnelPorts: []int{443}, plainHosts: map[string]bool{}}
	add := func(p int) {
		if !slices.Contains(a.tunnelPorts, p) {
			a.tunnelPorts = append(a.tunnelPorts, p)
		}
	}
	for _, p := range tunnelPorts {
		if p < 1 || p > 65535 {
			return a, fmt.Errorf("proxy: tunnel port %d: want 1-65535", p)
		}
		add(p)
	}
	for _, h := range selfHosted {
		h, _, _ = strings.Cut(h, "/") // a virtual directory
		if _, port, err := net.SplitHostPort(h); err == nil {
			if n, err := strconv.Atoi(port); err == nil {
				add(n)
			}
		}
	}
	for _, h := range plainHosts {
		h = strings.TrimSpace(h)
		if h == "" || strings.ContainsAny(h, "/@ ") {
			return a, fmt.Errorf("proxy: plain-http host %q: want HOST or HOST:PORT", h)
		}
		a.plainHosts[canonicalHost(h, "80")] = true
	}
	return a, nil
}

// admit answers a request the proxy must not serve and reports whether it
// did. It runs after the client was authenticated and before goproxy sees
// the request.
func (p *Proxy) admit(w http.ResponseWriter, r *http.Request) bool {
	switch {
	case r.Method == http.MethodConnect:
		target := canonicalHost(r.Host, "443")
		if p.hosts.Match(target) {
			return false // intercepted
		}
		port := 443
		if _, ps, err := net.SplitHostPort(target); err == nil {
			port, _ = strconv.Atoi(ps)
		}
		if slices.Contains(p.admission.tunnelPorts, port) {
			return false
		}
		p.m.request(classRefused)
		p.log.Info("proxy: refused a tunnel to a port not allowed", "target", target)
		refuse(w, http.StatusForbidden, fmt.Sprintf("azdo-sidecar: tunnels go only to ports %s (add one with --tunnel-port); refused %s\n", portList(p.admission.tunnelPorts), target))
		return true
	case r.URL.IsAbs():
		host := canonicalHost(r.URL.Host, "80")
		if p.isAzdo(host) || p.admission.plainHosts[host] {
			return false // Azure DevOps: refused with its own message
		}
		p.m.request(classRefused)
		p.log.Info("proxy: refused plain http to a host not listed", "host", host)
		refuse(w, http.StatusForbidden, fmt.Sprintf("azdo-sidecar: plain http is forwarded only to hosts listed with --plain-http-host (none by default: this proxy is for Azure DevOps); refused %s\n", host))
		return true
	}
	return false
}

func refuse(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Connection", "close")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(msg))
}

func portList(ports []int) string {
	s := make([]string, len(ports))
	for i, p := range ports {
		s[i] = strconv.Itoa(p)
	}
	return strings.Join(s, ", ")
}
