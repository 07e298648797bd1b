package credential

import (
	"context"
	"errors"
	"strings"

	"github.com/azdo-sidecar/azdo-sidecar/azdo"
	"github.com/azdo-sidecar/azdo-sidecar/token"
)

// NewTokenHandler returns the Handler that answers git with tokens from src
// for Azure DevOps hosts (hosts.Match; a nil hosts means Azure DevOps
// Services only):
//
//   - other hosts: no answer, so git asks its next helper;
//   - plain http to an Azure DevOps host: no credential ever (it would
//     travel unencrypted), only a MessageKey line saying what to do;
//   - get: an Entra token is a non-secret user name (token.DefaultUsername)
//     and the token as password — or, when git advertised
//     capability[]=authtype (git 2.46+), authtype=Bearer, credential=<token>
//     and ephemeral=1; a PAT is user name and password; when the URL
//     named the org as user (https://{org}@dev.azure.com/...), that user
//     name is kept;
//     password_expiry_utc whenever the expiry is known;
//   - get when the user must connect (*token.ConnectError) or the source
//     failed: quit=1 and a MessageKey line for stderr, so git neither
//     prompts nor hangs; token.ErrNoCredential: only a MessageKey line
//     saying why, so git moves on to its next helper (or prompts) and the
//     user knows the sidecar had nothing;
//   - erase: token.Invalidator.Invalidate with the rejected secret;
//   - store: nothing (see ServeCredential).
//
// The key is token.Key{Host: azdo.NormalizeHost(host), Org: hosts.OrgFor(...)}.
func NewTokenHandler(src token.Source, hosts *azdo.Hosts) Handler {
	return &tokenHandler{src: src, hosts: hosts}
}

type tokenHandler struct {
	src   token.Source
	hosts *azdo.Hosts
}

// ServeCredential implements Handler.
func (h *tokenHandler) ServeCredential(ctx context.Context, action string, req *Credential) (*Credential, error) {
	if req.Host == "" || !h.hosts.Match(req.Host) {
		return nil, nil
	}
	if req.Protocol != "https" {
		if req.Protocol == "http" && action == ActionGet {
			// No credential over plain http, ever; say why, so that the
			// prompt git shows next is not a mystery.
			return &Credential{Extra: []Attr{{MessageKey, oneLine("azdo-sidecar: no credential for http://" + req.Host + ": " + azdo.PlainHTTPAdvice)}}}, nil
		}
		return nil, nil
	}
	key := token.Key{
		Host: azdo.NormalizeHost(req.Host),
		Org:  h.hosts.OrgFor(req.Host, req.Path, req.Username),
	}
	switch action {
	case ActionGet:
		return h.get(ctx, key, req), nil
	case ActionErase:
		if inv, ok := h.src.(token.Invalidator); ok {
			rejected := token.Token{Kind: token.Basic, Username: req.Username, Secret: req.Password}
			if req.AuthType != "" || !req.Credential.IsZero() {
				rejected = token.Token{Kind: token.Bearer, Secret: req.Credential}
			}
			if !rejected.Secret.IsZero() {
				inv.Invalidate(key, rejected)
				// git's erase carries the user name of our answer, not the
				// URL's: without a path, the get that fetched the token may
				// have had no org. Invalidate drops a token only if it is the
				// rejected one, so trying that key too is safe.
				if k := (token.Key{Host: key.Host, Org: h.hosts.OrgFor(req.Host, req.Path, "")}); k != key {
					inv.Invalidate(k, rejected)
				}
			}
		}
		return nil, nil
	default:
		// store: the vault owns credentials and refreshes them; git must
		// not push a token back into any store, and there is nothing to
		// keep here that the source does not already have.
		return nil, nil
	}
}

func (h *tokenHandler) get(ctx context.Context, key token.Key, req *Credential) *Credential {
	tok, err := h.src.Token(ctx, key)
	if errors.Is(err, token.ErrNoCredential) {
		// No quit: git moves on to its next helper or prompt, and the user
		// reads why the sidecar had nothing (an unconfigured sidecar says
		// how to give it a token source).
		return &Credential{Extra: []Attr{{MessageKey, oneLine("azdo-sidecar: " + err.Error())}}}
	}
	if err != nil {
		// Source errors never carry secrets (token.Source's contract), and
		// *token.ConnectError's message names the connect URL.
		msg := "azdo-sidecar: " + err.Error()
		var ce *token.ConnectError
		var fe *token.ForbiddenError
		var ue *token.UnreachableError
		if errors.As(err, &ue) {
			msg = "azdo-sidecar: " + ue.Error()
		} else if errors.As(err, &fe) {
			// The message says which host or org the policy refuses.
			msg = "azdo-sidecar: " + fe.Error()
		} else if !errors.As(err, &ce) {
			msg = "azdo-sidecar: no token for " + key.String() + ": " + err.Error()
		} else if ce.PATURL != "" {
			msg += " (or, to use a personal access token instead: " + ce.PATURL + ")"
		}
		return &Credential{Quit: true, Extra: []Attr{{MessageKey, oneLine(msg)}}}
	}
	ans := &Credential{PasswordExpiry: tok.ExpiresAt}
	if tok.Notice != "" {
		// One stderr line per git command (git asks once): the helper
		// prints it and answers the credential as usual.
		ans.Extra = append(ans.Extra, Attr{MessageKey, oneLine("azdo-sidecar: warning: " + tok.Notice)})
	}
	if tok.Kind == token.Bearer && req.HasCapability(CapAuthType) {
		ans.Capabilities = []string{CapAuthType}
		ans.AuthType = "Bearer"
		ans.Credential = tok.Secret
		// ephemeral: git must not hand the token to storing helpers.
		ans.Ephemeral = true
		return ans
	}
	ans.Username = tok.User()
	if tok.Kind == token.Bearer {
		// An Entra token is never paired with a user name from the source.
		ans.Username = token.DefaultUsername
	}
	if req.Username != "" && strings.EqualFold(req.Username, key.Org) {
		// https://{org}@dev.azure.com/...: keep the org git already has as
		// user name (Azure DevOps accepts any), so that git's later erase
		// names the same org as this get.
		ans.Username = req.Username
	}
	if ans.Username == tok.Secret.Reveal() {
		// No source may slip a secret into the user name.
		ans.Username = token.DefaultUsername
	}
	ans.Password = tok.Secret
	return ans
}

// oneLine makes s safe for one protocol line and one line of stderr.
func oneLine(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c == '\n' || c == '\r' || c == 0 {
			b[i] = ' '
		}
	}
	if len(b) > 1024 {
		b = append(b[:1021], "..."...)
	}
	return string(b)
}
