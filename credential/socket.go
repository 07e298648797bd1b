package credential

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// Socket errors.
var (
	// ErrInsecureSocketDir means the socket's directory is not a directory
	// owned by the current user, or others may write to it: a socket there
	// could be replaced by someone else's.
	ErrInsecureSocketDir = errors.New("credential: insecure socket directory")
	// ErrSocketInUse means another process already serves the socket.
	ErrSocketInUse = errors.New("credential: socket already in use")
	// ErrNoServer means nothing listens on the socket (missing or refused).
	ErrNoServer = errors.New("credential: no sidecar listening on the socket")
)

// DefaultSocketPath returns the default socket:
// $XDG_RUNTIME_DIR/azdo-sidecar/sock, else sock in the default state
// directory ($XDG_STATE_HOME/azdo-sidecar, else
// ~/.local/state/azdo-sidecar). Never a directory in /tmp, which another
// user could create first (see CheckPrivatePath).
func DefaultSocketPath() string {
	// Same rule as config.DefaultSocket, which cannot be imported here
	// (it links the CLI framework).
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		return filepath.Join(d, "azdo-sidecar", "sock")
	}
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "azdo-sidecar", "sock")
	}
	return filepath.Join(os.Getenv("HOME"), ".local", "state", "azdo-sidecar", "sock")
}

// CheckPrivatePath returns an error wrapping ErrInsecureSocketDir unless
// no one but the current user (or root) can create or replace dir: every
// existing directory from / down to dir is owned by root or the current
// user and writable by neither group nor others. The sticky bit of /tmp
// does not make a directory there private: once it is gone (a reboot, a
// cleaner) anyone may create it again, and a client that does not check
// its owner, like git's credential-cache, would talk to theirs.
func CheckPrivatePath(dir string) error {
	dir = filepath.Clean(dir)
	if !filepath.IsAbs(dir) {
		return fmt.Errorf("%w: %s is not absolute", ErrInsecureSocketDir, dir)
	}
	uid := os.Getuid()
	for p := dir; ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			// Created later, by the sidecar, with mode 0700.
		case err != nil:
			return fmt.Errorf("credential: %s: %w", p, err)
		default:
			if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != uid && st.Uid != 0 {
				return fmt.Errorf("%w: %s belongs to uid %d", ErrInsecureSocketDir, p, st.Uid)
			}
			if fi.Mode().Perm()&0o022 != 0 {
				return fmt.Errorf("%w: others may write to %s (mode %04o), so they could create %s before you", ErrInsecureSocketDir, p, fi.Mode().Perm(), dir)
			}
		}
		if p == filepath.Dir(p) {
			return nil
		}
	}
}

// CheckSocketDir returns ErrInsecureSocketDir unless dir is a real directory
// (not a symlink) owned by the current user that neither group nor others
// may write to.
func CheckSocketDir(dir string) error {
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("credential: socket directory: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("%w: %s is not a directory", ErrInsecureSocketDir, dir)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Getuid() {
		return fmt.Errorf("%w: %s is owned by uid %d, not by you (uid %d): someone else created it, and a socket there could be theirs; use another --socket (the default is under $XDG_RUNTIME_DIR or --state-dir)", ErrInsecureSocketDir, dir, st.Uid, os.Getuid())
	}
	if fi.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("%w: %s has mode %04o; want 0700 (chmod 0700 %s)", ErrInsecureSocketDir, dir, fi.Mode().Perm(), dir)
	}
	return nil
}

// Listen listens on the Unix socket path for a Server. It creates the
// directory with mode 0700 when missing and refuses an insecure one
// (CheckSocketDir); it removes a stale socket left by a dead process but
// returns ErrSocketInUse when a live one answers (after asking it to exit:
// git's credential-cache daemon obeys, see askExit); the socket gets mode
// 0600.
// Closing the listener removes the socket file.
func Listen(path string) (net.Listener, error) {
	if !filepath.IsAbs(path) {
		return nil, fmt.Errorf("credential: socket path %q must be absolute", path)
	}
	dir := filepath.Dir(path)
	// Create the last element with 0700 from the start (not chmod after the
	// fact), so no one can get into it in between.
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return nil, fmt.Errorf("credential: socket directory: %w", err)
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("credential: socket directory: %w", err)
	}
	if err := CheckSocketDir(dir); err != nil {
		return nil, err
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != fs.ModeSocket {
			return nil, fmt.Errorf("credential: %s exists and is not a socket", path)
		}
		if live(path) && (!askExit(path) || live(path)) {
			return nil, fmt.Errorf("%w: %s", ErrSocketInUse, path)
		}
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("credential: remove stale socket: %w", err)
		}
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("credential: listen: %w", err)
	}
	ln.SetUnlinkOnClose(true)
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("credential: socket mode: %w", err)
	}
	return ln, nil
}

// dialError maps a failed dial to ErrNoServer when nothing listens.
func dialError(path string, err error) error {
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOENT) {
		return fmt.Errorf("%w at %s", ErrNoServer, path)
	}
	return fmt.Errorf("credential: connect to %s: %w", path, err)
}

func isNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }

// live reports whether something accepts connections on the socket path.
func live(path string) bool {
	c, err := net.DialTimeout("unix", path, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// askExit sends "action=exit" to the socket and waits for it to close. The
// one live process that obeys is git's own credential-cache daemon: when
// the sidecar is down, "git credential-cache --socket=<our socket> store"
// spawns that daemon on our path, and it must give the path back. A
// sidecar ignores the request. It reports whether the exchange completed.
func askExit(path string) bool {
	c, err := net.DialTimeout("unix", path, time.Second)
	if err != nil {
		return true
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte("action=exit\ntimeout=0\n\n")); err != nil {
		return false
	}
	_ = c.(*net.UnixConn).CloseWrite()
	_, err = io.Copy(io.Discard, io.LimitReader(c, maxRequest))
	return err == nil
}
