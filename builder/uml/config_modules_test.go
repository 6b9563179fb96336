package uml

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// inDir runs the test in a directory of its own (module search and rootstrap.conf are relative).
func inDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	t.Chdir(dir)
	return dir
}

func TestModulesDefaultToRootstrapOrder(t *testing.T) {
	inDir(t)
	c, err := prepare(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.Modules, []string{"network", "mkfs", "mount", "debian", "uml"}) || !slices.Equal(c.PostModules, []string{"umount"}) {
		t.Errorf("modules %v, post_modules %v", c.Modules, c.PostModules)
	}
	env := c.env.For("debian", nil, nil)
	for _, want := range []string{"PATH=" + defaultPATH, "dist=bookworm", "fstype=ext4", "initialsize=1024", "modules=network mkfs mount debian uml umount"} {
		if !slices.Contains(env, want) {
			t.Errorf("debian's environment lacks %q: %v", want, env)
		}
	}
	if c.proxyAddr() == "" {
		t.Error("the network module is listed: the guest should get the agent's proxy")
	}
	c, err = prepare(t, map[string]interface{}{"modules": []string{"mkfs", "mount"}})
	if err != nil {
		t.Fatal(err)
	}
	if c.proxyAddr() != "" || c.networkArgs() != nil {
		t.Error("without the network module the guest gets no network")
	}
}

func TestRootstrapConfigGivesDefaults(t *testing.T) {
	dir := inDir(t)
	conf := `# rootstrap.conf as the old tool had it
[global]
fstype=ext3
initialsize=300
freespace=20
modules=mkfs mount debian hello umount
PATH=/bin:/usr/bin
umlargs=loglevel=7
http_proxy=http://squid:3128
debug=true

[debian]
dist=sid
exclude=pcmcia-cs
  setserial
purge=base-config
apt_preferences=Package: *
  Pin: release a=unstable
  Pin-Priority: 900
  .
  Package: hello
  Pin: version 2.*
  Pin-Priority: 1001
extra=kept

[hello]
greeting=hi there
`
	if err := os.WriteFile("rootstrap.conf", []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll("modules", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile("modules/hello", []byte("#!/bin/sh\nenv\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	c, err := prepare(t, map[string]interface{}{
		"rootstrap_config": "rootstrap.conf",
		"image_size":       400, // the template wins
		"uml_args":         []string{"mem=300M"},
		"debian":           map[string]interface{}{"include": []string{"less"}},
		"module_env":       []map[string]interface{}{{"name": "hello", "env": map[string]string{"greeting": "hello"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if c.FSType != "ext3" || c.ImageSize != 400 || c.FreeSpace != 20 || !c.Debug {
		t.Errorf("fstype %q image_size %d free_space %d debug %v", c.FSType, c.ImageSize, c.FreeSpace, c.Debug)
	}
	if !slices.Equal(c.Modules, []string{"mkfs", "mount", "debian", "hello"}) || !slices.Equal(c.PostModules, []string{"umount"}) {
		t.Errorf("modules %v post %v: a trailing umount becomes post_modules", c.Modules, c.PostModules)
	}
	if !slices.Equal(c.UMLArgs, []string{"loglevel=7", "mem=300M"}) {
		t.Errorf("uml_args %v: the file's umlargs first, the template's after", c.UMLArgs)
	}
	if c.Debian.Dist != "sid" || !slices.Equal(c.Debian.Exclude, []string{"pcmcia-cs", "setserial"}) || !slices.Equal(c.Debian.Include, []string{"less"}) {
		t.Errorf("debian %+v", c.Debian)
	}
	env := c.env.For("debian", nil, nil)
	for _, want := range []string{"PATH=/bin:/usr/bin", "http_proxy=http://squid:3128", "dist=sid", "exclude=pcmcia-cs setserial", "extra=kept", "include=less", "fstype=ext3",
		"apt_preferences=Package: *\nPin: release a=unstable\nPin-Priority: 900\n.\nPackage: hello\nPin: version 2.*\nPin-Priority: 1001"} {
		if !slices.Contains(env, want) {
			t.Errorf("debian's environment lacks %q:\n%s", want, strings.Join(env, "\n"))
		}
	}
	if env := c.env.For("hello", nil, nil); !slices.Contains(env, "greeting=hello") {
		t.Errorf("module_env should override the file's section: %v", env)
	}
	if m := filepath.Join(dir, "modules"); !slices.Contains(c.moduleDirs, m) {
		t.Errorf("module dirs %v lack ./modules", c.moduleDirs)
	}
}

func TestModuleConfigErrorsNameTheField(t *testing.T) {
	inDir(t)
	os.WriteFile("bad.conf", []byte("fstype=ext2\n[global]\n"), 0o644)
	os.WriteFile("badsize.conf", []byte("[global]\ninitialsize=big\n"), 0o644)
	for name, tc := range map[string]struct {
		changes map[string]interface{}
		want    string
	}{
		"unknown module":      {map[string]interface{}{"modules": []string{"mkfs", "nosuch"}}, "modules[1]: module not found: \"nosuch\""},
		"unknown post":        {map[string]interface{}{"post_modules": []string{"umount", "x"}}, "post_modules[1]"},
		"bad module name":     {map[string]interface{}{"modules": []string{"../x"}}, "modules[0]: module name"},
		"unknown transport":   {map[string]interface{}{"network": map[string]interface{}{"transport": "smoke"}}, "network.transport \"smoke\""},
		"bad guest ip":        {map[string]interface{}{"network": map[string]interface{}{"transport": "slirp", "uml": "x"}}, "network.uml \"x\""},
		"missing dist":        {map[string]interface{}{"debian": map[string]interface{}{"dist": ""}}, "debian.dist is required"},
		"kernel modules":      {map[string]interface{}{"uml": map[string]interface{}{"kernel_modules": "all"}}, "uml.kernel_modules"},
		"free space xfs":      {map[string]interface{}{"fstype": "xfs", "image_size": 300, "free_space": 10}, "free_space works with ext2"},
		"negative free":       {map[string]interface{}{"free_space": -1}, "free_space must be"},
		"missing conf":        {map[string]interface{}{"rootstrap_config": "nope.conf"}, "rootstrap_config: open nope.conf"},
		"option before sec":   {map[string]interface{}{"rootstrap_config": "bad.conf"}, "rootstrap_config: bad.conf: option \"fstype\" comes before"},
		"bad initialsize":     {map[string]interface{}{"rootstrap_config": "badsize.conf"}, "rootstrap_config: [global] initialsize"},
		"missing module path": {map[string]interface{}{"module_paths": []string{"nowhere"}}, "module_paths[0] \"nowhere\" is not a directory"},
		"module_env no name":  {map[string]interface{}{"module_env": []map[string]interface{}{{"env": map[string]string{"a": "b"}}}}, "module_env[0]: name is required"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := prepare(t, tc.changes)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error with %q", err, tc.want)
			}
		})
	}
}
