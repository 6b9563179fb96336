package e2e

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/packer-uml/packer-plugin-uml/internal/umltest"
)

// TestDebianBuild is the acceptance build: the default modules (network through the agent's
// proxy, mkfs, mount, debian, uml) install Debian bookworm minbase from the host's mirror, a shell
// provisioner runs in it, and the image then boots under UML itself to a shell that prints a marker.
func TestDebianBuild(t *testing.T) {
	p := newProject(t)
	p.write("debian.pkr.hcl", `
variable "mirror" {
  type    = string
  default = ""
}
variable "out" {
  type = string
}
source "uml" "debian" {
  image_size       = 2048
  memory           = 512
  output_directory = var.out
  cache_dir        = "cache"
  free_space       = 64
  debian {
    dist    = "bookworm"
    variant = "minbase"
    mirror  = var.mirror
    include = ["less"]
    install = ["hello"]
    purge   = ["nano"]
  }
  uml {
    kernel_modules = "none"
  }
}
build {
  sources = ["source.uml.debian"]
  provisioner "shell" {
    inline = ["/usr/bin/hello", "test -e /etc/apt/apt.conf.d/00packer-uml-proxy"]
  }
}
`)
	args := []string{}
	if m := umltest.HostMirror(t); m != "" {
		args = append(args, "-var", "mirror="+m)
	}
	// Debian 12's UML takes 15 minutes or more for this on 2 cores (the downloads cross the serial
	// line at a few hundred kB/s); the cold and warm cache builds are timed by BenchmarkDebianBuild.
	start := time.Now()
	out := p.buildWithin(45*time.Minute, "debian.pkr.hcl", append(args, "-var", "out=out")...)
	t.Logf("cold cache build: %s", time.Since(start).Round(time.Second))
	for _, want := range []string{"Using rootstrap module debian from:", "debian: I: Base system installed successfully.", "Hello, world!", "Package cache: 0 hits",
		// The host base, without root: fakeroot debootstrap --foreign and mke2fs -d on the host.
		"debootstrap's first stage made on the host", "debian: chroot /tmp/target /debootstrap/debootstrap --second-stage"} {
		if !strings.Contains(out, want) {
			t.Errorf("build output lacks %q", want)
		}
	}
	checkDebianImage(t, p.path("out/debian.img"))
}

// checkDebianImage checks the built image on the host, then boots it.
func checkDebianImage(t *testing.T, image string) {
	t.Helper()
	run(t, "/sbin/e2fsck", "-fn", image)
	if got := debugfs(t, image, "cat /etc/fstab"); !strings.Contains(got, "/dev/ubda / ext4") {
		t.Errorf("fstab: %q", got)
	}
	if got := debugfs(t, image, "stat /etc/apt/apt.conf.d/00packer-uml-proxy"); !strings.Contains(got, "File not found") {
		t.Errorf("the build's apt proxy setting was left in the image: %s", got)
	}
	if got := debugfs(t, image, "stat /usr/bin/less"); !strings.Contains(got, "Type: regular") {
		t.Errorf("include = [less] did not install less")
	}
	bootImage(t, image)
}

// bootImage boots the built image under UML (root=/dev/ubda, /bin/sh as init, the console on a
// pipe) and waits for a shell command's marker on the console.
func bootImage(t *testing.T, image string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	cmd := exec.CommandContext(ctx, "linux.uml", "mem=256M", "umid=e2e-boot", "uml_dir="+dir, "ubd0="+image,
		"root=/dev/ubda", "ro", "init=/bin/sh", "con0=fd:0,fd:1", "con=null", "ssl=null", "pty.legacy_count=0")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "TMPDIR="+dir)
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// UML leads a process group of its own (it calls setsid): end all of it, helpers included.
	defer func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); cmd.Process.Kill(); cmd.Wait() }()
	// The shell reads its commands from the console once it runs.
	go func() {
		time.Sleep(2 * time.Second)
		stdin.Write([]byte("echo BOOTED-$(cat /etc/debian_version | cut -d. -f1)-MARK\n"))
	}()
	var seen []string
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		line := sc.Text()
		seen = append(seen, line)
		if strings.Contains(line, "BOOTED-12-MARK") {
			return
		}
	}
	if len(seen) > 40 {
		seen = seen[len(seen)-40:]
	}
	t.Fatalf("the image did not boot to a shell:\n%s", strings.Join(seen, "\n"))
}
