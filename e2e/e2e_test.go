// Package e2e runs real `packer build`s with the plugin, as the user running the tests (an
// unprivileged one in CI: see scripts/test), and checks the images with e2fsprogs. It needs Packer
// on PATH and Debian's user-mode-linux; with PACKER_ACC unset (the SDK's convention for acceptance
// tests) it is skipped, and scripts/test always sets it.
package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/packer-uml/packer-plugin-uml/internal/umltest"
)

// project is one test's packer working directory with the plugin installed.
type project struct {
	t       *testing.T
	dir     string
	plugins string
	// home, when set, is $HOME for packer and the plugin (for ~/.rootstrap).
	home string
}

func newProject(t *testing.T) *project {
	t.Helper()
	if os.Getenv("PACKER_ACC") == "" {
		t.Skip("end-to-end packer builds run with PACKER_ACC=1 (scripts/test sets it)")
	}
	if _, err := exec.LookPath("packer"); err != nil {
		t.Fatalf("packer is not on PATH: run scripts/install-deps")
	}
	p := &project{t: t, dir: t.TempDir(), plugins: t.TempDir()}
	bin := umltest.Binary(t)
	out, err := p.packer(context.Background(), "plugins", "install", "--path", bin, "github.com/packer-uml/uml")
	if err != nil {
		t.Fatalf("packer plugins install: %v\n%s", err, out)
	}
	return p
}

func (p *project) env() []string {
	env := os.Environ()
	if p.home != "" {
		env = append(env, "HOME="+p.home)
	}
	return append(env,
		"PACKER_PLUGIN_PATH="+p.plugins,
		"CHECKPOINT_DISABLE=1",
		"PACKER_LOG=1",
		"PACKER_LOG_PATH="+filepath.Join(p.dir, "packer.log"),
	)
}

func (p *project) packer(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "packer", args...)
	cmd.Dir = p.dir
	cmd.Env = p.env()
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// write puts a file into the project directory.
func (p *project) write(name, content string) {
	p.t.Helper()
	path := filepath.Join(p.dir, name)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		p.t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		p.t.Fatal(err)
	}
}

// copyExample copies a template from example/.
func (p *project) copyExample(name string) {
	p.t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "example", name))
	if err != nil {
		p.t.Fatal(err)
	}
	p.write(name, string(b))
}

// build runs packer build and fails the test if it fails.
func (p *project) build(template string, extra ...string) string {
	p.t.Helper()
	return p.buildWithin(10*time.Minute, template, extra...)
}

// buildWithin is build with another time limit.
func (p *project) buildWithin(limit time.Duration, template string, extra ...string) string {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	out, err := p.packer(ctx, append(append([]string{"build"}, extra...), template)...)
	if err != nil {
		p.t.Fatalf("packer build %s: %v\n%s\n%s", template, err, out, p.logTail())
	}
	return out
}

func (p *project) logTail() string {
	b, _ := os.ReadFile(filepath.Join(p.dir, "packer.log"))
	lines := strings.Split(string(b), "\n")
	if len(lines) > 60 {
		lines = lines[len(lines)-60:]
	}
	return "packer.log (tail):\n" + strings.Join(lines, "\n")
}

func (p *project) path(name string) string { return filepath.Join(p.dir, name) }

// run runs a host tool and returns its combined output; it fails the test on a non-zero exit.
func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return string(out)
}

// debugfs runs one debugfs request against an image, read-only.
func debugfs(t *testing.T, image, request string) string {
	t.Helper()
	return run(t, "/sbin/debugfs", "-R", request, image)
}

func fileSHA256(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// umlProcessesFor lists processes whose command line mentions marker (the image path is on UML's).
func umlProcessesFor(marker string) []string {
	var found []string
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		if e.Name()[0] < '0' || e.Name()[0] > '9' {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		cmdline := strings.ReplaceAll(string(b), "\x00", " ")
		if strings.Contains(cmdline, "ubd1="+marker) {
			found = append(found, e.Name()+": "+cmdline)
		}
	}
	return found
}

// TestMinimalExample builds example/minimal.pkr.hcl: a file upload and shell provisioners change the
// target, e2fsck accepts the image, debugfs shows root-owned files with the modes and owners set in
// the guest, and the checksum post-processor's file matches the image.
func TestMinimalExample(t *testing.T) {
	p := newProject(t)
	p.copyExample("minimal.pkr.hcl")
	out := p.build("minimal.pkr.hcl")
	image := p.path("out/minimal.img")
	if !strings.Contains(out, "Root filesystem image: "+image) {
		t.Errorf("artifact line missing from the output:\n%s", out)
	}
	run(t, "/sbin/e2fsck", "-fn", image)

	st := debugfs(t, image, "stat /root/hello")
	for _, want := range []string{"Mode:  0600", "User:     0   Group:     0", "Size: 7"} {
		if !strings.Contains(st, want) {
			t.Errorf("/root/hello: want %q in\n%s", want, st)
		}
	}
	st = debugfs(t, image, "stat /srv/data")
	if !strings.Contains(st, "User:  1234   Group:  5678") || !strings.Contains(st, "Type: directory") {
		t.Errorf("/srv/data: owner 1234:5678 not kept:\n%s", st)
	}
	if motd := debugfs(t, image, "cat /etc/motd"); !strings.Contains(motd, "Built by packer-plugin-uml without root.") {
		t.Errorf("/etc/motd: %q", motd)
	}
	// The busybox upload kept its mode and every byte.
	st = debugfs(t, image, "stat /bin/busybox")
	if !strings.Contains(st, "Mode:  0755") {
		t.Errorf("/bin/busybox mode not kept:\n%s", st)
	}
	dumped := filepath.Join(t.TempDir(), "busybox")
	debugfs(t, image, "dump /bin/busybox "+dumped)
	if fileSHA256(t, dumped) != fileSHA256(t, "/bin/busybox") {
		t.Errorf("/bin/busybox in the image differs from the host's")
	}

	sum, err := os.ReadFile(p.path("out/minimal.sha256"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(sum), fileSHA256(t, image)) {
		t.Errorf("checksum file %q does not match the image", sum)
	}
	// Sparse: far fewer blocks in use than the 512 MiB the file spans.
	var fst syscall.Stat_t
	if err := syscall.Stat(image, &fst); err != nil {
		t.Fatal(err)
	}
	if fst.Size != 512<<20 {
		t.Errorf("image size %d, want 512 MiB", fst.Size)
	}
	if used := fst.Blocks * 512; used > 64<<20 {
		t.Errorf("image uses %d bytes on disk: not sparse", used)
	}
	if procs := umlProcessesFor(image); len(procs) > 0 {
		t.Errorf("UML still running after the build: %v", procs)
	}
	// The guest's console is kept beside the image.
	if b, err := os.ReadFile(p.path("out/console.log")); err != nil || !strings.Contains(string(b), "Linux version") {
		t.Errorf("console log missing or empty (%v)", err)
	}
	// A second build refuses the existing output directory without -force, and leaves it alone.
	out2, err := p.packer(context.Background(), "build", "minimal.pkr.hcl")
	if err == nil || !strings.Contains(out2, "output_directory") || !strings.Contains(out2, "already exists") || !strings.Contains(out2, "-force") {
		t.Errorf("second build without -force: err %v\n%s", err, out2)
	}
	if _, err := os.Stat(image); err != nil {
		t.Errorf("the refused build removed the earlier image: %v", err)
	}
}

// TestFailingShellFailsBuild: a failing command fails the build with its exit status, and no image
// is left behind as an artifact.
func TestFailingShellFailsBuild(t *testing.T) {
	p := newProject(t)
	p.write("fail.pkr.hcl", `
source "uml" "fail" {
  image_size       = 64
  output_directory = "out"
  chroot           = false
  modules          = ["mkfs", "mount"]
}
build {
  sources = ["source.uml.fail"]
  provisioner "shell" {
    inline = ["echo about to fail", "exit 3"]
  }
}
`)
	out, err := p.packer(context.Background(), "build", "fail.pkr.hcl")
	if err == nil {
		t.Fatalf("build succeeded:\n%s", out)
	}
	if !strings.Contains(out, "non-zero exit status: 3") {
		t.Errorf("exit status 3 not in the error:\n%s", out)
	}
	if _, err := os.Stat(p.path("out")); !os.IsNotExist(err) {
		t.Errorf("output directory left behind after a failed build (err %v)", err)
	}
	if procs := umlProcessesFor(p.path("out")); len(procs) > 0 {
		t.Errorf("UML still running after the failed build: %v", procs)
	}
}

// slowTemplate is a build whose provisioner runs until it is stopped.
const slowTemplate = `
source "uml" "slow" {
  image_size       = 64
  output_directory = "out"
  chroot           = false
  modules          = ["mkfs", "mount"]
}
build {
  sources = ["source.uml.slow"]
  provisioner "shell" {
    inline = ["echo provisioner-started", "sleep 600"]
  }
}
`

// startSlowBuild starts packer in a process group of its own (as a shell does for a job) and waits
// until the provisioner runs in the guest.
func startSlowBuild(t *testing.T, p *project) (*exec.Cmd, *lockedBuffer, string) {
	t.Helper()
	p.write("slow.pkr.hcl", slowTemplate)
	cmd := exec.Command("packer", "build", "slow.pkr.hcl")
	cmd.Dir = p.dir
	cmd.Env = p.env()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })
	deadline := time.Now().Add(3 * time.Minute)
	for !strings.Contains(out.String(), "provisioner-started") {
		if time.Now().After(deadline) {
			t.Fatalf("provisioner did not start:\n%s", out.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	image := p.path("out/slow.img")
	if len(umlProcessesFor(image)) == 0 {
		t.Fatalf("no UML process found for %s while the provisioner runs", image)
	}
	return cmd, out, image
}

// waitNoUML waits up to 5 s for every UML process of image to be gone.
func waitNoUML(t *testing.T, image string) {
	t.Helper()
	var procs []string
	for i := 0; i < 50; i++ {
		if procs = umlProcessesFor(image); len(procs) == 0 {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Errorf("UML processes still running 5 s later: %v", procs)
}

// waitFailed waits up to 2 minutes for packer to end, and fails the test if it ends with 0 or not at all.
func waitFailed(t *testing.T, cmd *exec.Cmd, out *lockedBuffer, what string) {
	t.Helper()
	waitFailedWithin(t, cmd, out, what, 2*time.Minute)
}

// waitFailedWithin is waitFailed with another limit.
func waitFailedWithin(t *testing.T, cmd *exec.Cmd, out *lockedBuffer, what string, limit time.Duration) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err == nil {
			t.Errorf("packer exited 0 after %s:\n%s", what, out.String())
		}
	case <-time.After(limit):
		t.Fatalf("packer did not end within %s after %s:\n%s", limit, what, out.String())
	}
}

// TestInterruptLeavesNothing: Ctrl-C (SIGINT to packer's process group) in the middle of a
// provisioner ends the build, kills UML and leaves no image.
func TestInterruptLeavesNothing(t *testing.T) {
	p := newProject(t)
	cmd, out, image := startSlowBuild(t, p)
	syscall.Kill(-cmd.Process.Pid, syscall.SIGINT)
	waitFailed(t, cmd, out, "SIGINT")
	waitNoUML(t, image)
	if _, err := os.Stat(image); !os.IsNotExist(err) {
		t.Errorf("image left behind after the interrupt (err %v)", err)
	}
	if strings.Contains(out.String(), "Builds finished. The artifacts") {
		t.Errorf("an artifact was reported:\n%s", out.String())
	}
}

// TestGuestKilledFailsClearly: UML killed by SIGKILL in the middle of a provisioner fails the build
// within seconds, saying the guest died and where its console log is; no artifact, no image.
func TestGuestKilledFailsClearly(t *testing.T) {
	p := newProject(t)
	cmd, out, image := startSlowBuild(t, p)
	procs := umlProcessesFor(image)
	if len(procs) == 0 {
		t.Fatalf("no UML process found for %s", image)
	}
	for _, proc := range procs {
		pid, _ := strconv.Atoi(strings.SplitN(proc, ":", 2)[0])
		b, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cmdline"))
		if strings.HasPrefix(string(b), "/usr/bin/linux") || strings.Contains(strings.SplitN(string(b), "\x00", 2)[0], "linux") {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	killed := time.Now()
	waitFailed(t, cmd, out, "UML was killed")
	if d := time.Since(killed); d > 30*time.Second {
		t.Errorf("the build took %s to fail after UML died", d)
	}
	for _, want := range []string{"the guest died", "console.log", "last lines of the guest console"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("%q not in the output:\n%s", want, out.String())
		}
	}
	waitNoUML(t, image)
	if _, err := os.Stat(image); !os.IsNotExist(err) {
		t.Errorf("image left behind (err %v)", err)
	}
}

// TestPluginKilledLeavesNoUML: the plugin process dies by SIGKILL (no cleanup runs); the watchdog
// still ends UML and its helper processes.
func TestPluginKilledLeavesNoUML(t *testing.T) {
	p := newProject(t)
	cmd, out, image := startSlowBuild(t, p)
	plugin := ""
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && strings.Contains(string(b), p.plugins) && strings.Contains(string(b), "start\x00builder") {
			plugin = e.Name()
		}
	}
	if plugin == "" {
		t.Fatalf("plugin process not found")
	}
	pid, _ := strconv.Atoi(plugin)
	syscall.Kill(pid, syscall.SIGKILL)
	waitNoUML(t, image)
	waitFailed(t, cmd, out, "its plugin died")
}

type lockedBuffer struct {
	mu  chan struct{}
	buf bytes.Buffer
}

func (l *lockedBuffer) lock() {
	if l.mu == nil {
		l.mu = make(chan struct{}, 1)
	}
	l.mu <- struct{}{}
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.lock()
	defer func() { <-l.mu }()
	return l.buf.Write(p)
}

func (l *lockedBuffer) String() string {
	l.lock()
	defer func() { <-l.mu }()
	return l.buf.String()
}

// TestFilesystemsAndTransfers builds each supported fstype with chroot = false and moves a tree both
// ways with the file provisioner: directories with the rsync trailing-slash rule, a single file
// download, modes and symlinks kept.
func TestFilesystemsAndTransfers(t *testing.T) {
	for _, fstype := range []string{"ext2", "ext3", "xfs", "btrfs"} {
		t.Run(fstype, func(t *testing.T) {
			p := newProject(t)
			p.write("tree/a.txt", "alpha\n")
			p.write("tree/sub/b.sh", "#!/bin/sh\necho beta\n")
			os.Chmod(p.path("tree/sub/b.sh"), 0o750)
			os.Symlink("sub/b.sh", p.path("tree/link"))
			p.write("fs.pkr.hcl", fmt.Sprintf(`
source "uml" "fs" {
  image_size       = 320
  fstype           = %q
  output_directory = "out"
  chroot           = false
  modules          = ["mkfs", "mount"]
}
build {
  sources = ["source.uml.fs"]
  provisioner "file" {
    source      = "tree"
    destination = "/tmp/target/srv"
  }
  provisioner "file" {
    source      = "tree/"
    destination = "/tmp/target/flat"
  }
  provisioner "shell" {
    inline = [
      "test \"$(cat $TARGET/srv/tree/a.txt)\" = alpha",
      "test \"$(cat $TARGET/flat/a.txt)\" = alpha",
      "test \"$(stat -c %%a $TARGET/flat/sub/b.sh)\" = 750",
      "test \"$(readlink $TARGET/flat/link)\" = sub/b.sh",
      "test \"$(stat -c %%u $TARGET/flat/a.txt)\" = 0",
      "mkdir -p $TARGET/made && echo gamma > $TARGET/made/c.txt && chmod 640 $TARGET/made/c.txt",
      "grep -q \" $TARGET %s \" /proc/mounts",
    ]
  }
  provisioner "file" {
    direction   = "download"
    source      = "/tmp/target/made/"
    destination = "back"
  }
  provisioner "file" {
    direction   = "download"
    source      = "/tmp/target/flat/a.txt"
    destination = "a-back.txt"
  }
}
`, fstype, fstype))
			p.build("fs.pkr.hcl")
			if b, _ := os.ReadFile(p.path("back/c.txt")); string(b) != "gamma\n" {
				t.Errorf("downloaded directory: c.txt = %q", b)
			}
			if st, err := os.Stat(p.path("back/c.txt")); err != nil || st.Mode().Perm() != 0o640 {
				t.Errorf("downloaded c.txt mode: %v %v", st, err)
			}
			if b, _ := os.ReadFile(p.path("a-back.txt")); string(b) != "alpha\n" {
				t.Errorf("downloaded file: %q", b)
			}
			image := p.path("out/fs.img")
			switch fstype {
			case "xfs":
				run(t, "/sbin/xfs_repair", "-n", "-f", image)
			case "btrfs":
				run(t, "btrfs", "check", image)
			default:
				run(t, "/sbin/e2fsck", "-fn", image)
				if got := debugfs(t, image, "cat /srv/tree/sub/b.sh"); !strings.Contains(got, "echo beta") {
					t.Errorf("uploaded tree not in the image: %q", got)
				}
			}
		})
	}
}
