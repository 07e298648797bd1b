package credential

import (
	"context"
	"io"
	"net"
	"path/filepath"
	"testing"

	"github.com/azdo-sidecar/azdo-sidecar/azdo"
	"github.com/azdo-sidecar/azdo-sidecar/secret"
	"github.com/azdo-sidecar/azdo-sidecar/token"
)

// BenchmarkServerRoundTrip is one request of git's credential-cache client
// (connect, send, half-close, read to EOF) against the Server with the
// sidecar's handler over a cached token: the server's share of a
// `git credential fill` through `cache --socket`.
func BenchmarkServerRoundTrip(b *testing.B) {
	src := token.NewCache(token.NewStatic(secret.New("pat-bench-0123456789")), token.CacheOptions{})
	hosts, err := azdo.NewHosts(nil)
	if err != nil {
		b.Fatal(err)
	}
	h := NewTokenHandler(src, hosts)
	sock := filepath.Join(b.TempDir(), "run", "sock")
	ln, err := Listen(sock)
	if err != nil {
		b.Fatal(err)
	}
	srv := &Server{Handler: h}
	go srv.Serve(ln)
	defer srv.Shutdown(context.Background())
	req := []byte("action=get\ntimeout=900\nprotocol=https\nhost=dev.azure.com\n\n")
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c, err := net.Dial("unix", sock)
		if err != nil {
			b.Fatal(err)
		}
		c.Write(req)
		c.(*net.UnixConn).CloseWrite()
		ans, _ := io.ReadAll(c)
		c.Close()
		if len(ans) == 0 {
			b.Fatal("empty answer")
		}
	}
}
