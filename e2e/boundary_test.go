package e2e

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/azdo-sidecar/azdo-sidecar/e2e/azdoemu"
	"github.com/azdo-sidecar/azdo-sidecar/e2e/testenv"
	"github.com/azdo-sidecar/azdo-sidecar/secret"
)

// otherUID is the uid the trust-boundary tests drop to: another local user
// (or a container of the pod running as another uid).
const otherUID = 65534

// asOtherUser returns cmd's arguments run as otherUID through setpriv,
// failing the test when that is impossible (tests run as root in CI).
func asOtherUser(t *testing.T, name string, args ...string) *exec.Cmd {
	t.Helper()
	if os.Getuid() != 0 {
		t.Skip("dropping to another uid needs root (tests run as root in CI)")
	}
	cmd := exec.Command(name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: otherUID, Gid: otherUID}}
	home, err := os.MkdirTemp("", "other-user-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(home) })
	os.Chown(home, otherUID, otherUID)
	cmd.Dir = home
	cmd.Env = append(scBaseEnv(), "HOME="+home, "GIT_CONFIG_NOSYSTEM=1", "GIT_TERMINAL_PROMPT=0", "LC_ALL=C")
	return cmd
}

// curlConnect runs curl through the proxy and returns the CONNECT
// response's status code and the final HTTP status ("000" when none).
func curlConnect(t *testing.T, cmd *exec.Cmd) (connect, final, out string) {
	t.Helper()
	b, _ := cmd.CombinedOutput()
	out = string(b)
	f := strings.Fields(out)
	if len(f) < 2 {
		t.Fatalf("curl output %q", out)
	}
	return f[len(f)-2], f[len(f)-1], out
}

func curlArgs(proxy, caFile, url string) []string {
	args := []string{"-sS", "-o", "/dev/null", "-w", "\n%{http_connect} %{http_code}", "-x", proxy}
	if caFile == "" {
		args = append(args, "-k")
	} else {
		args = append(args, "--cacert", caFile)
	}
	return append(args, url)
}

// TestBoundaryProxyAuth: the owner's client without the proxy credential
// gets 407; with it, the request goes through with the PAT. Another uid
// is refused even with the credential, by curl and by git, and Azure
// DevOps sees nothing of it.
func TestBoundaryProxyAuth(t *testing.T) {
	w := newProxyWorld(t)
	url := "https://dev.azure.com/contoso/Web/_git/site/info/refs?service=git-upload-pack"
	full := w.sc.proxyURL(t)

	connect, final, out := curlConnect(t, exec.Command("curl", curlArgs("http://"+w.sc.Proxy, w.sc.CAFile, url)...))
	if connect != "407" || final != "000" {
		t.Errorf("curl without the proxy credential: CONNECT %s, HTTP %s; want 407\n%s", connect, final, out)
	}
	connect, final, out = curlConnect(t, exec.Command("curl", curlArgs(full, w.sc.CAFile, url)...))
	if connect != "200" || final != "200" {
		t.Fatalf("curl with the proxy credential: CONNECT %s, HTTP %s; want 200 200\n%s", connect, final, out)
	}
	w.emu.ResetRequests()

	connect, final, out = curlConnect(t, asOtherUser(t, "curl", curlArgs(full, "", url)...))
	if connect != "407" || final != "000" {
		t.Errorf("curl as uid %d with the credential: CONNECT %s, HTTP %s; want 407\n%s", otherUID, connect, final, out)
	}
	git := asOtherUser(t, "git", "-c", "http.proxy="+full, "-c", "http.sslVerify=false", "ls-remote", repoURL)
	if b, err := git.CombinedOutput(); err == nil || !strings.Contains(string(b), "407") {
		t.Errorf("git ls-remote as uid %d = %v; want a 407 failure\n%s", otherUID, err, b)
	}
	if n := len(w.emu.Requests()); n != 0 {
		t.Errorf("the emulator saw %d requests from uid %d; want 0", n, otherUID)
	}
	if !strings.Contains(w.sc.stderr.String(), "refused a client of another user") {
		t.Errorf("the sidecar did not log the refused uid")
	}
	if strings.Contains(w.sc.stderr.String(), proxySecret(t, full).Reveal()) {
		t.Errorf("the sidecar's log contains the proxy credential")
	}
	assertNoLeak(t, w.sc, w.emu, w.pat)
}

// TestBoundaryInsecureNoProxyAuth: with --insecure-no-proxy-auth the owner's
// client needs no credential (a WARN says so), and another uid is still
// refused.
func TestBoundaryInsecureNoProxyAuth(t *testing.T) {
	w := newProxyWorld(t, "--insecure-no-proxy-auth")
	url := "https://dev.azure.com/contoso/Web/_git/site/info/refs?service=git-upload-pack"
	if !strings.Contains(w.sc.stderr.String(), "insecure-no-proxy-auth") {
		t.Errorf("no startup WARN about --insecure-no-proxy-auth:\n%s", w.sc.stderr)
	}
	connect, final, out := curlConnect(t, exec.Command("curl", curlArgs("http://"+w.sc.Proxy, w.sc.CAFile, url)...))
	if connect != "200" || final != "200" {
		t.Errorf("curl without the credential: CONNECT %s, HTTP %s; want 200 200\n%s", connect, final, out)
	}
	connect, _, out = curlConnect(t, asOtherUser(t, "curl", curlArgs("http://"+w.sc.Proxy, "", url)...))
	if connect != "407" {
		t.Errorf("curl as uid %d: CONNECT %s; want 407\n%s", otherUID, connect, out)
	}
}

// proxySecret is the password of a proxy URL.
func proxySecret(t *testing.T, full string) secret.String {
	t.Helper()
	userinfo, _, ok := strings.Cut(strings.TrimPrefix(full, "http://"), "@")
	_, pass, ok2 := strings.Cut(userinfo, ":")
	if !ok || !ok2 || pass == "" {
		t.Fatalf("proxy URL without a password")
	}
	return secret.New(pass)
}

// TestBoundaryMethodsAndReflection: TRACE never reaches Azure DevOps, and
// a server on an Azure DevOps host that echoes the request (the
// emulator's echo endpoint) never hands the injected PAT to the client:
// in a header the answer is refused (502), in the body it is replaced.
func TestBoundaryMethodsAndReflection(t *testing.T) {
	emu := testenv.StartAzDO(t, azdoemu.Config{EchoHeaders: true})
	pat := azdoemu.NewPAT()
	if err := emu.AddPAT(azdoemu.PAT{Token: pat, Org: "contoso"}); err != nil {
		t.Fatal(err)
	}
	sc := startSidecar(t, []string{"AZDO_PAT=" + pat.Reveal()},
		"--resolve", testenv.ResolveFlag("dev.azure.com", emu), "--upstream-ca-file", emu.CAFile())
	full := sc.proxyURL(t)
	b64 := base64.StdEncoding.EncodeToString([]byte(":" + pat.Reveal()))[4:20]
	curl := func(args ...string) (code, body string) {
		t.Helper()
		out, _ := exec.Command("curl", append([]string{"-sS", "-x", full, "--cacert", sc.CAFile, "-D", "-", "-w", "\n%{http_code}"}, args...)...).CombinedOutput()
		s := string(out)
		i := strings.LastIndex(s, "\n")
		if strings.Contains(s, pat.Reveal()) || strings.Contains(s, b64) {
			t.Errorf("curl %v got the PAT back:\n%s", args, s)
		}
		return s[i+1:], s[:i]
	}
	echo := "https://dev.azure.com" + azdoemu.EchoPath

	emu.ResetRequests()
	for _, m := range []string{"TRACE", "TRACK", "PROPFIND"} {
		if code, body := curl("-X", m, echo); code != "405" {
			t.Errorf("%s = %s; want 405\n%s", m, code, body)
		}
	}
	if n := len(emu.Requests()); n != 0 {
		t.Errorf("the emulator saw %d requests for refused methods; want 0", n)
	}
	for _, m := range []string{"GET", "DELETE", "OPTIONS", "PATCH"} {
		code, body := curl("-X", m, echo)
		if code != "200" || !strings.Contains(body, "Authorization: ****") {
			t.Errorf("%s echo = %s; want 200 with the credential replaced\n%s", m, code, body)
		}
	}
	if code, body := curl(echo + "?in=header"); code != "502" {
		t.Errorf("header echo = %s; want 502\n%s", code, body)
	}
	if n := len(emu.Requests()); n != 5 {
		t.Errorf("the emulator saw %d requests; want 5 (the echoes)", n)
	}
	logs := sc.stderr.String()
	for _, want := range []string{"carries the injected credential in a header", "body carries the injected credential"} {
		if !strings.Contains(logs, want) {
			t.Errorf("no WARN %q in the sidecar's log", want)
		}
	}
	assertNoLeak(t, sc, nil, pat)
}

// TestBoundaryNotAnOpenProxy: blind tunnels only to 443 and --tunnel-port
// ports; plain http only to --plain-http-host hosts.
func TestBoundaryNotAnOpenProxy(t *testing.T) {
	rec := startRecorder(t, "example.com")
	plain := httptestServer(t)
	_, plainPort, _ := net.SplitHostPort(plain)
	sc := startSidecar(t, []string{"AZDO_PAT=" + azdoemu.NewPAT().Reveal()},
		"--resolve", "example.com:443:"+rec.Addr(), "--resolve", "example.com:2222:"+rec.Addr(), "--resolve", "example.com:22:"+rec.Addr(),
		"--resolve", "listed.example:"+plainPort+":"+plain,
		"--tunnel-port", "2222", "--plain-http-host", "listed.example:"+plainPort)
	full := sc.proxyURL(t)
	for _, tt := range []struct {
		url, connect, code string
	}{
		{"https://example.com/x", "200", "*"},
		{"https://example.com:2222/x", "200", "*"},
		{"https://example.com:22/x", "403", "000"},
		{"http://listed.example:" + plainPort + "/x", "000", "200"},
		{"http://example.com/x", "000", "403"},
		{"http://127.0.0.1:" + plainPort + "/x", "000", "403"},
	} {
		connect, code, out := curlConnect(t, exec.Command("curl", curlArgs(full, rec.CAFile(), tt.url)...))
		if connect != tt.connect || (tt.code != "*" && code != tt.code) {
			t.Errorf("curl %s: CONNECT %s, HTTP %s; want %s, %s\n%s", tt.url, connect, code, tt.connect, tt.code, out)
		}
	}
}

// httptestServer is a plain-http server answering 200, on loopback.
func httptestServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "plain\n") })}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// TestBoundarySquattedSocketDir: another user created the socket's
// directory in /tmp first (the contract's old default was
// /tmp/azdo-sidecar-<uid>/sock; the test uses that shape with a random
// suffix so that nothing else on the machine is disturbed) and listens
// there. serve refuses the path and says why; setup gives git's cache
// client (which would not check) no line for it; our helper refuses the
// directory: the squatter gets no request.
func TestBoundarySquattedSocketDir(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("creating a directory as another uid needs root (tests run as root in CI)")
	}
	dir := fmt.Sprintf("/tmp/azdo-sidecar-%d-%s", os.Getuid(), strings.ToLower(rand.Text()[:8]))
	if err := os.Mkdir(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o777)
	if err := os.Chown(dir, otherUID, otherUID); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	os.Chown(sock, otherUID, otherUID)
	var accepted atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			c.Close()
		}
	}()

	bin := testenv.Binary(t, "azdo-sidecar")
	testenv.Binary(t, "git-credential-azdo")
	serve := exec.Command(bin, "serve", "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0",
		"--socket", sock, "--state-dir", filepath.Join(t.TempDir(), "state"))
	serve.Env = append(scBaseEnv(), "AZDO_PAT=squat-test-pat-0123456789")
	done := make(chan []byte, 1)
	go func() { b, _ := serve.CombinedOutput(); done <- b }()
	select {
	case out := <-done:
		if serve.ProcessState.Success() || !strings.Contains(string(out), fmt.Sprintf("owned by uid %d", otherUID)) || !strings.Contains(string(out), "someone else created it") {
			t.Errorf("serve with a squatted socket dir: %v\n%s\nwant a refusal naming the owner", serve.ProcessState, out)
		}
	case <-time.After(20 * time.Second):
		serve.Process.Kill()
		t.Fatal("serve with a squatted socket dir kept running")
	}

	g := testenv.NewGit(t)
	out, errOut, err := runSidecar(t, g, bin, "setup", "--mode", "helper", "--socket", sock)
	if err != nil {
		t.Fatalf("setup: %v\n%s%s", err, out, errOut)
	}
	helpers, _ := g.RunErr("config", "--global", "--get-all", "credential.https://dev.azure.com.helper")
	if strings.Contains(helpers, "cache") || !strings.Contains(helpers, "git-credential-azdo --socket "+sock) {
		t.Errorf("helpers = %q; want git-credential-azdo only, no cache line", helpers)
	}
	if !strings.Contains(errOut, "not using git's credential-cache client") {
		t.Errorf("setup did not say why it left git's cache client out:\n%s", errOut)
	}
	_, fillErr, err := credentialFill(g, "https://dev.azure.com/contoso/Web/_git/site")
	if err == nil || !strings.Contains(fillErr, "insecure socket directory") {
		t.Errorf("git credential fill = %v\n%s\nwant the helper to refuse the directory", err, fillErr)
	}
	if n := accepted.Load(); n != 0 {
		t.Errorf("the squatter's socket got %d connections; want 0", n)
	}
	// The test can fail: git's own cache client does connect there.
	g.Command("git", "credential-cache", "--socket="+sock, "exit").Run()
	if accepted.Load() == 0 {
		t.Errorf("git credential-cache did not reach the squatter's socket; the test proves nothing")
	}
}

// TestBoundaryStateFiles: a second serve that cannot bind leaves the first
// one's ca.pem and proxy URL alone; one that does start on the same state
// dir replaces ca.pem, and status says the file is no longer the running
// sidecar's CA. A PAT file others can read is refused.
func TestBoundaryStateFiles(t *testing.T) {
	bin := testenv.Binary(t, "azdo-sidecar")
	pat := azdoemu.NewPAT()
	sc := startSidecar(t, []string{"AZDO_PAT=" + pat.Reveal()})
	state := filepath.Dir(sc.CAFile)
	caBefore, _ := os.ReadFile(sc.CAFile)
	urlBefore, _ := os.ReadFile(sc.ProxyURLFile)
	if fi, err := os.Stat(sc.ProxyURLFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("proxy_url_file %s: %v, mode %v; want 0600", sc.ProxyURLFile, err, fi.Mode())
	}

	run := func(env []string, args ...string) (string, error) {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Env = append(scBaseEnv(), env...)
		cmd.WaitDelay = 5 * time.Second
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := run([]string{"AZDO_PAT=" + pat.Reveal()}, "serve", "--listen", sc.Proxy, "--metrics-listen", "127.0.0.1:0",
		"--socket", filepath.Join(testenv.PrivateDir(t), "sock"), "--state-dir", state)
	if err == nil || !strings.Contains(out, "address already in use") {
		t.Fatalf("second serve on a taken port: %v\n%s\nwant a failure", err, out)
	}
	if b, _ := os.ReadFile(sc.CAFile); !bytes.Equal(b, caBefore) {
		t.Errorf("the failed serve rewrote ca.pem")
	}
	if b, _ := os.ReadFile(sc.ProxyURLFile); !bytes.Equal(b, urlBefore) {
		t.Errorf("the failed serve rewrote the proxy URL file")
	}
	status := func() string {
		t.Helper()
		out, err := run(nil, "status", "--socket", sc.Socket)
		if err != nil {
			t.Fatalf("status: %v\n%s", err, out)
		}
		return out
	}
	if s := status(); strings.Contains(s, "MISMATCH") || !strings.Contains(s, sc.ProxyURLFile) {
		t.Errorf("status with the right ca.pem:\n%s\nwant no MISMATCH and the proxy url file", s)
	}

	// Another sidecar that does start there rewrites ca.pem.
	other := startSidecar(t, []string{"AZDO_PAT=" + pat.Reveal()})
	otherCA, _ := os.ReadFile(other.CAFile)
	if err := os.WriteFile(sc.CAFile, otherCA, 0o644); err != nil {
		t.Fatal(err)
	}
	if s := status(); !strings.Contains(s, "MISMATCH") || !strings.Contains(s, "not this sidecar's CA") {
		t.Errorf("status after ca.pem was replaced:\n%s\nwant a MISMATCH line", s)
	}

	// Secret files others can read.
	patFile := filepath.Join(t.TempDir(), "pat")
	os.WriteFile(patFile, []byte(pat.Reveal()+"\n"), 0o644)
	os.Chmod(patFile, 0o644)
	out, err = run(nil, "serve", "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0",
		"--socket", filepath.Join(testenv.PrivateDir(t), "sock"), "--state-dir", filepath.Join(t.TempDir(), "state"), "--pat-file", patFile)
	if err == nil || !strings.Contains(out, "chmod 600 "+patFile) {
		t.Errorf("serve with a 0644 PAT file: %v\n%s\nwant a refusal saying chmod 600 %s", err, out, patFile)
	}
	if strings.Contains(out, pat.Reveal()) {
		t.Errorf("the refusal shows the PAT")
	}
}

// TestBoundaryStatusEndpointOwnerOnly: /metrics stays open to a scraper of
// any uid; /status (organizations, token kinds, expiry) answers the owner
// only.
func TestBoundaryStatusEndpointOwnerOnly(t *testing.T) {
	sc := startSidecar(t, []string{"AZDO_PAT=" + azdoemu.NewPAT().Reveal()})
	code := func(cmd *exec.Cmd) string {
		t.Helper()
		out, _ := cmd.CombinedOutput()
		return strings.TrimSpace(string(out))
	}
	curl := func(path string) []string {
		return []string{"-sS", "-o", "/dev/null", "-w", "%{http_code}", "http://" + sc.Metrics + path}
	}
	if got := code(exec.Command("curl", curl("/status")...)); got != "200" {
		t.Errorf("owner GET /status = %s; want 200", got)
	}
	if got := code(asOtherUser(t, "curl", curl("/status")...)); got != "403" {
		t.Errorf("uid %d GET /status = %s; want 403", otherUID, got)
	}
	if got := code(asOtherUser(t, "curl", curl("/metrics")...)); got != "200" {
		t.Errorf("uid %d GET /metrics = %s; want 200 (scrapers)", otherUID, got)
	}
}
