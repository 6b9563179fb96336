package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// TestFormats builds example/formats.pkr.hcl as qcow2, vmdk and tar, and checks each artifact with
// the tools a user would: qemu-img info, a conversion back to raw that e2fsck accepts and that holds
// the provisioners' files with their owners, and tar -tvf for the archive's owners, modes and
// device node. The output directory holds the artifact, its checksum and the console log: no raw
// image, no temporary file.
func TestFormats(t *testing.T) {
	for _, format := range []string{"qcow2", "vmdk", "tar"} {
		t.Run(format, func(t *testing.T) {
			p := newProject(t)
			p.copyExample("formats.pkr.hcl")
			out := p.build("formats.pkr.hcl", "-var", "format="+format, "-var", "output_directory=out")
			artifact := p.path("out/formats." + format)
			kind := "Root filesystem image: " + artifact + " (" + format + ", 256 MiB ext4"
			if format == "tar" {
				kind = "Root filesystem archive: " + artifact + " (tar of a 256 MiB ext4 image"
			}
			if !strings.Contains(out, kind) {
				t.Errorf("artifact line %q missing from the output:\n%s", kind, out)
			}
			entries, _ := os.ReadDir(p.path("out"))
			var names []string
			for _, e := range entries {
				names = append(names, e.Name())
			}
			sort.Strings(names)
			want := []string{"console.log", "formats." + format, "formats.sha256"}
			sort.Strings(want)
			if strings.Join(names, " ") != strings.Join(want, " ") {
				t.Errorf("output directory holds %q, want %q", names, want)
			}
			// The checksum post-processor took the artifact.
			if sum, err := os.ReadFile(p.path("out/formats.sha256")); err != nil || !strings.HasPrefix(string(sum), fileSHA256(t, artifact)) {
				t.Errorf("checksum file %q (%v) does not match the artifact", sum, err)
			}
			if format == "tar" {
				checkTar(t, artifact)
				return
			}
			info := run(t, "qemu-img", "info", artifact)
			for _, want := range []string{"file format: " + format, "virtual size: 256 MiB"} {
				if !strings.Contains(info, want) {
					t.Errorf("qemu-img info lacks %q:\n%s", want, info)
				}
			}
			raw := filepath.Join(t.TempDir(), "back.raw")
			run(t, "qemu-img", "convert", "-f", format, "-O", "raw", artifact, raw)
			run(t, "qemu-img", "compare", "-f", format, "-F", "raw", artifact, raw)
			run(t, "/sbin/e2fsck", "-fn", raw)
			if st := debugfs(t, raw, "stat /srv/data/owned"); !strings.Contains(st, "User:  1234   Group:  1234") {
				t.Errorf("/srv/data/owned lost its owner:\n%s", st)
			}
			if st := debugfs(t, raw, "stat /dev/null"); !strings.Contains(st, "character special") {
				t.Errorf("/dev/null is not a device node:\n%s", st)
			}
			if motd := debugfs(t, raw, "cat /etc/motd"); !strings.Contains(motd, "format "+format) {
				t.Errorf("/etc/motd: %q", motd)
			}
		})
	}
}

// checkTar lists the archive with tar -tvf: numeric owners, modes and the device node as made in
// the guest, although no step of the build ran as root on the host.
func checkTar(t *testing.T, archive string) {
	t.Helper()
	list := run(t, "tar", "--numeric-owner", "-tvf", archive)
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^drwxr-xr-x 0/0 .* \./$`),
		regexp.MustCompile(`(?m)^drwxr-xr-x 1234/1234 .* \./srv/data/$`),
		regexp.MustCompile(`(?m)^-rw-r--r-- 1234/1234 +5 .* \./srv/data/owned$`),
		regexp.MustCompile(`(?m)^crw-rw-rw- 0/0 +1,3 .* \./dev/null$`),
		regexp.MustCompile(`(?m)^-rwxr-xr-x 0/0 .* \./bin/busybox$`),
		regexp.MustCompile(`(?m)^lrwxrwxrwx 0/0 .* \./bin/sh -> busybox$`),
	} {
		if !want.MatchString(list) {
			t.Errorf("tar -tvf lacks a line matching %s:\n%s", want, list)
		}
	}
	// ext4's lost+found comes along, as in any copy of the filesystem; /proc, which the mount
	// module mounted in the image, does not bring the guest's processes.
	if strings.Contains(list, "./proc/1/") {
		t.Errorf("the archive holds the guest's /proc:\n%s", list)
	}
	motd := run(t, "tar", "-xOf", archive, "./etc/motd")
	if !strings.Contains(motd, "format tar") {
		t.Errorf("./etc/motd: %q", motd)
	}
}
