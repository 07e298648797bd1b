package connect

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/azdo-sidecar/azdo-sidecar/secret"
	"github.com/azdo-sidecar/azdo-sidecar/vault/store"
)

func TestPATLinks(t *testing.T) {
	tests := []struct {
		name, host, org string
		want            PATURLs
		ok              bool
	}{
		{"dev.azure.com", "dev.azure.com", "contoso", PATURLs{"https://dev.azure.com/contoso/_usersSettings/tokens?action=edit", "https://dev.azure.com/contoso/_apis/connectionData"}, true},
		{"dev.azure.com port 443", "Dev.Azure.com:443", "contoso", PATURLs{"https://dev.azure.com/contoso/_usersSettings/tokens?action=edit", "https://dev.azure.com/contoso/_apis/connectionData"}, true},
		{"dev.azure.com without org", "dev.azure.com", "", PATURLs{}, false},
		{"dev.azure.com nested org", "dev.azure.com", "a/b", PATURLs{}, false},
		{"visualstudio.com", "fabrikam.visualstudio.com", "", PATURLs{"https://fabrikam.visualstudio.com/_details/security/tokens", "https://fabrikam.visualstudio.com/_apis/connectionData"}, true},
		{"self-hosted collection", "tfs.example.com:8443", "DefaultCollection", PATURLs{"https://tfs.example.com:8443/DefaultCollection/_usersSettings/tokens", "https://tfs.example.com:8443/DefaultCollection/_apis/connectionData"}, true},
		{"self-hosted virtual dir", "tfs.example.com", "tfs/Default Collection", PATURLs{"https://tfs.example.com/tfs/Default%20Collection/_usersSettings/tokens", "https://tfs.example.com/tfs/Default%20Collection/_apis/connectionData"}, true},
		{"dot-dot", "tfs.example.com", "../admin", PATURLs{}, false},
		{"query in org", "dev.azure.com", "contoso?x=1", PATURLs{}, false},
		{"host with path", "evil.example/x", "contoso", PATURLs{}, false},
		{"host with userinfo", "a@evil.example", "contoso", PATURLs{}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := PATLinks(tc.host, tc.org)
			if got != tc.want || ok != tc.ok {
				t.Errorf("PATLinks(%q, %q) = %+v, %v; want %+v, %v", tc.host, tc.org, got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestCheckPAT(t *testing.T) {
	const pat = "pat-under-test-0123456789abcdefghijklmnopqrstuvwxyz"
	user := `{"authenticatedUser":{"id":"7c0f6b2e-1a2b-4c3d-9e8f-0a1b2c3d4e5f","providerDisplayName":"alice","properties":{"Account":{"$type":"System.String","$value":"alice@contoso.com"}}}}`
	tests := []struct {
		name    string
		handler http.HandlerFunc
		want    error
	}{
		{"valid", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, user) }, nil},
		{"401", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusUnauthorized) }, ErrPATInvalid},
		{"203 sign-in page", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusNonAuthoritativeInfo)
			fmt.Fprint(w, "<html>sign in</html>")
		}, ErrPATInvalid},
		{"redirect to sign-in", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "/_signin?realm=dev.azure.com", http.StatusFound)
		}, ErrPATInvalid},
		{"anonymous", func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, `{"authenticatedUser":{"id":"aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa"}}`)
		}, ErrPATInvalid},
		{"no user", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, `{}`) }, ErrPATInvalid},
		{"server error", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) }, ErrPATUnchecked},
		{"not JSON", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "<html>proxy</html>") }, ErrPATUnchecked},
		{"other redirect", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/elsewhere", http.StatusFound) }, ErrPATUnchecked},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var sawAuth, sawSuppress bool
			srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, p, ok := r.BasicAuth()
				sawAuth = sawAuth || ok && p == pat
				sawSuppress = sawSuppress || r.Header.Get("X-TFS-FedAuthRedirect") == "Suppress"
				if r.URL.Path != "/contoso/_apis/connectionData" {
					http.NotFound(w, r)
					return
				}
				tc.handler(w, r)
			}))
			defer srv.Close()
			got, err := CheckPAT(context.Background(), srv.Client(), srv.URL+"/contoso/_apis/connectionData", secret.New(pat))
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("CheckPAT(%s) = %v; want %v", tc.name, err, tc.want)
			}
			// The same request says whose the PAT is.
			if want := (PATUser{ID: "7c0f6b2e-1a2b-4c3d-9e8f-0a1b2c3d4e5f", Account: "alice@contoso.com"}); err == nil && got != want {
				t.Errorf("CheckPAT(%s) user = %+v; want %+v", tc.name, got, want)
			}
			if !sawAuth || !sawSuppress {
				t.Errorf("request had Basic PAT %v, X-TFS-FedAuthRedirect: Suppress %v; want both", sawAuth, sawSuppress)
			}
			if err != nil && strings.Contains(err.Error(), pat) {
				t.Errorf("CheckPAT error contains the PAT: %v", err)
			}
		})
	}
}

func TestCheckPATUnreachable(t *testing.T) {
	const pat = "pat-under-test-unreachable"
	srv := httptest.NewTLSServer(http.NotFoundHandler())
	client := srv.Client()
	u := srv.URL + "/" + pat + "/_apis/connectionData" // a secret in the URL must not survive into the error either
	srv.Close()
	_, err := CheckPAT(context.Background(), client, u, secret.New(pat))
	if !errors.Is(err, ErrPATUnchecked) {
		t.Fatalf("CheckPAT(closed server) = %v; want ErrPATUnchecked", err)
	}
	if strings.Contains(err.Error(), pat) {
		t.Errorf("CheckPAT error contains the PAT: %v", err)
	}
}

// TestPATWithoutExpiryStored: a form posted without the (pre-filled)
// expiry field still stores a PAT the host accepts, with an unknown
// expiry; the contract asks only for the PAT.
func TestPATWithoutExpiryStored(t *testing.T) {
	tp := newTestPages(t)
	b := tp.browser(t)
	form := b.get(tp.link(t, "dev.azure.com", "contoso", store.PAT))
	p := b.do(http.MethodPost, "/pat", url.Values{"csrf": {csrfOf(t, form.body)}, "pat": {goodPAT}})
	if p.code != http.StatusOK {
		t.Fatalf("POST /pat without expires = %d; want 200\n%s", p.code, p.body)
	}
	cs, err := tp.st.Credentials(context.Background(), "alice", "dev.azure.com")
	if err != nil || len(cs) != 1 || cs[0].Kind != store.PAT || !cs[0].ExpiresAt.IsZero() {
		t.Fatalf("stored = %+v, %v; want one PAT with an unknown expiry", cs, err)
	}
}

// TestPATLinksVirtualDir: a provider configured with its virtual directory
// (host: tfs.example.com/virtual/dir) gets PAT links under it, before the
// collection the sidecar named.
func TestPATLinksVirtualDir(t *testing.T) {
	h := &Handler{vdirs: map[string]string{"tfs.example.com": "virtual/dir"}}
	got, ok := h.patLinks("TFS.example.com:443", "coll")
	want := PATURLs{"https://tfs.example.com/virtual/dir/coll/_usersSettings/tokens", "https://tfs.example.com/virtual/dir/coll/_apis/connectionData"}
	if !ok || got != want {
		t.Errorf("patLinks = %+v, %v; want %+v", got, ok, want)
	}
	if got, ok := h.patLinks("other.example.com", "coll"); !ok || got.Check != "https://other.example.com/coll/_apis/connectionData" {
		t.Errorf("patLinks(no vdir) = %+v, %v", got, ok)
	}
}
