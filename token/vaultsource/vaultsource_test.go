package vaultsource

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/azdo-sidecar/azdo-sidecar/sealbox"
	"github.com/azdo-sidecar/azdo-sidecar/secret"
	"github.com/azdo-sidecar/azdo-sidecar/token"
	"github.com/azdo-sidecar/azdo-sidecar/vaultapi"
)

const (
	envToken  = "env-token-5e1f0a9c"
	azdoToken = "eyJ0eXAiOiJKV1Qi.access-token-secret"
)

var key = token.Key{Host: "dev.azure.com", Org: "contoso"}

// fakeVault implements the vault contract for POST /v1/token; answer
// decides the response for a well-formed, authorized request.
type fakeVault struct {
	t      *testing.T
	calls  atomic.Int64
	last   atomic.Pointer[vaultapi.TokenRequest]
	answer func(w http.ResponseWriter, req vaultapi.TokenRequest)
}

func (v *fakeVault) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	v.calls.Add(1)
	if r.Method != http.MethodPost || r.URL.Path != vaultapi.TokenPath {
		http.NotFound(w, r)
		return
	}
	if r.Header.Get("Authorization") != "Bearer "+envToken {
		writeJSON(w, http.StatusUnauthorized, vaultapi.ErrorResponse{Error: vaultapi.ErrUnauthorized, Message: "bad environment token"})
		return
	}
	var req vaultapi.TokenRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&req); err != nil {
		writeJSON(w, http.StatusBadRequest, vaultapi.ErrorResponse{Error: vaultapi.ErrBadRequest, Message: err.Error()})
		return
	}
	v.last.Store(&req)
	v.answer(w, req)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// sealedOK answers 200 with azdoToken sealed to the request's seal_to.
func sealedOK(typ string, exp time.Time) func(http.ResponseWriter, vaultapi.TokenRequest) {
	return func(w http.ResponseWriter, req vaultapi.TokenRequest) {
		pub, err := sealbox.ParsePublicKey(req.SealTo)
		if err != nil {
			writeJSON(w, http.StatusBadRequest, vaultapi.ErrorResponse{Error: vaultapi.ErrBadRequest, Message: "seal_to"})
			return
		}
		sealed, _ := sealbox.Seal(pub, []byte(azdoToken))
		writeJSON(w, http.StatusOK, vaultapi.TokenResponse{Type: typ, Username: "azdo-sidecar", Token: sealed, ExpiresAt: exp, Sealed: true,
			Policy: json.RawMessage(noPolicy), PolicyMAC: vaultapi.PolicyMAC(azdoToken, []byte(noPolicy))})
	}
}

// newVault starts a TLS vault and a Source trusting it via a CA file.
func newVault(t *testing.T, answer func(http.ResponseWriter, vaultapi.TokenRequest), opts Options) (*fakeVault, *Source, *httptest.Server) {
	t.Helper()
	fv := &fakeVault{t: t, answer: answer}
	srv := httptest.NewTLSServer(fv)
	t.Cleanup(srv.Close)
	return fv, newSourceFor(t, srv, opts), srv
}

// newSourceFor returns a Source for the started TLS server srv, trusting
// it via a CA file.
func newSourceFor(t *testing.T, srv *httptest.Server, opts Options) *Source {
	t.Helper()
	caFile := filepath.Join(t.TempDir(), "vault-ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	if opts.URL == "" {
		opts.URL = srv.URL
	}
	if opts.EnvToken.IsZero() {
		opts.EnvToken = secret.New(envToken)
	}
	opts.CAFile = caFile
	if opts.MinValid == 0 {
		opts.MinValid = 5 * time.Minute
	}
	src, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return src
}

func TestTokenSealedRoundTrip(t *testing.T) {
	exp := time.Date(2026, 1, 1, 13, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		typ  string
		want token.Kind
	}{
		{"entra", vaultapi.TypeBearer, token.Bearer},
		{"pat", vaultapi.TypeBasic, token.Basic},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fv, src, _ := newVault(t, sealedOK(tt.typ, exp), Options{})
			tok, err := src.Token(context.Background(), key)
			if err != nil {
				t.Fatalf("Token() error = %v", err)
			}
			if tok.Kind != tt.want || tok.Secret.Reveal() != azdoToken || !tok.ExpiresAt.Equal(exp) || tok.User() != "azdo-sidecar" {
				t.Fatalf("Token() = %v (secret ok: %v); want %s token expiring %v", tok, tok.Secret.Reveal() == azdoToken, tt.want, exp)
			}
			req := fv.last.Load()
			if req.Host != key.Host || req.Org != key.Org || req.MinValidSeconds != 300 || req.SealTo != src.keys.Public.String() {
				t.Fatalf("request = %+v; want host/org of %v, min_valid_seconds 300, seal_to our key", req, key)
			}
		})
	}
}

func TestTokenErrors(t *testing.T) {
	connect := "https://runner.example/connect?host=dev.azure.com&org=contoso"
	errorAnswer := func(status int, body vaultapi.ErrorResponse, header ...string) func(http.ResponseWriter, vaultapi.TokenRequest) {
		return func(w http.ResponseWriter, _ vaultapi.TokenRequest) {
			for i := 0; i+1 < len(header); i += 2 {
				w.Header().Set(header[i], header[i+1])
			}
			writeJSON(w, status, body)
		}
	}
	tests := []struct {
		name   string
		answer func(http.ResponseWriter, vaultapi.TokenRequest)
		env    string
		check  func(error) bool
	}{
		{"not connected", errorAnswer(404, vaultapi.ErrorResponse{Error: vaultapi.ErrNotConnected, Message: "connect first", ConnectURL: connect}), "",
			func(err error) bool {
				var ce *token.ConnectError
				return errors.As(err, &ce) && !ce.Reconnect && ce.ConnectURL == connect && ce.Key == key
			}},
		{"reconnect required", errorAnswer(409, vaultapi.ErrorResponse{Error: vaultapi.ErrReconnectRequired, Message: "AADSTS50173", ConnectURL: connect}), "",
			func(err error) bool {
				var ce *token.ConnectError
				return errors.As(err, &ce) && ce.Reconnect && ce.ConnectURL == connect && ce.Reason == "AADSTS50173"
			}},
		// The real vault's message is its own ConnectError's text, link
		// included; the sidecar must keep only the reason, and show the
		// link once.
		{"reconnect required, message as the vault writes it", errorAnswer(409, vaultapi.ErrorResponse{Error: vaultapi.ErrReconnectRequired,
			Message: (&token.ConnectError{Key: key, Reconnect: true, Reason: "AADSTS700082: inactive", ConnectURL: connect}).Error(), ConnectURL: connect}), "",
			func(err error) bool {
				var ce *token.ConnectError
				return errors.As(err, &ce) && ce.Reconnect && ce.Reason == "AADSTS700082: inactive" && strings.Count(err.Error(), connect) == 1
			}},
		{"not connected, message as the vault writes it", errorAnswer(404, vaultapi.ErrorResponse{Error: vaultapi.ErrNotConnected,
			Message: (&token.ConnectError{Key: key, ConnectURL: connect}).Error(), ConnectURL: connect}), "",
			func(err error) bool {
				var ce *token.ConnectError
				return errors.As(err, &ce) && ce.Reason == "" && strings.Count(err.Error(), connect) == 1
			}},
		{"not connected, with a PAT page too", errorAnswer(404, vaultapi.ErrorResponse{Error: vaultapi.ErrNotConnected, Message: "connect first", ConnectURL: connect, PATURL: connect + "&pat=1"}), "",
			func(err error) bool {
				var ce *token.ConnectError
				return errors.As(err, &ce) && ce.ConnectURL == connect && ce.PATURL == connect+"&pat=1"
			}},
		{"a pat_url that is not http(s) is refused", errorAnswer(404, vaultapi.ErrorResponse{Error: vaultapi.ErrNotConnected, ConnectURL: connect, PATURL: "javascript:alert(1)"}), "",
			func(err error) bool { return errors.Is(err, ErrProtocol) }},
		{"404 without error code is a wrong URL", errorAnswer(404, vaultapi.ErrorResponse{}), "",
			func(err error) bool { return errors.Is(err, ErrProtocol) }},
		{"connect_url with another scheme", errorAnswer(404, vaultapi.ErrorResponse{Error: vaultapi.ErrNotConnected, ConnectURL: "javascript:alert(1)"}), "",
			func(err error) bool { return errors.Is(err, ErrProtocol) }},
		{"bad environment token", nil, "wrong-env-token", func(err error) bool { return errors.Is(err, token.ErrUnauthorized) }},
		{"forbidden by policy", errorAnswer(403, vaultapi.ErrorResponse{Error: vaultapi.ErrForbiddenByPolicy, Message: "this environment may not use dev.azure.com/fabrikam\r\ninjected"}), "",
			func(err error) bool {
				var fe *token.ForbiddenError
				return errors.As(err, &fe) && fe.Key.Org == "contoso" && !errors.Is(err, token.ErrUnauthorized) &&
					fe.Message == "this environment may not use dev.azure.com/fabrikaminjected"
			}},
		{"403 without the policy code is an environment refusal", errorAnswer(403, vaultapi.ErrorResponse{Error: "forbidden"}), "",
			func(err error) bool {
				var fe *token.ForbiddenError
				return errors.Is(err, token.ErrUnauthorized) && !errors.As(err, &fe)
			}},
		{"unavailable with retry-after", errorAnswer(503, vaultapi.ErrorResponse{Error: vaultapi.ErrUnavailable}, "Retry-After", "7"), "",
			func(err error) bool {
				var ra *token.RetryAfterError
				return errors.As(err, &ra) && ra.After == 7*time.Second && errors.Is(err, token.ErrUnavailable)
			}},
		{"unavailable without retry-after", errorAnswer(503, vaultapi.ErrorResponse{Error: vaultapi.ErrUnavailable}), "",
			func(err error) bool { return errors.Is(err, token.ErrUnavailable) }},
		{"internal error", errorAnswer(500, vaultapi.ErrorResponse{Error: vaultapi.ErrInternal}), "",
			func(err error) bool { return errors.Is(err, token.ErrUnavailable) }},
		{"bad request", errorAnswer(400, vaultapi.ErrorResponse{Error: vaultapi.ErrBadRequest, Message: "bad org\r\ninjected"}), "",
			func(err error) bool { return errors.Is(err, ErrProtocol) && !strings.Contains(err.Error(), "\n") }},
		{"unsealed token", func(w http.ResponseWriter, _ vaultapi.TokenRequest) {
			writeJSON(w, 200, vaultapi.TokenResponse{Type: "bearer", Token: azdoToken, Sealed: false})
		}, "", func(err error) bool { return errors.Is(err, ErrProtocol) }},
		{"sealed to another key", func(w http.ResponseWriter, _ vaultapi.TokenRequest) {
			other, _ := sealbox.Generate()
			sealed, _ := sealbox.Seal(other.Public, []byte(azdoToken))
			writeJSON(w, 200, vaultapi.TokenResponse{Type: "bearer", Token: sealed, Sealed: true})
		}, "", func(err error) bool { return errors.Is(err, ErrProtocol) }},
		{"unknown type", func(w http.ResponseWriter, req vaultapi.TokenRequest) {
			sealedOK("cookie", time.Time{})(w, req)
		}, "", func(err error) bool { return errors.Is(err, ErrProtocol) }},
		{"answer too large", func(w http.ResponseWriter, _ vaultapi.TokenRequest) {
			w.WriteHeader(200)
			w.Write([]byte(`{"token":"` + strings.Repeat("A", MaxResponseSize) + `"}`))
		}, "", func(err error) bool { return errors.Is(err, ErrProtocol) }},
		{"html error page", func(w http.ResponseWriter, _ vaultapi.TokenRequest) {
			w.WriteHeader(502)
			w.Write([]byte("<html>bad gateway</html>"))
		}, "", func(err error) bool { return errors.Is(err, token.ErrUnavailable) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := Options{}
			if tt.env != "" {
				opts.EnvToken = secret.New(tt.env)
			}
			_, src, _ := newVault(t, tt.answer, opts)
			_, err := src.Token(context.Background(), key)
			if err == nil || !tt.check(err) {
				t.Fatalf("Token() error = %v (%T); want the mapped error", err, err)
			}
			for _, s := range []string{envToken, azdoToken, "wrong-env-token"} {
				if strings.Contains(err.Error(), s) {
					t.Fatalf("error %q leaks a secret", err)
				}
			}
		})
	}
}

func TestTokenNetworkFailures(t *testing.T) {
	t.Run("server down", func(t *testing.T) {
		_, src, srv := newVault(t, sealedOK("bearer", time.Time{}), Options{})
		srv.Close()
		if _, err := src.Token(context.Background(), key); !errors.Is(err, token.ErrUnavailable) {
			t.Fatalf("Token() with the vault down: err = %v; want ErrUnavailable", err)
		}
	})
	t.Run("server hangs", func(t *testing.T) {
		release := make(chan struct{})
		_, src, _ := newVault(t, func(http.ResponseWriter, vaultapi.TokenRequest) { <-release }, Options{Timeout: 100 * time.Millisecond})
		defer close(release)
		start := time.Now()
		_, err := src.Token(context.Background(), key)
		if !errors.Is(err, token.ErrUnavailable) || time.Since(start) > 5*time.Second {
			t.Fatalf("Token() with a hanging vault: err = %v after %v; want ErrUnavailable after the timeout", err, time.Since(start))
		}
	})
	t.Run("untrusted certificate", func(t *testing.T) {
		srv := httptest.NewTLSServer(http.NotFoundHandler())
		defer srv.Close()
		src, err := New(Options{URL: srv.URL, EnvToken: secret.New(envToken)})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := src.Token(context.Background(), key); !errors.Is(err, token.ErrUnavailable) || !strings.Contains(err.Error(), "certificate") {
			t.Fatalf("Token() against an untrusted certificate: err = %v; want ErrUnavailable naming the certificate", err)
		}
	})
	t.Run("redirect is not followed", func(t *testing.T) {
		var seen atomic.Value
		other := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			seen.Store(r.Header.Get("Authorization"))
		}))
		defer other.Close()
		fv, src, _ := newVault(t, func(w http.ResponseWriter, r vaultapi.TokenRequest) {
			w.Header().Set("Location", other.URL+"/steal")
			w.WriteHeader(http.StatusTemporaryRedirect)
		}, Options{})
		_, err := src.Token(context.Background(), key)
		if err == nil || seen.Load() != nil || fv.calls.Load() != 1 {
			t.Fatalf("redirect: err = %v, other server saw %v; want an error and no request elsewhere", err, seen.Load())
		}
	})
}

func TestNewValidates(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		ok   bool
	}{
		{"https", Options{URL: "https://runner.example:8443/", EnvToken: secret.New(envToken)}, true},
		{"http loopback", Options{URL: "http://127.0.0.1:8080", EnvToken: secret.New(envToken)}, true},
		{"http remote", Options{URL: "http://runner.example", EnvToken: secret.New(envToken)}, false},
		{"http remote insecure", Options{URL: "http://runner.example", EnvToken: secret.New(envToken), InsecureAllowHTTP: true}, true},
		{"no token", Options{URL: "https://runner.example"}, false},
		{"no scheme", Options{URL: "runner.example", EnvToken: secret.New(envToken)}, false},
		{"user info", Options{URL: "https://u:p@runner.example", EnvToken: secret.New(envToken)}, false},
		{"missing CA file", Options{URL: "https://runner.example", EnvToken: secret.New(envToken), CAFile: "/nonexistent/ca.pem"}, false},
	}
	for _, tt := range tests {
		_, err := New(tt.opts)
		if (err == nil) != tt.ok {
			t.Errorf("%s: New(%q) error = %v; want ok=%v", tt.name, tt.opts.URL, err, tt.ok)
		}
		if err != nil && strings.Contains(err.Error(), envToken) {
			t.Errorf("%s: error leaks the environment token: %v", tt.name, err)
		}
	}
}

func TestPerProcessKeysDiffer(t *testing.T) {
	a, _ := New(Options{URL: "https://r.example", EnvToken: secret.New(envToken)})
	b, _ := New(Options{URL: "https://r.example", EnvToken: secret.New(envToken)})
	if a.keys.Public == b.keys.Public {
		t.Fatal("two Sources share a sealing key")
	}
	if s := fmt.Sprintf("%v %+v", a, a); strings.Contains(s, envToken) || strings.Contains(s, a.keys.Private.Encode()) {
		t.Fatalf("formatting a Source leaks a secret: %s", s)
	}
}

func TestCacheInFrontOfVault(t *testing.T) {
	fv, src, _ := newVault(t, sealedOK("bearer", time.Now().Add(time.Hour)), Options{})
	c := token.NewCache(src, token.CacheOptions{})
	defer c.Close()
	for range 50 {
		if _, err := c.Token(context.Background(), key); err != nil {
			t.Fatal(err)
		}
	}
	if n := fv.calls.Load(); n != 1 {
		t.Fatalf("vault calls for 50 cached Token calls = %d; want 1", n)
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"120", 2 * time.Minute, true},
		{"0", 0, true},
		{now.Add(30 * time.Second).Format(http.TimeFormat), 30 * time.Second, true},
		{"", 0, false},
		{"soon", 0, false},
		{"-3", 0, false},
	}
	for _, tt := range tests {
		got, ok := retryAfter(tt.in, now)
		if got != tt.want || ok != tt.ok {
			t.Errorf("retryAfter(%q) = %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestReadEnvTokenFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "env-token")
	os.WriteFile(p, []byte(envToken+"\n"), 0o600)
	got, err := ReadEnvTokenFile(p)
	if err != nil || got.Reveal() != envToken {
		t.Fatalf("ReadEnvTokenFile = %v, %v; want the token", got, err)
	}
}

// holdFirst is a listener that swallows its first n connections: they are
// accepted and never answered, as a vault too busy to finish a TLS
// handshake would.
type holdFirst struct {
	net.Listener
	n    atomic.Int64
	held chan net.Conn
}

func (l *holdFirst) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.n.Add(-1) >= 0 {
			l.held <- c
			continue
		}
		return c, nil
	}
}

// TestCacheRetriesTransientFailures runs many concurrent callers through a
// token.Cache in front of a real vault whose first answer fails
// transiently: every caller gets the token from the second try.
func TestCacheRetriesTransientFailures(t *testing.T) {
	exp := time.Now().Add(time.Hour)
	ok := sealedOK(vaultapi.TypeBearer, exp)
	failFirst := func(fail func(w http.ResponseWriter)) func(*fakeVault) func(http.ResponseWriter, vaultapi.TokenRequest) {
		return func(fv *fakeVault) func(http.ResponseWriter, vaultapi.TokenRequest) {
			return func(w http.ResponseWriter, req vaultapi.TokenRequest) {
				if fv.calls.Load() == 1 {
					fail(w)
					return
				}
				ok(w, req)
			}
		}
	}
	status := func(code int) func(http.ResponseWriter) {
		return func(w http.ResponseWriter) { w.WriteHeader(code) }
	}
	tests := []struct {
		name      string
		held      int64 // connections swallowed before the first is served
		answer    func(*fakeVault) func(http.ResponseWriter, vaultapi.TokenRequest)
		wantCalls int64 // requests that reached the handler
	}{
		{"TLS handshake timeout", 1, func(*fakeVault) func(http.ResponseWriter, vaultapi.TokenRequest) { return ok }, 1},
		{"response timeout", 0, failFirst(func(http.ResponseWriter) { time.Sleep(600 * time.Millisecond) }), 2},
		{"connection reset", 0, failFirst(func(w http.ResponseWriter) {
			c, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				c.Close()
			}
		}), 2},
		{"502", 0, failFirst(status(http.StatusBadGateway)), 2},
		{"503", 0, failFirst(status(http.StatusServiceUnavailable)), 2},
		{"504", 0, failFirst(status(http.StatusGatewayTimeout)), 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fv := &fakeVault{t: t}
			fv.answer = tt.answer(fv)
			srv := httptest.NewUnstartedServer(fv)
			hl := &holdFirst{Listener: srv.Listener, held: make(chan net.Conn, 4)}
			hl.n.Store(tt.held)
			srv.Listener = hl
			srv.StartTLS()
			t.Cleanup(func() {
				srv.Close()
				close(hl.held)
				for c := range hl.held {
					c.Close()
				}
			})
			src := newSourceFor(t, srv, Options{Timeout: 300 * time.Millisecond})
			c := token.NewCache(src, token.CacheOptions{Backoff: func(int) time.Duration { return time.Millisecond }})
			defer c.Close()

			const callers = 50
			errs := make(chan error, callers)
			for range callers {
				go func() {
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					defer cancel()
					tok, err := c.Token(ctx, key)
					if err == nil && tok.Secret.Reveal() != azdoToken {
						err = fmt.Errorf("got token %v; want the vault's", tok)
					}
					errs <- err
				}()
			}
			for range callers {
				if err := <-errs; err != nil {
					t.Errorf("Token after one transient failure: %v; want the token", err)
				}
			}
			if n := fv.calls.Load(); n != tt.wantCalls {
				t.Errorf("vault handler calls = %d; want %d", n, tt.wantCalls)
			}
			if st := c.Stats(); st.Retries != 1 {
				t.Errorf("cache retries = %d; want 1", st.Retries)
			}
		})
	}
}

// TestCacheNeverRetriesPermanentAnswers: 401, 403, 404 and 409 with links
// are the vault's considered answers.
func TestCacheNeverRetriesPermanentAnswers(t *testing.T) {
	tests := []struct {
		name   string
		answer func(http.ResponseWriter, vaultapi.TokenRequest)
	}{
		{"401", func(w http.ResponseWriter, _ vaultapi.TokenRequest) { w.WriteHeader(http.StatusUnauthorized) }},
		{"403", func(w http.ResponseWriter, _ vaultapi.TokenRequest) { w.WriteHeader(http.StatusForbidden) }},
		{"404 not connected", func(w http.ResponseWriter, _ vaultapi.TokenRequest) {
			writeJSON(w, http.StatusNotFound, vaultapi.ErrorResponse{Error: vaultapi.ErrNotConnected, ConnectURL: "https://runner.example/connect?x=1"})
		}},
		{"409 reconnect", func(w http.ResponseWriter, _ vaultapi.TokenRequest) {
			writeJSON(w, http.StatusConflict, vaultapi.ErrorResponse{Error: vaultapi.ErrReconnectRequired, ConnectURL: "https://runner.example/connect?x=2"})
		}},
		{"500", func(w http.ResponseWriter, _ vaultapi.TokenRequest) { w.WriteHeader(http.StatusInternalServerError) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fv, src, _ := newVault(t, tt.answer, Options{})
			c := token.NewCache(src, token.CacheOptions{Backoff: func(int) time.Duration { return time.Millisecond }})
			defer c.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if _, err := c.Token(ctx, key); err == nil || errors.Is(err, token.ErrTransient) {
				t.Fatalf("Token = %v; want a permanent error", err)
			}
			if n := fv.calls.Load(); n != 1 {
				t.Errorf("vault calls = %d; want 1 (no retry)", n)
			}
		})
	}
}

// TestCacheGivesLastErrorAtDeadline: while the vault keeps failing, a
// caller is answered when its own deadline is spent, with the vault's
// failure rather than a bare "deadline exceeded".
func TestCacheGivesLastErrorAtDeadline(t *testing.T) {
	fv, src, _ := newVault(t, func(w http.ResponseWriter, _ vaultapi.TokenRequest) { w.WriteHeader(http.StatusServiceUnavailable) }, Options{})
	c := token.NewCache(src, token.CacheOptions{Backoff: func(int) time.Duration { return 20 * time.Millisecond }})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 400*time.Millisecond)
	defer cancel()
	began := time.Now()
	_, err := c.Token(ctx, key)
	if !errors.Is(err, token.ErrUnavailable) || !strings.Contains(err.Error(), "503") {
		t.Fatalf("Token with the vault down = %v; want the vault's 503", err)
	}
	if took := time.Since(began); took < 350*time.Millisecond {
		t.Errorf("Token answered after %s; want at its deadline (400ms)", took)
	}
	if n := fv.calls.Load(); n < 3 {
		t.Errorf("vault calls = %d; want retries until the deadline", n)
	}
}

// noPolicy is what the vault sends for an environment without a policy.
const noPolicy = `{"version":0}`

// policyAnswer answers 200 with azdoToken sealed and policy, its MAC
// computed over macPolicy with macToken (the honest vault uses policy and
// azdoToken).
func policyAnswer(policy, macPolicy, macToken string) func(http.ResponseWriter, vaultapi.TokenRequest) {
	return func(w http.ResponseWriter, req vaultapi.TokenRequest) {
		pub, _ := sealbox.ParsePublicKey(req.SealTo)
		sealed, _ := sealbox.Seal(pub, []byte(azdoToken))
		writeJSON(w, http.StatusOK, vaultapi.TokenResponse{Type: vaultapi.TypeBearer, Token: sealed, Sealed: true,
			ExpiresAt: time.Now().Add(time.Hour), Policy: json.RawMessage(policy), PolicyMAC: vaultapi.PolicyMAC(macToken, []byte(macPolicy))})
	}
}

// TestTokenPolicyMAC: the policy reaches the token only when its MAC
// verifies over the plaintext token; an altered policy, a MAC made with
// another key, a MAC without its policy, or an answer stripped of both is
// an error, never "no policy".
func TestTokenPolicyMAC(t *testing.T) {
	const pol = `{"version":3,"allow_repos":["dev.azure.com/contoso/p/r"],"push_refs":["refs/heads/agent/*"]}`
	_, src, _ := newVault(t, policyAnswer(pol, pol, azdoToken), Options{})
	tok, err := src.Token(context.Background(), key)
	if err != nil || tok.Policy != pol {
		t.Fatalf("Token = %q, %v; want policy %s", tok.Policy, err, pol)
	}
	for name, answer := range map[string]func(http.ResponseWriter, vaultapi.TokenRequest){
		"altered policy":    policyAnswer(`{"version":3}`, pol, azdoToken),
		"MAC with the seal": policyAnswer(pol, pol, "not-the-token"),
		"MAC without policy": func(w http.ResponseWriter, req vaultapi.TokenRequest) {
			pub, _ := sealbox.ParsePublicKey(req.SealTo)
			sealed, _ := sealbox.Seal(pub, []byte(azdoToken))
			writeJSON(w, http.StatusOK, vaultapi.TokenResponse{Type: vaultapi.TypeBearer, Token: sealed, Sealed: true, PolicyMAC: "AAAA"})
		},
		"neither policy nor MAC": func(w http.ResponseWriter, req vaultapi.TokenRequest) {
			pub, _ := sealbox.ParsePublicKey(req.SealTo)
			sealed, _ := sealbox.Seal(pub, []byte(azdoToken))
			writeJSON(w, http.StatusOK, vaultapi.TokenResponse{Type: vaultapi.TypeBearer, Token: sealed, Sealed: true, ExpiresAt: time.Now().Add(time.Hour)})
		},
		"policy without MAC": func(w http.ResponseWriter, req vaultapi.TokenRequest) {
			pub, _ := sealbox.ParsePublicKey(req.SealTo)
			sealed, _ := sealbox.Seal(pub, []byte(azdoToken))
			writeJSON(w, http.StatusOK, vaultapi.TokenResponse{Type: vaultapi.TypeBearer, Token: sealed, Sealed: true, Policy: json.RawMessage(pol)})
		},
	} {
		t.Run(name, func(t *testing.T) {
			_, src, _ := newVault(t, answer, Options{})
			tok, err := src.Token(context.Background(), key)
			if !errors.Is(err, ErrProtocol) || !tok.Secret.IsZero() {
				t.Fatalf("Token = %v, %v; want ErrProtocol and no token", tok, err)
			}
			if strings.Contains(err.Error(), azdoToken) {
				t.Fatalf("error %q carries the token", err)
			}
		})
	}
}
