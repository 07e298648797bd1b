package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
)

func TestCredentialCommand(t *testing.T) {
	noSock := filepath.Join(t.TempDir(), "sock")
	const ado = "protocol=https\nhost=dev.azure.com\npath=org/proj/_git/repo\n\n"
	tests := []struct {
		name           string
		pat            string
		args           []string
		in             string
		stdout         string
		stderrContains string
		code           int
	}{
		{name: "standalone", pat: "pat-1", args: []string{"credential", "get"}, in: ado, stdout: "username=azdo-sidecar\npassword=pat-1\n"},
		{name: "other host", pat: "pat-1", args: []string{"credential", "get"}, in: "protocol=https\nhost=github.com\n"},
		{name: "store no-op", pat: "pat-1", args: []string{"credential", "store"}, in: ado},
		{name: "self-hosted", pat: "pat-1", args: []string{"credential", "--host", "tfs.example:8443", "get"},
			in: "protocol=https\nhost=tfs.example:8443\n", stdout: "username=azdo-sidecar\npassword=pat-1\n"},
		{name: "no sidecar", args: []string{"credential", "--socket", noSock, "get"}, in: ado, code: 1, stderrContains: "azdo-sidecar serve"},
		{name: "flags after the operation", args: []string{"credential", "get", "--socket", noSock}, in: ado, code: 1, stderrContains: noSock},
		{name: "self-hosted after the operation", pat: "pat-1", args: []string{"credential", "get", "--host", "tfs.example:8443"},
			in: "protocol=https\nhost=tfs.example:8443\n", stdout: "username=azdo-sidecar\npassword=pat-1\n"},
		{name: "malformed", pat: "pat-1", args: []string{"credential", "get"}, in: "junk\n", code: 1, stderrContains: "malformed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("AZDO_PAT", tt.pat)
			if tt.pat == "" {
				t.Setenv("AZDO_PAT", "")
			}
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), append([]string{"azdo-sidecar"}, tt.args...), strings.NewReader(tt.in), &stdout, &stderr)
			if code != tt.code {
				t.Errorf("run(%q) exit = %d; want %d (stderr %q)", tt.args, code, tt.code, stderr.String())
			}
			if stdout.String() != tt.stdout {
				t.Errorf("run(%q) stdout = %q; want %q", tt.args, stdout.String(), tt.stdout)
			}
			if tt.stderrContains == "" && stderr.Len() != 0 {
				t.Errorf("run(%q) stderr = %q; want none", tt.args, stderr.String())
			}
			if tt.stderrContains != "" && (!strings.Contains(stderr.String(), tt.stderrContains) || strings.Count(stderr.String(), "\n") != 1) {
				t.Errorf("run(%q) stderr = %q; want one line containing %q", tt.args, stderr.String(), tt.stderrContains)
			}
		})
	}
}
