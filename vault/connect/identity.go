package connect

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/azdo-sidecar/azdo-sidecar/vault/store"
)

// OwnerCheck decides whether the account that signed in (Connect) or the
// user a PAT belongs to is the environment owner's. Without it, whoever
// opens a link would connect their own Azure DevOps access to the link's
// owner: Mallory sends Alice his link, Alice's browser signs her in
// silently, and Mallory's environment receives Alice's tokens.
type OwnerCheck struct {
	// Claim names the user: preferred_username (default), upn, email or
	// oid.
	Claim string
	// Owners maps an owner (env create --owner) to the identity expected
	// for it; an owner not listed is its own identity.
	Owners map[string]string
	// InsecureSkip turns the check off (identity:
	// insecure_skip_owner_check).
	InsecureSkip bool
}

func (o OwnerCheck) claim() string {
	if o.Claim == "" {
		return "preferred_username"
	}
	return o.Claim
}

// Expected returns the identity the owner must sign in as.
func (o OwnerCheck) Expected(owner string) string {
	if id, ok := o.Owners[owner]; ok {
		return id
	}
	return owner
}

// loginHint is the login_hint for owner: the expected identity when it
// is a user name (a UPN or an email), else nothing.
func (o OwnerCheck) loginHint(owner string) string {
	if o.InsecureSkip || o.claim() == "oid" {
		return ""
	}
	if id := o.Expected(owner); strings.Contains(id, "@") && !strings.ContainsAny(id, " \t\r\n") {
		return id
	}
	return ""
}

// Matches reports whether got (the claim's value of the account that
// signed in) is owner's identity: case-insensitive for names, exact for an
// object ID. An empty got never matches.
func (o OwnerCheck) Matches(owner, got string) bool {
	if o.InsecureSkip {
		return true
	}
	want := o.Expected(owner)
	if got == "" || want == "" {
		return false
	}
	if o.claim() == "oid" {
		return got == want
	}
	return strings.EqualFold(strings.TrimSpace(got), strings.TrimSpace(want))
}

// ownerMismatch writes the page, the log line and the waiting
// environment's failure for an account that is not the owner's. Nothing
// has been stored.
func (h *Handler) ownerMismatch(ctx context.Context, w http.ResponseWriter, owner, env, host string, kind store.Kind, signedIn string) {
	want := h.owners.Expected(owner)
	h.log.Warn("connect refused: signed-in identity is not the owner's; nothing stored",
		"owner", owner, "env", env, "host", host, "kind", string(kind), "signed_in", signedIn, "expected", want)
	h.vault.ConnectFailed(ctx, owner, env, host, kind, fmt.Sprintf("signed in as %s, not as %s", signedIn, want))
	name, _, _ := strings.Cut(owner, "@")
	render(w, http.StatusForbidden, "mismatch", page{Title: "Wrong account", Host: host, Owner: owner, Who: signedIn, Expected: want, OwnerName: name})
}
