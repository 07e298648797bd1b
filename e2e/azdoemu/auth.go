package azdoemu

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/azdo-sidecar/azdo-sidecar/secret"
)

// CredKind says how a request presented its credential.
type CredKind string

// Credential kinds recorded in the request log.
const (
	CredNone        CredKind = "none"
	CredBasicPAT    CredKind = "basic-pat"
	CredBearer      CredKind = "bearer"
	CredBasicBearer CredKind = "basic-bearer"
	CredInvalid     CredKind = "invalid" // an Authorization header we cannot parse, or an empty Basic user
)

// PAT is a personal access token known to the emulator.
type PAT struct {
	Token secret.String
	// Org limits the PAT to one organization (collection); empty means all
	// accessible organizations.
	Org string
	// ExpiresAt is when the PAT stops working; zero means never.
	ExpiresAt time.Time
	// User is the identity it authenticates as (authenticatedUser);
	// default "user@example.com".
	User string
}

type patRecord struct {
	org     string
	expires time.Time
	user    string
	revoked bool
}

// NewPAT returns a random token shaped like an Azure DevOps PAT (52
// characters of lower-case base32).
func NewPAT() secret.String {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	s := strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:]))
	return secret.New(s[:52])
}

// CredentialHash returns what the request log keeps of a credential: the
// first 12 hex digits of its SHA-256. For Basic it is the hash of the
// password, for Bearer of the token.
func CredentialHash(cred secret.String) string {
	sum := sha256.Sum256([]byte(cred.Reveal()))
	return hex.EncodeToString(sum[:6])
}

// AddPAT registers a PAT. Only its SHA-256 is kept.
func (s *Server) AddPAT(p PAT) error {
	if p.Token.IsZero() {
		return errors.New("azdoemu: AddPAT: empty token")
	}
	if p.User == "" {
		p.User = "user@example.com"
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pats[sha256.Sum256([]byte(p.Token.Reveal()))] = &patRecord{org: strings.ToLower(p.Org), expires: p.ExpiresAt, user: p.User}
	return nil
}

// RevokePAT revokes a PAT; it reports whether the PAT was known.
func (s *Server) RevokePAT(token secret.String) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, ok := s.pats[sha256.Sum256([]byte(token.Reveal()))]
	if ok {
		rec.revoked = true
	}
	return ok
}

// credential is what a request presented, parsed.
type credential struct {
	kind   CredKind
	user   string // Basic user name (never secret)
	secret secret.String
}

// parseCredential reads the Authorization header.
func parseCredential(r *http.Request) credential {
	h := r.Header.Get("Authorization")
	if h == "" {
		return credential{kind: CredNone}
	}
	scheme, rest, _ := strings.Cut(h, " ")
	rest = strings.TrimSpace(rest)
	switch strings.ToLower(scheme) {
	case "bearer":
		if rest == "" {
			return credential{kind: CredInvalid}
		}
		return credential{kind: CredBearer, secret: secret.New(rest)}
	case "basic":
		raw, err := base64.StdEncoding.DecodeString(rest)
		if err != nil {
			return credential{kind: CredInvalid}
		}
		user, pass, ok := strings.Cut(string(raw), ":")
		if !ok || pass == "" {
			return credential{kind: CredInvalid, user: user}
		}
		c := credential{kind: CredBasicPAT, user: user, secret: secret.New(pass)}
		if looksLikeJWT(pass) {
			c.kind = CredBasicBearer
		}
		if user == "" {
			// Azure DevOps needs a user name with a PAT, even a dummy one.
			c.kind = CredInvalid
		}
		return c
	}
	return credential{kind: CredInvalid}
}

// looksLikeJWT reports whether s has the shape of a compact JWS.
func looksLikeJWT(s string) bool {
	return strings.HasPrefix(s, "eyJ") && strings.Count(s, ".") == 2
}

// errUnauthenticated is the cause recorded for a rejected credential.
var errUnauthenticated = errors.New("unauthenticated")

// authenticate checks c for organization org and returns the identity.
func (s *Server) authenticate(c credential, org string) (string, error) {
	switch c.kind {
	case CredBasicPAT:
		s.mu.Lock()
		rec, ok := s.pats[sha256.Sum256([]byte(c.secret.Reveal()))]
		var p patRecord
		if ok {
			p = *rec
		}
		s.mu.Unlock()
		switch {
		case !ok:
			return "", fmt.Errorf("%w: unknown PAT", errUnauthenticated)
		case p.revoked:
			return "", fmt.Errorf("%w: revoked PAT", errUnauthenticated)
		case !p.expires.IsZero() && !s.clock().Before(p.expires):
			return "", fmt.Errorf("%w: expired PAT", errUnauthenticated)
		case p.org != "" && p.org != strings.ToLower(org):
			return "", fmt.Errorf("%w: PAT for another organization", errUnauthenticated)
		}
		return p.user, nil
	case CredBearer, CredBasicBearer:
		s.mu.Lock()
		v := s.verifier
		s.mu.Unlock()
		if v == nil {
			return "", fmt.Errorf("%w: no bearer verifier", errUnauthenticated)
		}
		sub, err := v(c.secret.Reveal())
		if err != nil {
			// The verifier's error may quote claims; never the token.
			return "", fmt.Errorf("%w: bearer rejected", errUnauthenticated)
		}
		return sub, nil
	}
	return "", fmt.Errorf("%w: %s credential", errUnauthenticated, c.kind)
}

// unauthorized answers a request without valid credentials the way Azure
// DevOps does: 302 to a sign-in page for REST and browser-like requests
// unless they carry "X-TFS-FedAuthRedirect: Suppress", else a 401 with
// all of its challenges.
func (s *Server) unauthorized(w http.ResponseWriter, r *http.Request, rt route) {
	browserLike := strings.Contains(r.Header.Get("Accept"), "text/html")
	if (rt.kind == routeAPI || browserLike) && !strings.EqualFold(r.Header.Get("X-TFS-FedAuthRedirect"), "Suppress") {
		reply := "https://" + r.Host + r.URL.RequestURI()
		loc := rt.prefix + "/_signin?realm=" + rt.host + "&reply_to=" + urlQueryEscape(reply) + "&redirect=1"
		http.Redirect(w, r, loc, http.StatusFound)
		return
	}
	h := w.Header()
	h.Add("WWW-Authenticate", "Bearer authorization_uri=https://login.microsoftonline.com/"+s.cfg.TenantID)
	h.Add("WWW-Authenticate", `Basic realm="https://`+rt.host+`/"`)
	h.Add("WWW-Authenticate", "TFS-Federated")
	h.Set("X-VSS-ResourceTenant", s.cfg.TenantID)
	h.Set("X-TFS-ProcessId", NewGUID())
	h.Set("X-TFS-ServiceError", urlQueryEscape("TF400813: The user '' is not authorized to access this resource."))
	h.Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusUnauthorized)
	fmt.Fprintln(w, "TF400813: The user '' is not authorized to access this resource.")
}

// signin answers the sign-in page the 302 leads to: 203 with HTML.
func signin(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(http.StatusNonAuthoritativeInfo)
	fmt.Fprint(w, `<!DOCTYPE html><html><head><title>Azure DevOps Services | Sign In</title></head><body><p>Sign in to your account</p></body></html>`)
}
