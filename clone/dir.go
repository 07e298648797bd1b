package clone

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// prepareDir checks that dir does not exist or is an empty directory, and
// creates it (and its parents) when it does not exist. created tells
// cleanupDir whether to remove dir itself or only what the clone wrote into
// it: an existing empty directory may be a mount point, which can be
// emptied but not removed or replaced.
func prepareDir(dir string) (created bool, err error) {
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
			return false, fmt.Errorf("clone: %w", err)
		}
		if err := os.Mkdir(dir, 0o755); err != nil {
			return false, fmt.Errorf("clone: %w", err)
		}
		return true, nil
	case err != nil:
		return false, fmt.Errorf("clone: %w", err)
	case !fi.IsDir():
		return false, fmt.Errorf("%w: %s exists and is not a directory (choose another destination)", ErrNotEmpty, dir)
	}
	empty, err := isEmptyDir(dir)
	if err != nil {
		return false, fmt.Errorf("clone: %w", err)
	}
	if !empty {
		return false, fmt.Errorf("%w: %s already exists and is not empty (choose another destination, or remove it first)", ErrNotEmpty, dir)
	}
	return false, nil
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

// cleanupDir undoes a failed clone: it removes dir if the clone created
// it, else everything inside it.
func cleanupDir(dir string, created bool) error {
	if created {
		return os.RemoveAll(dir)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	var first error
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil && first == nil {
			first = err
		}
	}
	return first
}
