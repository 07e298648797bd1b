package azdoemu

import (
	"net/http"
	"time"
)

// Request is one entry of the request log. It never holds a credential:
// only its kind and a hash prefix (CredentialHash).
type Request struct {
	Time     time.Time
	Host     string // the Host header as sent
	Method   string
	Path     string // escaped path
	Query    string
	Proto    string // "HTTP/1.1", "HTTP/2.0"
	CredKind CredKind
	CredHash string // CredentialHash of the password or token; "" for none
	User     string // the Basic user name, which must never be a secret
	// Header is the request's headers without Authorization and Cookie.
	Header    http.Header
	Status    int
	BodyBytes int64
}

func (s *Server) logStart(r *http.Request, c credential) int {
	h := r.Header.Clone()
	h.Del("Authorization")
	h.Del("Cookie")
	e := Request{
		Time:     s.clock(),
		Host:     r.Host,
		Method:   r.Method,
		Path:     r.URL.EscapedPath(),
		Query:    r.URL.RawQuery,
		Proto:    r.Proto,
		CredKind: c.kind,
		User:     c.user,
		Header:   h,
	}
	if !c.secret.IsZero() {
		e.CredHash = CredentialHash(c.secret)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = append(s.requests, e)
	return len(s.requests) - 1
}

func (s *Server) logEnd(i, status int, body int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if i < len(s.requests) {
		s.requests[i].Status = status
		s.requests[i].BodyBytes = body
	}
}

// Requests returns a copy of the request log, oldest first. A request still
// being served has Status 0.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Request, len(s.requests))
	copy(out, s.requests)
	return out
}

// ResetRequests empties the request log.
func (s *Server) ResetRequests() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = nil
}
