package main

import (
	"bytes"
	"flag"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/azdo-sidecar/azdo-sidecar/config"
	"github.com/azdo-sidecar/azdo-sidecar/internal/cliapp"
	"github.com/azdo-sidecar/azdo-sidecar/internal/version"
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

// TestCIRunsReadmeTestCommand: the test command the README shows is the one
// .ci/run runs.
func TestCIRunsReadmeTestCommand(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	ci, err := os.ReadFile("../../.ci/run")
	if err != nil {
		t.Fatal(err)
	}
	var cmd string
	for _, l := range strings.Split(string(readme), "\n") {
		if strings.HasPrefix(l, "go test ") {
			cmd = l
			break
		}
	}
	if cmd == "" {
		t.Fatal("README.md shows no `go test` command line")
	}
	if !slices.Contains(strings.Split(string(ci), "\n"), cmd) {
		t.Errorf(".ci/run does not run the README's test command %q", cmd)
	}
	if !strings.Contains(string(readme), "./.ci/run") {
		t.Errorf("README.md does not tell to run ./.ci/run")
	}
	if fi, err := os.Stat("../../.ci/run"); err != nil || fi.Mode().Perm()&0o111 == 0 {
		t.Errorf(".ci/run is not executable (%v)", err)
	}
}

// TestDockerfileBuildsExistingThings: the binaries the Dockerfile builds are
// main packages of this module, and its -X flags name the version variables.
func TestDockerfileBuildsExistingThings(t *testing.T) {
	data, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	df := string(data)
	for _, bin := range []string{"azdo-sidecar", "git-credential-azdo", "azdo-vault"} {
		if !strings.Contains(df, "./cmd/"+bin) || !strings.Contains(df, "/out/"+bin) {
			t.Errorf("Dockerfile does not build and copy %s", bin)
		}
		if _, err := os.Stat("../" + bin + "/main.go"); err != nil {
			t.Errorf("Dockerfile builds ./cmd/%s: %v", bin, err)
		}
	}
	_ = version.Version // the -X targets below must keep existing
	_ = version.Commit
	for _, x := range []string{"internal/version.Version=", "internal/version.Commit=", "CGO_ENABLED=0", "-trimpath", "USER nonroot", `ENTRYPOINT ["/usr/local/bin/azdo-sidecar", "serve"]`, "AS vault", `ENTRYPOINT ["/usr/local/bin/azdo-vault", "serve"]`} {
		if !strings.Contains(df, x) {
			t.Errorf("Dockerfile lacks %q", x)
		}
	}
}
