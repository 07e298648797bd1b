package clone

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// destination is the directory a clone writes into and what the clone
// created to get it, so that a failed clone can leave the file system as
// it found it.
type destination struct {
	dir string
	// created is true when the clone created dir; false when dir is an
	// existing empty directory, which may be a mount point that can be
	// emptied but not removed or replaced.
	created bool
	// parents are the missing parent directories the clone created for
	// dir, deepest first.
	parents []string
}

// prepareDir checks that dir does not exist or is an empty directory, and
// creates it (and its missing parents) when it does not exist.
func prepareDir(dir string) (*destination, error) {
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		d := &destination{dir: dir}
		if err := d.mkdirParents(); err != nil {
			return nil, err
		}
		if err := os.Mkdir(dir, 0o755); err != nil {
			d.removeParents()
			return nil, fmt.Errorf("clone: %w", err)
		}
		d.created = true
		return d, nil
	case err != nil:
		return nil, fmt.Errorf("clone: %w", err)
	case !fi.IsDir():
		return nil, fmt.Errorf("%w: %s exists and is not a directory (choose another destination)", ErrNotEmpty, dir)
	}
	empty, err := isEmptyDir(dir)
	if err != nil {
		return nil, fmt.Errorf("clone: %w", err)
	}
	if !empty {
		return nil, fmt.Errorf("%w: %s already exists and is not empty (choose another destination, or remove it first)", ErrNotEmpty, dir)
	}
	return &destination{dir: dir}, nil
}

// mkdirParents creates the missing parents of d.dir one by one, recording
// each, as os.MkdirAll would create them.
func (d *destination) mkdirParents() error {
	var missing []string // deepest first
	for p := filepath.Dir(d.dir); ; p = filepath.Dir(p) {
		if _, err := os.Stat(p); err == nil {
			break
		} else if !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("clone: %w", err)
		}
		missing = append(missing, p)
		if filepath.Dir(p) == p {
			break
		}
	}
	for i := len(missing) - 1; i >= 0; i-- {
		if err := os.Mkdir(missing[i], 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			d.removeParents()
			return fmt.Errorf("clone: %w", err)
		}
		d.parents = append([]string{missing[i]}, d.parents...)
	}
	return nil
}

// removeParents removes the parents the clone created, deepest first,
// stopping at the first that is not empty (something else wrote there).
func (d *destination) removeParents() {
	for _, p := range d.parents {
		if os.Remove(p) != nil {
			return
		}
	}
}

func isEmptyDir(dir string) (bool, error) {
	f, err := os.Open(dir)
	if err != nil {
		return false, err
	}
	defer f.Close()
	_, err = f.Readdirnames(1)
	if errors.Is(err, io.EOF) {
		return true, nil
	}
	return false, err
}

// cleanup undoes a failed clone: it removes the directory and the parents
// the clone created, or else empties the existing directory.
func (d *destination) cleanup() error {
	if d.created {
		if err := os.RemoveAll(d.dir); err != nil {
			return err
		}
		d.removeParents()
		return nil
	}
	entries, err := os.ReadDir(d.dir)
	if err != nil {
		return err
	}
	var first error
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(d.dir, e.Name())); err != nil && first == nil {
			first = err
		}
	}
	return first
}
