package azdoemu

import (
	"net"
	"net/http"
	"strings"
	"time"
)

// FaultKind is a kind of injected failure.
type FaultKind int

// Fault kinds.
const (
	// FaultStatus answers with Status (default 503) and a short body.
	FaultStatus FaultKind = iota + 1
	// FaultDelay waits Delay, then serves the request normally.
	FaultDelay
	// FaultReset drops the connection with a TCP reset (on HTTP/2, the
	// stream is reset).
	FaultReset
)

// Fault makes the next Count requests (those whose path contains
// PathContains, when set) fail.
type Fault struct {
	Kind         FaultKind
	Count        int
	Status       int
	Delay        time.Duration
	PathContains string
}

// InjectFault queues f; faults are applied in the order injected.
func (s *Server) InjectFault(f Fault) {
	if f.Count <= 0 {
		f.Count = 1
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, &f)
}

// takeFault returns the fault for r, if any, and counts it down.
func (s *Server) takeFault(r *http.Request) *Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, f := range s.faults {
		if f.PathContains != "" && !strings.Contains(r.URL.Path, f.PathContains) {
			continue
		}
		f.Count--
		if f.Count <= 0 {
			s.faults = append(s.faults[:i], s.faults[i+1:]...)
		}
		c := *f
		return &c
	}
	return nil
}

// applyFault applies a pending fault and reports whether the request is
// finished.
func (s *Server) applyFault(w http.ResponseWriter, r *http.Request) bool {
	f := s.takeFault(r)
	if f == nil {
		return false
	}
	switch f.Kind {
	case FaultDelay:
		t := time.NewTimer(f.Delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
			return true
		}
		return false
	case FaultReset:
		if r.ProtoMajor == 1 {
			if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
				if nc, ok := netConn(conn).(*net.TCPConn); ok {
					_ = nc.SetLinger(0)
				}
				conn.Close()
				return true
			}
		}
		panic(http.ErrAbortHandler)
	default:
		status := f.Status
		if status == 0 {
			status = http.StatusServiceUnavailable
		}
		w.Header().Set("X-TFS-ServiceError", urlQueryEscape("Injected fault"))
		http.Error(w, http.StatusText(status), status)
		return true
	}
}

// netConn unwraps a TLS connection to its TCP connection.
func netConn(c net.Conn) net.Conn {
	if u, ok := c.(interface{ NetConn() net.Conn }); ok {
		return u.NetConn()
	}
	return c
}
