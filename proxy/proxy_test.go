package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/azdo-sidecar/azdo-sidecar/secret"
	"github.com/azdo-sidecar/azdo-sidecar/token"
)

var wantBasic = "Basic " + base64.StdEncoding.EncodeToString([]byte(token.DefaultUsername+":"+testPAT))

func TestInjectsCredentialForAzureDevOps(t *testing.T) {
	up := newUpstreamCA(t)
	rec := &recorder{}
	srv := up.startUpstream(t, rec, "dev.azure.com")
	h := startProxy(t, up, harnessOpts{resolve: []string{"dev.azure.com:443:127.0.0.1:" + portOf(t, srv)}})

	req, _ := http.NewRequest("GET", "https://dev.azure.com/Contoso/Proj/_git/Repo/info/refs?service=git-upload-pack", nil)
	req.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte("someone:client-password")))
	req.Header.Set("Proxy-Authorization", "Basic Zm9vOmJhcg==")
	req.Header.Set("Git-Protocol", "version=2")
	resp, err := h.client(h.roots).Do(req)
	if err != nil {
		t.Fatalf("GET through proxy: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "ok" {
		t.Fatalf("GET = %d %q; want 200 \"ok\"", resp.StatusCode, body)
	}
	reqs := rec.requests()
	if len(reqs) != 1 {
		t.Fatalf("upstream saw %d requests; want 1", len(reqs))
	}
	got := reqs[0]
	for _, c := range []struct{ name, want string }{
		{"Authorization", wantBasic},
		{"X-Tfs-Fedauthredirect", "Suppress"},
		{"Proxy-Authorization", ""},
		{"Git-Protocol", "version=2"},
	} {
		if v := got.Header.Get(c.name); v != c.want {
			t.Errorf("upstream header %s = %q; want %q", c.name, v, c.want)
		}
	}
	if keys := h.tokens.keys; len(keys) != 1 || keys[0] != (token.Key{Host: "dev.azure.com", Org: "contoso"}) {
		t.Errorf("token keys = %v; want [dev.azure.com/contoso]", keys)
	}
	if state := resp.TLS; state == nil || state.PeerCertificates[0].Subject.String() != "" {
		t.Errorf("leaf subject = %q; want empty (names in SANs only)", state.PeerCertificates[0].Subject)
	}
	if n := value(h.p.m.injections.WithLabelValues("basic")); n != 1 {
		t.Errorf("injections{basic} = %v; want 1", n)
	}
}

func TestBearerToken(t *testing.T) {
	up := newUpstreamCA(t)
	rec := &recorder{}
	srv := up.startUpstream(t, rec, "contoso.visualstudio.com")
	src := &countingSource{f: func(int, token.Key) (token.Token, error) {
		return token.Token{Kind: token.Bearer, Secret: secret.New("eyJ-entra-token"), ExpiresAt: time.Now().Add(time.Hour)}, nil
	}}
	h := startProxy(t, up, harnessOpts{counting: src, resolve: []string{"contoso.visualstudio.com:443:127.0.0.1:" + portOf(t, srv)}})
	resp, err := h.client(h.roots).Get("https://contoso.visualstudio.com/DefaultCollection/P/_git/R/info/refs")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := rec.requests()[0].Header.Get("Authorization"); got != "Bearer eyJ-entra-token" {
		t.Errorf("Authorization = %q; want the bearer token", got)
	}
	if k := src.keys[0]; k != (token.Key{Host: "contoso.visualstudio.com", Org: "contoso"}) {
		t.Errorf("key = %v; want contoso.visualstudio.com/contoso", k)
	}
	st := h.p.Status()
	if len(st.Tokens) != 1 || st.Tokens[0].Kind != "bearer" || st.Tokens[0].ExpiresAt.IsZero() {
		t.Errorf("Status().Tokens = %+v; want one bearer token with expiry", st.Tokens)
	}
}

func TestBlindTunnelForOtherHosts(t *testing.T) {
	up := newUpstreamCA(t)
	tests := []struct {
		name string
		host string
	}{
		{"other host", "example.com"},
		{"lookalike suffix", "dev.azure.com.evil.test"},
		{"lookalike subdomain", "test.dev.azure.com"},
		{"bare visualstudio.com", "visualstudio.com"},
		{"two labels before visualstudio.com", "a.b.visualstudio.com"},
		// Microsoft's other sites under visualstudio.com (issue 11).
		{"code.visualstudio.com", "code.visualstudio.com"},
		{"marketplace.visualstudio.com", "marketplace.visualstudio.com"},
		{"vs-ssh.visualstudio.com", "vs-ssh.visualstudio.com"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recorder{}
			srv := up.startUpstream(t, rec, tc.host)
			h := startProxy(t, up, harnessOpts{resolve: []string{tc.host + ":443:127.0.0.1:" + portOf(t, srv)}})
			// The client trusts only the upstream CA: the tunnel must
			// carry the upstream's own certificate, not ours.
			resp, err := h.client(up.pool).Get("https://" + tc.host + "/contoso/_git/r/info/refs")
			if err != nil {
				t.Fatalf("GET %s through tunnel: %v", tc.host, err)
			}
			resp.Body.Close()
			if got := resp.TLS.PeerCertificates[0].Issuer.CommonName; got != "test upstream CA" {
				t.Errorf("issuer = %q; want the upstream's own CA (blind tunnel)", got)
			}
			if a := rec.requests()[0].Header.Get("Authorization"); a != "" {
				t.Errorf("upstream %s saw Authorization %q; want none", tc.host, a)
			}
			if n := h.tokens.count(); n != 0 {
				t.Errorf("token fetches = %d; want 0", n)
			}
			if n := value(h.p.m.requests.WithLabelValues(classOther)); n != 1 {
				t.Errorf("requests{other} = %v; want 1", n)
			}
		})
	}
}

func TestPlainHTTPToAzureDevOpsRefused(t *testing.T) {
	up := newUpstreamCA(t)
	h := startProxy(t, up, harnessOpts{selfHosted: []string{"tfs.example:8080"}})
	for _, u := range []string{
		"http://dev.azure.com/contoso/p/_git/r/info/refs",
		"http://contoso.visualstudio.com/p/_git/r",
		"http://DEV.AZURE.COM:80/x",
		"http://tfs.example:8080/tfs/DefaultCollection/p/_git/r",
	} {
		resp, err := h.client(h.roots).Get(u)
		if err != nil {
			t.Fatalf("GET %s: %v", u, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), "use https://") {
			t.Errorf("GET %s = %d %q; want 403 naming https", u, resp.StatusCode, body)
		}
		// Azure DevOps Server defaults to plain http: the answer says how
		// to give it HTTPS (issue 14).
		if strings.Contains(u, "tfs.example") && !strings.Contains(string(body), "HTTPS binding") {
			t.Errorf("GET %s = %q; want the advice for a plain-http Azure DevOps Server", u, body)
		}
	}
	if n := h.tokens.count(); n != 0 {
		t.Errorf("token fetches = %d; want 0", n)
	}
}

func TestPlainHTTPToOtherHostForwardedWithoutCredential(t *testing.T) {
	up := newUpstreamCA(t)
	rec := &recorder{}
	srv := startPlain(t, rec)
	h := startProxy(t, up, harnessOpts{plainHosts: []string{strings.TrimPrefix(srv, "http://")}})
	req, _ := http.NewRequest("GET", srv+"/x", nil)
	req.Header.Set("Proxy-Authorization", "Basic Zm9vOmJhcg==")
	resp, err := h.client(h.roots).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status = %d; want 200", resp.StatusCode)
	}
	got := rec.requests()[0].Header
	if got.Get("Authorization") != "" || got.Get("Proxy-Authorization") != "" {
		t.Errorf("upstream headers = %v; want no Authorization, no Proxy-Authorization", got)
	}
}

func startPlain(t *testing.T, h http.Handler) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return "http://" + l.Addr().String()
}

// rawTunnel opens an intercepted tunnel to target and returns the TLS
// connection inside it.
func rawTunnel(t *testing.T, h *harness, target string) (*tls.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", h.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, target)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: "CONNECT"})
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("CONNECT %s = %v, %v; want 200", target, resp, err)
	}
	tc := tls.Client(c, &tls.Config{RootCAs: h.roots, ServerName: hostOnly(target)})
	if err := tc.Handshake(); err != nil {
		t.Fatalf("TLS in tunnel: %v", err)
	}
	return tc, bufio.NewReader(tc)
}

func TestHostHeaderMustMatchTunnel(t *testing.T) {
	up := newUpstreamCA(t)
	rec := &recorder{}
	srv := up.startUpstream(t, rec, "dev.azure.com", "evil.example")
	h := startProxy(t, up, harnessOpts{resolve: []string{
		"dev.azure.com:443:127.0.0.1:" + portOf(t, srv),
		"evil.example:443:127.0.0.1:" + portOf(t, srv),
	}})
	for _, host := range []string{"evil.example", "dev.azure.com.evil.example", "dev.azure.com:8443"} {
		tc, br := rawTunnel(t, h, "dev.azure.com:443")
		fmt.Fprintf(tc, "GET /contoso/_git/r/info/refs HTTP/1.1\r\nHost: %s\r\n\r\n", host)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("Host %s: %v", host, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMisdirectedRequest {
			t.Errorf("Host %s: status = %d; want 421", host, resp.StatusCode)
		}
	}
	if n := len(rec.requests()); n != 0 {
		t.Errorf("upstream saw %d requests; want 0", n)
	}
	if n := h.tokens.count(); n != 0 {
		t.Errorf("token fetches = %d; want 0", n)
	}
}

func TestRetryOnceAfter401(t *testing.T) {
	up := newUpstreamCA(t)
	rec := &recorder{h: func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer fresh" {
			w.Header().Set("WWW-Authenticate", `Basic realm="https://dev.azure.com/"`)
			http.Error(w, "nope", http.StatusUnauthorized)
			return
		}
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "ok:%s", b)
	}}
	srv := up.startUpstream(t, rec, "dev.azure.com")
	var mu sync.Mutex
	current := "stale"
	src := &countingSource{f: func(int, token.Key) (token.Token, error) {
		mu.Lock()
		defer mu.Unlock()
		return token.Token{Kind: token.Bearer, Secret: secret.New(current)}, nil
	}}
	cache := &invalidating{Source: src, onInvalidate: func() { mu.Lock(); current = "fresh"; mu.Unlock() }}
	h := startProxy(t, up, harnessOpts{src: cache, counting: src, resolve: []string{"dev.azure.com:443:127.0.0.1:" + portOf(t, srv)}})

	tests := []struct {
		name string
		body io.Reader
		want int
	}{
		{"GET without body", nil, 200},
		{"small POST (git's probe)", strings.NewReader("0000"), 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mu.Lock()
			current = "stale"
			mu.Unlock()
			method := "GET"
			if tc.body != nil {
				method = "POST"
			}
			req, _ := http.NewRequest(method, "https://dev.azure.com/contoso/p/_git/r/git-receive-pack", tc.body)
			resp, err := h.client(h.roots).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Errorf("status = %d %q; want %d", resp.StatusCode, b, tc.want)
			}
			if tc.body != nil && string(b) != "ok:0000" {
				t.Errorf("body = %q; want the replayed request body", b)
			}
		})
	}
	if got := value(h.p.m.retries); got != 2 {
		t.Errorf("auth_retries_total = %v; want 2", got)
	}
}

// invalidating is a Source with Invalidate, standing in for token.Cache.
type invalidating struct {
	token.Source
	onInvalidate func()
}

func (i *invalidating) Invalidate(token.Key, token.Token) { i.onInvalidate() }

func TestStreamingBodyNotRetriedAnd401Becomes403(t *testing.T) {
	up := newUpstreamCA(t)
	rec := &recorder{h: func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		http.Error(w, "nope", http.StatusUnauthorized)
	}}
	srv := up.startUpstream(t, rec, "dev.azure.com")
	h := startProxy(t, up, harnessOpts{resolve: []string{"dev.azure.com:443:127.0.0.1:" + portOf(t, srv)}})
	pr, pw := io.Pipe()
	go func() {
		pw.Write([]byte(strings.Repeat("x", 100<<10)))
		pw.Close()
	}()
	req, _ := http.NewRequest("POST", "https://dev.azure.com/contoso/p/_git/r/git-receive-pack", pr)
	resp, err := h.client(h.roots).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(b), "rejected") {
		t.Errorf("status = %d %q; want 403 saying the credential was rejected", resp.StatusCode, b)
	}
	if n := len(rec.requests()); n != 1 {
		t.Errorf("upstream saw %d requests; want 1 (a streamed body is never retried)", n)
	}
	if strings.Contains(string(b), testPAT) {
		t.Errorf("response body contains the PAT")
	}
}

func TestTokenErrorsAreExplained(t *testing.T) {
	up := newUpstreamCA(t)
	rec := &recorder{}
	srv := up.startUpstream(t, rec, "dev.azure.com")
	tests := []struct {
		name       string
		err        error
		wantStatus int
		wantBody   string
		wantHeader string
		userAgent  string // Go's default when empty
		wantChall  string // WWW-Authenticate
	}{
		{"connect", &token.ConnectError{Key: token.Key{Host: "dev.azure.com", Org: "contoso"}, ConnectURL: "https://runner.example/connect?host=dev.azure.com&org=contoso"},
			401, "https://runner.example/connect?host=dev.azure.com&org=contoso", "", "", `Bearer realm="azdo-sidecar", error="connect_required"`},
		{"connect, git", &token.ConnectError{Key: token.Key{Host: "dev.azure.com", Org: "contoso"}, ConnectURL: "https://runner.example/connect?host=dev.azure.com&org=contoso"},
			403, "https://runner.example/connect?host=dev.azure.com&org=contoso", "", "git/2.39.5", ""},
		{"connect with a PAT page too, git", &token.ConnectError{Key: token.Key{Host: "dev.azure.com", Org: "contoso"}, ConnectURL: "https://runner.example/connect?x=1", PATURL: "https://runner.example/pat?x=2"},
			403, "azdo-sidecar:   https://runner.example/connect?x=1\nazdo-sidecar: or, to use a personal access token instead:\nazdo-sidecar:   https://runner.example/pat?x=2\n", "", "git/2.39.5", ""},
		{"reconnect", &token.ConnectError{Reconnect: true, Reason: "AADSTS700082", ConnectURL: "https://runner.example/connect"},
			401, "reconnect required (AADSTS700082)", "", "curl/7.88.1", `Bearer realm="azdo-sidecar", error="reconnect_required"`},
		{"reconnect, git", &token.ConnectError{Reconnect: true, Reason: "AADSTS700082", ConnectURL: "https://runner.example/connect"},
			403, "reconnect required (AADSTS700082)", "", "git/2.47.0", ""},
		{"forbidden by policy, git", &token.ForbiddenError{Key: token.Key{Host: "dev.azure.com", Org: "contoso"}, Message: "may use only dev.azure.com/fabrikam\nsecond line"},
			403, "azdo-sidecar: Azure DevOps (dev.azure.com/contoso): forbidden by this environment's policy: may use only dev.azure.com/fabrikam second line\n", "", "git/2.39.5", ""},
		{"forbidden by policy, other client", &token.ForbiddenError{Key: token.Key{Host: "dev.azure.com", Org: "contoso"}, Message: "no"},
			403, "forbidden by this environment's policy: no\n", "", "curl/7.88.1", ""},
		{"unauthorized env", fmt.Errorf("vault: %w", token.ErrUnauthorized), 403, "not authorized by the vault", "", "", ""},
		{"no credential", fmt.Errorf("x: %w", token.ErrNoCredential), 403, "no credential configured", "", "", ""},
		{"unavailable", &token.RetryAfterError{After: 7 * time.Second, Err: token.ErrUnavailable}, 503, "unavailable", "7", "", ""},
		{"other", errors.New("boom"), 502, "cannot get a token", "", "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := &countingSource{f: func(int, token.Key) (token.Token, error) { return token.Token{}, tc.err }}
			h := startProxy(t, up, harnessOpts{counting: src, resolve: []string{"dev.azure.com:443:127.0.0.1:" + portOf(t, srv)}})
			req, err := http.NewRequest("GET", "https://dev.azure.com/contoso/p/_git/r/info/refs", nil)
			if err != nil {
				t.Fatal(err)
			}
			if tc.userAgent != "" {
				req.Header.Set("User-Agent", tc.userAgent)
			}
			resp, err := h.client(h.roots).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.wantStatus || !strings.Contains(string(b), tc.wantBody) {
				t.Errorf("GET = %d %q; want %d containing %q", resp.StatusCode, b, tc.wantStatus, tc.wantBody)
			}
			if got := resp.Header.Get("WWW-Authenticate"); got != tc.wantChall {
				t.Errorf("WWW-Authenticate = %q; want %q", got, tc.wantChall)
			}
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
				t.Errorf("Content-Type = %q; want text/plain (git shows it as remote: lines)", ct)
			}
			if got := resp.Header.Get("Retry-After"); got != tc.wantHeader {
				t.Errorf("Retry-After = %q; want %q", got, tc.wantHeader)
			}
			// The connect link is a signed, single-use bearer link for
			// the user's browser: git shows it, the sidecar's log must not.
			logs := h.logs.String()
			if !strings.Contains(logs, "no token") {
				t.Fatalf("logs lack the no-token line (the path was not exercised):\n%s", logs)
			}
			if strings.Contains(logs, "runner.example/connect") {
				t.Errorf("logs contain the connect link:\n%s", logs)
			}
		})
	}
	if n := len(rec.requests()); n != 0 {
		t.Errorf("upstream saw %d requests without a token; want 0", n)
	}
}

func TestRedirectToOtherHostCarriesNoCredential(t *testing.T) {
	up := newUpstreamCA(t)
	other := &recorder{}
	otherSrv := up.startUpstream(t, other, "elsewhere.example")
	ado := &recorder{h: func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "https://elsewhere.example/contoso/p/_git/r/info/refs", http.StatusFound)
	}}
	adoSrv := up.startUpstream(t, ado, "dev.azure.com")
	h := startProxy(t, up, harnessOpts{resolve: []string{
		"dev.azure.com:443:127.0.0.1:" + portOf(t, adoSrv),
		"elsewhere.example:443:127.0.0.1:" + portOf(t, otherSrv),
	}})
	c := h.client(h.both(up))
	c.CheckRedirect = nil // follow, like git does for info/refs
	resp, err := c.Get("https://dev.azure.com/contoso/p/_git/r/info/refs")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if len(ado.requests()) != 1 || len(other.requests()) != 1 {
		t.Fatalf("requests: ado %d, other %d; want 1 and 1", len(ado.requests()), len(other.requests()))
	}
	if a := other.requests()[0].Header.Get("Authorization"); a != "" {
		t.Errorf("redirect target saw Authorization %q; want none", a)
	}
}

func TestStreamsBothWays(t *testing.T) {
	// The upstream answers its first chunk only after it has read the
	// first chunk of the request, while the client sends its second chunk
	// only after reading the first chunk of the response: a proxy that
	// buffered either body would deadlock here.
	up := newUpstreamCA(t)
	rec := &recorder{h: func(w http.ResponseWriter, r *http.Request) {
		buf := make([]byte, 5)
		if _, err := io.ReadFull(r.Body, buf); err != nil {
			t.Errorf("upstream read: %v", err)
			return
		}
		w.Write([]byte("pong1"))
		w.(http.Flusher).Flush()
		rest, _ := io.ReadAll(r.Body)
		w.Write(append([]byte("|"), rest...))
	}}
	srv := up.startUpstream(t, rec, "dev.azure.com")
	h := startProxy(t, up, harnessOpts{resolve: []string{"dev.azure.com:443:127.0.0.1:" + portOf(t, srv)}})
	pr, pw := io.Pipe()
	req, _ := http.NewRequest("POST", "https://dev.azure.com/contoso/p/_git/r/git-upload-pack", pr)
	go pw.Write([]byte("ping1"))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := h.client(h.roots).Do(req.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	first := make([]byte, 5)
	if _, err := io.ReadFull(resp.Body, first); err != nil || string(first) != "pong1" {
		t.Fatalf("first response chunk = %q, %v; want pong1", first, err)
	}
	pw.Write([]byte("ping2"))
	pw.Close()
	rest, _ := io.ReadAll(resp.Body)
	if string(rest) != "|ping2" {
		t.Errorf("rest = %q; want |ping2", rest)
	}
}

func TestExpectContinue(t *testing.T) {
	up := newUpstreamCA(t)
	rec := &recorder{h: func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%d", len(b))
	}}
	srv := up.startUpstream(t, rec, "dev.azure.com")
	h := startProxy(t, up, harnessOpts{resolve: []string{"dev.azure.com:443:127.0.0.1:" + portOf(t, srv)}})
	tc, br := rawTunnel(t, h, "dev.azure.com:443")
	const n = 200 << 10
	fmt.Fprintf(tc, "POST /contoso/p/_git/r/git-receive-pack HTTP/1.1\r\nHost: dev.azure.com\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n")
	tc.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, err := br.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "HTTP/1.1 100") {
		t.Fatalf("first line = %q, %v; want 100 Continue", line, err)
	}
	br.ReadString('\n') // blank line after 100
	fmt.Fprintf(tc, "%x\r\n%s\r\n0\r\n\r\n", n, strings.Repeat("y", n))
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(b) != fmt.Sprint(n) {
		t.Errorf("response = %d %q; want 200 %q", resp.StatusCode, b, fmt.Sprint(n))
	}
}

func TestShutdownDrainsInflight(t *testing.T) {
	up := newUpstreamCA(t)
	release := make(chan struct{})
	started := make(chan struct{})
	rec := &recorder{h: func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-release
		w.Write([]byte("done"))
	}}
	srv := up.startUpstream(t, rec, "dev.azure.com")
	h := startProxy(t, up, harnessOpts{resolve: []string{"dev.azure.com:443:127.0.0.1:" + portOf(t, srv)}})
	type result struct {
		body string
		err  error
	}
	got := make(chan result, 1)
	go func() {
		resp, err := h.client(h.roots).Get("https://dev.azure.com/contoso/p/_git/r/info/refs")
		if err != nil {
			got <- result{err: err}
			return
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		got <- result{string(b), err}
	}()
	<-started
	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		shut <- h.p.Shutdown(ctx)
	}()
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned %v while a request was in flight", err)
	case <-time.After(200 * time.Millisecond):
	}
	close(release)
	if r := <-got; r.err != nil || r.body != "done" {
		t.Errorf("in-flight request = %q, %v; want done", r.body, r.err)
	}
	if err := <-shut; err != nil {
		t.Errorf("Shutdown = %v; want nil", err)
	}
	if n := h.p.conns.len(); n != 0 {
		t.Errorf("%d connections still tracked after Shutdown; want 0", n)
	}
	if _, err := net.DialTimeout("tcp", h.addr, time.Second); err == nil {
		t.Errorf("proxy still accepts connections after Shutdown")
	}
}

func TestShutdownCutsTunnelsAtDeadline(t *testing.T) {
	up := newUpstreamCA(t)
	// A raw TCP upstream that never closes.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	h := startProxy(t, up, harnessOpts{resolve: []string{"example.com:443:" + l.Addr().String()}})
	c, err := net.Dial("tcp", h.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "CONNECT example.com:443 HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: "CONNECT"})
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("CONNECT = %v, %v", resp, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := h.p.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown = %v; want DeadlineExceeded for a tunnel that stays open", err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Errorf("tunnel still open after Shutdown")
	}
}

func TestSignInQuirkTreatedAsUnauthenticated(t *testing.T) {
	up := newUpstreamCA(t)
	tests := []struct {
		name string
		h    http.HandlerFunc
	}{
		{"203", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusNonAuthoritativeInfo)
			io.WriteString(w, "<html>sign in</html>")
		}},
		{"302 to _signin", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "https://dev.azure.com/_signin?realm=dev.azure.com", http.StatusFound)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recorder{h: tc.h}
			srv := up.startUpstream(t, rec, "dev.azure.com")
			h := startProxy(t, up, harnessOpts{resolve: []string{"dev.azure.com:443:127.0.0.1:" + portOf(t, srv)}})
			resp, err := h.client(h.roots).Get("https://dev.azure.com/contoso/_apis/connectionData")
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(b), "rejected") {
				t.Errorf("GET = %d %q; want 403 saying the credential was rejected", resp.StatusCode, b)
			}
			if n := len(rec.requests()); n != 2 {
				t.Errorf("upstream saw %d requests; want 2 (one retry with a fresh token)", n)
			}
		})
	}
}

func TestTunnelDialFailure(t *testing.T) {
	up := newUpstreamCA(t)
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	deadAddr := l.Addr().String()
	l.Close()
	const dead = "dead.example:443"
	h := startProxy(t, up, harnessOpts{resolve: []string{dead + ":" + deadAddr}})
	c, err := net.Dial("tcp", h.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", dead, dead)
	resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: "CONNECT"})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(string(b), "cannot reach "+dead) {
		t.Errorf("CONNECT to a closed port = %d %q; want 502 naming the target", resp.StatusCode, b)
	}
}
