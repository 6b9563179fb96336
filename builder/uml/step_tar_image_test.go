package uml

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/hashicorp/packer-plugin-sdk/multistep"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"

	"github.com/packer-uml/packer-plugin-uml/internal/umltest"
)

// TestTarImageInUML archives a real image in a real guest, once while it is still mounted (with
// /proc mounted below it, as the mount module leaves it) and once after it was unmounted, as the
// umount post-module leaves it. Both archives keep numeric owners, modes, a device node and an
// extended attribute, and neither holds /proc's contents.
func TestTarImageInUML(t *testing.T) {
	g := umltest.Boot(t, umltest.Options{ImageMiB: 64, FirstDisk: 1})
	out := g.Sh(t, `set -e
mkfs.ext4 -q /dev/ubdb
mkdir -p /tmp/target && mount -t ext4 /dev/ubdb /tmp/target && cd /tmp/target
mkdir -p dev etc srv/data proc
mknod dev/null c 1 3 && chmod 0666 dev/null
echo hello >etc/motd && chmod 0640 etc/motd
chown 1234:1234 srv/data etc/motd
if command -v python3 >/dev/null; then
	python3 -c 'import os; os.setxattr("etc/motd", "user.note", b"kept")' && echo xattr set
fi
mount -t proc proc proc
`)
	xattrs := strings.Contains(out, "xattr set")
	if !xattrs {
		t.Log("no python3 on the host: extended attributes are not checked")
	}
	var ui bytes.Buffer
	state := new(multistep.BasicStateBag)
	state.Put(stateUI, &packersdk.BasicUi{Writer: &ui, ErrorWriter: &ui})
	state.Put(stateAgent, g.Client)
	state.Put(stateWorkDir, g.Dir) // umltest's staging directory is <Dir>/staging

	for _, mounted := range []bool{true, false} {
		if !mounted {
			g.Sh(t, "umount /tmp/target/proc && umount /tmp/target")
		}
		ui.Reset()
		s := &stepTarImage{FSType: "ext4"}
		if action := s.Run(context.Background(), state); action != multistep.ActionContinue {
			t.Fatalf("mounted %v: action %v, error %v\nUI:\n%s\nconsole:\n%s", mounted, action, state.Get(stateError), ui.String(), g.ConsoleTail())
		}
		if got := strings.Contains(ui.String(), "still mounted at /tmp/target"); got != mounted {
			t.Errorf("mounted %v: UI says still mounted: %v\n%s", mounted, got, ui.String())
		}
		checkImageTar(t, state.Get(stateTarPath).(string), xattrs)
	}
	if out := g.Sh(t, "grep -c ' /run/packer-uml/tar ' /proc/self/mounts || true"); strings.TrimSpace(out) != "0" {
		t.Errorf("the archive's mount stays: %s", out)
	}
}

// checkImageTar reads the archive with Go's archive/tar, as other tools would.
// With xattrs, ./etc/motd has the extended attribute user.note.
func checkImageTar(t *testing.T, path string, xattrs bool) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	entries := map[string]*tar.Header{}
	r := tar.NewReader(f)
	for {
		h, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		entries[h.Name] = h
	}
	for name, want := range map[string]struct {
		typ            byte
		mode, uid, gid int64
	}{
		"./":          {tar.TypeDir, 0o755, 0, 0},
		"./srv/data/": {tar.TypeDir, 0o755, 1234, 1234},
		"./etc/motd":  {tar.TypeReg, 0o640, 1234, 1234},
		"./dev/null":  {tar.TypeChar, 0o666, 0, 0},
		"./proc/":     {tar.TypeDir, 0o755, 0, 0},
	} {
		h, ok := entries[name]
		if !ok {
			t.Errorf("%s is not in the archive", name)
			continue
		}
		if h.Typeflag != want.typ || h.Mode&0o7777 != want.mode || int64(h.Uid) != want.uid || int64(h.Gid) != want.gid {
			t.Errorf("%s: type %c mode %o owner %d:%d; want type %c mode %o owner %d:%d", name, h.Typeflag, h.Mode, h.Uid, h.Gid, want.typ, want.mode, want.uid, want.gid)
		}
	}
	if h := entries["./dev/null"]; h != nil && (h.Devmajor != 1 || h.Devminor != 3) {
		t.Errorf("./dev/null is device %d:%d, want 1:3", h.Devmajor, h.Devminor)
	}
	if h := entries["./etc/motd"]; xattrs && h != nil && h.PAXRecords["SCHILY.xattr.user.note"] != "kept" {
		t.Errorf("./etc/motd lost its extended attribute: %q", h.PAXRecords)
	}
	for name := range entries {
		if strings.HasPrefix(name, "./proc/") && name != "./proc/" {
			t.Errorf("the archive holds %s: /proc below the image was archived", name)
			break
		}
	}
}
