package proxy

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/azdo-sidecar/azdo-sidecar/token"
)

// tokenErrorResponse is the one place that maps token source errors to what
// the client sees, and to the metric result label.
//
// "Connect required" is a 401 whose text/plain body names the connect link,
// with a Bearer challenge that no client answers by itself, for every
// client except git. Git 2.39 prompts for a user name on a 401 unless a
// credential helper answers, and never shows a 401's body; on any other
// error status it prints a text/plain body line by line as "remote: ...",
// then fails. So git (User-Agent git/…) gets the same body with a 403: it
// fails fast, shows the link and never prompts, with or without the
// credential helper. The other "no credential" answers are 403 for all.
func tokenErrorResponse(req *http.Request, key token.Key, err error) (result string, resp *http.Response) {
	var ce *token.ConnectError
	var ra *token.RetryAfterError
	var fe *token.ForbiddenError
	var ue *token.UnreachableError
	switch {
	case errors.As(err, &ce):
		msg := "azdo-sidecar: " + connectLine(ce) + "\n"
		if ce.ConnectURL != "" {
			msg += "azdo-sidecar: open this link in a browser, then run the git command again:\nazdo-sidecar:   " + ce.ConnectURL + "\n"
		}
		if ce.PATURL != "" {
			msg += "azdo-sidecar: or, to use a personal access token instead:\nazdo-sidecar:   " + ce.PATURL + "\n"
		}
		if isGit(req) {
			return "connect_required", textResponse(req, http.StatusForbidden, msg)
		}
		resp := textResponse(req, http.StatusUnauthorized, msg)
		code := "connect_required"
		if ce.Reconnect {
			code = "reconnect_required"
		}
		resp.Header.Set("WWW-Authenticate", `Bearer realm="azdo-sidecar", error="`+code+`"`)
		return "connect_required", resp
	case errors.As(err, &fe):
		// The vault's policy for this environment: a refusal the user
		// reads, as git shows it ("remote: azdo-sidecar: ..."), not a
		// missing credential.
		return "forbidden_by_policy", textResponse(req, http.StatusForbidden, "azdo-sidecar: "+oneLine(fe.Error())+"\n")
	case errors.Is(err, token.ErrUnauthorized):
		return "unauthorized", textResponse(req, http.StatusForbidden,
			"azdo-sidecar: this environment is not authorized by the vault (its environment token was rejected); ask your administrator\n")
	case errors.Is(err, token.ErrNoCredential):
		return "no_credential", textResponse(req, http.StatusForbidden, fmt.Sprintf(
			"azdo-sidecar: no credential configured for %s: %v\n", key, err))
	case errors.As(err, &ue):
		// Not an outage to wait out: the vault cannot be reached at all.
		return "unavailable", textResponse(req, http.StatusServiceUnavailable, "azdo-sidecar: "+ue.Error()+"\n")
	case errors.As(err, &ra), errors.Is(err, token.ErrUnavailable):
		resp := textResponse(req, http.StatusServiceUnavailable, fmt.Sprintf(
			"azdo-sidecar: the token source is unavailable for %s; try again shortly\n", key))
		if ra != nil && ra.After > 0 {
			resp.Header.Set("Retry-After", strconv.Itoa(int(ra.After.Seconds()+0.999)))
		}
		return "unavailable", resp
	default:
		return "error", textResponse(req, http.StatusBadGateway, fmt.Sprintf(
			"azdo-sidecar: cannot get a token for %s: %v\n", key, err))
	}
}

// isGit reports whether req comes from the git CLI, whose User-Agent is
// "git/<version>" (curl-based transports, any platform).
func isGit(req *http.Request) bool {
	return strings.HasPrefix(req.Header.Get("User-Agent"), "git/")
}

// textResponse builds a text/plain response to req.
func textResponse(req *http.Request, status int, body string) *http.Response {
	h := make(http.Header)
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	return &http.Response{
		Status:        strconv.Itoa(status) + " " + http.StatusText(status),
		StatusCode:    status,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        h,
		Body:          io.NopCloser(strings.NewReader(body)),
		ContentLength: int64(len(body)),
		Request:       req,
	}
}

// connectLine is the first line of a connect answer: what is required and
// why, kept short (the link has lines of its own). A reason that is long or
// repeats a link is left out.
func connectLine(ce *token.ConnectError) string {
	verb := "connect"
	if ce.Reconnect {
		verb = "reconnect"
	}
	line := fmt.Sprintf("Azure DevOps (%s): %s required", ce.Key, verb)
	if r := strings.TrimSpace(ce.Reason); r != "" && len(r) <= 120 && !strings.Contains(r, "://") && !strings.Contains(r, "\n") {
		line += " (" + r + ")"
	}
	return line
}

// oneLine keeps s on one line of git's "remote:" output.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' {
			return ' '
		}
		return r
	}, s)
}
