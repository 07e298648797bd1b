package e2e

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/azdo-sidecar/azdo-sidecar/e2e/testenv"
)

// demoProc is a running `go run ./e2e/cmd/demo` (built once per test).
type demoProc struct {
	cmd     *exec.Cmd
	done    chan error
	stdout  string // the instructions, up to the "Press Ctrl-C" line
	stderr  *lockedBuffer
	link    string // the Connect link, when printed
	caFile  string // the emulators' CA, when printed
	command string // the git command to try
	dir     string // the demo's temporary directory
}

var (
	demoLinkRE = regexp.MustCompile(`^\s+(http://127\.0\.0\.1:\d+/connect\?link=\S+)$`)
	demoCARE   = regexp.MustCompile(`import this CA first: (\S+)$`)
	demoDirRE  = regexp.MustCompile(`it removes (\S+)\)\.$`)
)

// buildDemo builds the demo and returns its path and the directory of the
// binaries it should use (testenv's, built once per test process).
func buildDemo(t *testing.T) (bin, binDir string) {
	t.Helper()
	side := testenv.Binary(t, "azdo-sidecar")
	if h := testenv.Binary(t, "git-credential-azdo"); filepath.Dir(h) != filepath.Dir(side) {
		t.Fatalf("testenv built git-credential-azdo in %s, azdo-sidecar in %s; want one directory", h, side)
	}
	root, err := testenv.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	bin = filepath.Join(t.TempDir(), "demo")
	cmd := exec.Command("go", "build", "-o", bin, "./e2e/cmd/demo")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./e2e/cmd/demo: %v\n%s", err, out)
	}
	return bin, filepath.Dir(side)
}

// startDemo runs the demo and reads its instructions; the cleanup stops it
// with SIGTERM and checks that it exits 0 and removes its directory.
func startDemo(t *testing.T, bin, binDir string, args ...string) *demoProc {
	t.Helper()
	d := &demoProc{stderr: &lockedBuffer{}, done: make(chan error, 1)}
	d.cmd = exec.Command(bin, append([]string{"--bin-dir", binDir}, args...)...)
	d.cmd.Stderr = d.stderr
	out, err := d.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.done <- d.cmd.Wait() }()
	t.Cleanup(func() { d.stop(t) })

	text := make(chan string, 1)
	go func() {
		var b strings.Builder
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			b.WriteString(sc.Text() + "\n")
			if strings.HasPrefix(sc.Text(), "Press Ctrl-C") {
				break
			}
		}
		text <- b.String()
		io.Copy(io.Discard, out)
	}()
	select {
	case d.stdout = <-text:
	case <-time.After(90 * time.Second):
		t.Fatalf("demo printed no instructions within 90s; stderr:\n%s", d.stderr)
	}
	for _, line := range strings.Split(d.stdout, "\n") {
		if m := demoLinkRE.FindStringSubmatch(line); m != nil {
			d.link = m[1]
		}
		if m := demoCARE.FindStringSubmatch(line); m != nil {
			d.caFile = m[1]
		}
		if m := demoDirRE.FindStringSubmatch(line); m != nil {
			d.dir = m[1]
		}
		if c, ok := strings.CutPrefix(line, "   $ "); ok {
			d.command = c
		}
	}
	if d.command == "" || d.dir == "" {
		t.Fatalf("demo output has no command or directory:\n%s\nstderr:\n%s", d.stdout, d.stderr)
	}
	return d
}

func (d *demoProc) stop(t *testing.T) {
	t.Helper()
	if d.cmd.Process == nil {
		return
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-d.done:
		d.done <- err
		if err != nil {
			t.Errorf("demo exit after SIGTERM: %v\n%s", err, d.stderr)
		}
	case <-time.After(45 * time.Second):
		d.cmd.Process.Kill()
		t.Errorf("demo did not stop within 45s of SIGTERM")
		return
	}
	if _, err := os.Stat(d.dir); !os.IsNotExist(err) {
		t.Errorf("demo directory %s still there after exit (stat: %v)", d.dir, err)
	}
}

// runPrinted runs the printed command with sh in a fresh directory, in
// this machine's environment plus GIT_SSL_CAINFO exported to the system
// bundle (as on these machines, where it would defeat http.sslCAInfo).
func (d *demoProc) runPrinted(t *testing.T) (cwd, output string, elapsed time.Duration, err error) {
	t.Helper()
	cwd = t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", "-c", d.command)
	cmd.Dir = cwd
	cmd.Env = append(os.Environ(), "GIT_SSL_CAINFO=/etc/ssl/certs/ca-certificates.crt")
	start := time.Now()
	out, err := cmd.CombinedOutput()
	return cwd, string(out), time.Since(start), err
}

// TestDemoBrowserPath is the demo as a person uses it: the printed clone
// fails fast with a connect link; following the printed link (trusting the
// printed CA file, as a browser that imported it) connects; then the
// printed clone works.
func TestDemoBrowserPath(t *testing.T) {
	bin, binDir := buildDemo(t)
	d := startDemo(t, bin, binDir)
	if d.link == "" || d.caFile == "" {
		t.Fatalf("demo without --auto-connect printed no connect link or CA file:\n%s", d.stdout)
	}
	wantCmd := "GIT_CONFIG_GLOBAL=" + filepath.Join(d.dir, "gitconfig") + " GIT_CONFIG_NOSYSTEM=1 git clone https://dev.azure.com/demo/demo/_git/hello"
	if d.command != wantCmd {
		t.Errorf("printed command = %q; want %q", d.command, wantCmd)
	}

	_, out, elapsed, err := d.runPrinted(t)
	base, _, _ := strings.Cut(d.link, "?")
	if err == nil || !strings.Contains(out, base+"?link=") {
		t.Fatalf("clone before Connect: err %v, output:\n%s\nwant a failure that shows a %s link", err, out, base)
	}
	if elapsed > 10*time.Second {
		t.Errorf("clone before Connect took %s; want a fast failure", elapsed)
	}

	pem, err := os.ReadFile(d.caFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		t.Fatalf("CA file %s holds no certificate", d.caFile)
	}
	// Follow the link git showed (not the one the demo printed at start):
	// it must be fresh and unspent.
	var gitLink string
	for _, f := range strings.Fields(out) {
		if strings.HasPrefix(f, base+"?link=") {
			gitLink = f
		}
	}
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	resp, err := c.Get(gitLink)
	if err != nil {
		t.Fatalf("following the connect link with the printed CA file: %v", err)
	}
	page, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	// The confirmation page: press Continue.
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(page), `id="continue"`) {
		t.Fatalf("connect link answered %d:\n%.500s\nwant the confirmation page", resp.StatusCode, page)
	}
	lu, _ := url.Parse(gitLink)
	resp, err = c.PostForm(base, url.Values{"link": {lu.Query().Get("link")}, "csrf": {formValue(t, string(page), "csrf")}})
	if err != nil {
		t.Fatalf("Continue: %v", err)
	}
	page, _ = io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(page), "Connected.") {
		t.Fatalf("connect link ended with %d:\n%.500s\nwant the Connected page", resp.StatusCode, page)
	}

	// Right away, as a user (or a script) does: the sidecar does not
	// remember "connect required".
	cwd, out, _, err := d.runPrinted(t)
	if err != nil {
		t.Fatalf("clone right after Connect: %v\n%s", err, out)
	}
	if _, serr := os.Stat(filepath.Join(cwd, "hello", "README.md")); serr != nil {
		t.Fatalf("clone after Connect succeeded but hello/README.md is missing: %v\n%s", serr, out)
	}
	assertDemoNoEnvToken(t, d)
}

// TestDemoAutoConnect: with --auto-connect the printed clone works at
// once, and no link is printed.
func TestDemoAutoConnect(t *testing.T) {
	bin, binDir := buildDemo(t)
	d := startDemo(t, bin, binDir, "--auto-connect")
	if !strings.Contains(d.stdout, "You signed in as mallory@demo.example, but this link connects Azure DevOps for demo@demo.example. Nothing was saved.") {
		t.Errorf("demo output lacks the refused identity:\n%s", d.stdout)
	}
	if d.link != "" || !strings.Contains(d.stdout, "Connected to Azure DevOps as demo@demo.example") {
		t.Errorf("--auto-connect output:\n%s\nwant the connected line and no link", d.stdout)
	}
	cwd, out, _, err := d.runPrinted(t)
	if err != nil {
		t.Fatalf("printed clone after --auto-connect: %v\n%s", err, out)
	}
	b, err := os.ReadFile(filepath.Join(cwd, "hello", "README.md"))
	if err != nil || !strings.HasPrefix(string(b), "# hello") {
		t.Fatalf("hello/README.md = %q, %v; want the demo README", b, err)
	}

	// Step 3: the demo environment's policy refuses a push to main and
	// lets one to refs/heads/agent/* through.
	if !strings.Contains(d.stdout, "may push only to refs/heads/agent/*") {
		t.Errorf("the instructions do not show the policy:\n%s", d.stdout)
	}
	// The demo itself pushed from the clone made at environment start.
	if se := d.stderr.String(); !strings.Contains(se, "push  |  ! [remote rejected] main -> main (this environment may push only to refs/heads/agent/*") ||
		!strings.Contains(se, "push  |  * [new branch]      HEAD -> agent/at-start") {
		t.Errorf("the demo did not show the refused and the allowed push:\n%s", se)
	}
	git := func(args ...string) (string, error) {
		cmd := exec.Command("git", append([]string{"-C", filepath.Join(cwd, "hello")}, args...)...)
		cmd.Env = append(os.Environ(), "GIT_SSL_CAINFO=/etc/ssl/certs/ca-certificates.crt",
			"GIT_CONFIG_GLOBAL="+filepath.Join(d.dir, "gitconfig"), "GIT_CONFIG_NOSYSTEM=1",
			"GIT_AUTHOR_NAME=demo", "GIT_AUTHOR_EMAIL=demo@demo.example", "GIT_COMMITTER_NAME=demo", "GIT_COMMITTER_EMAIL=demo@demo.example")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := git("commit", "--allow-empty", "-m", "try"); err != nil {
		t.Fatalf("commit: %v\n%s", err, out)
	}
	if out, err := git("push", "origin", "main"); err == nil || !strings.Contains(out, "[remote rejected] main -> main (this environment may push only to refs/heads/agent/*; refs/heads/main refused)") {
		t.Errorf("push to main in the demo: %v\n%s\nwant the policy's refusal", err, out)
	}
	if out, err := git("push", "origin", "HEAD:refs/heads/agent/demo"); err != nil {
		t.Errorf("push to agent/demo in the demo: %v\n%s", err, out)
	}
	assertDemoNoEnvToken(t, d)
}

// assertDemoNoEnvToken fails if the environment token shows in the demo's
// output or logs.
func assertDemoNoEnvToken(t *testing.T, d *demoProc) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(d.dir, "env-token"))
	tok := strings.TrimSpace(string(b))
	if err != nil || tok == "" {
		t.Fatalf("reading the demo's env-token: %v", err)
	}
	if strings.Contains(d.stdout+d.stderr.String(), tok) {
		t.Errorf("the environment token appears in the demo's output")
	}
}
