package proxy

import (
	"context"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"

	"github.com/azdo-sidecar/azdo-sidecar/secret"
)

// AuthRealm is the realm of the proxy's Proxy-Authenticate challenge.
const AuthRealm = "azdo-sidecar"

// Auth says who may use the proxy. Every request the proxy listener reads
// (CONNECT, or a plain-http request in absolute form) is checked before
// anything else happens; requests inside an intercepted tunnel were
// checked with their CONNECT.
type Auth struct {
	// User and Password are the credential clients send in
	// Proxy-Authorization: Basic. A zero Password turns the credential
	// check off (--insecure-no-proxy-auth); the peer check still applies.
	User     string
	Password secret.String
	// PeerUID, when not nil, returns the uid owning the client's end of a
	// loopback connection (local is the proxy's address, remote the
	// client's), or ok=false when it cannot tell. A known uid other than
	// UID is refused even with the right credential.
	PeerUID func(local, remote net.Addr) (uid int, ok bool)
	// UID is the uid the proxy serves (the sidecar's own).
	UID int
	// ClientUIDs are further uids the peer check lets through
	// (--proxy-client-uid): the development user when the sidecar runs as
	// a user of its own. They still need the credential.
	ClientUIDs []int
}

// uidAllowed reports whether a connection of uid may use the proxy.
func (a *Auth) uidAllowed(uid int) bool {
	return uid == a.UID || slices.Contains(a.ClientUIDs, uid)
}

// peerKey carries a connection's *peer in its context.
type peerKey struct{}

// peer is what the proxy learned about one client connection; the uid is
// looked up once, on the connection's first request.
type peer struct {
	local, remote net.Addr
	once          sync.Once
	uid           int
	known         bool
}

// connContext remembers the connection's addresses for authorize.
func connContext(ctx context.Context, c net.Conn) context.Context {
	return context.WithValue(ctx, peerKey{}, &peer{local: c.LocalAddr(), remote: c.RemoteAddr()})
}

// authorize wraps the proxy's handler with the Auth checks (none when a
// is nil), then the admission checks (admit).
func (p *Proxy) authorize(a *Auth, next http.Handler) http.Handler {
	if a == nil {
		a = &Auth{}
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if pe, _ := r.Context().Value(peerKey{}).(*peer); pe != nil && a.PeerUID != nil {
			pe.once.Do(func() { pe.uid, pe.known = a.PeerUID(pe.local, pe.remote) })
			if pe.known && !a.uidAllowed(pe.uid) {
				p.m.request(classRefused)
				p.log.Warn("proxy: refused a client of another user", "client_uid", pe.uid, "uid", a.UID, "client_uids", a.ClientUIDs, "client", r.RemoteAddr, "method", r.Method)
				proxyAuthRequired(w, fmt.Sprintf("azdo-sidecar: this proxy serves only uid %d, the user who runs it, and the uids given with --proxy-client-uid; this connection belongs to uid %d\n", a.UID, pe.uid))
				return
			}
		}
		if !a.Password.IsZero() && !a.valid(r.Header.Get("Proxy-Authorization")) {
			p.m.request(classRefused)
			// Debug: git's default asks without it first on every connection.
			p.log.Debug("proxy: request without the proxy credential", "client", r.RemoteAddr, "method", r.Method,
				"sent", r.Header.Get("Proxy-Authorization") != "")
			proxyAuthRequired(w, "azdo-sidecar: proxy authentication required; use the proxy URL with its credential from the file named by \"proxy_url_file\" in the sidecar's ready line (azdo-sidecar status shows it), or run azdo-sidecar setup\n")
			return
		}
		if p.admit(w, r) {
			return
		}
		next.ServeHTTP(w, r)
	})
}

// valid reports whether h is "Basic base64(User:Password)".
func (a *Auth) valid(h string) bool {
	scheme, b64, ok := strings.Cut(strings.TrimSpace(h), " ")
	if !ok || !strings.EqualFold(scheme, "basic") {
		return false
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(b64))
	if err != nil {
		return false
	}
	user, pass, ok := strings.Cut(string(raw), ":")
	if !ok {
		return false
	}
	userOK := subtle.ConstantTimeCompare([]byte(user), []byte(a.User))
	passOK := subtle.ConstantTimeCompare([]byte(pass), []byte(a.Password.Reveal()))
	return userOK&passOK == 1
}

// proxyAuthRequired answers 407 with the challenge and a one-line body.
// The connection stays open: git's default (http.proxyAuthMethod anyauth)
// asks without the credential first and retries on it.
func proxyAuthRequired(w http.ResponseWriter, msg string) {
	w.Header().Set("Proxy-Authenticate", `Basic realm="`+AuthRealm+`"`)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusProxyAuthRequired)
	_, _ = w.Write([]byte(msg))
}

// logAuth logs how the proxy authenticates its clients, once at start.
func logAuth(log *slog.Logger, a *Auth) {
	switch {
	case a == nil:
		log.Warn("proxy: no client authentication: anyone who reaches the proxy's address uses your Azure DevOps access")
	case a.Password.IsZero() && a.PeerUID == nil:
		log.Warn("proxy: --insecure-no-proxy-auth: no proxy credential and no way to learn a client's uid here: anyone who reaches the proxy's address uses your Azure DevOps access")
	case a.Password.IsZero():
		log.Warn("proxy: --insecure-no-proxy-auth: clients need no proxy credential; only the check of the connection's uid remains (every process of this uid, and of the same uid number in other containers sharing this network, may use the proxy)", "uid", a.UID)
	}
}
