package clone

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"path"
	"path/filepath"
	"slices"
	"strings"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"

	"github.com/azdo-sidecar/azdo-sidecar/azdo"
)

// submodules clones the submodules of the working tree at dir (whose
// origin is parent) that live on Azure DevOps, each at the commit the
// superproject records, with a credential for its own organization, and
// recurses into them. Others are skipped with a note: this command only
// holds Azure DevOps credentials.
func (c *cloner) submodules(ctx context.Context, dir string, parent azdo.Repo, res *Result, level int) error {
	r, err := git.PlainOpen(dir)
	if err != nil {
		return fmt.Errorf("clone: submodules of %s: %w", dir, err)
	}
	w, err := r.Worktree()
	if err != nil {
		return fmt.Errorf("clone: submodules of %s: %w", dir, err)
	}
	subs, err := w.Submodules()
	if err != nil {
		return fmt.Errorf("clone: read .gitmodules of %s: %w", dir, err)
	}
	// go-git returns submodules in map order; clone them in path order so
	// that progress, results and errors are the same on every run.
	slices.SortFunc(subs, func(a, b *git.Submodule) int { return strings.Compare(a.Config().Path, b.Config().Path) })
	if len(subs) > 0 && level >= maxSubmoduleDepth {
		return fmt.Errorf("clone: submodules nested more than %d deep under %s", maxSubmoduleDepth, dir)
	}
	for _, s := range subs {
		sc := s.Config()
		rel, _ := filepath.Rel(res.Dir, filepath.Join(dir, filepath.FromSlash(sc.Path)))
		rel = filepath.ToSlash(rel)
		st, err := s.Status()
		if err != nil || st.Expected.IsZero() {
			c.prog.Printf("note: skipping submodule %s: the superproject records no commit for it", rel)
			res.Skipped = append(res.Skipped, rel)
			continue
		}
		raw, err := resolveSubmoduleURL(parent, sc.URL)
		var tg *azdo.Target
		if err == nil {
			tg, err = azdo.Parse(raw, c.o.Hosts)
		}
		if err != nil || tg.Kind != azdo.Default {
			c.prog.Printf("note: skipping submodule %s: %s is not an Azure DevOps repository URL", rel, redactURL(sc.URL))
			res.Skipped = append(res.Skipped, rel)
			continue
		}
		// Record the clean HTTPS URL, so that git later reaches the
		// submodule through the sidecar like the superproject.
		sc.URL = tg.Repo.CloneURL()
		if err := s.Init(); err != nil && !errors.Is(err, git.ErrSubmoduleAlreadyInitialized) {
			return fmt.Errorf("clone: submodule %s: %w", rel, err)
		}
		sr, err := s.Repository()
		if err != nil {
			return fmt.Errorf("clone: submodule %s: %w", rel, err)
		}
		c.prog.Printf("Cloning submodule %s from %s", rel, tg.Repo.CloneURL())
		auth, who, err := c.auth(ctx, tg.Repo)
		if err != nil {
			return fmt.Errorf("submodule %s: %w", rel, err)
		}
		if _, err := c.list(ctx, sr, tg.Repo, auth, who); err != nil {
			return fmt.Errorf("submodule %s: %w", rel, err)
		}
		specs := []config.RefSpec{headsSpec, tagsSpec}
		if err := c.fetch(ctx, sr, tg.Repo, specs, 0, auth, who); err != nil {
			return fmt.Errorf("submodule %s: %w", rel, err)
		}
		if _, err := sr.CommitObject(st.Expected); err != nil {
			return fmt.Errorf("submodule %s: %w", rel, &RefNotFoundError{Repo: tg.Repo.CloneURL(), Kind: azdo.Commit, Name: st.Expected.String(), Hint: "the superproject records a commit that is on no branch or tag of the submodule"})
		}
		sw, err := sr.Worktree()
		if err != nil {
			return fmt.Errorf("clone: submodule %s: %w", rel, err)
		}
		if err := sw.Checkout(&git.CheckoutOptions{Hash: st.Expected, Force: true}); err != nil {
			return fmt.Errorf("clone: submodule %s: check out %s: %w", rel, st.Expected, err)
		}
		res.Submodules = append(res.Submodules, rel)
		if err := c.submodules(ctx, filepath.Join(dir, filepath.FromSlash(sc.Path)), tg.Repo, res, level+1); err != nil {
			return err
		}
	}
	return nil
}

// resolveSubmoduleURL resolves a .gitmodules URL: "./x" and "../x" are
// relative to the superproject's clone URL, as git resolves them.
func resolveSubmoduleURL(parent azdo.Repo, raw string) (string, error) {
	if !strings.HasPrefix(raw, "./") && !strings.HasPrefix(raw, "../") {
		return raw, nil
	}
	u, err := url.Parse(parent.CloneURL())
	if err != nil {
		return "", err
	}
	u.Path = path.Join(u.Path, raw)
	u.RawPath = ""
	return u.String(), nil
}

// redactURL drops user information from a URL for messages.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		if i := strings.LastIndex(raw, "@"); i >= 0 && !strings.Contains(raw, "://") {
			return raw[i+1:]
		}
		if err != nil {
			return "(unparseable URL)"
		}
		return raw
	}
	u.User = nil
	return u.String()
}
