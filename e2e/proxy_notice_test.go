package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/azdo-sidecar/azdo-sidecar/e2e/azdoemu"
	"github.com/azdo-sidecar/azdo-sidecar/vault"
	"github.com/azdo-sidecar/azdo-sidecar/vault/store"
)

// newPATProxyWorld is a vault-mode proxy whose user's stored PAT expires
// at expires.
func newPATProxyWorld(t *testing.T, expires time.Time) *proxyVaultWorld {
	pat := azdoemu.NewPAT()
	return newProxyVaultWorld(t, func(w *proxyVaultWorld) {
		if err := w.emu.AddPAT(azdoemu.PAT{Token: pat, Org: "contoso"}); err != nil {
			t.Fatal(err)
		}
		w.vw.put(vault.Credential{Owner: vaultUser, Host: vaultHost, Kind: store.PAT, Secret: pat, ExpiresAt: expires})
	})
}

// noticeLines returns git's "remote: azdo-sidecar:" lines in out.
func noticeLines(out string) []string {
	var got []string
	for _, l := range strings.FieldsFunc(out, func(r rune) bool { return r == '\n' || r == '\r' }) {
		if strings.HasPrefix(strings.TrimSpace(l), "remote: azdo-sidecar:") {
			got = append(got, l)
		}
	}
	return got
}

// TestProxyPATExpiryNoticeAsRemoteLine: in proxy mode, a PAT that expires
// within 7 days makes git print exactly one "remote: azdo-sidecar: ..."
// line per clone and per fetch, with the date and the PAT link.
func TestProxyPATExpiryNoticeAsRemoteLine(t *testing.T) {
	expires := time.Now().Add(3 * 24 * time.Hour)
	w := newPATProxyWorld(t, expires)
	date := expires.UTC().Format(time.DateOnly)
	want := func(what, out string) {
		t.Helper()
		got := noticeLines(out)
		if len(got) != 1 {
			t.Fatalf("%s printed %d azdo-sidecar remote lines; want 1\n%s", what, len(got), out)
		}
		if !strings.Contains(got[0], "expires on "+date) || !strings.Contains(got[0], "http://127.0.0.1:9/") || !strings.Contains(got[0], "?link=") {
			t.Errorf("%s notice = %q; want the date %s and the PAT link", what, got[0], date)
		}
	}

	a := filepath.Join(t.TempDir(), "a")
	out, err := w.git.RunErr("clone", repoURL, a)
	if err != nil {
		t.Fatalf("clone: %v\n%s", err, out)
	}
	want("clone", out)
	if got := w.git.Run(t, "-C", a, "rev-parse", "HEAD"); got != w.seed.Head {
		t.Fatalf("cloned HEAD = %s; want %s", got, w.seed.Head)
	}

	// A second clone pushes a commit; the first fetches it.
	b := filepath.Join(t.TempDir(), "b")
	w.git.Run(t, "clone", "--quiet", repoURL, b)
	if err := os.WriteFile(filepath.Join(b, "NEW.md"), []byte("new\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	w.git.Run(t, "-C", b, "add", "NEW.md")
	w.git.Run(t, "-C", b, "commit", "--quiet", "-m", "new")
	w.git.Run(t, "-C", b, "push", "--quiet", "origin", "main")
	out, err = w.git.RunErr("-C", a, "fetch", "origin")
	if err != nil {
		t.Fatalf("fetch: %v\n%s", err, out)
	}
	want("fetch", out)
	if got, wantHead := w.git.Run(t, "-C", a, "rev-parse", "origin/main"), w.git.Run(t, "-C", b, "rev-parse", "HEAD"); got != wantHead {
		t.Fatalf("fetched origin/main = %s; want %s", got, wantHead)
	}
	// A fetch with nothing new transfers no pack and shows nothing.
	out, err = w.git.RunErr("-C", a, "fetch", "origin")
	if err != nil || len(noticeLines(out)) != 0 {
		t.Fatalf("up-to-date fetch: %v; want no notice\n%s", err, out)
	}
}

// TestProxyPATNoNoticeFarFromExpiry: a PAT that expires in 30 days (or
// whose expiry is unknown) shows no remote line.
func TestProxyPATNoNoticeFarFromExpiry(t *testing.T) {
	for _, exp := range []time.Time{time.Now().Add(30 * 24 * time.Hour), {}} {
		w := newPATProxyWorld(t, exp)
		dir := filepath.Join(t.TempDir(), "site")
		out, err := w.git.RunErr("clone", repoURL, dir)
		if err != nil {
			t.Fatalf("clone: %v\n%s", err, out)
		}
		if n := noticeLines(out); len(n) != 0 {
			t.Errorf("PAT expiring %v: clone printed %q; want no azdo-sidecar line", exp, n)
		}
		if got := w.git.Run(t, "-C", dir, "rev-parse", "HEAD"); got != w.seed.Head {
			t.Fatalf("cloned HEAD = %s; want %s", got, w.seed.Head)
		}
	}
}
