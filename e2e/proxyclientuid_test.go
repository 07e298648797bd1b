package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/azdo-sidecar/azdo-sidecar/e2e/testenv"
)

// TestBoundaryProxyClientUID: the proxy-only deployment with the sidecar
// and the development user apart. A second uid, given only the proxy URL
// (with its credential) and the CA, is refused by a sidecar run without
// --proxy-client-uid, and served by one run with it: git ls-remote and
// curl through the proxy work, without the credential it is still 407,
// and the uid never sees a token.
func TestBoundaryProxyClientUID(t *testing.T) {
	url := "https://dev.azure.com/contoso/Web/_git/site/info/refs?service=git-upload-pack"
	// otherUserWithCA runs name as otherUID with a copy of the sidecar's CA
	// it can read (what the deployment hands the development user).
	otherUserWithCA := func(t *testing.T, w *proxyWorld, name string, args func(ca string) []string) *exec.Cmd {
		cmd := asOtherUser(t, name)
		ca := filepath.Join(cmd.Dir, "ca.pem")
		pem, err := os.ReadFile(w.sc.CAFile)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(ca, pem, 0o644); err != nil {
			t.Fatal(err)
		}
		cmd.Args = append(cmd.Args, args(ca)...)
		// The machine's GIT_SSL_CAINFO would override http.sslCAInfo.
		cmd.Env = append(cmd.Env, "GIT_SSL_CAINFO="+ca)
		return cmd
	}
	lsRemote := func(full string) func(string) []string {
		return func(ca string) []string {
			return []string{"-c", "http.proxy=" + full, "-c", "http.sslCAInfo=" + ca, "ls-remote", repoURL}
		}
	}

	t.Run("without the flag", func(t *testing.T) {
		w := newProxyWorld(t)
		full := w.sc.proxyURL(t)
		git := otherUserWithCA(t, w, "git", lsRemote(full))
		if b, err := git.CombinedOutput(); err == nil || !strings.Contains(string(b), "407") {
			t.Errorf("git ls-remote as uid %d without --proxy-client-uid = %v; want a 407 failure\n%s", otherUID, err, b)
		}
		if n := len(w.emu.Requests()); n != 0 {
			t.Errorf("the emulator saw %d requests from uid %d; want 0", n, otherUID)
		}
	})

	t.Run("with the flag", func(t *testing.T) {
		w := newProxyWorld(t, "--proxy-client-uid", "65534")
		full := w.sc.proxyURL(t)
		git := otherUserWithCA(t, w, "git", lsRemote(full))
		b, err := git.CombinedOutput()
		if err != nil || !strings.Contains(string(b), w.seed.Head) {
			t.Fatalf("git ls-remote as uid %d with --proxy-client-uid %d = %v; want HEAD %s\n%s", otherUID, otherUID, err, w.seed.Head, b)
		}
		connect, final, out := curlConnect(t, otherUserWithCA(t, w, "curl", func(ca string) []string { return curlArgs("http://"+w.sc.Proxy, ca, url) }))
		if connect != "407" || final != "000" {
			t.Errorf("curl as uid %d without the proxy credential: CONNECT %s, HTTP %s; want 407\n%s", otherUID, connect, final, out)
		}
		if strings.Contains(w.sc.stderr.String(), "refused a client of another user") {
			t.Errorf("the sidecar refused the listed uid:\n%s", w.sc.stderr)
		}
		assertNoLeak(t, w.sc, w.emu, w.pat)
	})

	t.Run("not with --insecure-no-proxy-auth", func(t *testing.T) {
		cmd := exec.Command(testenv.Binary(t, "azdo-sidecar"), "serve", "--proxy-client-uid", "65534", "--insecure-no-proxy-auth", "--listen", "127.0.0.1:0", "--state-dir", t.TempDir())
		cmd.Env = scBaseEnv()
		b, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(b), "--insecure-no-proxy-auth") {
			t.Errorf("serve --proxy-client-uid --insecure-no-proxy-auth = %v; want a refusal\n%s", err, b)
		}
	})
}
