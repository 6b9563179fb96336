package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/packer-uml/packer-plugin-uml/internal/umltest"
)

// oldRootstrapConf is a rootstrap.conf as the old tool took it: comments, continuation lines, a
// custom module in the user's module directory, and the image shrunk to leave 16 MB free.
const oldRootstrapConf = `# rootstrap.conf, unchanged from the old tool
[global]
fstype=ext4
initialsize=256
freespace=16
modules=mkfs mount printenv umount
PATH=/usr/sbin:/usr/bin:/sbin:/bin
site=example
  second line

[printenv]
colour=blue
site=overridden by the section
`

// printenvModule prints the environment it sees, one variable per line, and leaves a mark in the
// image.
const printenvModule = `#!/bin/sh
set -e
env | sort | sed 's/^/ENV /'
echo "$site" | sed 's/^/SITE /'
echo "module ran" > "$TARGET/printenv-was-here"
`

// rootstrapProject is a project with the old configuration and the custom module in ~/.rootstrap.
func rootstrapProject(t *testing.T) *project {
	p := newProject(t)
	p.home = t.TempDir()
	os.Chmod(p.home, 0o755)
	mods := filepath.Join(p.home, ".rootstrap", "modules")
	if err := os.MkdirAll(mods, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(mods, "printenv"), []byte(printenvModule), 0o755); err != nil {
		t.Fatal(err)
	}
	p.write("rootstrap.conf", oldRootstrapConf)
	return p
}

// checkPrintenv checks what the custom module saw and left.
func checkPrintenv(t *testing.T, out, image, workDir, home string) {
	t.Helper()
	for _, want := range []string{
		"Using rootstrap module printenv from:",
		filepath.Join(home, ".rootstrap", "modules", "printenv"),
		"ENV PATH=/usr/sbin:/usr/bin:/sbin:/bin",
		"ENV TARGET=/tmp/target",
		"ENV HOST=/tmp/host",
		"ENV WORKDIR=" + workDir,
		"ENV fstype=ext4",
		"ENV freespace=16",
		"ENV modules=mkfs mount printenv umount",
		"ENV colour=blue",
		"SITE overridden by the section",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("output:\n%s", out)
	}
	run(t, "/sbin/e2fsck", "-fn", image)
	if got := debugfs(t, image, "cat /printenv-was-here"); !strings.Contains(got, "module ran") {
		t.Errorf("the module's file is not in the image: %q", got)
	}
	// freespace=16: the 256 MiB image was shrunk to what is used plus about 16 MiB.
	st, err := os.Stat(image)
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() >= 256<<20 || st.Size() < 16<<20 {
		t.Errorf("image is %d bytes: freespace=16 should have shrunk the 256 MiB image", st.Size())
	}
	super := map[string]int{}
	for _, line := range strings.Split(run(t, "/sbin/dumpe2fs", "-h", image), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			super[k], _ = strconv.Atoi(strings.TrimSpace(v))
		}
	}
	if mib := super["Free blocks"] * super["Block size"] >> 20; mib < 12 || mib > 24 {
		t.Errorf("%d MiB free after freespace=16 (superblock: %v)", mib, super)
	}
}

// TestRootstrapConfigInPackerBuild: the old configuration and custom module, unchanged, through
// rootstrap_config in a packer build; the uml-module provisioner runs a built-in and the custom
// module among other provisioners.
func TestRootstrapConfigInPackerBuild(t *testing.T) {
	p := rootstrapProject(t)
	p.write("old.pkr.hcl", `
source "uml" "old" {
  rootstrap_config = "rootstrap.conf"
  output_directory = "out"
}
build {
  sources = ["source.uml.old"]
  provisioner "uml-module" {
    module = "printenv"
    env  = { colour = "green" }
  }
  provisioner "uml-module" {
    module = "uml"
    uml {
      kernel_modules = "none"
    }
  }
}
`)
	out := p.build("old.pkr.hcl")
	image := p.path("out/old.img")
	checkPrintenv(t, out, image, p.dir, p.home)
	if !strings.Contains(out, "ENV colour=green") {
		t.Errorf("the provisioner's env did not reach the module:\n%s", out)
	}
	if got := debugfs(t, image, "cat /etc/fstab"); !strings.Contains(got, "/dev/ubda / ext4 defaults 0 1") {
		t.Errorf("the uml module did not run from the provisioner: fstab %q", got)
	}
}

// TestRootstrapCommand: the same configuration through `packer-plugin-uml rootstrap`, rootstrap's
// own command line, with -s overriding initialsize and -o sending the output to a file.
func TestRootstrapCommand(t *testing.T) {
	p := rootstrapProject(t)
	bin := umltest.Binary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "rootstrap", "-s", "200", "-o", "build.log", "root.img")
	cmd.Dir = p.dir
	cmd.Env = p.env()
	if out, err := cmd.CombinedOutput(); err != nil {
		log, _ := os.ReadFile(p.path("build.log"))
		t.Fatalf("rootstrap: %v\n%s\nbuild.log:\n%s", err, out, log)
	}
	log, err := os.ReadFile(p.path("build.log"))
	if err != nil {
		t.Fatal(err)
	}
	checkPrintenv(t, string(log), p.path("root.img"), p.dir, p.home)
	if !strings.Contains(string(log), "ENV initialsize=200") {
		t.Errorf("-s 200 should override initialsize:\n%s", log)
	}

	// A failing module: non-zero exit, the error on stderr and in the log, no image left.
	os.WriteFile(filepath.Join(p.home, ".rootstrap", "modules", "printenv"), []byte("#!/bin/sh\necho 'E: broken on purpose' >&2\nexit 1\n"), 0o755)
	cmd = exec.CommandContext(ctx, bin, "rootstrap", "broken.img")
	cmd.Dir = p.dir
	cmd.Env = p.env()
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("a failing module should fail the command:\n%s", out)
	}
	if !strings.Contains(string(out), "module printenv failed with exit status 1") || !strings.Contains(string(out), "E: broken on purpose") {
		t.Errorf("the failure is not explained:\n%s", out)
	}
	if _, err := os.Stat(p.path("broken.img")); !os.IsNotExist(err) {
		t.Errorf("a failed build left its image: %v", err)
	}

	// Missing mandatory options are named.
	p.write("rootstrap.conf", "[global]\nfstype=ext4\n")
	cmd = exec.CommandContext(ctx, bin, "rootstrap", "x.img")
	cmd.Dir = p.dir
	cmd.Env = p.env()
	out, _ = cmd.CombinedOutput()
	if !strings.Contains(string(out), "[global] must set PATH, initialsize, modules") {
		t.Errorf("missing options not named:\n%s", out)
	}
}
