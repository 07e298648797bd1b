package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/azdo-sidecar/azdo-sidecar/credential"
	"github.com/azdo-sidecar/azdo-sidecar/e2e/testenv"
	"github.com/azdo-sidecar/azdo-sidecar/secret"
	"github.com/azdo-sidecar/azdo-sidecar/token"
)

// credentialFill runs `git credential fill` for rawURL and returns stdout,
// stderr and the error.
func credentialFill(g *testenv.Git, rawURL string) (stdout, stderr string, err error) {
	cmd := g.Command("git", "credential", "fill")
	cmd.Stdin = strings.NewReader("url=" + rawURL + "\n\n")
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}

// credentialSocket starts an in-process credential server for src on a
// short private socket path and stops it at the end of the test.
func credentialSocket(t *testing.T, src token.Source) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "e2ecred")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "run", "sock")
	ln, err := credential.Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	srv := &credential.Server{Handler: credential.NewTokenHandler(src, nil), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		<-done
	})
	return path
}

var (
	adoURLs = []string{
		"https://dev.azure.com/org/proj/_git/repo",
		"https://org.visualstudio.com/proj/_git/repo",
	}
	otherURLs = []string{
		"https://github.com/o/r",
		"https://dev.azure.com.evil.test/o/p/_git/r",
	}
)

// TestCredentialFillStandalone: real git 2.39 with the built helper in
// standalone mode gets the PAT for Azure DevOps and nothing for other hosts.
func TestCredentialFillStandalone(t *testing.T) {
	helper := testenv.Binary(t, "git-credential-azdo")
	const pat = "pat-e2e-standalone-5c1d"
	patFile := filepath.Join(t.TempDir(), "pat")
	if err := os.WriteFile(patFile, []byte(pat+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	g := testenv.NewGit(t)
	g.SetConfig(t, "credential.helper", helper+" --pat-file "+patFile)
	g.SetConfig(t, "credential.useHttpPath", "true")

	for _, u := range adoURLs {
		out, errOut, err := credentialFill(g, u)
		if err != nil {
			t.Fatalf("git credential fill %s: %v (%s)", u, err, errOut)
		}
		if !strings.Contains(out, "\nusername=azdo-sidecar\npassword="+pat+"\n") {
			t.Errorf("git credential fill %s = %q; want the PAT with user azdo-sidecar", u, out)
		}
	}
	for _, u := range otherURLs {
		out, errOut, err := credentialFill(g, u)
		if err == nil || strings.Contains(out, "password=") {
			t.Errorf("git credential fill %s = %q, %v; want git to fail for want of a credential", u, out, err)
		}
		if !strings.Contains(errOut, "terminal prompts disabled") || strings.Contains(errOut, "git-credential-azdo") || strings.Contains(errOut, pat) {
			t.Errorf("git credential fill %s stderr = %q; want only git's own prompt failure", u, errOut)
		}
	}

	// With a second helper behind ours, git reaches it exactly when ours
	// gave nothing.
	g.AddConfig(t, "credential.helper", "!f() { test \"$1\" = get && printf 'username=next\\npassword=next-helper\\n'; }; f")
	for _, u := range otherURLs {
		out, errOut, err := credentialFill(g, u)
		if err != nil || !strings.Contains(out, "password=next-helper") {
			t.Errorf("git credential fill %s = %q, %v (%s); want the next helper's answer", u, out, err, errOut)
		}
	}
	for _, u := range adoURLs {
		out, _, _ := credentialFill(g, u)
		if !strings.Contains(out, "password="+pat) {
			t.Errorf("git credential fill %s = %q; want ours first", u, out)
		}
	}
}

// countingSource is a slow token source that counts its calls.
type countingSource struct {
	calls atomic.Int32
	delay time.Duration
	tok   token.Token
	err   error
}

func (s *countingSource) Token(ctx context.Context, key token.Key) (token.Token, error) {
	s.calls.Add(1)
	select {
	case <-time.After(s.delay):
	case <-ctx.Done():
		return token.Token{}, ctx.Err()
	}
	return s.tok, s.err
}

// TestCredentialFillSidecar: the helper by absolute path, by name, and git's
// own credential-cache client all reach the sidecar's credential socket.
func TestCredentialFillSidecar(t *testing.T) {
	helper := testenv.Binary(t, "git-credential-azdo")
	const jwt = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.e2e.sig"
	exp := time.Now().Add(time.Hour).Truncate(time.Second)
	src := &countingSource{tok: token.Token{Kind: token.Bearer, Secret: secret.New(jwt), ExpiresAt: exp}}
	cache := token.NewCache(src, token.CacheOptions{})
	t.Cleanup(func() { cache.Close() })
	sock := credentialSocket(t, cache)

	tests := []struct{ name, helper string }{
		{"absolute path", helper + " --socket " + sock},
		{"by name", "azdo"},
		{"git credential-cache", "cache --socket=" + sock},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := testenv.NewGit(t)
			g.Setenv("PATH", filepath.Dir(helper)+string(os.PathListSeparator)+g.Getenv("PATH"))
			g.Setenv("AZDO_SOCKET", sock)
			g.SetConfig(t, "credential.helper", tt.helper)
			g.SetConfig(t, "credential.useHttpPath", "true")
			for _, u := range adoURLs {
				out, errOut, err := credentialFill(g, u)
				if err != nil {
					t.Fatalf("git credential fill %s: %v (%s)", u, err, errOut)
				}
				if !strings.Contains(out, "\nusername=azdo-sidecar\npassword="+jwt+"\n") {
					t.Errorf("git credential fill %s = %q; want the token as password", u, out)
				}
			}
			for _, u := range otherURLs {
				out, _, err := credentialFill(g, u)
				if err == nil || strings.Contains(out, "password=") {
					t.Errorf("git credential fill %s = %q, %v; want nothing", u, out, err)
				}
			}
		})
	}
	// One fetch per (host, org): dev.azure.com/org and org.visualstudio.com.
	if n := src.calls.Load(); n != 2 {
		t.Errorf("source called %d times; want 2 (one per key, then cached)", n)
	}
}

// TestCredentialFillConnectRequired: when the user must connect, git fails
// at once with the connect URL on stderr and never prompts.
func TestCredentialFillConnectRequired(t *testing.T) {
	helper := testenv.Binary(t, "git-credential-azdo")
	const connectURL = "https://runner.example.test:8443/connect?host=dev.azure.com&org=org"
	src := &countingSource{err: &token.ConnectError{Key: token.Key{Host: "dev.azure.com", Org: "org"}, ConnectURL: connectURL}}
	sock := credentialSocket(t, src)
	g := testenv.NewGit(t)
	g.SetConfig(t, "credential.helper", helper+" --socket "+sock)
	// A helper behind ours would be a prompt in disguise: quit=1 must stop git first.
	g.AddConfig(t, "credential.helper", "!f() { printf 'username=next\\npassword=next\\n'; }; f")
	start := time.Now()
	out, errOut, err := credentialFill(g, "https://dev.azure.com/org/proj/_git/repo")
	if err == nil || strings.Contains(out, "password=") {
		t.Fatalf("git credential fill = %q, %v; want failure", out, err)
	}
	if !strings.Contains(errOut, connectURL) || !strings.Contains(errOut, "told us to quit") {
		t.Errorf("stderr = %q; want the connect URL and git quitting", errOut)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("git took %s; want it to fail fast", d)
	}
}

// TestCredentialNoSidecar: the helper says how to start the sidecar.
func TestCredentialNoSidecar(t *testing.T) {
	helper := testenv.Binary(t, "git-credential-azdo")
	g := testenv.NewGit(t)
	g.SetConfig(t, "credential.helper", helper+" --socket "+filepath.Join(t.TempDir(), "none", "sock"))
	_, errOut, err := credentialFill(g, "https://dev.azure.com/org/proj/_git/repo")
	if err == nil || !strings.Contains(errOut, "azdo-sidecar serve") {
		t.Errorf("git credential fill = %v, stderr %q; want a failure saying to start azdo-sidecar serve", err, errOut)
	}
}

// TestCredentialConcurrentGets: 1000 `git-credential-azdo get` processes
// against one server with a token.Cache in front of a slow source cause
// exactly one source call.
func TestCredentialConcurrentGets(t *testing.T) {
	if testing.Short() {
		t.Skip("starts 1000 processes")
	}
	helper := testenv.Binary(t, "git-credential-azdo")
	src := &countingSource{delay: 2 * time.Second, tok: token.Token{Kind: token.Basic, Secret: secret.New("pat-concurrent"), ExpiresAt: time.Now().Add(time.Hour)}}
	cache := token.NewCache(src, token.CacheOptions{})
	t.Cleanup(func() { cache.Close() })
	sock := credentialSocket(t, cache)
	g := testenv.NewGit(t)

	const n = 1000
	sem := make(chan struct{}, 250) // processes alive at once
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			cmd := g.Command(helper, "--socket", sock, "get")
			cmd.Stdin = strings.NewReader(fmt.Sprintf("protocol=https\nhost=dev.azure.com\npath=org/proj/_git/repo%d\n\n", i))
			var o, e bytes.Buffer
			cmd.Stdout, cmd.Stderr = &o, &e
			if err := cmd.Run(); err != nil || !strings.Contains(o.String(), "password=pat-concurrent") {
				errs <- fmt.Errorf("helper %d: %v, stdout %q, stderr %q", i, err, o.String(), e.String())
			}
		})
	}
	wg.Wait()
	close(errs)
	var failed []error
	for err := range errs {
		failed = append(failed, err)
	}
	if len(failed) > 0 {
		t.Fatalf("%d of %d helpers failed; first: %v", len(failed), n, errors.Join(failed[:min(3, len(failed))]...))
	}
	if c := src.calls.Load(); c != 1 {
		t.Errorf("source called %d times for %d concurrent gets; want 1", c, n)
	}
}
