package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// maxConfigSize bounds the settings file read, as azdo-sidecar's does.
const maxConfigSize = 1 << 20

// helperKeys are the settings the helper reads from a --config file, by
// their flag names; YAML may spell them with "_".
var helperKeys = map[string]bool{"socket": true, "pat-file": true, "host": true}

// fileSettings are the helper's settings found in a --config file; a nil
// pointer or list means "not in the file".
type fileSettings struct {
	socket  *string
	patFile *string
	hosts   []string
}

// errConfig marks a settings file the helper cannot read.
var errConfig = errors.New("config")

// readConfig reads the helper's settings (socket, pat-file, host) from an
// azdo-sidecar settings file (--config, AZDO_CONFIG), so that one file
// serves `azdo-sidecar serve`, `azdo-sidecar credential` and this helper.
//
// It reads the YAML such files are written in — a mapping of keys to a
// scalar (plain or quoted), a flow list ("[a, b]") or a block list ("- a"
// lines), with comments — without linking a YAML library, whose start-up
// cost git would pay on every request. The keys of other commands are
// skipped with whatever they hold (azdo-sidecar checks them); a value of
// another form for one of the helper's keys is an error naming the key.
func readConfig(path string) (fileSettings, error) {
	var fs fileSettings
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fs, fmt.Errorf("%w: %s does not exist", errConfig, strconv.Quote(path))
		}
		return fs, fmt.Errorf("%w: cannot read %s: %v", errConfig, strconv.Quote(path), err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxConfigSize+1))
	if err != nil {
		return fs, fmt.Errorf("%w: cannot read %s: %v", errConfig, strconv.Quote(path), err)
	}
	if len(data) > maxConfigSize {
		return fs, fmt.Errorf("%w: %s is larger than %d bytes", errConfig, strconv.Quote(path), maxConfigSize)
	}
	values, err := parseConfig(string(data))
	if err != nil {
		return fs, fmt.Errorf("%w: %s: %v", errConfig, strconv.Quote(path), err)
	}
	for key, v := range values {
		switch {
		case key == "host":
			// As azdo-sidecar reads it: each value may be a comma-separated list.
			fs.hosts = []string{}
			for _, item := range v.items {
				for h := range strings.SplitSeq(item, ",") {
					if h = strings.TrimSpace(h); h != "" {
						fs.hosts = append(fs.hosts, h)
					}
				}
			}
		case v.list:
			return fs, fmt.Errorf("%w: %s line %d: %s: a single value is allowed, not a list", errConfig, strconv.Quote(path), v.line, key)
		case len(v.items) == 1 && key == "socket":
			fs.socket = &v.items[0]
		case len(v.items) == 1 && key == "pat-file":
			fs.patFile = &v.items[0]
		}
	}
	return fs, nil
}

// configValue is the value of one of the helper's keys.
type configValue struct {
	items []string // nil: null
	list  bool
	line  int
}

// parseConfig returns the values of helperKeys in a settings file (see
// readConfig), by flag name.
func parseConfig(data string) (map[string]configValue, error) {
	out := map[string]configValue{}
	spelled := map[string]string{}
	cur := "" // the helper key whose block list the next lines may hold
	for i, raw := range strings.Split(data, "\n") {
		n := i + 1
		line := strings.TrimRight(raw, " \t\r")
		body := strings.TrimLeft(line, " \t")
		if body == "" || body[0] == '#' {
			continue
		}
		if line == "---" || line == "..." {
			cur = ""
			continue
		}
		if body != line {
			// Indented: part of the value of the last key.
			if cur == "" {
				continue
			}
			item, ok := strings.CutPrefix(body, "-")
			if !ok || (item != "" && item[0] != ' ' && item[0] != '\t') {
				return nil, fmt.Errorf("line %d: %s: want a value or a list of values", n, spelled[cur])
			}
			v, err := scalar(strings.TrimSpace(item))
			if err != nil {
				return nil, fmt.Errorf("line %d: %s: %v", n, spelled[cur], err)
			}
			if err := checkValue(v); err != nil {
				return nil, fmt.Errorf("line %d: %s: %v", n, spelled[cur], err)
			}
			cv := out[cur]
			cv.list = true
			if v != nil {
				cv.items = append(cv.items, *v)
			}
			out[cur] = cv
			continue
		}
		cur = ""
		k, rest, ok := cutKey(line)
		if !ok {
			return nil, fmt.Errorf("line %d: want key: value", n)
		}
		key := strings.ReplaceAll(k, "_", "-")
		if !helperKeys[key] {
			continue
		}
		if other, dup := spelled[key]; dup {
			return nil, fmt.Errorf("line %d: %s: set twice, also as %s", n, k, other)
		}
		spelled[key] = k
		cv := configValue{line: n}
		rest = strings.TrimSpace(rest)
		switch {
		case rest == "" || rest[0] == '#':
			cur = key // a block list may follow; else null
		case rest[0] == '[':
			items, err := flowList(rest)
			if err != nil {
				return nil, fmt.Errorf("line %d: %s: %v", n, k, err)
			}
			cv.items, cv.list = items, true
		default:
			v, err := scalar(rest)
			if err != nil {
				return nil, fmt.Errorf("line %d: %s: %v", n, k, err)
			}
			if v != nil {
				cv.items = []string{*v}
			}
		}
		for _, item := range cv.items {
			if err := checkValue(&item); err != nil {
				return nil, fmt.Errorf("line %d: %s: %v", n, k, err)
			}
		}
		out[key] = cv
	}
	return out, nil
}

// checkValue refuses control characters, which no path or host name holds
// (a double-quoted "\n", a stray NUL).
func checkValue(v *string) error {
	if v != nil && strings.ContainsFunc(*v, func(r rune) bool { return r < ' ' || r == 0x7f }) {
		return errors.New("control character in a value")
	}
	return nil
}

// cutKey splits a top-level "key: rest" line.
func cutKey(line string) (key, rest string, ok bool) {
	i := strings.Index(line, ":")
	for i >= 0 && i+1 < len(line) && line[i+1] != ' ' && line[i+1] != '\t' {
		j := strings.Index(line[i+1:], ":")
		if j < 0 {
			return "", "", false
		}
		i += 1 + j
	}
	if i <= 0 {
		return "", "", false
	}
	key = strings.TrimSpace(line[:i])
	if len(key) >= 2 && (key[0] == '"' || key[0] == '\'') && key[len(key)-1] == key[0] {
		key = key[1 : len(key)-1]
	}
	return key, line[i+1:], true
}

// scalar returns the value of a YAML scalar with an optional trailing
// comment; nil for null.
func scalar(s string) (*string, error) {
	if s == "" || s[0] == '#' {
		return nil, nil
	}
	switch s[0] {
	case '"':
		end := closingDouble(s)
		if end < 0 {
			return nil, errors.New("unterminated double-quoted value")
		}
		v, err := strconv.Unquote(s[:end+1])
		if err != nil {
			return nil, errors.New("bad double-quoted value")
		}

		return &v, trailing(s[end+1:])
	case '\'':
		var b strings.Builder
		for i := 1; i < len(s); i++ {
			if s[i] != '\'' {
				b.WriteByte(s[i])
				continue
			}
			if i+1 < len(s) && s[i+1] == '\'' {
				b.WriteByte('\'')
				i++
				continue
			}
			v := b.String()
			return &v, trailing(s[i+1:])
		}
		return nil, errors.New("unterminated single-quoted value")
	case '[', '{', '|', '>', '&', '*', '!':
		return nil, fmt.Errorf("want a plain or quoted value, not %q", s[:1])
	}
	if i := strings.Index(s, " #"); i >= 0 {
		s = s[:i]
	}
	if i := strings.Index(s, "\t#"); i >= 0 {
		s = s[:i]
	}
	s = strings.TrimSpace(s)
	if s == "~" || s == "null" || s == "Null" || s == "NULL" {
		return nil, nil
	}
	return &s, nil
}

// closingDouble returns the index of the quote closing the double-quoted
// value s begins with, or -1.
func closingDouble(s string) int {
	for i := 1; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '"':
			return i
		}
	}
	return -1
}

// trailing accepts what may follow a quoted value: nothing or a comment.
func trailing(s string) error {
	s = strings.TrimSpace(s)
	if s == "" || s[0] == '#' {
		return nil
	}
	return fmt.Errorf("unexpected %q after a quoted value", s)
}

// flowList parses "[a, 'b', "c"]" with an optional trailing comment.
func flowList(s string) ([]string, error) {
	items := []string{}
	s = strings.TrimSpace(s[1:])
	for {
		if s == "" {
			return nil, errors.New("unterminated [ list")
		}
		if s[0] == ']' {
			return items, trailing(s[1:])
		}
		var item string
		switch s[0] {
		case '"', '\'':
			end := -1
			if s[0] == '"' {
				end = closingDouble(s)
			} else {
				end = strings.IndexByte(s[1:], '\'')
				if end >= 0 {
					end++
				}
			}
			if end < 0 {
				return nil, errors.New("unterminated quoted value in [ list")
			}
			v, err := scalar(s[:end+1])
			if err != nil || v == nil {
				return nil, errors.New("bad quoted value in [ list")
			}
			item, s = *v, strings.TrimSpace(s[end+1:])
		default:
			end := strings.IndexAny(s, ",]")
			if end < 0 {
				return nil, errors.New("unterminated [ list")
			}
			item, s = strings.TrimSpace(s[:end]), s[end:]
			if item == "" || strings.ContainsAny(item, "[{") {
				return nil, errors.New("want a list of values")
			}
		}
		items = append(items, item)
		switch {
		case strings.HasPrefix(s, ","):
			s = strings.TrimSpace(s[1:])
		case strings.HasPrefix(s, "]"):
		default:
			return nil, errors.New("want , or ] in [ list")
		}
	}
}
