//go:build bench

package bench

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/azdo-sidecar/azdo-sidecar/e2e/azdoemu"
	"github.com/azdo-sidecar/azdo-sidecar/e2e/testenv"
)

// A peer is another intercepting proxy doing the sidecar's job in the
// proxy benchmark: TLS interception on loopback with its own CA, the
// emulator reached as dev.azure.com and trusted through its CA only, and
// peerAuth's Authorization header added to dev.azure.com requests.
type peer struct {
	name   string // with its version, as printed
	proxy  string // http://127.0.0.1:PORT
	caFile string // the CA git must trust
	pid    int    // the root of its process tree
}

// git returns a git environment that clones dev.azure.com through p.
func (p *peer) git(t *testing.T) *testenv.Git {
	g := testenv.NewGit(t)
	g.Unsetenv("GIT_SSL_CAINFO")
	g.SetConfig(t, "http.https://dev.azure.com/.proxy", p.proxy)
	g.SetConfig(t, "http.https://dev.azure.com/.sslCAInfo", p.caFile)
	return g
}

// peerStarters are the peers in the order they run; each returns the
// reason it was skipped when its program is missing.
var peerStarters = []struct {
	name  string
	start func(t *testing.T, emu *azdoemu.Server, pat string) (*peer, string)
}{
	{"mitmproxy", startMitmproxy},
	{"squid", startSquid},
}

// startPeers starts the peers BENCH_PEERS selects: unset or "all" for
// every installed one, "none" for none, or a comma-separated list of
// names. It returns them and, for the others, why they were skipped. A
// peer that is installed but does not start fails the test.
func startPeers(t *testing.T, emu *azdoemu.Server, pat string) (peers []*peer, skipped []string) {
	sel := os.Getenv("BENCH_PEERS")
	for _, s := range peerStarters {
		if sel == "none" || sel != "" && sel != "all" && !contains(strings.Split(sel, ","), s.name) {
			skipped = append(skipped, s.name+" (not in BENCH_PEERS)")
			continue
		}
		p, why := s.start(t, emu, pat)
		if p == nil {
			skipped = append(skipped, s.name+" ("+why+")")
			continue
		}
		peers = append(peers, p)
	}
	return peers, skipped
}

// peerAuth returns the Authorization value the peers add: Basic with a
// user name, since Azure DevOps (and the emulator) refuse a PAT with an
// empty one; the sidecar sends its own default user name the same way.
func peerAuth(pat string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte("bench:"+pat))
}

func contains(list []string, s string) bool {
	for _, e := range list {
		if strings.TrimSpace(e) == s {
			return true
		}
	}
	return false
}

// mitmAddon injects the PAT and stands in for /etc/hosts: mitmproxy has
// no DNS override, and rewriting the server address in a hook would also
// change the address mitmproxy matches its server connections by, so it
// would open a new upstream connection per request. Patching name
// resolution keeps dev.azure.com as the address, the SNI and the name
// verified against the emulator's certificate.
const mitmAddon = `import os, socket

EMU_IP, EMU_PORT = os.environ["BENCH_EMU_IP"], int(os.environ["BENCH_EMU_PORT"])
AUTH = os.environ["BENCH_AUTH"]
_getaddrinfo = socket.getaddrinfo

def _resolve(host, port, *args, **kwargs):
    if host == "dev.azure.com":
        host, port = EMU_IP, EMU_PORT
    return _getaddrinfo(host, port, *args, **kwargs)

socket.getaddrinfo = _resolve

def requestheaders(flow):
    if flow.request.pretty_host == "dev.azure.com":
        flow.request.headers["Authorization"] = AUTH
`

// startMitmproxy runs mitmdump in regular (explicit proxy) mode with the
// addon above, streaming bodies over 1 MiB instead of buffering them
// whole (as the sidecar streams).
func startMitmproxy(t *testing.T, emu *azdoemu.Server, pat string) (*peer, string) {
	bin, err := exec.LookPath("mitmdump")
	if err != nil {
		return nil, "mitmdump not in PATH"
	}
	dir := t.TempDir()
	addon := filepath.Join(dir, "azdo.py")
	if err := os.WriteFile(addon, []byte(mitmAddon), 0o600); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	cmd := exec.Command(bin, "--listen-host", "127.0.0.1", "--listen-port", strconv.Itoa(port),
		"--set", "confdir="+dir, "--set", "ssl_verify_upstream_trusted_ca="+emu.CAFile(),
		"--set", "stream_large_bodies=1m", "--set", "flow_detail=0", "--set", "termlog_verbosity=warn",
		"-s", addon)
	cmd.Env = append(peerEnv(), "BENCH_AUTH="+peerAuth(pat), "BENCH_EMU_IP="+emu.IP(), "BENCH_EMU_PORT="+strconv.Itoa(emu.Port()))
	log := filepath.Join(dir, "mitmdump.log")
	p := &peer{name: "mitmproxy " + version(bin, "--version", "Mitmproxy:"), proxy: fmt.Sprintf("http://127.0.0.1:%d", port),
		caFile: filepath.Join(dir, "mitmproxy-ca-cert.pem")}
	p.pid = startPeer(t, cmd, log, port)
	return p, ""
}

// startSquid runs squid in the foreground (-N: no kid processes, only its
// certificate generator helpers) with ssl-bump, request_header_add for
// dev.azure.com and no cache. Its own DNS would not find dev.azure.com on
// loopback, so a hosts_file maps it to the emulator; that file cannot
// name a port, so squid needs the emulator on 443 (testenv puts it there
// when it may bind that port, i.e. as root).
func startSquid(t *testing.T, emu *azdoemu.Server, pat string) (*peer, string) {
	bin, err := exec.LookPath("squid")
	if err != nil {
		return nil, "squid not in PATH"
	}
	const certgen = "/usr/lib/squid/security_file_certgen"
	if _, err := os.Stat(certgen); err != nil {
		return nil, certgen + " missing: squid without ssl-bump (install squid-openssl)"
	}
	if emu.Port() != 443 {
		return nil, "the emulator is not on port 443 (not root) and squid's hosts_file cannot name a port"
	}
	// Not t.TempDir: squid drops root to cache_effective_user, which must
	// reach the directory, and t.TempDir's parent is private to root.
	dir, err := os.MkdirTemp("", "bench-squid-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	writeCA(t, filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca.key"))
	upCA, err := os.ReadFile(emu.CAFile())
	if err != nil {
		t.Fatal(err)
	}
	must(t, os.WriteFile(filepath.Join(dir, "upstream-ca.pem"), upCA, 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "hosts"), []byte(emu.IP()+" dev.azure.com\n"), 0o644))
	if out, err := exec.Command(certgen, "-c", "-s", filepath.Join(dir, "ssl_db"), "-M", "4MB").CombinedOutput(); err != nil {
		t.Fatalf("%s -c: %v\n%s", certgen, err, out)
	}
	port := freePort(t)
	conf := fmt.Sprintf(`http_port 127.0.0.1:%[2]d ssl-bump generate-host-certificates=on dynamic_cert_mem_cache_size=4MB tls-cert=%[1]s/ca.pem tls-key=%[1]s/ca.key
sslcrtd_program %[3]s -s %[1]s/ssl_db -M 4MB
sslcrtd_children 8 startup=1 idle=1
acl step1 at_step SslBump1
ssl_bump peek step1
ssl_bump bump all
tls_outgoing_options cafile=%[1]s/upstream-ca.pem
hosts_file %[1]s/hosts
acl azdo dstdomain dev.azure.com
request_header_add Authorization "%[4]s" azdo
http_access allow all
cache deny all
cache_mem 0 MB
via off
forwarded_for delete
access_log none
cache_log %[1]s/cache.log
pid_filename %[1]s/squid.pid
coredump_dir %[1]s
netdb_filename none
pinger_enable off
shutdown_lifetime 0 seconds
`, dir, port, certgen, peerAuth(pat))
	if os.Geteuid() == 0 {
		conf += "cache_effective_user proxy\n" // Debian's squid user
	}
	// The PAT is in squid.conf (mode 0600), as squid needs it there.
	must(t, os.WriteFile(filepath.Join(dir, "squid.conf"), []byte(conf), 0o600))
	if os.Geteuid() == 0 {
		u, err := user.Lookup("proxy")
		if err != nil {
			t.Fatalf("squid as root needs a user to drop to: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		must(t, filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
			if err != nil {
				return err
			}
			return os.Lchown(p, uid, gid)
		}))
	}
	cmd := exec.Command(bin, "-N", "-f", filepath.Join(dir, "squid.conf"))
	cmd.Env = peerEnv()
	p := &peer{name: "squid " + version(bin, "-v", "Squid Cache: Version"), proxy: fmt.Sprintf("http://127.0.0.1:%d", port),
		caFile: filepath.Join(dir, "ca.pem")}
	p.pid = startPeer(t, cmd, filepath.Join(dir, "cache.log"), port)
	return p, ""
}

// startPeer starts cmd, stops it at the end of the test, and waits until
// it accepts connections on port; on failure it shows the log file.
func startPeer(t *testing.T, cmd *exec.Cmd, logFile string, port int) int {
	out, err := os.OpenFile(logFile+".out", os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	cmd.Stdout, cmd.Stderr = out, out
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	})
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	for deadline := time.Now().Add(90 * time.Second); time.Now().Before(deadline); {
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("%s exited: %v\n%s", cmd.Path, err, logTail(logFile))
		default:
		}
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return cmd.Process.Pid
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("%s did not listen on %s in 90 s\n%s", cmd.Path, addr, logTail(logFile))
	return 0
}

func logTail(logFile string) string {
	var s string
	for _, f := range []string{logFile, logFile + ".out"} {
		b, _ := os.ReadFile(f)
		if len(b) > 4000 {
			b = b[len(b)-4000:]
		}
		s += string(b)
	}
	return s
}

// peerEnv is the environment without proxy variables (the peers must
// connect to the emulator themselves) and without the project's.
func peerEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); !strings.HasPrefix(k, "AZDO_") && !strings.HasSuffix(strings.ToLower(k), "_proxy") {
			env = append(env, kv)
		}
	}
	return env
}

// version returns what follows prefix in the output of bin flag.
func version(bin, flag, prefix string) string {
	out, _ := exec.Command(bin, flag).CombinedOutput()
	for _, l := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), prefix); ok {
			return strings.TrimSpace(v)
		}
	}
	return "(unknown version)"
}

// freePort returns a loopback port that was free a moment ago (the peers
// take a port number, not a listener).
func freePort(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// writeCA writes a new self-signed RSA CA certificate and its key.
func writeCA(t *testing.T, certFile, keyFile string) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "bench peer CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	must(t, os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644))
	must(t, os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}), 0o600))
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// procTree returns pid and its descendants, from the parent field of
// every /proc/PID/stat.
func procTree(pid int) []int {
	parent := map[int]int{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		parent[p], _ = strconv.Atoi(f[1])
	}
	tree := []int{pid}
	for i := 0; i < len(tree); i++ {
		for p, pp := range parent {
			if pp == tree[i] {
				tree = append(tree, p)
			}
		}
	}
	return tree
}

// treeCPU returns the CPU time of pid's process tree: utime+stime of each
// live process plus cutime+cstime, the time of children it has reaped
// (helpers that came and went).
func treeCPU(pid int) time.Duration {
	var ticks int64
	for _, p := range procTree(pid) {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(p) + "/stat")
		if err != nil {
			continue // exited since procTree
		}
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		for _, i := range []int{11, 12, 13, 14} { // utime stime cutime cstime
			n, _ := strconv.ParseInt(f[i], 10, 64)
			ticks += n
		}
	}
	return time.Duration(ticks) * 10 * time.Millisecond
}

// treeStatusKB sums a "kB" field of /proc/PID/status over pid's process
// tree and returns the sum and the processes' names.
func treeStatusKB(t *testing.T, pid int, field string) (kb int, procs string) {
	var names []string
	for _, p := range procTree(pid) {
		kb += procStatusKB(t, p, field)
		b, _ := os.ReadFile("/proc/" + strconv.Itoa(p) + "/comm")
		names = append(names, strings.TrimSpace(string(b)))
	}
	return kb, strings.Join(names, " + ")
}
