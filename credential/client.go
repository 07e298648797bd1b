package credential

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"time"
)

// DefaultClientTimeout is Client.Timeout's default: long enough for the
// sidecar to fetch a token from the vault, short enough that git never
// seems to hang.
const DefaultClientTimeout = 30 * time.Second

// Client asks the sidecar's Server over its Unix socket: one connection,
// one request, one answer.
type Client struct {
	Socket  string        // path of the socket; DefaultSocketPath() when empty
	Timeout time.Duration // whole round trip; DefaultClientTimeout when zero
}

// Do sends req with action and returns the answer (an empty Credential
// when the server had nothing). It refuses a socket in an insecure
// directory (CheckSocketDir), since an erase carries the rejected password,
// and returns an error wrapping ErrNoServer when nothing listens.
func (c *Client) Do(ctx context.Context, action string, req *Credential) (*Credential, error) {
	body, err := Append([]byte("action="+action+"\ntimeout=0\n"), req)
	if err != nil {
		return nil, err
	}
	body = markClient(body)
	var ans *Credential
	err = c.exchange(ctx, body, func(r io.Reader) error {
		var err error
		ans, err = Read(bufio.NewReader(&limitReader{r: r, n: maxRequest}))
		return err
	})
	if err != nil {
		return nil, err
	}
	return ans, nil
}

// Status asks the sidecar for its status (ActionStatus) and returns the
// answer as sent: JSON, or nothing when the server does not serve it.
func (c *Client) Status(ctx context.Context) ([]byte, error) {
	var out []byte
	err := c.exchange(ctx, []byte("action="+ActionStatus+"\ntimeout=0\n\n"), func(r io.Reader) error {
		var err error
		out, err = io.ReadAll(io.LimitReader(r, maxStatus+1))
		if err == nil && len(out) > maxStatus {
			err = fmt.Errorf("more than %d bytes", maxStatus)
		}
		return err
	})
	return out, err
}

// exchange sends body on one connection to the socket, closes its write
// side and lets read consume the answer, all within the client's timeout.
// It refuses a socket in an insecure directory (CheckSocketDir) and
// returns an error wrapping ErrNoServer when nothing listens.
func (c *Client) exchange(ctx context.Context, body []byte, read func(io.Reader) error) error {
	path := c.Socket
	if path == "" {
		path = DefaultSocketPath()
	}
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = DefaultClientTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	if err := CheckSocketDir(filepath.Dir(path)); err != nil {
		if isNotExist(err) {
			return fmt.Errorf("%w at %s", ErrNoServer, path)
		}
		return err
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return dialError(path, err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	// Closing the connection when ctx ends unblocks a read or write.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()

	if _, err := conn.Write(body); err != nil {
		return fmt.Errorf("credential: send to %s: %w", path, err)
	}
	if err := conn.(*net.UnixConn).CloseWrite(); err != nil {
		return fmt.Errorf("credential: send to %s: %w", path, err)
	}
	if err := read(conn); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("credential: no answer from %s within %s", path, timeout)
		}
		return fmt.Errorf("credential: answer from %s: %w", path, err)
	}
	return nil
}
