package vault

import (
	"testing"

	"github.com/azdo-sidecar/azdo-sidecar/secret"
	"github.com/azdo-sidecar/azdo-sidecar/vault/store"
	"github.com/azdo-sidecar/azdo-sidecar/vaultapi"
)

// BenchmarkTokenCached measures POST /v1/token over loopback HTTP when the
// access token is in memory: environment lookup, credential read (SQLite)
// and the JSON answer.
//
//	go test -run XXX -bench TokenCached ./vault/
func BenchmarkTokenCached(b *testing.B) {
	h := newHarness(b)
	h.put(Credential{Host: host, Kind: store.OAuth, Secret: secret.New(initialRT)})
	req := vaultapi.TokenRequest{Host: host, Org: "contoso", MinValidSeconds: 300}
	if a := h.ask(h.envTok.Reveal(), req); a.code != 200 {
		b.Fatalf("token = %d %s", a.code, a.raw)
	}
	b.ResetTimer()
	for b.Loop() {
		if a := h.ask(h.envTok.Reveal(), req); a.code != 200 {
			b.Fatalf("token = %d", a.code)
		}
	}
}
