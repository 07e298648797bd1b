package credential

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/azdo-sidecar/azdo-sidecar/azdo"
)

// Helper is one run of a git credential helper ("git-credential-azdo get",
// "azdo-sidecar credential get"): it reads git's request on Stdin, answers
// on Stdout, and prints at most one line on Stderr.
type Helper struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer

	// Hosts are the Azure DevOps hosts (nil: Services only). Requests for
	// other hosts get no answer without contacting anyone, so the helper
	// never stands in the way of other hosts' helpers.
	Hosts *azdo.Hosts
	// Local, when set, answers in-process (standalone mode, a static PAT).
	Local Handler
	// Client reaches the running sidecar when Local is nil.
	Client *Client
	// Name prefixes the stderr line ("git-credential-azdo").
	Name string
}

// Run handles action and returns the process exit code:
//
//   - get: the answer on stdout (nothing for a host that is not Azure
//     DevOps), exit 0; a message from the sidecar (MessageKey) goes to
//     stderr, the rest to stdout;
//   - store: nothing, exit 0 — the vault owns credentials, and a token git
//     offers back must never be written anywhere nor sent over the socket;
//   - erase: forwarded, so the sidecar drops the rejected token; exit 0;
//   - an unknown action: nothing, exit 0, as git's protocol asks;
//   - malformed input: one line on stderr, nothing on stdout, exit 1;
//   - no sidecar listening: one line on stderr saying to start it, exit 1.
func (h *Helper) Run(ctx context.Context, action string) int {
	switch action {
	case ActionGet, ActionStore, ActionErase:
	default:
		return 0
	}
	req, err := Read(bufio.NewReader(&limitReader{r: h.Stdin, n: maxRequest}))
	if err != nil {
		return h.fail(err)
	}
	if action == ActionStore || req.Host == "" || req.Protocol != "https" || !h.Hosts.Match(req.Host) {
		return 0
	}
	var ans *Credential
	if h.Local != nil {
		ans, err = h.Local.ServeCredential(ctx, action, req)
	} else {
		ans, err = h.Client.Do(ctx, action, req)
	}
	if errors.Is(err, ErrNoServer) {
		return h.fail(fmt.Errorf("%w; start it with `azdo-sidecar serve` (or use a PAT: --pat-file / AZDO_PAT_FILE / AZDO_PAT)", err))
	}
	if err != nil {
		return h.fail(err)
	}
	if ans == nil || action != ActionGet {
		return 0
	}
	if msg, ok := ans.Get(MessageKey); ok {
		fmt.Fprintf(h.Stderr, "%s\n", oneLine(msg))
		ans.Del(MessageKey)
	}
	if err := Write(h.Stdout, ans); err != nil {
		return h.fail(err)
	}
	return 0
}

func (h *Helper) fail(err error) int {
	name := h.Name
	if name == "" {
		name = "git-credential-azdo"
	}
	fmt.Fprintf(h.Stderr, "%s: %s\n", name, oneLine(err.Error()))
	return 1
}
