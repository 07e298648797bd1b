package connect

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/azdo-sidecar/azdo-sidecar/secret"
)

// ErrNoFlow means no pending OAuth flow has the state a callback carries:
// it was never started here, has expired, or was finished already.
var ErrNoFlow = errors.New("connect: no pending sign-in for this state")

// Flow is an OAuth Connect flow between GET /connect and
// GET /oauth/callback.
type Flow struct {
	Owner, Env, Host, Org string
	// Verifier is the PKCE code verifier; Nonce the OIDC nonce the ID
	// token must carry.
	Verifier secret.String
	Nonce    string
	Expires  time.Time
}

// Flows keeps pending flows by state. Take removes what it returns, so a
// state is good for one callback.
type Flows interface {
	Put(ctx context.Context, state string, f Flow) error
	// Take returns and removes the flow of state, or ErrNoFlow (also when
	// it has expired).
	Take(ctx context.Context, state string) (Flow, error)
}

// MemoryFlows is a bounded in-memory Flows. The PKCE verifier never
// leaves the process.
type MemoryFlows struct {
	now func() time.Time
	max int

	mu sync.Mutex
	m  map[string]Flow
}

// NewMemoryFlows returns Flows kept in memory, at most max at once (0:
// 10000), forgotten once expired.
func NewMemoryFlows(now func() time.Time, max int) *MemoryFlows {
	if now == nil {
		now = time.Now
	}
	if max <= 0 {
		max = 10000
	}
	return &MemoryFlows{now: now, max: max, m: map[string]Flow{}}
}

// Put implements Flows.
func (m *MemoryFlows) Put(_ context.Context, state string, f Flow) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.m) >= m.max {
		now := m.now()
		for s, f := range m.m {
			if !now.Before(f.Expires) {
				delete(m.m, s)
			}
		}
		if len(m.m) >= m.max {
			return ErrBusy
		}
	}
	m.m[state] = f
	return nil
}

// Take implements Flows.
func (m *MemoryFlows) Take(_ context.Context, state string) (Flow, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	f, ok := m.m[state]
	if !ok {
		return Flow{}, ErrNoFlow
	}
	delete(m.m, state)
	if !m.now().Before(f.Expires) {
		return Flow{}, ErrNoFlow
	}
	return f, nil
}
