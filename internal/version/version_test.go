package version

import (
	"runtime/debug"
	"testing"
)

func TestResolve(t *testing.T) {
	bi := func(mainVersion string, settings ...debug.BuildSetting) *debug.BuildInfo {
		b := &debug.BuildInfo{Settings: settings}
		b.Main.Version = mainVersion
		return b
	}
	rev := debug.BuildSetting{Key: "vcs.revision", Value: "0123abcd"}
	dirty := debug.BuildSetting{Key: "vcs.modified", Value: "true"}
	tests := []struct {
		name string
		v, c string
		bi   *debug.BuildInfo
		want Info
	}{
		{name: "ldflags win", v: "v1.2.3", c: "cafe", bi: bi("v0.0.1", rev), want: Info{"v1.2.3", "cafe"}},
		{name: "build info fallback", bi: bi("(devel)", rev), want: Info{"devel", "0123abcd"}},
		{name: "dirty tree", bi: bi("", rev, dirty), want: Info{"devel", "0123abcd+dirty"}},
		{name: "module version", bi: bi("v0.3.0"), want: Info{"v0.3.0", "unknown"}},
		{name: "nothing known", want: Info{"devel", "unknown"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := resolve(tt.v, tt.c, tt.bi); got != tt.want {
				t.Errorf("resolve(%q, %q, ...) = %+v; want %+v", tt.v, tt.c, got, tt.want)
			}
		})
	}
}

func TestInfoString(t *testing.T) {
	got := Info{Version: "v1.0.0", Commit: "abc"}.String()
	if want := "v1.0.0 (commit abc)"; got != want {
		t.Errorf("String() = %q; want %q", got, want)
	}
}
