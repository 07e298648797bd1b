//go:build bench

package bench

import (
	"bufio"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/azdo-sidecar/azdo-sidecar/e2e/azdoemu"
	"github.com/azdo-sidecar/azdo-sidecar/e2e/testenv"
)

// benchPolicy allows the bench repository and pushes to refs/heads/agent/*:
// every request is mapped, checked, and a push's commands are read.
const benchPolicy = `{"version":1,"allow_repos":["dev.azure.com/contoso/bench/*"],"push_refs":["refs/heads/agent/*"]}`

type policyProxy struct {
	Proxy  string `json:"proxy"`
	CAFile string `json:"ca_file"`
	pid    int
}

// startPolicyProxy runs bench/cmd/policyproxy (package proxy alone, a static
// PAT) with policy ("" for none).
func startPolicyProxy(t *testing.T, bin, pat, policy string, args ...string) *policyProxy {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"-policy", policy, "-dir", t.TempDir()}, args...)...)
	cmd.Env = append(os.Environ(), "AZDO_PAT="+pat)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	pp := &policyProxy{pid: cmd.Process.Pid}
	if err := json.Unmarshal([]byte(line), pp); err != nil {
		t.Fatal(err)
	}
	return pp
}

// TestPolicyProxyBench measures what enforcing a policy costs the proxy:
// `git clone --no-checkout` of a BENCH_MB MiB repository (default 100)
// through two copies of the same proxy, one whose token carries a policy
// (every request mapped and checked) and one without, BENCH_ROUNDS
// interleaved rounds (default 5); it reports the medians of each proxy's
// CPU seconds per clone (utime+stime of its process) and their ratio. Then
// it pushes BENCH_PUSH_MB MiB (default 300) of incompressible data through
// each proxy to refs/heads/agent/big and reports each proxy's peak
// resident memory (VmHWM) before and after: receive-pack inspection reads
// only the commands, so the peak stays flat. Run it with bench/policy.sh.
func TestPolicyProxyBench(t *testing.T) {
	testenv.RunTimeout = 30 * time.Minute
	mb, rounds, pushMB := envInt("BENCH_MB", 100), envInt("BENCH_ROUNDS", 5), envInt("BENCH_PUSH_MB", 300)
	emu := testenv.StartAzDO(t, azdoemu.Config{Logf: func(string, ...any) {}})
	pat := azdoemu.NewPAT()
	if err := emu.AddPAT(azdoemu.PAT{Token: pat}); err != nil {
		t.Fatal(err)
	}
	seed := testenv.Seed(t, emu, "contoso", "bench", "big", testenv.SeedOptions{Commits: 10, Bytes: mb << 20 / 10})
	bin := filepath.Join(t.TempDir(), "policyproxy")
	if out, err := exec.Command("go", "build", "-o", bin, "./cmd/policyproxy").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	args := []string{"-resolve", testenv.ResolveFlag("dev.azure.com", emu), "-upstream-ca-file", emu.CAFile()}
	with := startPolicyProxy(t, bin, pat.Reveal(), benchPolicy, args...)
	without := startPolicyProxy(t, bin, pat.Reveal(), "", args...)
	gitFor := func(pp *policyProxy) *testenv.Git {
		g := testenv.NewGit(t)
		g.Unsetenv("GIT_SSL_CAINFO")
		g.SetConfig(t, "http.https://dev.azure.com/.proxy", "http://"+pp.Proxy)
		g.SetConfig(t, "http.https://dev.azure.com/.sslCAInfo", pp.CAFile)
		return g
	}
	gw, gwo := gitFor(with), gitFor(without)
	const url = "https://dev.azure.com/contoso/bench/_git/big"
	clone := func(g *testenv.Git, pp *policyProxy) time.Duration {
		dir := filepath.Join(t.TempDir(), "clone")
		c0 := procCPU(t, pp.pid)
		g.Run(t, "clone", "--quiet", "--no-checkout", url, dir)
		d := procCPU(t, pp.pid) - c0
		if got := g.Run(t, "-C", dir, "rev-parse", "HEAD"); got != seed.Head {
			t.Fatalf("HEAD %s; want %s", got, seed.Head)
		}
		os.RemoveAll(dir)
		return d
	}
	var cw, cwo []time.Duration
	for i := range rounds {
		if i%2 == 0 {
			cw = append(cw, clone(gw, with))
			cwo = append(cwo, clone(gwo, without))
		} else {
			cwo = append(cwo, clone(gwo, without))
			cw = append(cw, clone(gw, with))
		}
		t.Logf("round %d: proxy CPU with policy %s, without %s", i+1, cw[i], cwo[i])
	}
	mw, mwo := median(cw), median(cwo)
	sw, swo := sum(cw), sum(cwo)
	fmt.Printf("clone --no-checkout of %d MiB, %d interleaved rounds: proxy CPU per clone with a policy: median %.2f s %v; without: median %.2f s %v; ratio of medians %.3f, of totals %.2f/%.2f s = %.3f (%+.1f%%)\n",
		mb, rounds, mw.Seconds(), secs(cw), mwo.Seconds(), secs(cwo), float64(mw)/float64(mwo), sw.Seconds(), swo.Seconds(), float64(sw)/float64(swo), 100*(float64(sw)/float64(swo)-1))

	// A big push through each, each its own pack of incompressible data:
	// the proxy's peak memory must not grow with it.
	for _, c := range []struct {
		name string
		g    *testenv.Git
		pp   *policyProxy
		ref  string
	}{{"with policy", gw, with, "refs/heads/agent/big"}, {"without policy", gwo, without, "refs/heads/agent/big2"}} {
		work := filepath.Join(t.TempDir(), "work")
		c.g.Run(t, "clone", "--quiet", "--no-checkout", url, work)
		big := make([]byte, pushMB<<20)
		if _, err := rand.Read(big); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(work, "big.bin"), big, 0o644); err != nil {
			t.Fatal(err)
		}
		big = nil
		c.g.Run(t, "-C", work, "add", "big.bin")
		c.g.Run(t, "-C", work, "commit", "--quiet", "-m", "big")
		before := procStatusKB(t, c.pp.pid, "VmHWM")
		c0 := procCPU(t, c.pp.pid)
		t0 := time.Now()
		c.g.Run(t, "-C", work, "push", "--quiet", "origin", "HEAD:"+c.ref)
		fmt.Printf("push of %d MiB %s: %s, proxy CPU %.2f s; proxy peak RSS (VmHWM) %.1f MiB before, %.1f MiB after\n",
			pushMB, c.name, time.Since(t0).Round(time.Millisecond), (procCPU(t, c.pp.pid) - c0).Seconds(),
			float64(before)/1024, float64(procStatusKB(t, c.pp.pid, "VmHWM"))/1024)
		if got, want := c.g.Run(t, "--git-dir", seed.Dir, "rev-parse", c.ref), c.g.Run(t, "-C", work, "rev-parse", "HEAD"); got != want {
			t.Fatalf("%s = %s after the push; want %s", c.ref, got, want)
		}
	}
}

func sum(d []time.Duration) time.Duration {
	var s time.Duration
	for _, x := range d {
		s += x
	}
	return s
}

func secs(d []time.Duration) []string {
	var out []string
	for _, x := range slices.Clone(d) {
		out = append(out, fmt.Sprintf("%.2f", x.Seconds()))
	}
	return out
}
