package e2e

import (
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestHostSafetyAsRoot: with Packer run by root, a provisioner that mounts the host's /etc through
// hostfs, or remounts $HOST read-write, cannot write there (UML runs as nobody); the build itself
// still works and the image ends up root's. scripts/test runs this test as root, before it drops to
// the unprivileged test user for everything else.
func TestHostSafetyAsRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: scripts/test runs it as root")
	}
	p := newProject(t)
	token := fmt.Sprintf("packer-uml-escape-%d", time.Now().UnixNano())
	t.Cleanup(func() { os.Remove("/etc/" + token); os.Remove("/var/tmp/" + token) })
	p.write("escape.pkr.hcl", fmt.Sprintf(`
source "uml" "escape" {
  image_size       = 64
  output_directory = "out"
  chroot           = false
  modules          = ["mkfs", "mount"]
}
build {
  sources = ["source.uml.escape"]
  provisioner "shell" {
    inline = [
      "mkdir -p /mnt/etc && mount -t hostfs none /mnt/etc -o /etc",
      "if touch /mnt/etc/%[1]s; then echo ESCAPED-ETC; else echo REFUSED-ETC; fi",
      "mount -o remount,rw $HOST && { if touch $HOST/etc/%[1]s; then echo ESCAPED-HOST; else echo REFUSED-HOST; fi; } || echo REFUSED-REMOUNT",
      "echo inside > $TARGET/inside",
    ]
  }
}
`, token))
	out := p.build("escape.pkr.hcl")
	if _, err := os.Stat("/etc/" + token); err == nil {
		t.Fatalf("the guest wrote the host's /etc/%s:\n%s", token, out)
	}
	if strings.Contains(out, "ESCAPED") || !strings.Contains(out, "REFUSED-ETC") {
		t.Errorf("the guest's writes to the host were not refused:\n%s", out)
	}
	if !strings.Contains(out, "UML runs as nobody") {
		t.Errorf("the UI does not say UML runs unprivileged:\n%s", out)
	}
	image := p.path("out/escape.img")
	run(t, "/sbin/e2fsck", "-fn", image)
	st, err := os.Stat(image)
	if err != nil {
		t.Fatal(err)
	}
	if sys := st.Sys().(*syscall.Stat_t); sys.Uid != 0 || sys.Gid != 0 {
		t.Errorf("the image belongs to %d:%d, want root's", sys.Uid, sys.Gid)
	}
	if got := debugfs(t, image, "cat /inside"); !strings.Contains(got, "inside") {
		t.Errorf("the build's own write to the image is missing: %q", got)
	}
}
