// Package statedir creates and checks the sidecar's state directory
// (--state-dir), which holds the CA certificate, the proxy URL with its
// credential, and the git configuration setup includes.
package statedir

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// ErrInsecure means the directory could be written by someone else.
var ErrInsecure = errors.New("statedir: insecure state directory")

// Ensure creates dir and its missing parents with mode 0700, or checks an
// existing dir: it must be a directory (a symlink to one is followed)
// owned by the current user that neither group nor others may write. It
// never changes the mode of a directory that already exists: one that is
// shared (/tmp, a group directory) is refused, with the reason.
func Ensure(dir string) error {
	if !filepath.IsAbs(dir) {
		return fmt.Errorf("statedir: %q must be an absolute path", dir)
	}
	fi, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		// MkdirAll gives every directory it creates 0700 (before umask,
		// which can only narrow it), and leaves existing ones alone.
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("statedir: create %s: %w", dir, err)
		}
		fi, err = os.Stat(dir)
	}
	if err != nil {
		return fmt.Errorf("statedir: %w", err)
	}
	return check(dir, fi)
}

// Check checks an existing dir as Ensure does, creating nothing.
func Check(dir string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("statedir: %w", err)
	}
	return check(dir, fi)
}

func check(dir string, fi fs.FileInfo) error {
	if !fi.IsDir() {
		return fmt.Errorf("%w: %s is not a directory", ErrInsecure, dir)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Getuid() {
		return fmt.Errorf("%w: %s belongs to uid %d, not to you (uid %d): its owner could replace the CA certificate git trusts; use a directory of your own (--state-dir)", ErrInsecure, dir, st.Uid, os.Getuid())
	}
	if perm := fi.Mode().Perm(); perm&0o022 != 0 {
		return fmt.Errorf("%w: %s has mode %04o, so others may write to it and replace the CA certificate git trusts; use a directory of your own (--state-dir), or chmod 700 %s if it is not shared", ErrInsecure, dir, perm, dir)
	}
	return nil
}
