package main

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseConfig(t *testing.T) {
	type want map[string][]string // key -> items; nil items: null
	tests := []struct {
		name string
		in   string
		want want
		err  string // substring of the error; "" means none
	}{
		{name: "scalars", in: "socket: /run/s\npat-file: /p\n", want: want{"socket": {"/run/s"}, "pat-file": {"/p"}}},
		{name: "underscore spelling", in: "pat_file: /p\n", want: want{"pat-file": {"/p"}}},
		{name: "quoted", in: "socket: \"/a b/s\" # c\npat-file: 'it''s'\n", want: want{"socket": {"/a b/s"}, "pat-file": {"it's"}}},
		{name: "comment after plain value", in: "socket: /run/s # the socket\n", want: want{"socket": {"/run/s"}}},
		{name: "flow list", in: "host: [a.example, 'b.example:8443', \"c\"] # hosts\n", want: want{"host": {"a.example", "b.example:8443", "c"}}},
		{name: "empty flow list", in: "host: []\n", want: want{"host": {}}},
		{name: "block list", in: "host:\n  - a.example\n  # comment\n  - b.example:8443\nsocket: /s\n", want: want{"host": {"a.example", "b.example:8443"}, "socket": {"/s"}}},
		{name: "null", in: "socket:\npat-file: ~\n", want: want{"socket": nil, "pat-file": nil}},
		{name: "other keys skipped", in: "---\nvault-url: https://v.example:8443\nproviders:\n  - host: x\n    pat: {enabled: true}\nnote: |\n  socket: /not/this\nsocket: /s\n", want: want{"socket": {"/s"}}},
		{name: "CRLF", in: "socket: /s\r\nhost:\r\n  - a\r\n", want: want{"socket": {"/s"}, "host": {"a"}}},
		{name: "colon in value", in: "host: tfs.example:8443\n", want: want{"host": {"tfs.example:8443"}}},
		{name: "set twice", in: "pat-file: /a\npat_file: /b\n", err: "set twice"},
		{name: "not a mapping", in: "- a\n", err: "want key: value"},
		{name: "mapping for a helper key", in: "socket:\n  path: /s\n", err: "want a value or a list"},
		{name: "block scalar for a helper key", in: "socket: |\n  /s\n", err: "plain or quoted"},
		{name: "unterminated list", in: "host: [a, b\n", err: "unterminated"},
		{name: "unterminated quote", in: "socket: \"/s\n", err: "unterminated"},
		{name: "junk after quote", in: "socket: '/s' x\n", err: "after a quoted value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseConfig(tt.in)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("parseConfig(%q) = %v, %v; want an error containing %q", tt.in, got, err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseConfig(%q) = %v", tt.in, err)
			}
			items := want{}
			for k, v := range got {
				items[k] = v.items
			}
			if !reflect.DeepEqual(items, tt.want) {
				t.Errorf("parseConfig(%q) = %q; want %q", tt.in, items, tt.want)
			}
		})
	}
}

// FuzzParseConfig: no input makes the parser panic, and every value it
// returns is one line.
func FuzzParseConfig(f *testing.F) {
	for _, s := range []string{
		"socket: /run/s\nhost: [a, 'b', \"c\"]\n",
		"host:\n  - a # c\n  - 'b'\npat_file: ~\n",
		"vault-url: https://x\nproviders:\n  - host: y\n",
		"socket: \"a\\\"b\" # c\n",
		"host: [\"a,b\", 'c''d']\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got, err := parseConfig(in)
		if err != nil {
			return
		}
		for k, v := range got {
			if !helperKeys[k] {
				t.Errorf("parseConfig(%q) returned key %q", in, k)
			}
			for _, item := range v.items {
				if strings.ContainsAny(item, "\n\r\x00") {
					t.Errorf("parseConfig(%q) returned %q for %s", in, item, k)
				}
			}
		}
	})
}
