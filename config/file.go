package config

import (
	"errors"

	"io"
	"io/fs"
	"os"

	"gopkg.in/yaml.v3"
)

// maxFileSize bounds every settings file read.
const maxFileSize = 1 << 20

// fileValue is one top-level entry of a settings file, as flag values.
type fileValue struct {
	values []string
	list   bool // written as a YAML sequence
	nested bool // a mapping, or a list of non-scalars: no flag value
	line   int
}

// readFlagFile reads a YAML mapping of flag names to scalars or sequences of
// scalars. Nested mappings are kept only as opaque entries (azdo-vault's
// providers), which the caller skips or rejects by key.
func readFlagFile(path string) (map[string]fileValue, error) {
	root, err := readYAML(ConfigFlag, path)
	if err != nil {
		return nil, err
	}
	out := map[string]fileValue{}
	if root == nil {
		return out, nil
	}
	if root.Kind != yaml.MappingNode {
		return nil, errorf(ConfigFlag, ErrBadValue, "%s: the top level must be a mapping of setting: value", path)
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i].Value, root.Content[i+1]
		if _, dup := out[k]; dup {
			return nil, errorf(k, ErrBadValue, "%s line %d: key set twice", path, root.Content[i].Line)
		}
		fv := fileValue{line: root.Content[i].Line}
		switch v.Kind {
		case yaml.ScalarNode:
			if v.Tag != "!!null" {
				fv.values = []string{v.Value}
			}
		case yaml.SequenceNode:
			fv.list = true
			for _, e := range v.Content {
				if e.Kind != yaml.ScalarNode {
					fv.nested = true
				}
				fv.values = append(fv.values, e.Value)
			}
		default:
			// Only meaningful for Options.FileKeys (azdo-vault's providers).
			fv.nested = true
		}
		out[k] = fv
	}
	// Keys written both ways ("vault-url" and "vault_url") are one key.
	seen := map[string]string{}
	for k := range out {
		n := normalizeKey(k)
		if other, ok := seen[n]; ok {
			return nil, errorf(k, ErrConflict, "%s: set twice, also as %q", path, other)
		}
		seen[n] = k
	}
	return out, nil
}

// readYAML reads and parses a YAML file named by setting key. It returns the
// document's root node, nil for an empty file.
func readYAML(key, path string) (*yaml.Node, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, errorf(key, ErrMissingFile, "%s does not exist", quote(path))
		}
		return nil, errorf(key, ErrBadValue, "cannot read %s: %v", quote(path), err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, errorf(key, ErrBadValue, "cannot read %s: %v", quote(path), err)
	}
	if len(data) > maxFileSize {
		return nil, errorf(key, ErrBadValue, "%s is larger than %d bytes", quote(path), maxFileSize)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, errorf(key, ErrBadValue, "%s is not valid YAML: %v", quote(path), err)
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return nil, nil
	}
	return doc.Content[0], nil
}
