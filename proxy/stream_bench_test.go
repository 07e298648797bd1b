package proxy

import (
	"crypto/rand"
	"io"
	"net/http"
	"testing"
)

// BenchmarkStreamThroughProxy streams a 64 MiB response (chunked, as git
// http-backend sends packs) from a TLS upstream through the intercepting
// proxy to a TLS client, to profile the proxy's per-byte cost:
//
//	go test -run XXX -bench StreamThroughProxy -benchtime 10x -cpuprofile cpu.out ./proxy/
//	go tool pprof -top -focus 'proxy\.|goproxy' proxy.test cpu.out
func BenchmarkStreamThroughProxy(b *testing.B) {
	const size = 64 << 20
	chunk := make([]byte, 64<<10)
	rand.Read(chunk)
	up := newUpstreamCA(b)
	srv := up.startUpstream(b, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/x-git-upload-pack-result")
		for n := 0; n < size; n += len(chunk) {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	}), "dev.azure.com")
	h := startProxy(b, up, harnessOpts{resolve: []string{"dev.azure.com:443:127.0.0.1:" + portOf(b, srv)}})
	c := h.client(h.roots)
	c.Transport.(*http.Transport).DisableKeepAlives = false
	b.SetBytes(size)
	b.ResetTimer()
	for range b.N {
		resp, err := c.Get("https://dev.azure.com/contoso/p/_git/r/git-upload-pack")
		if err != nil {
			b.Fatal(err)
		}
		n, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil || n != size {
			b.Fatalf("read %d bytes, %v; want %d", n, err, size)
		}
	}
}
