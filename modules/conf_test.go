package modules

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// A rootstrap.conf in the shape the original tool shipped and its users wrote.
const sampleConf = `# rootstrap configuration
[global]
fstype=ext3
initialsize=800
freespace=100
PATH=/sbin:/bin:/usr/sbin:/usr/bin
modules=network mkfs mount debian uml
 umount
umlargs=mem=256M

; the network module
[network]
interface=eth0
host=192.168.10.1
uml=192.168.10.2
netmask=255.255.255.0
transport=tuntap

[debian]
dist=bookworm
exclude=pcmcia-cs ppp pppconfig
purge=nano
sources=deb http://deb.example/debian bookworm main
	deb http://security.example/debian-security bookworm-security main
apt_preferences=Package: *
  Pin: release a=stable
  Pin-Priority: 900
  .
  Package: foo
  Pin: version 1.2*
apt_conf: APT::Install-Recommends "false";
comment_in_value=keep # this
`

func TestParseSample(t *testing.T) {
	c, err := Parse("rootstrap.conf", []byte(sampleConf))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ section, option, want string }{
		{"global", "fstype", "ext3"},
		{"global", "PATH", "/sbin:/bin:/usr/sbin:/usr/bin"},
		{"global", "modules", "network mkfs mount debian uml\numount"},
		{"global", "umlargs", "mem=256M"},
		{"network", "transport", "tuntap"},
		{"debian", "sources", "deb http://deb.example/debian bookworm main\ndeb http://security.example/debian-security bookworm-security main"},
		{"debian", "apt_preferences", "Package: *\nPin: release a=stable\nPin-Priority: 900\n.\nPackage: foo\nPin: version 1.2*"},
		{"debian", "apt_conf", `APT::Install-Recommends "false";`},
		{"debian", "comment_in_value", "keep # this"},
	} {
		if got := c.Sections[tc.section][tc.option]; got != tc.want {
			t.Errorf("[%s] %s = %q, want %q", tc.section, tc.option, got, tc.want)
		}
	}
	if _, ok := c.Sections["global"]["path"]; ok {
		t.Errorf("option names were folded to lower case")
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ conf, want string }{
		{"fstype=ext3\n[global]\n", `"fstype" comes before any [section]`},
		{"[global\nfstype=ext3\n", "rootstrap.conf"},
	} {
		_, err := Parse("rootstrap.conf", []byte(tc.conf))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%q): err %v, want one containing %q", tc.conf, err, tc.want)
		}
	}
}

func TestLoadLaterFilesWin(t *testing.T) {
	dir := t.TempDir()
	sys := filepath.Join(dir, "etc.conf")
	home := filepath.Join(dir, "home.conf")
	work := filepath.Join(dir, "work.conf")
	os.WriteFile(sys, []byte("[global]\nfstype=ext2\ninitialsize=100\n[debian]\ndist=bullseye\n"), 0o644)
	os.WriteFile(work, []byte("[global]\nfstype=ext4\n[uml]\nkernel_modules=none\n"), 0o644)
	c, read, err := Load([]string{sys, home, work})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(read, []string{sys, work}) {
		t.Errorf("read %v, want the two existing files in order", read)
	}
	if c.Global("fstype") != "ext4" || c.Global("initialsize") != "100" {
		t.Errorf("merge: fstype %q initialsize %q", c.Global("fstype"), c.Global("initialsize"))
	}
	if c.Sections["debian"]["dist"] != "bullseye" || c.Sections["uml"]["kernel_modules"] != "none" {
		t.Errorf("sections not merged: %v", c.Sections)
	}
	os.WriteFile(home, []byte("no header=here\n"), 0o644)
	if _, _, err := Load([]string{sys, home}); err == nil || !strings.Contains(err.Error(), home) {
		t.Errorf("a malformed file's error should name it: %v", err)
	}
}

func TestEnvModuleWins(t *testing.T) {
	c, err := Parse("x", []byte("[global]\nPATH=/bin\nfstype=ext3\ndebug=false\n[mkfs]\nfstype=xfs\nextra=1\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"PATH=/bin", "debug=false", "extra=1", "fstype=xfs"}
	if got := c.Env("mkfs"); !slices.Equal(got, want) {
		t.Errorf("Env(mkfs) = %v, want %v", got, want)
	}
	if got := c.Env("umount"); !slices.Equal(got, []string{"PATH=/bin", "debug=false", "fstype=ext3"}) {
		t.Errorf("a module without a section gets the global options: %v", got)
	}
}

func TestConfigPathsOrder(t *testing.T) {
	got := ConfigPaths("/home/u", "/w")
	want := []string{"/etc/rootstrap/rootstrap.conf", "/home/u/.rootstrap/rootstrap.conf", "/w/rootstrap.conf"}
	if !slices.Equal(got, want) {
		t.Errorf("%v, want %v", got, want)
	}
}
