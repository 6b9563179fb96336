package uml

import (
	"os"
	"path/filepath"
	"testing"
)

// TestReachableBy: a user other than the owner runs a program only when every directory above it
// lets it search and the file lets it read and execute (root's ~/.local/share does not).
func TestReachableBy(t *testing.T) {
	base := t.TempDir()
	// t.TempDir's own directory (base's parent) is private: open both for the test's "others".
	for _, d := range []string{filepath.Dir(base), base} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	mk := func(dir string, dirMode, fileMode os.FileMode) string {
		d := filepath.Join(base, dir)
		if err := os.Mkdir(d, dirMode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(d, dirMode); err != nil {
			t.Fatal(err)
		}
		f := filepath.Join(d, "linux")
		if err := os.WriteFile(f, []byte("x"), fileMode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(f, fileMode); err != nil {
			t.Fatal(err)
		}
		return f
	}
	uid, gid := os.Getuid(), os.Getgid()
	other := uid + 12345 // neither the owner nor in the group
	cases := []struct {
		path     string
		uid, gid int
		want     bool
	}{
		{mk("open", 0o755, 0o755), other, other, true},
		{mk("private", 0o700, 0o755), other, other, false},
		{filepath.Join(base, "private", "linux"), uid, gid, true}, // the owner
		{mk("searchonly", 0o711, 0o755), other, other, true},
		{mk("noread", 0o755, 0o711), other, other, false},
		{mk("noexec", 0o755, 0o644), other, other, false},
		{mk("group", 0o750, 0o750), other, gid, true},
		{filepath.Join(base, "missing", "linux"), other, other, false},
	}
	for _, c := range cases {
		if got := reachableBy(c.path, c.uid, c.gid); got != c.want {
			t.Errorf("reachableBy(%s, %d, %d) = %v, want %v", c.path, c.uid, c.gid, got, c.want)
		}
	}
}
