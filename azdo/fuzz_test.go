package azdo

import (
	"errors"
	"path"
	"strings"
	"testing"
)

// FuzzParse checks that Parse never panics, that every error is a
// *ParseError wrapping a sentinel, and that every success names an Azure
// DevOps host and has a clean clone URL that parses back to the same
// repository.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"https://dev.azure.com/contoso/Fabrikam/_git/web",
		"https://contoso@dev.azure.com/contoso/_git/web?version=GBmain",
		"https://contoso.visualstudio.com/DefaultCollection/p/_git/_optimized/r",
		"https://tfs.example.com/tfs/DefaultCollection/P/_git/r/pullrequest/7",
		"git@ssh.dev.azure.com:v3/contoso/My%20Project/r",
		"ssh://contoso@vs-ssh.visualstudio.com/v3/contoso/p/r",
		"https://dev.azure.com/o/p/_git/r?path=/a%20b&version=GC" + sha1a,
		"https://dev.azure.com.evil.test/o/p/_git/r",
		"https://dev.azure.com/o/p/_git/r?path=/../../etc/passwd&version=GBmain",
		"https://vdir.example.com/a/b/Coll/Proj/Team/_git/r",
		"https://root.example.com/c/p/t/_git/_full/r?path",
		"https://tfs.example.com/x/tfs/DefaultCollection/p/t/_git/r",
		"ssh://acct@vs-ssh.visualstudio.com:22/DefaultCollection/P/T/_ssh/_optimized/R",
		"ssh://tfs.example.com:22/tfs/Coll/P/T/_ssh/r",
		"git@ssh.dev.azure.com:v3/o/p/team/_full/r",
		"https://code.visualstudio.com/p/_git/r",
	} {
		f.Add(s)
	}
	hosts := testHosts(f)
	f.Fuzz(func(t *testing.T, in string) {
		tg, err := Parse(in, hosts)
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) || !(errors.Is(err, ErrInvalidURL) || errors.Is(err, ErrNotAzureDevOps)) {
				t.Fatalf("Parse(%q) error = %v (%T); want *ParseError wrapping a sentinel", in, err, err)
			}
			return
		}
		if !hosts.Match(tg.Repo.Host) {
			t.Fatalf("Parse(%q).Repo.Host = %q; not an Azure DevOps host", in, tg.Repo.Host)
		}
		u := tg.Repo.CloneURL()
		if strings.Contains(strings.SplitN(strings.TrimPrefix(u, "https://"), "/", 2)[0], "@") {
			t.Fatalf("CloneURL() = %q; has user information", u)
		}
		again, err := Parse(u, hosts)
		if err != nil {
			t.Fatalf("Parse(%q) (clone URL of %q) error: %v", u, in, err)
		}
		// The clone URL names the same {host, vdir, collection, project,
		// repo}, and the credential key of a request to it is the
		// repository's collection.
		if again.Repo != tg.Repo || again.Kind != Default {
			t.Fatalf("Parse(%q) = %+v; want %+v (clone URL of %q)", u, again.Repo, tg.Repo, in)
		}
		if o := hosts.OrgFor(tg.Repo.Host, strings.TrimPrefix(u, "https://"+tg.Repo.Host)+"/info/refs", ""); o != tg.Repo.CredentialOrg() {
			t.Fatalf("OrgFor(%q, clone path of %q) = %q; want %q", tg.Repo.Host, in, o, tg.Repo.CredentialOrg())
		}
		if tg.Kind == Commit && len(tg.Commit) != 40 && len(tg.Commit) != 64 {
			t.Fatalf("Parse(%q).Commit = %q; want a full id", in, tg.Commit)
		}
		if tg.Path != "" && (!strings.HasPrefix(tg.Path, "/") || path.Clean(tg.Path) != tg.Path) {
			t.Fatalf("Parse(%q).Path = %q; want a clean absolute path, which cannot leave the clone", in, tg.Path)
		}
		if tg.Kind == PullRequest && tg.PullRequest <= 0 {
			t.Fatalf("Parse(%q).PullRequest = %d; want positive", in, tg.PullRequest)
		}
	})
}

// FuzzHostsMatch checks that Match depends only on the normalized host, that
// NormalizeHost is idempotent, that services hosts are exactly the allowed
// shapes, and that a configured host always matches itself.
func FuzzHostsMatch(f *testing.F) {
	for _, s := range []string{
		"dev.azure.com", "DEV.azure.com.:443", "contoso.visualstudio.com",
		"a.b.visualstudio.com", "dev.azure.com.evil.test", "evil-dev.azure.com",
		"tfs.example.com:8443", "[::1]:443", "127.0.0.1:9443", "visualstudio.com",
		"tfs.example.com/tfs", "https://ado.test:8443/a/b/", "root.test/", "code.visualstudio.com",
	} {
		f.Add(s)
	}
	hosts := testHosts(f)
	f.Fuzz(func(t *testing.T, hp string) {
		n := NormalizeHost(hp)
		if NormalizeHost(n) != n {
			t.Fatalf("NormalizeHost(%q) = %q, NormalizeHost(%q) = %q; want idempotent", hp, n, n, NormalizeHost(n))
		}
		if hosts.Match(hp) != hosts.Match(n) {
			t.Fatalf("Match(%q) = %v, Match(%q) = %v; want equal", hp, hosts.Match(hp), n, hosts.Match(n))
		}
		var none *Hosts
		if none.Match(hp) {
			if n != ServicesHost {
				label, ok := strings.CutSuffix(n, ".visualstudio.com")
				if !ok || label == "" || strings.ContainsAny(label, ".:[]@/") {
					t.Fatalf("(*Hosts)(nil).Match(%q) = true for %q; want only dev.azure.com and {org}.visualstudio.com", hp, n)
				}
			}
		}
		if h, err := NewHosts([]string{hp}); err == nil {
			// An accepted entry (host[:port][/vdir]) matches its host,
			// and its Entries form is accepted back as the same server.
			sv, err := ParseServer(hp)
			if err != nil {
				t.Fatalf("NewHosts accepted %q but ParseServer: %v", hp, err)
			}
			if !h.Match(sv.Host) {
				t.Fatalf("NewHosts([%q]).Match(%q) = false; want true", hp, sv.Host)
			}
			if got := h.SelfHosted(); len(got) != 1 || got[0] != sv.Host {
				t.Fatalf("NewHosts([%q]).SelfHosted() = %q; want [%q]", hp, got, sv.Host)
			}
			e := h.Entries()
			if len(e) != 1 {
				t.Fatalf("NewHosts([%q]).Entries() = %q; want one", hp, e)
			}
			if again, err := ParseServer(e[0]); err != nil || again != sv {
				t.Fatalf("ParseServer(%q) = %+v, %v; want %+v (entry of %q)", e[0], again, err, sv, hp)
			}
			if !strings.Contains(hp, "/") && sv.Host != n {
				t.Fatalf("ParseServer(%q).Host = %q; want NormalizeHost %q", hp, sv.Host, n)
			}
		}
	})
}
