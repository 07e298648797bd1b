package main

import (
	"io"
	"os/exec"
	"strings"
	"testing"
)

func TestShellQuote(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"plain path", "/tmp/azdo-demo-1/gitconfig", "/tmp/azdo-demo-1/gitconfig"},
		{"space", "/tmp/my dir/gitconfig", "'/tmp/my dir/gitconfig'"},
		{"quote", "/tmp/it's/gitconfig", `'/tmp/it'\''s/gitconfig'`},
		{"dollar", "/tmp/$HOME", "'/tmp/$HOME'"},
		{"empty", "", "''"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := shellQuote(tt.in); got != tt.want {
				t.Errorf("shellQuote(%q) = %q; want %q", tt.in, got, tt.want)
			}
			// The shell gives back the original string.
			out, err := exec.Command("sh", "-c", "printf %s "+shellQuote(tt.in)).Output()
			if err != nil || string(out) != tt.in {
				t.Errorf("sh printf %s = %q, %v; want %q", shellQuote(tt.in), out, err, tt.in)
			}
		})
	}
}

func TestParseFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		want    options
		wantErr bool
	}{
		{"none", nil, options{}, false},
		{"auto-connect", []string{"--auto-connect"}, options{autoConnect: true}, false},
		{"bin-dir and verbose", []string{"--bin-dir", "/opt/bin", "-v"}, options{binDir: "/opt/bin", verbose: true}, false},
		{"stray argument", []string{"extra"}, options{}, true},
		{"unknown flag", []string{"--nope"}, options{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseFlags(tt.args, io.Discard)
			if (err != nil) != tt.wantErr || (err == nil && got != tt.want) {
				t.Errorf("parseFlags(%q) = %+v, %v; want %+v (error %v)", tt.args, got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestPrintInstructions(t *testing.T) {
	in := instructions{
		Link: "http://127.0.0.1:1/connect?link=x", CAFile: "/tmp/d/emulators-ca.pem", User: demoUPN,
		Command: cloneCommand("/tmp/d/gitconfig"), Dir: "/tmp/d",
	}
	tests := []struct {
		name      string
		auto      bool
		want, not []string
	}{
		{"browser", false,
			[]string{"   " + in.Link + "\n", in.CAFile, "self-signed", CommandPrefix + in.Command + "\n", "fails at once", "Ctrl-C", "removes /tmp/d"},
			[]string{"--auto-connect"}},
		{"auto-connect", true,
			[]string{"Connected to Azure DevOps as " + demoUPN, CommandPrefix + in.Command + "\n"},
			[]string{in.Link, "fails at once"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := in
			in.AutoConnect = tt.auto
			var b strings.Builder
			printInstructions(&b, in)
			for _, s := range tt.want {
				if !strings.Contains(b.String(), s) {
					t.Errorf("instructions lack %q:\n%s", s, b.String())
				}
			}
			for _, s := range tt.not {
				if strings.Contains(b.String(), s) {
					t.Errorf("instructions contain %q:\n%s", s, b.String())
				}
			}
		})
	}
	if want := "GIT_CONFIG_GLOBAL=/tmp/d/gitconfig GIT_CONFIG_NOSYSTEM=1 git clone https://dev.azure.com/demo/demo/_git/hello"; in.Command != want {
		t.Errorf("cloneCommand = %q; want %q", in.Command, want)
	}
}
