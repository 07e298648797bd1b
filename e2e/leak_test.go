package e2e

import (
	"crypto/tls"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/azdo-sidecar/azdo-sidecar/e2e/azdoemu"
	"github.com/azdo-sidecar/azdo-sidecar/e2e/internal/testca"
	"github.com/azdo-sidecar/azdo-sidecar/e2e/recorder"
	"github.com/azdo-sidecar/azdo-sidecar/e2e/testenv"
	"github.com/azdo-sidecar/azdo-sidecar/secret"
)

// The leak suite: wherever git is sent through the sidecar, a credential
// reaches only the Azure DevOps host it belongs to, over TLS.

// startRecorder starts the recorder standing for every other host, with
// extra certificate names.
func startRecorder(t *testing.T, names ...string) *recorder.Server {
	t.Helper()
	rec, err := recorder.New(recorder.Config{Names: names})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rec.Close() })
	return rec
}

// assertRecorderClean fails if the recorder saw an Authorization header or
// the secret anywhere.
func assertRecorderClean(t *testing.T, rec *recorder.Server, s secret.String) {
	t.Helper()
	if len(rec.Requests()) == 0 {
		t.Fatalf("the recorder saw no request: the test did not exercise the path")
	}
	for _, r := range rec.Requests() {
		if a := r.Header.Get("Authorization"); a != "" {
			t.Errorf("recorder request %s %s (Host %s) carried Authorization", r.Method, r.URI, r.Host)
		}
	}
	if rec.Contains(s.Reveal()) {
		t.Errorf("the recorder saw the credential")
	}
}

func TestLeakBlindTunnelsCarryNoCredential(t *testing.T) {
	tests := []struct {
		name string
		host string
	}{
		{"other host", "github.com"},
		{"lookalike suffix", "dev.azure.com.evil.test"},
		{"lookalike subdomain", "test.dev.azure.com"},
		{"lookalike prefix", "evil-dev.azure.com"},
		{"two labels before visualstudio.com", "a.contoso.visualstudio.com"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := startRecorder(t, tc.host)
			pat := azdoemu.NewPAT()
			sc := startSidecar(t, []string{"AZDO_PAT=" + pat.Reveal()}, "--resolve", tc.host+":443:"+rec.Addr())
			g := testenv.NewGit(t)
			g.Unsetenv("GIT_SSL_CAINFO")
			// Everything through the proxy, trusting only the recorder's
			// CA: git succeeds in TLS only if the tunnel is blind.
			g.SetConfig(t, "http.proxy", sc.proxyURL(t))
			g.SetConfig(t, "http.sslCAInfo", rec.CAFile())
			out, _ := g.RunErr("ls-remote", "https://"+tc.host+"/contoso/Web/_git/site")
			if strings.Contains(out, "certificate") {
				t.Errorf("git saw a certificate problem (intercepted?):\n%s", out)
			}
			assertRecorderClean(t, rec, pat)
			assertNoLeak(t, sc, nil, pat)
		})
	}
}

func TestLeakPlainHTTPRefused(t *testing.T) {
	w := newProxyWorld(t)
	w.git.SetConfig(t, "http.http://dev.azure.com/.proxy", w.sc.proxyURL(t))
	w.emu.ResetRequests()
	out, err := w.git.RunErr("ls-remote", "http://dev.azure.com/contoso/Web/_git/site")
	if err == nil || !strings.Contains(out, "remote: azdo-sidecar: refusing plain http to Azure DevOps host dev.azure.com") {
		t.Errorf("ls-remote over plain http = %v\n%s; want a refusal naming https", err, out)
	}
	if n := len(w.emu.Requests()); n != 0 {
		t.Errorf("emulator saw %d requests; want 0", n)
	}
	assertNoLeak(t, w.sc, w.emu, w.pat)
}

// TestLeakRedirectToOtherHost: an Azure DevOps host (here a stand-in)
// redirects git's first request to another host, which git follows through
// the proxy. The other host must see no credential.
func TestLeakRedirectToOtherHost(t *testing.T) {
	rec := startRecorder(t)
	ca, err := testca.New("redirector CA", []string{"dev.azure.com"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, ca.PEM, 0o644); err != nil {
		t.Fatal(err)
	}
	var sawAuth atomic.Bool
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			sawAuth.Store(r.Header.Get("Authorization") != "")
			http.Redirect(w, r, "https://github.com/contoso/site.git"+strings.TrimPrefix(r.URL.RequestURI(), "/contoso/Web/_git/site"), http.StatusFound)
		}),
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{ca.Leaf}},
	}
	go srv.ServeTLS(ln, "", "")
	t.Cleanup(func() { srv.Close() })

	pat := azdoemu.NewPAT()
	sc := startSidecar(t, []string{"AZDO_PAT=" + pat.Reveal()},
		"--resolve", "dev.azure.com:443:"+ln.Addr().String(), "--upstream-ca-file", caFile,
		"--resolve", "github.com:443:"+rec.Addr())
	g := testenv.NewGit(t)
	g.Unsetenv("GIT_SSL_CAINFO")
	bundle := filepath.Join(t.TempDir(), "bundle.pem")
	caPEM, _ := os.ReadFile(sc.CAFile)
	if err := os.WriteFile(bundle, append(caPEM, rec.CAPEM()...), 0o644); err != nil {
		t.Fatal(err)
	}
	g.SetConfig(t, "http.proxy", sc.proxyURL(t))
	g.SetConfig(t, "http.sslCAInfo", bundle)
	out, _ := g.RunErr("ls-remote", repoURL)
	if !sawAuth.Load() {
		t.Fatalf("the Azure DevOps stand-in got no credential (the proxy did not inject); git:\n%s", out)
	}
	assertRecorderClean(t, rec, pat)
	assertNoLeak(t, sc, nil, pat)
}

// assertNoSecretInEnvironment fails if a secret is in a file under one of
// roots, in one of the environment variables env, or in the environment of
// one of the processes pids (/proc/PID/environ): in a proxy-only
// environment the token must live only in the sidecar's memory.
func assertNoSecretInEnvironment(t *testing.T, roots, env []string, pids []int, secrets ...string) {
	t.Helper()
	files := 0
	for _, root := range roots {
		_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil || !d.Type().IsRegular() {
				return nil
			}
			files++
			b, _ := os.ReadFile(p)
			for _, s := range secrets {
				if strings.Contains(string(b), s) {
					t.Errorf("%s holds a secret", p)
				}
			}
			return nil
		})
	}
	if files == 0 {
		t.Fatalf("no file under %v: the check read nothing", roots)
	}
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
		if err != nil {
			t.Fatalf("reading the environment of process %d: %v", pid, err)
		}
		env = append(env, strings.Split(string(b), "\x00")...)
	}
	for _, kv := range env {
		for _, s := range secrets {
			if strings.Contains(kv, s) {
				k, _, _ := strings.Cut(kv, "=")
				t.Errorf("environment variable %s holds a secret", k)
			}
		}
	}
}
