package credential

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/azdo-sidecar/azdo-sidecar/secret"
)

// socketDir returns a short private directory: Unix socket paths are
// limited to about 100 bytes, too few for t.TempDir() under long names.
func socketDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("", "cred")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// serve starts a Server with h on a fresh socket and stops it at cleanup.
func serve(t *testing.T, h Handler, logs io.Writer, timeout ...time.Duration) (string, *Server) {
	t.Helper()
	path := filepath.Join(socketDir(t), "run", "sock")
	ln, err := Listen(path)
	if err != nil {
		t.Fatalf("Listen(%q) = %v", path, err)
	}
	if logs == nil {
		logs = io.Discard
	}
	s := &Server{Handler: h, ConnTimeout: 2 * time.Second, Logger: slog.New(slog.NewTextHandler(logs, nil))}
	if len(timeout) > 0 {
		s.ConnTimeout = timeout[0]
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown() = %v", err)
		}
		if err := <-done; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve() = %v; want ErrServerClosed", err)
		}
	})
	return path, s
}

func TestListenModes(t *testing.T) {
	path := filepath.Join(socketDir(t), "a", "sock")
	ln, err := Listen(path)
	if err != nil {
		t.Fatalf("Listen(%q) = %v", path, err)
	}
	defer ln.Close()
	for p, want := range map[string]os.FileMode{filepath.Dir(path): 0o700, path: 0o600} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("mode of %s = %04o; want %04o", p, got, want)
		}
	}
	// A second server on a live socket is refused.
	if _, err := Listen(path); !errors.Is(err, ErrSocketInUse) {
		t.Errorf("Listen(live socket) = %v; want ErrSocketInUse", err)
	}
	ln.Close()
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket still there after Close: %v", err)
	}
}

func TestListenStaleSocket(t *testing.T) {
	path := filepath.Join(socketDir(t), "sock")
	// A socket file left by a dead process: bound, never listened on.
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	l.SetUnlinkOnClose(false)
	l.Close()
	if _, err := os.Lstat(path); err != nil {
		t.Fatalf("stale socket not left behind: %v", err)
	}
	ln, err := Listen(path)
	if err != nil {
		t.Fatalf("Listen(stale) = %v; want it replaced", err)
	}
	ln.Close()
}

func TestListenRefusesInsecureDir(t *testing.T) {
	base := socketDir(t)
	open := filepath.Join(base, "open")
	if err := os.Mkdir(open, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(open, 0o777); err != nil {
		t.Fatal(err)
	}
	groupW := filepath.Join(base, "group")
	if err := os.Mkdir(groupW, 0o770); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(groupW, 0o770); err != nil {
		t.Fatal(err)
	}
	real := filepath.Join(base, "real")
	if err := os.Mkdir(real, 0o700); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(base, "link")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(base, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct{ name, dir string }{
		{"world-writable", open},
		{"group-writable", groupW},
		{"symlink", link},
		{"not a directory", file},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Listen(filepath.Join(tt.dir, "sock")); err == nil {
				t.Fatalf("Listen in %s = nil; want an error", tt.dir)
			}
			if tt.name != "not a directory" {
				if err := CheckSocketDir(tt.dir); !errors.Is(err, ErrInsecureSocketDir) {
					t.Errorf("CheckSocketDir(%s) = %v; want ErrInsecureSocketDir", tt.dir, err)
				}
			}
			c := &Client{Socket: filepath.Join(tt.dir, "sock"), Timeout: time.Second}
			if _, err := c.Do(context.Background(), ActionGet, &Credential{Host: "h"}); err == nil {
				t.Errorf("Client.Do via %s = nil error; want a refusal", tt.dir)
			}
		})
	}
	if os.Getuid() == 0 {
		// root: a directory owned by someone else.
		other := filepath.Join(base, "other")
		if err := os.Mkdir(other, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(other, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		if err := CheckSocketDir(other); !errors.Is(err, ErrInsecureSocketDir) {
			t.Errorf("CheckSocketDir(owned by nobody) = %v; want ErrInsecureSocketDir", err)
		}
	}
}

// recorder is a Handler that records requests and answers a fixed credential.
type recorder struct {
	mu      sync.Mutex
	actions []string
	reqs    []*Credential
	answer  *Credential
}

func (r *recorder) ServeCredential(_ context.Context, action string, req *Credential) (*Credential, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.actions = append(r.actions, action)
	r.reqs = append(r.reqs, req)
	return r.answer, nil
}

func TestClientServerRoundTrip(t *testing.T) {
	rec := &recorder{answer: &Credential{Username: "azdo-sidecar", Password: secret.New("pat-1"), Extra: []Attr{{MessageKey, "hi"}}}}
	path, _ := serve(t, rec, nil)
	c := &Client{Socket: path, Timeout: 5 * time.Second}
	req := &Credential{Capabilities: []string{CapAuthType}, Protocol: "https", Host: "dev.azure.com", Path: "org/p/_git/r"}
	got, err := c.Do(context.Background(), ActionGet, req)
	if err != nil {
		t.Fatalf("Do() = %v", err)
	}
	if !equal(got, rec.answer) {
		t.Errorf("Do() = %s; want %s", dump(got), dump(rec.answer))
	}
	if len(rec.reqs) != 1 || rec.actions[0] != ActionGet || !equal(rec.reqs[0], req) {
		t.Errorf("server saw %v %v; want get %s", rec.actions, rec.reqs, dump(req))
	}
}

func TestClientNoServer(t *testing.T) {
	dir := socketDir(t)
	for _, path := range []string{
		filepath.Join(dir, "sock"),            // missing socket
		filepath.Join(dir, "missing", "sock"), // missing directory
	} {
		c := &Client{Socket: path, Timeout: time.Second}
		if _, err := c.Do(context.Background(), ActionGet, &Credential{Host: "h"}); !errors.Is(err, ErrNoServer) {
			t.Errorf("Do(%s) = %v; want ErrNoServer", path, err)
		}
	}
}

// TestGitCredentialCacheClient: git's own credential-cache client reaches
// the server, with no process of ours in between.
func TestGitCredentialCacheClient(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git not installed")
	}
	rec := &recorder{answer: &Credential{Username: "azdo-sidecar", Password: secret.New("pat-1"), PasswordExpiry: time.Unix(1900000000, 0)}}
	path, _ := serve(t, rec, nil)

	run := func(action, stdin string) string {
		t.Helper()
		cmd := exec.Command("git", "credential-cache", "--socket="+path, action)
		cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null", "HOME="+t.TempDir())
		cmd.Stdin = strings.NewReader(stdin)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("git credential-cache %s: %v (%s)", action, err, stderr.String())
		}
		return string(out)
	}
	in := "protocol=https\nhost=dev.azure.com\npath=org/p/_git/r\n\n"
	if got, want := run("get", in), "username=azdo-sidecar\npassword=pat-1\npassword_expiry_utc=1900000000\n"; got != want {
		t.Errorf("git credential-cache get = %q; want %q", got, want)
	}
	// git's "exit" must not stop the sidecar.
	run("exit", "")
	run("erase", "protocol=https\nhost=dev.azure.com\nusername=u\npassword=old\n\n")
	if got := run("get", in); !strings.Contains(got, "password=pat-1") {
		t.Errorf("git credential-cache get after exit = %q; want the answer", got)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if want := []string{"get", "erase", "get"}; strings.Join(rec.actions, ",") != strings.Join(want, ",") {
		t.Errorf("server saw actions %v; want %v", rec.actions, want)
	}
	if len(rec.reqs) > 1 && rec.reqs[1].Password.Reveal() != "old" {
		t.Errorf("erase carried password %q; want %q", rec.reqs[1].Password.Reveal(), "old")
	}
}

func TestServerRejectsBadRequests(t *testing.T) {
	var calls atomic.Int32
	h := HandlerFunc(func(context.Context, string, *Credential) (*Credential, error) {
		calls.Add(1)
		return &Credential{Username: "u"}, nil
	})
	path, _ := serve(t, h, nil)
	tests := []struct{ name, req string }{
		{"no action", "timeout=1\nhost=h\n"},
		{"no timeout", "action=get\nhost=h\n"},
		{"malformed credential", "action=get\ntimeout=1\nhost h\n"},
		{"unknown action", "action=exit\ntimeout=1\n"},
		{"too large", "action=get\ntimeout=1\n" + strings.Repeat("wwwauth[]="+strings.Repeat("x", 1000)+"\n", 300)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn, err := net.Dial("unix", path)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(5 * time.Second))
			go func() {
				conn.Write([]byte(tt.req))
				conn.(*net.UnixConn).CloseWrite()
			}()
			out, _ := io.ReadAll(conn)
			if len(out) != 0 {
				t.Errorf("answer to %.40q = %q; want none", tt.req, out)
			}
		})
	}
	if n := calls.Load(); n != 0 {
		t.Errorf("handler called %d times; want 0", n)
	}
}

// TestServerConnTimeout: a client that never finishes its request is cut
// off after ConnTimeout, and Shutdown does not wait for it forever.
func TestServerConnTimeout(t *testing.T) {
	path, _ := serve(t, &recorder{}, nil, 200*time.Millisecond)
	conn, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.Write([]byte("action=get\ntimeout=1\nhost=h\n")) // no blank line, no close
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	_, err = conn.Read(make([]byte, 1))
	if !errors.Is(err, io.EOF) {
		t.Fatalf("Read() = %v; want EOF when the server gives up", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("server held the connection %s; want about 200ms", d)
	}
}

// TestServerShutdownDrains: a request in progress finishes; Serve returns;
// no goroutine is left behind.
func TestServerShutdownDrains(t *testing.T) {
	before := runtime.NumGoroutine()
	path := filepath.Join(socketDir(t), "sock")
	ln, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	entered, release := make(chan struct{}), make(chan struct{})
	s := &Server{Handler: HandlerFunc(func(ctx context.Context, _ string, _ *Credential) (*Credential, error) {
		close(entered)
		<-release
		return &Credential{Username: "late"}, nil
	}), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()

	answered := make(chan *Credential, 1)
	go func() {
		c := &Client{Socket: path, Timeout: 5 * time.Second}
		ans, err := c.Do(context.Background(), ActionGet, &Credential{Host: "h"})
		if err != nil {
			t.Errorf("Do() during shutdown = %v", err)
		}
		answered <- ans
	}()
	<-entered
	shut := make(chan error, 1)
	go func() { shut <- s.Shutdown(context.Background()) }()
	time.Sleep(50 * time.Millisecond)
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned %v before the request finished", err)
	default:
	}
	close(release)
	if err := <-shut; err != nil {
		t.Errorf("Shutdown() = %v", err)
	}
	if ans := <-answered; ans == nil || ans.Username != "late" {
		t.Errorf("answer = %v; want the in-flight answer", ans)
	}
	if err := <-served; !errors.Is(err, ErrServerClosed) {
		t.Errorf("Serve() = %v; want ErrServerClosed", err)
	}
	if _, err := (&Client{Socket: path, Timeout: time.Second}).Do(context.Background(), ActionGet, &Credential{}); !errors.Is(err, ErrNoServer) {
		t.Errorf("Do() after Shutdown = %v; want ErrNoServer", err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Errorf("%d goroutines after Shutdown; want at most %d", n, before)
	}
}

// TestServerLogsNoSecret: a failing handler's log line never shows the
// password of the request.
func TestServerLogsNoSecret(t *testing.T) {
	const pw = "pat-never-logged-7f3a"
	var logs syncBuffer
	h := HandlerFunc(func(_ context.Context, _ string, req *Credential) (*Credential, error) {
		return nil, errors.New("boom for " + req.Host + " " + req.Password.String())
	})
	path, _ := serve(t, h, &logs)
	c := &Client{Socket: path, Timeout: 5 * time.Second}
	c.Do(context.Background(), ActionErase, &Credential{Protocol: "https", Host: "dev.azure.com", Username: "u", Password: secret.New(pw)})
	// Malformed request with the secret in it.
	conn, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	conn.Write([]byte("action=get\ntimeout=1\npassword" + pw + "\n"))
	conn.(*net.UnixConn).CloseWrite()
	io.ReadAll(conn)
	conn.Close()
	time.Sleep(50 * time.Millisecond)
	out := logs.String()
	if !strings.Contains(out, "boom") || !strings.Contains(out, "bad request") {
		t.Fatalf("logs = %q; want both failures logged", out)
	}
	if strings.Contains(out, pw) {
		t.Errorf("logs contain the password: %s", out)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestListenTakesOverGitDaemon: when the sidecar was down, git's
// "credential-cache --socket=<ours> store" spawned git's own daemon on our
// path; Listen asks it to exit and takes the path back.
func TestListenTakesOverGitDaemon(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git not installed")
	}
	dir := filepath.Join(socketDir(t), "run")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "sock")
	cmd := exec.Command("git", "credential-cache", "--timeout=60", "--socket="+path, "store")
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null", "HOME="+t.TempDir())
	cmd.Stdin = strings.NewReader("protocol=https\nhost=dev.azure.com\nusername=u\npassword=p\n\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("git credential-cache store: %v (%s)", err, out)
	}
	if !live(path) {
		t.Fatal("git's daemon is not listening on the socket")
	}
	ln, err := Listen(path)
	if err != nil {
		t.Fatalf("Listen(socket of git's daemon) = %v; want it taken over", err)
	}
	ln.Close()
}

// TestServerAnswersEachClient: an answer meant for stderr (the user must
// connect) reaches our Client as it is, but git's credential-cache client
// gets an empty answer, so git asks the next helper (ours) instead of
// stopping without a word; a token reaches both.
func TestServerAnswersEachClient(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git not installed")
	}
	token := &Credential{Username: "azdo-sidecar", Password: secret.New("pat-each")}
	connect := &Credential{Quit: true, Extra: []Attr{{MessageKey, "azdo-sidecar: connect at https://runner.test/connect"}}}
	quitOnly := &Credential{Quit: true}
	tests := []struct {
		name      string
		answer    *Credential
		wantOurs  *Credential
		wantCache string
	}{
		{"token", token, token, "username=azdo-sidecar\npassword=pat-each\n"},
		{"connect message", connect, connect, ""},
		{"quit", quitOnly, quitOnly, ""},
		{"nothing", nil, &Credential{}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{answer: tt.answer}
			path, _ := serve(t, rec, nil)
			req := &Credential{Protocol: "https", Host: "dev.azure.com", Path: "org/p/_git/r"}
			got, err := (&Client{Socket: path, Timeout: 5 * time.Second}).Do(context.Background(), ActionGet, req)
			if err != nil || !equal(got, tt.wantOurs) {
				t.Errorf("Client.Do(get) = %s, %v; want %s", dump(got), err, dump(tt.wantOurs))
			}
			cmd := exec.Command("git", "credential-cache", "--socket="+path, "get")
			cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null", "HOME="+t.TempDir())
			cmd.Stdin = strings.NewReader("protocol=https\nhost=dev.azure.com\npath=org/p/_git/r\n\n")
			out, err := cmd.Output()
			if err != nil || string(out) != tt.wantCache {
				t.Errorf("git credential-cache get = %q, %v; want %q", out, err, tt.wantCache)
			}
			rec.mu.Lock()
			defer rec.mu.Unlock()
			for _, r := range rec.reqs {
				if _, ok := r.Get(ClientKey); ok {
					t.Errorf("handler saw %s in the request; want it removed", ClientKey)
				}
			}
		})
	}
}

// TestClientStatus: ActionStatus returns Server.Status as sent, and
// nothing from a server without it; the Handler never sees it.
func TestClientStatus(t *testing.T) {
	const status = `{"mode":"pat"}`
	tests := []struct {
		name   string
		status func() ([]byte, error)
		want   string
	}{
		{name: "status served", status: func() ([]byte, error) { return []byte(status), nil }, want: status},
		{name: "no status func", want: ""},
		{name: "status fails", status: func() ([]byte, error) { return nil, errors.New("boom") }, want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(socketDir(t), "run", "sock")
			ln, err := Listen(path)
			if err != nil {
				t.Fatalf("Listen(%q) = %v", path, err)
			}
			rec := &recorder{}
			s := &Server{Handler: rec, Status: tt.status, Logger: slog.New(slog.DiscardHandler)}
			done := make(chan error, 1)
			go func() { done <- s.Serve(ln) }()
			defer func() {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				s.Shutdown(ctx)
				<-done
			}()
			got, err := (&Client{Socket: path}).Status(context.Background())
			if err != nil || string(got) != tt.want {
				t.Errorf("Status() = %q, %v; want %q", got, err, tt.want)
			}
			rec.mu.Lock()
			n := len(rec.actions)
			rec.mu.Unlock()
			if n != 0 {
				t.Errorf("handler saw %d requests; want 0", n)
			}
		})
	}
	_, err := (&Client{Socket: filepath.Join(socketDir(t), "none", "sock")}).Status(context.Background())
	if !errors.Is(err, ErrNoServer) {
		t.Errorf("Status() without a server = %v; want ErrNoServer", err)
	}
}
