package fsroot

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"time"

	"golang.org/x/sys/unix"
)

// ExtractOptions says how Extract treats what an unprivileged process cannot do.
type ExtractOptions struct {
	// KeepOwners applies the archive's uid and gid to every entry (needs root).
	KeepOwners bool
	// SkipDevices skips device nodes and FIFOs instead of failing on them (an unprivileged
	// host cannot create them); Extract reports how many it skipped.
	SkipDevices bool
}

// Extract unpacks the tar stream from tr under dest, keeping modes, mtimes, symlinks and hard links,
// and owners when opts.KeepOwners is set. An entry whose name leaves dest fails the whole extraction;
// existing files are replaced, existing directories kept. It returns the number of skipped entries.
func (r *Root) Extract(dest string, tr io.Reader, opts ExtractOptions) (skipped int, err error) {
	dest = Clean(dest)
	if err := r.MkdirAll(dest, 0o755, nil); err != nil {
		return 0, err
	}
	// Directories get their mode and mtime after all entries: a read-only directory would refuse
	// its own children, and creating entries changes the mtime.
	type dirTimes struct {
		name  string
		mode  uint32
		mtime time.Time
	}
	var dirs []dirTimes
	t := tar.NewReader(tr)
	for {
		hdr, err := t.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return skipped, fmt.Errorf("read archive: %w", err)
		}
		rel, err := entryPath(hdr.Name)
		if err != nil {
			return skipped, err
		}
		name := path.Join(dest, rel)
		ok, err := r.extractEntry(name, dest, hdr, t, opts)
		if err != nil {
			return skipped, err
		}
		if !ok {
			skipped++
			continue
		}
		if hdr.Typeflag == tar.TypeDir {
			dirs = append(dirs, dirTimes{name, uint32(hdr.Mode) & 0o7777, hdr.ModTime})
		}
	}
	// Deepest first.
	sort.Slice(dirs, func(i, j int) bool { return len(dirs[i].name) > len(dirs[j].name) })
	for _, d := range dirs {
		if err := r.chmodDir(d.name, d.mode); err != nil {
			return skipped, err
		}
		if err := r.setTimes(d.name, d.mtime); err != nil {
			return skipped, err
		}
	}
	return skipped, nil
}

func (r *Root) extractEntry(name, dest string, hdr *tar.Header, body io.Reader, opts ExtractOptions) (bool, error) {
	dir, base := splitParent(name)
	if base == "" { // the destination itself ("." in the archive)
		if hdr.Typeflag != tar.TypeDir {
			return false, fmt.Errorf("%q: not a directory entry for the destination itself", hdr.Name)
		}
		return true, r.applyMeta(name, hdr, opts)
	}
	if err := r.MkdirAll(dir, 0o755, nil); err != nil {
		return false, err
	}
	pfd, err := r.openat(dir, unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		return false, err
	}
	defer unix.Close(pfd)
	mode := uint32(hdr.Mode) & 0o7777

	if hdr.Typeflag != tar.TypeDir {
		// Replace what is there; never write through an existing symlink.
		if err := unix.Unlinkat(pfd, base, 0); err != nil && err != unix.ENOENT && err != unix.EISDIR {
			return false, &os.PathError{Op: "replace", Path: name, Err: err}
		}
	}
	switch hdr.Typeflag {
	case tar.TypeDir:
		err := unix.Mkdirat(pfd, base, 0o700)
		if err == unix.EEXIST {
			// Keep an existing directory, but replace anything else: a symlink kept here would make
			// the chmod below (which follows symlinks) change a file outside the root.
			var st unix.Stat_t
			if serr := unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); serr != nil {
				return false, &os.PathError{Op: "lstat", Path: name, Err: serr}
			}
			if st.Mode&unix.S_IFMT != unix.S_IFDIR {
				if uerr := unix.Unlinkat(pfd, base, 0); uerr != nil {
					return false, &os.PathError{Op: "replace", Path: name, Err: uerr}
				}
				err = unix.Mkdirat(pfd, base, 0o700)
			} else {
				err = nil
			}
		}
		if err != nil {
			return false, &os.PathError{Op: "mkdir", Path: name, Err: err}
		}
	case tar.TypeReg, tar.TypeRegA:
		fd, err := unix.Openat(pfd, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if err != nil {
			return false, &os.PathError{Op: "create", Path: name, Err: err}
		}
		f := os.NewFile(uintptr(fd), name)
		_, err = io.Copy(f, body)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return false, &os.PathError{Op: "write", Path: name, Err: err}
		}
	case tar.TypeSymlink:
		if err := unix.Symlinkat(hdr.Linkname, pfd, base); err != nil {
			return false, &os.PathError{Op: "symlink", Path: name, Err: err}
		}
	case tar.TypeLink:
		target, err := entryPath(hdr.Linkname)
		if err != nil {
			return false, err
		}
		tdir, tbase := splitParent(path.Join(dest, target))
		tfd, err := r.openat(tdir, unix.O_PATH|unix.O_DIRECTORY, 0)
		if err != nil {
			return false, err
		}
		err = unix.Linkat(tfd, tbase, pfd, base, 0)
		unix.Close(tfd)
		if err != nil {
			return false, &os.PathError{Op: "link", Path: name, Err: err}
		}
		return true, nil // a hard link shares its target's metadata
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		if opts.SkipDevices {
			return false, nil
		}
		kind := map[byte]uint32{tar.TypeChar: unix.S_IFCHR, tar.TypeBlock: unix.S_IFBLK, tar.TypeFifo: unix.S_IFIFO}[hdr.Typeflag]
		dev := unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor))
		if err := unix.Mknodat(pfd, base, kind|mode, int(dev)); err != nil {
			return false, &os.PathError{Op: "mknod", Path: name, Err: err}
		}
	case tar.TypeXGlobalHeader:
		return true, nil // metadata for the archive, nothing to make
	default:
		return false, fmt.Errorf("%q: unsupported archive entry type %q", hdr.Name, hdr.Typeflag)
	}
	return true, r.applyMeta(name, hdr, opts)
}

// applyMeta sets owner, mode and mtime of an extracted entry, in that order: chown clears setuid bits.
func (r *Root) applyMeta(name string, hdr *tar.Header, opts ExtractOptions) error {
	dir, base := splitParent(name)
	pfd, err := r.openat(dir, unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		return err
	}
	defer unix.Close(pfd)
	flags := unix.AT_SYMLINK_NOFOLLOW
	if base == "" {
		flags |= unix.AT_EMPTY_PATH
	}
	if opts.KeepOwners {
		if err := unix.Fchownat(pfd, base, hdr.Uid, hdr.Gid, flags); err != nil {
			return &os.PathError{Op: "chown", Path: name, Err: err}
		}
	}
	if hdr.Typeflag != tar.TypeSymlink && hdr.Typeflag != tar.TypeDir {
		// fchmodat cannot take AT_SYMLINK_NOFOLLOW here, but the entry was just made and is no symlink.
		target := base
		if target == "" {
			target = "."
		}
		if err := unix.Fchmodat(pfd, target, uint32(hdr.Mode)&0o7777, 0); err != nil {
			return &os.PathError{Op: "chmod", Path: name, Err: err}
		}
	}
	if hdr.Typeflag == tar.TypeDir {
		return nil // mode and mtime are set after the directory's entries, by Extract
	}
	return r.setTimes(name, hdr.ModTime)
}

// chmodDir sets a directory's mode through a descriptor of the directory itself, opened without
// following a symlink, so that nothing outside the root can be changed.
func (r *Root) chmodDir(name string, mode uint32) error {
	fd, err := r.openat(name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := unix.Fchmod(fd, mode); err != nil {
		return &os.PathError{Op: "chmod", Path: name, Err: err}
	}
	return nil
}

func (r *Root) setTimes(name string, mtime time.Time) error {
	dir, base := splitParent(name)
	pfd, err := r.openat(dir, unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		return err
	}
	defer unix.Close(pfd)
	flags := unix.AT_SYMLINK_NOFOLLOW
	target := base
	if base == "" {
		target = "."
		flags = 0
	}
	ts := unix.NsecToTimespec(mtime.UnixNano())
	if err := unix.UtimesNanoAt(pfd, target, []unix.Timespec{ts, ts}, flags); err != nil {
		return &os.PathError{Op: "set times", Path: name, Err: err}
	}
	return nil
}

// ArchiveOptions say what Archive writes.
type ArchiveOptions struct {
	// Contents names entries relative to the source directory itself (rsync's "src/"); otherwise
	// they start with the source's base name (rsync's "src").
	Contents bool
	// Exclude holds filepath.Match patterns; an entry is left out (with everything below it) when a
	// pattern matches its path relative to the source, or its base name.
	Exclude []string
	// Owner, when set, replaces every entry's uid and gid (uploads from the host become root's).
	Owner *Owner
}

// Archive writes src (a file or a directory tree) as a tar stream to w, without following symlinks.
func (r *Root) Archive(src string, w io.Writer, opts ArchiveOptions) error {
	for _, p := range opts.Exclude {
		if _, err := filepath.Match(p, ""); err != nil {
			return fmt.Errorf("exclude pattern %q: %w", p, err)
		}
	}
	src = Clean(src)
	tw := tar.NewWriter(w)
	a := archiver{r: r, tw: tw, opts: opts, links: map[[2]uint64]string{}}
	prefix := path.Base(src)
	if src == "." {
		prefix = "."
	}
	st, err := r.Lstat(src)
	if err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR && opts.Contents {
		prefix = "."
	}
	if err := a.add(src, prefix, "", &st); err != nil {
		return err
	}
	return tw.Close()
}

type archiver struct {
	r     *Root
	tw    *tar.Writer
	opts  ArchiveOptions
	links map[[2]uint64]string // (dev, inode) of files with several links → first name written
}

func (a *archiver) excluded(rel string) bool {
	for _, p := range a.opts.Exclude {
		if ok, _ := filepath.Match(p, rel); ok {
			return true
		}
		if ok, _ := filepath.Match(p, path.Base(rel)); ok {
			return true
		}
	}
	return false
}

// add writes the entry at root path p, named name in the archive, rel being its path below the source.
func (a *archiver) add(p, name, rel string, st *unix.Stat_t) error {
	if rel != "" && a.excluded(rel) {
		return nil
	}
	hdr := &tar.Header{
		Name:    name,
		Mode:    int64(st.Mode & 0o7777),
		Uid:     int(st.Uid),
		Gid:     int(st.Gid),
		ModTime: time.Unix(st.Mtim.Unix()).Truncate(time.Second),
		Format:  tar.FormatPAX,
	}
	if a.opts.Owner != nil {
		hdr.Uid, hdr.Gid = a.opts.Owner.UID, a.opts.Owner.GID
	}
	var file *os.File
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		hdr.Typeflag = tar.TypeDir
		if name != "." {
			hdr.Name = name + "/"
		} else {
			hdr.Name = "./"
		}
	case unix.S_IFREG:
		key := [2]uint64{st.Dev, st.Ino}
		if first, ok := a.links[key]; ok && st.Nlink > 1 {
			hdr.Typeflag, hdr.Linkname = tar.TypeLink, first
			break
		}
		if st.Nlink > 1 {
			a.links[key] = name
		}
		f, err := a.r.openat(p, unix.O_RDONLY|unix.O_NOFOLLOW, 0)
		if err != nil {
			return err
		}
		file = os.NewFile(uintptr(f), p)
		defer file.Close()
		hdr.Typeflag, hdr.Size = tar.TypeReg, st.Size
	case unix.S_IFLNK:
		target, err := a.r.readlink(p)
		if err != nil {
			return err
		}
		hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, target
	case unix.S_IFCHR, unix.S_IFBLK, unix.S_IFIFO:
		hdr.Typeflag = map[uint32]byte{unix.S_IFCHR: tar.TypeChar, unix.S_IFBLK: tar.TypeBlock, unix.S_IFIFO: tar.TypeFifo}[st.Mode&unix.S_IFMT]
		hdr.Devmajor, hdr.Devminor = int64(unix.Major(st.Rdev)), int64(unix.Minor(st.Rdev))
	default:
		return nil // sockets have no place in an archive
	}
	if err := a.tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("archive %s: %w", p, err)
	}
	if file != nil {
		// Copy exactly the size written in the header, even if the file grows meanwhile.
		if _, err := io.CopyN(a.tw, file, st.Size); err != nil {
			return fmt.Errorf("archive %s: %w", p, err)
		}
	}
	if hdr.Typeflag != tar.TypeDir {
		return nil
	}
	names, err := a.r.readDir(p)
	if err != nil {
		return err
	}
	for _, child := range names {
		cp := path.Join(p, child)
		cst, err := a.r.Lstat(cp)
		if errors.Is(err, unix.ENOENT) {
			continue // removed while we walked
		}
		if err != nil {
			return err
		}
		if err := a.add(cp, path.Join(name, child), path.Join(rel, child), &cst); err != nil {
			return err
		}
	}
	return nil
}

func (r *Root) readlink(p string) (string, error) {
	dir, base := splitParent(p)
	pfd, err := r.openat(dir, unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		return "", err
	}
	defer unix.Close(pfd)
	buf := make([]byte, unix.PathMax)
	n, err := unix.Readlinkat(pfd, base, buf)
	if err != nil {
		return "", &os.PathError{Op: "readlink", Path: p, Err: err}
	}
	return string(buf[:n]), nil
}

// readDir lists directory p (not following a final symlink), sorted for reproducible archives.
func (r *Root) readDir(p string) ([]string, error) {
	fd, err := r.openat(p, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), p)
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("read directory %s: %w", p, err)
	}
	sort.Strings(names)
	return names, nil
}
