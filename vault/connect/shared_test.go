package connect

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/azdo-sidecar/azdo-sidecar/sealbox"
	"github.com/azdo-sidecar/azdo-sidecar/secret"
	"github.com/azdo-sidecar/azdo-sidecar/vault/store"
)

func twoHandles(t *testing.T) (a, b *store.SQLite, path string) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "v.db")
	for _, s := range []**store.SQLite{&a, &b} {
		st, err := store.OpenSQLite(context.Background(), path, time.Now)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		*s = st
	}
	return a, b, path
}

// TestStoreNoncesAcrossReplicas: a nonce spent through one store handle is
// spent for the other; the store holds its hash, not the nonce.
func TestStoreNoncesAcrossReplicas(t *testing.T) {
	a, b, path := twoHandles(t)
	ctx, exp := context.Background(), time.Now().Add(time.Hour)
	const nonce = "link-nonce-0123456789abcdef"
	if err := NewStoreNonces(a).Use(ctx, nonce, exp); err != nil {
		t.Fatalf("Use on replica A = %v", err)
	}
	if err := NewStoreNonces(b).Use(ctx, nonce, exp); !errors.Is(err, ErrLinkUsed) {
		t.Errorf("Use on replica B = %v; want ErrLinkUsed", err)
	}
	if err := NewStoreNonces(b).Use(ctx, nonce+"x", exp); err != nil {
		t.Errorf("Use(other nonce) on replica B = %v", err)
	}
	a.Close()
	if err := NewStoreNonces(a).Use(ctx, "n2", exp); !errors.Is(err, errStore) {
		t.Errorf("Use on a closed store = %v; want errStore", err)
	}
	checkFileLacks(t, path, nonce)
}

// TestStoreFlowsSealed: a flow put through one replica is taken once
// through another, with its verifier; the store holds neither the state
// nor the verifier; a replica with another runner key cannot open it.
func TestStoreFlowsSealed(t *testing.T) {
	a, b, path := twoHandles(t)
	ctx := context.Background()
	kp, err := sealbox.Generate()
	if err != nil {
		t.Fatal(err)
	}
	const state, verifier = "oauth-state-0123456789abcdefghijklmnop", "pkce-verifier-0123456789abcdefghijklmnopqrstuvwxyz"
	f := Flow{Owner: "alice", Env: "env_1", Host: "dev.azure.com", Org: "contoso", Verifier: secret.New(verifier), Nonce: "oidc", Expires: time.Now().Add(time.Minute).UTC().Truncate(time.Microsecond)}
	if err := NewStoreFlows(a, kp).Put(ctx, state, f); err != nil {
		t.Fatal(err)
	}
	checkFileLacks(t, path, state, verifier)
	got, err := NewStoreFlows(b, kp).Take(ctx, state)
	if err != nil || got.Owner != f.Owner || got.Env != f.Env || got.Host != f.Host || got.Org != f.Org ||
		got.Verifier.Reveal() != verifier || got.Nonce != f.Nonce || !got.Expires.Equal(f.Expires) {
		t.Fatalf("Take on replica B = %+v, %v; want %+v", got, err, f)
	}
	if _, err := NewStoreFlows(a, kp).Take(ctx, state); !errors.Is(err, ErrNoFlow) {
		t.Errorf("Take twice = %v; want ErrNoFlow", err)
	}

	other, err := sealbox.Generate()
	if err != nil {
		t.Fatal(err)
	}
	if err := NewStoreFlows(a, kp).Put(ctx, state+"2", f); err != nil {
		t.Fatal(err)
	}
	if _, err := NewStoreFlows(b, other).Take(ctx, state+"2"); !errors.Is(err, errStore) || strings.Contains(err.Error(), verifier) {
		t.Errorf("Take with another runner key = %v; want errStore without the verifier", err)
	}
}

// checkFileLacks fails if the store file or its WAL holds any of secrets.
func checkFileLacks(t *testing.T, path string, secrets ...string) {
	t.Helper()
	files, _ := filepath.Glob(path + "*")
	if len(files) == 0 {
		t.Fatalf("no store files at %s", path)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range secrets {
			if bytes.Contains(b, []byte(s)) {
				t.Errorf("%s holds %.12s… in plaintext", filepath.Base(f), s)
			}
		}
	}
}

// TestReplicasShareConnect: two vault processes on one store, Connect
// state in the store. A sign-in started on replica A finishes on replica
// B, and a link spent on A is refused by B: no sticky sessions needed.
func TestReplicasShareConnect(t *testing.T) {
	kp, err := sealbox.Generate()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "v.db")
	a, b := newReplica(t, kp, path, true), newReplica(t, kp, path, true)
	onA := a.browser(t)
	onB := &client{t: t, tp: b, jar: onA.jar} // the same browser, routed to B

	link := a.link(t, "dev.azure.com", "contoso", "oauth")
	p := continueConnect(t, onA, link)
	loc, _ := url.Parse(p.hdr.Get("Location"))
	state := loc.Query().Get("state")
	if p := onB.get(link); p.code != http.StatusGone {
		t.Errorf("the same link on B = %d; want 410 (spent on A)", p.code)
	}
	p = onB.get("/oauth/callback?" + url.Values{"state": {state}, "code": {"the-code"}}.Encode())
	if p.code != http.StatusOK || !strings.Contains(p.body, "Connected.") {
		t.Fatalf("callback on B = %d; want 200 Connected\n%s", p.code, p.body)
	}
	if len(b.idp.verifier) < 43 || b.idp.nonce == "" {
		t.Errorf("B's Exchange got verifier %d chars, nonce %q; want A's PKCE verifier and nonce", len(b.idp.verifier), b.idp.nonce)
	}
	if n := a.count(t, "dev.azure.com"); n != 1 {
		t.Errorf("credentials seen by A after the callback on B = %d; want 1", n)
	}
	if p := onA.get("/oauth/callback?" + url.Values{"state": {state}, "code": {"the-code"}}.Encode()); p.code != http.StatusBadRequest {
		t.Errorf("the same callback again on A = %d; want 400 (the state is spent)", p.code)
	}
}

// TestStoreDownPage: when the store fails, /connect says so (503, for the
// administrator) instead of calling the link invalid.
func TestStoreDownPage(t *testing.T) {
	kp, err := sealbox.Generate()
	if err != nil {
		t.Fatal(err)
	}
	tp := newReplica(t, kp, filepath.Join(t.TempDir(), "v.db"), true)
	link := tp.link(t, "dev.azure.com", "contoso", "oauth")
	b := tp.browser(t)
	page := b.get(link)
	tp.st.Close()
	lu, _ := url.Parse(link)
	p := b.do(http.MethodPost, "/connect", url.Values{"link": {lu.Query().Get("link")}, "csrf": {csrfOf(t, page.body)}})
	if p.code != http.StatusServiceUnavailable || !strings.Contains(p.body, "store") {
		t.Errorf("GET /connect with the store down = %d; want 503 naming the store\n%s", p.code, p.body)
	}
}
