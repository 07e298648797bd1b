package sidecar

import (
	"bytes"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/azdo-sidecar/azdo-sidecar/secret"
)

type lockedBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}
func (l *lockedBuf) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

// TestUnreachableVaultAtStart: a --vault-url where nothing listens is
// logged as an error naming the URL and the reason, and status shows it.
func TestUnreachableVaultAtStart(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String()
	ln.Close()
	opts := testOptions(t)
	logs := &lockedBuf{}
	opts.Mode, opts.PAT, opts.VaultURL, opts.EnvToken = ModeVault, secret.String{}, url, secret.New("env-token-value")
	opts.Logger = slog.New(slog.NewTextHandler(logs, nil))
	s, err := Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown(t.Context())
	want := "cannot reach the vault at " + url + ": connection refused — check --vault-url"
	deadline := time.Now().Add(10 * time.Second)
	for s.Status().Vault != want {
		if time.Now().After(deadline) {
			t.Fatalf("Status().Vault = %q; want %q", s.Status().Vault, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if l := logs.String(); !strings.Contains(l, "level=ERROR") || !strings.Contains(l, want) {
		t.Errorf("log lacks the error:\n%s", l)
	}
}
