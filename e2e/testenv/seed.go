package testenv

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/azdo-sidecar/azdo-sidecar/e2e/azdoemu"
)

// SeedOptions says what Seed puts into a repository.
type SeedOptions struct {
	Commits int    // number of commits; default 1
	Bytes   int    // bytes of incompressible data per commit; default 1024
	Branch  string // default "main"
	Seed    uint64 // random seed; same seed, same content
}

// Seeded describes a seeded repository.
type Seeded struct {
	Dir    string // the emulator's bare repository
	Branch string
	Head   string // commit id of the branch tip
}

// Seed creates org/project/repo on the emulator (unless it exists) and
// pushes opts.Commits commits to opts.Branch (a new branch starts from the
// default branch), each adding a file of
// opts.Bytes random bytes. It pushes through the file system, not HTTP, so
// seeding costs no authentication and shows up in no request log.
func Seed(t testing.TB, s *azdoemu.Server, org, project, repo string, opts SeedOptions) Seeded {
	t.Helper()
	if opts.Commits <= 0 {
		opts.Commits = 1
	}
	if opts.Bytes <= 0 {
		opts.Bytes = 1024
	}
	if opts.Branch == "" {
		opts.Branch = "main"
	}
	bare, err := s.CreateRepo(org, project, repo)
	if errors.Is(err, azdoemu.ErrRepoExists) {
		bare, err = s.RepoDir(org, project, repo)
	}
	if err != nil {
		t.Fatal(err)
	}
	g := NewGit(t)
	work := filepath.Join(g.Home, "seed")
	g.Run(t, "init", "--quiet", "--initial-branch="+opts.Branch, work)
	g.Dir = work
	// Build on the branch, or else on the default branch, so that branches
	// share history (pull requests need a merge base).
	for _, from := range []string{opts.Branch, "HEAD"} {
		if _, err := g.RunIn(work, "fetch", "--quiet", bare, from); err == nil {
			g.Run(t, "reset", "--quiet", "--hard", "FETCH_HEAD")
			break
		}
	}
	rng := rand.New(rand.NewChaCha8(seedBytes(opts.Seed)))
	buf := make([]byte, opts.Bytes)
	for i := range opts.Commits {
		for j := range buf {
			buf[j] = byte(rng.Uint32())
		}
		name := fmt.Sprintf("data-%d-%d.bin", opts.Seed, i)
		if err := os.WriteFile(filepath.Join(work, name), buf, 0o644); err != nil {
			t.Fatal(err)
		}
		g.Run(t, "add", name)
		g.Run(t, "commit", "--quiet", "-m", fmt.Sprintf("Add %s", name))
	}
	g.Run(t, "push", "--quiet", bare, "HEAD:refs/heads/"+opts.Branch)
	return Seeded{Dir: bare, Branch: opts.Branch, Head: g.Run(t, "rev-parse", "HEAD")}
}

func seedBytes(seed uint64) [32]byte {
	var b [32]byte
	for i := range 8 {
		b[i] = byte(seed >> (8 * i))
	}
	return b
}
