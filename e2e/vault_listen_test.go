package e2e

import (
	"bufio"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/azdo-sidecar/azdo-sidecar/e2e/entraemu"
)

// TestVaultListenDefaults: the real binary. Without --listen the vault
// binds loopback only (127.0.0.1:8443); plain HTTP on 0.0.0.0 is refused
// with a non-zero exit naming --insecure-listen-any, and allowed with it
// (logged at WARN).
func TestVaultListenDefaults(t *testing.T) {
	w := newVaultWorld(t, entraemu.Config{})
	base := []string{"serve", "--config", w.cfgFile, "--key-file", w.keyFile, "--store", "sqlite:" + w.db, "--upstream-ca-file", w.caFile}

	// No --listen: the ready line names loopback. If another process holds
	// the port, the failure still names the loopback default.
	cmd := exec.Command(w.bin, base...)
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Scan()
		line <- sc.Text()
	}()
	select {
	case l := <-line:
		var ready struct{ Listen string }
		if l == "" {
			cmd.Wait()
			if !strings.Contains(stderr.String(), "127.0.0.1:8443") {
				t.Errorf("serve without --listen failed without naming 127.0.0.1:8443: %s", stderr.String())
			}
		} else if err := json.Unmarshal([]byte(l), &ready); err != nil || ready.Listen != "127.0.0.1:8443" {
			t.Errorf("serve without --listen: ready line %q; want listen 127.0.0.1:8443", l)
		}
	case <-time.After(30 * time.Second):
		t.Errorf("serve without --listen: no ready line after 30s: %s", stderr.String())
	}
	cmd.Process.Kill()
	cmd.Wait()

	out, err := exec.Command(w.bin, append(base, "--listen", "0.0.0.0:0")...).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "--insecure-listen-any") || !strings.Contains(string(out), "--tls-cert") {
		t.Errorf("serve --listen 0.0.0.0:0 without TLS = %v\n%s\nwant a non-zero exit naming --insecure-listen-any", err, out)
	}

	p, err := w.startErr("--listen", "0.0.0.0:0", "--insecure-listen-any")
	if err != nil {
		t.Fatalf("serve --listen 0.0.0.0:0 --insecure-listen-any: %v", err)
	}
	if !strings.Contains(p.stderr.String(), "--insecure-listen-any: serving plain HTTP") || !strings.Contains(p.stderr.String(), "WARN") {
		t.Errorf("no WARN about --insecure-listen-any at start:\n%s", p.stderr.String())
	}
}
