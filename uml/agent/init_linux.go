package agent

import (
	"bufio"
	"fmt"
	"io/fs"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// defaultPath is PATH for the agent and every command it runs.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// mount is one entry of the guest's mount table. The table is data, in order: a new mount is one line.
type mount struct {
	source, target, fstype string
	flags                  uintptr
	data                   string
	// optional entries may fail (the boot goes on, with a log line); required ones stop the boot.
	optional bool
	// why explains an entry that is not obvious.
	why string
}

func (m mount) String() string {
	return fmt.Sprintf("%s on %s type %s (%s)", m.source, m.target, m.fstype, m.data)
}

func (m mount) create() error {
	if err := os.MkdirAll(m.target, 0o755); err != nil && !os.IsExist(err) {
		return err
	}
	if err := unix.Mount(m.source, m.target, m.fstype, m.flags, m.data); err != nil {
		return fmt.Errorf("mount %s: %w", m, err)
	}
	return nil
}

// baseMounts come first: everything below needs /proc, a writable /tmp and the host at HostDir.
func baseMounts() []mount {
	return []mount{
		{source: "proc", target: "/proc", fstype: "proc", flags: unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC},
		{source: "sysfs", target: "/sys", fstype: "sysfs", flags: unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC},
		{source: "devpts", target: "/dev/pts", fstype: "devpts", flags: unix.MS_NOSUID | unix.MS_NOEXEC, data: "newinstance,ptmxmode=0666,mode=0620",
			optional: true, why: "ttys for commands that want one"},
		{source: "shm", target: "/dev/shm", fstype: "tmpfs", flags: unix.MS_NOSUID | unix.MS_NODEV, data: "mode=1777", optional: true},
		{source: "tmpfs", target: "/tmp", fstype: "tmpfs", flags: unix.MS_NOSUID | unix.MS_NODEV, data: "mode=1777",
			why: "the guest's scratch space; the target and the host view are mounted below it"},
		{source: "tmpfs", target: "/run", fstype: "tmpfs", flags: unix.MS_NOSUID | unix.MS_NODEV, data: "mode=0755"},
		{source: "none", target: HostDir, fstype: "hostfs", flags: unix.MS_RDONLY, data: "/",
			why: "$HOST: the whole host, read-only, also the source for the copy of /etc"},
	}
}

// RunInit is the guest's PID 1: it builds the mount table, then serves the host as the agent, in
// this same process, while a reaper collects the orphans the kernel hands to PID 1; when the agent
// ends it powers the guest off. It never returns: if PID 1 exits, the kernel panics.
//
// One process, not an init that starts the agent: in UML each Go start-up of this binary costs
// about 0.7 s (memory faults and system calls are expensive there), half of the boot.
func RunInit() {
	logger := log.New(os.Stderr, "uml-init: ", log.Lmicroseconds)
	start := time.Now()
	// The kernel delivers to PID 1 only signals it has handlers for, and Go's handlers would end
	// this process (and panic the kernel) on these: ignore them, as an init does. The console and
	// provisioners (kill -TERM 1) may send them.
	signal.Ignore(unix.SIGINT, unix.SIGTERM, unix.SIGHUP, unix.SIGQUIT, unix.SIGUSR1, unix.SIGUSR2, unix.SIGPIPE)
	cfg, err := DecodeGuestConfig(os.Getenv(GuestConfigParam))
	if err != nil {
		logger.Printf("%v", err)
		powerOff(logger)
	}
	if err := setupMounts(cfg, logger); err != nil {
		logger.Printf("boot failed: %v", err)
		powerOff(logger)
	}
	os.Clearenv()
	for _, kv := range guestEnv(cfg) {
		k, v, _ := strings.Cut(kv, "=")
		os.Setenv(k, v)
	}
	os.Chdir("/")
	logger.Printf("mounts ready in %s", time.Since(start).Round(time.Millisecond))
	r := newReaper()
	stop := make(chan struct{})
	go r.run(stop)
	if err := runAgent(r, cfg); err != nil {
		logger.Printf("agent: %v", err)
	} else {
		logger.Printf("agent finished")
	}
	close(stop)
	powerOff(logger)
}

// guestEnv is the environment of the agent and so of every command: rootstrap's $TARGET, $HOST and
// $WORKDIR, a PATH, and the agent's proxy when the guest has one (the only way out of a guest on
// the agent transport; commands may unset it).
func guestEnv(cfg GuestConfig) []string {
	env := []string{
		"PATH=" + defaultPath,
		"HOME=/root",
		"LANG=C.UTF-8",
		"TERM=dumb",
		"TARGET=" + TargetDir,
		"HOST=" + HostDir,
	}
	if cfg.WorkDir != "" {
		env = append(env, "WORKDIR="+cfg.WorkDir)
	}
	if cfg.ProxyAddr != "" {
		proxy := "http://" + cfg.ProxyAddr
		env = append(env, "http_proxy="+proxy, "https_proxy="+proxy, "HTTP_PROXY="+proxy, "HTTPS_PROXY="+proxy)
	}
	return env
}

func setupMounts(cfg GuestConfig, logger *log.Logger) error {
	unix.Umask(0o022)
	// The kernel mounts devtmpfs on /dev itself (CONFIG_DEVTMPFS_MOUNT); mount it if it did not.
	if _, err := os.Stat("/dev/null"); err != nil {
		if err := (mount{source: "devtmpfs", target: "/dev", fstype: "devtmpfs", flags: unix.MS_NOSUID, data: "mode=0755"}).create(); err != nil {
			return err
		}
	}
	for _, m := range baseMounts() {
		if err := m.create(); err != nil {
			if !m.optional {
				return err
			}
			logger.Printf("optional: %v", err)
		}
	}
	// /etc: the guest may change it (resolv.conf, passwd for debootstrap's chroot) and the host must
	// never see the change. An overlay of the host's /etc with a tmpfs upper layer costs nothing at
	// boot; a copy of it into a tmpfs (0.7 s for 1,200 files here) is the fallback for kernels
	// without the overlay module.
	etcStart := time.Now()
	if err := overlayEtc(cfg); err != nil {
		logger.Printf("overlay on /etc unavailable (%v); copying the host's /etc instead", err)
		if err := (mount{source: "tmpfs", target: "/etc", fstype: "tmpfs", flags: unix.MS_NOSUID | unix.MS_NODEV, data: "mode=0755"}).create(); err != nil {
			return err
		}
		skipped, err := copyTree(filepath.Join(HostDir, "etc"), "/etc")
		if err != nil {
			return fmt.Errorf("copy host /etc: %w", err)
		}
		if skipped > 0 {
			logger.Printf("copy of /etc: %d entries the building user cannot read were left out", skipped)
		}
	}
	if cfg.Debug {
		logger.Printf("/etc ready in %s", time.Since(etcStart).Round(time.Millisecond))
	}
	// /lib/modules: the UML kernel's modules, read-only, so that modprobe finds them. Needs the
	// directory to exist on the host (a read-only root cannot grow one).
	if cfg.ModulesDir != "" {
		m := mount{source: filepath.Join(HostDir, cfg.ModulesDir), target: "/lib/modules", flags: unix.MS_BIND | unix.MS_RDONLY}
		if _, err := os.Stat(m.target); err != nil {
			logger.Printf("no /lib/modules on the host to mount the kernel's modules on; modules stay at %s", m.source)
		} else if err := unix.Mount(m.source, m.target, "", unix.MS_BIND, ""); err != nil {
			logger.Printf("optional: bind %s: %v", m.source, err)
		} else {
			unix.Mount("", m.target, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY, "")
		}
	}
	// The staging directory for transfers: the build's own, read-write.
	if cfg.StagingDir != "" {
		if err := (mount{source: "none", target: GuestStagingDir, fstype: "hostfs", flags: unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, data: cfg.StagingDir}).create(); err != nil {
			return err
		}
	}
	// $WORKDIR: the directory Packer runs in, read-write at its own path.
	if cfg.WorkDir != "" {
		// Not fatal: a UML run as an unprivileged user for a root Packer may not reach root's
		// directory; what needs $WORKDIR then fails and says so.
		if err := (mount{source: "none", target: cfg.WorkDir, fstype: "hostfs", data: cfg.WorkDir}).create(); err != nil {
			logger.Printf("cannot mount $WORKDIR %s: %v", cfg.WorkDir, err)
		}
	}
	return os.MkdirAll(TargetDir, 0o755)
}

// overlayEtc mounts an overlay on /etc: the host's /etc below, a tmpfs above. The overlay module is
// loaded from the kernel's own module directory when it is not built in.
func overlayEtc(cfg GuestConfig) error {
	if !filesystemKnown("overlay") {
		if cfg.ModulesDir == "" {
			return fmt.Errorf("overlay is not built in and the kernel has no module directory")
		}
		ko := filepath.Join(HostDir, cfg.ModulesDir, "kernel/fs/overlayfs/overlay.ko")
		f, err := os.Open(ko)
		if err != nil {
			return err
		}
		err = unix.FinitModule(int(f.Fd()), "", 0)
		f.Close()
		if err != nil && err != unix.EEXIST {
			return fmt.Errorf("load %s: %w", ko, err)
		}
	}
	for _, d := range []string{"/run/etc/upper", "/run/etc/work"} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	lower := filepath.Join(HostDir, "etc")
	return unix.Mount("overlay", "/etc", "overlay", unix.MS_NOSUID|unix.MS_NODEV,
		"lowerdir="+lower+",upperdir=/run/etc/upper,workdir=/run/etc/work")
}

// filesystemKnown reports whether the kernel lists fstype in /proc/filesystems.
func filesystemKnown(fstype string) bool {
	b, err := os.ReadFile("/proc/filesystems")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.TrimSpace(strings.TrimPrefix(line, "nodev")) == fstype {
			return true
		}
	}
	return false
}

// copyTree copies the tree at src into dst, keeping modes, owners and symlinks. Entries the
// building user cannot read on the host are counted and left out.
//
// Every guest system call is costly in UML (host context switches under ptrace), so this copy makes as
// few as it can: file types come from getdents, metadata from fstat on the already open file, the
// data in one read, and the copy runs with umask 0 so that creating a file sets its mode.
func copyTree(src, dst string) (skipped int, err error) {
	old := unix.Umask(0)
	defer unix.Umask(old)
	buf := make([]byte, 1<<20)
	return copyDir(src, dst, buf)
}

func copyDir(src, dst string, buf []byte) (skipped int, err error) {
	d, err := os.Open(src)
	if err != nil {
		return 1, nil
	}
	entries, err := d.ReadDir(-1)
	d.Close()
	if err != nil {
		return 1, nil
	}
	for _, e := range entries {
		sp, dp := src+"/"+e.Name(), dst+"/"+e.Name()
		switch {
		case e.Type()&fs.ModeSymlink != 0:
			link, err := os.Readlink(sp)
			if err != nil {
				skipped++
				continue
			}
			if err := os.Symlink(link, dp); err != nil {
				return skipped, err
			}
		case e.IsDir():
			var st unix.Stat_t
			if err := unix.Stat(sp, &st); err != nil {
				skipped++
				continue
			}
			if err := unix.Mkdir(dp, st.Mode&0o7777); err != nil && err != unix.EEXIST {
				return skipped, &os.PathError{Op: "mkdir", Path: dp, Err: err}
			}
			unix.Chown(dp, int(st.Uid), int(st.Gid))
			n, err := copyDir(sp, dp, buf)
			skipped += n
			if err != nil {
				return skipped, err
			}
		case e.Type().IsRegular():
			ok, err := copyFile(sp, dp, buf)
			if err != nil {
				return skipped, err
			}
			if !ok {
				skipped++
			}
		}
	}
	return skipped, nil
}

// copyFile copies one regular file; it reports false when the source cannot be read.
func copyFile(src, dst string, buf []byte) (bool, error) {
	in, err := unix.Open(src, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return false, nil
	}
	defer unix.Close(in)
	var st unix.Stat_t
	if err := unix.Fstat(in, &st); err != nil {
		return false, nil
	}
	out, err := unix.Open(dst, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, st.Mode&0o7777)
	if err != nil {
		return false, &os.PathError{Op: "create", Path: dst, Err: err}
	}
	defer unix.Close(out)
	for {
		n, err := unix.Read(in, buf)
		if err != nil {
			return false, nil
		}
		if n == 0 {
			break
		}
		if _, err := unix.Write(out, buf[:n]); err != nil {
			return false, &os.PathError{Op: "write", Path: dst, Err: err}
		}
		if n < len(buf) && int64(n) >= st.Size {
			break // read it all in one go: skip the read that would return 0
		}
	}
	if st.Uid != 0 || st.Gid != 0 {
		unix.Fchown(out, int(st.Uid), int(st.Gid))
	}
	return true, nil
}

// powerOff ends every process, unmounts everything it can (deepest first), syncs and powers off.
// The host sees UML exit.
func powerOff(logger *log.Logger) {
	unix.Kill(-1, unix.SIGTERM)
	time.Sleep(100 * time.Millisecond)
	unix.Kill(-1, unix.SIGKILL)
	for {
		if _, err := unix.Wait4(-1, nil, unix.WNOHANG, nil); err != nil {
			break
		}
	}
	unix.Sync()
	for _, target := range mountPoints() {
		if target == "/" {
			continue
		}
		if err := unix.Unmount(target, 0); err != nil && err != unix.EINVAL && err != unix.EBUSY {
			logger.Printf("unmount %s: %v", target, err)
		}
	}
	unix.Sync()
	if err := unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF); err != nil {
		logger.Printf("power off: %v", err)
	}
	select {} // unreachable: a returning PID 1 panics the kernel
}

// mountPoints lists the mount points in /proc/self/mounts, last mounted first.
func mountPoints() []string {
	f, err := os.Open("/proc/self/mounts")
	if err != nil {
		return nil
	}
	defer f.Close()
	var points []string
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) >= 2 {
			points = append([]string{unescapeMount(fields[1])}, points...)
		}
	}
	return points
}

// unescapeMount undoes the octal escapes (\040 for a space) of /proc/self/mounts.
func unescapeMount(s string) string {
	r := strings.NewReplacer(`\040`, " ", `\011`, "\t", `\012`, "\n", `\134`, `\`)
	return r.Replace(s)
}
