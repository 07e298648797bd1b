package proxy

import (
	"net"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// tracker remembers every open client connection, including those goproxy
// hijacked for tunnels and interception, which http.Server.Shutdown no
// longer knows about. Closing them is what stops goproxy's goroutines.
//
// It also decides when the proxy hands the memory of the last burst of git
// traffic back to the system (releaseIfIdle): the sidecar spends most of its
// life idle between bursts, and a runner pays idle memory once per
// environment.
type tracker struct {
	mu    sync.Mutex
	conns map[net.Conn]struct{}
	// opened: a connection opened since the last release, so there may be
	// memory of its traffic to return.
	opened bool

	release func() // nil: nothing to release
}

func newTracker(release func()) *tracker {
	return &tracker{conns: make(map[net.Conn]struct{}), release: release}
}

func (t *tracker) add(c net.Conn) {
	t.mu.Lock()
	t.conns[c] = struct{}{}
	t.opened = true
	t.mu.Unlock()
}

func (t *tracker) remove(c net.Conn) {
	t.mu.Lock()
	delete(t.conns, c)
	t.mu.Unlock()
}

// releaseIfIdle calls release when no client connection is open now and one
// opened since the last release, and reports whether it did. The proxy calls
// it every releaseIdle (releaseLoop), so:
//   - a sidecar that was busy releases at most releaseIdle after its last
//     connection closed, without waiting for the runtime's scavenger
//     (minutes);
//   - something that connects more often than that (a TCP liveness probe, a
//     polling client) cannot postpone the release forever, as a timer reset
//     by every connection would; it costs at most one release per period,
//     a full collection of a few milliseconds on the sidecar's small heap;
//   - a sidecar with no traffic at all never collects for nothing.
//
// A check that lands between two connections of one git command releases
// early; the next check then sees the rest of the burst as new activity.
func (t *tracker) releaseIfIdle() bool {
	t.mu.Lock()
	do := t.release != nil && t.opened && len(t.conns) == 0
	if do {
		t.opened = false
	}
	t.mu.Unlock()
	if do {
		t.release() // outside the lock: a collection must not hold up Accept
	}
	return do
}

func (t *tracker) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.conns)
}

// closeAll closes every tracked connection.
func (t *tracker) closeAll() {
	t.mu.Lock()
	conns := make([]net.Conn, 0, len(t.conns))
	for c := range t.conns {
		conns = append(conns, c)
	}
	t.mu.Unlock()
	for _, c := range conns {
		_ = c.Close()
	}
}

// trackingListener registers each accepted connection with a tracker.
type trackingListener struct {
	net.Listener
	t *tracker
}

func (l *trackingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return wrapConn(c, func(tc net.Conn) { l.t.remove(tc) }, l.t.add), nil
}

// halfCloser is a connection that can shut one direction down; goproxy
// relays tunnels with half-closes when both ends support them.
type halfCloser interface {
	CloseWrite() error
	CloseRead() error
}

// trackedConn calls onClose once when closed and optionally counts bytes.
type trackedConn struct {
	net.Conn
	once      sync.Once
	onClose   func(net.Conn)
	self      net.Conn
	read, wrt prometheus.Counter // nil: not counted
}

func (c *trackedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if c.read != nil && n > 0 {
		c.read.Add(float64(n))
	}
	return n, err
}

func (c *trackedConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if c.wrt != nil && n > 0 {
		c.wrt.Add(float64(n))
	}
	return n, err
}

func (c *trackedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.onClose(c.self) })
	return err
}

// trackedHalfConn is a trackedConn over a connection that half-closes.
type trackedHalfConn struct{ *trackedConn }

func (c trackedHalfConn) CloseWrite() error { return c.Conn.(halfCloser).CloseWrite() }
func (c trackedHalfConn) CloseRead() error  { return c.Conn.(halfCloser).CloseRead() }

// wrapConn wraps c so that onClose runs once on Close, keeping c's
// half-close ability visible. register is called with the wrapper.
func wrapConn(c net.Conn, onClose func(net.Conn), register func(net.Conn)) net.Conn {
	return wrapCountedConn(c, onClose, register, nil, nil)
}

// wrapCountedConn is wrapConn that also adds bytes read and written to the
// given counters.
func wrapCountedConn(c net.Conn, onClose func(net.Conn), register func(net.Conn), read, wrt prometheus.Counter) net.Conn {
	tc := &trackedConn{Conn: c, onClose: onClose, read: read, wrt: wrt}
	var out net.Conn = tc
	if _, ok := c.(halfCloser); ok {
		out = trackedHalfConn{tc}
	}
	tc.self = out
	if register != nil {
		register(out)
	}
	return out
}
