package e2e

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/azdo-sidecar/azdo-sidecar/e2e/testenv"
)

// jgitJar is Debian's JGit library (libjgit-java, which jgit-cli depends
// on; its manifest brings JGit's own dependencies).
const jgitJar = "/usr/share/java/org.eclipse.jgit.jar"

// needJGit skips without Debian's JGit, java and keytool, except under CI,
// whose .ci/run installs jgit-cli.
func needJGit(t *testing.T) {
	t.Helper()
	_, err := os.Stat(jgitJar)
	for _, tool := range []string{"java", "keytool", "jgit"} {
		if err == nil {
			_, err = exec.LookPath(tool)
		}
	}
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("JGit: %v (.ci/run installs jgit-cli)", err)
		}
		t.Skipf("JGit: %v", err)
	}
}

// javaTrustStore puts the sidecar's CA in a PKCS12 truststore with keytool,
// as the README tells Java users to.
func javaTrustStore(t *testing.T, caFile string) string {
	t.Helper()
	store := filepath.Join(t.TempDir(), "ts.p12")
	out, err := exec.Command("keytool", "-importcert", "-noprompt", "-alias", "azdo-sidecar",
		"-file", caFile, "-keystore", store, "-storetype", "PKCS12", "-storepass", "changeit").CombinedOutput()
	if err != nil {
		t.Fatalf("keytool -importcert: %v\n%s", err, out)
	}
	return store
}

// clientCommand is w.git.Command bounded by testenv.RunTimeout: a client
// stalled on a prompt or a transfer fails its test instead of the package.
func clientCommand(t *testing.T, w *proxyWorld, name string, args ...string) *exec.Cmd {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testenv.RunTimeout)
	t.Cleanup(cancel)
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = w.git.Env()
	cmd.Dir = w.git.Dir
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// TestClientJGitCloneAndPush: JGit (Debian's libjgit-java, JDK
// HttpURLConnection) clones and pushes through the sidecar with the proxy
// in https.proxyHost/https.proxyPort, the proxy credential from an
// Authenticator (Basic re-enabled for tunnels), and the CA in a PKCS12
// truststore: every request reaches Azure DevOps with the sidecar's PAT.
func TestClientJGitCloneAndPush(t *testing.T) {
	needJGit(t)
	w := newProxyWorld(t)
	store := javaTrustStore(t, w.sc.CAFile)
	src, err := filepath.Abs(filepath.Join("clients", "jgit", "CloneAndPush.java"))
	if err != nil {
		t.Fatal(err)
	}
	host, port, err := net.SplitHostPort(w.sc.Proxy)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "site")
	stdout, out, err := runClientScript(clientCommand(t, w, "java", "-cp", jgitJar,
		"-Dhttps.proxyHost="+host, "-Dhttps.proxyPort="+port,
		"-Djdk.http.auth.tunneling.disabledSchemes=",
		"-Djavax.net.ssl.trustStore="+store, "-Djavax.net.ssl.trustStorePassword=changeit",
		// JGit reads ~/.gitconfig from user.home, which Java takes from
		// the passwd entry, not $HOME.
		"-Duser.home="+w.git.Home,
		src, w.sc.ProxyURLFile, repoURL, dir))
	if err != nil {
		t.Fatalf("JGit through the sidecar: %v\n%s\nsidecar:\n%s", err, out, w.sc.stderr)
	}
	checkCloneAndPush(t, w, "JGit", stdout, out)
}

// jgitCLIClasspath is what Debian 12's jgit-cli 4.11 misses: without the
// LFS and Apache HttpClient jars /usr/bin/jgit fails at start
// (NoClassDefFoundError: org/eclipse/jgit/lfs/BuiltinLFS).
const jgitCLIClasspath = "/usr/share/java/org.eclipse.jgit.lfs.jar:/usr/share/java/org.eclipse.jgit.http.apache.jar:/usr/share/java/httpclient.jar"

// TestClientJGitCommandLine: the jgit command line (Debian's jgit-cli)
// takes its JVM options from JDK_JAVA_OPTIONS (/usr/bin/jgit passes none
// of its own) but replaces JGit's HttpURLConnection with Apache HttpClient
// and gives it no proxy credential, whether https_proxy carries one or
// not: against the sidecar's default it gets 407, and only a sidecar run
// with --insecure-no-proxy-auth (the uid check alone) serves it.
func TestClientJGitCommandLine(t *testing.T) {
	needJGit(t)
	run := func(t *testing.T, w *proxyWorld) (string, error) {
		store := javaTrustStore(t, w.sc.CAFile)
		cmd := clientCommand(t, w, "jgit", "ls-remote", repoURL)
		cmd.Env = append(cmd.Env, "JGIT_CLASSPATH="+jgitCLIClasspath,
			// jgit turns https_proxy into https.proxyHost/Port and an
			// Authenticator holding its credential, which Apache
			// HttpClient never asks.
			"https_proxy="+w.sc.proxyURL(t),
			"JDK_JAVA_OPTIONS="+strings.Join([]string{
				"-Djavax.net.ssl.trustStore=" + store, "-Djavax.net.ssl.trustStorePassword=changeit",
				"-Djdk.http.auth.tunneling.disabledSchemes=", "-Duser.home=" + w.git.Home}, " "))
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	t.Run("407 even with https_proxy's credential", func(t *testing.T) {
		w := newProxyWorld(t)
		out, err := run(t, w)
		if err == nil || !strings.Contains(out, "407 Proxy Authentication Required") {
			t.Errorf("jgit ls-remote through the sidecar = %v; want 407\n%s", err, out)
		}
		if n := len(w.emu.Requests()); n != 0 {
			t.Errorf("%d requests reached the emulator; want none", n)
		}
		// Refused for a missing credential, not a wrong one: the sidecar's
		// debug line for each refusal says whether one was sent.
		var refusals int
		for _, l := range strings.Split(w.sc.stderr.String(), "\n") {
			if !strings.Contains(l, "request without the proxy credential") {
				continue
			}
			refusals++
			if !strings.Contains(l, "sent=false") {
				t.Errorf("jgit was refused for a credential it sent, not for a missing one: %s", l)
			}
		}
		if refusals == 0 {
			t.Errorf("no refusal for a missing proxy credential in the sidecar's log:\n%s", w.sc.stderr)
		}
	})
	t.Run("--insecure-no-proxy-auth", func(t *testing.T) {
		w := newProxyWorld(t, "--insecure-no-proxy-auth")
		out, err := run(t, w)
		if err != nil || !strings.Contains(out, w.seed.Head+"\trefs/heads/main") {
			t.Errorf("jgit ls-remote through the sidecar = %v; want main at %s\n%s", err, w.seed.Head, out)
		}
	})
}
