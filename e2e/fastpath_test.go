package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/packer-uml/packer-plugin-uml/internal/umltest"
)

// listing is how both sides list a tree: path, type and mode, owner, group, size, link target.
const listing = `-xdev -printf '%P\t%M\t%U\t%G\t%s\t%l\n'`

// TestMinbaseMatchesDebootstrap: the image our build makes of minbase bookworm (the default
// modules, with everything the speed work changed: the host base, dpkg's unsafe-io, barrier=0,
// spooled downloads)
// holds what a plain `debootstrap --variant=minbase` as root makes of the same mirror: the same
// installed packages (dpkg-query) and the same files with the same types, modes, owners, sizes and
// link targets, except logs, caches and the files that the build writes on purpose (fstab,
// sources.list, device nodes; see ignoredInComparison). debootstrap needs root: scripts/test runs
// this test as root, beside the unprivileged phase.
func TestMinbaseMatchesDebootstrap(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for the debootstrap it compares with: scripts/test runs it as root")
	}
	mirror := umltest.HostMirror(t)
	if mirror == "" {
		t.Fatal("no Debian mirror in the host's apt sources")
	}
	p := newProject(t)
	p.write("minbase.pkr.hcl", umltest.MinbaseSource("null", `"out"`, `"cache"`)+`
build {
  sources = ["source.uml.minbase"]
  provisioner "shell" {
    inline = [
      "find / `+listing+` > /tmp/files.txt",
      "dpkg-query -W -f '$${Package} $${Version} $${Architecture} $${Status}\\n' > /tmp/packages.txt",
    ]
  }
  provisioner "file" {
    direction = "download"
    sources   = ["/tmp/files.txt", "/tmp/packages.txt"]
    destination = "./"
  }
  provisioner "shell" {
    inline = ["rm /tmp/files.txt /tmp/packages.txt"]
  }
}
`)
	out := p.buildWithin(45*time.Minute, "minbase.pkr.hcl", "-var", "mirror="+mirror)
	// The fast path under test: the host made the filesystem with debootstrap's first stage
	// (builder/uml/debian_host_base.go), and the guest ran the second stage.
	for _, want := range []string{"debootstrap's first stage made on the host", "--second-stage"} {
		if !strings.Contains(out, want) {
			t.Errorf("the build did not take the host base: %q is not in its output (is fakeroot installed?)", want)
		}
	}
	image := p.path("out/minbase.img")
	run(t, "/sbin/e2fsck", "-fn", image)
	if got := debugfs(t, image, "stat /tmp/files.txt"); !strings.Contains(got, "File not found") {
		t.Errorf("the listing stayed in the image")
	}

	root := filepath.Join(t.TempDir(), "root")
	if out, err := exec.Command("debootstrap", "--variant=minbase", "bookworm", root, mirror).CombinedOutput(); err != nil {
		t.Fatalf("debootstrap: %v\n%s", err, out)
	}
	theirs := run(t, "sh", "-c", "find "+root+" "+listing)
	theirPkgs := run(t, "chroot", root, "dpkg-query", "-W", "-f", "${Package} ${Version} ${Architecture} ${Status}\n")

	ourPkgs, err := os.ReadFile(p.path("packages.txt"))
	if err != nil {
		t.Fatal(err)
	}
	ours, err := os.ReadFile(p.path("files.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if a, b := sortedLines(string(ourPkgs)), sortedLines(theirPkgs); strings.Join(a, "\n") != strings.Join(b, "\n") {
		t.Errorf("installed packages differ:\n%s", lineDiff(a, b))
	} else {
		t.Logf("%d packages, the same on both sides", len(a))
	}
	a, b := comparableFiles(string(ours)), comparableFiles(theirs)
	if d := lineDiff(a, b); d != "" {
		t.Errorf("files differ (ours -, debootstrap's +):\n%s", d)
	} else {
		t.Logf("%d files compared, the same on both sides", len(a))
	}
}

// ignoredInComparison are paths whose presence or content the two builds may differ in on purpose:
// logs and caches (the exceptions), what debootstrap's second stage leaves behind on the
// host (debootstrap's log dir), the mount points and device nodes of a guest, and the files our
// standard modules write by design (docs/modules/: fstab by uml, sources.list by debian).
var ignoredInComparison = []string{
	"var/log/", "var/cache/", "var/lib/apt/lists/", "tmp/", "dev/", "proc/", "sys/", "run/",
	"lost+found", "debootstrap/", "etc/fstab", "etc/apt/sources.list", "etc/resolv.conf", "etc/hostname",
	"etc/hosts", "var/lib/dpkg/status-old", "var/lib/dpkg/available-old", "var/lib/dpkg/diversions-old",
	"var/lib/dpkg/statoverride-old", "etc/shadow-", "etc/gshadow-", "etc/passwd-", "etc/group-",
	"etc/subuid-", "etc/subgid-",
	// The builder's proxy setting for apt in provisioners: there while they run (the listing is
	// made by one), removed before post_modules (TestDebianBuild checks it is gone from the image).
	"etc/apt/apt.conf.d/00packer-uml-proxy",
}

// comparableFiles turns a listing into sorted lines, without ignored paths, and without sizes of
// anything but regular files (directory sizes depend on the filesystem).
func comparableFiles(listing string) []string {
	var out []string
	for _, line := range strings.Split(listing, "\n") {
		f := strings.Split(line, "\t")
		if len(f) != 6 || f[0] == "" {
			continue
		}
		skip := false
		for _, ig := range ignoredInComparison {
			if f[0] == strings.TrimSuffix(ig, "/") || strings.HasSuffix(ig, "/") && strings.HasPrefix(f[0], ig) {
				skip = true
			}
		}
		if skip {
			continue
		}
		if !strings.HasPrefix(f[1], "-") {
			f[4] = ""
		}
		out = append(out, strings.Join(f, " "))
	}
	sort.Strings(out)
	return out
}

func sortedLines(s string) []string {
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(s), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	sort.Strings(out)
	return out
}

// lineDiff lists the lines only in a (-) or only in b (+), at most 40 of them.
func lineDiff(a, b []string) string {
	inA, inB := map[string]bool{}, map[string]bool{}
	for _, l := range a {
		inA[l] = true
	}
	for _, l := range b {
		inB[l] = true
	}
	var d []string
	for _, l := range a {
		if !inB[l] {
			d = append(d, "- "+l)
		}
	}
	for _, l := range b {
		if !inA[l] {
			d = append(d, "+ "+l)
		}
	}
	sort.Slice(d, func(i, j int) bool { return d[i][2:] < d[j][2:] })
	if len(d) > 40 {
		d = append(d[:40], "...")
	}
	return strings.Join(d, "\n")
}
