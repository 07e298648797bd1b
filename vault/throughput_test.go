package vault

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/azdo-sidecar/azdo-sidecar/sealbox"
	"github.com/azdo-sidecar/azdo-sidecar/secret"
	"github.com/azdo-sidecar/azdo-sidecar/vault/store"
	"github.com/azdo-sidecar/azdo-sidecar/vault/store/pgtest"
	"github.com/azdo-sidecar/azdo-sidecar/vaultapi"
)

// TestBenchTokenThroughput measures POST /v1/token over loopback HTTP with
// AZDO_BENCH_ENVS environments (default 10,000) of AZDO_BENCH_OWNERS
// owners (default 1,000, each with a PAT), on SQLite and on PostgreSQL:
// AZDO_BENCH_CLIENTS concurrent clients (default 16) ask for AZDO_BENCH_SECONDS
// (default 10) with random environment tokens and seal_to, as sidecars do.
// It reports requests per second and latency percentiles. On demand only:
// bench/vault.sh.
func TestBenchTokenThroughput(t *testing.T) {
	if os.Getenv("AZDO_BENCH") == "" {
		t.Skip("benchmark: run bench/vault.sh")
	}
	envs := benchEnv("AZDO_BENCH_ENVS", 10000)
	owners := benchEnv("AZDO_BENCH_OWNERS", 1000)
	clients := benchEnv("AZDO_BENCH_CLIENTS", 16)
	seconds := benchEnv("AZDO_BENCH_SECONDS", 10)
	stores := []struct {
		name string
		open func(t *testing.T) store.Store
	}{
		{"SQLite", func(t *testing.T) store.Store {
			st, err := store.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "vault.db"), time.Now)
			if err != nil {
				t.Fatal(err)
			}
			return st
		}},
		{"PostgreSQL", func(t *testing.T) store.Store {
			st, err := store.OpenPostgres(context.Background(), pgtest.URL(t), time.Now)
			if err != nil {
				t.Fatal(err)
			}
			return st
		}},
	}
	for _, sc := range stores {
		t.Run(sc.name, func(t *testing.T) {
			st := sc.open(t)
			defer st.Close()
			kp, err := sealbox.Generate()
			if err != nil {
				t.Fatal(err)
			}
			v, err := New(Config{
				Keys: kp, Store: st, PublicURL: publicURL,
				Providers: []Provider{{Host: host, PAT: true}},
				Logger:    slog.New(slog.DiscardHandler),
			})
			if err != nil {
				t.Fatal(err)
			}
			defer v.Close()
			ctx := context.Background()
			t0 := time.Now()
			for o := range owners {
				if _, err := v.PutCredential(ctx, Credential{Owner: fmt.Sprintf("user%05d@contoso.example", o), Host: host, Org: store.AllOrgs,
					Kind: store.PAT, Secret: secret.New(fmt.Sprintf("pat-%05d-secretvalue", o))}); err != nil {
					t.Fatal(err)
				}
			}
			toks := make([]string, envs)
			for i := range envs {
				_, tok, err := NewEnvironment(ctx, st, v.Binding(), time.Now(), fmt.Sprintf("user%05d@contoso.example", i%owners), 24*time.Hour)
				if err != nil {
					t.Fatal(err)
				}
				toks[i] = tok.Reveal()
			}
			t.Logf("%s: %d owners, %d environments created in %s", sc.name, owners, envs, time.Since(t0).Round(time.Millisecond))

			srv := httptest.NewServer(v.Mux())
			defer srv.Close()
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}, Timeout: 30 * time.Second}
			sidecarKey, _ := sealbox.Generate()
			body, _ := json.Marshal(vaultapi.TokenRequest{Host: host, Org: "contoso", MinValidSeconds: 300, SealTo: sidecarKey.Public.String()})
			ask := func(tok string) (time.Duration, error) {
				r, _ := http.NewRequest(http.MethodPost, srv.URL+vaultapi.TokenPath, bytes.NewReader(body))
				r.Header.Set("Authorization", "Bearer "+tok)
				r.Header.Set("Content-Type", "application/json")
				s := time.Now()
				resp, err := client.Do(r)
				if err != nil {
					return 0, err
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					return 0, fmt.Errorf("status %d", resp.StatusCode)
				}
				return time.Since(s), nil
			}
			if _, err := ask(toks[0]); err != nil {
				t.Fatalf("first token: %v", err)
			}
			var mu sync.Mutex
			var lat []time.Duration
			var failed int
			stop := time.Now().Add(time.Duration(seconds) * time.Second)
			var wg sync.WaitGroup
			cpu0 := processCPU()
			start := time.Now()
			for range clients {
				wg.Add(1)
				go func() {
					defer wg.Done()
					var mine []time.Duration
					bad := 0
					for time.Now().Before(stop) {
						d, err := ask(toks[rand.IntN(len(toks))])
						if err != nil {
							bad++
							continue
						}
						mine = append(mine, d)
					}
					mu.Lock()
					lat, failed = append(lat, mine...), failed+bad
					mu.Unlock()
				}()
			}
			wg.Wait()
			elapsed := time.Since(start)
			cpu := processCPU() - cpu0
			slices.Sort(lat)
			pct := func(p float64) time.Duration { return lat[min(len(lat)-1, int(float64(len(lat))*p))] }
			fmt.Printf("%s, %d environments, %d clients, %ds: %d requests, %.0f req/s, %d failed, %.0f µs CPU per request (vault and clients); latency p50 %s, p90 %s, p99 %s, max %s\n",
				sc.name, envs, clients, seconds, len(lat), float64(len(lat))/elapsed.Seconds(), failed, float64(cpu.Microseconds())/float64(len(lat)),
				pct(0.5).Round(10*time.Microsecond), pct(0.9).Round(10*time.Microsecond), pct(0.99).Round(10*time.Microsecond), lat[len(lat)-1].Round(10*time.Microsecond))
			if failed > 0 {
				t.Errorf("%d requests failed", failed)
			}
		})
	}
}

// processCPU returns the user and system CPU time of this process so far
// (the vault, its store driver and the clients; PostgreSQL's own work is
// in its server processes and not counted).
func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func benchEnv(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}
