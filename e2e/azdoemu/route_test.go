package azdoemu

import "testing"

func TestParseRoute(t *testing.T) {
	s := &Server{cfg: Config{VirtualDir: "tfs"}, selfHosted: map[string]bool{"tfs.contoso.test": true}}
	tests := []struct {
		name, host, path string
		want             route
	}{
		{"dev.azure.com", "dev.azure.com", "/contoso/Web/_git/site/info/refs",
			route{kind: routeGit, org: "contoso", project: "Web", repo: "site", rest: "info/refs"}},
		{"explicit port and upper case host", "DEV.AZURE.COM:443", "/contoso/Web/_git/site",
			route{kind: routeGit, org: "contoso", project: "Web", repo: "site"}},
		{"project-less", "dev.azure.com", "/contoso/_git/site/git-upload-pack",
			route{kind: routeGit, org: "contoso", project: "site", repo: "site", rest: "git-upload-pack"}},
		{"_optimized", "dev.azure.com", "/contoso/Web/_git/_optimized/site/git-upload-pack",
			route{kind: routeGit, org: "contoso", project: "Web", repo: "site", rest: "git-upload-pack"}},
		{"_full", "dev.azure.com", "/contoso/Web/_git/_full/site/info/refs",
			route{kind: routeGit, org: "contoso", project: "Web", repo: "site", rest: "info/refs"}},
		{"spaces decoded once", "dev.azure.com", "/contoso/My%20Project/_git/My%20Repo",
			route{kind: routeGit, org: "contoso", project: "My Project", repo: "My Repo"}},
		{"double encoding stays encoded once", "dev.azure.com", "/contoso/Web/_git/a%2520b",
			route{kind: routeGit, org: "contoso", project: "Web", repo: "a%20b"}},
		{"plus is not a space", "dev.azure.com", "/contoso/Web/_git/a+b",
			route{kind: routeGit, org: "contoso", project: "Web", repo: "a+b"}},
		{".git suffix kept", "dev.azure.com", "/contoso/Web/_git/site.git/info/refs",
			route{kind: routeGit, org: "contoso", project: "Web", repo: "site.git", rest: "info/refs"}},
		{"visualstudio.com with DefaultCollection", "contoso.visualstudio.com", "/DefaultCollection/Web/_git/site",
			route{kind: routeGit, org: "contoso", project: "Web", repo: "site"}},
		{"visualstudio.com", "contoso.visualstudio.com", "/Web/_git/site/git-receive-pack",
			route{kind: routeGit, org: "contoso", project: "Web", repo: "site", rest: "git-receive-pack"}},
		{"visualstudio.com project-less", "contoso.visualstudio.com", "/_git/site",
			route{kind: routeGit, org: "contoso", project: "site", repo: "site"}},
		{"self-hosted with virtual dir", "tfs.contoso.test:8443", "/tfs/DefaultCollection/Web/_git/site",
			route{kind: routeGit, org: "DefaultCollection", project: "Web", repo: "site"}},
		{"loopback is self-hosted", "127.0.0.1:8443", "/tfs/Main/Web/_git/site",
			route{kind: routeGit, org: "Main", project: "Web", repo: "site"}},
		{"self-hosted team", "tfs.contoso.test", "/tfs/Coll/Web/Team%20A/_git/site/info/refs",
			route{kind: routeGit, org: "Coll", project: "Web", repo: "site", rest: "info/refs"}},
		{"visualstudio.com team", "contoso.visualstudio.com", "/DefaultCollection/Web/Team/_git/site",
			route{kind: routeGit, org: "contoso", project: "Web", repo: "site"}},
		{"connectionData", "dev.azure.com", "/contoso/_apis/connectionData",
			route{kind: routeAPI, org: "contoso", api: "connectionData"}},
		{"sign-in page", "dev.azure.com", "/contoso/_signin",
			route{kind: routeSignin}},
		// What Azure DevOps does not serve.
		{"self-hosted without virtual dir", "tfs.contoso.test", "/DefaultCollection/Web/_git/site", route{}},
		{"subdomain of dev.azure.com", "test.dev.azure.com", "/contoso/Web/_git/site", route{}},
		{"look-alike host", "dev.azure.com.evil.test", "/contoso/Web/_git/site", route{}},
		{"bare visualstudio.com", "visualstudio.com", "/Web/_git/site", route{}},
		{"two labels before visualstudio.com", "a.contoso.visualstudio.com", "/Web/_git/site", route{}},
		{"unknown host", "github.com", "/contoso/Web/_git/site", route{}},
		{"dumb protocol", "dev.azure.com", "/contoso/Web/_git/site/objects/info/packs", route{}},
		{"two segments before _git", "dev.azure.com", "/contoso/Web/extra/_git/site", route{}},
		{"three segments after the collection", "tfs.contoso.test", "/tfs/Coll/Web/a/b/_git/site", route{}},
		{"no _git", "dev.azure.com", "/contoso/Web/site", route{}},
		{"empty segment", "dev.azure.com", "/contoso//_git/site", route{}},
		{"encoded slash", "dev.azure.com", "/contoso/Web/_git/a%2Fb", route{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := s.parseRoute(tc.host, tc.path)
			got.host, got.prefix = "", ""
			if tc.want.kind == routeNotFound && got.kind == routeNotFound {
				return // partial names of a route that is not served do not matter
			}
			if got != tc.want {
				t.Errorf("parseRoute(%q, %q) = %+v; want %+v", tc.host, tc.path, got, tc.want)
			}
		})
	}
}

// TestParseRouteVirtualDirSegments: a virtual directory of two segments,
// as IIS allows, compared case-insensitively.
func TestParseRouteVirtualDirSegments(t *testing.T) {
	s := &Server{cfg: Config{VirtualDir: "virtual/dir"}, selfHosted: map[string]bool{"ado.contoso.test": true}}
	got := s.parseRoute("ado.contoso.test", "/Virtual/DIR/Coll/Web/Team/_git/site/git-upload-pack")
	want := route{kind: routeGit, host: "ado.contoso.test", org: "Coll", project: "Web", repo: "site", rest: "git-upload-pack", prefix: "/Virtual/DIR/Coll"}
	if got != want {
		t.Errorf("parseRoute = %+v; want %+v", got, want)
	}
	for _, p := range []string{"/virtual/Coll/Web/_git/site", "/Coll/Web/_git/site", "/dir/virtual/Coll/Web/_git/site"} {
		if got := s.parseRoute("ado.contoso.test", p); got.kind != routeNotFound {
			t.Errorf("parseRoute(%q) = %+v; want not found", p, got)
		}
	}
	if got := s.parseRoute("ado.contoso.test", "/virtual/dir/Coll/_apis/connectionData"); got.kind != routeAPI || got.org != "Coll" {
		t.Errorf("parseRoute(connectionData) = %+v; want the API of Coll", got)
	}
}

func FuzzParseRoute(f *testing.F) {
	s := &Server{cfg: Config{VirtualDir: "tfs"}, selfHosted: map[string]bool{"tfs.contoso.test": true}}
	f.Add("dev.azure.com", "/contoso/Web/_git/site/info/refs")
	f.Add("contoso.visualstudio.com", "/DefaultCollection/_git/site")
	f.Add("tfs.contoso.test", "/tfs/c/p/_git/r%20x/git-upload-pack")
	f.Fuzz(func(t *testing.T, host, path string) {
		r := s.parseRoute(host, path)
		if r.kind == routeGit && (r.org == "" || r.project == "" || r.repo == "") {
			t.Errorf("parseRoute(%q, %q) = %+v: git route with an empty name", host, path, r)
		}
	})
}
