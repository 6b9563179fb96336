package kernel

import (
	"context"
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
	path, err := Find("")
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
	if !k.Vector {
		t.Errorf("%s: vector network driver not detected", path)
	}
	if k.Version == "" || k.Config["CONFIG_HOSTFS"] != "y" {
		t.Errorf("version %q, CONFIG_HOSTFS %q", k.Version, k.Config["CONFIG_HOSTFS"])
	}
	// Debian 12's 6.1 has no seccomp mode; a kernel that has one must say so in --help.
	if k.Seccomp && k.Version < "6.16" {
		t.Errorf("seccomp mode claimed for %s", k.Version)
	}
}

func TestInspectRejectsNonKernel(t *testing.T) {
	if _, err := Inspect(context.Background(), "/bin/false"); err == nil {
		t.Fatal("/bin/false taken for a UML kernel")
	}
}
