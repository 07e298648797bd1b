package main

import (
	"bytes"
	"flag"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/azdo-sidecar/azdo-sidecar/config"
	"github.com/azdo-sidecar/azdo-sidecar/internal/cliapp"
)

var update = flag.Bool("update", false, "rewrite the README's generated reference")

// readmeSection is the marker pair around this binary's generated
// configuration reference in the README.
const readmeSection = "azdo-sidecar reference"

// TestReadmeReference keeps the README's configuration reference equal to
// the flag definitions. After changing a flag, regenerate with
//
//	go test ./cmd/azdo-sidecar -run TestReadmeReference -update
func TestReadmeReference(t *testing.T) {
	e := cliapp.NewEnv(strings.NewReader(""), &bytes.Buffer{}, &bytes.Buffer{})
	checkReadme(t, "../../README.md", readmeSection, config.Reference(newApp(e)), *update,
		"go test ./cmd/azdo-sidecar -run TestReadmeReference -update")
}

// checkReadme compares the text between the section's markers in the README
// with want, or rewrites it when update is set.
func checkReadme(t *testing.T, path, section, want string, update bool, regenerate string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	begin, end := "<!-- BEGIN GENERATED: "+section+" -->\n", "<!-- END GENERATED: "+section+" -->"
	readme := string(data)
	i, j := strings.Index(readme, begin), strings.Index(readme, end)
	if i < 0 || j < i {
		t.Fatalf("%s has no %q … %q section", path, strings.TrimSpace(begin), end)
	}
	got := readme[i+len(begin) : j]
	if got == want {
		return
	}
	if update {
		if err := os.WriteFile(path, []byte(readme[:i+len(begin)]+want+readme[j:]), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("%s: the %s section differs from the flag definitions; regenerate with\n\t%s\n%s", path, section, regenerate, firstDiff(got, want))
}

// firstDiff shows the first line where got and want differ.
func firstDiff(got, want string) string {
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	for k := 0; k < len(g) || k < len(w); k++ {
		var gl, wl string
		if k < len(g) {
			gl = g[k]
		}
		if k < len(w) {
			wl = w[k]
		}
		if gl != wl {
			return "first difference, line " + strconv.Itoa(k+1) + ":\n\tREADME: " + gl + "\n\tflags:  " + wl
		}
	}
	return ""
}
