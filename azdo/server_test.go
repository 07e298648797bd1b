package azdo

import (
	"errors"
	"strings"
	"testing"
)

// TestParseServerShapes covers Azure DevOps Server and the newer URL forms:
// every example of issue 14, and the shapes Microsoft's own URL parsers
// accept (dotnet/sourcelink AzureDevOpsUrlParser tests, the Azure DevOps
// IntelliJ plugin's UrlHelper tests, TfsUrlParser).
func TestParseServerShapes(t *testing.T) {
	hosts, err := NewHosts([]string{
		"tfs.contoso.com",                           // no virtual directory configured
		"root.contoso.com/",                         // configured: none
		"iis.contoso.com/virtual/iis/path",          // configured: three segments
		"localhost:8080/iispath1/iispath2/iispath3", // the IntelliJ plugin's example
		"server",                // single-label, no virtual directory configured
		"multi.contoso.com/tfs", // two virtual directories on one host
		"multi.contoso.com/other/dir",
		"ssh.contoso.com:8443/a/b",
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := func(host, vdir, coll, proj, name string) Repo {
		return Repo{Host: host, VirtualDir: vdir, Org: coll, Project: proj, Name: name}
	}
	leg := func(org, proj, name string, dc bool) Repo {
		return Repo{Host: org + ".visualstudio.com", Org: org, Project: proj, Name: name, Legacy: true, DefaultCollection: dc}
	}
	tests := []struct {
		name string
		in   string
		want Repo
		kind Kind
	}{
		// Issue 14, item 1.
		{"team segment, root configured", "https://root.contoso.com/collection/project/team/_git/repo", srv("root.contoso.com", "", "collection", "project", "repo"), Default},
		{"three-segment vdir and team", "https://iis.contoso.com/virtual/iis/path/collection/project/team/_git/repo", srv("iis.contoso.com", "virtual/iis/path", "collection", "project", "repo"), Default},
		{"iis path, collection with space, project-less", "https://localhost:8080/iispath1/iispath2/iispath3/collection%20with%20space/_git/project", srv("localhost:8080", "iispath1/iispath2/iispath3", "collection with space", "", "project"), Default},
		{"DefaultCollection after sources2010/tfs", "https://server/sources2010/tfs/DefaultCollection/_git/repo", srv("server", "sources2010/tfs", "DefaultCollection", "", "repo"), Default},
		{"iis path with query", "https://localhost:8080/iispath1/iispath2/iispath3/collection/project/_git/repo?queryParam=query", srv("localhost:8080", "iispath1/iispath2/iispath3", "collection", "project", "repo"), Default},
		{"vdir case-insensitive", "https://iis.contoso.com/VIRTUAL/Iis/path/c/p/_git/r", srv("iis.contoso.com", "VIRTUAL/Iis/path", "c", "p", "r"), Default},
		{"second vdir of a host", "https://multi.contoso.com/other/dir/c/p/_git/r", srv("multi.contoso.com", "other/dir", "c", "p", "r"), Default},
		{"first vdir of a host", "https://multi.contoso.com/tfs/c/_git/r", srv("multi.contoso.com", "tfs", "c", "", "r"), Default},
		// The rules without a configured virtual directory.
		{"rule: DefaultCollection with team", "https://tfs.contoso.com/a/b/DefaultCollection/p/team/_git/r", srv("tfs.contoso.com", "a/b", "DefaultCollection", "p", "r"), Default},
		{"rule: tfs then collection and team", "https://tfs.contoso.com/tfs/Coll/p/team/_git/r", srv("tfs.contoso.com", "tfs", "Coll", "p", "r"), Default},
		{"rule: two segments", "https://tfs.contoso.com/Coll/p/_git/r", srv("tfs.contoso.com", "", "Coll", "p", "r"), Default},
		{"rule: one segment", "https://tfs.contoso.com/Coll/_git/r", srv("tfs.contoso.com", "", "Coll", "", "r"), Default},
		{"rule: TfsUrlParser foo/foo", "https://tfs.contoso.com/foo/foo/_git/foo", srv("tfs.contoso.com", "", "foo", "foo", "foo"), Default},
		{"_optimized with team", "https://root.contoso.com/c/p/team/_git/_optimized/r", srv("root.contoso.com", "", "c", "p", "r"), Default},

		// Issue 14, item 2: Services team segment.
		{"legacy team", "https://account.visualstudio.com/project/team/_git/repo", leg("account", "project", "repo", false), Default},
		{"legacy DefaultCollection team", "https://account.visualstudio.com/DefaultCollection/project/team/_git/repo", leg("account", "project", "repo", true), Default},
		{"legacy DefaultCollection team _full", "https://account.visualstudio.com/DefaultCollection/project/team/_git/_full/repo", leg("account", "project", "repo", true), Default},
		{"legacy DefaultCollection team _optimized", "https://account.visualstudio.com/DefaultCollection/project/team/_git/_optimized/repo", leg("account", "project", "repo", true), Default},

		// Issue 14, item 3: an empty ?path names no file.
		{"empty ?path", "https://dev.azure.com/org/_git/repo?path", Repo{Host: ServicesHost, Org: "org", Name: "repo"}, Default},
		{"empty ?path= with branch", "https://dev.azure.com/org/p/_git/repo?path=&version=GBmain", Repo{Host: ServicesHost, Org: "org", Project: "p", Name: "repo"}, Branch},

		// Issue 14, item 4: SSH forms.
		{"vs-ssh _ssh", "ssh://acct@vs-ssh.visualstudio.com:22/Project/_ssh/Repo", leg("acct", "Project", "Repo", false), Default},
		{"vs-ssh _ssh DefaultCollection", "ssh://acct@vs-ssh.visualstudio.com:22/DefaultCollection/Project/_ssh/Repo", leg("acct", "Project", "Repo", true), Default},
		{"vs-ssh _ssh team", "ssh://account@vs-ssh.visualstudio.com/project/team/_ssh/repo", leg("account", "project", "repo", false), Default},
		{"vs-ssh _ssh team _full", "ssh://account@vs-ssh.visualstudio.com/DefaultCollection/project/team/_ssh/_full/repo", leg("account", "project", "repo", true), Default},
		{"vs-ssh _ssh team _optimized", "ssh://account@vs-ssh.visualstudio.com/DefaultCollection/project/team/_ssh/_optimized/repo", leg("account", "project", "repo", true), Default},
		{"vs-ssh _ssh project-less", "ssh://account@vs-ssh.visualstudio.com/_ssh/repo", leg("account", "", "repo", false), Default},
		{"vs-ssh _ssh DefaultCollection project-less", "ssh://account@vs-ssh.visualstudio.com/DefaultCollection/_ssh/repo", leg("account", "", "repo", true), Default},
		{"vs-ssh without ssh://", "acct@vs-ssh.visualstudio.com:22/DefaultCollection/Project/_ssh/Repo", leg("acct", "Project", "Repo", true), Default},
		{"v3 team", "ssh://account1@vs-ssh.visualstudio.com/v3/account2/project/team/repo", leg("account2", "project", "repo", false), Default},
		{"v3 team _full", "ssh://account1@vs-ssh.visualstudio.com/v3/account2/project/team/_full/repo", leg("account2", "project", "repo", false), Default},
		{"v3 team _optimized", "git@ssh.dev.azure.com:v3/org/project/team/_optimized/repo", Repo{Host: ServicesHost, Org: "org", Project: "project", Name: "repo"}, Default},
		{"v3 _full", "git@ssh.dev.azure.com:v3/org/project/_full/repo", Repo{Host: ServicesHost, Org: "org", Project: "project", Name: "repo"}, Default},
		{"on-prem _ssh", "ssh://tfs.contoso.com/collection/project/_ssh/repo", srv("tfs.contoso.com", "", "collection", "project", "repo"), Default},
		{"on-prem _ssh port and tfs", "ssh://tfs.contoso.com:22/tfs/DefaultCollection/project/team/_ssh/repo", srv("tfs.contoso.com", "tfs", "DefaultCollection", "project", "repo"), Default},
		{"on-prem _ssh vdir team", "ssh://user@iis.contoso.com/virtual/iis/path/collection/project/team/_ssh/repo", srv("iis.contoso.com", "virtual/iis/path", "collection", "project", "repo"), Default},
		{"on-prem _ssh _full", "ssh://root.contoso.com/c/p/_ssh/_full/r", srv("root.contoso.com", "", "c", "p", "r"), Default},
		{"on-prem _ssh keeps https port", "ssh://ssh.contoso.com:22/a/b/c/p/_ssh/r", srv("ssh.contoso.com:8443", "a/b", "c", "p", "r"), Default},
		{"on-prem ssh with _git (TfsUrlParser)", "ssh://foo:bar@tfs.contoso.com:8080/tfs/defaultcollection/myproject/_git/myrepository", srv("tfs.contoso.com", "tfs", "defaultcollection", "myproject", "myrepository"), Default},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.in, hosts)
			if err != nil {
				t.Fatalf("Parse(%q) error: %v", tt.in, err)
			}
			if got.Repo != tt.want || got.Kind != tt.kind {
				t.Errorf("Parse(%q) = %+v kind %v; want %+v kind %v", tt.in, got.Repo, got.Kind, tt.want, tt.kind)
			}
			u := got.Repo.CloneURL()
			again, err := Parse(u, hosts)
			if err != nil || again.Repo != got.Repo {
				t.Errorf("Parse(%q) (clone URL) = %+v, %v; want %+v", u, again, err, got.Repo)
			}
			path := strings.TrimPrefix(u, "https://"+got.Repo.Host)
			if o := hosts.OrgFor(got.Repo.Host, path+"/info/refs", ""); o != got.Repo.CredentialOrg() {
				t.Errorf("OrgFor(%q, %q) = %q; want %q", got.Repo.Host, path, o, got.Repo.CredentialOrg())
			}
			// A REST call on the same collection names the same one.
			rest := "/" + strings.TrimPrefix(strings.Join(append(strings.Split(got.Repo.VirtualDir, "/"), escapedPathOf([]string{got.Repo.Org})), "/"), "/") + "/_apis/connectionData"
			if got.Repo.SelfHosted() {
				if o := hosts.OrgFor(got.Repo.Host, rest, ""); o != got.Repo.CredentialOrg() {
					t.Errorf("OrgFor(%q, %q) = %q; want %q (the git path's)", got.Repo.Host, rest, o, got.Repo.CredentialOrg())
				}
			}
		})
	}
}

// TestParseServerAmbiguous: without the virtual directory, a path that the
// rules cannot read one way is refused, and the error names the flag.
func TestParseServerAmbiguous(t *testing.T) {
	hosts, err := NewHosts([]string{"tfs.contoso.com", "localhost:8080", "iis.contoso.com/virtual/iis/path"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, in, contains string
	}{
		{"team segment", "https://tfs.contoso.com/collection/project/team/_git/repo", "--host tfs.contoso.com/VDIR"},
		{"three-segment vdir", "https://tfs.contoso.com/virtual/iis/path/collection/project/team/_git/repo", "--host tfs.contoso.com/"},
		{"iis path project-less", "https://localhost:8080/iispath1/iispath2/iispath3/collection%20with%20space/_git/project", "--host localhost:8080/VDIR"},
		{"on-prem ssh", "ssh://tfs.contoso.com/a/b/c/_ssh/r", "--host tfs.contoso.com/VDIR"},
		{"not under the configured vdir", "https://iis.contoso.com/other/c/p/_git/r", "not under the virtual directory configured for iis.contoso.com (/virtual/iis/path)"},
		{"nothing after the vdir", "https://iis.contoso.com/virtual/iis/path/_git/r", "not under the virtual directory"},
		{"too deep after the vdir", "https://iis.contoso.com/virtual/iis/path/c/p/t/x/_git/r", "too many segments"},
		{"tfs without collection", "https://tfs.contoso.com/tfs/_git/r", "no collection"},
		{"too deep after DefaultCollection", "https://tfs.contoso.com/DefaultCollection/p/t/x/_git/r", "too many segments"},
		{"services team on dev.azure.com", "https://dev.azure.com/o/p/team/_git/r", "3 segments"},
		{"legacy too deep", "https://o.visualstudio.com/DefaultCollection/p/t/x/_git/r", "too many segments"},
		{"v3 too deep", "git@ssh.dev.azure.com:v3/o/p/t/x/r", "v3/{org}/{project}[/{team}]/{repo}"},
		{"vs-ssh without org", "ssh://vs-ssh.visualstudio.com/p/_ssh/r", "is not an organization"},
		{"vs-ssh Microsoft label", "ssh://code@vs-ssh.visualstudio.com/p/_ssh/r", "is not an organization"},
		{"_ssh over https", "https://dev.azure.com/o/p/_ssh/r", "no /_git/"},
		{"plain http server", "http://tfs.contoso.com:8080/tfs/DefaultCollection/p/_git/r", "HTTPS binding"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.in, hosts)
			if err == nil {
				t.Fatalf("Parse(%q) = %+v; want error", tt.in, got.Repo)
			}
			if !errors.Is(err, ErrInvalidURL) || !strings.Contains(err.Error(), tt.contains) {
				t.Errorf("Parse(%q) error = %v; want ErrInvalidURL containing %q", tt.in, err, tt.contains)
			}
		})
	}
	// OrgFor says nothing rather than guess.
	if o := hosts.OrgFor("tfs.contoso.com", "/collection/project/team/_git/repo/info/refs", ""); o != "" {
		t.Errorf("OrgFor(ambiguous) = %q; want \"\"", o)
	}
}

// TestNotOrganizations: the labels Microsoft uses for other sites are not
// organizations unless configured with --host (issue 11, item 4).
func TestNotOrganizations(t *testing.T) {
	var none *Hosts
	optIn, err := NewHosts([]string{"code.visualstudio.com"})
	if err != nil {
		t.Fatal(err)
	}
	for _, label := range []string{"code", "marketplace", "www", "app", "status", "docs", "learn", "visualstudio", "my", "developercommunity", "vs-ssh"} {
		h := label + ".visualstudio.com"
		if IsServicesHost(h) || none.Match(h) || none.Match(strings.ToUpper(h)+".:443") {
			t.Errorf("%s is an Azure DevOps host; want not", h)
		}
		if _, err := Parse("https://"+h+"/p/_git/r", nil); !errors.Is(err, ErrNotAzureDevOps) {
			t.Errorf("Parse(https://%s/p/_git/r) error = %v; want ErrNotAzureDevOps", h, err)
		}
		if o := none.OrgFor(h, "/p/_git/r", label); o != "" {
			t.Errorf("OrgFor(%q) = %q; want \"\"", h, o)
		}
		if _, err := Parse("ssh://"+label+"@vs-ssh.visualstudio.com/v3/"+label+"/p/r", nil); err == nil {
			t.Errorf("Parse(vs-ssh v3 %s) succeeded; want error", label)
		}
	}
	for _, h := range []string{"contoso.visualstudio.com", "codex.visualstudio.com", "my-org.visualstudio.com", "devdiv.visualstudio.com"} {
		if !IsServicesHost(h) || !none.Match(h) {
			t.Errorf("%s is not an Azure DevOps host; want it to be", h)
		}
	}
	// Opted in with --host code.visualstudio.com.
	if !optIn.Match("code.visualstudio.com") || optIn.Match("marketplace.visualstudio.com") {
		t.Errorf("opt-in: Match(code) = %v, Match(marketplace) = %v; want true, false", optIn.Match("code.visualstudio.com"), optIn.Match("marketplace.visualstudio.com"))
	}
	tg, err := Parse("https://code.visualstudio.com/p/_git/r", optIn)
	if err != nil || tg.Repo != (Repo{Host: "code.visualstudio.com", Org: "code", Project: "p", Name: "r", Legacy: true}) {
		t.Errorf("opt-in Parse = %+v, %v; want the code organization", tg, err)
	}
	if o := optIn.OrgFor("code.visualstudio.com", "", ""); o != "code" {
		t.Errorf("opt-in OrgFor = %q; want code", o)
	}
	if got := optIn.SelfHosted(); len(got) != 1 || got[0] != "code.visualstudio.com" {
		t.Errorf("opt-in SelfHosted() = %q; want [code.visualstudio.com]", got)
	}
}

func TestParseServer(t *testing.T) {
	tests := []struct {
		in   string
		want Server
	}{
		{"tfs.example.com", Server{Host: "tfs.example.com"}},
		{"TFS.example.com:443", Server{Host: "tfs.example.com"}},
		{"tfs.example.com/", Server{Host: "tfs.example.com", VirtualDirKnown: true}},
		{"https://tfs.example.com:8443/tfs/", Server{Host: "tfs.example.com:8443", VirtualDir: "tfs", VirtualDirKnown: true}},
		{"tfs.example.com/Virtual/Dir", Server{Host: "tfs.example.com", VirtualDir: "Virtual/Dir", VirtualDirKnown: true}},
		{"tfs.example.com/my%20dir", Server{Host: "tfs.example.com", VirtualDir: "my dir", VirtualDirKnown: true}},
	}
	for _, tt := range tests {
		got, err := ParseServer(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ParseServer(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
	}
	if _, err := ParseServer("http://tfs.example.com:8080/tfs"); !errors.Is(err, ErrPlainHTTP) || !strings.Contains(err.Error(), "HTTPS binding") {
		t.Errorf("ParseServer(http://...) error = %v; want ErrPlainHTTP with what to do", err)
	}
	for _, bad := range [][]string{
		{"tfs.example.com", "tfs.example.com/tfs"},
		{"tfs.example.com/", "tfs.example.com"},
		{"dev.azure.com/x"},
		{"contoso.visualstudio.com/"},
	} {
		if _, err := NewHosts(bad); err == nil {
			t.Errorf("NewHosts(%q) succeeded; want error", bad)
		}
	}
}

func TestRepoFor(t *testing.T) {
	hosts, err := NewHosts([]string{"iis.contoso.com/virtual/iis/path", "tfs.contoso.com"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		host, path string
		want       Repo
		rest       string
	}{
		{"dev.azure.com", "/Org/My%20Proj/_git/repo/info/refs", Repo{Host: ServicesHost, Org: "Org", Project: "My Proj", Name: "repo"}, "info/refs"},
		{"iis.contoso.com:443", "/virtual/iis/path/coll/proj/team/_git/r/git-upload-pack", Repo{Host: "iis.contoso.com", VirtualDir: "virtual/iis/path", Org: "coll", Project: "proj", Name: "r"}, "git-upload-pack"},
		{"contoso.visualstudio.com", "/DefaultCollection/p/t/_git/_optimized/r/info/refs", Repo{Host: "contoso.visualstudio.com", Org: "contoso", Project: "p", Name: "r", Legacy: true, DefaultCollection: true}, "info/refs"},
	}
	for _, tt := range tests {
		got, rest, err := hosts.RepoFor(tt.host, tt.path)
		if err != nil || got != tt.want || strings.Join(rest, "/") != tt.rest {
			t.Errorf("RepoFor(%q, %q) = %+v, %q, %v; want %+v, %q", tt.host, tt.path, got, rest, err, tt.want, tt.rest)
		}
	}
	for _, bad := range [][2]string{
		{"tfs.contoso.com", "/a/b/c/_git/r/info/refs"},
		{"github.com", "/o/r.git/info/refs"},
		{"dev.azure.com", "/o/_apis/git/repositories"},
	} {
		if got, _, err := hosts.RepoFor(bad[0], bad[1]); err == nil {
			t.Errorf("RepoFor(%q, %q) = %+v; want error", bad[0], bad[1], got)
		}
	}
}

// TestOrgPath: the path a client sends for a credential key names that
// key's collection again, whatever the server's configuration.
func TestOrgPath(t *testing.T) {
	hosts, err := NewHosts([]string{"iis.contoso.com/virtual/iis/path", "root.contoso.com/", "tfs.contoso.com", "multi.contoso.com/a", "multi.contoso.com/b/c"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ host, org, want string }{
		{"dev.azure.com", "contoso", "contoso/"},
		{"contoso.visualstudio.com", "contoso", ""},
		{"iis.contoso.com", "Coll", "virtual/iis/path/Coll/"},
		{"iis.contoso.com", "coll with space", "virtual/iis/path/coll%20with%20space/"},
		{"root.contoso.com", "coll", "coll/"},
		{"tfs.contoso.com", "coll", "coll/"},
		{"multi.contoso.com", "coll", "a/coll/"},
	}
	for _, tt := range tests {
		got := hosts.OrgPath(tt.host, tt.org)
		if got != tt.want {
			t.Errorf("OrgPath(%q, %q) = %q; want %q", tt.host, tt.org, got, tt.want)
		}
		want := strings.ToLower(tt.org)
		if tt.host == "contoso.visualstudio.com" {
			want = "contoso"
		}
		if o := hosts.OrgFor(tt.host, got, ""); o != want {
			t.Errorf("OrgFor(%q, OrgPath = %q) = %q; want %q", tt.host, got, o, want)
		}
	}
}

func TestCollection(t *testing.T) {
	hosts, err := NewHosts([]string{"iis.contoso.com/virtual/iis/path", "tfs.contoso.com"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		host, path, vdir, org string
		ok                    bool
	}{
		{"dev.azure.com", "/Contoso/Web/_apis/git/repositories", "", "Contoso", true},
		{"contoso.visualstudio.com", "/DefaultCollection/_apis/git/repositories", "", "contoso", true},
		{"iis.contoso.com", "/virtual/iis/path/Coll/Web/_apis/git/repositories/site", "virtual/iis/path", "Coll", true},
		{"iis.contoso.com", "/virtual/iis/path/Coll", "virtual/iis/path", "Coll", true},
		{"tfs.contoso.com", "/tfs/Coll/_apis/git/repositories", "tfs", "Coll", true},
		{"tfs.contoso.com", "/x/DefaultCollection/Web/_apis/git", "x", "DefaultCollection", true},
		{"tfs.contoso.com", "/a/b/c/_apis/git/repositories", "", "", false},
		{"iis.contoso.com", "/other/Coll/_apis/git/repositories", "", "", false},
		{"code.visualstudio.com", "/_apis/git/repositories", "", "", false},
		{"dev.azure.com", "/_apis/git/repositories", "", "", false},
	}
	for _, tt := range tests {
		vdir, org, ok := hosts.Collection(tt.host, tt.path)
		if vdir != tt.vdir || org != tt.org || ok != tt.ok {
			t.Errorf("Collection(%q, %q) = %q, %q, %v; want %q, %q, %v", tt.host, tt.path, vdir, org, ok, tt.vdir, tt.org, tt.ok)
		}
		if ok && hosts.OrgFor(tt.host, tt.path, "") != strings.ToLower(org) {
			t.Errorf("OrgFor(%q, %q) = %q; want %q as Collection", tt.host, tt.path, hosts.OrgFor(tt.host, tt.path, ""), org)
		}
	}
}
