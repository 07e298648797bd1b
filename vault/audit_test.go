package vault

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/azdo-sidecar/azdo-sidecar/vault/store"
	"github.com/azdo-sidecar/azdo-sidecar/vaultapi"
)

// postAudit posts body to /v1/audit with envTok and returns the status
// and the answer.
func (h *harness) postAudit(envTok string, body []byte) (int, string) {
	h.t.Helper()
	r, _ := http.NewRequest(http.MethodPost, h.srv.URL+vaultapi.AuditPath, bytes.NewReader(body))
	if envTok != "" {
		r.Header.Set("Authorization", "Bearer "+envTok)
	}
	resp, err := h.srv.Client().Do(r)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func auditBody(t testing.TB, events ...vaultapi.AuditEvent) []byte {
	b, err := json.Marshal(vaultapi.AuditRequest{Events: events})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

const (
	oid1 = "1111111111111111111111111111111111111111"
	oid2 = "2222222222222222222222222222222222222222"
	zero = "0000000000000000000000000000000000000000"
)

// TestAuditPostAndList: a batch is stored with the environment and owner
// of the token, never those of the body; an event that breaks a rule is
// dropped and counted, the others kept.
func TestAuditPostAndList(t *testing.T) {
	h := newHarness(t)
	t0 := h.clock.Now().Add(-time.Minute)
	push := vaultapi.AuditEvent{Time: t0.Add(time.Second), Env: "env_forged", Owner: "mallory", Host: "dev.azure.com", Org: "contoso", Project: "Fabrikam", Repo: "web",
		Operation: "push", Refs: []vaultapi.AuditRef{{Name: "refs/heads/main", Old: oid1, New: oid2}, {Name: "refs/heads/agent/x", Old: zero, New: oid2}},
		Status: 403, Refused: "ref_not_allowed: this environment may push only to refs/heads/agent/*; refs/heads/main refused", BytesIn: 512, DurationMS: 3}
	events := []vaultapi.AuditEvent{
		{Time: t0, Host: "dev.azure.com", Org: "contoso", Project: "Fabrikam", Repo: "web", Operation: "fetch", Status: 200, BytesIn: 100, BytesOut: 20000, DurationMS: 40},
		push,
		{Time: t0, Host: "dev.azure.com", Operation: "delete-everything", Status: 200},                                                                   // unknown operation
		{Time: t0, Host: "dev.azure.com", Repo: "web\nforged line", Operation: "fetch", Status: 200},                                                     // control character
		{Time: t0, Host: "dev.azure.com", Repo: strings.Repeat("r", 300), Operation: "fetch", Status: 200},                                               // too long
		{Time: t0, Host: "dev.azure.com", Operation: "push", Refs: []vaultapi.AuditRef{{Name: "refs/heads/x", Old: "pat-like-value", New: oid2}}},        // not an object ID
		{Time: t0, Host: "dev.azure.com", Operation: "rest", Refused: "Authorization: Bearer eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJ4In0.c2ln"}, // a token
		{Time: t0, Host: "dev.azure.com", Operation: "rest", Refused: "env token azdoenv_abcdefghijklmnop"},                                              // an env token
		{Time: t0, Operation: "fetch"}, // no host
	}
	code, body := h.postAudit(h.envTok.Reveal(), auditBody(t, events...))
	var ans vaultapi.AuditResponse
	if code != 200 || json.Unmarshal([]byte(body), &ans) != nil || ans.Stored != 2 || ans.Rejected != 7 {
		t.Fatalf("POST /v1/audit = %d %s; want 200 stored 2 rejected 7", code, body)
	}
	got, err := h.st.AuditEvents(context.Background(), store.AuditFilter{})
	if err != nil || len(got) != 2 {
		t.Fatalf("stored events = %+v, %v; want 2", got, err)
	}
	for _, e := range got {
		if e.Env != h.env.ID || e.Owner != defaultUser {
			t.Errorf("stored event env %q owner %q; want the token's %q %q", e.Env, e.Owner, h.env.ID, defaultUser)
		}
	}
	p := got[1]
	if p.Operation != "push" || len(p.Refs) != 2 || p.Refs[0] != (store.AuditRef{Name: "refs/heads/main", Old: oid1, New: oid2}) ||
		p.Status != 403 || p.Refused != push.Refused || p.BytesIn != 512 || !p.Time.Equal(push.Time) {
		t.Errorf("stored push = %+v; want %+v", p, push)
	}
	logs := h.logs.String()
	for _, s := range []string{"eyJ0eXAi", "azdoenv_abcdefghijklmnop", "forged line", "pat-like-value"} {
		if strings.Contains(logs, s) {
			t.Errorf("the vault's log repeats a rejected value %q:\n%s", s, grepLines(logs, s))
		}
	}
	if !strings.Contains(logs, "audit events rejected") {
		t.Errorf("no log line about rejected events:\n%s", logs)
	}
	resp, err := http.Get(h.srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	m, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(m), `azdo_vault_audit_events_total{result="stored"} 2`) || !strings.Contains(string(m), `azdo_vault_audit_events_total{result="rejected"} 7`) {
		t.Errorf("metrics lack the audit counts:\n%s", grepLines(string(m), "audit"))
	}
}

func TestAuditRefusals(t *testing.T) {
	h := newHarness(t)
	one := auditBody(t, vaultapi.AuditEvent{Time: h.clock.Now(), Host: "dev.azure.com", Operation: "fetch", Status: 200})
	many := make([]vaultapi.AuditEvent, vaultapi.MaxAuditEvents+1)
	for i := range many {
		many[i] = vaultapi.AuditEvent{Time: h.clock.Now(), Host: "dev.azure.com", Operation: "fetch", Status: 200}
	}
	revoked, revokedTok, err := NewEnvironment(context.Background(), h.st, h.v.Binding(), h.clock.Now(), "bob", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.st.RevokeEnvironment(context.Background(), revoked.ID, h.clock.Now()); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		tok      string
		body     []byte
		wantCode int
	}{
		{"no token", "", one, 401},
		{"unknown token", "azdoenv_nope", one, 401},
		{"revoked environment", revokedTok.Reveal(), one, 401},
		{"not JSON", h.envTok.Reveal(), []byte("events"), 400},
		{"too many events", h.envTok.Reveal(), auditBody(t, many...), 413},
		{"body too large", h.envTok.Reveal(), append(append([]byte(`{"events":[],"pad":"`), bytes.Repeat([]byte("x"), vaultapi.MaxAuditBody)...), '"', '}'), 413},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if code, body := h.postAudit(tt.tok, tt.body); code != tt.wantCode {
				t.Errorf("POST /v1/audit = %d %s; want %d", code, body, tt.wantCode)
			}
		})
	}
	if got, _ := h.st.AuditEvents(context.Background(), store.AuditFilter{}); len(got) != 0 {
		t.Errorf("refused requests stored %d events", len(got))
	}
}

// TestAuditTimeInTheFuture: an event dated ahead cannot outlive retention;
// the vault dates it now.
func TestAuditTimeInTheFuture(t *testing.T) {
	h := newHarness(t)
	body := auditBody(t,
		vaultapi.AuditEvent{Time: h.clock.Now().Add(365 * 24 * time.Hour), Host: "dev.azure.com", Operation: "fetch", Status: 200},
		vaultapi.AuditEvent{Host: "dev.azure.com", Operation: "ls-remote", Status: 200})
	if code, b := h.postAudit(h.envTok.Reveal(), body); code != 200 {
		t.Fatalf("POST = %d %s", code, b)
	}
	got, _ := h.st.AuditEvents(context.Background(), store.AuditFilter{})
	for _, e := range got {
		if !e.Time.Equal(h.clock.Now()) {
			t.Errorf("%s event dated %v; want the vault's now %v", e.Operation, e.Time, h.clock.Now())
		}
	}
}

// TestAuditRetention: the vault deletes events older than its retention
// at start and on every sweep, by its clock.
func TestAuditRetention(t *testing.T) {
	h := newHarness(t)
	now := h.clock.Now()
	old := store.AuditEvent{Time: now.Add(-100 * 24 * time.Hour), Env: "env_1", Owner: "ann", Host: "dev.azure.com", Operation: "fetch"}
	recent := store.AuditEvent{Time: now.Add(-89 * 24 * time.Hour), Env: "env_1", Owner: "ann", Host: "dev.azure.com", Operation: "push"}
	if err := h.st.AddAuditEvents(context.Background(), []store.AuditEvent{old, recent}); err != nil {
		t.Fatal(err)
	}
	v, err := New(Config{Keys: h.keys, Store: h.st, Now: h.clock.Now, AuditRetention: DefaultAuditRetention, AuditSweep: time.Hour,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	// The sweep at start runs in the background; wait for it.
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, _ := h.st.AuditEvents(context.Background(), store.AuditFilter{})
		if len(got) == 1 && got[0].Operation == "push" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the start sweep: %+v; want only the recent push", got)
		}
		time.Sleep(10 * time.Millisecond)
	}
	h.clock.Add(2 * 24 * time.Hour)
	if n, err := v.SweepAudit(context.Background()); err != nil || n != 1 {
		t.Fatalf("SweepAudit two days later = %d, %v; want 1", n, err)
	}
	// Retention 0 keeps everything.
	if err := h.st.AddAuditEvents(context.Background(), []store.AuditEvent{old}); err != nil {
		t.Fatal(err)
	}
	keep, err := New(Config{Keys: h.keys, Store: h.st, Now: h.clock.Now, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer keep.Close()
	if n, err := keep.SweepAudit(context.Background()); err != nil || n != 0 {
		t.Errorf("SweepAudit without retention = %d, %v; want 0", n, err)
	}
}

// TestAuditRateLimit: one environment cannot send more than its rate per
// minute to a replica; others are not affected, and the next minute it may
// send again.
func TestAuditRateLimit(t *testing.T) {
	h := newHarness(t)
	h.close()
	st, err := store.OpenSQLite(context.Background(), h.dbPath, h.clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	v, err := New(Config{Keys: h.keys, Store: st, Now: h.clock.Now, AuditRate: 3, Logger: slog.New(slog.NewTextHandler(h.logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	h.st, h.v, h.srv = st, v, httptest.NewServer(v.Mux())
	t.Cleanup(h.close)
	_, other, err := NewEnvironment(context.Background(), st, v.Binding(), h.clock.Now(), "bob", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ev := vaultapi.AuditEvent{Time: h.clock.Now(), Host: "dev.azure.com", Operation: "fetch", Status: 200}
	if code, body := h.postAudit(h.envTok.Reveal(), auditBody(t, ev, ev)); code != 200 {
		t.Fatalf("2 events = %d %s", code, body)
	}
	r, _ := http.NewRequest(http.MethodPost, h.srv.URL+vaultapi.AuditPath, bytes.NewReader(auditBody(t, ev, ev)))
	r.Header.Set("Authorization", "Bearer "+h.envTok.Reveal())
	resp, err := h.srv.Client().Do(r)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "60" {
		t.Fatalf("2 more events in the same minute = %d, Retry-After %q; want 429, 60", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if code, body := h.postAudit(other.Reveal(), auditBody(t, ev, ev, ev)); code != 200 {
		t.Errorf("another environment = %d %s; want 200", code, body)
	}
	h.clock.Add(time.Minute)
	if code, body := h.postAudit(h.envTok.Reveal(), auditBody(t, ev, ev)); code != 200 {
		t.Errorf("next minute = %d %s; want 200", code, body)
	}
	if got, _ := st.AuditEvents(context.Background(), store.AuditFilter{}); len(got) != 7 {
		t.Errorf("stored %d events; want 7 (the refused batch not stored)", len(got))
	}
}

// FuzzAuditEvent: whatever JSON an environment sends as an event, the
// vault never panics, stores only the token's environment and owner, and
// never accepts a field with a control character or a token shape.
func FuzzAuditEvent(f *testing.F) {
	for _, seed := range []string{
		`{"time":"2026-03-01T12:00:00Z","host":"dev.azure.com","org":"contoso","project":"p","repo":"r","operation":"fetch","status":200}`,
		`{"host":"dev.azure.com","operation":"push","refs":[{"name":"refs/heads/main","old":"` + oid1 + `","new":"` + oid2 + `"}],"status":403,"refused":"ref_not_allowed"}`,
		`{"env":"env_x","owner":"mallory","host":"h","operation":"rest","refused":"Bearer eyJabcdefghij.eyJabcdefghij.sig"}`,
		`{"host":"h\u0085x","operation":"ls-remote","bytes_in":-1}`,
		`{"host":"h","operation":"fetch","repo":"\u001b[31m"}`,
		`{"time":"9999-12-31T23:59:59Z","host":"h","operation":"fetch"}`,
	} {
		f.Add(seed)
	}
	env := store.Environment{ID: "env_0123456789abcdef", Owner: "ann"}
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, in string) {
		var e vaultapi.AuditEvent
		if json.Unmarshal([]byte(in), &e) != nil {
			return
		}
		se, why := auditEvent(e, env, now)
		if why != "" {
			return
		}
		if se.Env != env.ID || se.Owner != env.Owner {
			t.Fatalf("stored env %q owner %q; want the token's", se.Env, se.Owner)
		}
		if se.Time.After(now.Add(maxAuditSkew)) || se.Time.IsZero() {
			t.Fatalf("stored time %v", se.Time)
		}
		fields := []string{se.Host, se.Org, se.Project, se.Repo, se.Operation, se.Refused}
		for _, r := range se.Refs {
			fields = append(fields, r.Name, r.Old, r.New)
		}
		for _, s := range fields {
			if checkAuditText("field", s, 1<<20) != "" {
				t.Fatalf("accepted field %q", s)
			}
		}
	})
}

// TestAuditTimeBeforeTheEnvironment: an event cannot be backdated before
// its environment existed (less the allowed skew): the vault dates it
// at the environment's creation minus 5 minutes.
func TestAuditTimeBeforeTheEnvironment(t *testing.T) {
	h := newHarness(t)
	body := auditBody(t, vaultapi.AuditEvent{Time: h.clock.Now().Add(-365 * 24 * time.Hour), Host: "dev.azure.com", Operation: "push", Status: 200})
	if code, b := h.postAudit(h.envTok.Reveal(), body); code != 200 || !strings.Contains(b, `"stored":1`) {
		t.Fatalf("POST = %d %s", code, b)
	}
	got, _ := h.st.AuditEvents(context.Background(), store.AuditFilter{})
	earliest := h.env.CreatedAt.Add(-maxAuditSkew)
	if len(got) != 1 || got[0].Time.Before(earliest.Add(-time.Second)) || got[0].Time.After(h.clock.Now()) {
		t.Errorf("backdated event stored at %+v; want no earlier than %v", got, earliest)
	}
}

// TestAuditRefusesFormatCharacters: a text field holding a Unicode format
// character (a right-to-left override, a zero-width space) is rejected:
// it would show other than it reads in audit list.
func TestAuditRefusesFormatCharacters(t *testing.T) {
	h := newHarness(t)
	body := auditBody(t,
		vaultapi.AuditEvent{Time: h.clock.Now(), Host: "dev.azure.com", Repo: "web\u202etxt.exe", Operation: "fetch", Status: 200},
		vaultapi.AuditEvent{Time: h.clock.Now(), Host: "dev.azure.com", Org: "con\u200btoso", Operation: "fetch", Status: 200},
		vaultapi.AuditEvent{Time: h.clock.Now(), Host: "dev.azure.com", Repo: "web", Operation: "fetch", Status: 200})
	code, b := h.postAudit(h.envTok.Reveal(), body)
	if code != 200 || !strings.Contains(b, `"stored":1`) || !strings.Contains(b, `"rejected":2`) {
		t.Errorf("POST with format characters = %d %s; want 1 stored, 2 rejected", code, b)
	}
	if !strings.Contains(h.logs.String(), "Unicode format character") {
		t.Errorf("the log does not say why:\n%s", h.logs.String())
	}
}
