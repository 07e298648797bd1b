package proxy

import (
	"bytes"
	"encoding/base64"
	"io"
	"net/http"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/azdo-sidecar/azdo-sidecar/secret"
	"github.com/azdo-sidecar/azdo-sidecar/token"
)

func TestMethodsAllowedAndRefused(t *testing.T) {
	up := newUpstreamCA(t)
	rec := &recorder{}
	srv := up.startUpstream(t, rec, "dev.azure.com")
	h := startProxy(t, up, harnessOpts{resolve: []string{"dev.azure.com:443:127.0.0.1:" + portOf(t, srv)}})
	tests := []struct {
		method string
		want   int
	}{
		{"GET", 200}, {"HEAD", 200}, {"POST", 200}, {"PUT", 200}, {"PATCH", 200}, {"DELETE", 200}, {"OPTIONS", 200},
		{"TRACE", 405}, {"TRACK", 405}, {"CONNECT", 405}, {"PROPFIND", 405}, {"get", 405},
	}
	for _, tt := range tests {
		t.Run(tt.method, func(t *testing.T) {
			before := len(rec.requests())
			tc, br := rawTunnel(t, h, "dev.azure.com:443")
			target := "/contoso/_apis/x"
			if tt.method == "CONNECT" {
				target = "example.com:443"
			}
			io.WriteString(tc, tt.method+" "+target+" HTTP/1.1\r\nHost: dev.azure.com\r\nContent-Length: 0\r\n\r\n")
			resp, err := http.ReadResponse(br, &http.Request{Method: tt.method})
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Fatalf("%s = %d %q; want %d", tt.method, resp.StatusCode, body, tt.want)
			}
			sent := len(rec.requests()) - before
			if tt.want == 405 {
				if sent != 0 {
					t.Errorf("%s reached the upstream", tt.method)
				}
				if resp.Header.Get("Allow") != allowedMethodList {
					t.Errorf("Allow = %q", resp.Header.Get("Allow"))
				}
			} else if sent != 1 {
				t.Errorf("%s: upstream saw %d requests; want 1", tt.method, sent)
			}
		})
	}
}

func TestReflectionsCoverEveryAlignment(t *testing.T) {
	const s = "pat-SECRET-0123456789abcdef"
	pats := reflections(token.Token{Kind: token.Basic, Secret: secret.New(s)})
	for pre := 0; pre < 6; pre++ {
		for post := 0; post < 4; post++ {
			text := strings.Repeat("u", pre) + s + strings.Repeat(":", post)
			for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding} {
				if b := []byte(enc.EncodeToString([]byte(text))); !containsAny(b, pats) {
					t.Errorf("base64(%q) = %s holds none of the patterns", text, b)
				}
			}
		}
	}
	if !containsAny([]byte(wantBasic), pats) {
		t.Errorf("the injected Basic header is not recognised")
	}
	if containsAny([]byte(base64.StdEncoding.EncodeToString([]byte("unrelated text of some length"))), pats) {
		t.Errorf("an unrelated base64 text matched")
	}
}

func TestScrubReaderStreamsAndReplaces(t *testing.T) {
	const s = "pat-SECRET-0123456789abcdef"
	pats := reflections(token.Token{Kind: token.Basic, Secret: secret.New(s)})
	b64 := base64.StdEncoding.EncodeToString([]byte("user:" + s))
	body := strings.Repeat("x", 40000) + s + "middle" + b64 + strings.Repeat("y", 70000) + s[:10] + "end" + s
	for _, tc := range []struct {
		name string
		wrap func(io.Reader) io.Reader
	}{
		{"whole", func(r io.Reader) io.Reader { return r }},
		{"one byte", iotest.OneByteReader},
		{"half", iotest.HalfReader},
		{"data err", iotest.DataErrReader},
	} {
		t.Run(tc.name, func(t *testing.T) {
			found := 0
			r := newScrubReader(io.NopCloser(tc.wrap(strings.NewReader(body))), pats, func() { found++ })
			got, err := io.ReadAll(r)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(body) {
				t.Errorf("length %d; want %d", len(got), len(body))
			}
			if containsAny(got, pats) || bytes.Contains(got, []byte(s)) {
				t.Errorf("the secret is still in the body")
			}
			if !bytes.Contains(got, []byte(s[:10]+"end")) || !bytes.HasPrefix(got, []byte(strings.Repeat("x", 40000)+strings.Repeat("*", len(s))+"middle")) {
				t.Errorf("the body changed beyond the secret")
			}
			if found != 1 {
				t.Errorf("found called %d times; want 1", found)
			}
		})
	}
}

func TestScrubReaderDoesNotHoldBackOrdinaryData(t *testing.T) {
	pats := reflections(token.Token{Kind: token.Basic, Secret: secret.New("pat-SECRET-0123456789abcdef")})
	pr, pw := io.Pipe()
	r := newScrubReader(pr, pats, nil)
	go pw.Write([]byte("0008NAK\n"))
	buf := make([]byte, 64)
	n, err := r.Read(buf)
	if err != nil || string(buf[:n]) != "0008NAK\n" {
		t.Fatalf("Read = %q, %v; want the whole chunk at once", buf[:n], err)
	}
	// A chunk ending in the start of the secret is held until the rest shows.
	go pw.Write([]byte("abc pat-SEC"))
	n, _ = r.Read(buf)
	if string(buf[:n]) != "abc " {
		t.Fatalf("Read = %q; want %q (the possible secret held)", buf[:n], "abc ")
	}
	go func() { pw.Write([]byte("RET-0123456789abcdef!")); pw.Close() }()
	rest, _ := io.ReadAll(r)
	if string(rest) != strings.Repeat("*", 27)+"!" {
		t.Errorf("rest = %q", rest)
	}
}

// TestNoReflectionOfTheCredential: an upstream that echoes the request's
// headers never hands the injected credential to the client.
func TestNoReflectionOfTheCredential(t *testing.T) {
	up := newUpstreamCA(t)
	rec := &recorder{h: func(w http.ResponseWriter, r *http.Request) {
		auth := r.Header.Get("Authorization")
		switch r.URL.Path {
		case "/contoso/header":
			w.Header().Set("X-Echo", auth)
		case "/contoso/header-b64":
			w.Header().Set("X-Echo", base64.StdEncoding.EncodeToString([]byte("Authorization: "+auth)))
		case "/contoso/body":
			io.WriteString(w, "Authorization: "+auth+"\n")
		case "/contoso/body-decoded":
			raw, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(auth, "Basic "))
			io.WriteString(w, "you sent "+string(raw)+"\n")
		}
	}}
	srv := up.startUpstream(t, rec, "dev.azure.com")
	h := startProxy(t, up, harnessOpts{resolve: []string{"dev.azure.com:443:127.0.0.1:" + portOf(t, srv)}})
	for _, tt := range []struct {
		path string
		want int
	}{
		{"/contoso/header", http.StatusBadGateway},
		{"/contoso/header-b64", http.StatusBadGateway},
		{"/contoso/body", http.StatusOK},
		{"/contoso/body-decoded", http.StatusOK},
	} {
		t.Run(tt.path, func(t *testing.T) {
			resp, err := h.client(h.roots).Get("https://dev.azure.com" + tt.path)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Errorf("status %d; want %d", resp.StatusCode, tt.want)
			}
			all := string(body)
			for k, v := range resp.Header {
				all += k + ": " + strings.Join(v, ",") + "\n"
			}
			if strings.Contains(all, testPAT) || strings.Contains(all, strings.TrimPrefix(wantBasic, "Basic ")) {
				t.Errorf("the response carries the credential:\n%s", all)
			}
			if tt.want == http.StatusOK && !strings.Contains(string(body), "****") {
				t.Errorf("body = %q; want the credential replaced", body)
			}
		})
	}
	if n := strings.Count(h.logs.String(), "carries the injected credential"); n != 4 {
		t.Errorf("%d WARNs about a reflected credential; want 4", n)
	}
	if strings.Contains(h.logs.String(), testPAT) {
		t.Errorf("the log contains the PAT")
	}
}
