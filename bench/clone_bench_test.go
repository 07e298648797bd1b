//go:build bench

// Package bench holds on-demand benchmarks (not run by CI). Run this one
// with bench/clone.sh.
package bench

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/azdo-sidecar/azdo-sidecar/azdo"
	"github.com/azdo-sidecar/azdo-sidecar/clone"
	"github.com/azdo-sidecar/azdo-sidecar/e2e/azdoemu"
	"github.com/azdo-sidecar/azdo-sidecar/e2e/testenv"
	"github.com/azdo-sidecar/azdo-sidecar/token"
)

// TestCloneBench clones the same repository of about BENCH_MB MiB (default
// 100: BENCH_MB commits of 1 MiB of incompressible data) from the strict
// emulator with go-git (clone.Clone, in process) and with `git clone`,
// BENCH_ROUNDS times each (default 5), interleaved so that machine load
// hits both alike, and reports the medians and their ratio.
func TestCloneBench(t *testing.T) {
	mb := envInt("BENCH_MB", 100)
	rounds := envInt("BENCH_ROUNDS", 5)
	emu := testenv.StartAzDO(t, azdoemu.Config{Logf: func(string, ...any) {}})
	pat := azdoemu.NewPAT()
	if err := emu.AddPAT(azdoemu.PAT{Token: pat}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	seed := testenv.Seed(t, emu, "contoso", "bench", "big", testenv.SeedOptions{Commits: mb, Bytes: 1 << 20})
	t.Logf("seeded %d MiB in %s", mb, time.Since(start).Round(time.Millisecond))

	g := testenv.NewGit(t)
	testenv.Reach(t, g, emu)
	g.Setenv("GIT_CONFIG_COUNT", "1")
	g.Setenv("GIT_CONFIG_KEY_0", "http.extraHeader")
	g.Setenv("GIT_CONFIG_VALUE_0", "Authorization: Basic "+base64.StdEncoding.EncodeToString([]byte("bench:"+pat.Reveal())))

	const url = "https://dev.azure.com/contoso/bench/_git/big"
	hc := clone.NewHTTPClient(clone.HTTPOptions{
		Resolve: map[string]string{"dev.azure.com:443": emu.Addr()},
		RootCAs: emu.CertPool(),
	})
	var goGit, cli []time.Duration
	for i := range rounds {
		dir := filepath.Join(t.TempDir(), "gogit")
		t0 := time.Now()
		res, err := clone.Clone(context.Background(), clone.Options{
			URL: url, Dir: dir, Hosts: (*azdo.Hosts)(nil), Tokens: token.NewStatic(pat),
			HTTPClient: hc, Progress: io.Discard,
		})
		if err != nil {
			t.Fatalf("go-git clone: %v", err)
		}
		goGit = append(goGit, time.Since(t0))
		if res.Head != seed.Head {
			t.Fatalf("go-git HEAD %s; want %s", res.Head, seed.Head)
		}
		os.RemoveAll(dir)

		dir = filepath.Join(t.TempDir(), "cli")
		t0 = time.Now()
		g.Run(t, "clone", "--quiet", url, dir)
		cli = append(cli, time.Since(t0))
		if got := g.Run(t, "-C", dir, "rev-parse", "HEAD"); got != seed.Head {
			t.Fatalf("git HEAD %s; want %s", got, seed.Head)
		}
		os.RemoveAll(dir)
		t.Logf("round %d: go-git %s, git %s", i+1, goGit[i].Round(time.Millisecond), cli[i].Round(time.Millisecond))
	}
	mg, mc := median(goGit), median(cli)
	fmt.Printf("clone of %d MiB, %d interleaved rounds: go-git median %s, git CLI median %s, ratio go-git/git = %.2f\n",
		mb, rounds, mg.Round(time.Millisecond), mc.Round(time.Millisecond), float64(mg)/float64(mc))
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}
