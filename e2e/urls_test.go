package e2e

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/azdo-sidecar/azdo-sidecar/e2e/azdoemu"
	"github.com/azdo-sidecar/azdo-sidecar/e2e/entraemu"
	"github.com/azdo-sidecar/azdo-sidecar/e2e/testenv"
	"github.com/azdo-sidecar/azdo-sidecar/vaultapi"
)

// vdirHost is an Azure DevOps Server installed under a two-segment IIS
// virtual directory.
const (
	vdirHost = "ado.contoso.test"
	vdirDir  = "virtual/dir"
	// vdirTeamURL names the repository through a team's view, with a space
	// in the team's name: virtual directory, collection, project, team.
	vdirTeamURL = "https://" + vdirHost + "/" + vdirDir + "/Coll/Web/Team%20A/_git/site"
	// vdirCloneURL is the repository's own clone URL.
	vdirCloneURL = "https://" + vdirHost + "/" + vdirDir + "/Coll/Web/_git/site"
)

// TestSelfHostedVirtualDirTeamURL: with --host HOST/virtual/dir, a
// team-segment URL on a server under a two-segment virtual directory
// works through `azdo-sidecar clone`, through the proxy and through the
// credential helper, and every credential key names the collection (issue
// 14). Without the virtual directory the same URL is refused with the flag
// to set, never read with the wrong collection.
func TestSelfHostedVirtualDirTeamURL(t *testing.T) {
	emu := testenv.StartAzDO(t, azdoemu.Config{SelfHosted: []string{vdirHost}, VirtualDir: vdirDir})
	pat := azdoemu.NewPAT()
	// The PAT is valid in collection Coll only: a request that named
	// another collection would be refused by the emulator.
	if err := emu.AddPAT(azdoemu.PAT{Token: pat, Org: "Coll"}); err != nil {
		t.Fatal(err)
	}
	seed := testenv.Seed(t, emu, "Coll", "Web", "site", testenv.SeedOptions{Commits: 2})
	bin := testenv.Binary(t, "azdo-sidecar")
	hostFlag := vdirHost + "/" + vdirDir
	resolve := testenv.ResolveFlag(vdirHost, emu)

	t.Run("clone command", func(t *testing.T) {
		g := testenv.NewGit(t)
		dir := filepath.Join(g.Home, "site")
		cmd := exec.Command(bin, "clone", "--host", hostFlag, "--resolve", resolve, "--upstream-ca-file", emu.CAFile(), vdirTeamURL, dir)
		cmd.Env = append(scBaseEnv(), "AZDO_PAT="+pat.Reveal(), "HOME="+g.Home)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("azdo-sidecar clone %s: %v\n%s", vdirTeamURL, err, out)
		}
		if got := g.Run(t, "-C", dir, "rev-parse", "HEAD"); got != seed.Head {
			t.Errorf("HEAD = %s; want %s", got, seed.Head)
		}
		if got := g.Run(t, "-C", dir, "remote", "get-url", "origin"); got != vdirCloneURL {
			t.Errorf("origin = %s; want the clone URL %s (team dropped)", got, vdirCloneURL)
		}
	})

	t.Run("clone command without the virtual directory refuses", func(t *testing.T) {
		g := testenv.NewGit(t)
		before := len(emu.Requests())
		cmd := exec.Command(bin, "clone", "--host", vdirHost, "--resolve", resolve, "--upstream-ca-file", emu.CAFile(), vdirTeamURL, filepath.Join(g.Home, "x"))
		cmd.Env = append(scBaseEnv(), "AZDO_PAT="+pat.Reveal(), "HOME="+g.Home)
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), "--host "+vdirHost+"/VDIR") {
			t.Errorf("clone without the virtual directory = %v\n%s; want a refusal naming --host %s/VDIR", err, out, vdirHost)
		}
		if n := len(emu.Requests()); n != before {
			t.Errorf("the refused clone sent %d requests; want none", n-before)
		}
	})

	sc := startSidecar(t, []string{"AZDO_PAT=" + pat.Reveal()}, "--host", hostFlag, "--resolve", resolve, "--upstream-ca-file", emu.CAFile())

	t.Run("clone command through the sidecar", func(t *testing.T) {
		// No token source of its own: clone asks the running sidecar over
		// its socket, naming the collection under the virtual directory.
		g := testenv.NewGit(t)
		dir := filepath.Join(g.Home, "site")
		cmd := exec.Command(bin, "clone", "--host", hostFlag, "--socket", sc.Socket, "--resolve", resolve, "--upstream-ca-file", emu.CAFile(), vdirTeamURL, dir)
		cmd.Env = append(scBaseEnv(), "HOME="+g.Home)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("azdo-sidecar clone %s through the sidecar: %v\n%s", vdirTeamURL, err, out)
		}
		if got := g.Run(t, "-C", dir, "rev-parse", "HEAD"); got != seed.Head {
			t.Errorf("HEAD = %s; want %s", got, seed.Head)
		}
	})

	t.Run("git through the proxy", func(t *testing.T) {
		g := testenv.NewGit(t)
		useProxy(t, g, sc, "https://"+vdirHost+"/")
		dir := filepath.Join(g.Home, "site")
		if out, err := g.RunErr("clone", "--quiet", vdirTeamURL, dir); err != nil {
			t.Fatalf("git clone %s through the proxy: %v\n%s", vdirTeamURL, err, out)
		}
		if got := g.Run(t, "-C", dir, "rev-parse", "HEAD"); got != seed.Head {
			t.Errorf("HEAD = %s; want %s", got, seed.Head)
		}
		commitAndPush(t, g, dir, "proxy.txt")
	})

	t.Run("git through the helper", func(t *testing.T) {
		helper := testenv.Binary(t, "git-credential-azdo")
		g := testenv.NewGit(t)
		// git reaches the emulator directly (a blind tunnel stands in for
		// DNS), so only the credential helper can authenticate it.
		g.Unsetenv("GIT_SSL_CAINFO")
		tun := "http://" + testenv.StartTunnel(t, emu.Addr()).Addr()
		g.SetConfig(t, "http.https://"+vdirHost+"/.proxy", tun)
		g.SetConfig(t, "http.https://"+vdirHost+"/.sslCAInfo", emu.CAFile())
		g.SetConfig(t, "credential.https://"+vdirHost+".helper", helper+" --socket "+sc.Socket+" --host "+hostFlag)
		g.SetConfig(t, "credential.https://"+vdirHost+".useHttpPath", "true")
		dir := filepath.Join(g.Home, "site")
		if out, err := g.RunErr("clone", "--quiet", vdirTeamURL, dir); err != nil {
			t.Fatalf("git clone %s through the helper: %v\n%s", vdirTeamURL, err, out)
		}
		if got := g.Run(t, "-C", dir, "rev-parse", "HEAD"); got == "" {
			t.Errorf("no HEAD after clone")
		}
		commitAndPush(t, g, dir, "helper.txt")
	})

	t.Run("git configured by setup --mode helper", func(t *testing.T) {
		testenv.Binary(t, "git-credential-azdo")
		g := testenv.NewGit(t)
		g.Unsetenv("GIT_SSL_CAINFO")
		tun := "http://" + testenv.StartTunnel(t, emu.Addr()).Addr()
		g.SetConfig(t, "http.https://"+vdirHost+"/.proxy", tun)
		g.SetConfig(t, "http.https://"+vdirHost+"/.sslCAInfo", emu.CAFile())
		// The host with its virtual directory comes from AZDO_HOST, as
		// every flag reads its variable.
		g.Setenv("AZDO_HOST", hostFlag)
		out, errOut, err := runSidecar(t, g, bin, "setup", "--mode", "helper", "--socket", sc.Socket, "--state-dir", filepath.Join(t.TempDir(), "state"))
		if err != nil {
			t.Fatalf("setup: %v\n%s%s", err, out, errOut)
		}
		g.Unsetenv("AZDO_HOST") // git's environment need not carry it
		dir := filepath.Join(g.Home, "site")
		if out, err := g.RunErr("clone", "--quiet", vdirTeamURL, dir); err != nil {
			cfg, _ := os.ReadFile(g.Config)
			t.Fatalf("git clone %s after setup: %v\n%s\nconfig:\n%s", vdirTeamURL, err, out, cfg)
		}
		commitAndPush(t, g, dir, "setup.txt")
	})

	// Every request reached the emulator under the virtual directory with
	// the collection's PAT.
	for _, r := range emu.Requests() {
		if !strings.HasPrefix(strings.ToLower(r.Path), "/"+vdirDir+"/coll/") {
			t.Errorf("request %s %s: not under /%s/Coll/", r.Method, r.Path, vdirDir)
		}
		if r.Status == http.StatusOK && r.CredKind != azdoemu.CredBasicPAT {
			t.Errorf("request %s %s: %d with cred %s; want basic-pat", r.Method, r.Path, r.Status, r.CredKind)
		}
	}

	// status: the credential key names the collection, and the host entry
	// its virtual directory.
	cmd := exec.Command(bin, "status", "--json", "--metrics-listen", sc.Metrics)
	cmd.Env = scBaseEnv()
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("status --json: %v", err)
	}
	var st struct {
		Hosts  []string `json:"hosts"`
		Tokens []struct {
			Host string `json:"host"`
			Org  string `json:"org"`
		} `json:"tokens"`
	}
	if err := json.Unmarshal(out, &st); err != nil {
		t.Fatalf("status --json = %s: %v", out, err)
	}
	if len(st.Tokens) == 0 {
		t.Fatalf("status --json = %s; want the credential key of the clones", out)
	}
	for _, k := range st.Tokens {
		if k.Host != vdirHost || k.Org != "coll" {
			t.Errorf("status credential key %s/%s; want %s/coll", k.Host, k.Org, vdirHost)
		}
	}
	if !strings.Contains(string(out), `"`+hostFlag+`"`) {
		t.Errorf("status hosts = %q; want %s", st.Hosts, hostFlag)
	}
	assertNoLeak(t, sc, emu, pat)
}

// commitAndPush commits a new file in dir and pushes it to origin's main.
func commitAndPush(t *testing.T, g *testenv.Git, dir, name string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(name+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	g.Run(t, "-C", dir, "add", name)
	g.Run(t, "-C", dir, "commit", "--quiet", "-m", "add "+name)
	if out, err := g.RunErr("-C", dir, "push", "--quiet", "origin", "HEAD:main"); err != nil {
		t.Fatalf("git push: %v\n%s", err, out)
	}
}

// TestMicrosoftSitesAreNotOrganizations: code.visualstudio.com and the
// other labels Microsoft uses for its own sites are not organizations
// (issue 11, item 4): the helper stays silent, the proxy tunnels them
// blind without a credential, and the vault refuses them; an ordinary
// {org}.visualstudio.com still works in each, so each check can fail.
func TestMicrosoftSitesAreNotOrganizations(t *testing.T) {
	emu := testenv.StartAzDO(t, azdoemu.Config{})
	pat := azdoemu.NewPAT()
	sc := startSidecar(t, []string{"AZDO_PAT=" + pat.Reveal()}, "--upstream-ca-file", emu.CAFile(),
		"--resolve", testenv.ResolveFlag("code.visualstudio.com", emu), "--resolve", testenv.ResolveFlag("contoso.visualstudio.com", emu))

	t.Run("helper silent", func(t *testing.T) {
		helper := testenv.Binary(t, "git-credential-azdo")
		get := func(host string) string {
			cmd := exec.Command(helper, "--socket", sc.Socket, "get")
			cmd.Env = scBaseEnv()
			cmd.Stdin = strings.NewReader("protocol=https\nhost=" + host + "\npath=Web/_git/site\n\n")
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("git-credential-azdo get %s: %v", host, err)
			}
			return string(out)
		}
		for _, h := range []string{"code.visualstudio.com", "marketplace.visualstudio.com", "www.visualstudio.com", "my.visualstudio.com"} {
			if out := get(h); out != "" {
				t.Errorf("helper answered %s with %q; want nothing", h, out)
			}
		}
		if out := get("contoso.visualstudio.com"); !strings.Contains(out, "password="+pat.Reveal()) {
			t.Errorf("helper answered contoso.visualstudio.com with %q; want the PAT", out)
		}
	})

	t.Run("proxy tunnels blind", func(t *testing.T) {
		emuRoots := x509.NewCertPool()
		b, err := os.ReadFile(emu.CAFile())
		if err != nil || !emuRoots.AppendCertsFromPEM(b) {
			t.Fatalf("emulator CA: %v", err)
		}
		sidecarCA, err := os.ReadFile(sc.CAFile)
		if err != nil {
			t.Fatal(err)
		}
		both := emuRoots.Clone()
		both.AppendCertsFromPEM(sidecarCA)
		proxyURL, err := url.Parse(sc.proxyURL(t))
		if err != nil {
			t.Fatal(err)
		}
		client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
			Proxy: http.ProxyURL(proxyURL), TLSClientConfig: &tls.Config{RootCAs: both},
		}}
		issuer := func(host string) string {
			resp, err := client.Get("https://" + host + "/Web/_git/site/info/refs?service=git-upload-pack")
			if err != nil {
				t.Fatalf("GET %s through the proxy: %v", host, err)
			}
			defer resp.Body.Close()
			io.Copy(io.Discard, resp.Body)
			return resp.TLS.PeerCertificates[len(resp.TLS.PeerCertificates)-1].Issuer.CommonName
		}
		before := len(emu.Requests())
		if got := issuer("code.visualstudio.com"); !strings.Contains(got, "azdoemu") {
			t.Errorf("code.visualstudio.com through the proxy: certificate issued by %q; want the emulator's own (a blind tunnel)", got)
		}
		for _, r := range emu.Requests()[before:] {
			if r.CredKind != azdoemu.CredNone {
				t.Errorf("code.visualstudio.com got a %s credential through the proxy; want none", r.CredKind)
			}
		}
		if got := issuer("contoso.visualstudio.com"); !strings.Contains(got, "azdo-sidecar") {
			t.Errorf("contoso.visualstudio.com through the proxy: certificate issued by %q; want the sidecar's CA (intercepted)", got)
		}
	})

	t.Run("vault refuses", func(t *testing.T) {
		w := newVaultWorld(t, entraemu.Config{})
		p := w.start()
		_, envTok := w.envCreate(vaultUser, time.Hour)
		w.connect(vaultUser)
		ask := func(host string) int {
			body, _ := json.Marshal(vaultapi.TokenRequest{Host: host, MinValidSeconds: 300})
			req, _ := http.NewRequest(http.MethodPost, "http://"+p.addr+vaultapi.TokenPath, bytes.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+envTok)
			resp, err := (&http.Client{Timeout: 60 * time.Second}).Do(req)
			if err != nil {
				t.Fatalf("POST /v1/token %s: %v", host, err)
			}
			defer resp.Body.Close()
			io.Copy(io.Discard, resp.Body)
			return resp.StatusCode
		}
		for _, h := range []string{"code.visualstudio.com", "marketplace.visualstudio.com", "vs-ssh.visualstudio.com"} {
			if code := ask(h); code == http.StatusOK {
				t.Errorf("vault answered %s with a token; want a refusal", h)
			}
		}
		if code := ask("contoso.visualstudio.com"); code != http.StatusOK {
			t.Errorf("vault answered contoso.visualstudio.com with %d; want 200 (dev.azure.com's credential)", code)
		}
	})
}
