package kernel

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestHelpParams(t *testing.T) {
	help := "User Mode Linux v6.1.176\n\tavailable at http://user-mode-linux.sourceforge.net/\n\n" +
		"--showconfig\n    Prints the config file.\n\nmem=<Amount of desired ram>\n    This controls...\n" +
		"vec[0-9]+:<option>=<value>,<option>=<value>\n\t Configure a vector io network device.\n\n" +
		"hostfs=<root dir>,<flags>,...\n    This is used to set hostfs parameters.\n" +
		"seccomp=on\n    Use seccomp.\n"
	p := helpParams(help)
	for _, want := range []string{"mem", "vec", "hostfs", "seccomp", "--showconfig"} {
		if !p[want] {
			t.Errorf("parameter %q not found in %v", want, p)
		}
	}
	// Continuation lines (indented) are not parameters.
	if p["This"] || p["Configure"] {
		t.Errorf("indented help text taken for a parameter: %v", p)
	}
}

func TestParseConfig(t *testing.T) {
	c := parseConfig("# comment\nCONFIG_HOSTFS=y\nCONFIG_SSL_CHAN=\"pty\"\n# CONFIG_FOO is not set\n")
	if c["CONFIG_HOSTFS"] != "y" || c["CONFIG_SSL_CHAN"] != "pty" {
		t.Errorf("parsed %v", c)
	}
	if _, ok := c["CONFIG_FOO"]; ok {
		t.Errorf("unset option parsed: %v", c)
	}
}

func TestFindExplicitMissing(t *testing.T) {
	if _, err := Find("/nonexistent/linux.uml"); err == nil {
		t.Fatal("a missing explicit kernel was accepted")
	}
}

// TestInspectDebianKernel reads the real kernel that CI installs (Debian's user-mode-linux).
func TestInspectDebianKernel(t *testing.T) {
	path, err := FindOnPath()
	if err != nil {
		t.Fatalf("%v (install Debian's user-mode-linux package)", err)
	}
	k, err := Inspect(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	if !k.Hostfs {
		t.Errorf("%s: hostfs not detected", path)
	}
	if !k.Vector || !k.LegacyNet {
		t.Errorf("%s: vector network driver %v, legacy network drivers %v; want both", path, k.Vector, k.LegacyNet)
	}
	if k.Version == "" || k.Config["CONFIG_HOSTFS"] != "y" {
		t.Errorf("version %q, CONFIG_HOSTFS %q", k.Version, k.Config["CONFIG_HOSTFS"])
	}
	// Debian 12's 6.1 has no seccomp mode; a kernel that has one must say so in --help.
	if k.Seccomp && k.Version < "6.16" {
		t.Errorf("seccomp mode claimed for %s", k.Version)
	}
	// Debian's 6.1 is built without CONFIG_SMP.
	if k.MaxCPUs != 1 {
		t.Errorf("%s: MaxCPUs %d, want 1", path, k.MaxCPUs)
	}
}

func TestInspectRejectsNonKernel(t *testing.T) {
	if _, err := Inspect(context.Background(), "/bin/false"); err == nil {
		t.Fatal("/bin/false taken for a UML kernel")
	}
}

// debianKernel is the real kernel CI installs, for tests that need a kernel binary to put somewhere.
func debianKernel(t *testing.T) string {
	t.Helper()
	p, err := FindOnPath()
	if err != nil {
		t.Fatalf("%v (install Debian's user-mode-linux package)", err)
	}
	return p
}

// install copies the kernel at src to dst (creating its directory) with mode perm.
func install(t *testing.T, src, dst string, perm os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestFindInstalled puts a real kernel binary where scripts/build-uml-kernel installs one, under a
// temporary XDG_DATA_HOME or HOME, and checks the order: the explicit kernel, the installed one,
// then PATH.
func TestFindInstalled(t *testing.T) {
	debian := debianKernel(t)
	home, data := t.TempDir(), t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("XDG_DATA_HOME", data)

	// Nothing installed: PATH.
	if p, err := Find(""); err != nil || p != debian {
		t.Fatalf("nothing installed: Find = %q, %v; want %s from PATH", p, err, debian)
	}

	// Installed under XDG_DATA_HOME: it comes first, and it is a kernel Inspect reads.
	want := filepath.Join(data, "packer-plugin-uml", "kernel", "linux")
	if p, err := InstalledPath(); err != nil || p != want {
		t.Fatalf("InstalledPath = %q, %v; want %s", p, err, want)
	}
	install(t, debian, want, 0o755)
	p, err := Find("")
	if err != nil || p != want {
		t.Fatalf("installed under XDG_DATA_HOME: Find = %q, %v; want %s", p, err, want)
	}
	k, err := Inspect(context.Background(), p)
	if err != nil || !k.Hostfs || k.Version == "" {
		t.Fatalf("Inspect(%s) = %+v, %v", p, k, err)
	}
	// An explicit kernel still wins.
	if p, err := Find(filepath.Base(debian)); err != nil || p != debian {
		t.Errorf("explicit %s: Find = %q, %v", filepath.Base(debian), p, err)
	}

	// Without XDG_DATA_HOME, or with a relative one (which the XDG specification says to
	// ignore): ~/.local/share.
	for _, xdg := range []string{"", "relative/share"} {
		t.Setenv("XDG_DATA_HOME", xdg)
		if p, err := Find(""); err != nil || p != debian {
			t.Errorf("XDG_DATA_HOME=%q, nothing in HOME: Find = %q, %v; want %s", xdg, p, err, debian)
		}
	}
	inHome := filepath.Join(home, ".local", "share", "packer-plugin-uml", "kernel", "linux")
	install(t, debian, inHome, 0o755)
	for _, xdg := range []string{"", "relative/share"} {
		t.Setenv("XDG_DATA_HOME", xdg)
		if p, err := Find(""); err != nil || p != inHome {
			t.Errorf("XDG_DATA_HOME=%q: Find = %q, %v; want %s", xdg, p, err, inHome)
		}
	}

	// A file there that cannot run is an error that names it, not a silent fall back to PATH.
	if err := os.Chmod(inHome, 0o644); err != nil {
		t.Fatal(err)
	}
	if p, err := Find(""); err == nil || !strings.Contains(err.Error(), inHome) {
		t.Errorf("non-executable installed kernel: Find = %q, %v; want an error naming it", p, err)
	}
}

func TestFindNothing(t *testing.T) {
	t.Setenv("HOME", t.TempDir())
	t.Setenv("XDG_DATA_HOME", "")
	t.Setenv("PATH", t.TempDir())
	_, err := Find("")
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "build-uml-kernel") {
		t.Errorf("Find with nothing anywhere: %v", err)
	}
}

// TestInspectInstalledKernel reads the kernel scripts/build-uml-kernel installed for this user,
// when there is one (CI does not build it: it takes 12 minutes or more).
func TestInspectInstalledKernel(t *testing.T) {
	path, err := InstalledPath()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		t.Skipf("no kernel at %s (scripts/build-uml-kernel installs one)", path)
	}
	k, err := Inspect(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: Linux %s, %s", k.Path, k.Version, k.Mode())
	if !k.Hostfs || !k.Vector || !k.Seccomp {
		t.Errorf("%s: hostfs %v, vector %v, seccomp %v; the script's kernel has all three", path, k.Hostfs, k.Vector, k.Seccomp)
	}
	if k.ModulesDir != "" {
		t.Errorf("%s: modules directory %s; the script's kernel has every option built in", path, k.ModulesDir)
	}
	if k.Config["CONFIG_SMP"] == "y" && k.MaxCPUs < 2 {
		t.Errorf("%s: built with CONFIG_SMP (NR_CPUS %s), MaxCPUs %d", path, k.Config["CONFIG_NR_CPUS"], k.MaxCPUs)
	}
}
