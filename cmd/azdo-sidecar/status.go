package main

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/azdo-sidecar/azdo-sidecar/config"
	"github.com/azdo-sidecar/azdo-sidecar/credential"
	"github.com/azdo-sidecar/azdo-sidecar/gitsetup"
	"github.com/azdo-sidecar/azdo-sidecar/internal/cliapp"
	"github.com/azdo-sidecar/azdo-sidecar/sidecar"
)

// statusCommand is `azdo-sidecar status`: what the running sidecar serves,
// never a secret. It asks the sidecar through its socket (--socket), or its
// metrics listener for /status when --metrics-listen is given or nothing
// answers on the socket, and checks this shell's GIT_SSL_CAINFO against the
// sidecar's CA.
func statusCommand(e *cliapp.Env) *cli.Command {
	return &cli.Command{
		Name:  "status",
		Usage: "show what the running sidecar serves (hosts, token kind, expiry, counters)",
		Flags: []cli.Flag{config.SocketFlag(), config.StateDirFlag(), config.MetricsListenFlag(),
			&cli.BoolFlag{Name: "json", Usage: "print the status as JSON"}},
		Action: func(c *cli.Context) error {
			st, err := loadStatus(c)
			if err != nil {
				return err
			}
			ca := checkGitCAInfo(os.Getenv("GIT_SSL_CAINFO"), st.Ready.CAFile, gitCAPath())
			if c.Bool("json") {
				enc := json.NewEncoder(e.Stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(struct {
					sidecar.Status
					GitSSLCAInfo caInfoCheck `json:"git_ssl_cainfo"`
					CAFileCheck  string      `json:"ca_file_check,omitempty"`
				}{st, ca, checkCAFile(st)})
			}
			printStatus(e.Stdout, st, ca, time.Now())
			return nil
		},
	}
}

// statusTimeout bounds each way of asking the sidecar.
const statusTimeout = 5 * time.Second

// loadStatus asks the running sidecar for its status: over HTTP when
// --metrics-listen is set (flag, environment or file) to a real port, else
// through the socket, falling back to the default metrics address when no
// sidecar listens there.
func loadStatus(c *cli.Context) (sidecar.Status, error) {
	addr := c.String(config.FlagMetricsListen)
	if c.IsSet(config.FlagMetricsListen) && !portZero(addr) {
		return fetchStatus(c.Context, addr)
	}
	sock := config.SocketPath(c)
	st, err := socketStatus(c.Context, sock)
	if err == nil || !errors.Is(err, credential.ErrNoServer) {
		return st, err
	}
	if portZero(addr) {
		addr = config.DefaultMetricsListen
	}
	st, herr := fetchStatus(c.Context, addr)
	if herr != nil {
		return st, fmt.Errorf("status: no sidecar answers on %s nor on %s (is `azdo-sidecar serve` running? pass its --socket or --metrics-listen)", sock, addr)
	}
	return st, nil
}

// socketStatus asks the sidecar's socket (credential.ActionStatus).
func socketStatus(ctx context.Context, sock string) (sidecar.Status, error) {
	var st sidecar.Status
	b, err := (&credential.Client{Socket: sock, Timeout: statusTimeout}).Status(ctx)
	if err != nil {
		return st, fmt.Errorf("status: %w", err)
	}
	if len(b) == 0 {
		return st, fmt.Errorf("status: %s answered nothing; is it an older azdo-sidecar? pass its --metrics-listen", sock)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("status: bad answer from %s: %w", sock, err)
	}
	return st, nil
}

func fetchStatus(ctx context.Context, addr string) (sidecar.Status, error) {
	var st sidecar.Status
	ctx, cancel := context.WithTimeout(ctx, statusTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+sidecar.StatusPath, nil)
	if err != nil {
		return st, fmt.Errorf("status: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return st, fmt.Errorf("status: no sidecar answers on %s (is `azdo-sidecar serve` running? pass its --metrics-listen): %w", addr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("status: %s answered %s", addr, resp.Status)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&st); err != nil {
		return st, fmt.Errorf("status: bad answer from %s: %w", addr, err)
	}
	return st, nil
}

// caInfoCheck says whether GIT_SSL_CAINFO, which overrides every
// http.<url>.sslCAInfo, lets git trust the sidecar's CA.
type caInfoCheck struct {
	Set      bool   `json:"set"`
	Path     string `json:"path,omitempty"`
	HasCA    bool   `json:"contains_sidecar_ca"`
	Readable bool   `json:"readable"`
	// CAPath is git's http.sslCAPath for https://dev.azure.com/ when it is
	// the sidecar's trust directory (setup writes it beside sslCAInfo for
	// exactly this case); git uses it in addition to GIT_SSL_CAINFO.
	CAPath    string `json:"git_sslcapath,omitempty"`
	Diagnosis string `json:"diagnosis"`
}

// gitCAPath returns git's effective http.sslCAPath for Azure DevOps, or ""
// (no git, or not set).
func gitCAPath() string {
	out, err := exec.Command("git", "config", "--get-urlmatch", "http.sslCAPath", "https://dev.azure.com/").Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

func checkGitCAInfo(path, caFile, gitCAPath string) caInfoCheck {
	if path == "" {
		return caInfoCheck{Diagnosis: "not set: git uses http.<url>.sslCAInfo as written by `azdo-sidecar setup`"}
	}
	ch := caInfoCheck{Set: true, Path: path}
	bundle, err := os.ReadFile(path)
	if err != nil {
		ch.Diagnosis = "set but unreadable; git will fail TLS to every host: " + err.Error()
		return ch
	}
	ch.Readable = true
	ca, err := os.ReadFile(caFile)
	if err == nil {
		ch.HasCA = containsCert(bundle, ca)
	}
	trust := filepath.Join(filepath.Dir(caFile), gitsetup.TrustDir)
	switch {
	case ch.HasCA:
		ch.Diagnosis = "set and contains the sidecar CA: git trusts the proxy"
	case gitCAPath != "" && filepath.Clean(gitCAPath) == trust && os.Getenv("GIT_SSL_CAPATH") == "":
		ch.CAPath = gitCAPath
		ch.Diagnosis = "set without the sidecar CA, but `azdo-sidecar setup` added http.<url>.sslCAPath=" + gitCAPath + ", which git uses too (GnuTLS builds: Debian, Ubuntu); if git still rejects the proxy's certificate, unset GIT_SSL_CAINFO or use setup --mode helper"
	default:
		ch.Diagnosis = "set and does NOT contain the sidecar CA: it overrides http.<url>.sslCAInfo, so git rejects the proxy's certificate; run `azdo-sidecar setup` (it handles GIT_SSL_CAINFO) or append " + caFile + " to " + path
	}
	return ch
}

// checkCAFile returns "" when ca.pem on disk is the running sidecar's CA
// (or the sidecar does not say which it is), else what is wrong and what
// to do: another sidecar started on the same --state-dir may have
// replaced it, and git then rejects this sidecar's certificates.
func checkCAFile(st sidecar.Status) string {
	if st.CASHA256 == "" || st.Ready.CAFile == "" {
		return ""
	}
	b, err := os.ReadFile(st.Ready.CAFile)
	if err != nil {
		return "MISMATCH: cannot read " + st.Ready.CAFile + " (" + err.Error() + "); git cannot trust the proxy: restart azdo-sidecar serve"
	}
	if blk, _ := pem.Decode(b); blk != nil && blk.Type == "CERTIFICATE" && sidecar.CertSHA256(blk.Bytes) == st.CASHA256 {
		return ""
	}
	return "MISMATCH: " + st.Ready.CAFile + " is not this sidecar's CA (another sidecar on the same --state-dir wrote it?): git rejects this proxy's certificates; stop the other sidecar and restart this one, or give each its own --state-dir"
}

// containsCert reports whether the PEM bundle holds the first certificate
// of the PEM cert.
func containsCert(bundle, cert []byte) bool {
	want, _ := pem.Decode(cert)
	if want == nil {
		return false
	}
	for {
		var b *pem.Block
		b, bundle = pem.Decode(bundle)
		if b == nil {
			return false
		}
		if b.Type == "CERTIFICATE" && bytes.Equal(b.Bytes, want.Bytes) {
			return true
		}
	}
}

func printStatus(w io.Writer, st sidecar.Status, ca caInfoCheck, now time.Time) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "mode:\t%s\n", st.Mode)
	if st.Mode == "none" {
		fmt.Fprintf(tw, "token source:\tnone: pass --vault-url with --env-token-file (or set AZDO_VAULT_URL and AZDO_ENV_TOKEN_FILE), or --pat-file (or AZDO_PAT), to azdo-sidecar serve\n")
	}
	if st.Vault != "" {
		fmt.Fprintf(tw, "vault:\t%s\n", st.Vault)
	}
	if st.ProxyOnly != "" {
		fmt.Fprintf(tw, "proxy-only:\tyes (%s): git gets no token from the credential helper; it must use the proxy\n", st.ProxyOnly)
	}
	fmt.Fprintf(tw, "proxy:\t%s\n", st.Ready.Proxy)
	fmt.Fprintf(tw, "socket:\t%s\n", st.Ready.Socket)
	fmt.Fprintf(tw, "ca file:\t%s\n", st.Ready.CAFile)
	if d := checkCAFile(st); d != "" {
		fmt.Fprintf(tw, "ca file check:\t%s\n", d)
	}
	if st.Ready.ProxyURLFile != "" {
		fmt.Fprintf(tw, "proxy url file:\t%s (the proxy URL with its credential, for clients other than git)\n", st.Ready.ProxyURLFile)
	}
	fmt.Fprintf(tw, "metrics:\t%s\n", st.Ready.Metrics)
	fmt.Fprintf(tw, "hosts:\t%v\n", st.Hosts)
	fmt.Fprintf(tw, "up since:\t%s\n", st.StartedAt.Format(time.RFC3339))
	fmt.Fprintf(tw, "refresh margin:\t%s\n", st.RefreshMargin)
	fmt.Fprintf(tw, "requests:\tazdo %d, other %d, refused %d; %d credentials injected, %d auth retries\n",
		st.Proxy.Requests.Azdo, st.Proxy.Requests.Other, st.Proxy.Requests.Refused, st.Proxy.Injections, st.Proxy.AuthRetries)
	fmt.Fprintf(tw, "token source:\t%d fetches, %d errors, %d cache hits\n", st.Cache.Fetches, st.Cache.Errors, st.Cache.Hits)
	fmt.Fprintf(tw, "GIT_SSL_CAINFO:\t%s\n", ca.Diagnosis)
	tw.Flush()
	if len(st.Tokens) == 0 {
		fmt.Fprintln(w, "tokens: none fetched yet")
		return
	}
	fmt.Fprintln(w, "tokens:")
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  HOST\tORG\tKIND\tEXPIRES\tLAST ERROR")
	for _, t := range st.Tokens {
		exp := "-"
		if !t.ExpiresAt.IsZero() {
			exp = t.ExpiresAt.UTC().Format(time.RFC3339) + " (in " + t.ExpiresAt.Sub(now).Round(time.Second).String() + ")"
		}
		kind := string(t.Kind)
		if kind == "" {
			kind = "-"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", t.Host, orDash(t.Org), kind, exp, orDash(t.LastError))
	}
	tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
