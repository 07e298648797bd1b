// Package clone is `azdo-sidecar clone`: a go-git clone of whatever an Azure
// DevOps URL designates (repository, branch, tag, commit, pull request,
// file, SSH URL), with the credential from a token.Source, so that an
// environment starts on the right revision without a git credential helper
// being set up yet.
//
// The clone leaves origin as the clean HTTPS clone URL (no token, no org@),
// so later git fetch and push go through the sidecar. A failed clone leaves
// nothing behind.
package clone

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp/capability"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/plumbing/transport/client"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"

	"github.com/azdo-sidecar/azdo-sidecar/azdo"
	"github.com/azdo-sidecar/azdo-sidecar/token"
)

// Defaults of Options.
const (
	DefaultAttempts = 4
	DefaultBackoff  = time.Second
	// maxSubmoduleDepth bounds submodule recursion (a cycle would
	// otherwise never end).
	maxSubmoduleDepth = 8
)

// Options configure one clone.
type Options struct {
	// URL is any Azure DevOps URL azdo.Parse accepts.
	URL string
	// Dir is the destination; default the repository name (without a
	// ".git" suffix) in the current directory. It must not exist or be an
	// empty directory.
	Dir string
	// Depth > 0 makes a shallow clone of that many commits.
	Depth int
	// RecurseSubmodules clones the submodules that are on Azure DevOps
	// hosts, with the same token source; others are skipped with a note.
	RecurseSubmodules bool
	// Hosts says which hosts are Azure DevOps (nil: services only).
	Hosts *azdo.Hosts
	// Tokens hands out the credential (required unless ViaProxy).
	Tokens token.Source
	// ViaProxy: HTTPClient goes through the sidecar's proxy, which injects
	// the credential; the clone never holds a token (proxy-only
	// environments). Tokens is not used.
	ViaProxy bool
	// HTTPClient talks to Azure DevOps; nil means NewHTTPClient with
	// defaults. Its transport is wrapped, never modified.
	HTTPClient *http.Client
	// Progress receives progress and notes (stderr); nil discards.
	Progress io.Writer
	// Attempts bounds tries of each network step on transient errors
	// (default DefaultAttempts); Backoff is the first delay, doubled after
	// each try (default DefaultBackoff).
	Attempts int
	Backoff  time.Duration
	// Sleep waits between tries; default a timer that honours ctx.
	Sleep func(ctx context.Context, d time.Duration) error
	// Clock tells the time for progress rates; default time.Now.
	Clock func() time.Time
}

// Result describes a finished clone.
type Result struct {
	Dir    string       // absolute path of the working tree
	Target *azdo.Target // what the URL designated
	Head   string       // the checked-out commit
	Branch string       // the local branch checked out; "" for a detached HEAD
	// File is, for a file URL, the absolute path of the file in the
	// working tree.
	File string
	// Submodules are the paths of the submodules cloned; Skipped those
	// left out because they are not on Azure DevOps.
	Submodules []string
	Skipped    []string
}

// globalMu serialises clones: go-git keeps the transport for https and the
// capabilities it refuses in package variables, which a clone changes for
// its duration (see withGoGit).
var globalMu sync.Mutex

// Clone clones what o.URL designates into o.Dir. On failure the destination
// is removed (or emptied, if it existed) and the error says what to do.
func Clone(ctx context.Context, o Options) (res *Result, err error) {
	if o.Tokens == nil && !o.ViaProxy {
		return nil, errors.New("clone: no token source")
	}
	t, err := azdo.Parse(o.URL, o.Hosts)
	if err != nil {
		return nil, err
	}
	c := &cloner{o: o, received: new(atomic.Int64)}
	c.defaults()
	dir := o.Dir
	if dir == "" {
		dir = DefaultDir(t.Repo)
	}
	dir, err = filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("clone: %w", err)
	}
	dest, err := prepareDir(dir)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			if cerr := dest.cleanup(); cerr != nil {
				err = fmt.Errorf("%w (and cleaning up %s failed: %v)", err, dir, cerr)
			}
		}
	}()

	globalMu.Lock()
	defer globalMu.Unlock()
	restore := c.withGoGit()
	defer restore()
	// Idle keep-alive connections hold goroutines; a clone is over when
	// it returns.
	defer c.o.HTTPClient.CloseIdleConnections()

	res = &Result{Dir: dir, Target: t}
	c.prog.Printf("Cloning %s into %s", t.Repo.CloneURL(), dir)
	if err := c.cloneTarget(ctx, dir, t, res); err != nil {
		return nil, err
	}
	if o.RecurseSubmodules {
		if err := c.submodules(ctx, dir, t.Repo, res, 0); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// DefaultDir is the directory git would clone repo into: its name without a
// ".git" suffix.
func DefaultDir(repo azdo.Repo) string {
	name := strings.TrimSuffix(repo.Name, ".git")
	if name == "" || name == "." || name == ".." {
		name = "repo"
	}
	return name
}

type cloner struct {
	o        Options
	received *atomic.Int64
	prog     *progress
}

func (c *cloner) defaults() {
	if c.o.Attempts <= 0 {
		c.o.Attempts = DefaultAttempts
	}
	if c.o.Backoff <= 0 {
		c.o.Backoff = DefaultBackoff
	}
	if c.o.Sleep == nil {
		c.o.Sleep = sleepCtx
	}
	if c.o.Clock == nil {
		c.o.Clock = time.Now
	}
	if c.o.HTTPClient == nil {
		c.o.HTTPClient = NewHTTPClient(HTTPOptions{})
	}
	c.prog = newProgress(c.o.Progress, c.received, c.o.Clock)
}

// withGoGit installs this clone's HTTP client as go-git's https transport
// and lets go-git advertise multi_ack, which Azure DevOps requires of every
// upload-pack client (TF401041), for as long as the clone runs; the
// returned function puts both back. Only multi_ack is let through, not
// multi_ack_detailed or thin-pack: a clone fetches into a repository with
// no common commits, so the server has nothing to acknowledge and answers
// with a single NAK, which go-git reads correctly. Incremental fetches,
// where multi_ack answers would matter, are left to the git CLI through
// the sidecar.
func (c *cloner) withGoGit() (restore func()) {
	hc := *c.o.HTTPClient
	next := hc.Transport
	if next == nil {
		next = http.DefaultTransport
	}
	hc.Transport = &azdoTransport{next: next, received: c.received}
	oldCaps := transport.UnsupportedCapabilities
	var caps []capability.Capability
	for _, cp := range oldCaps {
		if cp != capability.MultiACK {
			caps = append(caps, cp)
		}
	}
	transport.UnsupportedCapabilities = caps
	oldHTTPS := client.Protocols["https"]
	client.InstallProtocol("https", githttp.NewClient(&hc))
	return func() {
		transport.UnsupportedCapabilities = oldCaps
		client.InstallProtocol("https", oldHTTPS)
	}
}

// auth returns the go-git credential for repo from the token source.
func (c *cloner) auth(ctx context.Context, repo azdo.Repo) (transport.AuthMethod, string, error) {
	if c.o.ViaProxy {
		// The proxy replaces whatever credential a request carries.
		return nil, "the sidecar's proxy", nil
	}
	key := token.Key{Host: repo.Host, Org: repo.CredentialOrg()}
	var tok token.Token
	err := c.retry(ctx, "get a token for "+key.String(), func() error {
		var err error
		tok, err = c.o.Tokens.Token(ctx, key)
		if errors.Is(err, token.ErrUnavailable) {
			return retryable{err}
		}
		return err
	})
	if err != nil {
		var ce *token.ConnectError
		if errors.As(err, &ce) {
			return nil, "", fmt.Errorf("clone: not connected to Azure DevOps: %w; then run the clone again", err)
		}
		return nil, "", fmt.Errorf("clone: no credential for %s: %w", key, err)
	}
	if tok.Kind == token.Bearer {
		return &githttp.TokenAuth{Token: tok.Secret.Reveal()}, "the Entra ID token of the connected account", nil
	}
	return &githttp.BasicAuth{Username: tok.User(), Password: tok.Secret.Reveal()}, "the personal access token", nil
}

// retryable marks an error from a step that is transient although
// transient() would not know it.
type retryable struct{ error }

func (r retryable) Unwrap() error { return r.error }

// retry runs step until it succeeds, fails with a permanent error, or
// o.Attempts tries have failed, waiting o.Backoff (doubled each time, with
// jitter) in between.
func (c *cloner) retry(ctx context.Context, what string, step func() error) error {
	delay := c.o.Backoff
	for attempt := 1; ; attempt++ {
		err := step()
		if err == nil {
			return nil
		}
		isRetryable := transient(err)
		var r retryable
		if errors.As(err, &r) {
			isRetryable, err = true, r.error
		}
		if !isRetryable || attempt >= c.o.Attempts || ctx.Err() != nil {
			return err
		}
		d := delay/2 + rand.N(delay/2+1)
		c.prog.Printf("%s failed (%v); retrying in %s (attempt %d of %d)", what, err, d.Round(time.Millisecond), attempt+1, c.o.Attempts)
		if serr := c.o.Sleep(ctx, d); serr != nil {
			return err
		}
		delay *= 2
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// cloneTarget clones t into the (empty) directory dir.
func (c *cloner) cloneTarget(ctx context.Context, dir string, t *azdo.Target, res *Result) error {
	auth, who, err := c.auth(ctx, t.Repo)
	if err != nil {
		return err
	}
	r, err := git.PlainInit(dir, false)
	if err != nil {
		return fmt.Errorf("clone: init %s: %w", dir, err)
	}
	if _, err := r.CreateRemote(&config.RemoteConfig{
		Name:  git.DefaultRemoteName,
		URLs:  []string{t.Repo.CloneURL()},
		Fetch: []config.RefSpec{config.RefSpec(fmt.Sprintf(config.DefaultFetchRefSpec, git.DefaultRemoteName))},
	}); err != nil {
		return fmt.Errorf("clone: %w", err)
	}
	refs, err := c.list(ctx, r, t.Repo, auth, who)
	if errors.Is(err, transport.ErrEmptyRemoteRepository) {
		if t.Kind != azdo.Default {
			return &RefNotFoundError{Repo: t.Repo.CloneURL(), Kind: t.Kind, Name: targetName(t), Hint: "the repository is empty"}
		}
		c.prog.Printf("warning: you appear to have cloned an empty repository")
		return nil
	}
	if err != nil {
		return err
	}
	p, err := plan(t, refs, c.o.Depth)
	if err != nil {
		return err
	}
	if err := c.fetch(ctx, r, t.Repo, p.specs, c.o.Depth, auth, who); err != nil {
		return err
	}
	return c.checkout(r, t, p, refs, res)
}

// list is ls-remote with retries.
func (c *cloner) list(ctx context.Context, r *git.Repository, repo azdo.Repo, auth transport.AuthMethod, who string) ([]*plumbing.Reference, error) {
	remote, err := r.Remote(git.DefaultRemoteName)
	if err != nil {
		return nil, fmt.Errorf("clone: %w", err)
	}
	var refs []*plumbing.Reference
	err = c.retry(ctx, "list "+repo.CloneURL(), func() error {
		var err error
		refs, err = remote.ListContext(ctx, &git.ListOptions{Auth: auth})
		return err
	})
	if errors.Is(err, transport.ErrEmptyRemoteRepository) {
		return nil, err
	}
	if err != nil {
		return nil, explain(err, repo, who)
	}
	return refs, nil
}

// fetch fetches specs into r with retries and progress.
func (c *cloner) fetch(ctx context.Context, r *git.Repository, repo azdo.Repo, specs []config.RefSpec, depth int, auth transport.AuthMethod, who string) error {
	stop := c.prog.transfer("Receiving " + repo.Name)
	err := c.retry(ctx, "fetch "+repo.CloneURL(), func() error {
		err := r.FetchContext(ctx, &git.FetchOptions{
			RemoteName: git.DefaultRemoteName,
			RefSpecs:   specs,
			Depth:      depth,
			Auth:       auth,
			Progress:   c.prog,
			Tags:       git.NoTags,
		})
		if errors.Is(err, git.NoErrAlreadyUpToDate) {
			return nil
		}
		return err
	})
	stop()
	if err != nil {
		return explain(err, repo, who)
	}
	return nil
}

// fetchPlan is what to fetch and check out for a target.
type fetchPlan struct {
	specs  []config.RefSpec
	branch string                 // check out this branch (Default, Branch, File on a branch)
	ref    plumbing.ReferenceName // or this local ref's commit, detached (Tag) or on a pr/N branch (PullRequest)
	commit plumbing.Hash          // or this commit, detached (Commit)
	head   string                 // the remote's default branch, for origin/HEAD
}

const (
	headsSpec = "+refs/heads/*:refs/remotes/origin/*"
	tagsSpec  = "+refs/tags/*:refs/tags/*"
)

// plan decides what to fetch for t, given the remote's refs, and checks
// that the branch, tag or pull request exists.
func plan(t *azdo.Target, refs []*plumbing.Reference, depth int) (*fetchPlan, error) {
	byName := map[plumbing.ReferenceName]*plumbing.Reference{}
	var branches, tags, prs []string
	for _, r := range refs {
		byName[r.Name()] = r
		switch n := r.Name(); {
		case n.IsBranch():
			branches = append(branches, n.Short())
		case n.IsTag():
			tags = append(tags, n.Short())
		case strings.HasPrefix(n.String(), "refs/pull/") && strings.HasSuffix(n.String(), "/merge"):
			prs = append(prs, strings.TrimSuffix(strings.TrimPrefix(n.String(), "refs/pull/"), "/merge"))
		}
	}
	p := &fetchPlan{head: defaultBranch(byName, branches)}
	url := t.Repo.CloneURL()
	all := func() {
		p.specs = append(p.specs, headsSpec)
		if depth == 0 {
			p.specs = append(p.specs, tagsSpec)
		}
	}
	branch := func(name string) error {
		if byName[plumbing.NewBranchReferenceName(name)] == nil {
			return &RefNotFoundError{Repo: url, Kind: azdo.Branch, Name: name, Nearest: nearest(name, branches, 3)}
		}
		p.branch = name
		if depth > 0 {
			p.specs = []config.RefSpec{config.RefSpec(fmt.Sprintf("+refs/heads/%s:refs/remotes/origin/%[1]s", name))}
		} else {
			all()
		}
		return nil
	}
	tag := func(name string) error {
		rn := plumbing.NewTagReferenceName(name)
		if byName[rn] == nil {
			return &RefNotFoundError{Repo: url, Kind: azdo.Tag, Name: name, Nearest: nearest(name, tags, 3)}
		}
		p.ref = rn
		p.specs = []config.RefSpec{config.RefSpec(fmt.Sprintf("+%s:%[1]s", rn))}
		if depth == 0 {
			all()
		}
		return nil
	}
	commit := func(sha string) error {
		p.commit = plumbing.NewHash(sha)
		// Azure DevOps does not advertise fetching a commit by id, so
		// fetch what leads to it: every branch and tag.
		p.specs = []config.RefSpec{headsSpec, tagsSpec}
		return nil
	}
	rev := func() error {
		switch {
		case t.Branch != "":
			return branch(t.Branch)
		case t.Tag != "":
			return tag(t.Tag)
		case t.Commit != "":
			return commit(t.Commit)
		}
		if p.head == "" {
			return &RefNotFoundError{Repo: url, Kind: azdo.Branch, Name: "HEAD", Hint: "the repository has no default branch"}
		}
		return branch(p.head)
	}
	var err error
	switch t.Kind {
	case azdo.PullRequest:
		id := strconv.Itoa(t.PullRequest)
		src := plumbing.ReferenceName("refs/pull/" + id + "/merge")
		if byName[src] == nil {
			return nil, &RefNotFoundError{Repo: url, Kind: azdo.PullRequest, Name: id, Nearest: nearest(id, prs, 3),
				Hint: "a pull request has a merge ref only while it is active and merges without conflicts"}
		}
		p.ref = plumbing.ReferenceName("refs/remotes/origin/pull/" + id + "/merge")
		p.specs = []config.RefSpec{config.RefSpec(fmt.Sprintf("+%s:%s", src, p.ref))}
		if depth == 0 {
			all()
		}
	default:
		err = rev()
	}
	if err != nil {
		return nil, err
	}
	return p, nil
}

// defaultBranch is the branch the remote's HEAD points at; without a
// symbolic HEAD, the branch at HEAD's commit (main or master first), else
// main, master or the first branch.
func defaultBranch(byName map[plumbing.ReferenceName]*plumbing.Reference, branches []string) string {
	head := byName[plumbing.HEAD]
	if head != nil && head.Type() == plumbing.SymbolicReference && head.Target().IsBranch() {
		if byName[head.Target()] != nil {
			return head.Target().Short()
		}
	}
	prefer := []string{"main", "master"}
	if head != nil && head.Type() == plumbing.HashReference {
		for _, b := range append(prefer, branches...) {
			if r := byName[plumbing.NewBranchReferenceName(b)]; r != nil && r.Hash() == head.Hash() {
				return b
			}
		}
	}
	for _, b := range prefer {
		if byName[plumbing.NewBranchReferenceName(b)] != nil {
			return b
		}
	}
	if len(branches) > 0 {
		return branches[0]
	}
	return ""
}

func targetName(t *azdo.Target) string {
	switch {
	case t.Kind == azdo.PullRequest:
		return strconv.Itoa(t.PullRequest)
	case t.Branch != "":
		return t.Branch
	case t.Tag != "":
		return t.Tag
	case t.Commit != "":
		return t.Commit
	}
	return "HEAD"
}

// checkout checks out what p designates and fills res.
func (c *cloner) checkout(r *git.Repository, t *azdo.Target, p *fetchPlan, refs []*plumbing.Reference, res *Result) error {
	if p.head != "" {
		remoteHead := plumbing.NewRemoteReferenceName(git.DefaultRemoteName, p.head)
		if _, err := r.Reference(remoteHead, false); err == nil {
			_ = r.Storer.SetReference(plumbing.NewSymbolicReference(
				plumbing.NewRemoteHEADReferenceName(git.DefaultRemoteName), remoteHead))
		}
	}
	w, err := r.Worktree()
	if err != nil {
		return fmt.Errorf("clone: %w", err)
	}
	var hash plumbing.Hash
	switch {
	case p.branch != "":
		ref, err := r.Reference(plumbing.NewRemoteReferenceName(git.DefaultRemoteName, p.branch), true)
		if err != nil {
			return fmt.Errorf("clone: branch %s was not fetched: %w", p.branch, err)
		}
		hash = ref.Hash()
		local := plumbing.NewBranchReferenceName(p.branch)
		if err := r.Storer.SetReference(plumbing.NewHashReference(local, hash)); err != nil {
			return fmt.Errorf("clone: %w", err)
		}
		if err := r.CreateBranch(&config.Branch{Name: p.branch, Remote: git.DefaultRemoteName, Merge: local}); err != nil {
			return fmt.Errorf("clone: %w", err)
		}
		if err := w.Checkout(&git.CheckoutOptions{Branch: local, Force: true}); err != nil {
			return fmt.Errorf("clone: check out %s: %w", p.branch, err)
		}
		res.Branch = p.branch
	case p.ref != "":
		ref, err := r.Reference(p.ref, true)
		if err != nil {
			return fmt.Errorf("clone: %s was not fetched: %w", p.ref, err)
		}
		hash, err = peel(r, ref.Hash())
		if err != nil {
			return fmt.Errorf("clone: %s: %w", p.ref, err)
		}
		if t.Kind == azdo.PullRequest {
			// A local branch named after the pull request, without an
			// upstream: its merge ref is rewritten by every push to it.
			name := "pr/" + strconv.Itoa(t.PullRequest)
			local := plumbing.NewBranchReferenceName(name)
			if err := r.Storer.SetReference(plumbing.NewHashReference(local, hash)); err != nil {
				return fmt.Errorf("clone: %w", err)
			}
			if err := w.Checkout(&git.CheckoutOptions{Branch: local, Force: true}); err != nil {
				return fmt.Errorf("clone: check out %s: %w", name, err)
			}
			res.Branch = name
		} else if err := w.Checkout(&git.CheckoutOptions{Hash: hash, Force: true}); err != nil {
			return fmt.Errorf("clone: check out %s: %w", p.ref.Short(), err)
		}
	default:
		hash = p.commit
		if _, err := r.CommitObject(hash); err != nil {
			hint := "it is on no branch or tag"
			if c.o.Depth > 0 {
				hint = fmt.Sprintf("it is not within the last %d commits of a branch; clone without --depth", c.o.Depth)
			}
			return &RefNotFoundError{Repo: t.Repo.CloneURL(), Kind: azdo.Commit, Name: hash.String(), Hint: hint}
		}
		if err := w.Checkout(&git.CheckoutOptions{Hash: hash, Force: true}); err != nil {
			return fmt.Errorf("clone: check out %s: %w", hash, err)
		}
	}
	res.Head = hash.String()
	if t.Path != "" {
		// Cleaned as an absolute path, the file stays inside the clone.
		res.File = filepath.Join(res.Dir, filepath.FromSlash(path.Clean("/"+t.Path)))
		if _, err := os.Stat(res.File); err != nil {
			c.prog.Printf("warning: %s does not exist at this revision", t.Path)
		}
	}
	return nil
}

// peel returns the commit an annotated tag (or a chain of them) points at.
func peel(r *git.Repository, h plumbing.Hash) (plumbing.Hash, error) {
	for range 10 {
		tag, err := r.TagObject(h)
		if errors.Is(err, plumbing.ErrObjectNotFound) {
			return h, nil
		}
		if err != nil {
			return h, err
		}
		if tag.TargetType != plumbing.CommitObject && tag.TargetType != plumbing.TagObject {
			return h, fmt.Errorf("tag points at a %s, not a commit", tag.TargetType)
		}
		h = tag.Target
	}
	return h, errors.New("tag chain too long")
}
