package vault

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/azdo-sidecar/azdo-sidecar/azdo"
	"github.com/azdo-sidecar/azdo-sidecar/policy"
	"github.com/azdo-sidecar/azdo-sidecar/token"
	"github.com/azdo-sidecar/azdo-sidecar/vault/store"
	"github.com/azdo-sidecar/azdo-sidecar/vaultapi"
)

// Limits of a policy, so that it fits in a token answer and in the
// sidecar's 64 KiB bound on it.
const (
	maxPolicyPatterns = 64
	maxPatternLength  = 512
)

// ValidatePolicy checks p's patterns and returns it tidied: surrounding
// space trimmed, duplicates dropped, order kept. Repository patterns are
// HOST/ORG/PROJECT/REPO (self-hosted: HOST[/VDIR]/COLLECTION/PROJECT/REPO),
// "*" standing for one whole segment; ref patterns are git ref globs
// (refs/heads/agent/*). Its errors name the flag and the pattern.
func ValidatePolicy(p store.Policy) (store.Policy, error) {
	var err error
	if p.AllowRepos, err = tidy("--allow-repo", p.AllowRepos, both(CheckRepoPattern, policy.CheckPattern)); err != nil {
		return store.Policy{}, err
	}
	if p.ReadOnlyRepos, err = tidy("--read-only-repo", p.ReadOnlyRepos, both(CheckRepoPattern, policy.CheckPattern)); err != nil {
		return store.Policy{}, err
	}
	if p.PushRefs, err = tidy("--push-ref", p.PushRefs, both(CheckRefPattern, policy.CheckRefPattern)); err != nil {
		return store.Policy{}, err
	}
	return p, nil
}

// both runs the vault's check, then the sidecar's (package policy), so
// that every pattern the vault stores compiles where it is enforced.
func both(vaultCheck, sidecarCheck func(string) error) func(string) error {
	return func(s string) error {
		if err := vaultCheck(s); err != nil {
			return err
		}
		return sidecarCheck(s)
	}
}

func tidy(flag string, in []string, check func(string) error) ([]string, error) {
	var out []string
	for _, s := range in {
		s = strings.TrimSpace(s)
		if err := check(s); err != nil {
			return nil, fmt.Errorf("%s: %w", flag, err)
		}
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	if len(out) > maxPolicyPatterns {
		return nil, fmt.Errorf("%s: at most %d patterns", flag, maxPolicyPatterns)
	}
	return out, nil
}

// CheckRepoPattern validates one --allow-repo or --read-only-repo pattern.
// The sidecar's compiler (policy.CheckPattern) checks it too; this adds what
// the vault insists on before storing: a size bound, a real host[:port] and
// no control characters.
func CheckRepoPattern(s string) error {
	const want = "want HOST/ORG/PROJECT/REPO (self-hosted: HOST[/VDIR]/COLLECTION/PROJECT/REPO), \"*\" for a whole segment"
	if len(s) > maxPatternLength {
		return fmt.Errorf("repository pattern longer than %d bytes", maxPatternLength)
	}
	in := s
	if rest, ok := cutPrefixFold(in, "https://"); ok {
		in = rest
	}
	segs := strings.Split(strings.Trim(in, "/"), "/")
	if len(segs) < 4 {
		return fmt.Errorf("repository pattern %q: %s", s, want)
	}
	for i, seg := range segs {
		if d, err := url.PathUnescape(seg); err == nil {
			seg = d
		}
		if seg == "" || seg == "." || seg == ".." || strings.ContainsFunc(seg, func(r rune) bool { return r < 0x20 || r == 0x7f || r == '\\' }) {
			return fmt.Errorf("repository pattern %q: bad segment %q; %s", s, seg, want)
		}
		if strings.Contains(seg, "*") && seg != "*" {
			return fmt.Errorf("repository pattern %q: \"*\" must be a whole segment, not part of %q", s, seg)
		}
		segs[i] = strings.ToLower(seg)
	}
	host := segs[0]
	if host == "*" {
		return fmt.Errorf("repository pattern %q: the host cannot be \"*\"; name the Azure DevOps host", s)
	}
	if !validHostPort(host) {
		return fmt.Errorf("repository pattern %q: %q is not a host[:port]; %s", s, host, want)
	}
	host = azdo.NormalizeHost(host)
	n := len(segs)
	if azdo.IsServicesHost(host) && n != 4 {
		return fmt.Errorf("repository pattern %q: want %s/ORG/PROJECT/REPO on Azure DevOps Services", s, host)
	}
	return nil
}

// validHostPort reports whether s is a DNS name or IP literal with an
// optional port: what a URL's host may be, so that a pattern cannot smuggle
// a user, query or fragment.
func validHostPort(s string) bool {
	u, err := url.Parse("https://" + s + "/")
	return err == nil && u.Host == s && u.User == nil && u.Hostname() != "" && !strings.ContainsAny(s, "?#@%")
}

func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix) {
		return s[len(prefix):], true
	}
	return s, false
}

// CheckRefPattern validates one --push-ref pattern: a full git ref glob
// where "*" matches any run of characters.
func CheckRefPattern(s string) error {
	if len(s) > maxPatternLength {
		return fmt.Errorf("ref pattern longer than %d bytes", maxPatternLength)
	}
	if !strings.HasPrefix(s, "refs/") || strings.ContainsAny(s, " \t\r\n\x00\\?[~^:") || strings.Contains(s, "..") ||
		strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return fmt.Errorf("ref pattern %q: want a full ref glob such as refs/heads/agent/* (\"*\" matches any characters)", s)
	}
	return nil
}

// allowsOrg reports whether p lets the environment have a token for key's
// host and organization: p has no --allow-repo, or one of its
// --allow-repo or --read-only-repo patterns names the host and the
// organization (or "*" for it). A read-only repository is one the
// environment may fetch, so its organization is allowed too; the sidecar
// refuses the pushes. The matching is the sidecar's (package policy), so
// the two never disagree; a policy that does not compile allows nothing.
func allowsOrg(p store.Policy, key token.Key) bool {
	if len(p.AllowRepos) == 0 {
		return true
	}
	cp, err := policy.Compile(vaultapi.Policy{AllowRepos: p.AllowRepos, ReadOnlyRepos: p.ReadOnlyRepos})
	if err != nil {
		return false
	}
	return cp.AllowsOrg(key.Host, key.Org)
}

// forbidden is the refusal of a token for key under env's policy.
func forbidden(env store.Environment, key token.Key) error {
	allowed := strings.Join(append(slices.Clip(env.Policy.AllowRepos), env.Policy.ReadOnlyRepos...), ", ")
	if len(allowed) > 160 {
		allowed = allowed[:160] + "…"
	}
	what := key.String()
	if key.Org == "" {
		what = key.Host + " without an organization"
	}
	return &token.ForbiddenError{Key: key, Message: fmt.Sprintf("this environment may not use %s (allowed: %s)", what, allowed)}
}

// wirePolicy is env's policy as a token answer carries it.
func wirePolicy(env store.Environment) vaultapi.Policy {
	return vaultapi.Policy{
		Version:       env.PolicyVersion,
		AllowRepos:    env.Policy.AllowRepos,
		ReadOnlyRepos: env.Policy.ReadOnlyRepos,
		PushRefs:      env.Policy.PushRefs,
		ProxyOnly:     env.Policy.ProxyOnly,
	}
}

// policyJSON marshals env's policy once: the MAC covers exactly these
// bytes, which go on the wire as they are.
func policyJSON(env store.Environment) (json.RawMessage, error) {
	b, err := json.Marshal(wirePolicy(env))
	if err != nil {
		return nil, fmt.Errorf("vault: policy of %s: %w", env.ID, err)
	}
	return b, nil
}

// SetPolicy validates p and makes it environment id's policy (see
// UpdatePolicy).
func SetPolicy(ctx context.Context, st store.Store, b *Binding, id string, p store.Policy) (store.Environment, error) {
	return UpdatePolicy(ctx, st, b, id, func(store.Policy) store.Policy { return p })
}

// UpdatePolicy makes change(current policy), validated, environment id's
// policy, in one transaction, so that updates made at once by several
// administrators lose none. It takes effect at the environment's next
// token request on every replica (the vault reads the environment from the
// store on every request). The row's MAC, made with b, covers the policy
// and its version, so only a holder of the runner key can change them. It
// returns the environment with its new PolicyVersion, store.ErrNotFound,
// or ValidatePolicy's error.
func UpdatePolicy(ctx context.Context, st store.Store, b *Binding, id string, change func(cur store.Policy) store.Policy) (store.Environment, error) {
	if b == nil {
		return store.Environment{}, errors.New("vault: changing a policy needs the runner key")
	}
	e, err := st.SetEnvironmentPolicy(ctx, id, func(cur store.Environment) (store.Policy, error) {
		return ValidatePolicy(change(cur.Policy))
	}, b.EnvironmentMAC)
	if err != nil {
		return store.Environment{}, err
	}
	return e, nil
}
