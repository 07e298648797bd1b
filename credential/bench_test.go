package credential

import (
	"bytes"
	"context"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/azdo-sidecar/azdo-sidecar/azdo"
	"github.com/azdo-sidecar/azdo-sidecar/secret"
	"github.com/azdo-sidecar/azdo-sidecar/token"
)

// benchRequest is what git's credential-cache client sends for
// `git credential fill` of https://dev.azure.com/... (no useHttpPath).
var benchRequest = []byte("action=get\ntimeout=900\nprotocol=https\nhost=dev.azure.com\n\n")

// roundTrips runs b.N requests of git's credential-cache client against
// sock (connect, send, half-close, read to EOF) and checks each answer.
func roundTrips(b *testing.B, sock string) {
	b.Helper()
	want := []byte("\npassword=pat-bench-0123456789\n")
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c, err := net.Dial("unix", sock)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := c.Write(benchRequest); err != nil {
			b.Fatal(err)
		}
		if err := c.(*net.UnixConn).CloseWrite(); err != nil {
			b.Fatal(err)
		}
		ans, err := io.ReadAll(c)
		c.Close()
		if err != nil || !bytes.Contains(ans, want) {
			b.Fatalf("answer = %q, %v; want the PAT as password", ans, err)
		}
	}
}

// BenchmarkServerRoundTrip is one request of git's credential-cache client
// against the Server with the sidecar's handler over a cached token: the
// server's share of a `git credential fill` through `cache --socket`.
// Compare with BenchmarkGitDaemonRoundTrip, the same requests to git's own
// daemon.
func BenchmarkServerRoundTrip(b *testing.B) {
	src := token.NewCache(token.NewStatic(secret.New("pat-bench-0123456789")), token.CacheOptions{})
	hosts, err := azdo.NewHosts(nil)
	if err != nil {
		b.Fatal(err)
	}
	sock := filepath.Join(b.TempDir(), "run", "sock")
	ln, err := Listen(sock)
	if err != nil {
		b.Fatal(err)
	}
	srv := &Server{Handler: NewTokenHandler(src, hosts)}
	go srv.Serve(ln)
	defer srv.Shutdown(context.Background())
	roundTrips(b, sock)
}

// BenchmarkGitDaemonRoundTrip is BenchmarkServerRoundTrip against git's
// own credential-cache daemon holding the same credential: the baseline.
func BenchmarkGitDaemonRoundTrip(b *testing.B) {
	if _, err := exec.LookPath("git"); err != nil {
		b.Skip("no git")
	}
	dir := b.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "d"), 0o700); err != nil {
		b.Fatal(err)
	}
	sock := filepath.Join(dir, "d", "sock")
	env := append(os.Environ(), "HOME="+dir, "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null")
	store := exec.Command("git", "credential-cache", "--timeout=3600", "--socket="+sock, "store")
	store.Env = env
	store.Stdin = strings.NewReader("protocol=https\nhost=dev.azure.com\nusername=azdo-sidecar\npassword=pat-bench-0123456789\n\n")
	if out, err := store.CombinedOutput(); err != nil {
		b.Fatalf("git credential-cache store: %v\n%s", err, out)
	}
	defer func() {
		exit := exec.Command("git", "credential-cache", "--socket="+sock, "exit")
		exit.Env = env
		_ = exit.Run()
	}()
	roundTrips(b, sock)
}
