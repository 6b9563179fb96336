package uml

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/packer-uml/packer-plugin-uml/modules"
	"github.com/packer-uml/packer-plugin-uml/uml/agent"
)

// The host base: with the standard modules in their standard order (mkfs, mount, debian), the
// builder makes the image's filesystem on the host with debootstrap's first stage already in it,
// and the guest runs only the second stage.
//
// Why: in the guest, debootstrap's first stage (extracting every package of the base system, two
// processes and a pipe per package, then thousands of small files) took 42 s of a 3.5-minute
// minbase build with a UML 7.2 kernel, and more with Debian 12's UML 6.1, where each process costs
// far more. None of it needs root but the ownership of what it writes. On the host, as any user,
// `fakeroot debootstrap --foreign` extracts the same packages in about 10 s and fakeroot records the
// owners, modes and device nodes that root would have made; `mke2fs -d`, run in the same fakeroot
// environment, copies that tree into the new filesystem with those owners (mke2fs reads them through
// stat, which fakeroot answers). The guest then runs `debootstrap --second-stage`, which installs
// every package with dpkg exactly as a one-stage debootstrap does: this is debootstrap's own way to
// build for another machine (--foreign), so the result is the same packages and files.
//
// The mkfs module's run is replaced by this (same mke2fs, same options, plus -d), and the debian
// module's gets DEBOOTSTRAP_SECOND_STAGE. Anything that rules it out (another filesystem, a custom
// mkfs or debian module, debootstrap_args that choose stages themselves, fakeroot missing) or makes
// it fail leaves the build on the ordinary path: mkfs in the guest, then the debian module's host
// download (debian_prefetch.go).

// hostBase is the plan for one build, made when the modules run mkfs, mount and debian in a row.
type hostBase struct {
	// image is the raw image file on the host (the guest's imageDevice).
	image string
	// tried: only the first mkfs is considered.
	tried bool
	// secondStage: the image holds debootstrap's first stage; the next debian run does the rest.
	secondStage bool
}

// newHostBase returns the plan when names run mkfs, mount and debian in a row, else nil.
func newHostBase(names []string, image string) *hostBase {
	for i := range names {
		if slices.Equal(names[i:min(i+3, len(names))], []string{"mkfs", "mount", "debian"}) {
			return &hostBase{image: image}
		}
	}
	return nil
}

// hostBaseFSTypes are the filesystems mke2fs -d makes.
var hostBaseFSTypes = []string{"ext2", "ext3", "ext4"}

// stageArgs are debootstrap arguments that pick stages or tarballs themselves: with any of them in
// debootstrap_args the user runs debootstrap their own way, and the host base stays out of it.
var stageArgs = []string{"--foreign", "--second-stage", "--make-tarball", "--unpack-tarball", "--variant=fakechroot"}

// hostBaseTools are the host programs the host base runs.
type hostBaseTools struct{ fakeroot, mke2fs string }

// hostBaseBlocker says why the host base cannot replace this mkfs run ("" when it can); mkfsEnv
// is the mkfs module's environment.
func (r *moduleRunner) hostBaseBlocker(mkfsEnv []string) (string, *hostBaseTools, modules.Module, []string) {
	var none modules.Module
	fstype := envValue(mkfsEnv, "fstype")
	if !slices.Contains(hostBaseFSTypes, fstype) {
		return fmt.Sprintf("fstype %s (mke2fs -d makes ext2, ext3 and ext4 only)", fstype), nil, none, nil
	}
	deb, err := modules.Find("debian", r.dirs)
	if err != nil || !deb.BuiltIn() {
		return "", nil, none, nil // a custom debian module: nothing to say, it does what it does
	}
	debEnv := r.env.For("debian", nil, r.fixed)
	if !r.prefetchEnabled(deb, debEnv) {
		return "", nil, none, nil // host_download = false, or no proxy on the host
	}
	for _, arg := range strings.Fields(envValue(debEnv, "debootstrap_args")) {
		for _, s := range stageArgs {
			if strings.HasPrefix(arg, s) {
				return "debootstrap_args has " + arg, nil, none, nil
			}
		}
	}
	fakeroot, err := exec.LookPath("fakeroot")
	if err != nil {
		return "fakeroot is not installed on the host (apt-get install fakeroot)", nil, none, nil
	}
	mke2fs, err := lookSbin("mke2fs")
	if err != nil {
		return "mke2fs is not on the host (apt-get install e2fsprogs)", nil, none, nil
	}
	return "", &hostBaseTools{fakeroot: fakeroot, mke2fs: mke2fs}, deb, debEnv
}

// runHostBase tries the host base in place of the mkfs module's guest run; true means the image
// now holds the filesystem with debootstrap's first stage, and the guest's mkfs is not needed.
func (r *moduleRunner) runHostBase(ctx context.Context, mkfsEnv []string, out io.Writer) bool {
	r.hostBase.tried = true
	blocker, tools, deb, debEnv := r.hostBaseBlocker(mkfsEnv)
	if tools == nil {
		if blocker != "" {
			r.ui.Say("mkfs: the filesystem is made in the guest, without the base system from the host: " + blocker)
		}
		return false
	}
	fstype := envValue(mkfsEnv, "fstype")
	r.ui.Say(fmt.Sprintf("mkfs: making the %s filesystem on the host with debootstrap's first stage in it (fakeroot debootstrap --foreign, mke2fs -d); the guest runs the second stage", fstype))
	lines := &uiLines{ui: r.ui, prefix: "debian (host): "}
	w := io.Writer(lines)
	if out != nil {
		w = out
	}
	started := time.Now()
	err := r.makeHostBase(ctx, tools, deb, debEnv, fstype, w)
	lines.flush()
	if err == nil {
		// The guest's kernel may hold blocks of the device read before the host wrote it (the
		// partition scan at boot): drop them, so that the mount module reads what is there now.
		err = r.flushGuestImageCache(ctx, mkfsEnv)
	}
	if err != nil {
		if ctx.Err() != nil {
			return false // the build is stopping; the mkfs run that follows fails at once
		}
		r.ui.Error(fmt.Sprintf("mkfs: the base system on the host failed (%v); making the filesystem in the guest instead", err))
		if terr := r.blankImage(); terr != nil {
			r.ui.Error(fmt.Sprintf("mkfs: could not blank the image after that: %v", terr))
		}
		return false
	}
	r.hostBase.secondStage = true
	r.ui.Say(fmt.Sprintf("mkfs: %s filesystem with debootstrap's first stage made on the host in %s", fstype, time.Since(started).Round(time.Second)))
	return true
}

// makeHostBase runs the debian module's script on the host under fakeroot with DEBOOTSTRAP_FOREIGN
// (debootstrap --foreign with the module's own arguments, through the build's proxy and package
// cache), then mke2fs -d of its tree into the image in the same fakeroot environment.
func (r *moduleRunner) makeHostBase(ctx context.Context, tools *hostBaseTools, deb modules.Module, debEnv []string, fstype string, out io.Writer) error {
	dir, err := os.MkdirTemp(r.hostWorkDir, "debian-base-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	script := filepath.Join(dir, "debian")
	if err := os.WriteFile(script, deb.Script, 0o755); err != nil {
		return err
	}
	target := filepath.Join(dir, "target")
	// fakeroot's record of owners, modes and device nodes, kept from debootstrap for mke2fs.
	faked := filepath.Join(dir, "fakeroot.state")
	// fakeroot's daemon outlives a fakeroot killed by a cancelled build; it is found by its
	// save file, which is ours alone (both runs below save to it).
	defer killFaked(faked)
	env := r.hostScriptEnv(debEnv, dir, target, "DEBOOTSTRAP_FOREIGN=1")
	if err := runHost(ctx, env, dir, out, tools.fakeroot, "-s", faked, "--", "/bin/sh", script); err != nil {
		return fmt.Errorf("fakeroot debootstrap --foreign: %w", err)
	}
	// The mkfs module's options (modules/scripts/mkfs), and -d.
	args := []string{"-i", faked, "-s", faked, "--", tools.mke2fs, "-q", "-F", "-t", fstype}
	if fstype == "ext4" {
		args = append(args, "-E", "lazy_itable_init=1,lazy_journal_init=1")
	}
	args = append(args, "-d", target, r.hostBase.image)
	if err := runHost(ctx, env, dir, out, tools.fakeroot, args...); err != nil {
		return fmt.Errorf("mke2fs -d: %w", err)
	}
	return nil
}

// flushGuestImageCache drops the guest kernel's cached blocks of the image device.
func (r *moduleRunner) flushGuestImageCache(ctx context.Context, env []string) error {
	var stderr strings.Builder
	req := agent.ExecRequest{Argv: []string{"blockdev", "--flushbufs", imageDevice}, Env: env, Dir: "/"}
	code, err := r.client.Exec(ctx, req, nil, io.Discard, &stderr)
	if err != nil {
		return fmt.Errorf("blockdev --flushbufs in the guest: %w", err)
	}
	if code != 0 {
		return fmt.Errorf("blockdev --flushbufs in the guest: exit status %d: %s", code, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// blankImage empties the image after a failed attempt, keeping its size: the guest's mkfs starts
// from the same sparse file as without the attempt.
func (r *moduleRunner) blankImage() error {
	fi, err := os.Stat(r.hostBase.image)
	if err != nil {
		return err
	}
	if err := os.Truncate(r.hostBase.image, 0); err != nil {
		return err
	}
	return os.Truncate(r.hostBase.image, fi.Size())
}

// runHost runs a command on the host with its output to out. It runs in a process group of its
// own, which a cancelled build kills whole: the command is a shell script whose children
// (debootstrap, wget, ...) would otherwise go on after it.
func runHost(ctx context.Context, env []string, dir string, out io.Writer, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env, cmd.Dir = env, dir
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	return cmd.Run()
}

// killFaked ends the fakeroot daemon (faked-sysv or faked-tcp) that saves to saveFile, if one
// is still running: fakeroot stops it when it ends normally, not when it is killed.
func killFaked(saveFile string) {
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		argv := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		if !strings.HasPrefix(filepath.Base(argv[0]), "faked") {
			continue
		}
		for i := 1; i < len(argv)-1; i++ {
			if argv[i] == "--save-file" && argv[i+1] == saveFile {
				if pid, err := strconv.Atoi(filepath.Base(filepath.Dir(p))); err == nil {
					syscall.Kill(pid, syscall.SIGKILL)
				}
			}
		}
	}
}

// envValue is the value of key in a KEY=value list ("" when unset).
func envValue(env []string, key string) string {
	v := ""
	for _, kv := range env {
		if k, val, ok := strings.Cut(kv, "="); ok && k == key {
			v = val
		}
	}
	return v
}
