//go:build bench

// Package bench holds on-demand benchmarks (not run by CI). Run this one
// with bench/clone.sh.
package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
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
	var head string
	shape := os.Getenv("BENCH_SHAPE")
	switch shape {
	case "source":
		head = seedSource(t, emu, mb)
	default:
		shape = "blobs"
		head = testenv.Seed(t, emu, "contoso", "bench", "big", testenv.SeedOptions{Commits: mb, Bytes: 1 << 20}).Head
	}
	t.Logf("seeded %d MiB (%s) in %s", mb, shape, time.Since(start).Round(time.Millisecond))

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
		if res.Head != head {
			t.Fatalf("go-git HEAD %s; want %s", res.Head, head)
		}
		os.RemoveAll(dir)

		dir = filepath.Join(t.TempDir(), "cli")
		t0 = time.Now()
		g.Run(t, "clone", "--quiet", url, dir)
		cli = append(cli, time.Since(t0))
		if got := g.Run(t, "-C", dir, "rev-parse", "HEAD"); got != head {
			t.Fatalf("git HEAD %s; want %s", got, head)
		}
		os.RemoveAll(dir)
		t.Logf("round %d: go-git %s, git %s", i+1, goGit[i].Round(time.Millisecond), cli[i].Round(time.Millisecond))
	}
	mg, mc := median(goGit), median(cli)
	fmt.Printf("clone of %d MiB (%s), %d interleaved rounds: go-git median %s, git CLI median %s, ratio go-git/git = %.2f\n",
		mb, shape, rounds, mg.Round(time.Millisecond), mc.Round(time.Millisecond), float64(mg)/float64(mc))
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

// seedSource creates contoso/bench/big shaped like a source tree: about mb
// MiB of compressible text in 4 KiB files, then 30 commits that each change
// 2% of the files, so that the pack is mostly deltas. It returns main's tip.
func seedSource(t *testing.T, emu *azdoemu.Server, mb int) string {
	t.Helper()
	bare, err := emu.CreateRepo("contoso", "bench", "big")
	if err != nil {
		t.Fatal(err)
	}
	g := testenv.NewGit(t)
	cmd := g.Command("git", "fast-import", "--quiet")
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
	files := mb * 256 // 4 KiB each
	words := strings.Fields("func return if else for range var const type struct interface map chan go defer select case switch package import error nil true false string int byte")
	content := func(i, version int) []byte {
		rng := rand.New(rand.NewPCG(uint64(i), 7))
		var b bytes.Buffer
		for b.Len() < 4096 {
			b.WriteString(words[rng.IntN(len(words))])
			if rng.IntN(8) == 0 {
				b.WriteByte('\n')
			} else {
				b.WriteByte(' ')
			}
		}
		for v := range version {
			fmt.Fprintf(&b, "// change %d\n", v+1)
		}
		return b.Bytes()
	}
	bw := bufio.NewWriterSize(in, 1<<20)
	commit := func(n int, msg string, changed func(yield func(int))) {
		fmt.Fprintf(bw, "commit refs/heads/main\ncommitter Bench <bench@example.com> %d +0000\ndata %d\n%s\n", 1700000000+n, len(msg), msg)
		changed(func(i int) {
			c := content(i, n)
			fmt.Fprintf(bw, "M 100644 inline src/d%03d/f%05d.go\ndata %d\n", i%500, i, len(c))
			bw.Write(c)
			bw.WriteByte('\n')
		})
	}
	commit(0, "initial", func(yield func(int)) {
		for i := range files {
			yield(i)
		}
	})
	for n := 1; n <= 30; n++ {
		commit(n, fmt.Sprintf("change %d", n), func(yield func(int)) {
			for i := n; i < files; i += 50 {
				yield(i)
			}
		})
	}
	if err := bw.Flush(); err != nil {
		t.Fatal(err)
	}
	in.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("git fast-import: %v\n%s", err, out.String())
	}
	gc := g.Command("git", "gc", "--quiet")
	gc.Dir = bare
	if b, err := gc.CombinedOutput(); err != nil {
		t.Fatalf("git gc: %v\n%s", err, b)
	}
	return g.Run(t, "--git-dir", bare, "rev-parse", "refs/heads/main")
}
