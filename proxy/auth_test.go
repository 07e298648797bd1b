package proxy

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/azdo-sidecar/azdo-sidecar/secret"
)

const testProxyPass = "proxy-pass-0123456789abcdef"

func testAuth(uid func(local, remote net.Addr) (int, bool)) *Auth {
	return &Auth{User: "azdo-sidecar", Password: secret.New(testProxyPass), PeerUID: uid, UID: 1000}
}

func sameUID(net.Addr, net.Addr) (int, bool) { return 1000, true }

func basicProxyAuth(user, pass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}

// rawProxyRequest sends one request line to the proxy with the given
// Proxy-Authorization (none when empty) and returns the response.
func rawProxyRequest(t *testing.T, addr, method, target, proxyAuth string) (*http.Response, string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	host := target
	if u, err := url.Parse(target); err == nil && u.Host != "" {
		host = u.Host
	}
	fmt.Fprintf(c, "%s %s HTTP/1.1\r\nHost: %s\r\n", method, target, host)
	if proxyAuth != "" {
		fmt.Fprintf(c, "Proxy-Authorization: %s\r\n", proxyAuth)
	}
	fmt.Fprintf(c, "\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: method})
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	var body []byte
	if resp.StatusCode != http.StatusOK || method != http.MethodConnect {
		body, _ = io.ReadAll(io.LimitReader(resp.Body, 4096))
	}
	resp.Body.Close()
	return resp, string(body)
}

func TestProxyAuthRequired(t *testing.T) {
	up := newUpstreamCA(t)
	rec := &recorder{}
	srv := up.startUpstream(t, rec, "dev.azure.com")
	plain := startPlain(t, rec)
	tests := []struct {
		name   string
		header string
		want   int
	}{
		{"none", "", http.StatusProxyAuthRequired},
		{"wrong password", basicProxyAuth("azdo-sidecar", "nope"), http.StatusProxyAuthRequired},
		{"wrong user", basicProxyAuth("someone", testProxyPass), http.StatusProxyAuthRequired},
		{"password prefix", basicProxyAuth("azdo-sidecar", testProxyPass[:10]), http.StatusProxyAuthRequired},
		{"bearer", "Bearer " + testProxyPass, http.StatusProxyAuthRequired},
		{"not base64", "Basic %%%", http.StatusProxyAuthRequired},
		{"right", basicProxyAuth("azdo-sidecar", testProxyPass), http.StatusOK},
		{"scheme case", "basic " + base64.StdEncoding.EncodeToString([]byte("azdo-sidecar:"+testProxyPass)), http.StatusOK},
	}
	h := startProxy(t, up, harnessOpts{
		resolve:    []string{"dev.azure.com:443:127.0.0.1:" + portOf(t, srv), "example.com:443:127.0.0.1:" + portOf(t, srv)},
		auth:       testAuth(sameUID),
		plainHosts: []string{strings.TrimPrefix(plain, "http://")},
	})
	for _, tt := range tests {
		for _, r := range []struct{ method, target string }{
			{"CONNECT", "dev.azure.com:443"},
			{"CONNECT", "example.com:443"},
			{"GET", plain + "/x"},
		} {
			t.Run(tt.name+" "+r.method+" "+r.target, func(t *testing.T) {
				before := len(rec.requests())
				resp, body := rawProxyRequest(t, h.addr, r.method, r.target, tt.header)
				if resp.StatusCode != tt.want {
					t.Fatalf("%s %s with %q = %d %q; want %d", r.method, r.target, tt.header, resp.StatusCode, body, tt.want)
				}
				if tt.want != http.StatusProxyAuthRequired {
					return
				}
				if got := resp.Header.Get("Proxy-Authenticate"); got != `Basic realm="azdo-sidecar"` {
					t.Errorf("Proxy-Authenticate = %q; want Basic realm=\"azdo-sidecar\"", got)
				}
				if !strings.Contains(body, "proxy_url_file") || strings.Count(strings.TrimSpace(body), "\n") != 0 {
					t.Errorf("407 body = %q; want one line naming proxy_url_file", body)
				}
				if strings.Contains(body, testProxyPass) || strings.Contains(h.logs.String(), testProxyPass) {
					t.Errorf("the proxy credential appears in the answer or the log")
				}
				if n := len(rec.requests()); n != before {
					t.Errorf("upstream saw %d new requests; want none", n-before)
				}
			})
		}
	}
	if n := h.tokens.count(); n != 0 {
		t.Errorf("token fetches = %d; want 0 (nothing was intercepted)", n)
	}
}

// TestProxyAuthWithClient: Go's client with the credential in the proxy
// URL (as git and curl take it) is served inside an intercepted tunnel,
// and the proxy credential does not travel upstream.
func TestProxyAuthWithClient(t *testing.T) {
	up := newUpstreamCA(t)
	rec := &recorder{}
	srv := up.startUpstream(t, rec, "dev.azure.com")
	h := startProxy(t, up, harnessOpts{
		resolve: []string{"dev.azure.com:443:127.0.0.1:" + portOf(t, srv)},
		auth:    testAuth(sameUID),
	})
	c := h.client(h.roots)
	c.Transport.(*http.Transport).Proxy = http.ProxyURL(&url.URL{Scheme: "http", Host: h.addr, User: url.UserPassword("azdo-sidecar", testProxyPass)})
	resp, err := c.Get("https://dev.azure.com/contoso/p/_git/r/info/refs?service=git-upload-pack")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d; want 200", resp.StatusCode)
	}
	for _, r := range rec.requests() {
		if r.Header.Get("Proxy-Authorization") != "" || r.Header.Get("Authorization") != wantBasic {
			t.Errorf("upstream got Proxy-Authorization %q, Authorization %q", r.Header.Get("Proxy-Authorization"), r.Header.Get("Authorization"))
		}
	}
}

func TestProxyAuthRefusesOtherUID(t *testing.T) {
	up := newUpstreamCA(t)
	var lookups int
	other := func(local, remote net.Addr) (int, bool) {
		lookups++
		if local.String() == remote.String() {
			t.Errorf("PeerUID got local == remote %s", local)
		}
		return 65534, true
	}
	unknown := func(net.Addr, net.Addr) (int, bool) { return 0, false }
	for _, tt := range []struct {
		name string
		auth *Auth
		want int
	}{
		{"other uid with the credential", testAuth(other), http.StatusProxyAuthRequired},
		{"other uid without proxy auth", &Auth{PeerUID: other, UID: 1000}, http.StatusProxyAuthRequired},
		{"unknown uid with the credential", testAuth(unknown), http.StatusOK},
		{"same uid without proxy auth", &Auth{PeerUID: sameUID, UID: 1000}, http.StatusOK},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := startProxy(t, up, harnessOpts{auth: tt.auth})
			resp, body := rawProxyRequest(t, h.addr, "CONNECT", "example.invalid:443", basicProxyAuth("azdo-sidecar", testProxyPass))
			if tt.want == http.StatusOK {
				// The tunnel is authorized; its dial fails (502), which is not a refusal.
				if resp.StatusCode == http.StatusProxyAuthRequired {
					t.Fatalf("CONNECT = 407 %q; want it past the checks", body)
				}
				return
			}
			if resp.StatusCode != tt.want || !strings.Contains(body, "uid 65534") {
				t.Fatalf("CONNECT = %d %q; want %d naming uid 65534", resp.StatusCode, body, tt.want)
			}
			if !strings.Contains(h.logs.String(), `"client_uid":65534`) {
				t.Errorf("no WARN with the client's uid in the log")
			}
		})
	}
	if lookups == 0 {
		t.Errorf("PeerUID never called")
	}
}

func TestPeerUIDOfLoopbackConnection(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("PeerUID reads /proc/net/tcp (Linux)")
	}
	for _, network := range []string{"127.0.0.1:0", "[::1]:0"} {
		t.Run(network, func(t *testing.T) {
			l, err := net.Listen("tcp", network)
			if err != nil {
				t.Skipf("no %s: %v", network, err)
			}
			defer l.Close()
			c, err := net.Dial("tcp", l.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			s, err := l.Accept()
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			uid, ok := PeerUID(s.LocalAddr(), s.RemoteAddr())
			if !ok || uid != os.Getuid() {
				t.Errorf("PeerUID = %d, %v; want %d, true", uid, ok, os.Getuid())
			}
			// The server's own end is a different socket.
			if _, ok := PeerUID(s.RemoteAddr(), s.LocalAddr()); !ok {
				t.Errorf("PeerUID of the server's end not found")
			}
			if _, ok := PeerUID(s.LocalAddr(), &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}); ok {
				t.Errorf("PeerUID found a connection that does not exist")
			}
		})
	}
}

func TestFindSocketUID(t *testing.T) {
	// Captured from a little-endian Linux; the table's addresses are in
	// host byte order, so this test is for little-endian machines.
	if runtime.GOARCH != "amd64" && runtime.GOARCH != "arm64" && runtime.GOARCH != "386" {
		t.Skip("fixture is little-endian")
	}
	tcp := `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:0C38 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 100 0 0 10 0
   1: 0100007F:D431 0100007F:0C38 01 00000000:00000000 00:00000000 00000000 65534        0 2 1 0000000000000000 20 4 30 10 -1
   2: 0100007F:0C38 0100007F:D431 01 00000000:00000000 00:00000000 00000000  1000        0 3 1 0000000000000000 20 4 30 10 -1
`
	tcp6 := `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000001000000:D432 00000000000000000000000001000000:0C38 01 00000000:00000000 00:00000000 00000000  1001        0 4 1
   1: 0000000000000000FFFF00000100007F:D433 0000000000000000FFFF00000100007F:0C38 01 00000000:00000000 00:00000000 00000000  1002        0 5 1
`
	proxyAddr := netip.MustParseAddrPort("127.0.0.1:3128")
	tests := []struct {
		name   string
		table  string
		client string
		server netip.AddrPort
		uid    int
		ok     bool
	}{
		{"v4 client", tcp, "127.0.0.1:54321", proxyAddr, 65534, true},
		{"v4 server end is not the client", tcp, "127.0.0.1:3128", netip.MustParseAddrPort("127.0.0.1:54321"), 1000, true},
		{"v4 unknown port", tcp, "127.0.0.1:54322", proxyAddr, 0, false},
		{"v6 loopback", tcp6, "[::1]:54322", netip.MustParseAddrPort("[::1]:3128"), 1001, true},
		{"v4-mapped", tcp6, "127.0.0.1:54323", proxyAddr, 1002, true},
		{"v4-mapped asked as mapped", tcp6, "[::ffff:127.0.0.1]:54323", netip.MustParseAddrPort("[::ffff:127.0.0.1]:3128"), 1002, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			uid, ok := findSocketUID(strings.NewReader(tt.table), netip.MustParseAddrPort(tt.client), tt.server)
			if uid != tt.uid || ok != tt.ok {
				t.Errorf("findSocketUID(%s -> %s) = %d, %v; want %d, %v", tt.client, tt.server, uid, ok, tt.uid, tt.ok)
			}
		})
	}
}

// TestProxyAuthClientUIDs: a uid listed in ClientUIDs passes the peer
// check, and still needs the credential; other uids stay refused.
func TestProxyAuthClientUIDs(t *testing.T) {
	up := newUpstreamCA(t)
	uid := 65534
	peer := func(net.Addr, net.Addr) (int, bool) { return uid, true }
	a := testAuth(peer)
	a.ClientUIDs = []int{65534}
	h := startProxy(t, up, harnessOpts{auth: a})
	if resp, body := rawProxyRequest(t, h.addr, "CONNECT", "example.invalid:443", basicProxyAuth("azdo-sidecar", testProxyPass)); resp.StatusCode == http.StatusProxyAuthRequired {
		t.Errorf("listed uid with the credential: CONNECT = 407 %q; want it past the checks", body)
	}
	if resp, _ := rawProxyRequest(t, h.addr, "CONNECT", "example.invalid:443", ""); resp.StatusCode != http.StatusProxyAuthRequired {
		t.Errorf("listed uid without the credential: CONNECT = %d; want 407", resp.StatusCode)
	}
	uid = 4242
	if resp, body := rawProxyRequest(t, h.addr, "CONNECT", "example.invalid:443", basicProxyAuth("azdo-sidecar", testProxyPass)); resp.StatusCode != http.StatusProxyAuthRequired || !strings.Contains(body, "--proxy-client-uid") {
		t.Errorf("unlisted uid: CONNECT = %d %q; want 407 naming --proxy-client-uid", resp.StatusCode, body)
	}
}
