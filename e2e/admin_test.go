package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/azdo-sidecar/azdo-sidecar/e2e/entraemu"
	"github.com/azdo-sidecar/azdo-sidecar/vault"
	"github.com/azdo-sidecar/azdo-sidecar/vault/store"
	"github.com/azdo-sidecar/azdo-sidecar/vaultapi"
)

// admin runs an azdo-vault admin command on w's store and returns its exit
// code and both streams.
func (w *vaultWorld) admin(args ...string) (code int, stdout, stderr string) {
	w.t.Helper()
	return w.adminAt("sqlite:"+w.db, args...)
}

// adminAt runs an azdo-vault admin command on the store at storeURL.
func (w *vaultWorld) adminAt(storeURL string, args ...string) (code int, stdout, stderr string) {
	w.t.Helper()
	cmd := exec.Command(w.bin, append(args, "--store", storeURL)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), out.String(), errb.String()
	} else if err != nil {
		w.t.Fatalf("azdo-vault %q: %v", args, err)
	}
	return 0, out.String(), errb.String()
}

// sealedCredentials returns the sealed secrets stored for owner.
func (w *vaultWorld) sealedCredentials(owner string) []string {
	w.t.Helper()
	st, err := store.OpenSQLite(context.Background(), w.db, time.Now)
	if err != nil {
		w.t.Fatal(err)
	}
	defer st.Close()
	cs, err := st.Credentials(context.Background(), owner, vaultHost)
	if err != nil {
		w.t.Fatal(err)
	}
	var out []string
	for _, c := range cs {
		out = append(out, c.Sealed)
	}
	return out
}

// TestAdminDeleteDisconnectsUser: with a running vault that has served (and
// cached) a user's access token, `credential list` shows the user's
// credential without any secret, `credential delete --owner` removes it,
// and the very next POST /v1/token answers 404 not_connected with a
// connect_url — the cached access token is not served any more.
func TestAdminDeleteDisconnectsUser(t *testing.T) {
	w := newVaultWorld(t, entraemu.Config{})
	grant := w.connect(vaultUser)
	w.start()
	envID, env := w.envCreate(vaultUser, time.Hour)
	first := w.token(env, "contoso")
	if first.code != http.StatusOK || first.ok.Token == "" {
		t.Fatalf("token before the delete = %d %s; want 200", first.code, first.raw)
	}
	secrets := append([]string{grant.RefreshToken.Reveal(), grant.AccessToken.Reveal(), first.ok.Token, env, w.storedRefreshToken()},
		w.sealedCredentials(vaultUser)...)
	var printed strings.Builder

	// credential list: the table and JSON lines show the credential.
	code, out, errs := w.admin("credential", "list")
	printed.WriteString(out + errs)
	if code != 0 || !strings.HasPrefix(out, "ID ") || !strings.Contains(out, vaultUser) || !strings.Contains(out, " oauth ") || !strings.Contains(out, " ok ") {
		t.Errorf("credential list = %d\n%s\n(stderr %q); want a table with %s's oauth credential, ok", code, out, errs, vaultUser)
	}
	code, out, errs = w.admin("credential", "list", "--json", "--owner", vaultUser)
	printed.WriteString(out + errs)
	var row struct {
		ID                     int64
		Owner, Host, Org, Kind string
		Status, Reason         string
		ExpiresAt              string `json:"expires_at"`
		UpdatedAt              string `json:"updated_at"`
	}
	if code != 0 || strings.Count(out, "\n") != 1 || json.Unmarshal([]byte(out), &row) != nil {
		t.Fatalf("credential list --json = %d %q (stderr %q); want one JSON line", code, out, errs)
	}
	if row.ID == 0 || row.Owner != vaultUser || row.Host != vaultHost || row.Org != store.AllOrgs || row.Kind != "oauth" || row.Status != "ok" || row.UpdatedAt == "" {
		t.Errorf("credential list --json = %+v; want %s's OAuth grant for every org of %s, ok", row, vaultUser, vaultHost)
	}

	// env list shows the environment, not its token.
	code, out, errs = w.admin("env", "list", "--owner", vaultUser)
	printed.WriteString(out + errs)
	if code != 0 || !strings.Contains(out, envID) || !strings.Contains(out, " active ") {
		t.Errorf("env list = %d\n%s\n(stderr %q); want %s active", code, out, errs, envID)
	}

	// credential delete --owner removes it, naming its ID on stderr.
	code, out, errs = w.admin("credential", "delete", "--owner", vaultUser)
	printed.WriteString(out + errs)
	if want := fmt.Sprintf("deleted credential %d: %s on %s", row.ID, vaultUser, vaultHost); code != 0 || out != "" || !strings.Contains(errs, want) {
		t.Errorf("credential delete --owner = %d, stdout %q, stderr %q; want 0 and %q on stderr", code, out, errs, want)
	}

	// The next request finds nothing to serve: not the cached access
	// token, but a link to connect again.
	a := w.token(env, "contoso")
	if a.code != http.StatusNotFound || a.err.Error != vaultapi.ErrNotConnected || !strings.HasPrefix(a.err.ConnectURL, "http://127.0.0.1:9/connect?") {
		t.Errorf("token after the delete = %d %s; want 404 not_connected with a connect_url", a.code, a.raw)
	}
	if strings.Contains(a.raw, first.ok.Token) {
		t.Errorf("the deleted credential's cached access token was served")
	}

	// Nothing left; deleting again is not an error.
	code, out, errs = w.admin("credential", "list", "--json")
	printed.WriteString(out + errs)
	if code != 0 || out != "" {
		t.Errorf("credential list after the delete = %d %q (stderr %q); want nothing", code, out, errs)
	}
	code, _, errs = w.admin("credential", "delete", "--owner", vaultUser)
	printed.WriteString(errs)
	if code != 0 || !strings.Contains(errs, "nothing to delete") {
		t.Errorf("credential delete --owner again = %d, stderr %q; want 0 saying nothing to delete", code, errs)
	}
	code, _, errs = w.admin("credential", "delete", fmt.Sprint(row.ID))
	printed.WriteString(errs)
	if code != 1 || !strings.Contains(errs, fmt.Sprintf("no credential %d", row.ID)) {
		t.Errorf("credential delete %d again = %d, stderr %q; want 1 naming the unknown ID", row.ID, code, errs)
	}

	for _, s := range secrets {
		if strings.Contains(printed.String(), s) {
			t.Errorf("an admin command printed a secret or a sealed secret (%.8s…)", s)
		}
	}
}

// TestAdminDeleteAcrossPostgresReplicas: on two replicas sharing one
// PostgreSQL database, both holding the user's access token in memory,
// `credential delete ID --store postgres://…` cuts the user off on both at
// once; the commands never show the database password.
func TestAdminDeleteAcrossPostgresReplicas(t *testing.T) {
	p := newPGVaults(t, entraemu.Config{})
	a, b := p.replica(), p.replica()
	p.put(vault.Credential{Owner: vaultUser, Host: vaultHost, Kind: store.OAuth, Secret: mustIssue(t, p.entra).RefreshToken})
	_, env := p.envCreate(vaultUser, time.Hour)
	for name, proc := range map[string]*vaultProc{"a": a, "b": b} {
		if ans := p.tokenAt(proc, env, "contoso"); ans.code != http.StatusOK {
			t.Fatalf("replica %s, before the delete = %d %s; want 200", name, ans.code, ans.raw)
		}
	}
	c, rt := p.storedOAuth()
	var printed strings.Builder
	code, out, errs := p.adminAt(p.url, "credential", "list", "--owner", vaultUser)
	printed.WriteString(out + errs)
	if code != 0 || !strings.Contains(out, fmt.Sprintf("%d ", c.ID)) || !strings.Contains(out, vaultUser) {
		t.Fatalf("credential list --store postgres://… = %d\n%s\n(stderr %q); want credential %d", code, out, errs, c.ID)
	}
	code, out, errs = p.adminAt(p.url, "credential", "delete", fmt.Sprint(c.ID))
	printed.WriteString(out + errs)
	if code != 0 || !strings.Contains(errs, fmt.Sprintf("deleted credential %d", c.ID)) {
		t.Fatalf("credential delete %d --store postgres://… = %d, stderr %q; want 0 naming it", c.ID, code, errs)
	}
	for name, proc := range map[string]*vaultProc{"a": a, "b": b} {
		ans := p.tokenAt(proc, env, "contoso")
		if ans.code != http.StatusNotFound || ans.err.Error != vaultapi.ErrNotConnected || ans.err.ConnectURL == "" {
			t.Errorf("replica %s, after the delete = %d %s; want 404 not_connected with a connect_url", name, ans.code, ans.raw)
		}
	}
	for _, s := range []string{pgPassword, rt, c.Sealed} {
		if strings.Contains(printed.String(), s) {
			t.Errorf("an admin command printed the database password or a secret (%.8s…)", s)
		}
	}
	p.checkNoPassword()
}
