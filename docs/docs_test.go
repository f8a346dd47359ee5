package docs

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// root is the repository, one folder up from this package.
const root = ".."

// pages are the documents the test reads: the README, docs/*.md, and the READMEs under deploy/.
func pages(t *testing.T) []string {
	t.Helper()
	out := []string{filepath.Join(root, "README.md")}
	md, err := filepath.Glob("*.md")
	if err != nil {
		t.Fatal(err)
	}
	out = append(out, md...)
	err = filepath.WalkDir(filepath.Join(root, "deploy"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && d.Name() == "README.md" {
			out = append(out, p)
		}
		return err
	})
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	if len(out) < 8 {
		t.Fatalf("only %d pages found: %v", len(out), out)
	}
	return out
}

var (
	// link is a Markdown link's target; external and in-page ones are skipped below.
	link = regexp.MustCompile(`\]\(([^)\s]+)\)`)
	// codePath is a code span that looks like a repository path: a known top folder or a
	// top-level file, with no spaces. secret/ and kv/ are left out: Vault paths
	// (secret/data/…) look the same.
	codePath = regexp.MustCompile("`((?:\\./)?(?:cmd|bot|config|connector|commands|approvals|store|ha|observe|delivery|deploy|docs|examples|tools|internal|\\.ci)/[A-Za-z0-9_.*/-]*|README\\.md|CHANGELOG\\.md|LICENSE|Dockerfile|go\\.mod)`")
	// outside are names of files that live outside the repository and must not be cited.
	outside = regexp.MustCompile(`SPEC\.md|expectations\.md|\.\./shared`)
)

// TestNamedFilesExist fails on a relative link or a code span naming a repository path that
// does not exist.
func TestNamedFilesExist(t *testing.T) {
	checked := 0
	for _, page := range pages(t) {
		raw, err := os.ReadFile(page)
		if err != nil {
			t.Fatal(err)
		}
		text := string(raw)
		for _, m := range link.FindAllStringSubmatch(text, -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "#") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			target, _, _ = strings.Cut(target, "#")
			checked++
			if _, err := os.Stat(filepath.Join(filepath.Dir(page), target)); err != nil {
				t.Errorf("%s links to %s, which does not exist", page, m[1])
			}
		}
		for _, m := range codePath.FindAllStringSubmatch(text, -1) {
			p := strings.TrimPrefix(m[1], "./")
			checked++
			if strings.Contains(p, "*") {
				if ms, _ := filepath.Glob(filepath.Join(root, p)); len(ms) == 0 {
					t.Errorf("%s names %s, which matches nothing", page, m[1])
				}
				continue
			}
			if _, err := os.Stat(filepath.Join(root, p)); err != nil {
				t.Errorf("%s names %s, which is not in the repository", page, m[1])
			}
		}
	}
	if checked < 30 {
		t.Fatalf("only %d links and paths checked: the patterns lost their way", checked)
	}
}

// TestNothingOutside fails on a page that cites a file kept outside the repository.
func TestNothingOutside(t *testing.T) {
	for _, page := range pages(t) {
		raw, err := os.ReadFile(page)
		if err != nil {
			t.Fatal(err)
		}
		for i, line := range strings.Split(string(raw), "\n") {
			if m := outside.FindString(line); m != "" {
				t.Errorf("%s:%d names %s, which is not in the repository", page, i+1, m)
			}
		}
	}
}

// TestREADMEShort keeps the README a front page: the rest belongs in docs/.
func TestREADMEShort(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(raw), "\n"); n > 210 {
		t.Errorf("README.md has %d lines; keep it under about 200 and move the rest to docs/", n)
	}
}
