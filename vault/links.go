package vault

import (
	"context"
	"net/url"
	"strings"

	"github.com/azdo-sidecar/azdo-sidecar/vault/store"
)

// LinkRequest is what a connect link is for.
type LinkRequest struct {
	Owner     string
	EnvID     string
	Host      string
	Org       string     // as the environment asked, may be empty
	Kind      store.Kind // store.OAuth: the Connect flow; store.PAT: the PAT page
	Reconnect bool
	// Waiting says an environment waits for this connection (azdo-sidecar
	// --wait-connect): the result page tells the user to close the window.
	Waiting bool
}

// Linker makes the connect_url given with 404 not_connected and 409
// reconnect_required. It is the one place links are made, so the Connect
// flow can swap in signed, single-use links.
type Linker interface {
	ConnectURL(ctx context.Context, r LinkRequest) (string, error)
}

// PublicURLLinker makes plain links under the vault's public URL:
// <public_url>/connect?host=…&org=… for OAuth, <public_url>/pat?… for PATs.
type PublicURLLinker struct {
	PublicURL string
}

// ConnectURL implements Linker.
func (l PublicURLLinker) ConnectURL(_ context.Context, r LinkRequest) (string, error) {
	path := "/connect"
	if r.Kind == store.PAT {
		path = "/pat"
	}
	q := url.Values{}
	q.Set("host", r.Host)
	if r.Org != "" {
		q.Set("org", r.Org)
	}
	return strings.TrimRight(l.PublicURL, "/") + path + "?" + q.Encode(), nil
}
