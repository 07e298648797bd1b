package proxy

import (
	"context"
	"crypto/tls"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// jsseProbe handshakes, as Java clients do (the default PKIX
// TrustManagerFactory, HTTPS endpoint identification), with each
// name=port argument on 127.0.0.1 under that name, trusting only the CA
// file argv[0]; it prints "name ok" or "name refused: why" per argument.
const jsseProbe = `
import java.io.FileInputStream;
import java.net.Socket;
import java.security.KeyStore;
import java.security.cert.CertificateFactory;
import javax.net.ssl.*;

public class JSSEProbe {
	public static void main(String[] args) throws Exception {
		KeyStore ks = KeyStore.getInstance("PKCS12");
		ks.load(null, null);
		try (FileInputStream in = new FileInputStream(args[0])) {
			ks.setCertificateEntry("azdo-sidecar", CertificateFactory.getInstance("X.509").generateCertificate(in));
		}
		TrustManagerFactory tmf = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
		tmf.init(ks);
		SSLContext ctx = SSLContext.getInstance("TLS");
		ctx.init(null, tmf.getTrustManagers(), null);
		for (int i = 1; i < args.length; i++) {
			String[] hp = args[i].split("=");
			try (Socket raw = new Socket("127.0.0.1", Integer.parseInt(hp[1]));
					SSLSocket s = (SSLSocket) ctx.getSocketFactory().createSocket(raw, hp[0], Integer.parseInt(hp[1]), true)) {
				SSLParameters p = s.getSSLParameters();
				p.setEndpointIdentificationAlgorithm("HTTPS");
				s.setSSLParameters(p);
				s.startHandshake();
				System.out.println(hp[0] + " ok");
			} catch (Exception e) {
				System.out.println(hp[0] + " refused: " + e);
			}
		}
	}
}
`

// TestCANameConstraintsJSSE backs the README's warning: JSSE (JGit and
// every Java client) does not enforce the CA's name constraints, so a leaf
// the CA signs for a name outside them is accepted, while hostname
// verification itself is on (a dev.azure.com leaf presented for another
// name is refused). Should a JDK start enforcing them, this fails: update
// the README's security model then.
func TestCANameConstraintsJSSE(t *testing.T) {
	if _, err := exec.LookPath("java"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("java: %v (.ci/run installs a Java runtime)", err)
		}
		t.Skipf("java: %v", err)
	}
	ca, err := NewCA(nil, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	caFile := filepath.Join(dir, "ca.pem")
	writePEM(t, caFile, ca.cert.Raw)
	src := filepath.Join(dir, "JSSEProbe.java")
	if err := os.WriteFile(src, []byte(jsseProbe), 0o600); err != nil {
		t.Fatal(err)
	}
	serve := func(host string) string {
		srv := httptest.NewUnstartedServer(http.NotFoundHandler())
		srv.TLS = &tls.Config{Certificates: []tls.Certificate{signUnchecked(t, ca, host)}}
		srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake
		srv.StartTLS()
		t.Cleanup(srv.Close)
		return portOf(t, srv)
	}
	azure, outside := serve("dev.azure.com"), serve("evil.example.test")
	// A JVM compiling the probe takes seconds; a hung handshake or JVM must
	// fail the test, not hold the package until go test's own timeout.
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "java", src, caFile,
		"dev.azure.com="+azure, "evil.example.test="+outside, "other.example.test="+azure)
	cmd.WaitDelay = 10 * time.Second // a child holding the output pipe open
	// The machine's JVM options (a truststore, a debug agent) must not
	// change what the probe checks.
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); k != "JAVA_TOOL_OPTIONS" && k != "JDK_JAVA_OPTIONS" && k != "_JAVA_OPTIONS" {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("java JSSEProbe: %v\n%s", err, out)
	}
	got := string(out)
	t.Logf("JSSE:\n%s", got)
	if !strings.Contains(got, "dev.azure.com ok") {
		t.Errorf("JSSE refused the CA's own dev.azure.com leaf; the probe does not trust the CA")
	}
	if !strings.Contains(got, "other.example.test refused: ") {
		t.Errorf("JSSE accepted a dev.azure.com leaf as other.example.test; the probe does not verify hostnames")
	}
	if !strings.Contains(got, "evil.example.test ok") {
		t.Errorf("JSSE refused a leaf outside the CA's name constraints: it enforces them now, and the README says it does not")
	}
}
