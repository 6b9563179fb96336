// Package fsroot does file operations inside a directory as if it were the root after chroot(2):
// paths resolve with openat2(RESOLVE_IN_ROOT), so neither ".." nor a symlink (relative or absolute)
// can reach outside it. Both the guest agent (for transfers into the target) and the host (for
// downloads into the output directory) use it, so one piece of code guards both directions.
package fsroot

import (
	"errors"
	"fmt"
	"os"
	"path"
	"strings"

	"golang.org/x/sys/unix"
)

// Root is an open directory that paths are resolved in.
type Root struct {
	fd   int
	name string // for messages only
}

// Open opens dir as a Root.
func Open(dir string) (*Root, error) {
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open root", Path: dir, Err: err}
	}
	return &Root{fd: fd, name: dir}, nil
}

// Close releases the root's descriptor.
func (r *Root) Close() error { return unix.Close(r.fd) }

// Clean turns any path into one relative to the root: "/a/../b" and "a/b/" become "b" and "a/b",
// and the root itself is ".". A path cannot climb above the root, as after chroot(2).
func Clean(p string) string {
	c := strings.TrimPrefix(path.Clean("/"+p), "/")
	if c == "" {
		return "."
	}
	return c
}

// how resolves every path inside the root. Magic links (/proc/self/fd/N) could jump out of it.
func how(flags uint64, mode uint32) *unix.OpenHow {
	return &unix.OpenHow{
		Flags:   flags | unix.O_CLOEXEC,
		Mode:    uint64(mode),
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
	}
}

func (r *Root) openat(p string, flags uint64, mode uint32) (int, error) {
	for {
		fd, err := unix.Openat2(r.fd, Clean(p), how(flags, mode))
		if err == unix.EINTR || err == unix.EAGAIN {
			continue // openat2 asks to retry when a rename raced with RESOLVE_IN_ROOT
		}
		if err != nil {
			return -1, &os.PathError{Op: "open", Path: p, Err: err}
		}
		return fd, nil
	}
}

// OpenFile opens p for reading; symlinks are followed inside the root.
func (r *Root) OpenFile(p string) (*os.File, error) {
	fd, err := r.openat(p, unix.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), p), nil
}

// Create creates or truncates p with mode perm (exactly: the umask does not apply), creating
// missing parent directories with mode 0755. With chown set the file is owned by uid and gid.
func (r *Root) Create(p string, perm os.FileMode, owner *Owner) (*os.File, error) {
	if err := r.MkdirAll(path.Dir(Clean(p)), 0o755, owner); err != nil {
		return nil, err
	}
	fd, err := r.openat(p, unix.O_WRONLY|unix.O_CREAT|unix.O_TRUNC, uint32(perm.Perm()))
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), p)
	if err := owner.fchown(fd); err != nil {
		f.Close()
		return nil, &os.PathError{Op: "chown", Path: p, Err: err}
	}
	if err := unix.Fchmod(fd, UnixMode(perm)); err != nil {
		f.Close()
		return nil, &os.PathError{Op: "chmod", Path: p, Err: err}
	}
	return f, nil
}

// MkdirAll creates directory p and its missing parents with mode perm.
func (r *Root) MkdirAll(p string, perm os.FileMode, owner *Owner) error {
	p = Clean(p)
	if p == "." {
		return nil
	}
	fd, err := r.openat(p, unix.O_PATH|unix.O_DIRECTORY, 0)
	if err == nil {
		return unix.Close(fd)
	}
	if !errors.Is(err, unix.ENOENT) {
		return err
	}
	parent, base := path.Split(p)
	if err := r.MkdirAll(parent, perm, owner); err != nil {
		return err
	}
	pfd, err := r.openat(parent, unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		return err
	}
	defer unix.Close(pfd)
	if err := unix.Mkdirat(pfd, base, uint32(perm.Perm())); err != nil && err != unix.EEXIST {
		return &os.PathError{Op: "mkdir", Path: p, Err: err}
	}
	if owner != nil {
		if err := unix.Fchownat(pfd, base, owner.UID, owner.GID, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return &os.PathError{Op: "chown", Path: p, Err: err}
		}
	}
	return nil
}

// Lstat describes p itself, not what a final symlink points to.
func (r *Root) Lstat(p string) (unix.Stat_t, error) {
	var st unix.Stat_t
	dir, base := splitParent(p)
	pfd, err := r.openat(dir, unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		return st, err
	}
	defer unix.Close(pfd)
	if err := unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW|unix.AT_EMPTY_PATH); err != nil {
		return st, &os.PathError{Op: "lstat", Path: p, Err: err}
	}
	return st, nil
}

// splitParent splits a cleaned path into its parent and base; the root's base is "" (use AT_EMPTY_PATH).
func splitParent(p string) (string, string) {
	p = Clean(p)
	if p == "." {
		return ".", ""
	}
	dir, base := path.Split(p)
	return Clean(dir), base
}

// Owner is the user and group files get; nil leaves the ownership the creating process gives.
type Owner struct{ UID, GID int }

func (o *Owner) fchown(fd int) error {
	if o == nil {
		return nil
	}
	return unix.Fchown(fd, o.UID, o.GID)
}

// UnixMode converts Go's permission bits, with setuid, setgid and sticky, to the kernel's.
func UnixMode(m os.FileMode) uint32 {
	u := uint32(m.Perm())
	if m&os.ModeSetuid != 0 {
		u |= unix.S_ISUID
	}
	if m&os.ModeSetgid != 0 {
		u |= unix.S_ISGID
	}
	if m&os.ModeSticky != 0 {
		u |= unix.S_ISVTX
	}
	return u
}

// FileMode converts the kernel's permission bits, with setuid, setgid and sticky, to Go's.
func FileMode(m uint32) os.FileMode {
	fm := os.FileMode(m & 0o777)
	if m&unix.S_ISUID != 0 {
		fm |= os.ModeSetuid
	}
	if m&unix.S_ISGID != 0 {
		fm |= os.ModeSetgid
	}
	if m&unix.S_ISVTX != 0 {
		fm |= os.ModeSticky
	}
	return fm
}

// ErrEscapes is returned for an archive entry whose name leaves its destination.
var ErrEscapes = errors.New("path escapes the destination")

// entryPath checks a tar entry's name and returns it cleaned and relative. Names with ".." that climb
// out, and absolute names, are refused rather than clamped: an archive that tries is not trusted.
func entryPath(name string) (string, error) {
	if strings.HasPrefix(name, "/") {
		return "", fmt.Errorf("%q: absolute name: %w", name, ErrEscapes)
	}
	c := path.Clean(name)
	if c == ".." || strings.HasPrefix(c, "../") {
		return "", fmt.Errorf("%q: %w", name, ErrEscapes)
	}
	return c, nil
}
