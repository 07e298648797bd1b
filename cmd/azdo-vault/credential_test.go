package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/azdo-sidecar/azdo-sidecar/sealbox"
	"github.com/azdo-sidecar/azdo-sidecar/vault/store"
)

// stamp is the store's clock in these tests, so UpdatedAt is known.
var stamp = time.Date(2026, 4, 5, 6, 7, 8, 0, time.UTC)

// Known secrets that the admin commands must never print, in plaintext or
// sealed.
const (
	annRefreshToken = "rt-ann-admin-test-0123456789-secretvalue"
	annPAT          = "pat-ann-admin-test-abcdefghij-secretvalue"
	bobRefreshToken = "rt-bob-admin-test-9876543210-secretvalue"
	danPAT          = "pat-dan-admin-test-klmnopqrst-secretvalue"
)

// adminStore is a SQLite store with known credentials, sealed to a fresh
// runner key as the vault stores them.
type adminStore struct {
	url    string
	ids    map[string]int64 // by "owner/host/kind"
	sealed []string         // the sealed forms of the secrets
}

// newAdminStore stores: ann's OAuth grant for every org of dev.azure.com,
// ann's PAT for coll on tfs.example:8443 (expiring), bob's OAuth grant,
// which needs reconnecting (its reason holds a tab and a newline), and
// dan's PAT for contoso, expired but still "ok" in its row.
func newAdminStore(t *testing.T) *adminStore {
	t.Helper()
	kp, err := sealbox.Generate()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "vault.db")
	st, err := store.OpenSQLite(context.Background(), path, func() time.Time { return stamp })
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	a := &adminStore{url: "sqlite:" + path, ids: map[string]int64{}}
	for _, c := range []struct {
		owner, host, org string
		kind             store.Kind
		secret           string
		expires          time.Time
		status           store.Status
		reason           string
	}{
		{"ann", "dev.azure.com", store.AllOrgs, store.OAuth, annRefreshToken, time.Time{}, "", ""},
		{"ann", "tfs.example:8443", "coll", store.PAT, annPAT, time.Date(2099, 12, 31, 0, 0, 0, 0, time.UTC), "", ""},
		{"bob", "dev.azure.com", store.AllOrgs, store.OAuth, bobRefreshToken, time.Time{}, store.StatusReconnectRequired, "invalid_grant\tAADSTS70008\nforged row"},
		{"dan", "dev.azure.com", "contoso", store.PAT, danPAT, time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC), "", ""},
	} {
		sealed, err := sealbox.Seal(kp.Public, []byte(c.secret))
		if err != nil {
			t.Fatal(err)
		}
		sc, err := st.PutCredential(context.Background(), store.Credential{Owner: c.owner, Host: c.host, Org: c.org, Kind: c.kind,
			Sealed: sealed, ExpiresAt: c.expires, Status: c.status, Reason: c.reason})
		if err != nil {
			t.Fatal(err)
		}
		a.ids[c.owner+"/"+c.host+"/"+string(c.kind)] = sc.ID
		a.sealed = append(a.sealed, sealed)
	}
	return a
}

// left returns the IDs still stored.
func (a *adminStore) left(t *testing.T) []int64 {
	t.Helper()
	path, _ := store.SQLitePath(a.url)
	st, err := store.OpenSQLite(context.Background(), path, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	cs, err := st.ListCredentials(context.Background(), "", "")
	if err != nil {
		t.Fatal(err)
	}
	var ids []int64
	for _, c := range cs {
		ids = append(ids, c.ID)
	}
	return ids
}

// leaks names every secret (or sealed secret, or a long piece of one) that
// s contains.
func (a *adminStore) leaks(s string) []string {
	var out []string
	for _, sec := range append([]string{annRefreshToken, annPAT, bobRefreshToken, danPAT}, a.sealed...) {
		// A piece is enough: a truncated secret is still a leak.
		if strings.Contains(s, sec) || strings.Contains(s, sec[:24]) {
			out = append(out, sec[:8]+"…")
		}
	}
	return out
}

func TestCredentialList(t *testing.T) {
	a := newAdminStore(t)
	table := strings.Join([]string{
		"ID  OWNER  HOST              ORG      KIND   STATUS              EXPIRES               UPDATED               REASON",
		"1   ann    dev.azure.com     *        oauth  ok                  -                     2026-04-05T06:07:08Z  -",
		"2   ann    tfs.example:8443  coll     pat    ok                  2099-12-31T00:00:00Z  2026-04-05T06:07:08Z  -",
		"3   bob    dev.azure.com     *        oauth  reconnect_required  -                     2026-04-05T06:07:08Z  invalid_grant AADSTS70008 forged row",
		"4   dan    dev.azure.com     contoso  pat    reconnect_required  2020-01-01T00:00:00Z  2026-04-05T06:07:08Z  PAT expired",
		"",
	}, "\n")
	jsonAnn1 := `{"id":1,"owner":"ann","host":"dev.azure.com","org":"*","kind":"oauth","status":"ok","reason":"","expires_at":"","updated_at":"2026-04-05T06:07:08Z"}` + "\n"
	jsonAnn2 := `{"id":2,"owner":"ann","host":"tfs.example:8443","org":"coll","kind":"pat","status":"ok","reason":"","expires_at":"2099-12-31T00:00:00Z","updated_at":"2026-04-05T06:07:08Z"}` + "\n"
	jsonDan := `{"id":4,"owner":"dan","host":"dev.azure.com","org":"contoso","kind":"pat","status":"reconnect_required","reason":"PAT expired","expires_at":"2020-01-01T00:00:00Z","updated_at":"2026-04-05T06:07:08Z"}` + "\n"
	jsonBob := `{"id":3,"owner":"bob","host":"dev.azure.com","org":"*","kind":"oauth","status":"reconnect_required","reason":"invalid_grant\tAADSTS70008\nforged row","expires_at":"","updated_at":"2026-04-05T06:07:08Z"}` + "\n"
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout string
		wantStderr string // a substring; "" wants stderr empty
	}{
		{name: "table", args: []string{"credential", "list", "--store", a.url}, wantStdout: table},
		{name: "json lines", args: []string{"credential", "list", "--json", "--store", a.url}, wantStdout: jsonAnn1 + jsonAnn2 + jsonBob + jsonDan},
		{name: "one owner", args: []string{"credential", "list", "--owner", "ann", "--json", "--store", a.url}, wantStdout: jsonAnn1 + jsonAnn2},
		{name: "host as written by users", args: []string{"credential", "list", "--host", "DEV.azure.com:443", "--json", "--store", a.url}, wantStdout: jsonAnn1 + jsonBob + jsonDan},
		{name: "owner and host", args: []string{"credential", "list", "--owner", "ann", "--host", "tfs.example:8443", "--json", "--store", a.url}, wantStdout: jsonAnn2},
		{name: "flags after the command's arguments", args: []string{"credential", "list", "--store", a.url, "--json", "--owner", "bob"}, wantStdout: jsonBob},
		{name: "no match, json", args: []string{"credential", "list", "--owner", "carol", "--json", "--store", a.url}},
		{name: "no match, table", args: []string{"credential", "list", "--owner", "carol", "--host", "dev.azure.com", "--store", a.url},
			wantStderr: "no credentials stored (owner carol, host dev.azure.com)"},
		{name: "missing store file", args: []string{"credential", "list", "--store", "sqlite:" + filepath.Join(t.TempDir(), "typo.db")}, wantCode: 1, wantStderr: "no store at"},
		{name: "an argument", args: []string{"credential", "list", "ann", "--store", a.url}, wantCode: 2, wantStderr: "takes no arguments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errs := runVault(t, tt.args...)
			if code != tt.wantCode || out != tt.wantStdout {
				t.Errorf("azdo-vault %q = %d, stdout\n%s\nwant %d, stdout\n%s\n(stderr %q)", tt.args, code, out, tt.wantCode, tt.wantStdout, errs)
			}
			if (tt.wantStderr == "" && errs != "") || !strings.Contains(errs, tt.wantStderr) {
				t.Errorf("azdo-vault %q stderr = %q; want %q", tt.args, errs, tt.wantStderr)
			}
			if l := a.leaks(out + errs); l != nil {
				t.Errorf("azdo-vault %q printed secrets %v", tt.args, l)
			}
		})
	}
}

// TestCredentialListFiltersFromEnv: --owner and --host read AZDO_OWNER and
// AZDO_HOST, as every flag does.
func TestCredentialListFiltersFromEnv(t *testing.T) {
	a := newAdminStore(t)
	t.Setenv("AZDO_OWNER", "ann")
	t.Setenv("AZDO_HOST", "tfs.example:8443")
	t.Setenv("AZDO_STORE", a.url)
	code, out, errs := runVault(t, "credential", "list", "--json")
	if want := fmt.Sprintf(`{"id":%d,`, a.ids["ann/tfs.example:8443/pat"]); code != 0 || !strings.HasPrefix(out, want) || strings.Count(out, "\n") != 1 {
		t.Errorf("credential list with AZDO_OWNER, AZDO_HOST, AZDO_STORE = %d, %q (stderr %q); want ann's PAT alone", code, out, errs)
	}
}

func TestCredentialDelete(t *testing.T) {
	tests := []struct {
		name       string
		args       func(a *adminStore) []string
		wantCode   int
		wantStderr []string // substrings
		wantLeft   []string // the credentials left, as "owner/host/kind"
	}{
		{
			name:       "by ID",
			args:       func(a *adminStore) []string { return []string{"credential", "delete", "--store", a.url, "1"} },
			wantStderr: []string{"deleted credential 1: ann on dev.azure.com, org *, oauth\n"},
			wantLeft:   []string{"ann/tfs.example:8443/pat", "bob/dev.azure.com/oauth", "dan/dev.azure.com/pat"},
		},
		{
			name:       "by ID, --store after it",
			args:       func(a *adminStore) []string { return []string{"credential", "delete", "3", "--store", a.url} },
			wantStderr: []string{"deleted credential 3: bob on dev.azure.com, org *, oauth\n"},
			wantLeft:   []string{"ann/dev.azure.com/oauth", "ann/tfs.example:8443/pat", "dan/dev.azure.com/pat"},
		},
		{
			name: "every credential of an owner",
			args: func(a *adminStore) []string {
				return []string{"credential", "delete", "--owner", "ann", "--store", a.url}
			},
			wantStderr: []string{"deleted credential 1: ann on dev.azure.com, org *, oauth\n", "deleted credential 2: ann on tfs.example:8443, org coll, pat\n"},
			wantLeft:   []string{"bob/dev.azure.com/oauth", "dan/dev.azure.com/pat"},
		},
		{
			name: "an owner's credentials for one host",
			args: func(a *adminStore) []string {
				return []string{"credential", "delete", "--owner", "ann", "--host", "TFS.example:8443", "--store", a.url}
			},
			wantStderr: []string{"deleted credential 2: ann on tfs.example:8443, org coll, pat\n"},
			wantLeft:   []string{"ann/dev.azure.com/oauth", "bob/dev.azure.com/oauth", "dan/dev.azure.com/pat"},
		},
		{
			name: "an owner with nothing to delete",
			args: func(a *adminStore) []string {
				return []string{"credential", "delete", "--owner", "carol", "--store", a.url}
			},
			wantStderr: []string{"nothing to delete: no credentials stored (owner carol)\n"},
			wantLeft:   []string{"ann/dev.azure.com/oauth", "ann/tfs.example:8443/pat", "bob/dev.azure.com/oauth", "dan/dev.azure.com/pat"},
		},
		{
			name:       "unknown ID",
			args:       func(a *adminStore) []string { return []string{"credential", "delete", "99", "--store", a.url} },
			wantCode:   1,
			wantStderr: []string{"azdo-vault: no credential 99 (credential list shows the IDs)\n"},
			wantLeft:   []string{"ann/dev.azure.com/oauth", "ann/tfs.example:8443/pat", "bob/dev.azure.com/oauth", "dan/dev.azure.com/pat"},
		},
		{
			name:       "not an ID: a secret pasted by mistake is not echoed",
			args:       func(a *adminStore) []string { return []string{"credential", "delete", annPAT, "--store", a.url} },
			wantCode:   2,
			wantStderr: []string{"the credential ID must be a positive number"},
			wantLeft:   []string{"ann/dev.azure.com/oauth", "ann/tfs.example:8443/pat", "bob/dev.azure.com/oauth", "dan/dev.azure.com/pat"},
		},
		{
			name: "ID and --owner",
			args: func(a *adminStore) []string {
				return []string{"credential", "delete", "1", "--owner", "ann", "--store", a.url}
			},
			wantCode:   2,
			wantStderr: []string{"one credential ID (credential list shows them), or --owner USER [--host HOST]"},
			wantLeft:   []string{"ann/dev.azure.com/oauth", "ann/tfs.example:8443/pat", "bob/dev.azure.com/oauth", "dan/dev.azure.com/pat"},
		},
		{
			name:       "neither",
			args:       func(a *adminStore) []string { return []string{"credential", "delete", "--store", a.url} },
			wantCode:   2,
			wantStderr: []string{"one credential ID"},
			wantLeft:   []string{"ann/dev.azure.com/oauth", "ann/tfs.example:8443/pat", "bob/dev.azure.com/oauth", "dan/dev.azure.com/pat"},
		},
		{
			name:       "two IDs",
			args:       func(a *adminStore) []string { return []string{"credential", "delete", "1", "2", "--store", a.url} },
			wantCode:   2,
			wantStderr: []string{"one credential ID"},
			wantLeft:   []string{"ann/dev.azure.com/oauth", "ann/tfs.example:8443/pat", "bob/dev.azure.com/oauth", "dan/dev.azure.com/pat"},
		},
		{
			name: "--host without --owner",
			args: func(a *adminStore) []string {
				return []string{"credential", "delete", "1", "--host", "dev.azure.com", "--store", a.url}
			},
			wantCode:   2,
			wantStderr: []string{"--host needs --owner"},
			wantLeft:   []string{"ann/dev.azure.com/oauth", "ann/tfs.example:8443/pat", "bob/dev.azure.com/oauth", "dan/dev.azure.com/pat"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := newAdminStore(t)
			args := tt.args(a)
			code, out, errs := runVault(t, args...)
			if code != tt.wantCode || out != "" {
				t.Errorf("azdo-vault %q = %d, stdout %q (stderr %q); want %d and nothing on stdout", args, code, out, errs, tt.wantCode)
			}
			for _, w := range tt.wantStderr {
				if !strings.Contains(errs, w) {
					t.Errorf("azdo-vault %q stderr = %q; want %q", args, errs, w)
				}
			}
			if l := a.leaks(out + errs); l != nil {
				t.Errorf("azdo-vault %q printed secrets %v", args, l)
			}
			var want []int64
			for _, k := range tt.wantLeft {
				want = append(want, a.ids[k])
			}
			if got := a.left(t); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("after azdo-vault %q the store holds %v; want %v (%v)", args, got, want, tt.wantLeft)
			}
		})
	}
}

// TestEnvList: the table and JSON lines show ID, owner, state, times and
// policy, never an environment token or its hash.
func TestEnvList(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vault.db")
	st, err := store.OpenSQLite(context.Background(), path, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	created := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	var secrets []string
	for i, e := range []store.Environment{
		{ID: "env_00000000000000a1", Owner: "ann", CreatedAt: created, ExpiresAt: time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC)},
		{ID: "env_00000000000000a2", Owner: "ann", CreatedAt: created.Add(time.Hour), ExpiresAt: created.Add(2 * time.Hour)},
		{ID: "env_00000000000000b1", Owner: "bob", CreatedAt: created.Add(2 * time.Hour), RevokedAt: created.Add(3 * time.Hour),
			Policy: store.Policy{AllowRepos: []string{"dev.azure.com/contoso/Fabrikam/*"}, PushRefs: []string{"refs/heads/agent/*"}, ProxyOnly: true}, PolicyVersion: 2},
		{ID: "env_00000000000000c1", Owner: "carol", CreatedAt: created.Add(3 * time.Hour)},
	} {
		tok := fmt.Sprintf("azdoenv_admin-test-token-%d-secretvalue", i)
		h := sha256.Sum256([]byte(tok))
		e.TokenHash = h[:]
		secrets = append(secrets, tok, hex.EncodeToString(h[:])[:16], fmt.Sprintf("%x", h[:4]))
		if err := st.CreateEnvironment(context.Background(), e); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()
	url := "sqlite:" + path
	table := strings.Join([]string{
		"ID                    OWNER  STATE    CREATED               EXPIRES               REVOKED               POLICY",
		"env_00000000000000a1  ann    active   2026-01-02T03:04:05Z  2099-01-01T00:00:00Z  -                     none",
		"env_00000000000000a2  ann    expired  2026-01-02T04:04:05Z  2026-01-02T05:04:05Z  -                     none",
		"env_00000000000000b1  bob    revoked  2026-01-02T05:04:05Z  never                 2026-01-02T06:04:05Z  allow dev.azure.com/contoso/Fabrikam/*; push refs/heads/agent/*; proxy-only",
		"env_00000000000000c1  carol  active   2026-01-02T06:04:05Z  never                 -                     none",
		"",
	}, "\n")
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout string
		wantStderr string
	}{
		{name: "table", args: []string{"env", "list", "--store", url}, wantStdout: table},
		{name: "json lines, one owner", args: []string{"env", "list", "--owner", "ann", "--json", "--store", url}, wantStdout: `{"id":"env_00000000000000a1","owner":"ann","state":"active","created_at":"2026-01-02T03:04:05Z","expires_at":"2099-01-01T00:00:00Z","revoked_at":"","policy":{"version":0}}` + "\n" +
			`{"id":"env_00000000000000a2","owner":"ann","state":"expired","created_at":"2026-01-02T04:04:05Z","expires_at":"2026-01-02T05:04:05Z","revoked_at":"","policy":{"version":0}}` + "\n"},
		{name: "revoked", args: []string{"env", "list", "--owner", "bob", "--json", "--store", url}, wantStdout: `{"id":"env_00000000000000b1","owner":"bob","state":"revoked","created_at":"2026-01-02T05:04:05Z","expires_at":"","revoked_at":"2026-01-02T06:04:05Z","policy":{"version":2,"allow_repos":["dev.azure.com/contoso/Fabrikam/*"],"push_refs":["refs/heads/agent/*"],"proxy_only":true}}` + "\n"},
		{name: "no match", args: []string{"env", "list", "--owner", "dave", "--store", url}, wantStderr: "no environments (owner dave)"},
		{name: "missing store file", args: []string{"env", "list", "--store", "sqlite:" + filepath.Join(t.TempDir(), "typo.db")}, wantCode: 1, wantStderr: "no store at"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errs := runVault(t, tt.args...)
			if code != tt.wantCode || out != tt.wantStdout {
				t.Errorf("azdo-vault %q = %d, stdout\n%s\nwant %d, stdout\n%s\n(stderr %q)", tt.args, code, out, tt.wantCode, tt.wantStdout, errs)
			}
			if (tt.wantStderr == "" && errs != "") || !strings.Contains(errs, tt.wantStderr) {
				t.Errorf("azdo-vault %q stderr = %q; want %q", tt.args, errs, tt.wantStderr)
			}
			for _, s := range secrets {
				if strings.Contains(out+errs, s) {
					t.Errorf("azdo-vault %q printed a token or its hash (%.8s…)", tt.args, s)
				}
			}
		})
	}
}

func TestCredentialRowMarksPATExpiringSoon(t *testing.T) {
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name       string
		expires    time.Time
		wantStatus string
		wantReason string
	}{
		{"in 3 days", now.Add(72 * time.Hour), "ok", "PAT expires 2026-06-04 (within 7 days)"},
		{"in 30 days", now.Add(30 * 24 * time.Hour), "ok", ""},
		{"expired", now.Add(-time.Hour), "reconnect_required", "PAT expired"},
		{"unknown expiry", time.Time{}, "ok", ""},
	}
	for _, tt := range tests {
		r := newCredentialRow(store.Credential{Kind: store.PAT, Status: store.StatusOK, ExpiresAt: tt.expires}, now)
		if r.Status != tt.wantStatus || r.Reason != tt.wantReason {
			t.Errorf("%s: row status %q reason %q; want %q, %q", tt.name, r.Status, r.Reason, tt.wantStatus, tt.wantReason)
		}
	}
}
