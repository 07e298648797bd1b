package policy

import (
	"bytes"
	"io"
	"net/url"
	"strings"
	"testing"

	"github.com/azdo-sidecar/azdo-sidecar/vaultapi"
)

// FuzzReadCommands: a receive-pack body is untrusted input. The parser must
// never panic, never read past the flush that ends the commands (what it
// read plus what is left is the body), and return only well-formed
// commands.
func FuzzReadCommands(f *testing.F) {
	for _, s := range []string{
		"",
		"0000",
		pkt(zero+" "+oidA+" refs/heads/agent/x\x00report-status side-band-64k\n") + "0000PACK\x00\x00\x00\x02",
		pkt(oidA+" "+oidB+" refs/heads/main\x00report-status") + pkt(oidB+" "+zero+" refs/tags/t\n") + "0000",
		pkt("push-cert\x00report-status") + "0000",
		"ffff", "0004", "0001", "00",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		r := bytes.NewReader(body)
		p, err := ReadCommands(r)
		rest, _ := io.ReadAll(r)
		if !bytes.Equal(append(append([]byte(nil), p.Raw...), rest...), body) {
			t.Fatalf("Raw+rest != body for %q (err %v)", body, err)
		}
		if err != nil {
			return
		}
		for _, c := range p.Commands {
			if !isOID(c.Old) || !isOID(c.New) || !strings.HasPrefix(c.Ref, "refs/") && c.Ref != "HEAD" || strings.ContainsAny(c.Ref, " \x00\n") {
				t.Fatalf("bad command %+v from %q", c, body)
			}
		}
		if len(p.Commands) > 0 {
			if _, ok := Report(p, map[string]string{p.Commands[0].Ref: "x"}, []string{"y"}); !ok && (p.HasCap("report-status") || p.HasCap("report-status-v2")) {
				t.Fatal("Report not ok with report-status")
			}
		}
	})
}

// FuzzMap: request paths are untrusted input. Map must never panic, and a
// request it maps to a repository must name that repository in a form that
// cannot be normalized into another one: no dot segments, and a git request
// whose repository an exact --allow-repo pattern of its own name allows.
func FuzzMap(f *testing.F) {
	for _, s := range []string{
		"/contoso/Fabrikam/_git/web/info/refs?service=git-upload-pack",
		"/contoso/Fabrikam/_git/_optimized/web/git-upload-pack",
		"/contoso/_git/web/git-receive-pack",
		"/contoso/Fabrikam/_git/allowed/../other/git-receive-pack",
		"/contoso/Fabrikam/_git/a%2f..%2fb/git-receive-pack",
		"/contoso/Fabrikam/_apis/git/repositories/web/items",
		"/contoso/_apis/git/repositories",
		"/tfs/Coll/P/_git/r/git-receive-pack",
		"/contoso/My%20Project/_git/web/git-upload-pack",
	} {
		f.Add("dev.azure.com", "GET", s)
		f.Add("tfs.example.com", "POST", s)
	}
	hosts := testHosts(f)
	f.Fuzz(func(t *testing.T, host, method, raw string) {
		u, err := url.Parse(raw)
		if err != nil {
			return
		}
		r := Map(host, method, u, hosts)
		if r.Kind == Unmapped {
			if r.Why == "" {
				t.Fatalf("Map(%q) unmapped without a reason", raw)
			}
			return
		}
		if strings.Contains(u.EscapedPath(), "/../") || strings.Contains(u.EscapedPath(), "/./") {
			t.Fatalf("Map(%q) = %+v; mapped a dot segment", raw, r)
		}
		if r.Kind == InfoRefs || r.Kind == UploadPack || r.Kind == ReceivePack {
			if r.Repo.Name == "" || r.Repo.Org == "" || !hosts.Match(r.Repo.Host) {
				t.Fatalf("Map(%q) = %+v; incomplete repository", raw, r)
			}
			pat := r.Repo.String()
			p, err := Compile(vaultapi.Policy{AllowRepos: []string{pat}})
			if err != nil {
				return // names a pattern cannot spell (e.g. with "*")
			}
			if p.AllowsRepo(r.Repo) != nil {
				t.Fatalf("Map(%q) repo %+v not allowed by its own pattern %q", raw, r.Repo, pat)
			}
		}
	})
}
