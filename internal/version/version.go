// Package version reports which build of azdo-sidecar is running.
//
// Release builds set Version and Commit with the linker:
//
//	go build -ldflags "-X github.com/azdo-sidecar/azdo-sidecar/internal/version.Version=v1.2.3 \
//	  -X github.com/azdo-sidecar/azdo-sidecar/internal/version.Commit=$(git rev-parse HEAD)"
//
// Without them, the values recorded by the Go toolchain (module version and
// vcs.revision from debug.ReadBuildInfo) are used, so a plain `go build` in a
// Git checkout still reports its commit.
package version

import (
	"runtime/debug"
	"sync"
)

// Set by -ldflags -X; empty means "ask the build info".
var (
	Version string
	Commit  string
)

// Info is the version and commit of this build.
type Info struct {
	Version string // "v1.2.3", or "devel" when unknown
	Commit  string // full or short hash, with "+dirty" when built from a modified tree; "unknown" when not recorded
}

// String returns "v1.2.3 (commit abc123)".
func (i Info) String() string { return i.Version + " (commit " + i.Commit + ")" }

var (
	once sync.Once
	info Info
)

// Get returns the version of this build. It is computed once.
func Get() Info {
	once.Do(func() {
		bi, _ := debug.ReadBuildInfo()
		info = resolve(Version, Commit, bi)
	})
	return info
}

// resolve prefers linker-set values and falls back to the build info.
func resolve(v, c string, bi *debug.BuildInfo) Info {
	if bi != nil {
		if v == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v = bi.Main.Version
		}
		if c == "" {
			var rev string
			var modified bool
			for _, s := range bi.Settings {
				switch s.Key {
				case "vcs.revision":
					rev = s.Value
				case "vcs.modified":
					modified = s.Value == "true"
				}
			}
			if rev != "" {
				c = rev
				if modified {
					c += "+dirty"
				}
			}
		}
	}
	if v == "" {
		v = "devel"
	}
	if c == "" {
		c = "unknown"
	}
	return Info{Version: v, Commit: c}
}
