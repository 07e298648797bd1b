package azdoemu_test

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/azdo-sidecar/azdo-sidecar/e2e/azdoemu"
	"github.com/azdo-sidecar/azdo-sidecar/e2e/testenv"
	"github.com/azdo-sidecar/azdo-sidecar/secret"
)

// fixture is an emulator with a PAT for all organizations and git set up
// to reach it under every host name the tests use.
type fixture struct {
	emu *azdoemu.Server
	git *testenv.Git
	pat secret.String
}

var hosts = []string{"dev.azure.com", "contoso.visualstudio.com", "tfs.contoso.test"}

func newFixture(t *testing.T, cfg azdoemu.Config) *fixture {
	t.Helper()
	if cfg.VirtualDir == "" {
		cfg.VirtualDir = "tfs"
	}
	cfg.SelfHosted = append(cfg.SelfHosted, "tfs.contoso.test")
	f := &fixture{emu: testenv.StartAzDO(t, cfg), git: testenv.NewGit(t), pat: azdoemu.NewPAT()}
	if err := f.emu.AddPAT(azdoemu.PAT{Token: f.pat}); err != nil {
		t.Fatal(err)
	}
	testenv.Reach(t, f.git, f.emu, hosts...)
	f.git.Setenv("GIT_CONFIG_COUNT", "1")
	f.git.Setenv("GIT_CONFIG_KEY_0", "http.extraHeader")
	f.git.Setenv("GIT_CONFIG_VALUE_0", "Authorization: "+basic("user", f.pat))
	return f
}

func basic(user string, pass secret.String) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass.Reveal()))
}

// do sends a request through the emulator's client.
func (f *fixture) do(t *testing.T, method, url string, body io.Reader, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := f.emu.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp, string(b)
}

func TestURLLayoutsWithRealGit(t *testing.T) {
	f := newFixture(t, azdoemu.Config{})
	web := testenv.Seed(t, f.emu, "contoso", "Web", "site", testenv.SeedOptions{Seed: 1})
	projectless := testenv.Seed(t, f.emu, "contoso", "Web", "Web", testenv.SeedOptions{Seed: 2})
	spaces := testenv.Seed(t, f.emu, "contoso", "My Project", "My Repo", testenv.SeedOptions{Seed: 3})
	server := testenv.Seed(t, f.emu, "DefaultCollection", "Web", "site", testenv.SeedOptions{Seed: 4})

	tests := []struct {
		name, url, head string
	}{
		{"dev.azure.com", "https://dev.azure.com/contoso/Web/_git/site", web.Head},
		{"org in user info", "https://contoso@dev.azure.com/contoso/Web/_git/site", web.Head},
		{"project-less", "https://dev.azure.com/contoso/_git/Web", projectless.Head},
		{"_optimized", "https://dev.azure.com/contoso/Web/_git/_optimized/site", web.Head},
		{"_full", "https://dev.azure.com/contoso/Web/_git/_full/site", web.Head},
		{"case-insensitive names", "https://dev.azure.com/CONTOSO/web/_git/SITE", web.Head},
		{"spaces", "https://dev.azure.com/contoso/My%20Project/_git/My%20Repo", spaces.Head},
		{"visualstudio.com DefaultCollection", "https://contoso.visualstudio.com/DefaultCollection/Web/_git/site", web.Head},
		{"visualstudio.com", "https://contoso.visualstudio.com/Web/_git/site", web.Head},
		{"self-hosted", "https://tfs.contoso.test/tfs/DefaultCollection/Web/_git/site", server.Head},
		{".git suffix is another repository", "https://dev.azure.com/contoso/Web/_git/site.git", ""},
		{"self-hosted without virtual dir", "https://tfs.contoso.test/DefaultCollection/Web/_git/site", ""},
		{"unknown organization", "https://dev.azure.com/fabrikam/Web/_git/site", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := f.git.RunErr("ls-remote", tc.url, "refs/heads/main")
			if tc.head == "" {
				if err == nil || !strings.Contains(out, "not found") {
					t.Fatalf("git ls-remote %s = %v\n%s; want \"not found\"", tc.url, err, out)
				}
				return
			}
			if err != nil || !strings.HasPrefix(out, tc.head) {
				t.Fatalf("git ls-remote %s = %v\n%s; want %s", tc.url, err, out, tc.head)
			}
		})
	}

	resp, body := f.do(t, "GET", "https://dev.azure.com/contoso/Web/_git/site.git/info/refs?service=git-upload-pack", nil,
		map[string]string{"Authorization": basic("u", f.pat)})
	if resp.StatusCode != http.StatusNotFound || !strings.Contains(body, "TF401019") {
		t.Errorf("info/refs of site.git = %d %q; want 404 TF401019", resp.StatusCode, body)
	}
}

func TestAuthentication(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	f := newFixture(t, azdoemu.Config{Clock: clock})
	testenv.Seed(t, f.emu, "contoso", "Web", "site", testenv.SeedOptions{})
	scoped, expiring, revoked := azdoemu.NewPAT(), azdoemu.NewPAT(), azdoemu.NewPAT()
	for _, p := range []azdoemu.PAT{
		{Token: scoped, Org: "Contoso"},
		{Token: expiring, ExpiresAt: now.Add(time.Hour)},
		{Token: revoked},
	} {
		if err := f.emu.AddPAT(p); err != nil {
			t.Fatal(err)
		}
	}
	f.emu.RevokePAT(revoked)
	f.emu.SetBearerVerifier(func(tok string) (string, error) {
		if tok == "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.sig" {
			return "alice", nil
		}
		return "", fmt.Errorf("bad signature")
	})
	const jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.sig"

	tests := []struct {
		name, org, auth string
		advance         time.Duration
		want            int
	}{
		{"all-orgs PAT", "contoso", basic("u", f.pat), 0, 200},
		{"org-scoped PAT, its org (case-insensitive)", "contoso", basic("u", scoped), 0, 200},
		{"org-scoped PAT, other org", "fabrikam", basic("u", scoped), 0, 401},
		{"PAT before expiry", "contoso", basic("u", expiring), 0, 200},
		{"PAT at expiry", "contoso", basic("u", expiring), time.Hour, 401},
		{"revoked PAT", "contoso", basic("u", revoked), 0, 401},
		{"unknown PAT", "contoso", basic("u", azdoemu.NewPAT()), 0, 401},
		{"empty user name", "contoso", basic("", f.pat), 0, 401},
		{"empty password", "contoso", "Basic " + base64.StdEncoding.EncodeToString([]byte("u:")), 0, 401},
		{"bearer", "contoso", "Bearer " + jwt, 0, 200},
		{"bearer as basic password", "contoso", basic("u", secret.New(jwt)), 0, 200},
		{"bearer rejected by verifier", "contoso", "Bearer eyJx.eyJy.z", 0, 401},
		{"PAT as bearer", "contoso", "Bearer " + f.pat.Reveal(), 0, 401},
		{"no credentials", "contoso", "", 0, 401},
		{"unknown scheme", "contoso", "Negotiate abc", 0, 401},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mu.Lock()
			now = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(tc.advance)
			mu.Unlock()
			hdr := map[string]string{"X-TFS-FedAuthRedirect": "Suppress"}
			if tc.auth != "" {
				hdr["Authorization"] = tc.auth
			}
			resp, _ := f.do(t, "GET", "https://dev.azure.com/"+tc.org+"/_apis/connectionData", nil, hdr)
			if resp.StatusCode != tc.want {
				t.Errorf("connectionData for %s = %d; want %d", tc.name, resp.StatusCode, tc.want)
			}
		})
	}

	// The request log keeps kinds and hashes, never a credential.
	log := fmt.Sprintf("%+v", f.emu.Requests())
	for _, s := range []secret.String{f.pat, scoped, expiring, revoked, secret.New(jwt)} {
		if strings.Contains(log, s.Reveal()) {
			t.Errorf("request log contains a credential")
		}
	}
	if !strings.Contains(log, azdoemu.CredentialHash(scoped)) {
		t.Errorf("request log lacks the hash of the scoped PAT")
	}
}

func TestUnauthenticatedAnswers(t *testing.T) {
	f := newFixture(t, azdoemu.Config{})
	testenv.Seed(t, f.emu, "contoso", "Web", "site", testenv.SeedOptions{})
	tests := []struct {
		name, url string
		hdr       map[string]string
		want      int
	}{
		{"git without credentials", "https://dev.azure.com/contoso/Web/_git/site/info/refs?service=git-upload-pack", nil, 401},
		{"REST without Suppress", "https://dev.azure.com/contoso/_apis/connectionData", nil, 302},
		{"REST with Suppress", "https://dev.azure.com/contoso/_apis/connectionData", map[string]string{"X-TFS-FedAuthRedirect": "Suppress"}, 401},
		{"browser without Suppress", "https://dev.azure.com/contoso/Web/_git/site", map[string]string{"Accept": "text/html,application/xhtml+xml"}, 302},
		{"visualstudio.com REST", "https://contoso.visualstudio.com/_apis/connectionData", nil, 302},
		{"sign-in page", "https://dev.azure.com/contoso/_signin?realm=dev.azure.com", nil, 203},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, _ := f.do(t, "GET", tc.url, nil, tc.hdr)
			if resp.StatusCode != tc.want {
				t.Fatalf("GET %s = %d; want %d", tc.url, resp.StatusCode, tc.want)
			}
			switch tc.want {
			case 302:
				if loc := resp.Header.Get("Location"); !strings.Contains(loc, "/_signin") {
					t.Errorf("Location = %q; want a _signin page", loc)
				}
			case 401:
				if n := len(resp.Header.Values("WWW-Authenticate")); n != 3 {
					t.Errorf("WWW-Authenticate challenges = %d; want 3", n)
				}
				if resp.Header.Get("X-VSS-ResourceTenant") != f.emu.TenantID() || resp.Header.Get("X-TFS-ServiceError") == "" {
					t.Errorf("401 headers = %v; want X-VSS-ResourceTenant and X-TFS-ServiceError", resp.Header)
				}
			}
		})
	}
}

// pkt encodes one pkt-line.
func pkt(s string) string { return fmt.Sprintf("%04x%s", len(s)+4, s) }

func TestUploadPackNeedsMultiAck(t *testing.T) {
	f := newFixture(t, azdoemu.Config{})
	seed := testenv.Seed(t, f.emu, "contoso", "Web", "site", testenv.SeedOptions{})
	url := "https://dev.azure.com/contoso/Web/_git/site/git-upload-pack"
	gz := func(s string) string {
		var b bytes.Buffer
		w := gzip.NewWriter(&b)
		io.WriteString(w, s)
		w.Close()
		return b.String()
	}
	tests := []struct {
		name, caps string
		gzip       bool
		want       int
	}{
		{"multi_ack_detailed", "multi_ack_detailed side-band-64k ofs-delta", false, 200},
		{"multi_ack", "multi_ack side-band-64k ofs-delta", false, 200},
		{"no multi_ack (go-git default)", "side-band-64k ofs-delta no-progress", false, 400},
		{"no multi_ack, gzip", "side-band-64k ofs-delta", true, 400},
		{"multi_ack_detailed, gzip", "multi_ack_detailed side-band-64k ofs-delta", true, 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			body := pkt("want "+seed.Head+" "+tc.caps+"\n") + "0000" + pkt("done\n")
			hdr := map[string]string{
				"Authorization": basic("u", f.pat),
				"Content-Type":  "application/x-git-upload-pack-request",
				"Git-Protocol":  "version=2",
			}
			if tc.gzip {
				body = gz(body)
				hdr["Content-Encoding"] = "gzip"
			}
			resp, out := f.do(t, "POST", url, strings.NewReader(body), hdr)
			if resp.StatusCode != tc.want {
				t.Fatalf("upload-pack with %q = %d %q; want %d", tc.caps, resp.StatusCode, out, tc.want)
			}
			if tc.want == 400 && !strings.Contains(out, "TF401041") {
				t.Errorf("400 body = %q; want TF401041", out)
			}
			if tc.want == 200 && !strings.Contains(out, "PACK") {
				t.Errorf("200 body has no pack")
			}
		})
	}
}

func TestProtocolV1Only(t *testing.T) {
	f := newFixture(t, azdoemu.Config{})
	testenv.Seed(t, f.emu, "contoso", "Web", "site", testenv.SeedOptions{})
	resp, body := f.do(t, "GET", "https://dev.azure.com/contoso/Web/_git/site/info/refs?service=git-upload-pack", nil,
		map[string]string{"Authorization": basic("u", f.pat), "Git-Protocol": "version=2"})
	if resp.StatusCode != 200 || strings.Contains(body, "version 2") || !strings.Contains(body, "multi_ack") {
		t.Fatalf("info/refs asking for v2 = %d %q; want a v1 advertisement with multi_ack", resp.StatusCode, body)
	}
	// Real git asking for v2 still works, over v1.
	f.git.Setenv("GIT_TRACE_PACKET", filepath.Join(f.git.Home, "packet.trace"))
	f.git.Run(t, "-c", "protocol.version=2", "clone", "--quiet", "https://dev.azure.com/contoso/Web/_git/site", filepath.Join(f.git.Home, "site"))
	trace, err := os.ReadFile(filepath.Join(f.git.Home, "packet.trace"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(trace), "< version 2") {
		t.Errorf("server spoke protocol v2")
	}
}

func TestLargeChunkedPush(t *testing.T) {
	if testing.Short() {
		t.Skip("pushes 50 MB")
	}
	tests := []struct {
		name, version string
		size          int
		postBuffer    string // http.postBuffer, git's default when empty
	}{
		// Bigger than http.postBuffer: git probes, then streams chunked.
		{"50 MB over HTTP/1.1", "HTTP/1.1", 50<<20 + 123, ""},
		// Over HTTP/2 the body goes in one buffered POST: libcurl 7.88
		// (Debian 12, this machine) stalls now and then, forever, on a
		// streamed HTTP/2 upload (about 1 run in 4 here; curl fixed such
		// stalls in 8.2, curl/curl#11342). That is a client bug, not
		// something the emulator or Azure DevOps does; the sidecar talks
		// HTTP/1.1 on intercepted connections and never meets it.
		{"3 MB over HTTP/2", "HTTP/2", 3 << 20, "8m"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, azdoemu.Config{})
			// Random data does not compress: spare the CPU.
			f.git.SetConfig(t, "core.compression", "0")
			if tc.postBuffer != "" {
				f.git.SetConfig(t, "http.postBuffer", tc.postBuffer)
			}
			seed := testenv.Seed(t, f.emu, "contoso", "Web", "big", testenv.SeedOptions{})
			dir := filepath.Join(f.git.Home, "big")
			f.git.Run(t, "clone", "--quiet", "https://dev.azure.com/contoso/Web/_git/big", dir)
			data := make([]byte, tc.size)
			seedRand(data)
			if err := os.WriteFile(filepath.Join(dir, "big.bin"), data, 0o644); err != nil {
				t.Fatal(err)
			}
			f.git.Run(t, "-C", dir, "add", "big.bin")
			f.git.Run(t, "-C", dir, "commit", "--quiet", "-m", "Add big.bin")
			f.emu.ResetRequests()
			start := time.Now()
			f.git.Run(t, "-C", dir, "-c", "http.version="+tc.version, "push", "--quiet", "origin", "main")
			elapsed := time.Since(start)
			want := f.git.Run(t, "-C", dir, "rev-parse", "HEAD")
			if got := f.git.Run(t, "--git-dir", seed.Dir, "rev-parse", "main"); got != want {
				t.Fatalf("emulator main = %s; want %s", got, want)
			}
			var big azdoemu.Request
			for _, r := range f.emu.Requests() {
				if strings.HasSuffix(r.Path, "git-receive-pack") && r.Method == "POST" && r.BodyBytes > big.BodyBytes {
					big = r
				}
			}
			if big.BodyBytes < int64(tc.size) || !strings.HasPrefix(big.Proto, tc.version[:6]) || big.Status != http.StatusOK {
				t.Errorf("largest receive-pack POST = %d bytes over %s, status %d; want ≥ %d bytes over %s, 200",
					big.BodyBytes, big.Proto, big.Status, tc.size, tc.version)
			}
			if tc.version == "HTTP/1.1" && big.Header.Get("Content-Length") != "" {
				t.Errorf("the big POST had Content-Length %s; want a chunked body", big.Header.Get("Content-Length"))
			}
			t.Logf("pushed %d bytes over %s in %v", big.BodyBytes, big.Proto, elapsed)
		})
	}
}

// seedRand fills b with incompressible bytes quickly.
func seedRand(b []byte) {
	x := uint64(0x9E3779B97F4A7C15)
	for i := range b {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		b[i] = byte(x >> 32)
	}
}

func TestPullRequestMergeRef(t *testing.T) {
	f := newFixture(t, azdoemu.Config{})
	main := testenv.Seed(t, f.emu, "contoso", "Web", "site", testenv.SeedOptions{Seed: 1})
	feature := testenv.Seed(t, f.emu, "contoso", "Web", "site", testenv.SeedOptions{Seed: 2, Branch: "feature"})
	if err := f.emu.CreatePullRequest("contoso", "Web", "site", 7, "feature", "main"); err != nil {
		t.Fatal(err)
	}
	if err := f.emu.CreatePullRequest("contoso", "Web", "missing", 8, "feature", "main"); err == nil {
		t.Errorf("CreatePullRequest on a missing repository = nil; want an error")
	}
	url := "https://dev.azure.com/contoso/Web/_git/site"
	refs := f.git.Run(t, "ls-remote", url)
	if !strings.Contains(refs, "refs/pull/7/merge") || strings.Contains(refs, "refs/pull/7/head") {
		t.Fatalf("ls-remote = %q; want refs/pull/7/merge and no refs/pull/7/head", refs)
	}
	dir := filepath.Join(f.git.Home, "site")
	f.git.Run(t, "init", "--quiet", dir)
	f.git.Run(t, "-C", dir, "fetch", "--quiet", url, "refs/pull/7/merge")
	parents := f.git.Run(t, "-C", dir, "rev-list", "--parents", "-n", "1", "FETCH_HEAD")
	if want := main.Head + " " + feature.Head; !strings.HasSuffix(parents, want) {
		t.Errorf("merge commit parents = %q; want … %s", parents, want)
	}
}

func TestFaults(t *testing.T) {
	f := newFixture(t, azdoemu.Config{})
	url := "https://dev.azure.com/contoso/_apis/connectionData"
	hdr := map[string]string{"Authorization": basic("u", f.pat)}

	f.emu.InjectFault(azdoemu.Fault{Kind: azdoemu.FaultStatus, Count: 2, Status: 500})
	for i, want := range []int{500, 500, 200} {
		if resp, _ := f.do(t, "GET", url, nil, hdr); resp.StatusCode != want {
			t.Errorf("request %d after a 500×2 fault = %d; want %d", i, resp.StatusCode, want)
		}
	}

	f.emu.InjectFault(azdoemu.Fault{Kind: azdoemu.FaultDelay, Delay: 300 * time.Millisecond})
	start := time.Now()
	if resp, _ := f.do(t, "GET", url, nil, hdr); resp.StatusCode != 200 || time.Since(start) < 300*time.Millisecond {
		t.Errorf("delayed request = %d after %v; want 200 after ≥ 300ms", resp.StatusCode, time.Since(start))
	}

	f.emu.InjectFault(azdoemu.Fault{Kind: azdoemu.FaultReset, PathContains: "/_apis/"})
	req, _ := http.NewRequest("GET", url, nil)
	req.SetBasicAuth("u", f.pat.Reveal())
	if resp, err := f.emu.Client().Do(req); err == nil {
		resp.Body.Close()
		t.Errorf("request during a reset fault = %d; want a connection error", resp.StatusCode)
	}
	if resp, _ := f.do(t, "GET", url, nil, hdr); resp.StatusCode != 200 {
		t.Errorf("request after the reset = %d; want 200", resp.StatusCode)
	}
}

// TestConnectionDataNamesThePATsUser: like Azure DevOps, connectionData
// answers who the credential belongs to — the PAT's user as
// authenticatedUser.properties.Account.$value, with an ID of its own —
// which is how the vault tells whose PAT was pasted.
func TestConnectionDataNamesThePATsUser(t *testing.T) {
	f := newFixture(t, azdoemu.Config{})
	alice, bob := azdoemu.NewPAT(), azdoemu.NewPAT()
	for tok, user := range map[secret.String]string{alice: "alice@contoso.example", bob: "bob@contoso.example"} {
		if err := f.emu.AddPAT(azdoemu.PAT{Token: tok, User: user}); err != nil {
			t.Fatal(err)
		}
	}
	who := func(tok secret.String) (id, account string) {
		t.Helper()
		resp, body := f.do(t, "GET", "https://dev.azure.com/contoso/_apis/connectionData", nil,
			map[string]string{"Authorization": basic("u", tok), "X-TFS-FedAuthRedirect": "Suppress"})
		if resp.StatusCode != 200 {
			t.Fatalf("connectionData = %d", resp.StatusCode)
		}
		var cd struct {
			AuthenticatedUser struct {
				ID         string `json:"id"`
				Properties struct {
					Account struct {
						Value string `json:"$value"`
					} `json:"Account"`
				} `json:"properties"`
			} `json:"authenticatedUser"`
		}
		if err := json.Unmarshal([]byte(body), &cd); err != nil {
			t.Fatal(err)
		}
		return cd.AuthenticatedUser.ID, cd.AuthenticatedUser.Properties.Account.Value
	}
	aID, aAcc := who(alice)
	bID, bAcc := who(bob)
	if aAcc != "alice@contoso.example" || bAcc != "bob@contoso.example" {
		t.Errorf("accounts = %q, %q; want each PAT's user", aAcc, bAcc)
	}
	if aID == "" || aID == bID {
		t.Errorf("ids = %q, %q; want one per user", aID, bID)
	}
	if again, _ := who(alice); again != aID {
		t.Errorf("alice's id changed: %q then %q; want it stable", aID, again)
	}
}
