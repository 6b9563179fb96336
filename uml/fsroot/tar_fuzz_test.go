//go:build linux

package fsroot

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// FuzzExtract extracts arbitrary bytes into a root that is a subdirectory of a fresh parent, next
// to a sentinel directory, and checks that nothing outside the root was created or changed, that
// nothing panics, and that a successful extraction only had entries whose names stay inside.
//
// Inputs with a symlink entry whose target is absolute or climbs with ".." are not extracted: the
// fuzzer runs as root on developer machines, and a directory entry over such a link makes Extract
// chmod the link's target on the host (see TestExtractDirEntryOverSymlinkDoesNotChmodOutside), which
// could change the permissions of / itself. Relative targets without ".." cannot leave the root
// even when followed without RESOLVE_IN_ROOT.
func FuzzExtract(f *testing.F) {
	for _, seed := range fuzzSeeds(f) {
		f.Add(seed)
	}
	scratch := scratchDir(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		hdrs, complete, unsafe := scanArchive(data)
		if unsafe {
			return
		}
		if len(hdrs) == 0 {
			// Not one entry: Extract would only make its destination and then fail or stop
			// reading (TestExtractErrors). Skipping the file system work here makes the many
			// broken inputs that mutation and minimization produce cheap.
			return
		}
		parent, err := os.MkdirTemp(scratch, "")
		if err != nil {
			t.Fatal(err)
		}
		// Directories the archive makes read-only must not stop the clean-up.
		defer forceRemoveAll(t, parent)
		dir := filepath.Join(parent, "root")
		sentinel := filepath.Join(parent, "sentinel")
		for _, d := range []string{dir, sentinel} {
			if err := os.Mkdir(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(filepath.Join(sentinel, "victim"), []byte("v"), 0o644); err != nil {
			t.Fatal(err)
		}
		var before unix.Stat_t
		if err := unix.Lstat(parent, &before); err != nil {
			t.Fatal(err)
		}
		r, err := Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		_, err = r.Extract("dest", bytes.NewReader(data), ExtractOptions{SkipDevices: true})
		r.Close()

		ents, rerr := os.ReadDir(parent)
		if rerr != nil {
			t.Fatal(rerr)
		}
		var got []string
		for _, e := range ents {
			got = append(got, e.Name())
		}
		if strings.Join(got, ",") != "root,sentinel" {
			t.Fatalf("after Extract (err %v) the parent holds %q, want only [root sentinel]", err, got)
		}
		if ents, _ := os.ReadDir(sentinel); len(ents) != 1 || ents[0].Name() != "victim" {
			t.Fatalf("sentinel directory changed: %v", ents)
		}
		for p, want := range map[string]uint32{parent: before.Mode & 0o7777, sentinel: 0o755, filepath.Join(sentinel, "victim"): 0o644} {
			var st unix.Stat_t
			if err := unix.Lstat(p, &st); err != nil {
				t.Fatal(err)
			}
			if st.Mode&0o7777 != want {
				t.Fatalf("mode of %s changed to %#o (want %#o)", p, st.Mode&0o7777, want)
			}
		}
		if b, _ := os.ReadFile(filepath.Join(sentinel, "victim")); string(b) != "v" {
			t.Fatalf("sentinel file changed: %q", b)
		}
		if err != nil {
			return
		}
		// Success means the archive was read to its end and no name left the destination.
		if !complete {
			t.Fatalf("Extract succeeded on an archive that archive/tar cannot read to the end")
		}
		for _, h := range hdrs {
			if _, perr := entryPath(h.Name); perr != nil {
				t.Fatalf("Extract accepted entry %q", h.Name)
			}
			if h.Typeflag == tar.TypeLink {
				if _, perr := entryPath(h.Linkname); perr != nil {
					t.Fatalf("Extract accepted hard link %q -> %q", h.Name, h.Linkname)
				}
			}
		}
	})
}

// scratchDir returns a directory for the fuzz inputs' trees, removed after the fuzz run: on tmpfs
// (/dev/shm) where there is one, since every input makes and removes a tree and a journaling
// filesystem makes that several times slower, and otherwise in the test's temporary directory.
func scratchDir(f *testing.F) string {
	if dir, err := os.MkdirTemp("/dev/shm", "fsroot-fuzz-"); err == nil {
		f.Cleanup(func() { os.RemoveAll(dir) })
		return dir
	}
	return f.TempDir()
}

// scanArchive reads the headers of data as Extract's tar.Reader will; complete says whether it
// reached the end without error, unsafe whether a symlink's target is absolute or has "..".
func scanArchive(data []byte) (hdrs []*tar.Header, complete, unsafe bool) {
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return hdrs, true, unsafe
		}
		if err != nil {
			return hdrs, false, unsafe
		}
		if h.Typeflag == tar.TypeSymlink {
			l := h.Linkname
			if strings.HasPrefix(l, "/") || l == ".." || strings.HasPrefix(l, "../") ||
				strings.HasSuffix(l, "/..") || strings.Contains(l, "/../") {
				unsafe = true
			}
		}
		hdrs = append(hdrs, h)
	}
}

func fuzzSeeds(tb testing.TB) [][]byte {
	seeds := [][]byte{
		nil,
		[]byte("not a tar archive"),
		make([]byte, 1024), // two zero blocks: an empty archive
		makeTar(tb, reg("f", "hello")),
		makeTar(tb, dirEntry("d/", 0o755), reg("d/f", "x"), symlink("d/l", "f"), hardlink("d/h", "d/f"), dirEntry("d/e/", 0o500)),
		makeTar(tb, reg("../x", "escape")),
		makeTar(tb, reg("/etc/x", "escape")),
		makeTar(tb, reg("a/../../x", "escape")),
		makeTar(tb, reg("ok", "ok"), hardlink("h", "../outside/victim")),
		makeTar(tb, symlink("here", "."), reg("here/f", "through a link to the directory itself")),
		makeTar(tb, symlink("l", "target"), reg("l", "replaces the link")),
		makeTar(tb, reg("x", "file"), dirEntry("x/", 0o755)),
		makeTar(tb, dirEntry("./", 0o700), reg("./f", "dest itself")),
		makeTar(tb, tarEntry{hdr: tar.Header{Name: "dev/null", Typeflag: tar.TypeChar, Devmajor: 1, Devminor: 3}},
			tarEntry{hdr: tar.Header{Name: "fifo", Typeflag: tar.TypeFifo}}),
		makeTar(tb, reg(strings.Repeat("long/", 40)+"name", "pax long name")),
		makeTar(tb, tarEntry{hdr: tar.Header{Name: "gnu", Typeflag: tar.TypeReg, Format: tar.FormatGNU}, body: "gnu"}),
	}
	// Archive's own output.
	dir := tb.TempDir()
	os.MkdirAll(filepath.Join(dir, "t/sub"), 0o755)
	os.WriteFile(filepath.Join(dir, "t/sub/f"), []byte("content"), 0o640)
	os.Symlink("sub/f", filepath.Join(dir, "t/l"))
	os.Link(filepath.Join(dir, "t/sub/f"), filepath.Join(dir, "t/h"))
	if r, err := Open(dir); err == nil {
		var buf bytes.Buffer
		if err := r.Archive("t", &buf, ArchiveOptions{}); err == nil {
			seeds = append(seeds, buf.Bytes())
		} else {
			tb.Fatal(err)
		}
		r.Close()
	}
	// A truncated one.
	full := makeTar(tb, reg("f", strings.Repeat("z", 3000)))
	seeds = append(seeds, full[:1500])
	for _, s := range seeds {
		if _, _, unsafe := scanArchive(s); unsafe {
			tb.Fatal(errors.New("a seed is skipped as unsafe"))
		}
	}
	return seeds
}
