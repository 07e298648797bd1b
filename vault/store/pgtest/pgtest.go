// Package pgtest runs a real, throwaway PostgreSQL cluster for tests: one
// cluster per test binary, in a temporary directory, listening only on a
// Unix socket there, and a fresh database per test so that tests can run in
// parallel.
//
// The binaries (initdb, postgres) are looked up on PATH and in Debian's
// /usr/lib/postgresql/*/bin. Without them a test skips — unless the
// environment variable CI is set: .ci/run installs PostgreSQL, so there its
// absence is a failure. PostgreSQL refuses to run as root; as root the
// cluster runs as the "postgres" system user (runuser).
//
// The server is stopped by Stop (call it from TestMain) and, whatever
// happens to the test binary, by a small shell that watches a pipe from
// it: when the test process exits, the pipe closes and the shell stops the
// server and removes its directory.
package pgtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// User is the cluster's superuser; every database belongs to it.
const User = "azdo"

// startTimeout bounds initdb plus the server's start.
const startTimeout = 60 * time.Second

// cluster is the one running server of this test binary.
type cluster struct {
	dir    string         // temporary directory: data/, the socket, log
	cmd    *exec.Cmd      // the watching shell
	stdin  io.WriteCloser // closing it stops the server
	done   chan struct{}  // closed when the shell has exited
	admin  *pgx.Conn      // to the "postgres" database, for CREATE DATABASE
	mu     sync.Mutex     // serialises use of admin
	nextDB atomic.Int64
}

var (
	once     sync.Once
	shared   *cluster
	startErr error
	missing  bool // no PostgreSQL binaries: skip (or fail under CI)
)

// ErrNotInstalled means no PostgreSQL binaries were found.
var ErrNotInstalled = errors.New("pgtest: PostgreSQL is not installed (apt-get install postgresql)")

// URL creates a new, empty database in the test binary's cluster (starting
// the cluster on first use) and returns its postgres:// URL. It skips the
// test when PostgreSQL is not installed, or fails it when CI is set.
func URL(t testing.TB) string {
	t.Helper()
	once.Do(func() { shared, startErr = start() })
	if errors.Is(startErr, ErrNotInstalled) {
		if os.Getenv("CI") != "" {
			t.Fatalf("%v and CI is set: .ci/run installs it", startErr)
		}
		t.Skipf("%v; skipping the PostgreSQL test", startErr)
	}
	if startErr != nil {
		t.Fatalf("pgtest: start PostgreSQL: %v", startErr)
	}
	name := fmt.Sprintf("t%d", shared.nextDB.Add(1))
	if err := shared.createDatabase(name); err != nil {
		t.Fatalf("pgtest: create database %s: %v", name, err)
	}
	return shared.url(name)
}

// Stop stops the cluster, if one was started, and removes its directory.
// Call it from TestMain after m.Run; without it the cluster still stops
// when the test binary exits.
func Stop() {
	if shared == nil {
		return
	}
	shared.stop()
}

// Main runs the tests and stops the cluster: func TestMain(m *testing.M) {
// os.Exit(pgtest.Main(m)) }.
func Main(m *testing.M) int {
	code := m.Run()
	Stop()
	return code
}

// Socket returns the directory of the cluster's Unix socket, or "" if no
// cluster runs.
func Socket() string {
	if shared == nil {
		return ""
	}
	return shared.dir
}

func (c *cluster) url(db string) string {
	u := url.URL{Scheme: "postgres", User: url.User(User), Path: "/" + db,
		RawQuery: url.Values{"host": {c.dir}, "sslmode": {"disable"}}.Encode()}
	return u.String()
}

func (c *cluster) createDatabase(name string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// The name is ours (t<n>), so quoting it is enough.
	_, err := c.admin.Exec(ctx, `CREATE DATABASE `+pgx.Identifier{name}.Sanitize())
	return err
}

func (c *cluster) stop() {
	c.mu.Lock()
	if c.admin != nil {
		c.admin.Close(context.Background())
		c.admin = nil
	}
	c.mu.Unlock()
	c.stdin.Close()
	select {
	case <-c.done:
	case <-time.After(30 * time.Second):
		c.cmd.Process.Kill()
	}
}

// binDir finds the directory holding initdb and postgres: PATH first, then
// the newest /usr/lib/postgresql/N/bin.
func binDir() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		dir := filepath.Dir(p)
		if _, err := os.Stat(filepath.Join(dir, "postgres")); err == nil {
			return dir, nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(dirs, func(a, b string) int {
		va, _ := strconv.Atoi(filepath.Base(filepath.Dir(a)))
		vb, _ := strconv.Atoi(filepath.Base(filepath.Dir(b)))
		return vb - va
	})
	for _, d := range dirs {
		_, e1 := os.Stat(filepath.Join(d, "initdb"))
		_, e2 := os.Stat(filepath.Join(d, "postgres"))
		if e1 == nil && e2 == nil {
			return d, nil
		}
	}
	return "", ErrNotInstalled
}

// The watching shell: start the server, wait for stdin to close (the test
// binary exited or called Stop), then stop it fast and remove the
// directory. The server's output goes to a log file kept for errors.
const watcher = `
"$1/postgres" -D "$2/data" -k "$2" -c listen_addresses= -c port=5432 \
	-c fsync=off -c synchronous_commit=off -c full_page_writes=off \
	-c max_connections=200 -c shared_buffers=16MB >"$2/log" 2>&1 &
pid=$!
read -r _ || true
kill -INT "$pid" 2>/dev/null
wait "$pid"
rm -rf "$2"
`

func start() (*cluster, error) {
	bin, err := binDir()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()

	// As root, everything runs as the postgres user, who must own the
	// directory; the root's own TMPDIR may be closed to it, so use /tmp.
	var asUser []string
	tmp := ""
	var uid, gid = -1, -1
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("running as root, and there is no postgres user to run PostgreSQL as: %w", err)
		}
		uid, _ = strconv.Atoi(u.Uid)
		gid, _ = strconv.Atoi(u.Gid)
		runuser, err := exec.LookPath("runuser")
		if err != nil {
			return nil, fmt.Errorf("running as root, and runuser is missing: %w", err)
		}
		asUser = []string{runuser, "-u", "postgres", "--"}
		tmp = "/tmp"
	}
	dir, err := os.MkdirTemp(tmp, "pgtest-")
	if err != nil {
		return nil, err
	}
	if uid >= 0 {
		if err := os.Chown(dir, uid, gid); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
	}
	command := func(ctx context.Context, name string, args ...string) *exec.Cmd {
		argv := append(slices.Clone(asUser), append([]string{name}, args...)...)
		cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
		cmd.Env = append(os.Environ(), "LC_ALL=C", "TZ=UTC")
		return cmd
	}

	initdb := command(ctx, filepath.Join(bin, "initdb"), "-D", filepath.Join(dir, "data"), "-A", "trust", "-U", User,
		"-E", "UTF8", "--no-sync", "--no-instructions")
	if out, err := initdb.CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("initdb: %v\n%s", err, out)
	}

	// The shell runs in its own process group, so a ^C to the test does
	// not reach the server before the shell stops it.
	sh := command(context.Background(), "/bin/sh", "-c", watcher, "pgtest", bin, dir)
	sh.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdin, err := sh.StdinPipe()
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if err := sh.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	c := &cluster{dir: dir, cmd: sh, stdin: stdin, done: make(chan struct{})}
	go func() { sh.Wait(); close(c.done) }()

	// Wait until it accepts connections.
	for {
		conn, err := pgx.Connect(ctx, c.url("postgres"))
		if err == nil {
			c.admin = conn
			return c, nil
		}
		select {
		case <-c.done:
			return nil, fmt.Errorf("postgres exited: %s", c.log())
		case <-ctx.Done():
			c.stop()
			return nil, fmt.Errorf("postgres not ready after %v: %v\n%s", startTimeout, err, c.log())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// log returns the tail of the server's log.
func (c *cluster) log() string {
	b, _ := os.ReadFile(filepath.Join(c.dir, "log"))
	if len(b) > 4096 {
		b = b[len(b)-4096:]
	}
	return string(bytes.TrimSpace(b))
}
