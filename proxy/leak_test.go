package proxy

import (
	"bytes"
	"encoding/base64"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/common/expfmt"

	"github.com/azdo-sidecar/azdo-sidecar/token"
)

// TestNoSecretInLogsOrMetrics drives every path (success, 401 retry, error
// answers, tunnels, refused requests) with debug logging on, then looks for
// the PAT, in clear and in its Basic encoding, in the logs and /metrics.
func TestNoSecretInLogsOrMetrics(t *testing.T) {
	up := newUpstreamCA(t)
	calls := 0
	rec := &recorder{h: func(w http.ResponseWriter, r *http.Request) {
		calls++
		if calls == 2 || calls == 3 {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		w.Write([]byte("ok"))
	}}
	srv := up.startUpstream(t, rec, "dev.azure.com", "other.example")
	h := startProxy(t, up, harnessOpts{resolve: []string{
		"dev.azure.com:443:127.0.0.1:" + portOf(t, srv),
		"other.example:443:127.0.0.1:" + portOf(t, srv),
	}})
	c := h.client(h.both(up))
	for _, u := range []string{
		"https://dev.azure.com/contoso/p/_git/r/info/refs",
		"https://dev.azure.com/contoso/p/_git/r/info/refs",
		"https://dev.azure.com/contoso/p/_git/r/info/refs",
		"https://other.example/x",
		"http://dev.azure.com/contoso",
	} {
		resp, err := c.Get(u)
		if err != nil {
			t.Fatalf("GET %s: %v", u, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.Contains(string(b), testPAT) {
			t.Errorf("response to %s contains the PAT", u)
		}
	}
	mfs, err := h.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var metrics bytes.Buffer
	for _, mf := range mfs {
		expfmt.MetricFamilyToText(&metrics, mf)
	}
	if !strings.Contains(metrics.String(), "azdo_sidecar_proxy_injections_total") {
		t.Fatalf("metrics lack injections_total:\n%s", metrics.String())
	}
	logs := h.logs.String()
	if !strings.Contains(logs, "rejected the credential") {
		t.Fatalf("logs lack the rejection line (the paths were not exercised):\n%s", logs)
	}
	basic := base64.StdEncoding.EncodeToString([]byte(token.DefaultUsername + ":" + testPAT))
	for _, secretForm := range []string{testPAT, basic} {
		if strings.Contains(logs, secretForm) {
			t.Errorf("logs contain the secret %q:\n%s", secretForm, logs)
		}
		if strings.Contains(metrics.String(), secretForm) {
			t.Errorf("metrics contain the secret %q", secretForm)
		}
	}
	if strings.Contains(metrics.String(), "contoso") || strings.Contains(metrics.String(), "/_git/") {
		t.Errorf("metrics carry an org or path in a label")
	}
}
