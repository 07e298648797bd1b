package main

import "testing"

func TestIsGoRunBuild(t *testing.T) {
	tests := []struct {
		path string
		want bool
	}{
		{"/tmp/go-build2050746749/b001/exe/azdo-sidecar", true},
		{"/root/.cache/go-build/ff/ffe2-d/azdo-sidecar", true},
		{"/usr/local/bin/azdo-sidecar", false},
		{"/home/me/go/bin/azdo-sidecar", false},
		{"/opt/go-builder/azdo-sidecar", true}, // conservative: any go-build* component
	}
	for _, tt := range tests {
		if got := isGoRunBuild(tt.path); got != tt.want {
			t.Errorf("isGoRunBuild(%q) = %v; want %v", tt.path, got, tt.want)
		}
	}
}
