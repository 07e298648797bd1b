package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/azdo-sidecar/azdo-sidecar/e2e/azdoemu"
	"github.com/azdo-sidecar/azdo-sidecar/e2e/testenv"
	"github.com/azdo-sidecar/azdo-sidecar/vault"
	"github.com/azdo-sidecar/azdo-sidecar/vault/store"
)

// TestBenchHelperBurst starts AZDO_BENCH_HELPERS (default 1000) `git
// credential fill` processes at once against a sidecar in vault mode
// (real azdo-vault, PAT stored), first with the sidecar's token cache
// cold (the burst shares one vault fetch), then warm, and reports how many
// failed and the latencies. On demand only: bench/helpers.sh.
func TestBenchHelperBurst(t *testing.T) {
	if os.Getenv("AZDO_BENCH") == "" {
		t.Skip("benchmark: run bench/helpers.sh")
	}
	n := 1000
	if v, err := strconv.Atoi(os.Getenv("AZDO_BENCH_HELPERS")); err == nil && v > 0 {
		n = v
	}
	pat := azdoemu.NewPAT()
	w := newProxyVaultWorld(t, func(w *proxyVaultWorld) {
		if err := w.emu.AddPAT(azdoemu.PAT{Token: pat, Org: "contoso"}); err != nil {
			t.Fatal(err)
		}
		w.vw.put(vault.Credential{Owner: vaultUser, Host: vaultHost, Kind: store.PAT, Secret: pat})
	})
	helper := testenv.Binary(t, "git-credential-azdo")
	w.git.SetConfig(t, "credential.helper", helper+" --socket "+w.sc.Socket)
	w.git.SetConfig(t, "credential.useHttpPath", "true")

	burst := func(name string) {
		var mu sync.Mutex
		var lat []time.Duration
		failures := map[string]int{}
		var wg sync.WaitGroup
		start := make(chan struct{})
		t0 := time.Now()
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				// Not w.git.Command: its WaitDelay (5 s) expires under a
				// burst like this before the output is copied.
				cmd := exec.Command("git", "credential", "fill")
				cmd.Env, cmd.Dir = w.git.Env(), w.git.Dir
				cmd.Stdin = strings.NewReader(fmt.Sprintf("url=https://dev.azure.com/contoso/Web/_git/site%d\n\n", i%7))
				<-start
				s := time.Now()
				out, err := cmd.CombinedOutput()
				d := time.Since(s)
				mu.Lock()
				defer mu.Unlock()
				lat = append(lat, d)
				if err != nil || !strings.Contains(string(out), "password="+pat.Reveal()) {
					msg := string(out)
					if i := strings.IndexByte(msg, '\n'); i > 0 {
						msg = msg[:i]
					}
					failures[fmt.Sprintf("%v: %s", err, msg)]++
				}
			}()
		}
		close(start)
		wg.Wait()
		total := time.Since(t0)
		slices.Sort(lat)
		failed := 0
		for _, c := range failures {
			failed += c
		}
		fmt.Printf("%s: %d concurrent `git credential fill` in %s: %d failed; latency p50 %s, p99 %s, max %s\n",
			name, n, total.Round(time.Millisecond), failed,
			lat[len(lat)/2].Round(time.Millisecond), lat[len(lat)*99/100].Round(time.Millisecond), lat[len(lat)-1].Round(time.Millisecond))
		for msg, c := range failures {
			fmt.Printf("  %d× %s\n", c, msg)
		}
		if failed > 0 {
			t.Errorf("%s: %d of %d credential fills failed", name, failed, n)
		}
	}
	burst("cold cache")
	burst("warm cache")
}
