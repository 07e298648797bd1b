//go:build bench

package bench

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/azdo-sidecar/azdo-sidecar/e2e/azdoemu"
	"github.com/azdo-sidecar/azdo-sidecar/e2e/testenv"
)

// TestProxyCloneBench clones the same repository of about BENCH_MB MiB
// (default 300, in BENCH_COMMITS commits of incompressible data, default
// 30) from the strict emulator with `git clone --no-checkout`, directly with
// http.extraHeader and through the sidecar's proxy (standalone mode),
// BENCH_ROUNDS times each (default 7), interleaved with alternating order,
// and reports the medians and their ratio; the sidecar's CPU seconds
// (utime+stime from /proc/PID/stat) per GiB of pack it proxied; its
// resident memory after start, its peak while BENCH_CONCURRENT clones
// (default 16) run at once, and after they are done. When mitmproxy
// (mitmdump) or squid (with ssl-bump) is installed, each runs as a
// further path in the same rounds, doing the sidecar's job (see peer),
// with the same figures; BENCH_PEERS=none leaves them out. Run it with
// bench/proxy.sh.
func TestProxyCloneBench(t *testing.T) {
	// Seeding and 16 concurrent 300 MiB clones take minutes on a loaded
	// 2-core machine: far past the default bound of one git command.
	testenv.RunTimeout = 30 * time.Minute
	mb := envInt("BENCH_MB", 300)
	commits := envInt("BENCH_COMMITS", 30)
	rounds := envInt("BENCH_ROUNDS", 7)
	concurrent := envInt("BENCH_CONCURRENT", 16)
	emu := testenv.StartAzDO(t, azdoemu.Config{Logf: func(string, ...any) {}})
	pat := azdoemu.NewPAT()
	if err := emu.AddPAT(azdoemu.PAT{Token: pat}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	head := seedBlobs(t, emu, mb, commits)
	t.Logf("seeded %d MiB in %d commits in %s", mb, commits, time.Since(start).Round(time.Millisecond))

	direct := testenv.NewGit(t)
	testenv.Reach(t, direct, emu)
	direct.Setenv("GIT_CONFIG_COUNT", "1")
	direct.Setenv("GIT_CONFIG_KEY_0", "http.extraHeader")
	direct.Setenv("GIT_CONFIG_VALUE_0", "Authorization: Basic "+base64.StdEncoding.EncodeToString([]byte("bench:"+pat.Reveal())))
	// git and the emulator speak HTTP/2 directly, while the sidecar speaks
	// HTTP/1.1 on both sides (it does not offer h2). With BENCH_DIRECT_HTTP11
	// set, the direct clone is held to HTTP/1.1 too, so the two paths differ
	// only by the proxy.
	if os.Getenv("BENCH_DIRECT_HTTP11") != "" {
		direct.Setenv("GIT_CONFIG_COUNT", "2")
		direct.Setenv("GIT_CONFIG_KEY_1", "http.version")
		direct.Setenv("GIT_CONFIG_VALUE_1", "HTTP/1.1")
	}

	sc := startBenchSidecar(t, pat.Reveal(), "--resolve", testenv.ResolveFlag("dev.azure.com", emu), "--upstream-ca-file", emu.CAFile())
	viaProxy := testenv.NewGit(t)
	viaProxy.Unsetenv("GIT_SSL_CAINFO")
	viaProxy.SetConfig(t, "http.https://dev.azure.com/.proxy", testenv.ProxyURL(t, sc.ProxyURLFile))
	viaProxy.SetConfig(t, "http.https://dev.azure.com/.sslCAInfo", sc.CAFile)
	peers, skipped := startPeers(t, emu, pat.Reveal())
	if len(skipped) > 0 {
		fmt.Printf("peers skipped: %s\n", strings.Join(skipped, "; "))
	}
	time.Sleep(time.Second) // let start-up garbage be collected
	rssStart := procStatusKB(t, sc.pid, "VmRSS")
	anonStart, fileStart := procStatusKB(t, sc.pid, "RssAnon"), procStatusKB(t, sc.pid, "RssFile")
	paths := []*clonePath{{name: "direct", git: direct}, {name: "sidecar", git: viaProxy, pid: sc.pid}}
	for _, pr := range peers {
		cp := &clonePath{name: pr.name, git: pr.git(t), pid: pr.pid}
		cp.rssStart, cp.procs = treeStatusKB(t, pr.pid, "VmRSS")
		paths = append(paths, cp)
	}

	const url = "https://dev.azure.com/contoso/bench/_git/big"
	// clone returns the wall time and the CPU time of the git clone
	// process with every process it waited for (git-remote-https, fetch-pack,
	// unpack-objects or index-pack): the client side of the clone, what
	// the user's machine pays besides the proxy.
	clone := func(g *testenv.Git) (wall, client time.Duration) {
		dir := filepath.Join(t.TempDir(), "clone")
		cmd := g.Command("git", "clone", "--quiet", "--no-checkout", url, dir)
		t0 := time.Now()
		out, err := cmd.CombinedOutput()
		wall = time.Since(t0)
		if err != nil {
			t.Fatalf("git clone: %v\n%s", err, out)
		}
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			// wait4 reports the child with its waited-for descendants.
			client = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		}
		if got := g.Run(t, "-C", dir, "rev-parse", "HEAD"); got != head {
			t.Fatalf("HEAD %s; want %s", got, head)
		}
		os.RemoveAll(dir)
		return wall, client
	}
	// proxied counts the response body bytes the sidecar relayed; every
	// path clones the same repository as often, so it is also what each
	// peer relayed.
	var proxied float64
	for i := range rounds {
		// Round i starts at path i mod len(paths), so that no path always
		// goes first (with direct and sidecar alone: alternating order).
		var line []string // in the order the paths ran
		for j := range paths {
			cp := paths[(i+j)%len(paths)]
			var c0 time.Duration
			var b0 float64
			if cp.pid != 0 {
				c0 = treeCPU(cp.pid)
			}
			if cp.name == "sidecar" {
				b0 = sc.bytesIn(t)
			}
			r0 := serverCPU()
			wall, client := clone(cp.git)
			cp.times = append(cp.times, wall)
			cp.client += client
			cp.server += serverCPU() - r0 - client
			if cp.pid != 0 {
				cp.cpu += treeCPU(cp.pid) - c0
			}
			if cp.name == "sidecar" {
				proxied += sc.bytesIn(t) - b0
			}
			line = append(line, cp.name+" "+cp.times[i].Round(time.Millisecond).String())
		}
		t.Logf("round %d: %s", i+1, strings.Join(line, ", "))
	}
	md, mp := median(paths[0].times), median(paths[1].times)
	gib := proxied / (1 << 30)
	fmt.Printf("clone --no-checkout of %d MiB (%d commits), %d interleaved rounds: direct (http.extraHeader) median %s, through the proxy median %s, ratio proxy/direct = %.3f (%+.1f%%)\n",
		mb, commits, rounds, md.Round(time.Millisecond), mp.Round(time.Millisecond), float64(mp)/float64(md), 100*(float64(mp)/float64(md)-1))
	fmt.Printf("sidecar CPU: %.2f s for %.2f GiB of response bodies proxied = %.2f CPU s/GiB\n", paths[1].cpu.Seconds(), gib, paths[1].cpu.Seconds()/gib)
	// What a clone costs each side: the git client (the user's machine,
	// with the proxy when there is one) and the server side (the emulator
	// in this process and its git http-backend, Azure DevOps' in real
	// life). On two cores all of it competes for the same CPUs, which is
	// what sets the wall time here.
	for _, cp := range paths {
		share := ""
		if cp.pid != 0 {
			share = fmt.Sprintf(", the proxy %.2f s = %.1f%% of the client side's CPU (git + proxy)",
				cp.cpu.Seconds()/float64(rounds), 100*cp.cpu.Seconds()/(cp.cpu+cp.client).Seconds())
		}
		fmt.Printf("CPU per clone %s: git client %.2f s, server side %.2f s%s\n",
			cp.name, cp.client.Seconds()/float64(rounds), cp.server.Seconds()/float64(rounds), share)
	}
	for _, cp := range paths[2:] {
		m := median(cp.times)
		fmt.Printf("peer %s: median %s, ratio to direct = %.3f (%+.1f%%), to the sidecar = %.3f; CPU: %.2f s for the same %.2f GiB = %.2f CPU s/GiB\n",
			cp.name, m.Round(time.Millisecond), float64(m)/float64(md), 100*(float64(m)/float64(md)-1), float64(m)/float64(mp),
			cp.cpu.Seconds(), gib, cp.cpu.Seconds()/gib)
	}

	// Peak memory: concurrent clones at once through each proxy in turn.
	concurrently := func(cp *clonePath) {
		var wg sync.WaitGroup
		t0 := time.Now()
		for range concurrent {
			wg.Add(1)
			go func() {
				defer wg.Done()
				clone(cp.git)
			}()
		}
		wg.Wait()
		t.Logf("%s: %d concurrent clones in %s", cp.name, concurrent, time.Since(t0).Round(time.Millisecond))
	}
	concurrently(paths[1])
	peak := procStatusKB(t, sc.pid, "VmHWM")
	time.Sleep(idleAfter)
	rssAfter := procStatusKB(t, sc.pid, "VmRSS")
	// Anonymous memory is the sidecar's own; file-backed pages are its
	// executable's, shared with every process that maps the same file.
	fmt.Printf("sidecar anonymous/file-backed resident memory: %d/%d KiB after start, %d/%d KiB idle %s after the concurrent clones\n",
		anonStart, fileStart, procStatusKB(t, sc.pid, "RssAnon"), procStatusKB(t, sc.pid, "RssFile"), idleAfter)
	fmt.Printf("sidecar resident memory: %d KiB (%.1f MiB) after start, peak %d KiB (%.1f MiB) with %d concurrent %d MiB clones, %d KiB (%.1f MiB) idle %s after them\n",
		rssStart, float64(rssStart)/1024, peak, float64(peak)/1024, concurrent, mb, rssAfter, float64(rssAfter)/1024, idleAfter)
	for _, cp := range paths[2:] {
		concurrently(cp)
		// A sum of each process's own peak: an upper bound if its
		// processes did not peak at the same moment.
		peak, n := treeStatusKB(t, cp.pid, "VmHWM")
		time.Sleep(idleAfter)
		after, _ := treeStatusKB(t, cp.pid, "VmRSS")
		fmt.Printf("peer %s resident memory (sum over %s after start, %s at the peak): %d KiB (%.1f MiB) after start, peak %d KiB (%.1f MiB) with %d concurrent %d MiB clones, %d KiB (%.1f MiB) idle %s after them\n",
			cp.name, cp.procs, n, cp.rssStart, float64(cp.rssStart)/1024, peak, float64(peak)/1024, concurrent, mb, after, float64(after)/1024, idleAfter)
	}
}

// idleAfter is how long after the concurrent clones the resident memory
// is read again: past the 15 s without a client after which the sidecar
// returns a burst's memory (proxy.releaseIdle).
const idleAfter = 20 * time.Second

// serverCPU is the CPU time of this process (the emulator, in-process)
// and of its children that have exited: the emulator's git http-backend
// processes and the git clones, whose own CPU the caller subtracts. An
// http-backend reaped after its clone returned is counted with the next
// clone; over the rounds that evens out.
func serverCPU() time.Duration {
	var self, children syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &self)
	_ = syscall.Getrusage(syscall.RUSAGE_CHILDREN, &children)
	return time.Duration(self.Utime.Nano() + self.Stime.Nano() + children.Utime.Nano() + children.Stime.Nano())
}

// clonePath is one way of cloning in the benchmark: directly, through the
// sidecar or through a peer.
type clonePath struct {
	name     string
	git      *testenv.Git
	pid      int // the proxy's (root) process; 0 for direct
	times    []time.Duration
	cpu      time.Duration // of the proxy's process tree during the timed clones
	client   time.Duration // of the git clone processes
	server   time.Duration // serverCPU during the timed clones, less client
	rssStart int           // KiB, peers only (the sidecar's is rssStart)
	procs    string        // peers' processes after start
}

// seedBlobs creates contoso/bench/big with commits commits, each adding a
// file of incompressible data, mb MiB in all, with git fast-import straight
// into one pack (no compression: the data does not compress anyway). The
// repository is served from that pack, as Azure DevOps serves from its
// pack cache, so a clone costs the server little CPU: pushing the same
// data (testenv.Seed) leaves 90 loose objects that git http-backend
// recompresses for every clone, which took minutes per clone on a loaded
// machine and made the emulator, not the path, what was measured.
func seedBlobs(t *testing.T, emu *azdoemu.Server, mb, commits int) string {
	t.Helper()
	bare, err := emu.CreateRepo("contoso", "bench", "big")
	if err != nil {
		t.Fatal(err)
	}
	g := testenv.NewGit(t)
	cmd := g.Command("git", "-c", "pack.compression=0", "-c", "core.compression=0", "fast-import", "--quiet")
	cmd.Dir = bare
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	bw := bufio.NewWriterSize(in, 1<<20)
	rng := rand.New(rand.NewChaCha8([32]byte{1}))
	data := make([]byte, mb<<20/commits)
	for n := range commits {
		for i := range data {
			data[i] = byte(rng.Uint32())
		}
		msg := fmt.Sprintf("Add data-%d.bin", n)
		fmt.Fprintf(bw, "commit refs/heads/main\ncommitter Bench <bench@example.com> %d +0000\ndata %d\n%s\n", 1700000000+n, len(msg), msg)
		fmt.Fprintf(bw, "M 100644 inline data-%d.bin\ndata %d\n", n, len(data))
		bw.Write(data)
		bw.WriteByte('\n')
	}
	if err := bw.Flush(); err != nil {
		t.Fatal(err)
	}
	in.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("git fast-import: %v\n%s", err, out.String())
	}
	// Files this big are never deltified (Azure DevOps does not search
	// deltas for every clone either): without this, git pack-objects on
	// the emulator searched deltas among the 10 MiB random blobs on every
	// clone, and a 300 MiB clone took 45 s of the server's CPU instead of
	// about 5 s, so the benchmark measured the emulator, not the path.
	g.Run(t, "--git-dir", bare, "config", "core.bigFileThreshold", "1m")
	return g.Run(t, "--git-dir", bare, "rev-parse", "refs/heads/main")
}

// procCPU returns the user+system CPU time of pid so far (/proc/PID/stat
// fields 14 and 15, in clock ticks of 1/100 s).
func procCPU(t *testing.T, pid int) time.Duration {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		t.Fatal(err)
	}
	// The command name (field 2) may hold spaces; fields count from
	// after its closing parenthesis.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond
}

type benchSidecar struct {
	Proxy        string `json:"proxy"`
	CAFile       string `json:"ca_file"`
	ProxyURLFile string `json:"proxy_url_file"`
	Metrics      string `json:"metrics"`
	pid          int
}

// bytesIn reads the sidecar's count of response body bytes relayed from
// Azure DevOps (azdo_sidecar_proxy_bytes_total{class="azdo",direction="in"}).
func (s *benchSidecar) bytesIn(t *testing.T) float64 {
	t.Helper()
	resp, err := http.Get("http://" + s.Metrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		l := sc.Text()
		if strings.HasPrefix(l, "azdo_sidecar_proxy_bytes_total{") && strings.Contains(l, `class="azdo"`) && strings.Contains(l, `direction="in"`) {
			v, err := strconv.ParseFloat(l[strings.LastIndexByte(l, ' ')+1:], 64)
			if err != nil {
				t.Fatalf("metric line %q: %v", l, err)
			}
			return v
		}
	}
	t.Fatal("no azdo_sidecar_proxy_bytes_total{class=\"azdo\",direction=\"in\"} in /metrics")
	return 0
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
