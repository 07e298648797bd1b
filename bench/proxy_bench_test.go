//go:build bench

package bench

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/azdo-sidecar/azdo-sidecar/e2e/azdoemu"
	"github.com/azdo-sidecar/azdo-sidecar/e2e/testenv"
)

// TestProxyCloneBench clones the same repository of about BENCH_MB MiB
// (default 200: commits of 1 MiB of incompressible data) from the strict
// emulator with `git clone`, directly with http.extraHeader and through the
// sidecar's proxy (standalone mode), BENCH_ROUNDS times each (default 5),
// interleaved with alternating order, and reports the medians, their ratio
// and the sidecar's peak resident memory. Run it with bench/proxy.sh.
func TestProxyCloneBench(t *testing.T) {
	mb := envInt("BENCH_MB", 200)
	rounds := envInt("BENCH_ROUNDS", 5)
	emu := testenv.StartAzDO(t, azdoemu.Config{Logf: func(string, ...any) {}})
	pat := azdoemu.NewPAT()
	if err := emu.AddPAT(azdoemu.PAT{Token: pat}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	head := testenv.Seed(t, emu, "contoso", "bench", "big", testenv.SeedOptions{Commits: mb, Bytes: 1 << 20}).Head
	t.Logf("seeded %d MiB in %s", mb, time.Since(start).Round(time.Millisecond))

	direct := testenv.NewGit(t)
	testenv.Reach(t, direct, emu)
	direct.Setenv("GIT_CONFIG_COUNT", "1")
	direct.Setenv("GIT_CONFIG_KEY_0", "http.extraHeader")
	direct.Setenv("GIT_CONFIG_VALUE_0", "Authorization: Basic "+base64.StdEncoding.EncodeToString([]byte("bench:"+pat.Reveal())))

	sc := startBenchSidecar(t, pat.Reveal(), "--resolve", testenv.ResolveFlag("dev.azure.com", emu), "--upstream-ca-file", emu.CAFile())
	viaProxy := testenv.NewGit(t)
	viaProxy.Unsetenv("GIT_SSL_CAINFO")
	viaProxy.SetConfig(t, "http.https://dev.azure.com/.proxy", testenv.ProxyURL(t, sc.ProxyURLFile))
	viaProxy.SetConfig(t, "http.https://dev.azure.com/.sslCAInfo", sc.CAFile)
	rssStart := procStatusKB(t, sc.pid, "VmRSS")

	const url = "https://dev.azure.com/contoso/bench/_git/big"
	clone := func(g *testenv.Git) time.Duration {
		dir := filepath.Join(t.TempDir(), "clone")
		t0 := time.Now()
		g.Run(t, "clone", "--quiet", url, dir)
		d := time.Since(t0)
		if got := g.Run(t, "-C", dir, "rev-parse", "HEAD"); got != head {
			t.Fatalf("HEAD %s; want %s", got, head)
		}
		os.RemoveAll(dir)
		return d
	}
	var d, p []time.Duration
	for i := range rounds {
		if i%2 == 0 {
			d = append(d, clone(direct))
			p = append(p, clone(viaProxy))
		} else {
			p = append(p, clone(viaProxy))
			d = append(d, clone(direct))
		}
		t.Logf("round %d: direct %s, proxy %s", i+1, d[i].Round(time.Millisecond), p[i].Round(time.Millisecond))
	}
	peak := procStatusKB(t, sc.pid, "VmHWM")
	md, mp := median(d), median(p)
	fmt.Printf("clone of %d MiB, %d interleaved rounds: direct (http.extraHeader) median %s, through the proxy median %s, ratio proxy/direct = %.3f (%+.1f%%)\n",
		mb, rounds, md.Round(time.Millisecond), mp.Round(time.Millisecond), float64(mp)/float64(md), 100*(float64(mp)/float64(md)-1))
	fmt.Printf("sidecar resident memory: %d KiB after start, peak %d KiB while streaming %d MiB clones\n", rssStart, peak, mb)
}

type benchSidecar struct {
	Proxy        string `json:"proxy"`
	CAFile       string `json:"ca_file"`
	ProxyURLFile string `json:"proxy_url_file"`
	pid          int
}

func startBenchSidecar(t *testing.T, pat string, args ...string) *benchSidecar {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.Command(testenv.Binary(t, "azdo-sidecar"), append([]string{"--log-level", "warn", "serve",
		"--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0",
		"--socket", filepath.Join(dir, "run", "sock"), "--state-dir", filepath.Join(dir, "state")}, args...)...)
	var env []string
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); !strings.HasPrefix(k, "AZDO_") && !strings.HasSuffix(strings.ToLower(k), "_proxy") {
			env = append(env, kv)
		}
	}
	cmd.Env = append(env, "AZDO_PAT="+pat)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("sidecar ready line: %v", err)
	}
	sc := &benchSidecar{pid: cmd.Process.Pid}
	if err := json.Unmarshal([]byte(line), sc); err != nil {
		t.Fatalf("ready line %q: %v", line, err)
	}
	return sc
}

// procStatusKB reads a "kB" field of /proc/PID/status.
func procStatusKB(t *testing.T, pid int, field string) int {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, field+":"); ok {
			n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return n
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}
