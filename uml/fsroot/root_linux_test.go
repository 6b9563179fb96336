package fsroot

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// sandbox makes a parent directory holding the root ("root") and a sibling that is outside it
// ("outside", with one file "victim"), and opens the root. Tests check that the sibling never changes.
type sandbox struct {
	parent, dir, outside string
	root                 *Root
}

const victimContent = "outside the root: must never change\n"

func newSandbox(t *testing.T) *sandbox {
	t.Helper()
	parent := t.TempDir()
	s := &sandbox{parent: parent, dir: filepath.Join(parent, "root"), outside: filepath.Join(parent, "outside")}
	for _, d := range []string{s.dir, s.outside} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(s.outside, "victim"), []byte(victimContent), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(s.outside, 0o755); err != nil {
		t.Fatal(err)
	}
	r, err := Open(s.dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	s.root = r
	return s
}

// checkOutside fails the test if anything beside the root changed: the parent holds exactly "root"
// and "outside", and "outside" holds exactly the unchanged victim with its mode.
func (s *sandbox) checkOutside(t *testing.T) {
	t.Helper()
	if got := listDir(t, s.parent); strings.Join(got, ",") != "outside,root" {
		t.Errorf("parent of the root holds %q, want only [outside root]", got)
	}
	if got := listDir(t, s.outside); strings.Join(got, ",") != "victim" {
		t.Errorf("outside directory holds %q, want only [victim]", got)
	}
	b, err := os.ReadFile(filepath.Join(s.outside, "victim"))
	if err != nil || string(b) != victimContent {
		t.Errorf("outside victim changed: %q, %v", b, err)
	}
	for p, want := range map[string]uint32{s.outside: 0o755, filepath.Join(s.outside, "victim"): 0o644} {
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			t.Fatal(err)
		}
		if got := st.Mode & 0o7777; got != want {
			t.Errorf("mode of %s changed to %#o, want %#o", p, got, want)
		}
	}
}

func listDir(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return names
}

func lstat(t *testing.T, p string) unix.Stat_t {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	return st
}

// readInRoot reads a whole file through Root.OpenFile.
func readInRoot(t *testing.T, r *Root, p string) string {
	t.Helper()
	f, err := r.OpenFile(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// withUmask runs f with the process umask set to m. Tests using it do not run in parallel.
func withUmask(m int, f func()) {
	old := syscall.Umask(m)
	defer syscall.Umask(old)
	f()
}

// nobody is the uid and gid unprivileged() drops to when the test runs as root.
const nobody = 65534

// unprivileged runs f as an ordinary user: directly when the test already runs as one (CI), and
// otherwise on an OS thread of its own whose credentials are set to nobody (Linux credentials are per
// thread; the raw system calls change only this one, and the thread dies with the goroutine because
// it stays locked). So the unprivileged behaviour is checked on every machine. dir (and everything
// below it that f needs) must be usable by nobody; see unprivilegedDir.
func unprivileged(t *testing.T, f func()) {
	t.Helper()
	if os.Geteuid() != 0 {
		f()
		return
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread() // never unlocked: the thread is discarded when the goroutine ends
		if _, _, e := unix.RawSyscall(unix.SYS_SETGROUPS, 0, 0, 0); e != 0 {
			t.Errorf("setgroups: %v", e)
			return
		}
		if _, _, e := unix.RawSyscall(unix.SYS_SETRESGID, nobody, nobody, nobody); e != 0 {
			t.Errorf("setresgid: %v", e)
			return
		}
		if _, _, e := unix.RawSyscall(unix.SYS_SETRESUID, nobody, nobody, nobody); e != 0 {
			t.Errorf("setresuid: %v", e)
			return
		}
		if unix.Geteuid() != nobody {
			t.Errorf("thread still runs as uid %d", unix.Geteuid())
			return
		}
		f()
	}()
	<-done
}

// unprivilegedDir returns a new empty directory that the user unprivileged() runs as may use, and
// that is removed (whatever modes were left in it) after the test.
func unprivilegedDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "fsroot-unpriv-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { forceRemoveAll(t, dir) })
	if os.Geteuid() == 0 {
		if err := os.Chown(dir, nobody, nobody); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// forceRemoveAll removes dir even when the test left read-only directories in it.
func forceRemoveAll(t *testing.T, dir string) {
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			os.Chmod(p, 0o755)
		}
		return nil
	})
	if err := os.RemoveAll(dir); err != nil {
		t.Errorf("clean up: %v", err)
	}
}

func TestClean(t *testing.T) {
	for in, want := range map[string]string{
		"":              ".",
		".":             ".",
		"/":             ".",
		"//":            ".",
		"..":            ".",
		"../..":         ".",
		"/..":           ".",
		"a":             "a",
		"/a":            "a",
		"a/":            "a",
		"a/b/":          "a/b",
		"./a//b/./c":    "a/b/c",
		"/a/../b":       "b",
		"a/../../b":     "b",
		"../../etc/x":   "etc/x",
		"/etc/passwd":   "etc/passwd",
		"a/b/../../..":  ".",
		"a/./b/../c/":   "a/c",
		"...":           "...",
		"..a/b":         "..a/b",
		"a/..b":         "a/..b",
		"/x/y/../../..": ".",
	} {
		if got := Clean(in); got != want {
			t.Errorf("Clean(%q) = %q, want %q", in, got, want)
		}
		// Clean is idempotent and its result is never absolute and never climbs.
		if got := Clean(Clean(in)); got != Clean(in) {
			t.Errorf("Clean(Clean(%q)) = %q, want %q", in, got, Clean(in))
		}
		if c := Clean(in); strings.HasPrefix(c, "/") || c == ".." || strings.HasPrefix(c, "../") {
			t.Errorf("Clean(%q) = %q leaves the root", in, c)
		}
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := Open(filepath.Join(dir, "missing")); !errors.Is(err, unix.ENOENT) {
		t.Errorf("Open(missing) = %v, want ENOENT", err)
	}
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Open(file)
	if !errors.Is(err, unix.ENOTDIR) {
		t.Errorf("Open(file) = %v, want ENOTDIR", err)
	}
	var pe *os.PathError
	if !errors.As(err, &pe) || pe.Path != file {
		t.Errorf("Open(file) error %v does not name the path", err)
	}
}

func TestCreateWritesInsideRoot(t *testing.T) {
	s := newSandbox(t)
	withUmask(0o022, func() {
		f, err := s.root.Create("/a/b/c.txt", 0o640, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(f, "hello"); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	})
	if got := readFile(t, filepath.Join(s.dir, "a/b/c.txt")); got != "hello" {
		t.Errorf("content %q", got)
	}
	if m := lstat(t, filepath.Join(s.dir, "a/b/c.txt")).Mode & 0o7777; m != 0o640 {
		t.Errorf("file mode %#o, want 0640", m)
	}
	for _, d := range []string{"a", "a/b"} {
		st := lstat(t, filepath.Join(s.dir, d))
		if st.Mode&unix.S_IFMT != unix.S_IFDIR || st.Mode&0o7777 != 0o755 {
			t.Errorf("parent %s: mode %#o, want a directory with 0755", d, st.Mode)
		}
	}

	// Create truncates.
	f, err := s.root.Create("a/b/c.txt", 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if got := readFile(t, filepath.Join(s.dir, "a/b/c.txt")); got != "" {
		t.Errorf("Create did not truncate: %q", got)
	}
	if m := lstat(t, filepath.Join(s.dir, "a/b/c.txt")).Mode & 0o7777; m != 0o600 {
		t.Errorf("mode after re-create %#o, want 0600", m)
	}

	// ".." cannot climb out of the root.
	f, err = s.root.Create("../../../victim", 0o644, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(f, "inside")
	f.Close()
	if got := readFile(t, filepath.Join(s.dir, "victim")); got != "inside" {
		t.Errorf("../../../victim: content %q inside the root", got)
	}
	f, err = s.root.Create("a/../../outside/victim", 0o644, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(f, "inside")
	f.Close()
	if got := readFile(t, filepath.Join(s.dir, "outside/victim")); got != "inside" {
		t.Errorf("a/../../outside/victim: content %q inside the root", got)
	}
	s.checkOutside(t)
}

func TestCreateModeIgnoresUmask(t *testing.T) {
	s := newSandbox(t)
	for _, tc := range []struct {
		name string
		perm os.FileMode
		want uint32
	}{
		{"rw", 0o666, 0o666},
		{"rwx", 0o777, 0o777},
		{"private", 0o600, 0o600},
		{"none", 0, 0},
		{"setuid", 0o755 | os.ModeSetuid, 0o4755},
		{"setgid", 0o750 | os.ModeSetgid, 0o2750},
		{"sticky", 0o644 | os.ModeSticky, 0o1644},
		{"all", 0o777 | os.ModeSetuid | os.ModeSetgid | os.ModeSticky, 0o7777},
	} {
		withUmask(0o077, func() {
			f, err := s.root.Create(tc.name, tc.perm, nil)
			if err != nil {
				t.Fatal(err)
			}
			f.Close()
		})
		if got := lstat(t, filepath.Join(s.dir, tc.name)).Mode & 0o7777; got != tc.want {
			t.Errorf("%s: Create(%v) under umask 077 made mode %#o, want %#o", tc.name, tc.perm, got, tc.want)
		}
	}
}

func TestCreateOwner(t *testing.T) {
	s := newSandbox(t)
	uid, gid := os.Geteuid(), os.Getegid()
	// The caller's own ids work for everyone.
	f, err := s.root.Create("mine/f", 0o644, &Owner{UID: uid, GID: gid})
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	for _, p := range []string{"mine", "mine/f"} {
		if st := lstat(t, filepath.Join(s.dir, p)); int(st.Uid) != uid || int(st.Gid) != gid {
			t.Errorf("%s owned by %d:%d, want %d:%d", p, st.Uid, st.Gid, uid, gid)
		}
	}
	if uid == 0 {
		f, err := s.root.Create("theirs/f", 0o644, &Owner{UID: 1234, GID: 5678})
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
		for _, p := range []string{"theirs", "theirs/f"} {
			if st := lstat(t, filepath.Join(s.dir, p)); st.Uid != 1234 || st.Gid != 5678 {
				t.Errorf("%s owned by %d:%d, want 1234:5678", p, st.Uid, st.Gid)
			}
		}
	}
	// An ordinary user cannot give files away (checked as one on every machine).
	dir := unprivilegedDir(t)
	unprivileged(t, func() {
		r, err := Open(dir)
		if err != nil {
			t.Error(err)
			return
		}
		defer r.Close()
		other := unix.Geteuid() + 1
		f, err := r.Create("given", 0o644, &Owner{UID: other, GID: unix.Getegid()})
		if err == nil {
			f.Close()
			t.Errorf("Create with foreign owner %d succeeded as uid %d", other, unix.Geteuid())
		} else if !errors.Is(err, unix.EPERM) {
			t.Errorf("Create with foreign owner: %v, want EPERM", err)
		}
	})
}

func TestMkdirAll(t *testing.T) {
	s := newSandbox(t)
	withUmask(0o022, func() {
		if err := s.root.MkdirAll("/x/y/z/", 0o750, nil); err != nil {
			t.Fatal(err)
		}
	})
	for _, d := range []string{"x", "x/y", "x/y/z"} {
		st := lstat(t, filepath.Join(s.dir, d))
		if st.Mode&unix.S_IFMT != unix.S_IFDIR || st.Mode&0o777 != 0o750 {
			t.Errorf("%s: mode %#o, want directory 0750", d, st.Mode)
		}
	}
	// Existing directories are fine, and so is the root itself.
	for _, p := range []string{"x/y", "x/y/z", ".", "/", "", "..", "x/.."} {
		if err := s.root.MkdirAll(p, 0o700, nil); err != nil {
			t.Errorf("MkdirAll(%q) on an existing directory: %v", p, err)
		}
	}
	if st := lstat(t, filepath.Join(s.dir, "x")); st.Mode&0o777 != 0o750 {
		t.Errorf("MkdirAll changed the mode of an existing directory to %#o", st.Mode&0o777)
	}
	// A file in the way is an error.
	if err := os.WriteFile(filepath.Join(s.dir, "file"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := s.root.MkdirAll("file/sub", 0o755, nil); err == nil {
		t.Error("MkdirAll through a regular file succeeded")
	}
	// ".." is clamped at the root.
	if err := s.root.MkdirAll("../../../outside/new", 0o755, nil); err != nil {
		t.Fatal(err)
	}
	if st := lstat(t, filepath.Join(s.dir, "outside/new")); st.Mode&unix.S_IFMT != unix.S_IFDIR {
		t.Error("../../../outside/new was not made inside the root")
	}
	s.checkOutside(t)
}

func TestMkdirAllOwner(t *testing.T) {
	s := newSandbox(t)
	uid, gid := os.Geteuid(), os.Getegid()
	if err := s.root.MkdirAll("o/p", 0o755, &Owner{UID: uid, GID: gid}); err != nil {
		t.Fatal(err)
	}
	if uid == 0 {
		if err := s.root.MkdirAll("q/r", 0o755, &Owner{UID: 4321, GID: 8765}); err != nil {
			t.Fatal(err)
		}
		for _, d := range []string{"q", "q/r"} {
			if st := lstat(t, filepath.Join(s.dir, d)); st.Uid != 4321 || st.Gid != 8765 {
				t.Errorf("%s owned by %d:%d, want 4321:8765", d, st.Uid, st.Gid)
			}
		}
	}
	dir := unprivilegedDir(t)
	unprivileged(t, func() {
		r, err := Open(dir)
		if err != nil {
			t.Error(err)
			return
		}
		defer r.Close()
		if err := r.MkdirAll("d", 0o755, &Owner{UID: unix.Geteuid() + 1, GID: unix.Getegid()}); !errors.Is(err, unix.EPERM) {
			t.Errorf("MkdirAll with a foreign owner as an ordinary user: %v, want EPERM", err)
		}
	})
}

// escapeLinks are symlinks that try to leave the root; each must resolve to the root itself.
var escapeLinks = map[string]string{
	"abs":   "/",
	"up":    "../../",
	"upup":  "../../../../../../../../..",
	"mixed": "/../../.././",
}

func TestSymlinksResolveInsideRoot(t *testing.T) {
	for name, target := range escapeLinks {
		t.Run(name, func(t *testing.T) {
			s := newSandbox(t)
			if err := os.Symlink(target, filepath.Join(s.dir, "esc")); err != nil {
				t.Fatal(err)
			}
			// Writing through the link lands in the root.
			f, err := s.root.Create("esc/victim", 0o644, nil)
			if err != nil {
				t.Fatal(err)
			}
			io.WriteString(f, "via "+target)
			f.Close()
			if got := readFile(t, filepath.Join(s.dir, "victim")); got != "via "+target {
				t.Errorf("esc/victim: root/victim holds %q", got)
			}
			// Going up from the link and back into the sibling stays inside too.
			f, err = s.root.Create("esc/../outside/victim", 0o644, nil)
			if err != nil {
				t.Fatal(err)
			}
			io.WriteString(f, "clamped")
			f.Close()
			if got := readFile(t, filepath.Join(s.dir, "outside/victim")); got != "clamped" {
				t.Errorf("esc/../outside/victim: root/outside/victim holds %q", got)
			}
			if err := s.root.MkdirAll("esc/made", 0o755, nil); err != nil {
				t.Fatal(err)
			}
			if st := lstat(t, filepath.Join(s.dir, "made")); st.Mode&unix.S_IFMT != unix.S_IFDIR {
				t.Error("MkdirAll(esc/made) did not make root/made")
			}
			// Reading through the link reads the root's file, not the sibling's.
			if b := readInRoot(t, s.root, "esc/../outside/victim"); b != "clamped" {
				t.Errorf("OpenFile through the link read %q", b)
			}
			s.checkOutside(t)
		})
	}
}

func TestSymlinkToAbsoluteHostPathStaysInside(t *testing.T) {
	s := newSandbox(t)
	// The link names the real sibling by its absolute host path; in the root that path does not
	// exist, and the real one must not be reached.
	if err := os.Symlink(s.outside, filepath.Join(s.dir, "host")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(s.outside, "victim"), filepath.Join(s.dir, "victimlink")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../outside/victim", filepath.Join(s.dir, "rel")); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"host/victim", "victimlink", "rel"} {
		if f, err := s.root.OpenFile(p); err == nil {
			b, _ := io.ReadAll(f)
			f.Close()
			t.Errorf("OpenFile(%s) read %q through a link that leaves the root", p, b)
		} else if !errors.Is(err, unix.ENOENT) {
			t.Errorf("OpenFile(%s): %v, want ENOENT", p, err)
		}
		if f, err := s.root.Create(p, 0o666, nil); err == nil {
			io.WriteString(f, "overwritten")
			f.Close()
		}
	}
	s.checkOutside(t)

	// Once the absolute path exists inside the root, the links lead there.
	if err := s.root.MkdirAll(s.outside, 0o755, nil); err != nil {
		t.Fatal(err)
	}
	f, err := s.root.Create("host/victim", 0o644, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(f, "inner")
	f.Close()
	if got := readFile(t, filepath.Join(s.dir, s.outside, "victim")); got != "inner" {
		t.Errorf("inner copy holds %q", got)
	}
	if b := readInRoot(t, s.root, "victimlink"); b != "inner" {
		t.Errorf("OpenFile(victimlink) read %q, want the inner copy", b)
	}
	// The sibling's content is nowhere inside the root... and the sibling itself is untouched.
	s.checkOutside(t)
}

func TestOpenFileReadsInsideRoot(t *testing.T) {
	s := newSandbox(t)
	if err := os.WriteFile(filepath.Join(s.dir, "f"), []byte("data"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"f", "/f", "../f", "./x/../f", "../../../../f"} {
		f, err := s.root.OpenFile(p)
		if err != nil {
			t.Errorf("OpenFile(%q): %v", p, err)
			continue
		}
		b, _ := io.ReadAll(f)
		f.Close()
		if string(b) != "data" {
			t.Errorf("OpenFile(%q) read %q", p, b)
		}
	}
	// The host's /etc/passwd is not the root's.
	if _, err := s.root.OpenFile("/etc/passwd"); !errors.Is(err, unix.ENOENT) {
		t.Errorf("OpenFile(/etc/passwd) = %v, want ENOENT", err)
	}
	if _, err := s.root.OpenFile("../outside/victim"); !errors.Is(err, unix.ENOENT) {
		t.Errorf("OpenFile(../outside/victim) = %v, want ENOENT", err)
	}
	// Read only.
	f, err := s.root.OpenFile("f")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write([]byte("x")); err == nil {
		t.Error("OpenFile returned a writable file")
	}
	// An absolute link to /proc names the root's /proc, which does not exist: no magic link is reached.
	if err := os.Symlink("/proc/self/fd/0", filepath.Join(s.dir, "magic")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.root.OpenFile("magic"); err == nil {
		t.Error("OpenFile through a /proc link succeeded")
	}
}

func TestLstat(t *testing.T) {
	s := newSandbox(t)
	if err := os.WriteFile(filepath.Join(s.dir, "f"), []byte("12345"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/", filepath.Join(s.dir, "l")); err != nil {
		t.Fatal(err)
	}
	st, err := s.root.Lstat("f")
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG || st.Size != 5 || st.Mode&0o777 != 0o640 {
		t.Errorf("Lstat(f) = mode %#o size %d", st.Mode, st.Size)
	}
	st, err = s.root.Lstat("l")
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFLNK {
		t.Errorf("Lstat(l) mode %#o, want a symlink", st.Mode)
	}
	// The root itself, and a path through the link.
	for _, p := range []string{".", "/", "", "..", "a/..", "../../.."} {
		st, err := s.root.Lstat(p)
		if err != nil {
			t.Errorf("Lstat(%q): %v", p, err)
			continue
		}
		want := lstat(t, s.dir)
		if st.Ino != want.Ino || st.Dev != want.Dev {
			t.Errorf("Lstat(%q) is not the root", p)
		}
	}
	st, err = s.root.Lstat("l/f")
	if err != nil {
		t.Fatal(err)
	}
	if st.Size != 5 {
		t.Errorf("Lstat(l/f) size %d", st.Size)
	}
	if _, err := s.root.Lstat("missing"); !errors.Is(err, unix.ENOENT) {
		t.Errorf("Lstat(missing) = %v, want ENOENT", err)
	}
}

func TestUnixMode(t *testing.T) {
	for m, want := range map[os.FileMode]uint32{
		0o644:                  0o644,
		0o755 | os.ModeDir:     0o755,
		0o700 | os.ModeSetuid:  0o4700,
		0o700 | os.ModeSetgid:  0o2700,
		0o777 | os.ModeSticky:  0o1777,
		os.ModeSymlink | 0o777: 0o777,
	} {
		if got := UnixMode(m); got != want {
			t.Errorf("UnixMode(%v) = %#o, want %#o", m, got, want)
		}
	}
}

func TestEntryPath(t *testing.T) {
	for _, name := range []string{"../x", "..", "/etc/x", "/", "a/../../x", "./../x", "a/b/../../../x", "//x"} {
		if got, err := entryPath(name); !errors.Is(err, ErrEscapes) {
			t.Errorf("entryPath(%q) = %q, %v, want ErrEscapes", name, got, err)
		}
	}
	for name, want := range map[string]string{
		"x": "x", "./x": "x", "a/b/": "a/b", "a/../b": "b", "./": ".", ".": ".", "a/..": ".", "..x": "..x",
	} {
		if got, err := entryPath(name); err != nil || got != want {
			t.Errorf("entryPath(%q) = %q, %v, want %q", name, got, err, want)
		}
	}
}

// Close releases the descriptor: the root can no longer be used.
func TestClose(t *testing.T) {
	r, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Lstat("."); err == nil {
		t.Error("Lstat on a closed root succeeded")
	}
}
