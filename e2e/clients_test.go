package e2e

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/azdo-sidecar/azdo-sidecar/e2e/azdoemu"
)

// pygit2Script clones (init + fetch + checkout: pygit2 1.11's
// clone_repository takes no proxy), commits and pushes with libgit2
// through the proxy given as argv[1], trusting the CA file argv[2] only.
// Debian's libgit2 is built on mbedTLS, which refuses a CA whose
// name-constraints extension is critical.
const pygit2Script = `
import sys, pygit2
proxy, cafile, url, path = sys.argv[1:5]
pygit2.settings.set_ssl_cert_locations(cafile, None)
repo = pygit2.init_repository(path)
remote = repo.remotes.create("origin", url)
remote.fetch(proxy=proxy)
head = repo.references["refs/remotes/origin/main"].target
repo.create_reference("refs/heads/main", head, force=True)
repo.set_head("refs/heads/main")
repo.checkout_head(strategy=pygit2.GIT_CHECKOUT_FORCE)
print("cloned", head)
with open(path + "/pygit2.txt", "w") as f:
    f.write("written by libgit2\n")
repo.index.add("pygit2.txt")
repo.index.write()
sig = pygit2.Signature("libgit2", "libgit2@example.test")
new = repo.create_commit("refs/heads/main", sig, sig, "from pygit2", repo.index.write_tree(), [head])
# A fresh remote object: the one that fetched keeps pointers to pygit2
# callbacks freed after the fetch, which libgit2 1.5 calls again in push.
repo.remotes["origin"].push(["refs/heads/main:refs/heads/main"], proxy=proxy)
print("pushed", new)
`

// debianPython returns Debian's python3 with pygit2 (python3-pygit2), not
// a pyenv one that may come first on PATH. Without it the test skips,
// except under CI, whose .ci/run installs it.
func debianPython(t *testing.T, module string) string {
	t.Helper()
	const py = "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import "+module).Run(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s -c 'import %s': %v (.ci/run installs python3-%s)", py, module, err, module)
		}
		t.Skipf("%s has no %s: %v", py, module, err)
	}
	return py
}

// TestClientPygit2CloneAndPush: libgit2 (mbedTLS) clones and pushes through
// the sidecar with nothing but the proxy URL and the CA file.
func TestClientPygit2CloneAndPush(t *testing.T) {
	py := debianPython(t, "pygit2")
	w := newProxyWorld(t)
	dir := filepath.Join(t.TempDir(), "site")
	cmd := w.git.Command(py, "-c", pygit2Script, w.sc.proxyURL(t), w.sc.CAFile, repoURL, dir)
	stdout, out, err := runClientScript(cmd)
	if err != nil {
		t.Fatalf("pygit2 through the sidecar: %v\n%s\nsidecar:\n%s", err, out, w.sc.stderr)
	}
	checkCloneAndPush(t, w, "pygit2", stdout, out)
}

// TestClientWithoutUserAgent: a client that sends no User-Agent (as
// isomorphic-git does) reaches Azure DevOps without one, not with Go's.
func TestClientWithoutUserAgent(t *testing.T) {
	w := newProxyWorld(t)
	out, err := w.git.Command("curl", "--silent", "--show-error", "--fail",
		"--proxy", w.sc.proxyURL(t), "--cacert", w.sc.CAFile, "-H", "User-Agent:",
		repoURL+"/info/refs?service=git-upload-pack").CombinedOutput()
	if err != nil {
		t.Fatalf("curl through the sidecar: %v\n%s", err, out)
	}
	reqs := w.emu.Requests()
	if len(reqs) == 0 {
		t.Fatal("no request reached the emulator")
	}
	if ua, ok := reqs[len(reqs)-1].Header["User-Agent"]; ok {
		t.Errorf("Azure DevOps saw User-Agent %q; want none (the client sent none)", ua)
	}
}

// dulwichScript clones, commits and pushes with dulwich (pure Python,
// urllib3 over OpenSSL) through the proxy argv[1] trusting the CA file
// argv[2]. dulwich reads http.proxy and http.sslCAInfo from the git config,
// but urllib3 ignores the credential in a proxy URL, so the script gives
// dulwich a pool manager that sends it as Proxy-Authorization.
const dulwichScript = `
import sys, urllib.parse, urllib3
from dulwich import porcelain
proxy, cafile, url, path = sys.argv[1:5]
p = urllib.parse.urlsplit(proxy)
headers = urllib3.make_headers(proxy_basic_auth=urllib.parse.unquote(p.username) + ":" + urllib.parse.unquote(p.password)) if p.username else None
pool = urllib3.ProxyManager(p._replace(netloc=p.hostname + ":" + str(p.port)).geturl(), proxy_headers=headers, ca_certs=cafile, cert_reqs="CERT_REQUIRED")
repo = porcelain.clone(url, path, checkout=True, errstream=sys.stderr.buffer, pool_manager=pool)
print("cloned", repo.head().decode())
with open(path + "/dulwich.txt", "w") as f:
    f.write("written by dulwich\n")
porcelain.add(repo, [path + "/dulwich.txt"])
new = porcelain.commit(repo, message=b"from dulwich", author=b"dulwich <dulwich@example.test>", committer=b"dulwich <dulwich@example.test>")
porcelain.push(repo, url, b"refs/heads/main:refs/heads/main", errstream=sys.stderr.buffer, pool_manager=pool)
print("pushed", new.decode())
`

// TestClientDulwichCloneAndPush: dulwich clones and pushes through the
// sidecar, proxy credential included.
func TestClientDulwichCloneAndPush(t *testing.T) {
	py := debianPython(t, "dulwich")
	w := newProxyWorld(t)
	dir := filepath.Join(t.TempDir(), "site")
	stdout, out, err := runClientScript(w.git.Command(py, "-c", dulwichScript, w.sc.proxyURL(t), w.sc.CAFile, repoURL, dir))
	if err != nil {
		t.Fatalf("dulwich through the sidecar: %v\n%s", err, out)
	}
	checkCloneAndPush(t, w, "dulwich", stdout, out)
}

// runClientScript runs a client's clone-and-push script and returns its
// stdout (where the script prints its "cloned" and "pushed" lines) and all
// its output, stderr included (progress, warnings, stack traces), for
// failure messages.
func runClientScript(cmd *exec.Cmd) (stdout, all string, err error) {
	var out strings.Builder
	combined := &lockedBuffer{}
	cmd.Stdout = io.MultiWriter(&out, combined)
	cmd.Stderr = combined
	err = cmd.Run()
	return out.String(), combined.String(), err
}

// checkCloneAndPush checks what a client's script printed on stdout (a line
// "cloned HEAD", then a line "pushed COMMIT") against the emulator: it
// cloned the seeded main, the emulator's main is now its commit, a
// receive-pack reached the emulator, every request there carried the
// sidecar's PAT, and the PAT leaked nowhere. The lines are matched whole,
// so nothing else a client prints can pass for them; all is the output
// with stderr, for the failure messages.
func checkCloneAndPush(t *testing.T, w *proxyWorld, client, stdout, all string) {
	t.Helper()
	cloned := clonedLine.FindAllStringSubmatch(stdout, -1)
	if len(cloned) != 1 || cloned[0][1] != w.seed.Head {
		t.Errorf("%s did not say it cloned %s (one line \"cloned %s\"):\n%s", client, w.seed.Head, w.seed.Head, all)
	}
	m := pushedLine.FindAllStringSubmatch(stdout, -1)
	if len(m) != 1 {
		t.Fatalf("%s did not say what it pushed (one line \"pushed COMMIT\"):\n%s", client, all)
	}
	pushed := m[0][1]
	if got := w.git.Run(t, "--git-dir", w.seed.Dir, "rev-parse", "refs/heads/main"); got != pushed || got == w.seed.Head {
		t.Errorf("emulator main = %s after the %s push; want %s", got, client, pushed)
	}
	var sawPush bool
	for _, r := range w.emu.Requests() {
		if r.CredKind != azdoemu.CredBasicPAT {
			t.Errorf("request %s %s reached Azure DevOps with credential %q; want the sidecar's PAT", r.Method, r.Path, r.CredKind)
		}
		sawPush = sawPush || strings.HasSuffix(r.Path, "/git-receive-pack")
	}
	if !sawPush {
		t.Error("no receive-pack request reached the emulator")
	}
	assertNoLeak(t, w.sc, w.emu, w.pat)
}

// The lines a client's clone-and-push script prints.
var (
	clonedLine = regexp.MustCompile(`(?m)^cloned ([0-9a-f]{40})$`)
	pushedLine = regexp.MustCompile(`(?m)^pushed ([0-9a-f]{40})$`)
)
