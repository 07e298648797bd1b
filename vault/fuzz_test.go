package vault

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/azdo-sidecar/azdo-sidecar/secret"
	"github.com/azdo-sidecar/azdo-sidecar/vault/store"
	"github.com/azdo-sidecar/azdo-sidecar/vaultapi"
)

// FuzzTokenRequest sends arbitrary bodies and Authorization headers to
// POST /v1/token: the vault never panics, never answers 500, and never
// echoes the environment token or a stored secret outside a 200.
func FuzzTokenRequest(f *testing.F) {
	h := newHarness(f)
	f.Cleanup(h.close)
	h.put(Credential{Host: host, Kind: store.PAT, Org: "contoso", Secret: secret.New(patSecret)})
	good := "Bearer " + h.envTok.Reveal()
	for _, seed := range []struct{ auth, body string }{
		{good, `{"host":"dev.azure.com","org":"contoso","min_valid_seconds":300}`},
		{good, `{"host":"DEV.AZURE.COM:443","org":"Contoso"}`},
		{good, `{"host":"dev.azure.com","org":"contoso","seal_to":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}`},
		{good, `{"host":"","min_valid_seconds":-5}`},
		{good, `{"host":"dev.azure.com","min_valid_seconds":99999999999}`},
		{good, `[1,2,3]`},
		{"bearer " + h.envTok.Reveal(), `{"host":"dev.azure.com","org":"contoso"}`},
		{"Basic Zm9vOmJhcg==", `{"host":"dev.azure.com"}`},
		{"Bearer", ``},
	} {
		f.Add(seed.auth, seed.body)
	}
	f.Fuzz(func(t *testing.T, auth, body string) {
		r := httptest.NewRequest(http.MethodPost, vaultapi.TokenPath, strings.NewReader(body))
		r.Header.Set("Authorization", auth)
		w := httptest.NewRecorder()
		h.v.Mux().ServeHTTP(w, r)
		switch w.Code {
		case 200, 400, 401, 404, 409:
		default:
			t.Fatalf("POST %q with %q = %d %s; want 200, 400, 401, 404 or 409", body, auth, w.Code, w.Body.String())
		}
		if w.Code != 200 && (strings.Contains(w.Body.String(), patSecret) || strings.Contains(w.Body.String(), h.envTok.Reveal())) {
			t.Fatalf("a %d answer echoes a secret: %s", w.Code, w.Body.String())
		}
	})
}
