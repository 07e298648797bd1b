package proxy

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/azdo-sidecar/azdo-sidecar/secret"
	"github.com/azdo-sidecar/azdo-sidecar/token"
	"github.com/azdo-sidecar/azdo-sidecar/vaultapi"
)

// auditSink collects events.
type auditSink struct {
	mu  sync.Mutex
	evs []vaultapi.AuditEvent
}

func (s *auditSink) Record(ev vaultapi.AuditEvent) {
	s.mu.Lock()
	s.evs = append(s.evs, ev)
	s.mu.Unlock()
}

func (s *auditSink) wait(t *testing.T, n int) []vaultapi.AuditEvent {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		s.mu.Lock()
		evs := append([]vaultapi.AuditEvent(nil), s.evs...)
		s.mu.Unlock()
		if len(evs) >= n || time.Now().After(deadline) {
			if len(evs) < n {
				t.Fatalf("audit events = %+v; want %d", evs, n)
			}
			return evs
		}
		time.Sleep(10 * time.Millisecond)
	}
}

const (
	zeroOID = "0000000000000000000000000000000000000000"
	oidA    = "1111111111111111111111111111111111111111"
	testPol = `{"version":2,"allow_repos":["dev.azure.com/contoso/Fabrikam/web","dev.azure.com/contoso/Shared/*"],"read_only_repos":["dev.azure.com/contoso/Shared/*"],"push_refs":["refs/heads/agent/*"]}`
)

func pkt(s string) string { return fmt.Sprintf("%04x", len(s)+4) + s }

// policyHarness starts an upstream that answers git paths with "ok" and
// the repository lookup with names, and a proxy whose tokens carry pol.
func policyHarness(t *testing.T, pol string) (*harness, *recorder, *auditSink, *http.Client) {
	t.Helper()
	up := newUpstreamCA(t)
	rec := &recorder{h: func(w http.ResponseWriter, r *http.Request) {
		if _, id, ok := strings.Cut(r.URL.Path, "/_apis/git/repositories/"); ok && r.URL.Query().Get("api-version") == "7.1" && !strings.Contains(id, "/") {
			name := map[string]string{"11111111-2222-3333-4444-555555555555": "web", "99999999-2222-3333-4444-555555555555": "secret"}[id]
			if name == "" {
				http.NotFound(w, r)
				return
			}
			json.NewEncoder(w).Encode(map[string]any{"id": id, "name": name, "project": map[string]string{"name": "Fabrikam"}})
			return
		}
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "ok %d", len(b))
	}}
	srv := up.startUpstream(t, rec, "dev.azure.com")
	sink := &auditSink{}
	src := &countingSource{f: func(int, token.Key) (token.Token, error) {
		return token.Token{Kind: token.Basic, Secret: secret.New(testPAT), Policy: pol}, nil
	}}
	h := startProxy(t, up, harnessOpts{counting: src, audit: sink, auditIdle: 50 * time.Millisecond,
		resolve: []string{"dev.azure.com:443:127.0.0.1:" + portOf(t, srv)}})
	c := h.client(h.roots)
	// One connection for a git command's requests, as git keeps it.
	c.Transport.(*http.Transport).DisableKeepAlives = false
	c.Transport.(*http.Transport).MaxConnsPerHost = 1
	return h, rec, sink, c
}

func do(t *testing.T, c *http.Client, method, url, ua, body string) (int, string, http.Header) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	if ua != "" {
		req.Header.Set("User-Agent", ua)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

func TestPolicyRefusesBeforeUpstream(t *testing.T) {
	h, rec, sink, c := policyHarness(t, testPol)
	base := "https://dev.azure.com/contoso"
	for _, tc := range []struct {
		name, method, path, ua, body string
		status                       int
		want                         string
		reason                       string
	}{
		{"other repo, git", "GET", "/Fabrikam/_git/api/info/refs?service=git-upload-pack", "git/2.39.5", "", 403,
			"azdo-sidecar: this environment may not use dev.azure.com/contoso/fabrikam/api (allowed: dev.azure.com/contoso/Fabrikam/web, dev.azure.com/contoso/Shared/*; read-only: dev.azure.com/contoso/Shared/*)\n", "repo_not_allowed"},
		{"other org, other client", "GET", "/../evil/P/_git/r/info/refs?service=git-upload-pack", "curl/8", "", 403,
			`"error":"forbidden_by_policy"`, "unmapped"},
		{"read-only push", "GET", "/Shared/_git/lib/info/refs?service=git-receive-pack", "git/2.39.5", "", 403,
			"azdo-sidecar: dev.azure.com/contoso/shared/lib is read-only for this environment; every push is refused\n", "read_only"},
		{"unmapped route", "GET", "/_apis/projects", "curl/8", "", 403, `"forbidden_by_policy"`, "unmapped"},
		{"REST list", "GET", "/_apis/git/repositories", "curl/8", "", 403, "list or create repositories", "list_refused"},
		{"REST other repo by ID", "GET", "/_apis/git/repositories/99999999-2222-3333-4444-555555555555/items", "curl/8", "", 403,
			"may not use dev.azure.com/contoso/fabrikam/secret", "repo_not_allowed"},
		{"REST unknown ID", "GET", "/_apis/git/repositories/00000000-2222-3333-4444-555555555555/items", "curl/8", "", 403,
			"cannot tell which repository", "unmapped"},
		{"REST write under push-ref", "POST", "/_apis/git/repositories/11111111-2222-3333-4444-555555555555/pushes", "curl/8", "{}", 403,
			"cannot vet the refs", "rest_write"},
		{"push to main, no report-status", "POST", "/Fabrikam/_git/web/git-receive-pack", "git/2.39.5",
			pkt(zeroOID+" "+oidA+" refs/heads/main\x00side-band-64k") + "0000PACK", 403,
			"azdo-sidecar: this environment may push only to refs/heads/agent/*; refs/heads/main refused\n", "ref_not_allowed"},
		{"push to main, report-status", "POST", "/Fabrikam/_git/web/git-receive-pack", "git/2.39.5",
			pkt(zeroOID+" "+oidA+" refs/heads/main\x00report-status") + pkt(zeroOID+" "+oidA+" refs/heads/agent/x") + "0000PACK", 200,
			pkt("unpack ok\n") + pkt("ng refs/heads/main this environment may push only to refs/heads/agent/*; refs/heads/main refused\n") +
				pkt("ng refs/heads/agent/x not pushed: another ref of this push was refused\n") + "0000", "ref_not_allowed"},
		{"garbage push", "POST", "/Fabrikam/_git/web/git-receive-pack", "git/2.39.5", "zzzz", 403, "cannot read the ref updates", "bad_push"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(rec.requests())
			status, body, _ := do(t, c, tc.method, base+tc.path, tc.ua, tc.body)
			if status != tc.status || !strings.Contains(body, tc.want) {
				t.Fatalf("%s %s = %d %q; want %d containing %q", tc.method, tc.path, status, body, tc.status, tc.want)
			}
			for _, r := range rec.requests()[before:] {
				if !strings.Contains(r.URL.Path, "/_apis/git/repositories/") || r.Method != "GET" || r.URL.Query().Get("api-version") != "7.1" {
					t.Fatalf("upstream got %s %s; want nothing but a repository lookup", r.Method, r.URL)
				}
			}
			if !strings.Contains(h.logs.String(), `"reason":"`+tc.reason+`"`) {
				t.Fatalf("logs have no refusal with reason %s", tc.reason)
			}
		})
	}
	if got := value(h.p.enf.refusals.WithLabelValues("ref_not_allowed")); got != 2 {
		t.Errorf("refusals{ref_not_allowed} = %v; want 2", got)
	}
	evs := sink.wait(t, 11)
	var push *vaultapi.AuditEvent
	for i := range evs {
		if evs[i].Operation == "push" && len(evs[i].Refs) == 2 {
			push = &evs[i]
		}
	}
	if push == nil || push.Refs[0] != (vaultapi.AuditRef{Name: "refs/heads/main", Old: zeroOID, New: oidA}) ||
		!strings.HasPrefix(push.Refused, "ref_not_allowed: ") || push.Repo != "web" || push.Org != "contoso" || push.Project != "Fabrikam" {
		t.Errorf("audit of the refused push = %+v", push)
	}
	if strings.Contains(h.logs.String(), testPAT) || strings.Contains(fmt.Sprint(evs), testPAT) {
		t.Error("the token reached the logs or an audit event")
	}
}

func TestPolicyForwardsAllowed(t *testing.T) {
	h, rec, sink, c := policyHarness(t, testPol)
	base := "https://dev.azure.com/contoso"
	body := pkt(zeroOID+" "+oidA+" refs/heads/agent/x\x00report-status") + "0000" + strings.Repeat("P", 100000)
	for _, tc := range []struct{ method, path, body, want string }{
		{"GET", "/Fabrikam/_git/web/info/refs?service=git-receive-pack", "", "ok 0"},
		{"POST", "/Fabrikam/_git/web/git-receive-pack", body, fmt.Sprintf("ok %d", len(body))},
		{"GET", "/Shared/_git/lib/info/refs?service=git-upload-pack", "", "ok 0"},
		{"POST", "/Shared/_git/lib/git-upload-pack", "0000", "ok 4"},
		{"GET", "/_apis/git/repositories/11111111-2222-3333-4444-555555555555/items", "", "ok 0"},
		{"GET", "/Fabrikam/_apis/git/repositories/11111111-2222-3333-4444-555555555555/items", "", "ok 0"},
	} {
		status, got, _ := do(t, c, tc.method, base+tc.path, "git/2.39.5", tc.body)
		if status != 200 || got != tc.want {
			t.Fatalf("%s %s = %d %q; want 200 %q", tc.method, tc.path, status, got, tc.want)
		}
	}
	lookups := 0
	for _, r := range rec.requests() {
		if strings.HasSuffix(r.URL.Path, "/_apis/git/repositories/11111111-2222-3333-4444-555555555555") {
			lookups++
		}
	}
	if lookups != 2 { // one per path prefix, then cached
		t.Errorf("repository lookups = %d; want 2", lookups)
	}
	evs := sink.wait(t, 4)
	ops := map[string]vaultapi.AuditEvent{}
	for _, ev := range evs {
		ops[ev.Operation+" "+ev.Repo] = ev
	}
	if ev := ops["push web"]; len(ev.Refs) != 1 || ev.Status != 200 || ev.BytesIn != int64(len(body)) || ev.Refused != "" ||
		ev.BytesOut != int64(len("ok 0")+len(fmt.Sprintf("ok %d", len(body)))) { // info/refs + receive-pack
		t.Errorf("push event = %+v", ev)
	}
	if ev := ops["fetch lib"]; ev.Project != "Shared" || ev.Status != 200 || ev.BytesIn != 4 {
		t.Errorf("fetch event = %+v (all: %+v)", ev, evs)
	}
	if len(evs) != 4 {
		t.Errorf("events = %+v; want 4 (push, fetch, 2 rest)", evs)
	}
	_ = h
}

func TestNoPolicyAllowsEverything(t *testing.T) {
	_, rec, _, c := policyHarness(t, "")
	for _, path := range []string{"/contoso/_apis/projects", "/evil/P/_git/r/info/refs?service=git-upload-pack", "/contoso/P/_git/r/git-receive-pack"} {
		method := "GET"
		if strings.HasSuffix(path, "pack") {
			method = "POST"
		}
		if status, _, _ := do(t, c, method, "https://dev.azure.com"+path, "git/2.39.5", "zzzz"); status != 200 {
			t.Errorf("%s = %d; want 200 without a policy", path, status)
		}
	}
	if n := len(rec.requests()); n != 3 {
		t.Errorf("upstream got %d requests; want 3", n)
	}
}

func TestBadPolicyRefusesAll(t *testing.T) {
	_, rec, _, c := policyHarness(t, `{"allow_repos":["nonsense"]}`)
	if status, body, _ := do(t, c, "GET", "https://dev.azure.com/contoso/P/_git/r/info/refs?service=git-upload-pack", "git/2.39.5", ""); status != 403 || !strings.Contains(body, "cannot be read") {
		t.Fatalf("= %d %q; want 403", status, body)
	}
	if n := len(rec.requests()); n != 0 {
		t.Errorf("upstream got %d requests; want 0", n)
	}
}
