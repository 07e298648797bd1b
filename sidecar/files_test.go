package sidecar

import (
	"bytes"
	"errors"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/azdo-sidecar/azdo-sidecar/internal/proxycred"
	"github.com/azdo-sidecar/azdo-sidecar/internal/statedir"
)

// readProxyURL returns the proxy URL file's URL and checks its mode.
func readProxyURL(t *testing.T, path string) *url.URL {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("%s mode %04o; want 0600", path, fi.Mode().Perm())
	}
	b, _ := os.ReadFile(path)
	u, err := url.Parse(strings.TrimSpace(string(b)))
	if err != nil || u.User == nil {
		t.Fatalf("%s does not hold a proxy URL with a credential", path)
	}
	return u
}

// TestProxyURLFileSurvivesRestart: the ready line names a 0600 file with
// the proxy URL and its credential; a restarted sidecar (another port)
// keeps the credential, so git's configuration keeps working.
func TestProxyURLFileSurvivesRestart(t *testing.T) {
	opts := testOptions(t)
	s, err := Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	r := s.Ready()
	if r.ProxyURLFile != filepath.Join(opts.StateDir, proxycred.FileName) {
		t.Errorf("ProxyURLFile = %q; want it under the state dir", r.ProxyURLFile)
	}
	first := readProxyURL(t, r.ProxyURLFile)
	if first.Host != r.Proxy || first.User.Username() != proxycred.User {
		t.Errorf("proxy URL host %q user %q; want %q, %q", first.Host, first.User.Username(), r.Proxy, proxycred.User)
	}
	if err := s.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	s2, err := Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Shutdown(t.Context())
	second := readProxyURL(t, s2.Ready().ProxyURLFile)
	p1, _ := first.User.Password()
	p2, _ := second.User.Password()
	if p1 != p2 || len(p1) < 16 {
		t.Errorf("the credential changed across a restart (or is short)")
	}
	if second.Host != s2.Ready().Proxy {
		t.Errorf("proxy URL host %q; want the new address %q", second.Host, s2.Ready().Proxy)
	}
}

// TestInsecureProxyURLFileReplaced: a credential others could read is not
// reused.
func TestInsecureProxyURLFileReplaced(t *testing.T) {
	opts := testOptions(t)
	if err := statedir.Ensure(opts.StateDir); err != nil {
		t.Fatal(err)
	}
	path := proxycred.Path(opts.StateDir)
	const leaked = "leaked-password-0123456789"
	os.WriteFile(path, []byte("http://azdo-sidecar:"+leaked+"@127.0.0.1:3128\n"), 0o644)
	os.Chmod(path, 0o644)
	s, err := Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown(t.Context())
	u := readProxyURL(t, path)
	if p, _ := u.User.Password(); p == leaked {
		t.Errorf("reused a credential from a world-readable file")
	}
}

// TestFailedStartChangesNothingOnDisk: a second sidecar on the same state
// dir that cannot bind leaves the first one's ca.pem and proxy URL alone.
func TestFailedStartChangesNothingOnDisk(t *testing.T) {
	opts := testOptions(t)
	s, err := Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown(t.Context())
	caBefore, _ := os.ReadFile(s.Ready().CAFile)
	urlBefore, _ := os.ReadFile(s.Ready().ProxyURLFile)

	for _, tt := range []struct {
		name string
		edit func(o *Options)
	}{
		{"proxy port in use", func(o *Options) { o.Listen = s.Ready().Proxy }},
		{"metrics port in use", func(o *Options) { o.MetricsListen = s.Ready().Metrics }},
		{"socket in use", func(o *Options) {}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			o := opts
			tt.edit(&o)
			if s2, err := Start(o); err == nil {
				s2.Shutdown(t.Context())
				t.Fatal("second Start succeeded; want an error")
			}
			if b, _ := os.ReadFile(s.Ready().CAFile); !bytes.Equal(b, caBefore) {
				t.Errorf("ca.pem changed")
			}
			if b, _ := os.ReadFile(s.Ready().ProxyURLFile); !bytes.Equal(b, urlBefore) {
				t.Errorf("the proxy URL file changed")
			}
			entries, _ := os.ReadDir(opts.StateDir)
			for _, e := range entries {
				if strings.HasPrefix(e.Name(), ".") {
					t.Errorf("left %s in the state dir", e.Name())
				}
			}
		})
	}
	// The first one still serves.
	c, err := net.Dial("tcp", s.Ready().Proxy)
	if err != nil {
		t.Fatalf("first sidecar's proxy: %v", err)
	}
	c.Close()
}

func TestStateDirModes(t *testing.T) {
	base := t.TempDir()
	shared := filepath.Join(base, "shared")
	os.Mkdir(shared, 0o755)
	os.Chmod(shared, 0o777|os.ModeSticky)
	group := filepath.Join(base, "group")
	os.Mkdir(group, 0o770)
	os.Chmod(group, 0o770)
	tests := []struct {
		name    string
		dir     string
		wantErr bool
		mode    os.FileMode // after Start
	}{
		{"missing is created 0700", filepath.Join(base, "new", "deeper"), false, 0o700},
		{"shared 1777 refused, unchanged", shared, true, 0o777 | os.ModeSticky},
		{"group-writable refused, unchanged", group, true, 0o770},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := testOptions(t)
			opts.StateDir = tt.dir
			s, err := Start(opts)
			if err == nil {
				defer s.Shutdown(t.Context())
			}
			if (err != nil) != tt.wantErr {
				t.Fatalf("Start = %v; want error %v", err, tt.wantErr)
			}
			if tt.wantErr && (!errors.Is(err, statedir.ErrInsecure) || !strings.Contains(err.Error(), "others may write")) {
				t.Errorf("Start = %v; want ErrInsecure saying others may write", err)
			}
			fi, _ := os.Stat(tt.dir)
			if got := fi.Mode() & (os.ModePerm | os.ModeSticky); got != tt.mode {
				t.Errorf("mode after Start = %v; want %v", got, tt.mode)
			}
			if tt.wantErr {
				if _, err := os.Stat(filepath.Join(tt.dir, "ca.pem")); err == nil {
					t.Errorf("ca.pem written into a refused directory")
				}
			}
		})
	}
}
