package policy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"testing"

	"github.com/azdo-sidecar/azdo-sidecar/azdo"
	"github.com/azdo-sidecar/azdo-sidecar/vaultapi"
)

func mustCompile(t testing.TB, vp vaultapi.Policy) *Policy {
	t.Helper()
	p, err := Compile(vp)
	if err != nil {
		t.Fatalf("Compile(%+v): %v", vp, err)
	}
	return p
}

func TestAllowsRepo(t *testing.T) {
	p := mustCompile(t, vaultapi.Policy{AllowRepos: []string{
		"dev.azure.com/contoso/Fabrikam/web",
		"dev.azure.com/contoso/Shared/*",
		"tfs.example.com:8443/tfs/Coll/Proj/*",
		"tfs2.example.com/Coll/*/api",
		"legacy.visualstudio.com/legacy/P/r",
	}})
	for _, tc := range []struct {
		name string
		repo RepoName
		ok   bool
	}{
		{"exact", RepoName{Host: "dev.azure.com", Org: "contoso", Project: "Fabrikam", Name: "web"}, true},
		{"case-insensitive", RepoName{Host: "DEV.azure.com", Org: "CONTOSO", Project: "fabrikam", Name: "WEB"}, true},
		{"other repo same project", RepoName{Host: "dev.azure.com", Org: "contoso", Project: "Fabrikam", Name: "api"}, false},
		{"other org", RepoName{Host: "dev.azure.com", Org: "evil", Project: "Fabrikam", Name: "web"}, false},
		{"wildcard repo", RepoName{Host: "dev.azure.com", Org: "contoso", Project: "Shared", Name: "anything"}, true},
		{"project-less is the repo's project", RepoName{Host: "dev.azure.com", Org: "contoso", Name: "Shared"}, true},
		{"project-less other", RepoName{Host: "dev.azure.com", Org: "contoso", Name: "web"}, false},
		{"legacy host is dev.azure.com/org", RepoName{Host: "contoso.visualstudio.com", Org: "contoso", Project: "Fabrikam", Name: "web"}, true},
		{"legacy host other org", RepoName{Host: "evil.visualstudio.com", Org: "evil", Project: "Fabrikam", Name: "web"}, false},
		{"legacy pattern via dev.azure.com", RepoName{Host: "dev.azure.com", Org: "legacy", Project: "P", Name: "r"}, true},
		{"self-hosted vdir", RepoName{Host: "tfs.example.com:8443", VirtualDir: "tfs", Org: "coll", Project: "proj", Name: "x"}, true},
		{"self-hosted wrong vdir", RepoName{Host: "tfs.example.com:8443", VirtualDir: "other", Org: "coll", Project: "proj", Name: "x"}, false},
		{"self-hosted wrong port", RepoName{Host: "tfs.example.com", VirtualDir: "tfs", Org: "coll", Project: "proj", Name: "x"}, false},
		{"self-hosted any vdir", RepoName{Host: "tfs2.example.com", VirtualDir: "tfs", Org: "coll", Project: "p", Name: "api"}, true},
		{"self-hosted wildcard project", RepoName{Host: "tfs2.example.com", Org: "coll", Project: "q", Name: "api"}, true},
		{"empty name never matches *", RepoName{Host: "dev.azure.com", Org: "contoso", Project: "Shared", Name: ""}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := p.AllowsRepo(tc.repo)
			if (got == nil) != tc.ok {
				t.Fatalf("AllowsRepo(%+v) = %v; want ok=%v", tc.repo, got, tc.ok)
			}
			if got != nil && (got.Reason != ReasonRepoNotAllowed || !errors.Is(got, ErrRefused)) {
				t.Fatalf("refusal = %+v", got)
			}
		})
	}
}

// TestReadOnlyRepoIsAllowed: the example allows Fabrikam and makes
// Shared read-only; Shared's repositories may be fetched, never pushed.
func TestReadOnlyRepoIsAllowed(t *testing.T) {
	p := mustCompile(t, vaultapi.Policy{
		AllowRepos:    []string{"dev.azure.com/contoso/Fabrikam/*"},
		ReadOnlyRepos: []string{"dev.azure.com/contoso/Shared/*"},
	})
	shared := RepoName{Host: "dev.azure.com", Org: "contoso", Project: "Shared", Name: "lib"}
	if r := p.AllowsRepo(shared); r != nil {
		t.Errorf("AllowsRepo(read-only) = %v; want allowed", r)
	}
	if r := p.AllowsPush(shared); r == nil || r.Reason != ReasonReadOnly {
		t.Errorf("AllowsPush(read-only) = %v; want read_only", r)
	}
	other := RepoName{Host: "dev.azure.com", Org: "contoso", Project: "Other", Name: "x"}
	if r := p.AllowsRepo(other); r == nil || !strings.Contains(r.Message, "read-only: dev.azure.com/contoso/Shared/*") {
		t.Errorf("AllowsRepo(other) = %v; want refused, naming both lists", r)
	}
	// Read-only patterns alone do not limit the repositories.
	ro := mustCompile(t, vaultapi.Policy{ReadOnlyRepos: []string{"dev.azure.com/contoso/Shared/*"}})
	if ro.AllowsRepo(other) != nil || ro.AllowsPush(shared) == nil {
		t.Error("a read-only-only policy limits other repositories or lets a push to a read-only one through")
	}
}

func TestNilAndEmptyPolicyAllowAll(t *testing.T) {
	var nilP *Policy
	repo := RepoName{Host: "dev.azure.com", Org: "o", Project: "p", Name: "r"}
	for _, p := range []*Policy{nilP, mustCompile(t, vaultapi.Policy{Version: 3})} {
		if p.AllowsRepo(repo) != nil || p.AllowsPush(repo) != nil || p.AllowsRef("refs/heads/main") != nil || p.Restricts() {
			t.Fatalf("policy %+v refuses; want all allowed", p)
		}
	}
	p, err := Parse(nil)
	if p != nil || err != nil {
		t.Fatalf("Parse(nil) = %v, %v; want nil, nil", p, err)
	}
	if p, err = Parse([]byte("null")); p != nil || err != nil {
		t.Fatalf("Parse(null) = %v, %v; want nil, nil", p, err)
	}
	if _, err = Parse([]byte(`{"allow_repos":"x"}`)); err == nil {
		t.Fatal("Parse of a bad policy succeeded")
	}
}

func TestReadOnlyAndRefs(t *testing.T) {
	p := mustCompile(t, vaultapi.Policy{
		AllowRepos:    []string{"dev.azure.com/contoso/*/*"},
		ReadOnlyRepos: []string{"dev.azure.com/contoso/Shared/*"},
		PushRefs:      []string{"refs/heads/agent/*", "refs/tags/v*-agent"},
	})
	ro := RepoName{Host: "dev.azure.com", Org: "contoso", Project: "shared", Name: "lib"}
	if p.AllowsRepo(ro) != nil {
		t.Fatal("read-only repo not allowed for fetch")
	}
	if r := p.AllowsPush(ro); r == nil || r.Reason != ReasonReadOnly {
		t.Fatalf("AllowsPush(read-only) = %v; want read_only", r)
	}
	if r := p.AllowsPush(RepoName{Host: "dev.azure.com", Org: "contoso", Project: "x", Name: "y"}); r != nil {
		t.Fatalf("AllowsPush(rw) = %v", r)
	}
	for ref, ok := range map[string]bool{
		"refs/heads/agent/x":      true,
		"refs/heads/agent/a/b":    true,
		"refs/heads/agent/":       true,
		"refs/heads/agent":        false,
		"refs/heads/main":         false,
		"refs/heads/agentx":       false,
		"refs/tags/v1.0-agent":    true,
		"refs/tags/v1.0-agent-no": false,
	} {
		if got := p.AllowsRef(ref); (got == nil) != ok {
			t.Errorf("AllowsRef(%q) = %v; want ok=%v", ref, got, ok)
		}
	}
	refused, first := p.CheckCommands([]Command{{Ref: "refs/heads/agent/x"}, {Ref: "refs/heads/main"}})
	if first == nil || len(refused) != 1 || refused["refs/heads/main"] == "" {
		t.Fatalf("CheckCommands = %v, %v", refused, first)
	}
	want := "this environment may push only to refs/heads/agent/*, refs/tags/v*-agent; refs/heads/main refused"
	if first.Message != want {
		t.Fatalf("message = %q; want %q", first.Message, want)
	}
}

func TestCompileRejects(t *testing.T) {
	for _, vp := range []vaultapi.Policy{
		{AllowRepos: []string{"dev.azure.com/contoso/web"}},
		{AllowRepos: []string{"dev.azure.com/contoso/p/we*"}},
		{AllowRepos: []string{"*/contoso/p/web"}},
		{AllowRepos: []string{"dev.azure.com/x/contoso/p/web"}},
		{AllowRepos: []string{"dev.azure.com/contoso/../web"}},
		{AllowRepos: []string{"a.visualstudio.com/b/p/r"}},
		{ReadOnlyRepos: []string{"dev.azure.com//p/r"}},
		{PushRefs: []string{"heads/main"}},
		{PushRefs: []string{"refs/heads/[ab]"}},
		{PushRefs: []string{"refs/heads/../x"}},
	} {
		if _, err := Compile(vp); err == nil {
			t.Errorf("Compile(%+v) succeeded; want an error", vp)
		}
	}
}

func testHosts(t testing.TB) *azdo.Hosts {
	h, err := azdo.NewHosts([]string{"tfs.example.com", "127.0.0.1:8443"})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestMapGit(t *testing.T) {
	hosts := testHosts(t)
	web := RepoName{Host: "dev.azure.com", Org: "contoso", Project: "Fabrikam", Name: "web"}
	for _, tc := range []struct {
		name, host, method, url string
		kind                    Kind
		op                      Operation
		repo                    RepoName
	}{
		{"info/refs upload", "dev.azure.com", "GET", "/contoso/Fabrikam/_git/web/info/refs?service=git-upload-pack", InfoRefs, OpLsRemote, web},
		{"info/refs receive", "dev.azure.com", "GET", "/contoso/Fabrikam/_git/web/info/refs?service=git-receive-pack", InfoRefs, OpPush, web},
		{"upload-pack", "dev.azure.com", "POST", "/contoso/Fabrikam/_git/web/git-upload-pack", UploadPack, OpFetch, web},
		{"receive-pack", "dev.azure.com", "POST", "/contoso/Fabrikam/_git/web/git-receive-pack", ReceivePack, OpPush, web},
		{"optimized", "dev.azure.com", "POST", "/contoso/Fabrikam/_git/_optimized/web/git-upload-pack", UploadPack, OpFetch, web},
		{"full", "dev.azure.com", "POST", "/contoso/Fabrikam/_git/_full/web/git-upload-pack", UploadPack, OpFetch, web},
		{"space", "dev.azure.com", "POST", "/contoso/My%20Project/_git/web/git-upload-pack", UploadPack, OpFetch,
			RepoName{Host: "dev.azure.com", Org: "contoso", Project: "My Project", Name: "web"}},
		{"project-less", "dev.azure.com", "POST", "/contoso/_git/web/git-upload-pack", UploadPack, OpFetch,
			RepoName{Host: "dev.azure.com", Org: "contoso", Name: "web"}},
		{"legacy", "contoso.visualstudio.com", "POST", "/DefaultCollection/Fabrikam/_git/web/git-upload-pack", UploadPack, OpFetch,
			RepoName{Host: "contoso.visualstudio.com", Org: "contoso", Project: "Fabrikam", Name: "web"}},
		{"self-hosted", "tfs.example.com", "POST", "/tfs/Coll/P/_git/r/git-receive-pack", ReceivePack, OpPush,
			RepoName{Host: "tfs.example.com", VirtualDir: "tfs", Org: "Coll", Project: "P", Name: "r"}},
		{"self-hosted port", "127.0.0.1:8443", "GET", "/Coll/P/_git/r/info/refs?service=git-upload-pack", InfoRefs, OpLsRemote,
			RepoName{Host: "127.0.0.1:8443", Org: "Coll", Project: "P", Name: "r"}},
		{"dot git", "dev.azure.com", "POST", "/contoso/Fabrikam/_git/web.git/git-upload-pack", UploadPack, OpFetch,
			RepoName{Host: "dev.azure.com", Org: "contoso", Project: "Fabrikam", Name: "web.git"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, err := url.Parse(tc.url)
			if err != nil {
				t.Fatal(err)
			}
			got := Map(tc.host, tc.method, u, hosts)
			if got.Kind != tc.kind || got.Op != tc.op || got.Repo != tc.repo {
				t.Fatalf("Map(%s %s) = %+v; want kind %v op %v repo %+v", tc.method, tc.url, got, tc.kind, tc.op, tc.repo)
			}
			if got.Write != (tc.op == OpPush) {
				t.Fatalf("Write = %v for %v", got.Write, tc.op)
			}
		})
	}
}

func TestMapREST(t *testing.T) {
	hosts := testHosts(t)
	for _, tc := range []struct {
		name, host, method, url string
		kind                    Kind
		ref, org, vdir          string
		write                   bool
	}{
		{"by name", "dev.azure.com", "GET", "/contoso/Fabrikam/_apis/git/repositories/web/items?path=/", RESTRepo, "web", "contoso", "", false},
		{"by id", "dev.azure.com", "GET", "/contoso/_apis/git/repositories/5febef5a-833d-4e14-b9c0-14cb638f91e6", RESTRepo, "5febef5a-833d-4e14-b9c0-14cb638f91e6", "contoso", "", false},
		{"push", "dev.azure.com", "POST", "/contoso/Fabrikam/_apis/git/repositories/web/pushes", RESTRepo, "web", "contoso", "", true},
		{"list", "dev.azure.com", "GET", "/contoso/_apis/git/repositories", RESTList, "", "contoso", "", false},
		{"list trailing slash", "dev.azure.com", "GET", "/contoso/Fabrikam/_apis/git/repositories/", RESTList, "", "contoso", "", false},
		{"legacy", "contoso.visualstudio.com", "GET", "/Fabrikam/_apis/git/repositories/web", RESTRepo, "web", "contoso", "", false},
		{"self-hosted", "tfs.example.com", "GET", "/tfs/Coll/P/_apis/git/repositories/r/refs", RESTRepo, "r", "coll", "tfs", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, _ := url.Parse(tc.url)
			got := Map(tc.host, tc.method, u, hosts)
			if got.Kind != tc.kind || got.RESTRef != tc.ref || got.Repo.Org != tc.org || got.Repo.VirtualDir != tc.vdir || got.Write != tc.write || got.Op != OpREST {
				t.Fatalf("Map(%s %s) = %+v", tc.method, tc.url, got)
			}
			if got.Resolve() != (tc.kind == RESTRepo) {
				t.Fatalf("Resolve() = %v", got.Resolve())
			}
		})
	}
}

func TestMapUnmapped(t *testing.T) {
	hosts := testHosts(t)
	for _, tc := range []struct{ host, method, url string }{
		{"dev.azure.com", "GET", "/contoso/Fabrikam/_git/web"},
		{"dev.azure.com", "GET", "/contoso/Fabrikam/_git/web/info/refs"},
		{"dev.azure.com", "GET", "/contoso/Fabrikam/_git/web/info/refs?service=git-upload-pack&service=git-receive-pack"},
		{"dev.azure.com", "GET", "/contoso/Fabrikam/_git/web/info/refs?service=git-upload-archive"},
		{"dev.azure.com", "GET", "/contoso/Fabrikam/_git/web/git-upload-pack"},
		{"dev.azure.com", "PUT", "/contoso/Fabrikam/_git/web/git-receive-pack"},
		{"dev.azure.com", "POST", "/contoso/Fabrikam/_git/web/branches/git-receive-pack"},
		{"dev.azure.com", "POST", "/contoso/Fabrikam/_git/allowed/../other/git-receive-pack"},
		{"dev.azure.com", "POST", "/contoso/Fabrikam/_git/allowed/%2e%2e/other/git-receive-pack"},
		{"dev.azure.com", "POST", "/contoso/Fabrikam/_git/allowed%2f..%2fother/git-receive-pack"},
		{"dev.azure.com", "POST", "/contoso/Fabrikam/_git/a%5c..%5cb/git-receive-pack"},
		{"dev.azure.com", "POST", "/contoso/Fabrikam/_git/a%252e/git-receive-pack"},
		{"dev.azure.com", "POST", "/contoso//Fabrikam/_git/web/git-receive-pack"},
		{"dev.azure.com", "POST", "/contoso/Fabrikam/_git/web;x/git-receive-pack"},
		{"dev.azure.com", "GET", "/contoso/_apis/projects"},
		{"dev.azure.com", "GET", "/contoso/_apis/git/pullrequests"},
		{"dev.azure.com", "GET", "/_apis/git/repositories/web"},
		{"dev.azure.com", "GET", "/"},
		{"evil.example", "POST", "/contoso/Fabrikam/_git/web/git-receive-pack"},
		{"dev.azure.com", "POST", "/a/b/c/_git/web/git-receive-pack"},
	} {
		u, err := url.Parse(tc.url)
		if err != nil {
			t.Fatal(err)
		}
		if got := Map(tc.host, tc.method, u, hosts); got.Kind != Unmapped || got.Why == "" {
			t.Errorf("Map(%s %s %s) = %+v; want Unmapped with a reason", tc.host, tc.method, tc.url, got)
		}
	}
}

const (
	zero = "0000000000000000000000000000000000000000"
	oidA = "1111111111111111111111111111111111111111"
	oidB = "2222222222222222222222222222222222222222"
)

func pkt(s string) string { return fmt.Sprintf("%04x", len(s)+4) + s }

func TestReadCommands(t *testing.T) {
	pack := "PACK\x00\x00\x00\x02rest-of-pack"
	for _, tc := range []struct {
		name  string
		body  string
		cmds  []Command
		caps  []string
		isErr bool
	}{
		{"empty", "", nil, nil, false},
		{"probe", "0000", nil, nil, false},
		{"one", pkt(zero+" "+oidA+" refs/heads/agent/x\x00report-status side-band-64k agent=git/2.39\n") + "0000" + pack,
			[]Command{{zero, oidA, "refs/heads/agent/x"}}, []string{"report-status", "side-band-64k", "agent=git/2.39"}, false},
		{"two and delete", pkt(oidA+" "+oidB+" refs/heads/main\x00report-status") + pkt(oidB+" "+zero+" refs/tags/t\n") + "0000" + pack,
			[]Command{{oidA, oidB, "refs/heads/main"}, {oidB, zero, "refs/tags/t"}}, []string{"report-status"}, false},
		{"sha256", pkt(strings.Repeat("a", 64)+" "+strings.Repeat("b", 64)+" refs/heads/x\x00") + "0000",
			[]Command{{strings.Repeat("a", 64), strings.Repeat("b", 64), "refs/heads/x"}}, nil, false},
		{"truncated header", "00", nil, nil, true},
		{"truncated line", "0040" + zero, nil, nil, true},
		{"no flush", pkt(zero + " " + oidA + " refs/heads/x\x00"), nil, nil, true},
		{"bad length", "zzzz", nil, nil, true},
		{"delim", "0001", nil, nil, true},
		{"short oid", pkt("00 11 refs/heads/x") + "0000", nil, nil, true},
		{"mixed oid length", pkt(zero+" "+strings.Repeat("b", 64)+" refs/heads/x") + "0000", nil, nil, true},
		{"upper hex", pkt(strings.ToUpper("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")+" "+oidA+" refs/heads/x") + "0000", nil, nil, true},
		{"push cert", pkt("push-cert\x00report-status") + "0000", nil, nil, true},
		{"bad ref", pkt(zero+" "+oidA+" main") + "0000", nil, nil, true},
		{"space in ref", pkt(zero+" "+oidA+" refs/heads/a b") + "0000", nil, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := strings.NewReader(tc.body)
			p, err := ReadCommands(r)
			if tc.isErr {
				if err == nil || !errors.Is(err, ErrBadCommands) {
					t.Fatalf("ReadCommands = %+v, %v; want ErrBadCommands", p, err)
				}
				// Even on error, nothing read is lost.
				rest, _ := io.ReadAll(r)
				if got := string(p.Raw) + string(rest); got != tc.body {
					t.Fatalf("Raw+rest = %q; want %q", got, tc.body)
				}
				return
			}
			if err != nil {
				t.Fatalf("ReadCommands: %v", err)
			}
			if len(p.Commands) != len(tc.cmds) {
				t.Fatalf("commands = %+v; want %+v", p.Commands, tc.cmds)
			}
			for i := range tc.cmds {
				if p.Commands[i] != tc.cmds[i] {
					t.Fatalf("command %d = %+v; want %+v", i, p.Commands[i], tc.cmds[i])
				}
			}
			if strings.Join(p.Caps, " ") != strings.Join(tc.caps, " ") {
				t.Fatalf("caps = %q; want %q", p.Caps, tc.caps)
			}
			// What was read plus what is left is the body, unchanged:
			// the pack was not consumed.
			rest, _ := io.ReadAll(r)
			if got := string(p.Raw) + string(rest); got != tc.body {
				t.Fatalf("Raw+rest = %q; want %q", got, tc.body)
			}
			if len(tc.body) > len(pack) && strings.HasSuffix(tc.body, pack) && string(rest) != pack {
				t.Fatalf("left in the body = %q; want the pack %q", rest, pack)
			}
		})
	}
}

// TestReadCommandsDoesNotReadThePack: the parser must stop at the flush
// even when the reader would block forever after it.
func TestReadCommandsDoesNotReadThePack(t *testing.T) {
	pr, pw := io.Pipe()
	go func() {
		_, _ = pw.Write([]byte(pkt(zero+" "+oidA+" refs/heads/x\x00report-status") + "0000"))
		// The pack never comes until the reader is done.
	}()
	p, err := ReadCommands(pr)
	if err != nil || len(p.Commands) != 1 {
		t.Fatalf("ReadCommands = %+v, %v", p, err)
	}
	_ = pw.Close()
}

func TestReport(t *testing.T) {
	body := pkt(zero+" "+oidA+" refs/heads/main\x00report-status") + pkt(zero+" "+oidA+" refs/heads/agent/x") + "0000"
	p, err := ReadCommands(strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	got, ok := Report(p, map[string]string{"refs/heads/main": "may push only to refs/heads/agent/*"}, []string{"x"})
	if !ok {
		t.Fatal("Report: not ok with report-status")
	}
	want := pkt("unpack ok\n") + pkt("ng refs/heads/main may push only to refs/heads/agent/*\n") +
		pkt("ng refs/heads/agent/x not pushed: another ref of this push was refused\n") + "0000"
	if string(got) != want {
		t.Fatalf("Report = %q; want %q", got, want)
	}

	p.Caps = append(p.Caps, "side-band-64k")
	got, _ = Report(p, map[string]string{"refs/heads/main": "no\nnewline"}, []string{"azdo-sidecar: refused"})
	if !bytes.HasPrefix(got, []byte(pkt("\x02azdo-sidecar: refused\n"))) || !bytes.HasSuffix(got, []byte("0000")) ||
		!bytes.Contains(got, []byte("\x01"+pkt("unpack ok\n"))) || !bytes.Contains(got, []byte("ng refs/heads/main no newline\n")) {
		t.Fatalf("side-band Report = %q", got)
	}

	p.Caps = nil
	if _, ok := Report(p, nil, nil); ok {
		t.Fatal("Report ok without report-status")
	}
}

// BenchmarkMapAndCheck is the policy hook's work for one git request: map
// it, check the repository. A clone is two or three such requests.
func BenchmarkMapAndCheck(b *testing.B) {
	hosts := testHosts(b)
	p := mustCompile(b, vaultapi.Policy{AllowRepos: []string{"dev.azure.com/contoso/Fabrikam/*"}, PushRefs: []string{"refs/heads/agent/*"}})
	u, _ := url.Parse("/contoso/Fabrikam/_git/web/git-upload-pack")
	for b.Loop() {
		m := Map("dev.azure.com", "POST", u, hosts)
		if p.AllowsRepo(m.Repo) != nil {
			b.Fatal("refused")
		}
	}
}

// TestMapRESTRefusesOtherRepositoryQuery: a REST route on an allowed
// repository whose query names another repository or collection
// (otherRepositoryId, otherCollectionId, any other…Id) is Unmapped, so
// a policy refuses it; the same route without it maps.
func TestMapRESTRefusesOtherRepositoryQuery(t *testing.T) {
	hosts := testHosts(t)
	const base = "/contoso/Fabrikam/_apis/git/repositories/web/commits/" + oidA + "/mergebases"
	for _, q := range []string{
		"?otherCommitId=" + oidB + "&otherRepositoryId=0d0f2d9e-0000-4000-8000-000000000001",
		"?otherCollectionId=0d0f2d9e-0000-4000-8000-000000000002&otherCommitId=" + oidB,
		"?OTHERREPOSITORYID=x",
		"?a=1;otherRepositoryId=x",
	} {
		u, err := url.Parse(base + q)
		if err != nil {
			t.Fatal(err)
		}
		if got := Map("dev.azure.com", "GET", u, hosts); got.Kind != Unmapped || got.Why == "" {
			t.Errorf("Map(GET %s) = %+v; want Unmapped with a reason", q, got)
		}
	}
	u, _ := url.Parse(base + "?api-version=7.1&otherCommitId=" + oidB)
	if got := Map("dev.azure.com", "GET", u, hosts); got.Kind != RESTRepo || got.RESTRef != "web" {
		t.Errorf("Map(GET mergebases without another repository) = %+v; want RESTRepo web", got)
	}
}
