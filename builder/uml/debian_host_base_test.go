package uml

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestNewHostBaseNeedsMkfsMountDebianInARow(t *testing.T) {
	for _, tc := range []struct {
		names []string
		want  bool
	}{
		{[]string{"network", "mkfs", "mount", "debian", "uml", "umount"}, true}, // the default list
		{[]string{"mkfs", "mount", "debian"}, true},
		{[]string{"network", "mkfs", "mount", "mymodule", "debian"}, false}, // something runs between
		{[]string{"mount", "debian"}, false},                                // no mkfs: the image is the user's
		{[]string{"mkfs", "mount"}, false},
		{[]string{"debian", "mkfs", "mount"}, false},
		{nil, false},
	} {
		if got := newHostBase(tc.names, "img") != nil; got != tc.want {
			t.Errorf("newHostBase(%q) planned = %v, want %v", tc.names, got, tc.want)
		}
	}
}

func TestHostBaseBlockerNamesTheReason(t *testing.T) {
	r := &moduleRunner{hostProxy: "http://127.0.0.1:1", hostWorkDir: t.TempDir(), fixed: map[string]string{}}
	r.env.Global = map[string]string{}
	if why, tools, _, _ := r.hostBaseBlocker([]string{"fstype=xfs"}); tools != nil || why != "fstype xfs (mke2fs -d makes ext2, ext3 and ext4 only)" {
		t.Errorf("xfs: got %q, tools %v", why, tools)
	}
	r.env.Set("debian", map[string]string{"debootstrap_args": "--no-check-gpg --foreign"})
	if why, tools, _, _ := r.hostBaseBlocker([]string{"fstype=ext4"}); tools != nil || why != "debootstrap_args has --foreign" {
		t.Errorf("--foreign in debootstrap_args: got %q, tools %v", why, tools)
	}
	r.env.Set("debian", map[string]string{"debootstrap_args": "--no-check-gpg", "host_download": "false"})
	if why, tools, _, _ := r.hostBaseBlocker([]string{"fstype=ext4"}); tools != nil || why != "" {
		t.Errorf("host_download = false: got %q, tools %v; want no host base, silently", why, tools)
	}
}

func TestEnvValueTakesTheLastSetting(t *testing.T) {
	env := []string{"a=1", "fstype=ext3", "b=", "fstype=ext4"}
	if got := envValue(env, "fstype"); got != "ext4" {
		t.Errorf("envValue fstype = %q, want ext4", got)
	}
	if got := envValue(env, "missing"); got != "" {
		t.Errorf("envValue missing = %q, want empty", got)
	}
}

func TestHostBaseBlockerWithoutFakeroot(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	r := &moduleRunner{hostProxy: "http://127.0.0.1:1", hostWorkDir: t.TempDir(), fixed: map[string]string{}}
	r.env.Global = map[string]string{}
	why, tools, _, _ := r.hostBaseBlocker([]string{"fstype=ext4"})
	if tools != nil || why != "fakeroot is not installed on the host (apt-get install fakeroot)" {
		t.Errorf("got %q, tools %v", why, tools)
	}
}

func TestBlankImageKeepsTheSizeAndDropsTheData(t *testing.T) {
	image := filepath.Join(t.TempDir(), "x.img")
	if err := os.WriteFile(image, bytes.Repeat([]byte{0xab}, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	r := &moduleRunner{hostBase: &hostBase{image: image}}
	if err := r.blankImage(); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(image)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1<<20 || !bytes.Equal(got, make([]byte, 1<<20)) {
		t.Errorf("after blankImage: %d bytes, all zero = %v; want 1 MiB of zeros", len(got), bytes.Equal(got, make([]byte, len(got))))
	}
}

// A cancelled host base leaves nothing running: runHost kills the command's whole process group,
// and killFaked the fakeroot daemon, which fakeroot stops only when it ends normally.
func TestCancelledFakerootLeavesNoProcess(t *testing.T) {
	fakeroot, err := exec.LookPath("fakeroot")
	if err != nil {
		t.Fatal("fakeroot is not installed: apt-get install fakeroot (scripts/install-deps)")
	}
	dir := t.TempDir()
	save := filepath.Join(dir, "fakeroot.state")
	marker := "sleep 4242." + filepath.Base(dir) // a command line no other process has
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err = runHost(ctx, os.Environ(), dir, io.Discard, fakeroot, "-s", save, "--", "/bin/sh", "-c", marker+" || sleep 4242")
	if err == nil {
		t.Fatal("the command was not stopped by the cancelled context")
	}
	if !running(t, save) {
		t.Log("the fakeroot daemon was gone already (fakeroot may not use one here)")
	}
	killFaked(save)
	deadline := time.Now().Add(5 * time.Second)
	for running(t, save) || running(t, "sleep 4242") {
		if time.Now().After(deadline) {
			t.Fatal("a process of the cancelled command is still running")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// running reports whether a process's command line contains s.
func running(t *testing.T, s string) bool {
	t.Helper()
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		if b, err := os.ReadFile(p); err == nil && strings.Contains(strings.ReplaceAll(string(b), "\x00", " "), s) {
			return true
		}
	}
	return false
}
