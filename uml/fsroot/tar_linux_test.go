package fsroot

import (
	"archive/tar"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// entry describes one file of a tree, as the round trip compares it.
type entry struct {
	Type  uint32 // unix.S_IFMT bits
	Mode  uint32 // permission, setuid, setgid and sticky bits
	Sum   string // sha256 of a regular file
	Size  int64
	Link  string // symlink target
	Mtime int64  // seconds
	Inode uint64 // for hard links: entries sharing one are compared as groups
	Nlink uint64
	Rdev  uint64
	UID   uint32
	GID   uint32
}

// snapshot walks dir without following symlinks and describes every entry by its path below dir.
func snapshot(t *testing.T, dir string) map[string]entry {
	t.Helper()
	out := map[string]entry{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		e := entry{
			Type: st.Mode & unix.S_IFMT, Mode: st.Mode & 0o7777, Mtime: st.Mtim.Sec,
			Inode: st.Ino, Nlink: uint64(st.Nlink), Rdev: st.Rdev, UID: st.Uid, GID: st.Gid,
		}
		switch e.Type {
		case unix.S_IFREG:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(b)
			e.Sum, e.Size = hex.EncodeToString(sum[:]), int64(len(b))
		case unix.S_IFLNK:
			l, err := os.Readlink(p)
			if err != nil {
				return err
			}
			e.Link = l
			e.Mode = 0 // a symlink's mode means nothing on Linux
		}
		out[rel] = e
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// compareTrees checks that got has the same entries as want with the same content, modes, link
// targets and mtimes, and that entries hard-linked in want are hard-linked in got.
func compareTrees(t *testing.T, want, got map[string]entry) {
	t.Helper()
	var wantNames, gotNames []string
	for n := range want {
		wantNames = append(wantNames, n)
	}
	for n := range got {
		gotNames = append(gotNames, n)
	}
	sort.Strings(wantNames)
	sort.Strings(gotNames)
	if !reflect.DeepEqual(wantNames, gotNames) {
		t.Fatalf("extracted tree has entries\n%q\nwant\n%q", gotNames, wantNames)
	}
	for _, n := range wantNames {
		w, g := want[n], got[n]
		if g.Type != w.Type || g.Mode != w.Mode || g.Sum != w.Sum || g.Size != w.Size || g.Link != w.Link {
			t.Errorf("%s: got type %#o mode %#o size %d sum %.12s link %q, want type %#o mode %#o size %d sum %.12s link %q",
				n, g.Type, g.Mode, g.Size, g.Sum, g.Link, w.Type, w.Mode, w.Size, w.Sum, w.Link)
		}
		if n != "." && g.Mtime != w.Mtime {
			t.Errorf("%s: mtime %s, want %s", n, time.Unix(g.Mtime, 0).UTC(), time.Unix(w.Mtime, 0).UTC())
		}
		if w.Type == unix.S_IFREG && g.Nlink != w.Nlink {
			t.Errorf("%s: %d links, want %d", n, g.Nlink, w.Nlink)
		}
	}
	// Hard-link groups.
	for a, wa := range want {
		for b, wb := range want {
			if a < b && wa.Type == unix.S_IFREG && wb.Type == unix.S_IFREG {
				if (wa.Inode == wb.Inode) != (got[a].Inode == got[b].Inode) {
					t.Errorf("%s and %s: hard-linked in the source %v, after extraction %v",
						a, b, wa.Inode == wb.Inode, got[a].Inode == got[b].Inode)
				}
			}
		}
	}
}

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// base is the time the test tree's entries get, with nanoseconds to show truncation to seconds.
var base = time.Date(2021, 3, 4, 5, 6, 7, 890_123_456, time.UTC)

// makeTree builds the round trip's source tree in dir: every kind of entry and mode the archive keeps.
func makeTree(t *testing.T, dir string) {
	t.Helper()
	mk := func(rel string, mode os.FileMode) {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
	file := func(rel string, size int, mode os.FileMode) {
		p := filepath.Join(dir, rel)
		if err := os.WriteFile(p, randomBytes(t, size), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
	link := func(target, rel string) {
		if err := os.Symlink(target, filepath.Join(dir, rel)); err != nil {
			t.Fatal(err)
		}
	}
	mk("bin", 0o755)
	mk("private", 0o700)
	mk("shared", 0o2775|os.ModeSetgid)
	mk("tmp", 0o777|os.ModeSticky)
	mk("empty", 0o755)
	mk("deep/a/b/c/empty", 0o750)
	file("bin/tool", 70_000, 0o755)
	file("bin/setuid", 100, 0o755|os.ModeSetuid)
	file("private/key", 32, 0o600)
	file("shared/readonly", 1, 0o444)
	file("shared/big", 1<<20+17, 0o644)
	file("deep/a/b/c/leaf", 4096, 0o640)
	file("zero", 0, 0o644)
	link("tool", "bin/rel")                  // relative, same directory
	link("../private/key", "bin/up")         // relative, up
	link("/etc/passwd", "abs")               // absolute: kept verbatim, not resolved
	link("/", "rootlink")                    // the root itself
	link("does/not/exist", "dangling")       // dangling
	link("../../../../../../outside", "up6") // climbs: verbatim too
	if err := os.Link(filepath.Join(dir, "bin/tool"), filepath.Join(dir, "deep/a/hard")); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(filepath.Join(dir, "bin/tool"), filepath.Join(dir, "hard2")); err != nil {
		t.Fatal(err)
	}
	// mtimes last, children before parents, symlinks without following.
	var paths []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		paths = append(paths, p)
		return err
	})
	for i := len(paths) - 1; i >= 0; i-- {
		mt := base.Add(time.Duration(i) * time.Hour)
		ts := unix.NsecToTimespec(mt.UnixNano())
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, paths[i], []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			t.Fatal(err)
		}
	}
}

func archive(t *testing.T, r *Root, src string, opts ArchiveOptions) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := r.Archive(src, &buf, opts); err != nil {
		t.Fatalf("Archive(%q): %v", src, err)
	}
	return buf.Bytes()
}

// headers lists an archive's entries.
func headers(t *testing.T, b []byte) []*tar.Header {
	t.Helper()
	var hs []*tar.Header
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return hs
		}
		if err != nil {
			t.Fatal(err)
		}
		hs = append(hs, h)
	}
}

func names(hs []*tar.Header) []string {
	var ns []string
	for _, h := range hs {
		ns = append(ns, h.Name)
	}
	return ns
}

func TestArchiveExtractRoundTrip(t *testing.T) {
	src := newSandbox(t)
	makeTree(t, filepath.Join(src.dir, "tree"))
	want := snapshot(t, filepath.Join(src.dir, "tree"))
	// The tree really has what the test is about.
	if want["shared"].Mode != 0o2775 || want["tmp"].Mode != 0o1777 || want["bin/setuid"].Mode != 0o4755 {
		t.Fatalf("source modes not as made: %+v %+v %+v", want["shared"], want["tmp"], want["bin/setuid"])
	}
	if want["hard2"].Inode != want["bin/tool"].Inode {
		t.Fatal("source hard link missing")
	}

	for _, contents := range []bool{false, true} {
		t.Run(fmt.Sprintf("contents=%v", contents), func(t *testing.T) {
			b := archive(t, src.root, "tree", ArchiveOptions{Contents: contents})
			// The archive is reproducible: the same tree gives the same bytes.
			if again := archive(t, src.root, "tree", ArchiveOptions{Contents: contents}); !bytes.Equal(b, again) {
				t.Error("two archives of the same tree differ")
			}
			dst := newSandbox(t)
			skipped, err := dst.root.Extract("/out/", bytes.NewReader(b), ExtractOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if skipped != 0 {
				t.Errorf("skipped %d entries", skipped)
			}
			got := filepath.Join(dst.dir, "out")
			if !contents {
				if ns := listDir(t, got); strings.Join(ns, ",") != "tree" {
					t.Fatalf("out holds %q, want [tree]", ns)
				}
				got = filepath.Join(got, "tree")
			}
			compareTrees(t, want, snapshot(t, got))
			// Mtimes were kept to the second.
			if g := lstat(t, filepath.Join(got, "shared/big")).Mtim; g.Nsec != 0 || g.Sec != want["shared/big"].Mtime {
				t.Errorf("shared/big mtime %v, want %d.0", g, want["shared/big"].Mtime)
			}
			// Symlinks came out verbatim, and none was followed.
			for _, l := range []string{"abs", "rootlink", "up6", "dangling"} {
				if tgt, err := os.Readlink(filepath.Join(got, l)); err != nil || tgt != want[l].Link {
					t.Errorf("%s -> %q, %v; want %q", l, tgt, err, want[l].Link)
				}
			}
			src.checkOutside(t)
			dst.checkOutside(t)
		})
	}
}

func TestArchiveHeaders(t *testing.T) {
	s := newSandbox(t)
	makeTree(t, filepath.Join(s.dir, "tree"))
	hs := headers(t, archive(t, s.root, "tree", ArchiveOptions{}))
	byName := map[string]*tar.Header{}
	for _, h := range hs {
		byName[h.Name] = h
	}
	// Every regular file's hard links after the first one are link entries naming the first one.
	var tool, hardLinks []string
	for _, n := range []string{"tree/bin/tool", "tree/deep/a/hard", "tree/hard2"} {
		switch h := byName[n]; {
		case h == nil:
			t.Fatalf("%s missing from the archive", n)
		case h.Typeflag == tar.TypeReg:
			tool = append(tool, n)
		case h.Typeflag == tar.TypeLink:
			hardLinks = append(hardLinks, n)
			if h.Linkname != "tree/bin/tool" {
				t.Errorf("%s links to %q, want tree/bin/tool (the first one written)", n, h.Linkname)
			}
			if h.Size != 0 {
				t.Errorf("hard link %s carries %d bytes", n, h.Size)
			}
		}
	}
	if len(tool) != 1 || len(hardLinks) != 2 {
		t.Errorf("regular %q, links %q: want one regular entry and two links", tool, hardLinks)
	}
	if h := byName["tree/shared/"]; h == nil || h.Typeflag != tar.TypeDir || h.Mode != 0o2775 {
		t.Errorf("tree/shared/ header %+v, want a directory with mode 02775", h)
	}
	if h := byName["tree/abs"]; h == nil || h.Typeflag != tar.TypeSymlink || h.Linkname != "/etc/passwd" {
		t.Errorf("tree/abs header %+v", h)
	}
	if h := byName["tree/shared/big"]; h == nil || h.ModTime.Nanosecond() != 0 {
		t.Errorf("tree/shared/big mtime not in whole seconds: %+v", h)
	}
	// Entries come parents first, in sorted order.
	seen := map[string]bool{}
	for _, h := range hs {
		dir := filepath.Dir(strings.TrimSuffix(h.Name, "/"))
		if dir != "." && !seen[dir] {
			t.Errorf("%s comes before its directory", h.Name)
		}
		seen[strings.TrimSuffix(h.Name, "/")] = true
	}
	// Without Owner the real owner is recorded.
	if h := byName["tree/zero"]; h.Uid != os.Geteuid() || h.Gid != os.Getegid() {
		t.Errorf("owner %d:%d, want %d:%d", h.Uid, h.Gid, os.Geteuid(), os.Getegid())
	}
}

func TestArchiveNaming(t *testing.T) {
	s := newSandbox(t)
	for _, p := range []string{"src/d/sub", "src/e"} {
		if err := os.MkdirAll(filepath.Join(s.dir, p), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(s.dir, "src/d/f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(s.dir, "src/top"), []byte("y"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		src      string
		contents bool
		want     []string
	}{
		{"src", false, []string{"src/", "src/d/", "src/d/f", "src/d/sub/", "src/e/", "src/top"}},
		{"/src/", false, []string{"src/", "src/d/", "src/d/f", "src/d/sub/", "src/e/", "src/top"}},
		{"src", true, []string{"./", "d/", "d/f", "d/sub/", "e/", "top"}},
		{"src/d", false, []string{"d/", "d/f", "d/sub/"}},
		{"src/d", true, []string{"./", "f", "sub/"}},
		{"../src/d", true, []string{"./", "f", "sub/"}},
		{"src/top", false, []string{"top"}},
		{"src/top", true, []string{"top"}}, // a file is named by its base name either way
		{"src/d/sub", true, []string{"./"}},
		{".", false, []string{"./", "src/", "src/d/", "src/d/f", "src/d/sub/", "src/e/", "src/top"}},
		{"/", true, []string{"./", "src/", "src/d/", "src/d/f", "src/d/sub/", "src/e/", "src/top"}},
	} {
		got := names(headers(t, archive(t, s.root, tc.src, ArchiveOptions{Contents: tc.contents})))
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("Archive(%q, Contents: %v) names\n%q\nwant\n%q", tc.src, tc.contents, got, tc.want)
		}
	}
	if err := s.root.Archive("missing", io.Discard, ArchiveOptions{}); !errors.Is(err, unix.ENOENT) {
		t.Errorf("Archive(missing) = %v, want ENOENT", err)
	}
}

// Archive never follows symlinks, not even the source itself, and does not leave the root.
func TestArchiveDoesNotFollowSymlinks(t *testing.T) {
	s := newSandbox(t)
	if err := os.Mkdir(filepath.Join(s.dir, "d"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(s.outside, filepath.Join(s.dir, "d/out")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../../outside", filepath.Join(s.dir, "srclink")); err != nil {
		t.Fatal(err)
	}
	hs := headers(t, archive(t, s.root, "d", ArchiveOptions{}))
	if got := names(hs); !reflect.DeepEqual(got, []string{"d/", "d/out"}) {
		t.Errorf("names %q", got)
	}
	hs = headers(t, archive(t, s.root, "srclink", ArchiveOptions{Contents: true}))
	if len(hs) != 1 || hs[0].Typeflag != tar.TypeSymlink || hs[0].Linkname != "../../outside" {
		t.Errorf("archive of a symlink source: %+v", hs)
	}
	// A path through a link that leaves the root is resolved inside it: the sibling is not found.
	if err := s.root.Archive("d/out/victim", io.Discard, ArchiveOptions{}); !errors.Is(err, unix.ENOENT) {
		t.Errorf("Archive(d/out/victim) = %v, want ENOENT", err)
	}
}

func TestArchiveExclude(t *testing.T) {
	s := newSandbox(t)
	for _, p := range []string{"src/keep/sub", "src/cache/deep", "src/skip/inner", "src/other/skip", "src/logs"} {
		if err := os.MkdirAll(filepath.Join(s.dir, p), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{
		"src/a.txt", "src/a.log", "src/keep/b.log", "src/keep/sub/c.txt", "src/cache/deep/x",
		"src/skip/inner/y", "src/other/skip/z", "src/logs/kept.txt",
	} {
		if err := os.WriteFile(filepath.Join(s.dir, p), []byte(p), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name     string
		exclude  []string
		contents bool
		want     []string
	}{
		{"none", nil, true, []string{
			"./", "a.log", "a.txt", "cache/", "cache/deep/", "cache/deep/x", "keep/", "keep/b.log", "keep/sub/",
			"keep/sub/c.txt", "logs/", "logs/kept.txt", "other/", "other/skip/", "other/skip/z", "skip/", "skip/inner/", "skip/inner/y"}},
		// A base-name pattern applies at every depth; a directory takes its subtree with it.
		{"base names", []string{"*.log", "cache"}, true, []string{
			"./", "a.txt", "keep/", "keep/sub/", "keep/sub/c.txt", "logs/", "logs/kept.txt",
			"other/", "other/skip/", "other/skip/z", "skip/", "skip/inner/", "skip/inner/y"}},
		// "skip" by base name drops both directories called skip.
		{"base name dir", []string{"skip"}, true, []string{
			"./", "a.log", "a.txt", "cache/", "cache/deep/", "cache/deep/x", "keep/", "keep/b.log", "keep/sub/",
			"keep/sub/c.txt", "logs/", "logs/kept.txt", "other/"}},
		// A relative path matches only there.
		{"relative path", []string{"other/skip", "keep/*.log", "cache/deep"}, true, []string{
			"./", "a.log", "a.txt", "cache/", "keep/", "keep/sub/", "keep/sub/c.txt", "logs/", "logs/kept.txt",
			"other/", "skip/", "skip/inner/", "skip/inner/y"}},
		// Paths are relative to the source, also when entries are named with its base name.
		{"relative path with prefix", []string{"keep/sub", "a.*"}, false, []string{
			"src/", "src/cache/", "src/cache/deep/", "src/cache/deep/x", "src/keep/", "src/keep/b.log",
			"src/logs/", "src/logs/kept.txt", "src/other/", "src/other/skip/", "src/other/skip/z",
			"src/skip/", "src/skip/inner/", "src/skip/inner/y"}},
		// The prefix is not part of what patterns see, and the source itself is never excluded.
		{"source name", []string{"src", "src/keep"}, false, []string{
			"src/", "src/a.log", "src/a.txt", "src/cache/", "src/cache/deep/", "src/cache/deep/x", "src/keep/",
			"src/keep/b.log", "src/keep/sub/", "src/keep/sub/c.txt", "src/logs/", "src/logs/kept.txt",
			"src/other/", "src/other/skip/", "src/other/skip/z", "src/skip/", "src/skip/inner/", "src/skip/inner/y"}},
		{"everything", []string{"*"}, true, []string{"./"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := names(headers(t, archive(t, s.root, "src", ArchiveOptions{Contents: tc.contents, Exclude: tc.exclude})))
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Exclude %q:\n got %q\nwant %q", tc.exclude, got, tc.want)
			}
		})
	}
	var buf bytes.Buffer
	if err := s.root.Archive("src", &buf, ArchiveOptions{Exclude: []string{"ok", "[bad"}}); err == nil || !strings.Contains(err.Error(), "[bad") {
		t.Errorf("bad pattern: %v, want an error naming it", err)
	}
	if buf.Len() != 0 {
		t.Errorf("a bad pattern still wrote %d bytes", buf.Len())
	}
}

func TestArchiveOwner(t *testing.T) {
	s := newSandbox(t)
	if err := os.MkdirAll(filepath.Join(s.dir, "src/d"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(s.dir, "src/d/f"), []byte("f"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("f", filepath.Join(s.dir, "src/d/l")); err != nil {
		t.Fatal(err)
	}
	for _, o := range []Owner{{0, 0}, {1000, 100}, {4242, 2424}} {
		hs := headers(t, archive(t, s.root, "src", ArchiveOptions{Owner: &o}))
		if len(hs) != 4 {
			t.Fatalf("%d entries", len(hs))
		}
		for _, h := range hs {
			if h.Uid != o.UID || h.Gid != o.GID {
				t.Errorf("Owner %v: %s owned by %d:%d", o, h.Name, h.Uid, h.Gid)
			}
		}
	}
	// The files themselves keep their owner.
	if st := lstat(t, filepath.Join(s.dir, "src/d/f")); int(st.Uid) != os.Geteuid() {
		t.Errorf("Archive changed the source's owner to %d", st.Uid)
	}
}

// tarTime is the mtime of hand-made entries: whole seconds, as tar.Writer rounds them unless the
// format is chosen explicitly.
var tarTime = base.Truncate(time.Second)

// tarEntry is one entry of a hand-made archive.
type tarEntry struct {
	hdr  tar.Header
	body string
}

func makeTar(t testing.TB, entries ...tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := e.hdr
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(e.body))
		}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if h.ModTime.IsZero() {
			h.ModTime = tarTime
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(tw, e.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func reg(name, body string) tarEntry {
	return tarEntry{hdr: tar.Header{Name: name, Typeflag: tar.TypeReg}, body: body}
}

func dirEntry(name string, mode int64) tarEntry {
	return tarEntry{hdr: tar.Header{Name: name, Typeflag: tar.TypeDir, Mode: mode}}
}

func symlink(name, target string) tarEntry {
	return tarEntry{hdr: tar.Header{Name: name, Typeflag: tar.TypeSymlink, Linkname: target, Mode: 0o777}}
}

func hardlink(name, target string) tarEntry {
	return tarEntry{hdr: tar.Header{Name: name, Typeflag: tar.TypeLink, Linkname: target}}
}

func TestExtractRefusesEscapingNames(t *testing.T) {
	for _, bad := range []tarEntry{
		reg("../x", "escape"),
		reg("/etc/x", "escape"),
		reg("a/../../x", "escape"),
		reg("..", "escape"),
		reg("./../outside/victim", "escape"),
		reg("a/b/../../../outside/victim", "escape"),
		dirEntry("../newdir/", 0o755),
		symlink("../outside/link", "/"),
		symlink("/abs-link", "/"),
		hardlink("../outside/hard", "ok"),
		// A hard link may not name a target outside either.
		hardlink("h1", "../outside/victim"),
		hardlink("h2", "/etc/passwd"),
		hardlink("h3", "a/../../outside/victim"),
	} {
		t.Run(bad.hdr.Name+"->"+bad.hdr.Linkname, func(t *testing.T) {
			s := newSandbox(t)
			b := makeTar(t, reg("ok", "fine"), bad, reg("after", "never"))
			for _, dest := range []string{".", "sub/dir"} {
				_, err := s.root.Extract(dest, bytes.NewReader(b), ExtractOptions{})
				if !errors.Is(err, ErrEscapes) {
					t.Errorf("Extract into %q: %v, want ErrEscapes", dest, err)
				}
				if err != nil && !strings.Contains(err.Error(), bad.hdr.Name) && !strings.Contains(err.Error(), bad.hdr.Linkname) {
					t.Errorf("error %q does not name the entry", err)
				}
				// The entries before the bad one are there, nothing after it.
				if got := readFile(t, filepath.Join(s.dir, dest, "ok")); got != "fine" {
					t.Errorf("ok holds %q", got)
				}
				if _, err := os.Lstat(filepath.Join(s.dir, dest, "after")); !os.IsNotExist(err) {
					t.Errorf("entry after the refused one was extracted (%v)", err)
				}
			}
			s.checkOutside(t)
		})
	}
}

// The classic tar-slip: a symlink entry pointing out, then an entry through it.
func TestExtractThroughSymlinkEntryStaysInside(t *testing.T) {
	for name, target := range map[string]string{
		"root": "/", "up": "../../..", "parent": "..", "abshost": "<outside>", "relhost": "../outside",
	} {
		t.Run(name, func(t *testing.T) {
			s := newSandbox(t)
			if target == "<outside>" {
				target = s.outside
			}
			b := makeTar(t,
				symlink("esc", target),
				reg("esc/victim", "through the link"),
				dirEntry("esc/newdir/", 0o700),
				reg("esc/newdir/f", "in newdir"),
			)
			_, err := s.root.Extract(".", bytes.NewReader(b), ExtractOptions{})
			s.checkOutside(t)
			if err != nil {
				// Refusing is fine as long as nothing leaked; "relhost" and "abshost" point at a
				// directory that does not exist inside the root.
				t.Logf("Extract: %v", err)
				return
			}
			if l, err := os.Readlink(filepath.Join(s.dir, "esc")); err != nil || l != target {
				t.Errorf("esc -> %q, %v", l, err)
			}
			// Whatever the entries resolved to, it is inside the root.
			found := false
			filepath.WalkDir(s.dir, func(p string, d fs.DirEntry, err error) error {
				if err == nil && d.Name() == "victim" && d.Type().IsRegular() {
					found = readFile(t, p) == "through the link"
				}
				return nil
			})
			if !found {
				t.Error("the entry written through the link is nowhere in the root")
			}
		})
	}
}

func TestExtractReplacesSymlinkWithoutWritingThrough(t *testing.T) {
	s := newSandbox(t)
	victim := filepath.Join(s.outside, "victim")
	// Links to the sibling's file by absolute host path and by relative path, and a link to a file
	// inside the root.
	links := map[string]string{"abs": victim, "rel": "../outside/victim", "in": "inner"}
	for l, target := range links {
		if err := os.Symlink(target, filepath.Join(s.dir, l)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(s.dir, "inner"), []byte("inner"), 0o644); err != nil {
		t.Fatal(err)
	}
	b := makeTar(t, reg("abs", "new abs"), reg("rel", "new rel"), reg("in", "new in"))
	if _, err := s.root.Extract(".", bytes.NewReader(b), ExtractOptions{}); err != nil {
		t.Fatal(err)
	}
	for l := range links {
		st := lstat(t, filepath.Join(s.dir, l))
		if st.Mode&unix.S_IFMT != unix.S_IFREG {
			t.Errorf("%s is still not a regular file (mode %#o)", l, st.Mode)
		}
		if got := readFile(t, filepath.Join(s.dir, l)); got != "new "+l {
			t.Errorf("%s holds %q", l, got)
		}
	}
	if got := readFile(t, filepath.Join(s.dir, "inner")); got != "inner" {
		t.Errorf("the link's target inside the root was written: %q", got)
	}
	s.checkOutside(t)

	// A symlink and a hard link entry replace existing files too.
	if err := os.Symlink(victim, filepath.Join(s.dir, "l2")); err != nil {
		t.Fatal(err)
	}
	b = makeTar(t, symlink("abs", "elsewhere"), reg("target", "t"), hardlink("l2", "target"))
	if _, err := s.root.Extract(".", bytes.NewReader(b), ExtractOptions{}); err != nil {
		t.Fatal(err)
	}
	if l, _ := os.Readlink(filepath.Join(s.dir, "abs")); l != "elsewhere" {
		t.Errorf("abs -> %q, want elsewhere", l)
	}
	if got := readFile(t, filepath.Join(s.dir, "l2")); got != "t" {
		t.Errorf("l2 holds %q", got)
	}
	if a, b := lstat(t, filepath.Join(s.dir, "l2")), lstat(t, filepath.Join(s.dir, "target")); a.Ino != b.Ino {
		t.Error("l2 is not a hard link of target")
	}
	s.checkOutside(t)
}

// A directory entry whose name is an existing symlink must not change what the link points to.
// (The directory's permissions are applied with fchmodat(2), which follows symlinks.)
func TestExtractDirEntryOverSymlinkDoesNotChmodOutside(t *testing.T) {
	for name, target := range map[string]string{"absolute": "<outside>", "relative": "../outside", "file": "<victim>"} {
		t.Run(name, func(t *testing.T) {
			s := newSandbox(t)
			switch target {
			case "<outside>":
				target = s.outside
			case "<victim>":
				target = filepath.Join(s.outside, "victim")
			}
			// The link exists before (a download into a directory with a link in it), or comes
			// from the same archive; both must be harmless.
			for _, pre := range []bool{true, false} {
				os.Remove(filepath.Join(s.dir, "esc"))
				entries := []tarEntry{dirEntry("esc/", 0o700)}
				if pre {
					if err := os.Symlink(target, filepath.Join(s.dir, "esc")); err != nil {
						t.Fatal(err)
					}
				} else {
					entries = append([]tarEntry{symlink("esc", target)}, entries...)
				}
				_, err := s.root.Extract(".", bytes.NewReader(makeTar(t, entries...)), ExtractOptions{})
				if err != nil {
					t.Logf("pre-existing link %v: Extract: %v", pre, err)
				}
				s.checkOutside(t)
			}
		})
	}
}

func TestExtractOverwritesAndKeeps(t *testing.T) {
	s := newSandbox(t)
	if err := os.MkdirAll(filepath.Join(s.dir, "d/old"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(s.dir, "d/old/keep"), []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(s.dir, "d/f"), []byte("a much longer old content"), 0o600); err != nil {
		t.Fatal(err)
	}
	b := makeTar(t, dirEntry("d/", 0o750), dirEntry("d/old/", 0o700), reg("d/f", "new"))
	if _, err := s.root.Extract(".", bytes.NewReader(b), ExtractOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(s.dir, "d/old/keep")); got != "keep" {
		t.Errorf("existing file in an existing directory lost: %q", got)
	}
	if got := readFile(t, filepath.Join(s.dir, "d/f")); got != "new" {
		t.Errorf("d/f holds %q", got)
	}
	if m := lstat(t, filepath.Join(s.dir, "d")).Mode & 0o7777; m != 0o750 {
		t.Errorf("existing directory's mode %#o, want the archive's 0750", m)
	}
	if m := lstat(t, filepath.Join(s.dir, "d/f")).Mode & 0o7777; m != 0o644 {
		t.Errorf("replaced file's mode %#o, want the archive's 0644", m)
	}
	// A regular file where a directory is fails, and the directory stays.
	b = makeTar(t, reg("d/old", "x"))
	if _, err := s.root.Extract(".", bytes.NewReader(b), ExtractOptions{}); err == nil {
		t.Error("a file entry replaced a non-empty directory")
	}
	if got := readFile(t, filepath.Join(s.dir, "d/old/keep")); got != "keep" {
		t.Errorf("d/old/keep holds %q", got)
	}
}

func TestExtractMissingParentsAndDest(t *testing.T) {
	s := newSandbox(t)
	withUmask(0o022, func() {
		b := makeTar(t, reg("a/b/c", "deep"))
		if _, err := s.root.Extract("/x/../y/z", bytes.NewReader(b), ExtractOptions{}); err != nil {
			t.Fatal(err)
		}
	})
	if got := readFile(t, filepath.Join(s.dir, "y/z/a/b/c")); got != "deep" {
		t.Errorf("content %q", got)
	}
	for _, d := range []string{"y", "y/z", "y/z/a", "y/z/a/b"} {
		if m := lstat(t, filepath.Join(s.dir, d)).Mode; m&unix.S_IFMT != unix.S_IFDIR || m&0o777 != 0o755 {
			t.Errorf("%s: mode %#o, want a 0755 directory", d, m)
		}
	}
	// The destination itself may be given as "." in the archive; it then takes the entry's mode
	// and mtime.
	b := makeTar(t, dirEntry("./", 0o711), reg("./f", "f"))
	if _, err := s.root.Extract("dest", bytes.NewReader(b), ExtractOptions{}); err != nil {
		t.Fatal(err)
	}
	st := lstat(t, filepath.Join(s.dir, "dest"))
	if st.Mode&0o7777 != 0o711 || st.Mtim.Sec != tarTime.Unix() {
		t.Errorf("dest: mode %#o mtime %d, want 0711 and %d", st.Mode&0o7777, st.Mtim.Sec, tarTime.Unix())
	}
	// The same with "." as the destination: the root directory itself takes the entry's mode.
	if err := s.root.MkdirAll("dot", 0o755, nil); err != nil {
		t.Fatal(err)
	}
	dot, err := Open(filepath.Join(s.dir, "dot"))
	if err != nil {
		t.Fatal(err)
	}
	defer dot.Close()
	if _, err := dot.Extract(".", bytes.NewReader(b), ExtractOptions{}); err != nil {
		t.Fatal(err)
	}
	st = lstat(t, filepath.Join(s.dir, "dot"))
	if st.Mode&0o7777 != 0o711 || st.Mtim.Sec != tarTime.Unix() {
		t.Errorf("root dot: mode %#o mtime %d, want 0711 and %d", st.Mode&0o7777, st.Mtim.Sec, tarTime.Unix())
	}
	if got := readFile(t, filepath.Join(s.dir, "dot/f")); got != "f" {
		t.Errorf("dot/f holds %q", got)
	}
	// "." as anything but a directory is an error, and the directory stays.
	for _, r := range []*Root{s.root, dot} {
		if _, err := r.Extract(map[*Root]string{s.root: "dest", dot: "."}[r], bytes.NewReader(makeTar(t, reg(".", "x"))), ExtractOptions{}); err == nil {
			t.Error("a regular file entry for the destination itself was accepted")
		}
	}
	if st := lstat(t, filepath.Join(s.dir, "dest")); st.Mode&unix.S_IFMT != unix.S_IFDIR {
		t.Error("dest is no longer a directory")
	}
	s.checkOutside(t)
}

func TestExtractMtimes(t *testing.T) {
	s := newSandbox(t)
	t1 := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	t2 := time.Date(1999, 12, 31, 23, 59, 59, 0, time.UTC)
	t3 := time.Date(2030, 1, 1, 0, 0, 1, 0, time.UTC)
	d := dirEntry("d/", 0o755)
	d.hdr.ModTime = t1
	f := reg("d/f", "x")
	f.hdr.ModTime = t2
	l := symlink("d/l", "f")
	l.hdr.ModTime = t3
	sub := dirEntry("d/sub/", 0o755)
	sub.hdr.ModTime = t3
	late := reg("d/sub/late", "y") // written after d/sub's entry: d/sub's mtime still wins
	late.hdr.ModTime = t1
	if _, err := s.root.Extract(".", bytes.NewReader(makeTar(t, d, f, l, sub, late)), ExtractOptions{}); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]time.Time{"d": t1, "d/f": t2, "d/l": t3, "d/sub": t3, "d/sub/late": t1} {
		if got := lstat(t, filepath.Join(s.dir, p)).Mtim; got.Sec != want.Unix() || got.Nsec != 0 {
			t.Errorf("%s: mtime %v, want %v", p, time.Unix(got.Unix()).UTC(), want)
		}
	}
}

func TestExtractSkipDevices(t *testing.T) {
	dev := func(name string, typ byte, major, minor int64) tarEntry {
		return tarEntry{hdr: tar.Header{Name: name, Typeflag: typ, Mode: 0o666, Devmajor: major, Devminor: minor}}
	}
	b := makeTar(t,
		dirEntry("dev/", 0o755),
		dev("dev/null", tar.TypeChar, 1, 3),
		dev("dev/zero", tar.TypeChar, 1, 5),
		reg("dev/regular", "kept"),
		dev("dev/loop0", tar.TypeBlock, 7, 0),
		dev("dev/fifo", tar.TypeFifo, 0, 0),
		dev("dev/tty", tar.TypeChar, 5, 0),
	)
	s := newSandbox(t)
	skipped, err := s.root.Extract(".", bytes.NewReader(b), ExtractOptions{SkipDevices: true})
	if err != nil {
		t.Fatal(err)
	}
	if skipped != 5 {
		t.Errorf("skipped %d entries, want 5 (3 char, 1 block, 1 fifo)", skipped)
	}
	if got := listDir(t, filepath.Join(s.dir, "dev")); strings.Join(got, ",") != "regular" {
		t.Errorf("dev holds %q, want only regular", got)
	}

	// Only character devices.
	s = newSandbox(t)
	skipped, err = s.root.Extract(".", bytes.NewReader(makeTar(t, dev("c1", tar.TypeChar, 1, 3), dev("c2", tar.TypeChar, 1, 7))), ExtractOptions{SkipDevices: true})
	if err != nil || skipped != 2 {
		t.Errorf("two char devices: skipped %d, %v; want 2, nil", skipped, err)
	}

	// A FIFO needs no privilege.
	s = newSandbox(t)
	skipped, err = s.root.Extract(".", bytes.NewReader(makeTar(t, dev("fifo", tar.TypeFifo, 0, 0))), ExtractOptions{})
	if err != nil || skipped != 0 {
		t.Fatalf("fifo: skipped %d, %v", skipped, err)
	}
	if st := lstat(t, filepath.Join(s.dir, "fifo")); st.Mode&unix.S_IFMT != unix.S_IFIFO || st.Mode&0o777 != 0o666 {
		t.Errorf("fifo mode %#o", st.Mode)
	}

	// Without SkipDevices, a character device is made by root and refused for anyone else.
	nullTar := makeTar(t, dev("null", tar.TypeChar, 1, 3))
	if os.Geteuid() == 0 {
		s = newSandbox(t)
		if _, err := s.root.Extract(".", bytes.NewReader(nullTar), ExtractOptions{}); err != nil {
			t.Fatal(err)
		}
		st := lstat(t, filepath.Join(s.dir, "null"))
		if st.Mode&unix.S_IFMT != unix.S_IFCHR || unix.Major(st.Rdev) != 1 || unix.Minor(st.Rdev) != 3 {
			t.Errorf("null: mode %#o rdev %d:%d", st.Mode, unix.Major(st.Rdev), unix.Minor(st.Rdev))
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
		_, err = r.Extract(".", bytes.NewReader(nullTar), ExtractOptions{})
		if !errors.Is(err, unix.EPERM) {
			t.Errorf("char device as an ordinary user: %v, want EPERM", err)
		}
		skipped, err := r.Extract(".", bytes.NewReader(nullTar), ExtractOptions{SkipDevices: true})
		if err != nil || skipped != 1 {
			t.Errorf("char device skipped as an ordinary user: %d, %v", skipped, err)
		}
	})
}

func TestExtractKeepOwners(t *testing.T) {
	withOwner := func(e tarEntry, uid, gid int) tarEntry {
		e.hdr.Uid, e.hdr.Gid = uid, gid
		return e
	}
	uid, gid := os.Geteuid(), os.Getegid()
	// The caller's own ids can always be kept.
	s := newSandbox(t)
	own := makeTar(t, withOwner(dirEntry("d/", 0o755), uid, gid), withOwner(reg("d/f", "f"), uid, gid), withOwner(symlink("d/l", "f"), uid, gid))
	if _, err := s.root.Extract(".", bytes.NewReader(own), ExtractOptions{KeepOwners: true}); err != nil {
		t.Fatal(err)
	}
	foreign := makeTar(t,
		withOwner(dirEntry("d/", 0o755), 1111, 2222),
		withOwner(reg("d/f", "f"), 3333, 4444),
		withOwner(symlink("d/l", "f"), 5555, 6666),
		withOwner(tarEntry{hdr: tar.Header{Name: "d/suid", Typeflag: tar.TypeReg, Mode: 0o4755}}, 7777, 8888),
	)
	if uid == 0 {
		s := newSandbox(t)
		if _, err := s.root.Extract(".", bytes.NewReader(foreign), ExtractOptions{KeepOwners: true}); err != nil {
			t.Fatal(err)
		}
		for p, want := range map[string][2]uint32{"d": {1111, 2222}, "d/f": {3333, 4444}, "d/l": {5555, 6666}, "d/suid": {7777, 8888}} {
			if st := lstat(t, filepath.Join(s.dir, p)); st.Uid != want[0] || st.Gid != want[1] {
				t.Errorf("%s owned by %d:%d, want %d:%d", p, st.Uid, st.Gid, want[0], want[1])
			}
		}
		// chown clears setuid: the mode is applied after it.
		if m := lstat(t, filepath.Join(s.dir, "d/suid")).Mode & 0o7777; m != 0o4755 {
			t.Errorf("d/suid mode %#o, want 04755", m)
		}
	}
	// Without KeepOwners the archive's owners are ignored: everything belongs to the extracting user.
	s = newSandbox(t)
	if _, err := s.root.Extract(".", bytes.NewReader(foreign), ExtractOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"d", "d/f", "d/l", "d/suid"} {
		if st := lstat(t, filepath.Join(s.dir, p)); int(st.Uid) != uid || int(st.Gid) != gid {
			t.Errorf("%s owned by %d:%d without KeepOwners, want %d:%d", p, st.Uid, st.Gid, uid, gid)
		}
	}
	// An ordinary user cannot keep foreign owners: Extract fails rather than silently dropping them.
	dir := unprivilegedDir(t)
	unprivileged(t, func() {
		r, err := Open(dir)
		if err != nil {
			t.Error(err)
			return
		}
		defer r.Close()
		if _, err := r.Extract(".", bytes.NewReader(foreign), ExtractOptions{KeepOwners: true}); !errors.Is(err, unix.EPERM) {
			t.Errorf("KeepOwners with foreign owners as an ordinary user: %v, want EPERM", err)
		}
		if _, err := r.Extract("again", bytes.NewReader(foreign), ExtractOptions{}); err != nil {
			t.Errorf("without KeepOwners as an ordinary user: %v", err)
		}
	})
}

// An ordinary user extracting a read-only directory with entries in it (as `go mod download`
// leaves them, or /usr/lib/.../ with r-x): the directory's mode must not stop its own entries.
func TestExtractReadOnlyDirectoryAsOrdinaryUser(t *testing.T) {
	b := makeTar(t, dirEntry("ro/", 0o555), reg("ro/f", "in a read-only directory"), dirEntry("ro/sub/", 0o500), reg("ro/sub/g", "deeper"))
	dir := unprivilegedDir(t)
	unprivileged(t, func() {
		r, err := Open(dir)
		if err != nil {
			t.Error(err)
			return
		}
		defer r.Close()
		if _, err := r.Extract(".", bytes.NewReader(b), ExtractOptions{}); err != nil {
			t.Errorf("Extract: %v", err)
		}
	})
	for p, want := range map[string]uint32{"ro": 0o555, "ro/sub": 0o500} {
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(dir, p), &st); err != nil {
			t.Errorf("%s: %v", p, err)
		} else if st.Mode&0o7777 != want {
			t.Errorf("%s: mode %#o, want %#o", p, st.Mode&0o7777, want)
		}
	}
	if b, err := os.ReadFile(filepath.Join(dir, "ro/sub/g")); err != nil || string(b) != "deeper" {
		t.Errorf("ro/sub/g: %q, %v", b, err)
	}
}

func TestExtractErrors(t *testing.T) {
	s := newSandbox(t)
	// Truncated archive.
	b := makeTar(t, reg("f", strings.Repeat("x", 2000)))
	if _, err := s.root.Extract(".", bytes.NewReader(b[:1024]), ExtractOptions{}); err == nil {
		t.Error("truncated archive extracted without error")
	}
	// Garbage.
	if _, err := s.root.Extract(".", strings.NewReader(strings.Repeat("garbage!", 200)), ExtractOptions{}); err == nil {
		t.Error("garbage extracted without error")
	}
	// Empty input is an empty archive.
	if n, err := s.root.Extract("empty", strings.NewReader(""), ExtractOptions{}); err != nil || n != 0 {
		t.Errorf("empty input: %d, %v", n, err)
	}
	// Unsupported types.
	for _, typ := range []byte{'V', 'D', 'Z'} {
		b := makeTar(t, tarEntry{hdr: tar.Header{Name: "odd", Typeflag: typ, Mode: 0o644}})
		if _, err := s.root.Extract(".", bytes.NewReader(b), ExtractOptions{}); err == nil || !strings.Contains(err.Error(), "unsupported") {
			t.Errorf("type %q: %v, want unsupported", typ, err)
		}
	}
	// A hard link to something that is not there.
	if _, err := s.root.Extract(".", bytes.NewReader(makeTar(t, hardlink("h", "missing"))), ExtractOptions{}); !errors.Is(err, unix.ENOENT) {
		t.Errorf("hard link to a missing target: %v, want ENOENT", err)
	}
	s.checkOutside(t)
}

// A pax global header is metadata, not a file.
func TestExtractGlobalHeader(t *testing.T) {
	s := newSandbox(t)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeXGlobalHeader, PAXRecords: map[string]string{"comment": "git archive"}}); err != nil {
		t.Fatal(err)
	}
	if err := tw.WriteHeader(&tar.Header{Name: "f", Typeflag: tar.TypeReg, Mode: 0o644, Size: 1}); err != nil {
		t.Fatal(err)
	}
	tw.Write([]byte("x"))
	tw.Close()
	if _, err := s.root.Extract(".", &buf, ExtractOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := listDir(t, s.dir); strings.Join(got, ",") != "f" {
		t.Errorf("root holds %q", got)
	}
}
