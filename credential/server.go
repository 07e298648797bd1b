package credential

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"
)

// Actions of git's credential-helper protocol.
const (
	ActionGet   = "get"
	ActionStore = "store"
	ActionErase = "erase"
)

// ActionStatus is this project's extension of the socket protocol: the
// Server answers it with the bytes of Server.Status (the sidecar's status
// as JSON, which holds no secret), so that `azdo-sidecar status` finds the
// sidecar through the socket it already knows, whatever port its metrics
// listener got. Git never sends it.
const ActionStatus = "status"

// maxStatus bounds a status answer.
const maxStatus = 1 << 20

// MessageKey is this project's extension of the answer: one line our client
// prints on git's stderr (e.g. the connect URL), then removes. Git and git's
// credential-cache client ignore it, as they ignore every unknown key.
const MessageKey = "azdo_message"

// maxRequest bounds the bytes read from one connection; a real request is a
// few hundred bytes, a few kilobytes with wwwauth[].
const maxRequest = 256 << 10

// DefaultConnTimeout is Server.ConnTimeout's default.
const DefaultConnTimeout = 30 * time.Second

// Handler answers one credential request. A nil answer means "nothing for
// this request": git moves on to its next helper. The request's secrets
// (password of an erase) must not be logged.
type Handler interface {
	ServeCredential(ctx context.Context, action string, req *Credential) (*Credential, error)
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, action string, req *Credential) (*Credential, error)

// ServeCredential calls f.
func (f HandlerFunc) ServeCredential(ctx context.Context, action string, req *Credential) (*Credential, error) {
	return f(ctx, action, req)
}

// Server serves Handler on a Unix socket with the wire protocol of git's
// credential-cache daemon, so that both Client and
// "git credential-cache --socket=<path> get" reach it:
//
//	client → action=get|store|erase
//	         timeout=<seconds>          (ignored: the sidecar owns expiry)
//	         <credential lines>
//	         (closes its write side)
//	server → <answer lines>, then closes
//
// Other actions (git's "exit") get no answer and do not stop the server.
//
// A request without the ClientKey line comes from git's credential-cache
// client, which cannot print MessageKey: an answer carrying a message or
// quit=1 (the user must connect, the source failed) is replaced by an empty
// one, so git asks its next helper — git-credential-azdo, which setup
// configures right after "cache --socket=<this socket>" and which prints
// the message and quits.
type Server struct {
	Handler Handler
	// ConnTimeout bounds a whole connection: reading, handling, answering.
	// Zero means DefaultConnTimeout.
	ConnTimeout time.Duration
	// Logger gets one line per failed request; nil: slog.Default().
	Logger *slog.Logger
	// Status, when set, answers ActionStatus (see there). It must not
	// return a secret.
	Status func() ([]byte, error)

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[net.Conn]struct{}
	shutdown  bool
	wg        sync.WaitGroup
}

// ErrServerClosed is returned by Serve after Shutdown.
var ErrServerClosed = errors.New("credential: server closed")

// Serve accepts connections on ln and serves each in its own goroutine
// until Shutdown. It always returns a non-nil error; ErrServerClosed after
// Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.shutdown {
		s.mu.Unlock()
		return ErrServerClosed
	}
	if s.listeners == nil {
		s.listeners = make(map[net.Listener]struct{})
		s.conns = make(map[net.Conn]struct{})
	}
	s.listeners[ln] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
	}()

	var delay time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if s.closing() {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				time.Sleep(delay)
				continue
			}
			return fmt.Errorf("credential: accept: %w", err)
		}
		delay = 0
		if !s.track(c) {
			c.Close()
			return ErrServerClosed
		}
		go func() {
			defer s.wg.Done()
			defer s.untrack(c)
			s.serveConn(c)
		}()
	}
}

func (s *Server) closing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.shutdown
}

func (s *Server) track(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shutdown {
		return false
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	return true
}

func (s *Server) untrack(c net.Conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	c.Close()
}

// Shutdown stops accepting, lets the connections in progress finish, and
// returns when they have or when ctx is done (then it closes them and
// returns ctx's error).
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.shutdown = true
	for ln := range s.listeners {
		ln.Close()
	}
	s.mu.Unlock()

	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.mu.Lock()
		for c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		<-done
		return ctx.Err()
	}
}

func (s *Server) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}

// serveConn answers one request.
func (s *Server) serveConn(c net.Conn) {
	timeout := s.ConnTimeout
	if timeout <= 0 {
		timeout = DefaultConnTimeout
	}
	deadline := time.Now().Add(timeout)
	_ = c.SetDeadline(deadline)
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()

	action, req, err := ReadRequest(bufio.NewReader(&limitReader{r: c, n: maxRequest}))
	if err != nil {
		s.logger().Warn("credential: bad request on socket", "err", err)
		return
	}
	switch action {
	case ActionGet, ActionStore, ActionErase:
	case ActionStatus:
		s.serveStatus(c)
		return
	default:
		// git's "credential-cache exit" and future actions: the sidecar is
		// not git's daemon and does not stop on request.
		s.logger().Info("credential: ignoring action", "action", action)
		return
	}
	ours := fromClient(req)
	ans, err := s.Handler.ServeCredential(ctx, action, req)
	if err != nil {
		s.logger().Warn("credential: handler failed", "action", action, "host", req.Host, "err", err)
		return
	}
	if ans = forClient(ours, ans); ans == nil {
		return
	}
	if err := Write(c, ans); err != nil {
		s.logger().Warn("credential: answer not written", "action", action, "host", req.Host, "err", err)
	}
}

// serveStatus answers ActionStatus with s.Status, or nothing without it.
func (s *Server) serveStatus(c net.Conn) {
	if s.Status == nil {
		return
	}
	b, err := s.Status()
	if err == nil && len(b) > maxStatus {
		err = fmt.Errorf("status of %d bytes exceeds %d", len(b), maxStatus)
	}
	if err != nil {
		s.logger().Warn("credential: status failed", "err", err)
		return
	}
	if _, err := c.Write(b); err != nil {
		s.logger().Warn("credential: status not written", "err", err)
	}
}

// ReadRequest reads a credential-cache request: "action=" and "timeout="
// lines (in that order, as git's daemon requires), then the credential.
func ReadRequest(r *bufio.Reader) (action string, req *Credential, err error) {
	line, err := readLine(r)
	if err != nil && err != io.EOF {
		return "", nil, err
	}
	action, ok := strings.CutPrefix(line, "action=")
	if !ok || action == "" {
		return "", nil, fmt.Errorf("%w: request does not start with action=", ErrMalformed)
	}
	line, err = readLine(r)
	if err != nil && err != io.EOF {
		return "", nil, err
	}
	if !strings.HasPrefix(line, "timeout=") {
		return "", nil, fmt.Errorf("%w: request has no timeout= line", ErrMalformed)
	}
	req, err = Read(r)
	if err != nil {
		return "", nil, err
	}
	return action, req, nil
}

// limitReader is io.LimitReader that fails instead of pretending EOF, so
// a request cut at the limit is never taken for a complete one.
type limitReader struct {
	r io.Reader
	n int64
}

func (l *limitReader) Read(p []byte) (int, error) {
	if l.n <= 0 {
		return 0, fmt.Errorf("%w: more than %d bytes", ErrMalformed, maxRequest)
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	l.n -= int64(n)
	return n, err
}
