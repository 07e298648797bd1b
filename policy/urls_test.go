package policy

import (
	"net/url"
	"testing"

	"github.com/azdo-sidecar/azdo-sidecar/azdo"
)

// TestMapVirtualDirTeam: git and REST requests on a server configured with
// a two-segment virtual directory, through a team-segment URL, map to the
// same {vdir, collection, project, repo} as the URL model parses; without
// the virtual directory, the ambiguous paths are not mapped.
func TestMapVirtualDirTeam(t *testing.T) {
	hosts, err := azdo.NewHosts([]string{"ado.example.com/virtual/dir", "amb.example.com"})
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse("/virtual/dir/Coll/Web/Team/_git/site/git-receive-pack")
	got := Map("ado.example.com", "POST", u, hosts)
	want := RepoName{Host: "ado.example.com", VirtualDir: "virtual/dir", Org: "Coll", Project: "Web", Name: "site"}
	if got.Kind != ReceivePack || got.Repo != want {
		t.Errorf("Map(git push) = %+v; want %+v", got, want)
	}
	u, _ = url.Parse("/virtual/dir/Coll/Web/_apis/git/repositories/site/pushes")
	got = Map("ado.example.com", "POST", u, hosts)
	if got.Kind != RESTRepo || got.Repo.VirtualDir != "virtual/dir" || got.Repo.Org != "coll" || !got.Write {
		t.Errorf("Map(REST push) = %+v; want virtual/dir, coll, write", got)
	}
	for _, p := range []string{"/a/b/Coll/Web/_git/site/info/refs?service=git-upload-pack", "/a/b/Coll/_apis/git/repositories"} {
		u, _ := url.Parse(p)
		if got := Map("amb.example.com", "GET", u, hosts); got.Kind == RESTRepo || got.Kind == RESTList || got.Kind == InfoRefs {
			t.Errorf("Map(amb.example.com %s) = %+v; want unmapped (ambiguous collection)", p, got)
		}
	}
}
