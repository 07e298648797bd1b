package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/azdo-sidecar/azdo-sidecar/internal/version"
)

func TestRun(t *testing.T) {
	dir := t.TempDir()
	patFile := filepath.Join(dir, "pat")
	if err := os.WriteFile(patFile, []byte("pat-from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	noSock := filepath.Join(dir, "nosock", "sock")
	fileSock := filepath.Join(dir, "filesock", "sock")
	writeConf := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	sockConf := writeConf("sock.yaml", "# azdo-sidecar settings\nlisten: 127.0.0.1:3128\nvault_url: https://runner.example:8443\nsocket: "+fileSock+"\n")
	patConf := writeConf("pat.yaml", "pat_file: '"+patFile+"'\nhost:\n  - tfs.corp.example:8443 # self-hosted\n  - other.example\n")
	listSockConf := writeConf("list.yaml", "socket: [a, b]\n")
	commaConf := writeConf("comma.yaml", "host: \"x.example, tfs.corp.example:8443\"\n")
	const ado = "protocol=https\nhost=dev.azure.com\npath=org/proj/_git/repo\n\n"
	tests := []struct {
		name           string
		args           []string
		env            map[string]string
		in             string
		stdout         string
		stderrContains string
		code           int
	}{
		{name: "pat file flag", args: []string{"--pat-file", patFile, "get"}, in: ado,
			stdout: "username=azdo-sidecar\npassword=pat-from-file\n"},
		{name: "pat file flag with =", args: []string{"--pat-file=" + patFile, "get"}, in: ado,
			stdout: "username=azdo-sidecar\npassword=pat-from-file\n"},
		{name: "AZDO_PAT_FILE", args: []string{"get"}, env: map[string]string{"AZDO_PAT_FILE": patFile}, in: ado,
			stdout: "username=azdo-sidecar\npassword=pat-from-file\n"},
		{name: "AZDO_PAT", args: []string{"get"}, env: map[string]string{"AZDO_PAT": "pat-env"}, in: ado,
			stdout: "username=azdo-sidecar\npassword=pat-env\n"},
		{name: "legacy host", args: []string{"get"}, env: map[string]string{"AZDO_PAT": "pat-env"},
			in: "protocol=https\nhost=org.visualstudio.com\npath=proj/_git/repo\n", stdout: "username=azdo-sidecar\npassword=pat-env\n"},
		{name: "github gets nothing", args: []string{"get"}, env: map[string]string{"AZDO_PAT": "pat-env"},
			in: "protocol=https\nhost=github.com\npath=o/r\n"},
		{name: "lookalike gets nothing", args: []string{"get"}, env: map[string]string{"AZDO_PAT": "pat-env"},
			in: "protocol=https\nhost=dev.azure.com.evil.test\npath=o/p/_git/r\n"},
		{name: "self-hosted via --host", args: []string{"--host", "tfs.corp.example:8443", "get"}, env: map[string]string{"AZDO_PAT": "p"},
			in: "protocol=https\nhost=tfs.corp.example:8443\n", stdout: "username=azdo-sidecar\npassword=p\n"},
		{name: "self-hosted via AZDO_HOST", args: []string{"get"}, env: map[string]string{"AZDO_PAT": "p", "AZDO_HOST": "a.example, tfs.corp.example:8443"},
			in: "protocol=https\nhost=tfs.corp.example:8443\n", stdout: "username=azdo-sidecar\npassword=p\n"},
		{name: "self-hosted unknown", args: []string{"get"}, env: map[string]string{"AZDO_PAT": "p"},
			in: "protocol=https\nhost=tfs.corp.example:8443\n"},
		{name: "store is a no-op", args: []string{"store"}, env: map[string]string{"AZDO_PAT": "p"}, in: ado},
		{name: "erase is a no-op", args: []string{"erase"}, env: map[string]string{"AZDO_PAT": "p"}, in: ado},
		{name: "missing pat file", args: []string{"--pat-file", filepath.Join(dir, "missing"), "get"}, in: ado,
			stdout: "quit=1\n", stderrContains: "read PAT file"},
		{name: "missing pat file, other host", args: []string{"--pat-file", filepath.Join(dir, "missing"), "get"},
			in: "protocol=https\nhost=github.com\n"},
		{name: "no sidecar", args: []string{"--socket", noSock, "get"}, in: ado, code: 1, stderrContains: "azdo-sidecar serve"},
		{name: "no sidecar via AZDO_SOCKET", args: []string{"get"}, env: map[string]string{"AZDO_SOCKET": noSock}, in: ado,
			code: 1, stderrContains: noSock},
		{name: "no sidecar, other host", args: []string{"--socket", noSock, "get"}, in: "protocol=https\nhost=github.com\n"},
		{name: "malformed input", args: []string{"get"}, env: map[string]string{"AZDO_PAT": "p"}, in: "protocol https\n",
			code: 1, stderrContains: "malformed"},
		{name: "both pat sources", args: []string{"--pat-file", patFile, "get"}, env: map[string]string{"AZDO_PAT": "p"}, in: ado,
			code: 2, stderrContains: "one of them"},
		{name: "unknown flag", args: []string{"--frob", "get"}, in: ado, code: 2, stderrContains: "unknown flag"},
		{name: "no action", args: []string{}, in: ado, code: 2, stderrContains: "missing action"},
		{name: "flag without value", args: []string{"get", "--socket"}, in: ado, code: 2, stderrContains: "needs a value"},
		{name: "bad host", args: []string{"--host", "http://x:8080/y", "get"}, in: ado, code: 2, stderrContains: "--host"},
		{name: "socket from --config", args: []string{"--config", sockConf, "get"}, in: ado, code: 1, stderrContains: fileSock},
		{name: "socket from AZDO_CONFIG", args: []string{"get"}, env: map[string]string{"AZDO_CONFIG": sockConf}, in: ado, code: 1, stderrContains: fileSock},
		{name: "--socket beats the file", args: []string{"--config", sockConf, "--socket", noSock, "get"}, in: ado, code: 1, stderrContains: noSock},
		{name: "AZDO_SOCKET beats the file", args: []string{"--config", sockConf, "get"}, env: map[string]string{"AZDO_SOCKET": noSock}, in: ado, code: 1, stderrContains: noSock},
		{name: "pat-file and hosts from the file", args: []string{"--config=" + patConf, "get"}, in: "protocol=https\nhost=tfs.corp.example:8443\n",
			stdout: "username=azdo-sidecar\npassword=pat-from-file\n"},
		{name: "AZDO_HOST beats the file", args: []string{"--config", patConf, "get"}, env: map[string]string{"AZDO_HOST": "x.example"},
			in: "protocol=https\nhost=tfs.corp.example:8443\n"},
		{name: "comma-separated hosts in the file", args: []string{"--config", commaConf, "get"}, env: map[string]string{"AZDO_PAT": "p"},
			in: "protocol=https\nhost=tfs.corp.example:8443\n", stdout: "username=azdo-sidecar\npassword=p\n"},
		{name: "missing config file", args: []string{"--config", filepath.Join(dir, "none.yaml"), "get"}, in: ado, code: 1, stderrContains: "does not exist"},
		{name: "list for a single value", args: []string{"--config", listSockConf, "get"}, in: ado, code: 1, stderrContains: "socket: a single value"},
		{name: "version", args: []string{"--version"}, stdout: "git-credential-azdo version " + version.Get().String() + "\n"},
		{name: "unknown action", args: []string{"frob"}, env: map[string]string{"AZDO_PAT": "p"}, in: ado},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			getenv := func(k string) (string, bool) { v, ok := tt.env[k]; return v, ok }
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), tt.args, getenv, strings.NewReader(tt.in), &stdout, &stderr)
			if code != tt.code {
				t.Errorf("run(%q) exit = %d; want %d (stderr %q)", tt.args, code, tt.code, stderr.String())
			}
			if stdout.String() != tt.stdout {
				t.Errorf("run(%q) stdout = %q; want %q", tt.args, stdout.String(), tt.stdout)
			}
			if tt.stderrContains == "" && stderr.Len() != 0 {
				t.Errorf("run(%q) stderr = %q; want none", tt.args, stderr.String())
			}
			if tt.stderrContains != "" {
				if !strings.Contains(stderr.String(), tt.stderrContains) || strings.Count(stderr.String(), "\n") != 1 {
					t.Errorf("run(%q) stderr = %q; want one line containing %q", tt.args, stderr.String(), tt.stderrContains)
				}
			}
			for _, s := range []string{"pat-from-file", "pat-env"} {
				if strings.Contains(stderr.String(), s) {
					t.Errorf("stderr %q contains the PAT", stderr.String())
				}
			}
		})
	}
}
