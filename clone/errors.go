package clone

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"

	"github.com/azdo-sidecar/azdo-sidecar/azdo"
)

// Sentinel errors a caller branches on with errors.Is.
var (
	// ErrNotEmpty means the destination exists and is not an empty
	// directory; nothing was touched.
	ErrNotEmpty = errors.New("clone: destination is not an empty directory")
	// ErrRepoNotFound means Azure DevOps has no such repository, or the
	// credential may not read it (Azure DevOps does not tell them apart).
	ErrRepoNotFound = errors.New("clone: repository not found")
	// ErrAuth means Azure DevOps rejected the credential.
	ErrAuth = errors.New("clone: Azure DevOps rejected the credential")
	// ErrRefNotFound is wrapped by *RefNotFoundError.
	ErrRefNotFound = errors.New("clone: revision not found")
)

// RefNotFoundError says that the branch, tag, commit or pull request a URL
// names does not exist, and which ones nearby do.
type RefNotFoundError struct {
	Repo    string    // clone URL
	Kind    azdo.Kind // Branch, Tag, Commit or PullRequest
	Name    string    // branch or tag name, commit id, pull request number
	Nearest []string  // nearest existing names of the same kind, best first
	Hint    string    // what to try, when there is more to say
}

// Error implements error.
func (e *RefNotFoundError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %q not found in %s", e.Kind, e.Name, e.Repo)
	plural := map[azdo.Kind]string{azdo.Branch: "branches", azdo.Tag: "tags", azdo.PullRequest: "pull requests with a merge ref"}[e.Kind]
	if plural != "" {
		if len(e.Nearest) == 0 {
			fmt.Fprintf(&b, "; it has no %s", plural)
		} else {
			fmt.Fprintf(&b, "; nearest existing %s: %s", plural, strings.Join(e.Nearest, ", "))
		}
	}
	if e.Hint != "" {
		b.WriteString("; " + e.Hint)
	}
	return b.String()
}

// Is makes errors.Is(err, ErrRefNotFound) true.
func (e *RefNotFoundError) Is(target error) bool { return target == ErrRefNotFound }

// nearest returns up to n of names closest to want: by edit distance,
// shared prefix breaking ties, then by name.
func nearest(want string, names []string, n int) []string {
	type scored struct {
		name string
		d    int
	}
	lw := strings.ToLower(want)
	var s []scored
	for _, name := range names {
		ln := strings.ToLower(name)
		d := editDistance(lw, ln)
		if strings.Contains(ln, lw) || strings.Contains(lw, ln) {
			d = min(d, 1+abs(len(ln)-len(lw))/4)
		}
		s = append(s, scored{name, d})
	}
	sort.Slice(s, func(i, j int) bool {
		if s[i].d != s[j].d {
			return s[i].d < s[j].d
		}
		return s[i].name < s[j].name
	})
	var out []string
	for i := 0; i < len(s) && i < n; i++ {
		out = append(out, s[i].name)
	}
	return out
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

// editDistance is the Levenshtein distance of a and b in bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// httpStatus returns the HTTP status of a go-git transport error, or 0.
func httpStatus(err error) int {
	var he *githttp.Err
	if errors.As(err, &he) {
		return he.StatusCode()
	}
	var ue *plumbing.UnexpectedError
	if errors.As(err, &ue) && errors.As(ue.Err, &he) {
		return he.StatusCode()
	}
	return 0
}

// transient reports whether err is worth retrying: network failures,
// timeouts, a connection cut mid-transfer, HTTP 5xx, 429 and 408. Errors
// about the credential, the repository or the request are not.
func transient(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	for _, permanent := range []error{transport.ErrAuthenticationRequired, transport.ErrAuthorizationFailed,
		transport.ErrRepositoryNotFound, transport.ErrEmptyRemoteRepository, transport.ErrInvalidAuthMethod} {
		if errors.Is(err, permanent) {
			return false
		}
	}
	if s := httpStatus(err); s != 0 {
		return s >= 500 || s == 429 || s == 408
	}
	// go-git wraps transport errors in an UnexpectedError that does not
	// unwrap.
	var ue *plumbing.UnexpectedError
	if errors.As(err, &ue) && ue.Err != nil {
		err = ue.Err
	}
	// A request whose connection closed before any answer (a server
	// restart, a load balancer dropping an idle connection).
	var uerr *url.Error
	if errors.As(err, &uerr) && errors.Is(uerr.Err, io.EOF) {
		return true
	}
	// A certificate problem does not fix itself.
	var cve *tls.CertificateVerificationError
	var uae x509.UnknownAuthorityError
	var hne x509.HostnameError
	var cie x509.CertificateInvalidError
	if errors.As(err, &cve) || errors.As(err, &uae) || errors.As(err, &hne) || errors.As(err, &cie) {
		return false
	}
	// A host name that does not exist (a typo, a self-hosted server
	// unknown to this network's DNS) does not start existing a second
	// later; a DNS server that failed to answer may.
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return !dnsErr.IsNotFound
	}
	var op *net.OpError
	if errors.As(err, &op) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNABORTED) {
		return true
	}
	// go-git flattens some network errors into strings.
	msg := err.Error()
	for _, s := range []string{"connection reset", "unexpected EOF", "broken pipe", "i/o timeout", "connection refused"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// explain turns a go-git error about repo into what the user should know
// and do. It never includes the credential: go-git's errors carry the URL
// (which has no user information) and the server's message.
func explain(err error, repo azdo.Repo, who string) error {
	u := repo.CloneURL()
	switch {
	case errors.Is(err, transport.ErrRepositoryNotFound):
		return fmt.Errorf("%w: %s (check the organization, project and repository names, and that %s may read it)", ErrRepoNotFound, u, who)
	case errors.Is(err, transport.ErrAuthenticationRequired):
		return fmt.Errorf("%w for %s (HTTP 401): %s; it may be expired, revoked or lack the Code (Read) scope for organization %q", ErrAuth, u, who, repo.Org)
	case errors.Is(err, transport.ErrAuthorizationFailed):
		return fmt.Errorf("%w for %s (HTTP 403): %s may not read this repository", ErrAuth, u, who)
	}
	if s := httpStatus(err); s != 0 {
		return fmt.Errorf("clone: %s answered HTTP %s: %w", u, strconv.Itoa(s), err)
	}
	return fmt.Errorf("clone: %s: %w", u, err)
}
