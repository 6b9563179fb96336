package modules

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestStandardModules(t *testing.T) {
	want := []string{"debian", "mkfs", "mount", "network", "uml", "umount"}
	if got := Standard(); !slices.Equal(got, want) {
		t.Fatalf("Standard() = %v, want %v", got, want)
	}
	for _, name := range want {
		s, ok := StandardScript(name)
		if !ok || !strings.HasPrefix(string(s), "#!/bin/sh\n") {
			t.Errorf("%s: not a shell script", name)
		}
	}
	if _, ok := StandardScript("../standard.go"); ok {
		t.Error("a path reached outside the embedded scripts")
	}
}

func writeModule(t *testing.T, dir, name string, mode os.FileMode) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"), mode); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestFindOrder(t *testing.T) {
	root := t.TempDir()
	home, work := filepath.Join(root, "home"), filepath.Join(root, "work")
	dirs := SearchDirs(home, work, []string{"extra", filepath.Join(root, "abs")})
	want := []string{"/usr/lib/rootstrap/modules", "/etc/rootstrap/modules", filepath.Join(home, ".rootstrap/modules"),
		filepath.Join(work, "modules"), filepath.Join(work, "extra"), filepath.Join(root, "abs")}
	if !slices.Equal(dirs, want) {
		t.Fatalf("SearchDirs = %v, want %v", dirs, want)
	}

	// Built in, until a directory has one of that name; later directories win.
	m, err := Find("mkfs", dirs)
	if err != nil || !m.BuiltIn() {
		t.Fatalf("mkfs: %+v, %v; want the built-in one", m, err)
	}
	homeMkfs := writeModule(t, filepath.Join(home, ".rootstrap/modules"), "mkfs", 0o755)
	if m, _ := Find("mkfs", dirs); m.Path != homeMkfs {
		t.Errorf("mkfs from %q, want the home one %q", m.Path, homeMkfs)
	}
	workMkfs := writeModule(t, filepath.Join(work, "modules"), "mkfs", 0o755)
	if m, _ := Find("mkfs", dirs); m.Path != workMkfs {
		t.Errorf("mkfs from %q, want ./modules's %q", m.Path, workMkfs)
	}
	extra := writeModule(t, filepath.Join(root, "abs"), "mkfs", 0o755)
	if m, _ := Find("mkfs", dirs); m.Path != extra {
		t.Errorf("mkfs from %q, want module_paths's %q", m.Path, extra)
	}
	if m, _ := Find("mkfs", dirs); m.Origin() != extra {
		t.Errorf("Origin() = %q", m.Origin())
	}

	// A custom module found only in a directory.
	custom := writeModule(t, filepath.Join(work, "extra"), "printenv", 0o755)
	if m, err := Find("printenv", dirs); err != nil || m.Path != custom {
		t.Errorf("printenv: %+v, %v", m, err)
	}
}

func TestFindErrors(t *testing.T) {
	dir := t.TempDir()
	writeModule(t, dir, "plain", 0o644)
	for _, tc := range []struct{ name, want string }{
		{"plain", "not executable: run chmod +x"},
		{"nosuch", "is not a built-in module"},
		{"../etc/passwd", "must be a plain file name"},
		{"", "must be a plain file name"},
		{"a b", "must be a plain file name"},
	} {
		_, err := Find(tc.name, []string{dir})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Find(%q) = %v, want an error with %q", tc.name, err, tc.want)
		}
	}
	if _, err := Find("nosuch", []string{dir}); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), dir) {
		t.Errorf("the not-found error should wrap ErrNotFound and name the directories: %v", err)
	}
}
