package modules

import (
	"maps"
	"slices"
	"strings"
	"testing"
)

func TestOptionsEnvUsesRootstrapNames(t *testing.T) {
	no := false
	d := DebianOptions{Dist: "bookworm", Exclude: []string{"a", "b"}, ForceYes: &no, AptConf: "X \"1\";\nY \"2\";"}
	got := OptionsEnv(&d)
	want := map[string]string{"dist": "bookworm", "exclude": "a b", "force_yes": "false", "apt_conf": "X \"1\";\nY \"2\";"}
	if !maps.Equal(got, want) {
		t.Errorf("OptionsEnv = %v, want %v", got, want)
	}
}

func TestFillFromSection(t *testing.T) {
	d := DebianOptions{Dist: "trixie"} // set in HCL: the file does not override it
	rest, err := FillFromSection(&d, map[string]string{
		"dist": "sid", "mirror": "http://m/debian", "exclude": "a\nb  c", "force_yes": "no", "custom": "1",
	}, "debian")
	if err != nil {
		t.Fatal(err)
	}
	if d.Dist != "trixie" || d.Mirror != "http://m/debian" || !slices.Equal(d.Exclude, []string{"a", "b", "c"}) || d.ForceYes == nil || *d.ForceYes {
		t.Errorf("filled %+v", d)
	}
	if !maps.Equal(rest, map[string]string{"custom": "1"}) {
		t.Errorf("rest = %v, want only the untyped option", rest)
	}
	if _, err := FillFromSection(&UMLOptions{}, map[string]string{"install_modules": "maybe"}, "uml"); err == nil || !strings.Contains(err.Error(), "[uml] install_modules") {
		t.Errorf("bad boolean: %v", err)
	}
}

func TestNetworkValidate(t *testing.T) {
	for _, tc := range []struct {
		opts NetworkOptions
		want string // "" for valid
	}{
		{NetworkOptions{}, ""},
		{NetworkOptions{Transport: "agent"}, ""},
		{NetworkOptions{Transport: "carrier-pigeon"}, "network.transport \"carrier-pigeon\" is not known"},
		{NetworkOptions{Transport: "slirp", UML: "10.0.2.15", Netmask: "255.255.255.0", Gateway: "10.0.2.2"}, ""},
		{NetworkOptions{Transport: "slirp", UML: "dhcp"}, ""},
		{NetworkOptions{Transport: "slirp"}, "network.uml is required"},
		{NetworkOptions{Transport: "slirp", UML: "10.0.2.300", Netmask: "255.255.255.0"}, "network.uml \"10.0.2.300\" is not an IP address"},
		{NetworkOptions{Transport: "slirp", UML: "10.0.2.15"}, "network.netmask is required"},
		{NetworkOptions{Transport: "tuntap", UML: "dhcp"}, "network.host is required"},
		{NetworkOptions{Transport: "tuntap", UML: "dhcp", Host: "192.168.1"}, "network.host \"192.168.1\" is not an IP address"},
		{NetworkOptions{Transport: "vde", UML: "dhcp"}, "network.socket is required"},
		{NetworkOptions{Netmask: "/24"}, "network.netmask \"/24\""},
		{NetworkOptions{Nameserver: "dns.example"}, "network.nameserver \"dns.example\" is not an IP address"},
	} {
		errs := tc.opts.Validate("network.")
		switch {
		case tc.want == "" && len(errs) > 0:
			t.Errorf("%+v: unexpected %v", tc.opts, errs)
		case tc.want != "" && (len(errs) != 1 || !strings.HasPrefix(errs[0].Error(), tc.want)):
			t.Errorf("%+v: got %v, want one error starting %q", tc.opts, errs, tc.want)
		}
	}
}

func TestNetworkUMLArgsAsRootstrap(t *testing.T) {
	for _, tc := range []struct {
		opts NetworkOptions
		want []string
	}{
		{NetworkOptions{}, nil},
		{NetworkOptions{Transport: "slirp", Slirp: "slirp-fullbolt"}, []string{"eth0=slirp,,slirp-fullbolt"}},
		{NetworkOptions{Transport: "tuntap", Host: "192.168.30.198"}, []string{"eth0=tuntap,,,192.168.30.198"}},
		{NetworkOptions{Transport: "daemon"}, []string{"eth0=daemon"}},
		{NetworkOptions{Transport: "daemon", Socket: "/tmp/uml.ctl", Interface: "eth1"}, []string{"eth1=daemon,,unix,/tmp/uml.ctl"}},
		{NetworkOptions{Transport: "vde", Socket: "/run/vde.ctl"}, []string{"eth0=vde,/run/vde.ctl"}},
	} {
		if got := tc.opts.UMLArgs(); !slices.Equal(got, tc.want) {
			t.Errorf("%+v: UMLArgs = %v, want %v", tc.opts, got, tc.want)
		}
	}
}

func TestDebianAndUMLValidate(t *testing.T) {
	exists := func(p string) bool { return p == "/w/debconf.dat" }
	for _, tc := range []struct {
		opts DebianOptions
		want string
	}{
		{DebianOptions{Dist: "bookworm"}, ""},
		{DebianOptions{}, "debian.dist is required"},
		{DebianOptions{Dist: "bookworm", Mirror: "deb.debian.org/debian"}, "debian.mirror"},
		{DebianOptions{Dist: "bookworm", Debconf: "debconf.dat"}, ""},
		{DebianOptions{Dist: "bookworm", Debconf: "missing.dat"}, "debian.debconf file \"missing.dat\" does not exist"},
		{DebianOptions{Dist: "bookworm", Install: []string{"a b"}}, "debian.install: \"a b\" is not a package name"},
	} {
		errs := tc.opts.Validate("debian.", "/w", exists, true)
		switch {
		case tc.want == "" && len(errs) > 0:
			t.Errorf("%+v: unexpected %v", tc.opts, errs)
		case tc.want != "" && (len(errs) != 1 || !strings.HasPrefix(errs[0].Error(), tc.want)):
			t.Errorf("%+v: got %v, want one error starting %q", tc.opts, errs, tc.want)
		}
	}
	if errs := (&UMLOptions{KernelModules: "some"}).Validate("uml."); len(errs) != 1 || !strings.Contains(errs[0].Error(), "uml.kernel_modules") {
		t.Errorf("kernel_modules: %v", errs)
	}
	if errs := (&UMLOptions{KernelModulesDir: "rel/dir"}).Validate("uml."); len(errs) != 1 {
		t.Errorf("kernel_modules_dir: %v", errs)
	}
}

func TestEnvironmentLayers(t *testing.T) {
	e := Environment{Global: map[string]string{"PATH": "/bin", "dist": "sid", "TARGET": "/wrong"}}
	e.Set("debian", map[string]string{"dist": "bookworm"})
	got := e.For("debian", map[string]string{"extra": "1"}, map[string]string{"TARGET": "/tmp/target"})
	want := []string{"PATH=/bin", "TARGET=/tmp/target", "dist=bookworm", "extra=1"}
	if !slices.Equal(got, want) {
		t.Errorf("For = %v, want %v", got, want)
	}
	if got := e.For("other", nil, nil); !slices.Contains(got, "dist=sid") {
		t.Errorf("another module should see the global dist: %v", got)
	}
}

func TestInvocationRoundTrip(t *testing.T) {
	in := Invocation{Name: "printenv", Path: "/w/modules/printenv", Env: map[string]string{"A": "b c\n'd'"}}
	cmd, err := in.Command()
	if err != nil {
		t.Fatal(err)
	}
	out, ok, err := ParseInvocation(cmd)
	if !ok || err != nil || out.Name != in.Name || out.Path != in.Path || !maps.Equal(out.Env, in.Env) {
		t.Fatalf("round trip: %+v %v %v", out, ok, err)
	}
	if _, ok, _ := ParseInvocation("echo packer-uml-module"); ok {
		t.Error("an ordinary command was taken for an invocation")
	}
	if _, ok, err := ParseInvocation(InvocationCommand + " !!"); !ok || err == nil {
		t.Error("a corrupt invocation should be an error")
	}
}
