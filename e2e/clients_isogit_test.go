package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// isogitDir holds the isomorphic-git client: its package.json and
// package-lock.json pin isomorphic-git and https-proxy-agent; .ci/run runs
// npm ci there (node_modules is not committed).
const isogitDir = "clients/isogit"

// needIsogit returns the absolute path of the isomorphic-git script. Without
// node or an npm ci'd node_modules the test skips, except under CI, whose
// .ci/run runs npm ci.
func needIsogit(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(isogitDir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err = exec.LookPath("node"); err == nil {
		_, err = os.Stat(filepath.Join(dir, "node_modules", "isomorphic-git"))
	}
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("isomorphic-git: %v (.ci/run runs npm ci in e2e/%s)", err, isogitDir)
		}
		t.Skipf("isomorphic-git: %v (run npm ci in e2e/%s)", err, isogitDir)
	}
	return filepath.Join(dir, "clone-and-push.mjs")
}

// TestClientIsomorphicGitCloneAndPush: isomorphic-git (Node) clones and
// pushes through the sidecar with an HttpsProxyAgent built from the proxy
// URL (credential included) and the CA in NODE_EXTRA_CA_CERTS; it sends no
// User-Agent, and Azure DevOps sees none.
func TestClientIsomorphicGitCloneAndPush(t *testing.T) {
	script := needIsogit(t)
	w := newProxyWorld(t)
	dir := filepath.Join(t.TempDir(), "site")
	cmd := clientCommand(t, w, "node", script, w.sc.ProxyURLFile, repoURL, dir)
	cmd.Env = append(cmd.Env, "NODE_EXTRA_CA_CERTS="+w.sc.CAFile)
	stdout, out, err := runClientScript(cmd)
	if err != nil {
		t.Fatalf("isomorphic-git through the sidecar: %v\n%s\nsidecar:\n%s", err, out, w.sc.stderr)
	}
	checkCloneAndPush(t, w, "isomorphic-git", stdout, out)
	for _, r := range w.emu.Requests() {
		if ua, ok := r.Header["User-Agent"]; ok {
			t.Errorf("request %s %s reached Azure DevOps with User-Agent %q; isomorphic-git sends none", r.Method, r.Path, ua)
		}
	}
}
