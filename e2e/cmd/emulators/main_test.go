package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"crypto/tls"
	"crypto/x509"
	"net"
)

func TestRunPrintsReadyLineAndStops(t *testing.T) {
	pat := filepath.Join(t.TempDir(), "pat")
	if err := os.WriteFile(pat, []byte("pat-for-emulators-test\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--repo", "contoso/Web/site", "--pat-file", pat}, pw, io.Discard)
		pw.Close()
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatalf("reading ready line: %v", err)
	}
	var ready Ready
	if err := json.Unmarshal([]byte(line), &ready); err != nil {
		t.Fatalf("ready line %q: %v", line, err)
	}
	if ready.AzDO == "" || !strings.HasPrefix(ready.Entra, "https://") || ready.CAFile == "" || ready.TenantID == "" {
		t.Errorf("ready = %+v; want azdo, entra, ca_file and tenant_id", ready)
	}
	if strings.Contains(line, "pat-for-emulators-test") {
		t.Errorf("ready line contains the PAT")
	}

	// Both emulators answer over TLS trusted through ca_file.
	pem, err := os.ReadFile(ready.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatal("ca_file holds no certificate")
	}
	d := &net.Dialer{Timeout: 5 * time.Second}
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool},
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if strings.HasPrefix(addr, "dev.azure.com:") {
				addr = ready.AzDO
			}
			return d.DialContext(ctx, network, addr)
		},
	}}
	req, _ := http.NewRequest(http.MethodGet, "https://dev.azure.com/contoso/Web/_git/site/info/refs?service=git-upload-pack", nil)
	req.SetBasicAuth("u", "pat-for-emulators-test")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("info/refs with the PAT = %d; want 200", resp.StatusCode)
	}
	resp, err = c.Get(ready.EntraIssuer + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("Entra discovery = %d; want 200", resp.StatusCode)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run = %v; want nil after cancel", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not stop after cancel")
	}
}
