package uml

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"

	"github.com/packer-uml/packer-plugin-uml/internal/umltest"
)

// newTestRunner prepares a Config in a directory of its own and boots a guest with the image as
// ubd1, as the builder does.
func newTestRunner(t *testing.T, changes map[string]interface{}, custom map[string]string) (*moduleRunner, *umltest.Guest, *bytes.Buffer, string) {
	t.Helper()
	dir := inDir(t)
	os.Chmod(dir, 0o755)
	os.Mkdir(filepath.Join(dir, "modules"), 0o755)
	for name, script := range custom {
		if err := os.WriteFile(filepath.Join(dir, "modules", name), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	c, err := prepare(t, changes)
	if err != nil {
		t.Fatal(err)
	}
	g := umltest.Boot(t, umltest.Options{ImageMiB: 256, FirstDisk: 1, WorkDir: dir})
	var out bytes.Buffer
	ui := &packersdk.BasicUi{Writer: &out, ErrorWriter: &out}
	return newModuleRunner(g.Client, ui, c, dir, ""), g, &out, dir
}

// TestStandardModulesInUML runs mkfs, mount, uml and umount for real, and a custom module, and
// checks the image they leave with e2fsck and debugfs.
func TestStandardModulesInUML(t *testing.T) {
	show := "#!/bin/sh\nset -e\necho \"greeting=$GREETING target=$TARGET host=$HOST workdir=$WORKDIR pwd=$(pwd) fstype=$fstype\"\nmountpoint -q \"$TARGET\" && mountpoint -q \"$TARGET/proc\" && echo mounted\ntouch \"$TARGET/from-show\"\n"
	r, g, out, dir := newTestRunner(t, map[string]interface{}{
		"modules":    []string{"mkfs", "mount", "show", "uml"},
		"uml":        map[string]interface{}{"kernel_modules": "hostfs", "kernel_modules_dir": "/usr/lib/uml/modules"},
		"global":     map[string]string{"GREETING": "hello world"},
		"module_env": []map[string]interface{}{{"name": "show", "env": map[string]string{"GREETING": "own"}}},
	}, map[string]string{"show": show})
	ctx := context.Background()
	for _, name := range []string{"mkfs", "mount", "show", "uml", "umount"} {
		if err := r.Run(ctx, name, "", nil, nil, nil); err != nil {
			t.Fatalf("module %s: %v\nUI:\n%s\nconsole:\n%s", name, err, out, g.ConsoleTail())
		}
	}
	ui := out.String()
	for _, want := range []string{
		"Using rootstrap module mkfs from:\n\t(built into packer-plugin-uml) mkfs",
		"Using rootstrap module show from:\n\t" + filepath.Join(dir, "modules", "show"),
		"show: greeting=own target=/tmp/target host=/tmp/host workdir=" + dir + " pwd=" + dir + " fstype=ext4",
		"show: mounted",
	} {
		if !strings.Contains(ui, want) {
			t.Errorf("UI lacks %q:\n%s", want, ui)
		}
	}
	if out := g.Sh(t, "mountpoint -q /tmp/target && echo still mounted || echo unmounted"); !strings.Contains(out, "unmounted") {
		t.Errorf("umount left the target mounted: %s", out)
	}
	g.Shutdown(t)

	if out, err := exec.Command(sbin("e2fsck"), "-fn", g.Image).CombinedOutput(); err != nil {
		t.Fatalf("e2fsck: %v\n%s", err, out)
	}
	fstab := debugfsCat(t, g.Image, "/etc/fstab")
	for _, want := range []string{"/dev/ubda / ext4 defaults 0 1", "none /lib/modules hostfs defaults,ro,/usr/lib/uml/modules 0 0"} {
		if !strings.Contains(fstab, want) {
			t.Errorf("fstab lacks %q:\n%s", want, fstab)
		}
	}
	if st := debugfsRun(t, g.Image, "stat /dev/ubda"); !strings.Contains(st, "block special") || !strings.Contains(st, "Device major/minor number: 98:00") {
		t.Errorf("/dev/ubda is not the ubd block device:\n%s", st)
	}
	if st := debugfsRun(t, g.Image, "stat /from-show"); !strings.Contains(st, "Type: regular") {
		t.Errorf("the custom module's file is missing:\n%s", st)
	}
}

// TestFailingModule: a module's failure names it and quotes its error output; without debug the
// runner does not stop for a shell.
func TestFailingModule(t *testing.T) {
	r, _, out, _ := newTestRunner(t, map[string]interface{}{"modules": []string{"broken"}},
		map[string]string{"broken": "#!/bin/sh\necho doing things\necho 'E: the mirror is gone' >&2\nexit 3\n"})
	err := r.Run(context.Background(), "broken", "", nil, nil, nil)
	if err == nil || !strings.Contains(err.Error(), "module broken failed with exit status 3:\nE: the mirror is gone") {
		t.Fatalf("got %v\nUI:\n%s", err, out)
	}
	if !strings.Contains(out.String(), "broken: doing things") {
		t.Errorf("the module's output is not in the UI:\n%s", out)
	}
}

func debugfsRun(t *testing.T, image, request string) string {
	t.Helper()
	out, err := exec.Command(sbin("debugfs"), "-R", request, image).CombinedOutput()
	if err != nil {
		t.Fatalf("debugfs -R %q: %v\n%s", request, err, out)
	}
	return string(out)
}

func debugfsCat(t *testing.T, image, path string) string { return debugfsRun(t, image, "cat "+path) }
