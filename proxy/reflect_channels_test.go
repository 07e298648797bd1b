package proxy

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
)

// TestNoReflectionThroughCompressedBody: the proxy asks upstream for
// identity even when the client asks for gzip, so an echoing server's
// body passes the scrubber uncompressed; a server that compresses anyway
// is refused (502). The credential never reaches the client.
func TestNoReflectionThroughCompressedBody(t *testing.T) {
	up := newUpstreamCA(t)
	var gotAE []string
	rec := &recorder{h: func(w http.ResponseWriter, r *http.Request) {
		auth := r.Header.Get("Authorization")
		gotAE = append(gotAE, r.Header.Get("Accept-Encoding"))
		gz := func() {
			w.Header().Set("Content-Encoding", "gzip")
			zw := gzip.NewWriter(w)
			io.WriteString(zw, "Authorization: "+auth+"\n")
			zw.Close()
		}
		switch {
		case r.URL.Path == "/contoso/always-gzip":
			gz()
		case strings.Contains(r.Header.Get("Accept-Encoding"), "gzip"):
			gz()
		default:
			io.WriteString(w, "Authorization: "+auth+"\n")
		}
	}}
	srv := up.startUpstream(t, rec, "dev.azure.com")
	h := startProxy(t, up, harnessOpts{resolve: []string{"dev.azure.com:443:127.0.0.1:" + portOf(t, srv)}})
	for _, tc := range []struct {
		path string
		code int
	}{{"/contoso/gz", http.StatusOK}, {"/contoso/always-gzip", http.StatusBadGateway}} {
		req, _ := http.NewRequest("GET", "https://dev.azure.com"+tc.path, nil)
		req.Header.Set("Accept-Encoding", "gzip") // explicit: the client decompresses itself
		resp, err := h.client(h.roots).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(bytes.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			body, _ = io.ReadAll(zr)
		}
		if resp.StatusCode != tc.code {
			t.Errorf("%s = %d %q; want %d", tc.path, resp.StatusCode, body, tc.code)
		}
		if strings.Contains(string(body), wantBasic) || strings.Contains(string(body), testPAT) {
			t.Errorf("%s: the client recovered the injected credential: %q", tc.path, body)
		}
	}
	for _, ae := range gotAE {
		if ae != "identity" {
			t.Errorf("upstream saw Accept-Encoding %q; want identity", ae)
		}
	}
}

// TestNoReflectionThroughTrailer: trailers, which arrive after the body,
// are not passed on, so a server cannot echo the credential in one.
func TestNoReflectionThroughTrailer(t *testing.T) {
	up := newUpstreamCA(t)
	rec := &recorder{h: func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Echo")
		io.WriteString(w, "hello\n")
		w.(http.Flusher).Flush()
		w.Header().Set("X-Echo", r.Header.Get("Authorization"))
	}}
	srv := up.startUpstream(t, rec, "dev.azure.com")
	h := startProxy(t, up, harnessOpts{resolve: []string{"dev.azure.com:443:127.0.0.1:" + portOf(t, srv)}})
	tc, br := rawTunnel(t, h, "dev.azure.com:443")
	io.WriteString(tc, "GET /contoso/echo HTTP/1.1\r\nHost: dev.azure.com\r\n\r\n")
	var raw strings.Builder
	resp, err := http.ReadResponse(bufio.NewReader(io.TeeReader(br, &raw)), &http.Request{Method: "GET"})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(body) != "hello\n" {
		t.Errorf("answer = %d %q; want 200 hello", resp.StatusCode, body)
	}
	if strings.Contains(raw.String(), wantBasic) || strings.Contains(raw.String(), testPAT) || len(resp.Trailer) != 0 {
		t.Errorf("the answer passes on a trailer (%v):\n%s", resp.Trailer, raw.String())
	}
}

// TestNoReflectionThroughReasonPhrase: the status line carries the
// standard reason phrase for its code, never the server's.
func TestNoReflectionThroughReasonPhrase(t *testing.T) {
	up := newUpstreamCA(t)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", up.serverTLS(t, "dev.azure.com"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func(c net.Conn) {
				defer c.Close()
				req, err := http.ReadRequest(bufio.NewReader(c))
				if err != nil {
					return
				}
				fmt.Fprintf(c, "HTTP/1.1 400 %s\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", req.Header.Get("Authorization"))
			}(c)
		}
	}()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	h := startProxy(t, up, harnessOpts{resolve: []string{"dev.azure.com:443:127.0.0.1:" + port}})
	tc, br := rawTunnel(t, h, "dev.azure.com:443")
	io.WriteString(tc, "GET /contoso/echo HTTP/1.1\r\nHost: dev.azure.com\r\n\r\n")
	line, _ := br.ReadString('\n')
	if line != "HTTP/1.1 400 Bad Request\r\n" {
		t.Errorf("status line = %q; want the standard HTTP/1.1 400 Bad Request", line)
	}
}
