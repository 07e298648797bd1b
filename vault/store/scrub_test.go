package store

import (
	"errors"
	"strings"
	"testing"
)

// TestScrub: an error quoting the password, as written, decoded or from a
// password= parameter, loses it; other errors are kept as they are.
func TestScrub(t *testing.T) {
	tests := []struct {
		name, url, msg string
		hidden         []string
	}{
		{"user info", "postgres://u:hunter2@h/db", `parse "postgres://u:hunter2@h/db": bad`, []string{"hunter2"}},
		{"encoded user info", "postgres://u:p%40ss%2Fw@h/db", `dial u:p@ss/w failed; raw p%40ss%2Fw`, []string{"p@ss/w", "p%40ss%2Fw"}},
		{"unparsable URL", "postgres://u:hunter2@[::1/db", `parse "postgres://u:hunter2@[::1/db": missing ']'`, []string{"hunter2"}},
		{"query parameter", "postgres://u@h/db?password=s3cr%3Dt", `password s3cr=t rejected`, []string{"s3cr=t"}},
		{"nothing to hide", "postgres://u@h/db", `connection refused`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := errors.New(tt.msg)
			got := scrub(in, urlPasswords(tt.url))
			for _, h := range tt.hidden {
				if strings.Contains(got.Error(), h) {
					t.Errorf("scrub(%q) = %q; want %q hidden", tt.msg, got, h)
				}
			}
			if len(tt.hidden) == 0 && got != in {
				t.Errorf("scrub(%q) = %v; want the error unchanged", tt.msg, got)
			}
			if len(tt.hidden) > 0 && !strings.Contains(got.Error(), "xxxxx") {
				t.Errorf("scrub(%q) = %q; want the password replaced by xxxxx", tt.msg, got)
			}
		})
	}
}
