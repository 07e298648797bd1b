package azdo

import (
	"strings"
	"testing"
)

func TestHostsMatch(t *testing.T) {
	hosts := testHosts(t)
	tests := []struct {
		name     string
		hostport string
		want     bool // with the configured self-hosted hosts
		wantNil  bool // with a nil *Hosts
	}{
		{"services", "dev.azure.com", true, true},
		{"services :443", "dev.azure.com:443", true, true},
		{"services upper case", "DEV.AZURE.COM", true, true},
		{"services trailing dot", "dev.azure.com.", true, true},
		{"services trailing dot and port", "dev.azure.com.:443", true, true},
		{"services other port", "dev.azure.com:8443", false, false},
		{"legacy", "contoso.visualstudio.com", true, true},
		{"legacy :443", "contoso.visualstudio.com:443", true, true},
		{"legacy hyphen", "my-org.visualstudio.com", true, true},
		{"empty", "", false, false},
		{"subdomain of services", "test.dev.azure.com", false, false},
		{"suffix lookalike", "dev.azure.com.evil.test", false, false},
		{"prefix lookalike", "evil-dev.azure.com", false, false},
		{"azure.com", "azure.com", false, false},
		{"bare visualstudio.com", "visualstudio.com", false, false},
		{"two labels", "a.b.visualstudio.com", false, false},
		{"empty label", ".visualstudio.com", false, false},
		{"label leading hyphen", "-x.visualstudio.com", false, false},
		{"label underscore", "a_b.visualstudio.com", false, false},
		{"visualstudio lookalike", "contoso.visualstudio.com.evil.test", false, false},
		{"visualstudio lookalike 2", "contosovisualstudio.com", false, false},
		{"userinfo smuggled", "evil.test@dev.azure.com", false, false},
		{"self-hosted", "tfs.example.com", true, false},
		{"self-hosted :443", "tfs.example.com:443", true, false},
		{"self-hosted case", "TFS.Example.COM", true, false},
		{"self-hosted wrong port", "tfs.example.com:8443", false, false},
		{"self-hosted port", "ado.corp.test:8443", true, false},
		{"self-hosted port missing", "ado.corp.test", false, false},
		{"self-hosted IP", "127.0.0.1:9443", true, false},
		{"self-hosted subdomain", "x.tfs.example.com", false, false},
		{"github", "github.com:443", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := hosts.Match(tt.hostport); got != tt.want {
				t.Errorf("Match(%q) = %v; want %v", tt.hostport, got, tt.want)
			}
			var none *Hosts
			if got := none.Match(tt.hostport); got != tt.wantNil {
				t.Errorf("(*Hosts)(nil).Match(%q) = %v; want %v", tt.hostport, got, tt.wantNil)
			}
		})
	}
}

func TestNormalizeHost(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
	}{
		{"plain", "dev.azure.com", "dev.azure.com"},
		{"case", "Dev.Azure.COM", "dev.azure.com"},
		{"default port", "dev.azure.com:443", "dev.azure.com"},
		{"other port", "tfs.example.com:8080", "tfs.example.com:8080"},
		{"trailing dot", "dev.azure.com.", "dev.azure.com"},
		{"trailing dot port", "dev.azure.com.:443", "dev.azure.com"},
		{"ipv6", "[::1]:443", "[::1]"},
		{"ipv6 port", "[::1]:8443", "[::1]:8443"},
		{"bare ipv6", "::1", "[::1]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := NormalizeHost(tt.in); got != tt.want {
				t.Errorf("NormalizeHost(%q) = %q; want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestNewHosts(t *testing.T) {
	good := []struct {
		name string
		in   []string
		want []string
	}{
		{"none", nil, nil},
		{"normalized and deduplicated", []string{"TFS.example.com:443", "tfs.example.com", "ado.test:8443"}, []string{"tfs.example.com", "ado.test:8443"}},
		{"ip and ipv6", []string{"127.0.0.1:8443", "[::1]:8443"}, []string{"127.0.0.1:8443", "[::1]:8443"}},
		{"single label", []string{"tfs"}, []string{"tfs"}},
		{"https and virtual directories", []string{"https://TFS.example.com/tfs", "tfs.example.com/Other/Dir/", "root.test/"}, []string{"tfs.example.com", "root.test"}},
	}
	for _, tt := range good {
		t.Run(tt.name, func(t *testing.T) {
			h, err := NewHosts(tt.in)
			if err != nil {
				t.Fatalf("NewHosts(%q) error: %v", tt.in, err)
			}
			if got := h.SelfHosted(); strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Errorf("NewHosts(%q).SelfHosted() = %q; want %q", tt.in, got, tt.want)
			}
		})
	}
	bad := []struct {
		name string
		in   string
	}{
		{"empty", ""},
		{"plain http", "http://tfs.example.com:8080/tfs"},
		{"other scheme", "ftp://tfs.example.com"},
		{"vdir _git", "tfs.example.com/_git"},
		{"vdir query", "tfs.example.com/tfs?x"},
		{"vdir dotdot", "tfs.example.com/a/../b"},
		{"vdir empty segment", "tfs.example.com/a//b"},
		{"userinfo", "me@tfs.example.com"},
		{"port zero", "tfs.example.com:0"},
		{"port too big", "tfs.example.com:65536"},
		{"port not number", "tfs.example.com:https"},
		{"empty port", "tfs.example.com:"},
		{"underscore", "tfs_host.example.com"},
		{"wildcard", "*.example.com"},
		{"bare ipv6", "::1"},
		{"unclosed bracket", "[::1"},
		{"space", "tfs example"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewHosts([]string{"ok.example.com", tt.in})
			if err == nil {
				t.Fatalf("NewHosts(%q) succeeded; want error", tt.in)
			}
			if !strings.Contains(err.Error(), "\""+tt.in+"\"") || !strings.Contains(err.Error(), "want host[:port]") && !strings.Contains(err.Error(), "HTTPS binding") {
				t.Errorf("NewHosts(%q) error = %q; want it to name the entry and the allowed form", tt.in, err)
			}
		})
	}
	var none *Hosts
	if got := none.SelfHosted(); got != nil {
		t.Errorf("(*Hosts)(nil).SelfHosted() = %q; want nil", got)
	}
}

func TestIsServicesHost(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want bool
	}{
		{"services", "dev.azure.com", true},
		{"legacy", "contoso.visualstudio.com:443", true},
		{"ssh host is not https", "ssh.dev.azure.com", false},
		{"self-hosted", "tfs.example.com", false},
		{"long label", strings.Repeat("a", 64) + ".visualstudio.com", false},
		{"63 label", strings.Repeat("a", 63) + ".visualstudio.com", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := IsServicesHost(tt.in); got != tt.want {
				t.Errorf("IsServicesHost(%q) = %v; want %v", tt.in, got, tt.want)
			}
		})
	}
}

func TestOrgFor(t *testing.T) {
	tests := []struct {
		name             string
		host, path, user string
		want             string
	}{
		{"path", "dev.azure.com", "contoso/p/_git/r", "", "contoso"},
		{"path leading slash", "dev.azure.com:443", "/Contoso/p/_git/r/info/refs", "", "contoso"},
		{"path wins over user", "dev.azure.com", "contoso/p/_git/r", "other", "contoso"},
		{"user when no path", "dev.azure.com", "", "Contoso", "contoso"},
		{"default user name is an org shape but path wins", "dev.azure.com", "org1/_apis/connectionData", "azdo-sidecar", "org1"},
		{"user that is a PAT", "dev.azure.com", "", strings.Repeat("a", 52), ""},
		{"user with @", "dev.azure.com", "", "me@contoso.com", ""},
		{"nothing", "dev.azure.com", "", "", ""},
		{"legacy subdomain", "Contoso.visualstudio.com", "DefaultCollection/p/_git/r", "someone", "contoso"},
		{"legacy no path", "contoso.visualstudio.com", "", "", "contoso"},
		{"server tfs", "tfs.example.com", "tfs/DefaultCollection/P/_git/r", "", "defaultcollection"},
		{"server no vdir", "tfs.example.com", "Coll/P/_git/r", "", "coll"},
		{"server project-less tfs", "tfs.example.com", "tfs/Coll/_git/r", "", "coll"},
		{"server long vdir configured", "vdir.example.com", "/a/b/Coll/P/_git/r/info/refs", "", "coll"},
		{"server long vdir configured rest", "vdir.example.com", "/A/B/Coll/_apis/connectionData", "", "coll"},
		{"server long vdir not configured", "tfs.example.com", "/a/b/Coll/P/_git/r/info/refs", "", ""},
		{"server root configured team", "root.example.com", "/Coll/P/Team/_git/r/info/refs", "", "coll"},
		{"server DefaultCollection after vdir", "tfs.example.com", "/sources2010/tfs/DefaultCollection/_git/repo", "", "defaultcollection"},
		{"server DefaultCollection after vdir rest", "tfs.example.com", "/sources2010/tfs/DefaultCollection/_apis/connectionData", "", "defaultcollection"},
		{"server tfs without collection", "tfs.example.com", "/tfs/_apis/connectionData", "", ""},
		{"microsoft site", "code.visualstudio.com", "/docs", "code", ""},
		{"server rest", "tfs.example.com", "tfs/Coll/_apis/connectionData", "", "coll"},
		{"server rest no vdir", "tfs.example.com", "Coll/_apis/x", "", "coll"},
		{"server nothing", "tfs.example.com", "", "Coll", ""},
		{"encoded path", "dev.azure.com", "contoso/My%20Project/_git/r", "", "contoso"},
		{"query ignored", "dev.azure.com", "contoso?x=1", "", "contoso"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := testHosts(t).OrgFor(tt.host, tt.path, tt.user); got != tt.want {
				t.Errorf("OrgFor(%q, %q, %q) = %q; want %q", tt.host, tt.path, tt.user, got, tt.want)
			}
		})
	}
}

func TestRepoCredentialOrgMatchesOrgFor(t *testing.T) {
	hosts := testHosts(t)
	for _, in := range []string{
		"https://dev.azure.com/Contoso/p/_git/r",
		"https://Contoso.visualstudio.com/DefaultCollection/p/_git/r",
		"https://tfs.example.com/tfs/DefaultCollection/P/_git/r",
		"https://vdir.example.com/a/b/Coll/P/_git/r",
		"https://root.example.com/Coll/P/Team/_git/r",
		"https://tfs.example.com/sources2010/tfs/DefaultCollection/_git/repo",
		"git@ssh.dev.azure.com:v3/Contoso/p/r",
	} {
		tg, err := Parse(in, hosts)
		if err != nil {
			t.Fatalf("Parse(%q): %v", in, err)
		}
		u := tg.Repo.CloneURL()
		path := u[len("https://"+tg.Repo.Host):]
		if got, want := hosts.OrgFor(tg.Repo.Host, path, ""), tg.Repo.CredentialOrg(); got != want {
			t.Errorf("OrgFor(%q, %q, \"\") = %q; want CredentialOrg %q", tg.Repo.Host, path, got, want)
		}
	}
}
