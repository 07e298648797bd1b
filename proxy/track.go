package proxy

import (
	"net"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// tracker remembers every open client connection, including those goproxy
// hijacked for tunnels and interception, which http.Server.Shutdown no
// longer knows about. Closing them is what stops goproxy's goroutines.
//
// When the last connection closes and none opens for idleAfter, it calls
// onIdle once: the sidecar spends most of its life idle between bursts of
// git traffic, and that is when it hands the memory of the last burst
// back to the system (a runner pays idle memory once per environment).
type tracker struct {
	mu    sync.Mutex
	conns map[net.Conn]struct{}

	idleAfter time.Duration
	onIdle    func() // nil: nothing to do when idle
	idle      *time.Timer
}

func newTracker(idleAfter time.Duration, onIdle func()) *tracker {
	return &tracker{conns: make(map[net.Conn]struct{}), idleAfter: idleAfter, onIdle: onIdle}
}

func (t *tracker) add(c net.Conn) {
	t.mu.Lock()
	t.conns[c] = struct{}{}
	if t.idle != nil {
		t.idle.Stop()
	}
	t.mu.Unlock()
}

func (t *tracker) remove(c net.Conn) {
	t.mu.Lock()
	delete(t.conns, c)
	if len(t.conns) == 0 && t.onIdle != nil {
		if t.idle == nil {
			t.idle = time.AfterFunc(t.idleAfter, t.onIdle)
		} else {
			t.idle.Reset(t.idleAfter)
		}
	}
	t.mu.Unlock()
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
