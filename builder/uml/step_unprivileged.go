package uml

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/hashicorp/packer-plugin-sdk/multistep"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"
)

// nobodyID is the unprivileged user and group UML runs as when no "nobody" account says otherwise.
const nobodyID = 65534

// stepUnprivileged runs UML as an unprivileged user when the plugin runs as root. Every host write
// of a UML process goes through hostfs with that process's rights: run by root, a guest that mounts
// a host directory read-write (its root may) could change the host's /etc. As "nobody" it can write
// only what nobody may: the image, the build's work directory (both handed over here and given back
// after) and world-writable places. The plugin, the watchdog and the proxy keep root.
//
// Uses: ui, stateKernel, stateWorkDir, stateImagePath. Produces: stateRunAs, stateInitBinary and,
// when the kernel is out of that user's reach, stateKernelBinary.
type stepUnprivileged struct {
	ExtraDisks []string

	restore []func()
}

func (s *stepUnprivileged) Run(_ context.Context, state multistep.StateBag) multistep.StepAction {
	if os.Geteuid() != 0 {
		return multistep.ActionContinue
	}
	ui := state.Get(stateUI).(packersdk.Ui)
	uid, gid, name := nobody()
	workDir := state.Get(stateWorkDir).(string)
	// UML's memory file, its uml_dir and the staging directory live here.
	if err := os.MkdirAll(stagingDir(state), 0o700); err != nil {
		return haltf(state, "create the staging directory: %w", err)
	}
	for _, d := range []string{workDir, stagingDir(state)} {
		if err := os.Chown(d, uid, gid); err != nil {
			return haltf(state, "hand %s to %s: %w", d, name, err)
		}
	}
	// The guest runs our binary as init from the host: root's plugin directory is out of
	// nobody's reach, so a copy in the work directory is what it runs.
	initBin := filepath.Join(workDir, "packer-plugin-uml-init")
	self, err := os.Executable()
	if err == nil {
		err = copyExecutable(self, initBin)
	}
	if err != nil {
		return haltf(state, "copy the plugin for the guest: %w", err)
	}
	// Likewise the kernel, when it is root's own (~/.local/share/packer-plugin-uml/kernel/linux,
	// which scripts/build-uml-kernel installs): nobody cannot run it there.
	if k := kernelOf(state); !reachableBy(k.Path, uid, gid) {
		kernelBin := filepath.Join(workDir, "linux")
		if err := copyExecutable(k.Path, kernelBin); err != nil {
			return haltf(state, "copy the kernel for %s: %w", name, err)
		}
		state.Put(stateKernelBinary, kernelBin)
	}
	for _, f := range append([]string{state.Get(stateImagePath).(string)}, s.ExtraDisks...) {
		if err := s.handOver(f, uid, gid); err != nil {
			return haltf(state, "hand %s to %s: %w", f, name, err)
		}
	}
	state.Put(stateRunAs, &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}})
	state.Put(stateInitBinary, initBin)
	ui.Say(fmt.Sprintf("Packer runs as root: UML runs as %s (%d:%d), so that the guest cannot write the host as root", name, uid, gid))
	return multistep.ActionContinue
}

// handOver gives a file to uid:gid for the build and remembers how to give it back.
func (s *stepUnprivileged) handOver(path string, uid, gid int) error {
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	sys := st.Sys().(*syscall.Stat_t)
	if err := os.Chown(path, uid, gid); err != nil {
		return err
	}
	s.restore = append(s.restore, func() { os.Chown(path, int(sys.Uid), int(sys.Gid)) })
	return nil
}

// Cleanup gives the image and the extra disks back to their owners (after UML stopped: the steps
// after this one clean up first).
func (s *stepUnprivileged) Cleanup(multistep.StateBag) {
	for _, f := range s.restore {
		f()
	}
}

// nobody returns the unprivileged account UML runs as.
func nobody() (uid, gid int, name string) {
	uid, gid, name = nobodyID, nobodyID, "nobody"
	if u, err := user.Lookup("nobody"); err == nil {
		if n, err := strconv.Atoi(u.Uid); err == nil {
			uid = n
		}
		if n, err := strconv.Atoi(u.Gid); err == nil {
			gid = n
		}
	}
	return uid, gid, name
}

// copyExecutable copies the file src to dst, mode 0755.
func copyExecutable(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Chmod(dst, 0o755)
}

// reachableBy reports whether uid:gid (with no supplementary groups) may run the program at path:
// search permission on every directory above it, read and execute permission on the file. It reads
// the mode bits only (no ACLs); false when in doubt.
func reachableBy(path string, uid, gid int) bool {
	p, err := filepath.EvalSymlinks(path)
	if err != nil {
		return false
	}
	p, err = filepath.Abs(p)
	if err != nil || !permits(p, uid, gid, 0o5) {
		return false
	}
	for dir := filepath.Dir(p); ; dir = filepath.Dir(dir) {
		if !permits(dir, uid, gid, 0o1) {
			return false
		}
		if dir == "/" {
			return true
		}
	}
}

// permits reports whether the mode bits of path grant uid:gid the access want (r=4, w=2, x=1).
func permits(path string, uid, gid int, want os.FileMode) bool {
	st, err := os.Stat(path)
	if err != nil {
		return false
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return false
	}
	perm := st.Mode().Perm()
	switch {
	case int(sys.Uid) == uid:
		perm >>= 6
	case int(sys.Gid) == gid:
		perm >>= 3
	}
	return perm&want == want
}
