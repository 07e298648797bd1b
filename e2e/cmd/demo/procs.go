package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Bounds on the children.
const (
	readyTimeout = 60 * time.Second
	stopTimeout  = 30 * time.Second
)

// buildBinaries builds azdo-sidecar and git-credential-azdo into dir/bin
// (setup records the helper's path in the git config, so it must outlive
// a `go run`).
func buildBinaries(ctx context.Context, dir string) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("run the demo from inside the azdo-sidecar module (go run ./e2e/cmd/demo)")
	}
	bin := filepath.Join(dir, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		return "", err
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin+string(filepath.Separator), "./cmd/azdo-sidecar", "./cmd/git-credential-azdo")
	cmd.Dir = filepath.Dir(mod)
	if msg, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building the binaries: %w\n%s", err, msg)
	}
	return bin, nil
}

// sidecar is a running `azdo-sidecar serve`.
type sidecar struct {
	cmd   *exec.Cmd
	done  chan error
	ready struct {
		Proxy  string `json:"proxy"`
		Socket string `json:"socket"`
		CAFile string `json:"ca_file"`
	}
	stateDir string
}

// childEnv is the environment of the demo's children: the user's, without
// settings of their own sidecar.
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AZDO_") {
			env = append(env, kv)
		}
	}
	return env
}

// startSidecar runs `azdo-sidecar serve` in vault mode, dev.azure.com
// resolved to the emulator, and waits for its ready line.
func startSidecar(ctx context.Context, dir, binDir string, w *world, logs io.Writer) (*sidecar, error) {
	tokFile := filepath.Join(dir, "env-token")
	if err := w.writeEnvToken(tokFile); err != nil {
		return nil, err
	}
	s := &sidecar{stateDir: filepath.Join(dir, "state"), done: make(chan error, 1)}
	resolve := demoHost + ":443:" + net.JoinHostPort(w.azdo.IP(), strconv.Itoa(w.azdo.Port()))
	// Not CommandContext: the sidecar gets SIGTERM and drains in Stop.
	s.cmd = exec.Command(filepath.Join(binDir, "azdo-sidecar"), "serve",
		"--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0",
		"--socket", filepath.Join(dir, "sock"), "--state-dir", s.stateDir,
		"--vault-url", w.url, "--env-token-file", tokFile,
		"--resolve", resolve, "--upstream-ca-file", w.caFile)
	s.cmd.Env = childEnv()
	s.cmd.SysProcAttr = childAttr()
	s.cmd.Stderr = prefixed(logs, "sidecar: ")
	stdout, err := s.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("azdo-sidecar serve: %w", err)
	}
	go func() { s.done <- s.cmd.Wait() }()
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		if sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		_, _ = io.Copy(io.Discard, stdout)
	}()
	fail := func(err error) (*sidecar, error) {
		_ = s.Stop()
		return nil, err
	}
	select {
	case line, ok := <-lines:
		if !ok || json.Unmarshal([]byte(line), &s.ready) != nil || s.ready.Proxy == "" {
			return fail(fmt.Errorf("azdo-sidecar serve printed no ready line (%q); run with -v to see its log", line))
		}
	case <-time.After(readyTimeout):
		return fail(fmt.Errorf("azdo-sidecar serve not ready after %s", readyTimeout))
	case <-ctx.Done():
		return fail(ctx.Err())
	}
	return s, nil
}

// Stop sends SIGTERM and waits for the sidecar to drain and exit.
func (s *sidecar) Stop() error {
	if s.cmd.Process == nil {
		return nil
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-s.done:
		s.done <- err // Stop may be called again
		if err != nil {
			return fmt.Errorf("azdo-sidecar serve: %w", err)
		}
		return nil
	case <-time.After(stopTimeout):
		_ = s.cmd.Process.Kill()
		return fmt.Errorf("azdo-sidecar serve did not stop within %s of SIGTERM; killed", stopTimeout)
	}
}

// setupGit runs `azdo-sidecar setup --file` for the running sidecar and
// returns the git config file it wrote.
func setupGit(ctx context.Context, dir, binDir string, s *sidecar, logs io.Writer) (string, error) {
	gitconfig := filepath.Join(dir, "gitconfig")
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "azdo-sidecar"), "setup", "--file", gitconfig,
		"--listen", s.ready.Proxy, "--socket", s.ready.Socket, "--state-dir", s.stateDir)
	cmd.Env = childEnv()
	cmd.Stdout = prefixed(logs, "setup: ")
	var stderr strings.Builder
	cmd.Stderr = io.MultiWriter(&stderr, prefixed(logs, "setup: "))
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("azdo-sidecar setup: %w\n%s", err, stderr.String())
	}
	return gitconfig, nil
}

// prefixed writes each line to w with prefix in front.
func prefixed(w io.Writer, prefix string) io.Writer {
	if w == io.Discard {
		return io.Discard
	}
	return &prefixWriter{w: w, prefix: prefix, bol: true}
}

type prefixWriter struct {
	w      io.Writer
	prefix string
	bol    bool
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	var out []byte
	for _, c := range b {
		if p.bol {
			out = append(out, p.prefix...)
		}
		out = append(out, c)
		p.bol = c == '\n'
	}
	if _, err := p.w.Write(out); err != nil {
		return 0, err
	}
	return len(b), nil
}

// waitingClone is `azdo-sidecar clone --wait-connect`, started before the
// user connects, as an environment's start script would: it prints the
// links, waits, and clones as soon as the user has connected.
type waitingClone struct {
	cmd  *exec.Cmd
	done chan error
}

// startWaitingClone starts the clone into dir/hello-at-start with its
// output on out.
func startWaitingClone(dir, binDir string, w *world, out io.Writer) (*waitingClone, error) {
	resolve := demoHost + ":443:" + net.JoinHostPort(w.azdo.IP(), strconv.Itoa(w.azdo.Port()))
	c := &waitingClone{done: make(chan error, 1)}
	c.cmd = exec.Command(filepath.Join(binDir, "azdo-sidecar"), "clone", repoURL, filepath.Join(dir, "hello-at-start"),
		"--wait-connect", "15m", "--vault-url", w.url, "--env-token-file", filepath.Join(dir, "env-token"),
		"--resolve", resolve, "--upstream-ca-file", w.caFile)
	c.cmd.Env = childEnv()
	c.cmd.SysProcAttr = childAttr()
	c.cmd.Stdout = out
	c.cmd.Stderr = out
	if err := c.cmd.Start(); err != nil {
		return nil, fmt.Errorf("azdo-sidecar clone --wait-connect: %w", err)
	}
	go func() { c.done <- c.cmd.Wait() }()
	return c, nil
}

// Wait waits up to d for the clone to finish.
func (c *waitingClone) Wait(d time.Duration) error {
	select {
	case err := <-c.done:
		c.done <- err
		return err
	case <-time.After(d):
		return fmt.Errorf("the waiting clone did not finish within %s", d)
	}
}

// Stop ends the clone if it still waits.
func (c *waitingClone) Stop() {
	select {
	case err := <-c.done:
		c.done <- err
	default:
		_ = c.cmd.Process.Kill()
		<-c.done
	}
}

// showPolicy pushes from the clone made at environment start, with plain git
// and the demo's git configuration (so through the sidecar's proxy): first
// to main, which the environment's policy refuses before anything reaches
// Azure DevOps, then to refs/heads/agent/at-start, which it allows. git's own
// output goes to out.
func showPolicy(ctx context.Context, dir, gitconfig string, out io.Writer) error {
	clone := filepath.Join(dir, "hello-at-start")
	git := func(args ...string) error {
		cmd := exec.CommandContext(ctx, "git", append([]string{"-C", clone,
			"-c", "user.name=Demo", "-c", "user.email=" + demoUPN}, args...)...)
		cmd.Env = append(childEnv(), "GIT_CONFIG_GLOBAL="+gitconfig, "GIT_CONFIG_NOSYSTEM=1", "GIT_TERMINAL_PROMPT=0")
		cmd.SysProcAttr = childAttr()
		cmd.Stdout, cmd.Stderr = out, out
		return cmd.Run()
	}
	if err := git("commit", "--quiet", "--allow-empty", "-m", "an agent's change"); err != nil {
		return fmt.Errorf("git commit: %w", err)
	}
	fmt.Fprintln(out, "$ git push origin main")
	if err := git("push", "origin", "main"); err == nil {
		return errors.New("the policy let a push to main through")
	}
	fmt.Fprintln(out, "$ git push origin HEAD:refs/heads/agent/at-start")
	if err := git("push", "origin", "HEAD:refs/heads/agent/at-start"); err != nil {
		return fmt.Errorf("push to refs/heads/agent/at-start: %w", err)
	}
	return nil
}
