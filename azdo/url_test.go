package azdo

import (
	"errors"
	"strings"
	"testing"
)

// pat52 has the shape of a 52-character PAT, which is also a valid DNS
// label.
var pat52 = strings.Repeat("a1b2", 13)

const (
	sha1a = "0123456789abcdef0123456789abcdef01234567"
	sha2  = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
)

func testHosts(t testing.TB) *Hosts {
	t.Helper()
	h, err := NewHosts([]string{"tfs.example.com", "ado.corp.test:8443", "127.0.0.1:9443", "vdir.example.com/a/b", "root.example.com/"})
	if err != nil {
		t.Fatalf("NewHosts: %v", err)
	}
	return h
}

func TestParse(t *testing.T) {
	svc := func(org, proj, name string) Repo {
		return Repo{Host: "dev.azure.com", Org: org, Project: proj, Name: name}
	}
	leg := func(org, proj, name string, dc bool) Repo {
		return Repo{Host: org + ".visualstudio.com", Org: org, Project: proj, Name: name, Legacy: true, DefaultCollection: dc}
	}
	srv := func(host, vdir, coll, proj, name string) Repo {
		return Repo{Host: host, VirtualDir: vdir, Org: coll, Project: proj, Name: name}
	}
	tests := []struct {
		name    string
		in      string
		want    Target
		wantURL string
	}{
		// Clone URLs on dev.azure.com.
		{"clone", "https://dev.azure.com/contoso/Fabrikam/_git/web", Target{Repo: svc("contoso", "Fabrikam", "web")}, "https://dev.azure.com/contoso/Fabrikam/_git/web"},
		{"clone with org@", "https://contoso@dev.azure.com/contoso/Fabrikam/_git/web", Target{Repo: svc("contoso", "Fabrikam", "web")}, "https://dev.azure.com/contoso/Fabrikam/_git/web"},
		{"clone with user:pat@", "https://me:abcdefpat@dev.azure.com/contoso/Fabrikam/_git/web", Target{Repo: svc("contoso", "Fabrikam", "web")}, "https://dev.azure.com/contoso/Fabrikam/_git/web"},
		{"clone .git kept", "https://dev.azure.com/contoso/Fabrikam/_git/web.git", Target{Repo: svc("contoso", "Fabrikam", "web.git")}, "https://dev.azure.com/contoso/Fabrikam/_git/web.git"},
		{"clone trailing slash", "https://dev.azure.com/contoso/Fabrikam/_git/web/", Target{Repo: svc("contoso", "Fabrikam", "web")}, "https://dev.azure.com/contoso/Fabrikam/_git/web"},
		{"clone upper-case host and :443", "https://DEV.Azure.com:443/contoso/Fabrikam/_git/web", Target{Repo: svc("contoso", "Fabrikam", "web")}, "https://dev.azure.com/contoso/Fabrikam/_git/web"},
		{"clone host trailing dot", "https://dev.azure.com./contoso/p/_git/r", Target{Repo: svc("contoso", "p", "r")}, "https://dev.azure.com/contoso/p/_git/r"},
		{"clone _GIT upper case", "https://dev.azure.com/contoso/p/_GIT/r", Target{Repo: svc("contoso", "p", "r")}, "https://dev.azure.com/contoso/p/_git/r"},
		{"spaces %20", "https://dev.azure.com/contoso/My%20Project/_git/My%20Repo", Target{Repo: svc("contoso", "My Project", "My Repo")}, "https://dev.azure.com/contoso/My%20Project/_git/My%20Repo"},
		{"plus stays plus", "https://dev.azure.com/contoso/C++/_git/a+b", Target{Repo: svc("contoso", "C++", "a+b")}, "https://dev.azure.com/contoso/C++/_git/a+b"},
		{"decode once", "https://dev.azure.com/contoso/p/_git/a%2520b", Target{Repo: svc("contoso", "p", "a%20b")}, "https://dev.azure.com/contoso/p/_git/a%2520b"},
		{"unicode name", "https://dev.azure.com/contoso/Proj%C3%A9t/_git/r%C3%A9po", Target{Repo: svc("contoso", "Projét", "répo")}, "https://dev.azure.com/contoso/Proj%C3%A9t/_git/r%C3%A9po"},
		{"project-less", "https://dev.azure.com/contoso/_git/web", Target{Repo: svc("contoso", "", "web")}, "https://dev.azure.com/contoso/_git/web"},
		{"project-less with org@", "https://contoso@dev.azure.com/contoso/_git/web", Target{Repo: svc("contoso", "", "web")}, "https://dev.azure.com/contoso/_git/web"},
		{"_optimized", "https://dev.azure.com/contoso/p/_git/_optimized/web", Target{Repo: svc("contoso", "p", "web")}, "https://dev.azure.com/contoso/p/_git/web"},
		{"_full", "https://dev.azure.com/contoso/p/_git/_full/web", Target{Repo: svc("contoso", "p", "web")}, "https://dev.azure.com/contoso/p/_git/web"},
		{"scheme-less", "dev.azure.com/contoso/p/_git/web", Target{Repo: svc("contoso", "p", "web")}, "https://dev.azure.com/contoso/p/_git/web"},
		{"scheme-less with port", "dev.azure.com:443/contoso/p/_git/web", Target{Repo: svc("contoso", "p", "web")}, "https://dev.azure.com/contoso/p/_git/web"},
		{"fragment ignored", "https://dev.azure.com/contoso/p/_git/web#readme", Target{Repo: svc("contoso", "p", "web")}, "https://dev.azure.com/contoso/p/_git/web"},
		{"web pages: branches", "https://dev.azure.com/contoso/p/_git/web/branches", Target{Repo: svc("contoso", "p", "web")}, "https://dev.azure.com/contoso/p/_git/web"},
		{"web pages: pullrequests", "https://dev.azure.com/contoso/p/_git/web/pullrequests?_a=mine", Target{Repo: svc("contoso", "p", "web")}, "https://dev.azure.com/contoso/p/_git/web"},

		// Web URLs.
		{"branch", "https://dev.azure.com/contoso/p/_git/web?version=GBmain", Target{Repo: svc("contoso", "p", "web"), Kind: Branch, Branch: "main"}, ""},
		{"branch with slash encoded", "https://dev.azure.com/contoso/p/_git/web?version=GBfeature%2Flogin&_a=history", Target{Repo: svc("contoso", "p", "web"), Kind: Branch, Branch: "feature/login"}, ""},
		{"branch with plus", "https://dev.azure.com/contoso/p/_git/web?version=GBfix+1", Target{Repo: svc("contoso", "p", "web"), Kind: Branch, Branch: "fix+1"}, ""},
		{"tag", "https://dev.azure.com/contoso/p/_git/web?version=GTv1.2.3", Target{Repo: svc("contoso", "p", "web"), Kind: Tag, Tag: "v1.2.3"}, ""},
		{"commit version GC", "https://dev.azure.com/contoso/p/_git/web?version=GC" + strings.ToUpper(sha1a), Target{Repo: svc("contoso", "p", "web"), Kind: Commit, Commit: sha1a}, ""},
		{"commit path", "https://dev.azure.com/contoso/p/_git/web/commit/" + sha1a, Target{Repo: svc("contoso", "p", "web"), Kind: Commit, Commit: sha1a}, ""},
		{"commit path refName", "https://dev.azure.com/contoso/p/_git/web/commit/" + sha1a + "?refName=refs%2Fheads%2Fmain", Target{Repo: svc("contoso", "p", "web"), Kind: Commit, Commit: sha1a}, ""},
		{"commit sha256", "https://dev.azure.com/contoso/p/_git/web/commit/" + sha2, Target{Repo: svc("contoso", "p", "web"), Kind: Commit, Commit: sha2}, ""},
		{"pull request", "https://dev.azure.com/contoso/p/_git/web/pullrequest/42", Target{Repo: svc("contoso", "p", "web"), Kind: PullRequest, PullRequest: 42}, ""},
		{"pull request files tab", "https://dev.azure.com/contoso/p/_git/web/pullrequest/42?_a=files&path=/src/a.go", Target{Repo: svc("contoso", "p", "web"), Kind: PullRequest, PullRequest: 42, Path: "/src/a.go"}, ""},
		{"file on branch", "https://dev.azure.com/contoso/p/_git/web?path=/src/main.go&version=GBdev&line=3", Target{Repo: svc("contoso", "p", "web"), Kind: File, Branch: "dev", Path: "/src/main.go"}, ""},
		{"file encoded path", "https://dev.azure.com/contoso/p/_git/web?path=%2Fdocs%2FREAD%20ME.md&version=GBmain&_a=contents", Target{Repo: svc("contoso", "p", "web"), Kind: File, Branch: "main", Path: "/docs/READ ME.md"}, ""},
		{"file without version", "https://dev.azure.com/contoso/p/_git/web?path=/a.txt", Target{Repo: svc("contoso", "p", "web"), Kind: File, Path: "/a.txt"}, ""},
		{"file on tag", "https://dev.azure.com/contoso/p/_git/web?path=/a.txt&version=GTv1", Target{Repo: svc("contoso", "p", "web"), Kind: File, Tag: "v1", Path: "/a.txt"}, ""},
		{"file on commit", "https://dev.azure.com/contoso/p/_git/web?path=/a.txt&version=GC" + sha1a, Target{Repo: svc("contoso", "p", "web"), Kind: File, Commit: sha1a, Path: "/a.txt"}, ""},
		{"file path without slash", "https://dev.azure.com/contoso/p/_git/web?path=a.txt&version=GBmain", Target{Repo: svc("contoso", "p", "web"), Kind: File, Branch: "main", Path: "/a.txt"}, ""},
		{"branch with raw slash", "https://dev.azure.com/contoso/p/_git/web?version=GBfeature/x", Target{Repo: svc("contoso", "p", "web"), Kind: Branch, Branch: "feature/x"}, ""},
		{"tag with slash", "https://dev.azure.com/contoso/p/_git/web?version=GTrelease/1.0", Target{Repo: svc("contoso", "p", "web"), Kind: Tag, Tag: "release/1.0"}, ""},
		{"tag with slash encoded", "https://dev.azure.com/contoso/p/_git/web?version=GTrelease%2F1.0", Target{Repo: svc("contoso", "p", "web"), Kind: Tag, Tag: "release/1.0"}, ""},
		{"file path cannot leave the clone", "https://dev.azure.com/contoso/p/_git/web?path=/../../etc/passwd&version=GBmain", Target{Repo: svc("contoso", "p", "web"), Kind: File, Branch: "main", Path: "/etc/passwd"}, ""},
		{"file path encoded dot segments", "https://dev.azure.com/contoso/p/_git/web?path=%2Fsrc%2F.%2Fa%2F..%2F..%2F..%2Fmain.go", Target{Repo: svc("contoso", "p", "web"), Kind: File, Path: "/main.go"}, ""},
		{"file path relative dot segments", "https://dev.azure.com/contoso/p/_git/web?path=../x.txt&version=GBmain", Target{Repo: svc("contoso", "p", "web"), Kind: File, Branch: "main", Path: "/x.txt"}, ""},
		{"project-less branch", "https://contoso@dev.azure.com/contoso/_git/web?version=GBmain", Target{Repo: svc("contoso", "", "web"), Kind: Branch, Branch: "main"}, ""},

		// Legacy visualstudio.com.
		{"legacy", "https://contoso.visualstudio.com/Fabrikam/_git/web", Target{Repo: leg("contoso", "Fabrikam", "web", false)}, "https://contoso.visualstudio.com/Fabrikam/_git/web"},
		{"legacy DefaultCollection", "https://contoso.visualstudio.com/DefaultCollection/Fabrikam/_git/web", Target{Repo: leg("contoso", "Fabrikam", "web", true)}, "https://contoso.visualstudio.com/DefaultCollection/Fabrikam/_git/web"},
		{"legacy project-less", "https://contoso.visualstudio.com/_git/web", Target{Repo: leg("contoso", "", "web", false)}, "https://contoso.visualstudio.com/_git/web"},
		{"legacy upper-case host", "https://Contoso.VisualStudio.com/p/_git/web?version=GBmain", Target{Repo: leg("contoso", "p", "web", false), Kind: Branch, Branch: "main"}, "https://contoso.visualstudio.com/p/_git/web"},
		{"legacy DefaultCollection project-less", "https://contoso.visualstudio.com/DefaultCollection/_git/web", Target{Repo: leg("contoso", "", "web", true)}, "https://contoso.visualstudio.com/DefaultCollection/_git/web"},
		{"legacy :443 and org@", "https://contoso@contoso.visualstudio.com:443/p/_git/web", Target{Repo: leg("contoso", "p", "web", false)}, "https://contoso.visualstudio.com/p/_git/web"},
		{"legacy _optimized", "https://contoso.visualstudio.com/DefaultCollection/p/_git/_optimized/web", Target{Repo: leg("contoso", "p", "web", true)}, "https://contoso.visualstudio.com/DefaultCollection/p/_git/web"},

		// Azure DevOps Server.
		{"server tfs vdir", "https://tfs.example.com/tfs/DefaultCollection/Proj/_git/repo", Target{Repo: srv("tfs.example.com", "tfs", "DefaultCollection", "Proj", "repo")}, "https://tfs.example.com/tfs/DefaultCollection/Proj/_git/repo"},
		{"server no vdir", "https://tfs.example.com/DefaultCollection/Proj/_git/repo", Target{Repo: srv("tfs.example.com", "", "DefaultCollection", "Proj", "repo")}, "https://tfs.example.com/DefaultCollection/Proj/_git/repo"},
		{"server custom vdir two levels", "https://vdir.example.com/a/b/Coll/Proj/_git/repo", Target{Repo: srv("vdir.example.com", "a/b", "Coll", "Proj", "repo")}, "https://vdir.example.com/a/b/Coll/Proj/_git/repo"},
		{"server tfs project-less", "https://tfs.example.com/tfs/Coll/_git/repo", Target{Repo: srv("tfs.example.com", "tfs", "Coll", "", "repo")}, "https://tfs.example.com/tfs/Coll/_git/repo"},
		{"server collection project-less", "https://tfs.example.com/Coll/_git/repo", Target{Repo: srv("tfs.example.com", "", "Coll", "", "repo")}, "https://tfs.example.com/Coll/_git/repo"},
		{"server port", "https://ado.corp.test:8443/Coll/P%20Q/_git/r?version=GTrel", Target{Repo: srv("ado.corp.test:8443", "", "Coll", "P Q", "r"), Kind: Tag, Tag: "rel"}, "https://ado.corp.test:8443/Coll/P%20Q/_git/r"},
		{"server IP", "https://127.0.0.1:9443/tfs/Coll/P/_git/r/pullrequest/7", Target{Repo: srv("127.0.0.1:9443", "tfs", "Coll", "P", "r"), Kind: PullRequest, PullRequest: 7}, "https://127.0.0.1:9443/tfs/Coll/P/_git/r"},

		// SSH.
		{"ssh scp", "git@ssh.dev.azure.com:v3/contoso/Fabrikam/web", Target{Repo: svc("contoso", "Fabrikam", "web")}, "https://dev.azure.com/contoso/Fabrikam/_git/web"},
		{"ssh url", "ssh://git@ssh.dev.azure.com/v3/contoso/Fabrikam/web", Target{Repo: svc("contoso", "Fabrikam", "web")}, "https://dev.azure.com/contoso/Fabrikam/_git/web"},
		{"ssh url port 22", "ssh://git@ssh.dev.azure.com:22/v3/contoso/Fabrikam/web", Target{Repo: svc("contoso", "Fabrikam", "web")}, "https://dev.azure.com/contoso/Fabrikam/_git/web"},
		{"ssh %20", "git@ssh.dev.azure.com:v3/contoso/My%20Project/My%20Repo", Target{Repo: svc("contoso", "My Project", "My Repo")}, "https://dev.azure.com/contoso/My%20Project/_git/My%20Repo"},
		{"ssh .git kept", "git@ssh.dev.azure.com:v3/contoso/Fabrikam/web.git", Target{Repo: svc("contoso", "Fabrikam", "web.git")}, "https://dev.azure.com/contoso/Fabrikam/_git/web.git"},
		{"ssh upper-case host", "git@SSH.Dev.Azure.com:v3/contoso/Fabrikam/web", Target{Repo: svc("contoso", "Fabrikam", "web")}, "https://dev.azure.com/contoso/Fabrikam/_git/web"},
		{"ssh vs-ssh legacy", "contoso@vs-ssh.visualstudio.com:v3/contoso/Fabrikam/web", Target{Repo: leg("contoso", "Fabrikam", "web", false)}, "https://contoso.visualstudio.com/Fabrikam/_git/web"},
		{"ssh vs-ssh url", "ssh://contoso@vs-ssh.visualstudio.com/v3/Contoso/Fabrikam/web", Target{Repo: leg("contoso", "Fabrikam", "web", false)}, "https://contoso.visualstudio.com/Fabrikam/_git/web"},
		{"ssh server", "ssh://tfs.example.com:22/tfs/DefaultCollection/Proj/_git/repo", Target{Repo: srv("tfs.example.com", "tfs", "DefaultCollection", "Proj", "repo")}, "https://tfs.example.com/tfs/DefaultCollection/Proj/_git/repo"},
		{"ssh server keeps https port", "ssh://ado.corp.test:22/Coll/Proj/_git/repo", Target{Repo: srv("ado.corp.test:8443", "", "Coll", "Proj", "repo")}, "https://ado.corp.test:8443/Coll/Proj/_git/repo"},
	}
	hosts := testHosts(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.in, hosts)
			if err != nil {
				t.Fatalf("Parse(%q) error: %v", tt.in, err)
			}
			if *got != tt.want {
				t.Errorf("Parse(%q) = %+v; want %+v", tt.in, *got, tt.want)
			}
			if tt.wantURL != "" && got.Repo.CloneURL() != tt.wantURL {
				t.Errorf("Parse(%q).Repo.CloneURL() = %q; want %q", tt.in, got.Repo.CloneURL(), tt.wantURL)
			}
			// The clean clone URL names the same repository.
			again, err := Parse(got.Repo.CloneURL(), hosts)
			if err != nil || again.Repo != got.Repo || again.Kind != Default {
				t.Errorf("Parse(%q) = %+v, %v; want %+v (round trip of %q)", got.Repo.CloneURL(), again, err, got.Repo, tt.in)
			}
		})
	}
	if len(tests) < 40 {
		t.Fatalf("only %d shapes; want at least 40", len(tests))
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name     string
		in       string
		sentinel error
		contains string
	}{
		{"empty", "", ErrInvalidURL, "empty URL"},
		{"github", "https://github.com/o/r", ErrNotAzureDevOps, "github.com is not an Azure DevOps host"},
		{"subdomain of dev.azure.com", "https://test.dev.azure.com/o/p/_git/r", ErrNotAzureDevOps, "not an Azure DevOps host"},
		{"lookalike suffix", "https://dev.azure.com.evil.test/o/p/_git/r", ErrNotAzureDevOps, "not an Azure DevOps host"},
		{"lookalike prefix", "https://evil-dev.azure.com/o/p/_git/r", ErrNotAzureDevOps, "not an Azure DevOps host"},
		{"bare visualstudio.com", "https://visualstudio.com/p/_git/r", ErrNotAzureDevOps, "not an Azure DevOps host"},
		{"two labels visualstudio.com", "https://a.b.visualstudio.com/p/_git/r", ErrNotAzureDevOps, "not an Azure DevOps host"},
		{"services on other port", "https://dev.azure.com:8443/o/p/_git/r", ErrNotAzureDevOps, "not an Azure DevOps host"},
		{"unconfigured server", "https://tfs.other.test/tfs/C/P/_git/r", ErrNotAzureDevOps, "--host"},
		{"http", "http://dev.azure.com/o/p/_git/r", ErrInvalidURL, "plain http"},
		{"ftp", "ftp://dev.azure.com/o/p/_git/r", ErrInvalidURL, "unsupported scheme"},
		{"no _git", "https://dev.azure.com/o/p", ErrInvalidURL, "no /_git/"},
		{"no repo", "https://dev.azure.com/o/p/_git/", ErrInvalidURL, "no repository name"},
		{"no repo after _optimized", "https://dev.azure.com/o/p/_git/_optimized", ErrInvalidURL, "no repository name"},
		{"no org", "https://dev.azure.com/_git/r", ErrInvalidURL, "{org}/{project}/_git/{repo}"},
		{"too many segments", "https://dev.azure.com/o/p/x/_git/r", ErrInvalidURL, "3 segments"},
		{"legacy too many", "https://o.visualstudio.com/a/b/c/_git/r", ErrInvalidURL, "too many segments"},
		{"unknown page", "https://dev.azure.com/o/p/_git/r/info/refs", ErrInvalidURL, `unexpected "info/refs"`},
		{"short commit", "https://dev.azure.com/o/p/_git/r/commit/abc123", ErrInvalidURL, "not a full commit id"},
		{"bad GC", "https://dev.azure.com/o/p/_git/r?version=GCxyz", ErrInvalidURL, "not a full commit id"},
		{"bad version prefix", "https://dev.azure.com/o/p/_git/r?version=XXmain", ErrInvalidURL, "want GB{branch}"},
		{"empty version", "https://dev.azure.com/o/p/_git/r?version=GB", ErrInvalidURL, "want GB{branch}"},
		{"bad branch", "https://dev.azure.com/o/p/_git/r?version=GBa..b", ErrInvalidURL, "bad branch name"},
		{"PR not a number", "https://dev.azure.com/o/p/_git/r/pullrequest/abc", ErrInvalidURL, "not a positive number"},
		{"PR zero", "https://dev.azure.com/o/p/_git/r/pullrequest/0", ErrInvalidURL, "not a positive number"},
		{"PR negative", "https://dev.azure.com/o/p/_git/r/pullrequest/-1", ErrInvalidURL, "not a positive number"},
		{"bad percent", "https://dev.azure.com/o/p/_git/r%zz", ErrInvalidURL, "malformed URL"},
		{"bad percent in query", "https://dev.azure.com/o/p/_git/r?version=GB%zz", ErrInvalidURL, "percent-encoding"},
		{"encoded slash in name", "https://dev.azure.com/o/p/_git/a%2Fb", ErrInvalidURL, "bad repository name"},
		{"dotdot name", "https://dev.azure.com/o/p/_git/..", ErrInvalidURL, "bad repository name"},
		{"raw space", "https://dev.azure.com/o/My Project/_git/r", ErrInvalidURL, "%20"},
		{"ssh short path", "git@ssh.dev.azure.com:v3/o/r", ErrInvalidURL, "v3/{org}/{project}/{repo}"},
		{"ssh not v3", "git@ssh.dev.azure.com:v2/o/p/r", ErrInvalidURL, "v3/{org}/{project}/{repo}"},
		{"ssh github", "git@github.com:o/r.git", ErrNotAzureDevOps, "not an Azure DevOps SSH host"},
		{"ssh lookalike", "git@ssh.dev.azure.com.evil.test:v3/o/p/r", ErrNotAzureDevOps, "not an Azure DevOps SSH host"},
		{"reserved org", "https://dev.azure.com/_apis/p/_git/r", ErrInvalidURL, "bad organization name"},
	}
	hosts := testHosts(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.in, hosts)
			if err == nil {
				t.Fatalf("Parse(%q) = %+v; want error", tt.in, *got)
			}
			if !errors.Is(err, tt.sentinel) {
				t.Errorf("Parse(%q) error = %v; want errors.Is %v", tt.in, err, tt.sentinel)
			}
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Errorf("Parse(%q) error is %T; want *ParseError", tt.in, err)
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.contains) {
				t.Errorf("Parse(%q) error = %q; want it to contain %q", tt.in, msg, tt.contains)
			}
			if !strings.Contains(msg, "not an Azure DevOps repository URL") || !strings.Contains(msg, "(want ") {
				t.Errorf("Parse(%q) error = %q; want the expected form named", tt.in, msg)
			}
		})
	}
}

// TestParseErrorNoUserinfo proves that a token pasted into a URL never
// reaches an error message.
func TestParseErrorNoUserinfo(t *testing.T) {
	const tok = "s3cr3tpattokenvalue"
	tests := []struct {
		name string
		in   string
	}{
		{"user:password on other host", "https://me:" + tok + "@github.com/o/r"},
		{"token as user", "https://" + tok + "@evil.test/o/p/_git/r"},
		{"token as user on azdo bad path", "https://" + tok + "@dev.azure.com/o"},
		{"password on http", "http://me:" + tok + "@dev.azure.com/o/p/_git/r"},
		{"scheme-less user:password", "me:" + tok + "@dev.azure.com/o"},
		{"scheme-less token user", tok + "@example.test:v3/o/p/r"},
		{"bad scheme", "foo://me:" + tok + "@dev.azure.com/o/p/_git/r"},
		{"PAT as vs-ssh user", "ssh://" + pat52 + "@vs-ssh.visualstudio.com:22/p/_ssh/r"},
		{"PAT as vs-ssh user scp", pat52 + "@vs-ssh.visualstudio.com:22/DefaultCollection/p/_ssh/r"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(tt.in, nil)
			if err == nil {
				t.Fatalf("Parse(%q) succeeded; want error", tt.in)
			}
			if strings.Contains(err.Error(), tok) || strings.Contains(err.Error(), pat52) {
				t.Errorf("Parse(%q) error = %q; contains the token", tt.in, err)
			}
		})
	}
}

func TestKindString(t *testing.T) {
	tests := []struct {
		name string
		k    Kind
		want string
	}{
		{"default", Default, "default"},
		{"pr", PullRequest, "pull request"},
		{"file", File, "file"},
		{"unknown", Kind(99), "Kind(99)"},
	}
	for _, tt := range tests {
		if got := tt.k.String(); got != tt.want {
			t.Errorf("%s: Kind(%d).String() = %q; want %q", tt.name, int(tt.k), got, tt.want)
		}
	}
}
