package credential

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/azdo-sidecar/azdo-sidecar/azdo"
	"github.com/azdo-sidecar/azdo-sidecar/secret"
	"github.com/azdo-sidecar/azdo-sidecar/token"
)

const jwt = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.payload.sig"

// fakeSource answers fixed results and records keys and invalidations.
type fakeSource struct {
	mu          sync.Mutex
	tok         token.Token
	err         error
	keys        []token.Key
	invalidated []token.Token
}

func (f *fakeSource) Token(_ context.Context, key token.Key) (token.Token, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.keys = append(f.keys, key)
	return f.tok, f.err
}

func (f *fakeSource) Invalidate(key token.Key, rejected token.Token) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.keys = append(f.keys, key)
	f.invalidated = append(f.invalidated, rejected)
}

func TestTokenHandlerGet(t *testing.T) {
	exp := time.Unix(1900000000, 0).UTC()
	bearer := token.Token{Kind: token.Bearer, Secret: secret.New(jwt), ExpiresAt: exp}
	pat := token.Token{Kind: token.Basic, Secret: secret.New("pat-123")}
	connect := &token.ConnectError{Key: token.Key{Host: "dev.azure.com", Org: "org"}, ConnectURL: "https://runner.example/connect?host=dev.azure.com&org=org"}
	withPAT := &token.ConnectError{Key: connect.Key, ConnectURL: connect.ConnectURL, PATURL: "https://runner.example/pat?x=1"}
	hosts, err := azdo.NewHosts([]string{"tfs.corp.example:8443"})
	if err != nil {
		t.Fatal(err)
	}
	const ado = "protocol=https\nhost=dev.azure.com\npath=org/proj/_git/repo\n"
	tests := []struct {
		name    string
		req     string
		tok     token.Token
		err     error
		want    string // Write of the answer; "" for none
		wantKey token.Key
	}{
		{"bearer as basic password", ado, bearer, nil,
			"username=azdo-sidecar\npassword=" + jwt + "\npassword_expiry_utc=1900000000\n", token.Key{Host: "dev.azure.com", Org: "org"}},
		{"bearer with authtype capability", "capability[]=authtype\n" + ado, bearer, nil,
			"capability[]=authtype\nauthtype=Bearer\ncredential=" + jwt + "\nephemeral=1\npassword_expiry_utc=1900000000\n", token.Key{Host: "dev.azure.com", Org: "org"}},
		{"pat", ado, pat, nil, "username=azdo-sidecar\npassword=pat-123\n", token.Key{Host: "dev.azure.com", Org: "org"}},
		{"pat expiring soon: a warning for stderr", ado, token.Token{Kind: token.Basic, Secret: secret.New("pat-123"), Notice: "your personal access token for dev.azure.com/org expires on 2026-12-08; create a new one and paste it at https://runner.example/pat?x=1"}, nil,
			"username=azdo-sidecar\npassword=pat-123\n" + MessageKey + "=azdo-sidecar: warning: your personal access token for dev.azure.com/org expires on 2026-12-08; create a new one and paste it at https://runner.example/pat?x=1\n", token.Key{Host: "dev.azure.com", Org: "org"}},
		{"pat with authtype capability stays basic", "capability[]=authtype\n" + ado, pat, nil,
			"username=azdo-sidecar\npassword=pat-123\n", token.Key{Host: "dev.azure.com", Org: "org"}},
		{"pat with vault user name", ado, token.Token{Kind: token.Basic, Username: "me", Secret: secret.New("p")}, nil,
			"username=me\npassword=p\n", token.Key{Host: "dev.azure.com", Org: "org"}},
		{"token never in user name", ado, token.Token{Kind: token.Basic, Username: "p", Secret: secret.New("p")}, nil,
			"username=azdo-sidecar\npassword=p\n", token.Key{Host: "dev.azure.com", Org: "org"}},
		{"bearer ignores source user name", ado, token.Token{Kind: token.Bearer, Username: "x", Secret: secret.New("t")}, nil,
			"username=azdo-sidecar\npassword=t\n", token.Key{Host: "dev.azure.com", Org: "org"}},
		{"org from user name is kept as user name", "protocol=https\nhost=dev.azure.com\nusername=Contoso\n", bearer, nil,
			"username=Contoso\npassword=" + jwt + "\npassword_expiry_utc=1900000000\n", token.Key{Host: "dev.azure.com", Org: "contoso"}},
		{"user name that is not the org is replaced", "protocol=https\nhost=dev.azure.com\npath=org/p/_git/r\nusername=someone\n", pat, nil,
			"username=azdo-sidecar\npassword=pat-123\n", token.Key{Host: "dev.azure.com", Org: "org"}},
		{"org from subdomain", "protocol=https\nhost=Contoso.VisualStudio.com\n", pat, nil,
			"username=azdo-sidecar\npassword=pat-123\n", token.Key{Host: "contoso.visualstudio.com", Org: "contoso"}},
		{"default port dropped", "protocol=https\nhost=dev.azure.com:443\npath=org/p/_git/r\n", pat, nil,
			"username=azdo-sidecar\npassword=pat-123\n", token.Key{Host: "dev.azure.com", Org: "org"}},
		{"self-hosted", "protocol=https\nhost=tfs.corp.example:8443\npath=tfs/Coll/proj/_git/r\n", pat, nil,
			"username=azdo-sidecar\npassword=pat-123\n", token.Key{Host: "tfs.corp.example:8443", Org: "coll"}},
		{"connect required", ado, token.Token{}, connect,
			"quit=1\nazdo_message=azdo-sidecar: " + connect.Error() + "\n", token.Key{Host: "dev.azure.com", Org: "org"}},
		{"forbidden by the environment's policy", ado, token.Token{}, &token.ForbiddenError{Key: token.Key{Host: "dev.azure.com", Org: "org"}, Message: "this environment may use only dev.azure.com/contoso"},
			"quit=1\nazdo_message=azdo-sidecar: Azure DevOps (dev.azure.com/org): forbidden by this environment's policy: this environment may use only dev.azure.com/contoso\n", token.Key{Host: "dev.azure.com", Org: "org"}},
		{"connect required, PAT page offered too", ado, token.Token{}, withPAT,
			"quit=1\nazdo_message=azdo-sidecar: " + connect.Error() + " (or, to use a personal access token instead: https://runner.example/pat?x=1)\n", token.Key{Host: "dev.azure.com", Org: "org"}},
		{"source down", ado, token.Token{}, fmt.Errorf("vault: %w", token.ErrUnavailable),
			"quit=1\nazdo_message=azdo-sidecar: no token for dev.azure.com/org: vault: token: source unavailable\n", token.Key{Host: "dev.azure.com", Org: "org"}},
		{"no credential lets git move on, saying why", ado, token.Token{}, fmt.Errorf("no token source, start with --pat-file: %w", token.ErrNoCredential),
			"azdo_message=azdo-sidecar: no token source, start with --pat-file: token: no credential for this host\n", token.Key{Host: "dev.azure.com", Org: "org"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := &fakeSource{tok: tt.tok, err: tt.err}
			h := NewTokenHandler(src, hosts)
			req, err := Parse([]byte(tt.req))
			if err != nil {
				t.Fatal(err)
			}
			ans, err := h.ServeCredential(context.Background(), ActionGet, req)
			if err != nil {
				t.Fatalf("ServeCredential(get, %q) error = %v", tt.req, err)
			}
			var got string
			if ans != nil {
				b, err := Append(nil, ans)
				if err != nil {
					t.Fatalf("answer does not encode: %v", err)
				}
				got = string(b)
			}
			if got != tt.want {
				t.Errorf("ServeCredential(get, %q) = %q; want %q", tt.req, got, tt.want)
			}
			if len(src.keys) != 1 || src.keys[0] != tt.wantKey {
				t.Errorf("source asked for %v; want [%v]", src.keys, tt.wantKey)
			}
		})
	}
}

// TestTokenHandlerEraseMatchesGet: whatever user name git sends back with
// erase, the token the get handed out is the one invalidated.
func TestTokenHandlerEraseMatchesGet(t *testing.T) {
	tests := []struct{ name, get string }{
		{"path", "protocol=https\nhost=dev.azure.com\npath=org/p/_git/r\n"},
		{"org@ without path", "protocol=https\nhost=dev.azure.com\nusername=org\n"},
		{"nothing", "protocol=https\nhost=dev.azure.com\n"},
		{"legacy host", "protocol=https\nhost=org.visualstudio.com\n"},
	}
	for _, tt := range tests {
		for _, kind := range []token.Kind{token.Basic, token.Bearer} {
			t.Run(tt.name+"/"+string(kind), func(t *testing.T) {
				src := &fakeSource{tok: token.Token{Kind: kind, Username: "vault-user", Secret: secret.New("tok-" + string(kind))}}
				h := NewTokenHandler(src, nil)
				req, _ := Parse([]byte(tt.get))
				ans, _ := h.ServeCredential(context.Background(), ActionGet, req)
				// git's erase: the request with the answer's user name and password.
				erase := *req
				erase.Username, erase.Password = ans.Username, ans.Password
				h.ServeCredential(context.Background(), ActionErase, &erase)
				getKey := src.keys[0]
				found := false
				for i, k := range src.keys[1:] {
					if k == getKey && src.invalidated[i].Secret.Equal(ans.Password) {
						found = true
					}
				}
				if !found {
					t.Errorf("get used key %v; erase invalidated %v; want the get's key", getKey, src.keys[1:])
				}
			})
		}
	}
}

func TestTokenHandlerNotAzureDevOps(t *testing.T) {
	for _, req := range []string{
		"protocol=https\nhost=github.com\npath=o/r\n",
		"protocol=https\nhost=dev.azure.com.evil.test\npath=o/p/_git/r\n",
		"protocol=https\nhost=evil-dev.azure.com\n",
		"protocol=https\nhost=a.b.visualstudio.com\n",
		"protocol=https\nhost=visualstudio.com\n",
		"protocol=https\nhost=code.visualstudio.com\npath=p/_git/r\n",
		"protocol=https\nhost=marketplace.visualstudio.com\n",
		"protocol=https\nhost=www.visualstudio.com\nusername=www\n",
		"protocol=https\n",
		"host=dev.azure.com\n",
	} {
		src := &fakeSource{tok: token.Token{Kind: token.Basic, Secret: secret.New("p")}}
		h := NewTokenHandler(src, nil)
		c, err := Parse([]byte(req))
		if err != nil {
			t.Fatal(err)
		}
		for _, action := range []string{ActionGet, ActionErase, ActionStore} {
			if ans, err := h.ServeCredential(context.Background(), action, c); ans != nil || err != nil {
				t.Errorf("ServeCredential(%s, %q) = %s, %v; want nothing", action, req, dump(ans), err)
			}
		}
		if len(src.keys) != 0 {
			t.Errorf("source asked for %v on %q; want no call", src.keys, req)
		}
	}
}

// TestTokenHandlerPlainHTTP: plain http to an Azure DevOps host never gets
// a credential, only a message saying what to do.
func TestTokenHandlerPlainHTTP(t *testing.T) {
	hosts, err := azdo.NewHosts([]string{"tfs.example.com:8080/tfs"})
	if err != nil {
		t.Fatal(err)
	}
	for _, req := range []string{
		"protocol=http\nhost=dev.azure.com\npath=org/p/_git/r\n",
		"protocol=http\nhost=tfs.example.com:8080\npath=tfs/Coll/p/_git/r\n",
	} {
		src := &fakeSource{tok: token.Token{Kind: token.Basic, Secret: secret.New("p")}}
		h := NewTokenHandler(src, hosts)
		c, err := Parse([]byte(req))
		if err != nil {
			t.Fatal(err)
		}
		ans, err := h.ServeCredential(context.Background(), ActionGet, c)
		msg, ok := ans.Get(MessageKey)
		if err != nil || !ok || !strings.Contains(msg, "HTTPS binding") || !ans.Password.IsZero() || ans.Username != "" || ans.Quit {
			t.Errorf("get %q = %s, %v; want only a message saying what to do", req, dump(ans), err)
		}
		for _, action := range []string{ActionErase, ActionStore} {
			if ans, err := h.ServeCredential(context.Background(), action, c); ans != nil || err != nil {
				t.Errorf("%s %q = %s, %v; want nothing", action, req, dump(ans), err)
			}
		}
		if len(src.keys) != 0 {
			t.Errorf("source asked for %v on %q; want no call", src.keys, req)
		}
	}
}

func TestTokenHandlerEraseAndStore(t *testing.T) {
	src := &fakeSource{}
	h := NewTokenHandler(src, nil)
	ctx := context.Background()
	erase := &Credential{Protocol: "https", Host: "dev.azure.com", Path: "org/p/_git/r", Username: "azdo-sidecar", Password: secret.New("old")}
	if ans, err := h.ServeCredential(ctx, ActionErase, erase); ans != nil || err != nil {
		t.Fatalf("erase = %v, %v; want nothing", ans, err)
	}
	bearerErase := &Credential{Capabilities: []string{CapAuthType}, Protocol: "https", Host: "dev.azure.com", Path: "org/p/_git/r", AuthType: "Bearer", Credential: secret.New("oldjwt")}
	h.ServeCredential(ctx, ActionErase, bearerErase)
	store := &Credential{Protocol: "https", Host: "dev.azure.com", Path: "org/p/_git/r", Username: "u", Password: secret.New("new")}
	if ans, err := h.ServeCredential(ctx, ActionStore, store); ans != nil || err != nil {
		t.Fatalf("store = %v, %v; want nothing", ans, err)
	}
	if len(src.invalidated) != 2 || src.invalidated[0].Secret.Reveal() != "old" || src.invalidated[1].Secret.Reveal() != "oldjwt" {
		t.Fatalf("invalidated %v; want old, oldjwt", src.invalidated)
	}
	if want := (token.Key{Host: "dev.azure.com", Org: "org"}); src.keys[0] != want {
		t.Errorf("invalidated key %v; want %v", src.keys[0], want)
	}
	if len(src.keys) != 2 {
		t.Errorf("source calls %v; want only the two invalidations (store is a no-op)", src.keys)
	}
}

// TestHelper runs the helper like git does: input → stdout, stderr, exit.
func TestHelper(t *testing.T) {
	pat := secret.New("pat-standalone-42")
	standalone := NewTokenHandler(token.NewStatic(pat), nil)
	noSocket := &Client{Socket: filepath.Join(socketDir(t), "sock"), Timeout: time.Second}

	connect := &token.ConnectError{Key: token.Key{Host: "dev.azure.com", Org: "org"}, ConnectURL: "https://runner.example/connect?org=org"}
	sidecar := &fakeSource{err: connect}
	path, _ := serve(t, NewTokenHandler(sidecar, nil), nil)
	viaSocket := &Client{Socket: path, Timeout: 5 * time.Second}

	const ado = "protocol=https\nhost=dev.azure.com\npath=org/proj/_git/repo\n\n"
	tests := []struct {
		name                 string
		local                Handler
		client               *Client
		action, in           string
		stdout, stderr       string
		code                 int
		stderrContains       string
		stderrMustNotContain string
	}{
		{name: "standalone get", local: standalone, action: "get", in: ado,
			stdout: "username=azdo-sidecar\npassword=pat-standalone-42\n"},
		{name: "standalone legacy host", local: standalone, action: "get", in: "protocol=https\nhost=org.visualstudio.com\npath=proj/_git/repo\n",
			stdout: "username=azdo-sidecar\npassword=pat-standalone-42\n"},
		{name: "standalone github", local: standalone, action: "get", in: "protocol=https\nhost=github.com\npath=o/r\n"},
		{name: "standalone lookalike", local: standalone, action: "get", in: "protocol=https\nhost=dev.azure.com.evil.test\n"},
		{name: "standalone store", local: standalone, action: "store", in: ado},
		{name: "standalone erase", local: standalone, action: "erase", in: ado},
		{name: "unknown action", local: standalone, action: "frobnicate", in: ado},
		{name: "malformed", local: standalone, action: "get", in: "protocol https\n", code: 1,
			stderrContains: "git-credential-azdo: credential: malformed input"},
		{name: "NUL byte", local: standalone, action: "get", in: "host=dev\x00.azure.com\n", code: 1, stderrContains: "malformed"},
		{name: "no sidecar", client: noSocket, action: "get", in: ado, code: 1, stderrContains: "azdo-sidecar serve"},
		{name: "no sidecar, other host", client: noSocket, action: "get", in: "protocol=https\nhost=github.com\n"},
		{name: "no sidecar, store", client: noSocket, action: "store", in: ado},
		{name: "connect URL on stderr", client: viaSocket, action: "get", in: ado,
			stdout: "quit=1\n", stderr: "azdo-sidecar: " + connect.Error() + "\n"},
		{name: "malformed password never echoed", local: standalone, action: "get", in: "password" + pat.Reveal() + "\n", code: 1,
			stderrContains: "malformed", stderrMustNotContain: pat.Reveal()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			h := &Helper{Stdin: strings.NewReader(tt.in), Stdout: &stdout, Stderr: &stderr, Local: tt.local, Client: tt.client}
			code := h.Run(context.Background(), tt.action)
			if code != tt.code {
				t.Errorf("Run(%s, %q) exit = %d; want %d (stderr %q)", tt.action, tt.in, code, tt.code, stderr.String())
			}
			if stdout.String() != tt.stdout {
				t.Errorf("Run(%s, %q) stdout = %q; want %q", tt.action, tt.in, stdout.String(), tt.stdout)
			}
			switch {
			case tt.stderrContains != "":
				if !strings.Contains(stderr.String(), tt.stderrContains) {
					t.Errorf("Run(%s, %q) stderr = %q; want it to contain %q", tt.action, tt.in, stderr.String(), tt.stderrContains)
				}
				if strings.Count(stderr.String(), "\n") != 1 {
					t.Errorf("stderr = %q; want exactly one line", stderr.String())
				}
			case stderr.String() != tt.stderr:
				t.Errorf("Run(%s, %q) stderr = %q; want %q", tt.action, tt.in, stderr.String(), tt.stderr)
			}
			if tt.stderrMustNotContain != "" && strings.Contains(stderr.String(), tt.stderrMustNotContain) {
				t.Errorf("stderr %q contains a secret", stderr.String())
			}
		})
	}
}

// TestHelperSingleFlight: 1000 concurrent gets through the socket against a
// token.Cache cause exactly one call to the source behind it.
func TestHelperSingleFlight(t *testing.T) {
	var mu sync.Mutex
	calls := 0
	src := token.SourceFunc(func(ctx context.Context, key token.Key) (token.Token, error) {
		mu.Lock()
		calls++
		mu.Unlock()
		time.Sleep(50 * time.Millisecond) // a vault round trip
		return token.Token{Kind: token.Bearer, Secret: secret.New(jwt), ExpiresAt: time.Now().Add(time.Hour)}, nil
	})
	cache := token.NewCache(src, token.CacheOptions{})
	defer cache.Close()
	path, _ := serve(t, NewTokenHandler(cache, nil), nil, 20*time.Second)
	const n = 1000
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			var out, errOut bytes.Buffer
			h := &Helper{Stdin: strings.NewReader("protocol=https\nhost=dev.azure.com\npath=org/p/_git/r\n"), Stdout: &out, Stderr: &errOut,
				Client: &Client{Socket: path, Timeout: 20 * time.Second}}
			if code := h.Run(context.Background(), ActionGet); code != 0 || !strings.Contains(out.String(), "password="+jwt) {
				errs <- fmt.Errorf("exit %d, stdout %q, stderr %q", code, out.String(), errOut.String())
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if calls != 1 {
		t.Errorf("source called %d times for %d concurrent gets; want 1", calls, n)
	}
}

func TestDefaultSocketPath(t *testing.T) {
	t.Setenv("XDG_RUNTIME_DIR", "/run/user/1000")
	if got, want := DefaultSocketPath(), "/run/user/1000/azdo-sidecar/sock"; got != want {
		t.Errorf("DefaultSocketPath() = %q; want %q", got, want)
	}
	// Without a runtime dir: the default state dir, never /tmp.
	t.Setenv("XDG_RUNTIME_DIR", "")
	t.Setenv("XDG_STATE_HOME", "/home/me/.state")
	if got, want := DefaultSocketPath(), "/home/me/.state/azdo-sidecar/sock"; got != want {
		t.Errorf("DefaultSocketPath() = %q; want %q", got, want)
	}
	t.Setenv("XDG_STATE_HOME", "")
	t.Setenv("HOME", "/home/me")
	if got, want := DefaultSocketPath(), "/home/me/.local/state/azdo-sidecar/sock"; got != want {
		t.Errorf("DefaultSocketPath() = %q; want %q", got, want)
	}
}

func TestCheckPrivatePath(t *testing.T) {
	base := t.TempDir() // under /tmp: others may create entries there
	private := filepath.Join(base, "private")
	os.Mkdir(private, 0o700)
	tests := []struct {
		name string
		dir  string
		ok   bool
	}{
		{"root directories", "/usr/share", true},
		{"missing under a private one", "/root/nonexistent/azdo-sidecar", os.Getuid() == 0},
		{"/tmp itself", "/tmp", false},
		{"old default", fmt.Sprintf("/tmp/azdo-sidecar-%d", os.Getuid()), false},
		{"own dir under /tmp", private, false},
		{"relative", "run", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckPrivatePath(tt.dir)
			if (err == nil) != tt.ok {
				t.Errorf("CheckPrivatePath(%q) = %v; want ok %v", tt.dir, err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrInsecureSocketDir) {
				t.Errorf("CheckPrivatePath(%q) = %v; want ErrInsecureSocketDir", tt.dir, err)
			}
		})
	}
}
