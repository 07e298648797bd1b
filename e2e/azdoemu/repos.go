package azdoemu

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// ErrRepoExists is returned by CreateRepo for a repository that exists.
var ErrRepoExists = errors.New("azdoemu: repository exists")

// ErrRepoNotFound is returned for a repository that does not exist.
var ErrRepoNotFound = errors.New("azdoemu: repository not found")

// keyOf folds names the way Azure DevOps compares them: case-insensitively.
func keyOf(org, project, name string) repoKey {
	return repoKey{strings.ToLower(org), strings.ToLower(project), strings.ToLower(name)}
}

// CreateRepo creates an empty bare repository (default branch main) and
// returns its directory. For a self-hosted server, org is the collection.
// Names may contain spaces.
func (s *Server) CreateRepo(org, project, name string) (string, error) {
	if org == "" || project == "" || name == "" {
		return "", fmt.Errorf("azdoemu: CreateRepo(%q, %q, %q): empty name", org, project, name)
	}
	k := keyOf(org, project, name)
	s.mu.Lock()
	if _, ok := s.repos[k]; ok {
		s.mu.Unlock()
		return "", fmt.Errorf("%w: %s/%s/%s", ErrRepoExists, org, project, name)
	}
	s.nextRepo++
	rel := fmt.Sprintf("repos/%d.git", s.nextRepo)
	r := &repo{org: org, project: project, name: name, rel: rel, dir: filepath.Join(s.cfg.Dir, rel)}
	s.repos[k] = r
	s.mu.Unlock()

	if out, err := s.git("", "init", "--quiet", "--bare", "--initial-branch=main", r.dir); err != nil {
		s.mu.Lock()
		delete(s.repos, k)
		s.mu.Unlock()
		return "", fmt.Errorf("azdoemu: git init: %w: %s", err, out)
	}
	return r.dir, nil
}

// RepoDir returns the bare directory of a repository.
func (s *Server) RepoDir(org, project, name string) (string, error) {
	r := s.lookup(org, project, name)
	if r == nil {
		return "", fmt.Errorf("%w: %s/%s/%s", ErrRepoNotFound, org, project, name)
	}
	return r.dir, nil
}

func (s *Server) lookup(org, project, name string) *repo {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.repos[keyOf(org, project, name)]
}

// CreatePullRequest makes pull request id from branch source into branch
// target: it writes the merge commit Azure DevOps would build to
// refs/pull/{id}/merge. Like Azure DevOps, it creates no refs/pull/{id}/head.
// Branches are given without "refs/heads/". It fails on conflicts.
func (s *Server) CreatePullRequest(org, project, name string, id int, source, target string) error {
	r := s.lookup(org, project, name)
	if r == nil {
		return fmt.Errorf("%w: %s/%s/%s", ErrRepoNotFound, org, project, name)
	}
	src, tgt := "refs/heads/"+source, "refs/heads/"+target
	tree, err := s.git(r.dir, "merge-tree", "--write-tree", tgt, src)
	if err != nil {
		return fmt.Errorf("azdoemu: pull request %d: merge %s into %s: %w: %s", id, source, target, err, tree)
	}
	tree = strings.SplitN(tree, "\n", 2)[0]
	msg := fmt.Sprintf("Merged PR %d: merge %s to %s", id, source, target)
	commit, err := s.git(r.dir, "commit-tree", tree, "-p", tgt, "-p", src, "-m", msg)
	if err != nil {
		return fmt.Errorf("azdoemu: pull request %d: commit-tree: %w: %s", id, err, commit)
	}
	ref := fmt.Sprintf("refs/pull/%d/merge", id)
	if out, err := s.git(r.dir, "update-ref", ref, strings.TrimSpace(commit)); err != nil {
		return fmt.Errorf("azdoemu: pull request %d: update-ref: %w: %s", id, err, out)
	}
	return nil
}

// git runs git with an environment isolated from the machine's
// configuration and returns its trimmed output.
func (s *Server) git(dir string, args ...string) (string, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(baseGitEnv(s.cfg.Dir),
		"GIT_AUTHOR_NAME=Azure DevOps", "GIT_AUTHOR_EMAIL=azdo@example.com",
		"GIT_COMMITTER_NAME=Azure DevOps", "GIT_COMMITTER_EMAIL=azdo@example.com")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return strings.TrimSpace(out.String()), err
}

// baseGitEnv is the environment git runs with inside the emulator: the
// machine's PATH only, no system or global configuration.
func baseGitEnv(home string) []string {
	return []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + home,
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_TERMINAL_PROMPT=0",
		"LANG=C",
	}
}
