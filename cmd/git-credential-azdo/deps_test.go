package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImportsStayLight: the helper's start-up is on git's critical path, so
// it links only the protocol, the URL model, token, secret and the standard
// library — no HTTP stack, no CLI framework, no third-party module.
func TestImportsStayLight(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Skipf("go list: %v", err)
	}
	allowed := map[string]bool{
		"github.com/azdo-sidecar/azdo-sidecar/credential":              true,
		"github.com/azdo-sidecar/azdo-sidecar/azdo":                    true,
		"github.com/azdo-sidecar/azdo-sidecar/token":                   true,
		"github.com/azdo-sidecar/azdo-sidecar/secret":                  true,
		"github.com/azdo-sidecar/azdo-sidecar/cmd/git-credential-azdo": true,
		"github.com/azdo-sidecar/azdo-sidecar/internal/version":        true, // runtime/debug only
	}
	for _, pkg := range strings.Fields(string(out)) {
		first, _, _ := strings.Cut(pkg, "/")
		if strings.Contains(first, ".") && !allowed[pkg] {
			t.Errorf("git-credential-azdo imports %s; want only credential, azdo, token, secret, internal/version and the standard library", pkg)
		}
		if pkg == "net/http" || pkg == "crypto/tls" {
			t.Errorf("git-credential-azdo imports %s; the helper must not link an HTTP/TLS stack", pkg)
		}
	}
}
