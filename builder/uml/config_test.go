package uml

import (
	"github.com/packer-uml/packer-plugin-uml/modules"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/packer-plugin-sdk/common"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"
	"github.com/hashicorp/packer-plugin-sdk/template/config"
)

// minimal is the smallest valid configuration: everything else has a default.
func minimal() map[string]interface{} {
	return map[string]interface{}{common.BuildNameConfigKey: "foo", "debian": map[string]interface{}{"dist": "bookworm"}}
}

func prepare(t *testing.T, changes map[string]interface{}) (*Config, error) {
	t.Helper()
	raw := minimal()
	for k, v := range changes {
		if v == nil {
			delete(raw, k)
		} else {
			raw[k] = v
		}
	}
	var c Config
	warnings, err := c.Prepare(raw)
	if len(warnings) != 0 {
		t.Errorf("warnings: %q", warnings)
	}
	return &c, err
}

func TestPrepareDefaults(t *testing.T) {
	c, err := prepare(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.ImageSize != 1024 || c.FSType != "ext4" || c.OutputDir != "output-foo" || c.ImageName != "foo.img" ||
		c.Memory != 256 || c.BootTimeout != 2*time.Minute || c.ShutdownTimeout != 2*time.Minute {
		t.Errorf("defaults: %+v", c)
	}
	if c.Kernel != "" || len(c.ExtraDisks) != 0 || len(c.UMLArgs) != 0 {
		t.Errorf("kernel %q, extra disks %q, uml args %q: want none", c.Kernel, c.ExtraDisks, c.UMLArgs)
	}
	if !c.chroot() {
		t.Error("chroot() is false by default")
	}
	if c.PackerBuildName != "foo" {
		t.Errorf("build name %q", c.PackerBuildName)
	}
	// The named defaults are what the docs say.
	if defaultImageSize != 1024 || defaultFSType != "ext4" || defaultMemory != 256 || defaultBootTimeout != 2*time.Minute || defaultShutdownTimeout != 2*time.Minute {
		t.Error("a documented default changed")
	}
}

func TestPrepareKeepsSetValues(t *testing.T) {
	dir := t.TempDir()
	kernel := filepath.Join(dir, "linux.uml")
	disk := filepath.Join(dir, "disk.img")
	for _, f := range []string{kernel, disk} {
		if err := os.WriteFile(f, nil, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	c, err := prepare(t, map[string]interface{}{
		"image_size":       4096,
		"fstype":           "xfs",
		"output_directory": "out/dir",
		"image_name":       "root.img",
		"memory":           1024,
		"boot_timeout":     "30s",
		"shutdown_timeout": "5m",
		"kernel":           kernel,
		"extra_disks":      []string{disk},
		"uml_args":         []string{"loglevel=7", "quiet"},
		"chroot":           false,
	})
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		ImageSize: 4096, FSType: "xfs", OutputDir: "out/dir", ImageName: "root.img", Format: "raw", Memory: 1024,
		BootTimeout: 30 * time.Second, ShutdownTimeout: 5 * time.Minute, Kernel: kernel,
		ExtraDisks: []string{disk}, UMLArgs: []string{"loglevel=7", "quiet"},
	}
	got := *c
	got.PackerConfig, got.ctx, got.Chroot = common.PackerConfig{}, want.ctx, config.TriUnset
	// The module settings have tests of their own (config_modules_test.go).
	got.Modules, got.PostModules, got.ModulePaths, got.Global, got.Debian, got.ModuleEnv = nil, nil, nil, nil, modules.DebianOptions{}, nil
	got.env, got.moduleDirs, got.CacheDir = modules.Environment{}, nil, ""
	if !reflect.DeepEqual(got, want) {
		t.Errorf("config\n%+v\nwant\n%+v", got, want)
	}
	if c.chroot() {
		t.Error("chroot = false not respected")
	}
}

func TestPrepareChroot(t *testing.T) {
	for _, tc := range []struct {
		value interface{}
		want  bool
	}{
		{nil, true}, {true, true}, {false, false}, {"true", true}, {"false", false}, {"", true},
	} {
		c, err := prepare(t, map[string]interface{}{"chroot": tc.value})
		if err != nil {
			t.Errorf("chroot = %#v: %v", tc.value, err)
			continue
		}
		if c.chroot() != tc.want {
			t.Errorf("chroot = %#v: chroot() %v, want %v", tc.value, c.chroot(), tc.want)
		}
	}
}

func TestPrepareValid(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for name, changes := range map[string]map[string]interface{}{
		"ext2 tiny":             {"fstype": "ext2", "image_size": 1},
		"ext3 at minimum":       {"fstype": "ext3", "image_size": 2},
		"ext4 at minimum":       {"fstype": "ext4", "image_size": 2},
		"xfs at minimum":        {"fstype": "xfs", "image_size": 300},
		"btrfs at minimum":      {"fstype": "btrfs", "image_size": 114},
		"memory at minimum":     {"memory": 64},
		"memory as string":      {"memory": "512"},
		"kernel by name":        {"kernel": "linux.uml"},
		"kernel by path":        {"kernel": file},
		"zero timeouts default": {"boot_timeout": "0s", "shutdown_timeout": 0},
		"extra disk":            {"extra_disks": []string{file, file}},
		"uml args":              {"uml_args": []string{"loglevel=7", "con=null", "a=b=c"}},
		"empty uml args":        {"uml_args": []string{}},
		"image name with dot":   {"image_name": ".hidden.img"},
		"output dir nested":     {"output_directory": "a/b/../c"},
		"output dir absolute":   {"output_directory": filepath.Join(dir, "out")},
		"existing dir, -force":  {"output_directory": dir, "packer_force": true},
		"unused packer key":     {"packer_debug": true},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := prepare(t, changes); err != nil {
				t.Errorf("Prepare(%v): %v", changes, err)
			}
		})
	}
}

func TestPrepareInvalid(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	colon := filepath.Join(dir, "a:b.img")
	if err := os.WriteFile(colon, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		changes map[string]interface{}
		field   string
	}{
		"unknown fstype":         {map[string]interface{}{"fstype": "ntfs"}, "fstype"},
		"fstype case":            {map[string]interface{}{"fstype": "EXT4"}, "fstype"},
		"image too small ext4":   {map[string]interface{}{"image_size": 1}, "image_size"},
		"image too small xfs":    {map[string]interface{}{"fstype": "xfs", "image_size": 299}, "image_size"},
		"image too small btrfs":  {map[string]interface{}{"fstype": "btrfs", "image_size": 100}, "image_size"},
		"negative image size":    {map[string]interface{}{"image_size": -5}, "image_size"},
		"image size not number":  {map[string]interface{}{"image_size": "abc"}, "image_size"},
		"image size a list":      {map[string]interface{}{"image_size": []string{"1"}}, "image_size"},
		"memory too small":       {map[string]interface{}{"memory": 63}, "memory"},
		"negative memory":        {map[string]interface{}{"memory": -1}, "memory"},
		"memory not number":      {map[string]interface{}{"memory": "lots"}, "memory"},
		"negative boot timeout":  {map[string]interface{}{"boot_timeout": "-1s"}, "boot_timeout"},
		"bad boot timeout":       {map[string]interface{}{"boot_timeout": "soon"}, "boot_timeout"},
		"negative shutdown":      {map[string]interface{}{"shutdown_timeout": "-1m"}, "shutdown_timeout"},
		"image name with dir":    {map[string]interface{}{"image_name": "sub/foo.img"}, "image_name"},
		"image name absolute":    {map[string]interface{}{"image_name": "/tmp/foo.img"}, "image_name"},
		"image name dot":         {map[string]interface{}{"image_name": "."}, "image_name"},
		"image name dotdot":      {map[string]interface{}{"image_name": ".."}, "image_name"},
		"image name space":       {map[string]interface{}{"image_name": "my image.img"}, "image_name"},
		"image name comma":       {map[string]interface{}{"image_name": "a,b.img"}, "image_name"},
		"image name colon":       {map[string]interface{}{"image_name": "a:b.img"}, "image_name"},
		"image name quote":       {map[string]interface{}{"image_name": `a"b.img`}, "image_name"},
		"output dir space":       {map[string]interface{}{"output_directory": "my output"}, "output_directory"},
		"output dir colon":       {map[string]interface{}{"output_directory": "c:/out"}, "output_directory"},
		"build name with space":  {map[string]interface{}{common.BuildNameConfigKey: "my build"}, "output_directory"},
		"kernel missing":         {map[string]interface{}{"kernel": filepath.Join(dir, "nope", "linux")}, "kernel"},
		"kernel relative":        {map[string]interface{}{"kernel": "./no-such-linux"}, "kernel"},
		"extra disk missing":     {map[string]interface{}{"extra_disks": []string{filepath.Join(dir, "missing.img")}}, "extra_disks[0]"},
		"extra disk is dir":      {map[string]interface{}{"extra_disks": []string{dir}}, "extra_disks[0]"},
		"second extra disk":      {map[string]interface{}{"extra_disks": []string{file, filepath.Join(dir, "missing.img")}}, "extra_disks[1]"},
		"extra disk colon":       {map[string]interface{}{"extra_disks": []string{colon}}, "extra_disks[0]"},
		"uml arg with space":     {map[string]interface{}{"uml_args": []string{"a b"}}, "uml_args[0]"},
		"uml arg with tab":       {map[string]interface{}{"uml_args": []string{"ok", "a\tb"}}, "uml_args[1]"},
		"uml arg with newline":   {map[string]interface{}{"uml_args": []string{"a\nb"}}, "uml_args[0]"},
		"chroot not a bool":      {map[string]interface{}{"chroot": "maybe"}, "chroot"},
		"unknown key":            {map[string]interface{}{"image_sise": 10}, "image_sise"},
		"extra disks not a list": {map[string]interface{}{"extra_disks": map[string]interface{}{"a": 1}}, "extra_disks"},
	} {
		t.Run(name, func(t *testing.T) {
			var err error
			func() {
				defer func() {
					if r := recover(); r != nil {
						t.Fatalf("Prepare panicked: %v", r)
					}
				}()
				_, err = prepare(t, tc.changes)
			}()
			if err == nil {
				t.Fatalf("Prepare(%v) accepted", tc.changes)
			}
			if !strings.Contains(err.Error(), tc.field) {
				t.Errorf("error does not name %s:\n%v", tc.field, err)
			}
		})
	}
}

func TestPrepareReportsAllErrors(t *testing.T) {
	_, err := prepare(t, map[string]interface{}{
		"fstype":       "ntfs",
		"memory":       10,
		"boot_timeout": "-5s",
		"image_name":   "a/b",
		"extra_disks":  []string{"/nonexistent/disk.img"},
		"uml_args":     []string{"x y"},
		"kernel":       "/nonexistent/linux",
	})
	if err == nil {
		t.Fatal("accepted")
	}
	merr, ok := err.(*packersdk.MultiError)
	if !ok {
		t.Fatalf("error is a %T, want *packersdk.MultiError", err)
	}
	var fields []string
	for _, e := range merr.Errors {
		fields = append(fields, strings.Fields(e.Error())[0])
	}
	sort.Strings(fields)
	want := []string{"boot_timeout", "extra_disks[0]", "fstype", "image_name", "kernel", "memory", "uml_args[0]"}
	if !reflect.DeepEqual(fields, want) {
		t.Errorf("errors start with %q, want one each for %q:\n%v", fields, want, err)
	}
}

// The negative size is reported as such, whatever the filesystem says about its minimum.
func TestPrepareNegativeImageSize(t *testing.T) {
	_, err := prepare(t, map[string]interface{}{"image_size": -1})
	if err == nil || !strings.Contains(err.Error(), "positive") {
		t.Errorf("negative image_size: %v", err)
	}
}

func TestPrepareSupportedFSTypes(t *testing.T) {
	got := supportedFSTypes()
	want := []string{"btrfs", "ext2", "ext3", "ext4", "xfs"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("supportedFSTypes() = %q, want %q", got, want)
	}
	for _, fs := range want {
		if _, ok := minImageSize[fs]; !ok {
			t.Errorf("no minimum image size for %s", fs)
		}
	}
	_, err := prepare(t, map[string]interface{}{"fstype": "zfs"})
	if err == nil || !strings.Contains(err.Error(), strings.Join(want, ", ")) {
		t.Errorf("error does not list the supported filesystems: %v", err)
	}
}

func TestBuilderPrepare(t *testing.T) {
	var b Builder
	vars, warnings, err := b.Prepare(minimal())
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) != 0 {
		t.Errorf("warnings %q", warnings)
	}
	if want := []string{"ImagePath", "FSType", "KernelVersion"}; !reflect.DeepEqual(vars, want) {
		t.Errorf("generated variables %q, want %q", vars, want)
	}
	if _, _, err := b.Prepare(map[string]interface{}{common.BuildNameConfigKey: "foo", "memory": 1}); err == nil {
		t.Error("Builder.Prepare accepted memory = 1")
	}
	// Every mapstructure key is in the HCL2 spec.
	spec := b.ConfigSpec()
	for _, key := range []string{"kernel", "image_size", "fstype", "output_directory", "image_name", "memory",
		"extra_disks", "uml_args", "chroot", "boot_timeout", "shutdown_timeout", "format", "disk_compression"} {
		if _, ok := spec[key]; !ok {
			t.Errorf("HCL2 spec lacks %q", key)
		}
	}
}

// TestPrepareRefusesExistingOutputDir: without -force an existing output directory is an error at
// validate time that names the field and the fix.
func TestPrepareRefusesExistingOutputDir(t *testing.T) {
	_, err := prepare(t, map[string]interface{}{"output_directory": t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "output_directory") || !strings.Contains(err.Error(), "-force") {
		t.Fatalf("err %v, want one naming output_directory and -force", err)
	}
}

// TestSensitiveVariablesAreFiltered: Packer's sensitive variables become secrets of the log filter.
func TestSensitiveVariablesAreFiltered(t *testing.T) {
	_, err := prepare(t, map[string]interface{}{
		"packer_user_variables":      map[string]string{"token": "s3cr3t-value"},
		"packer_sensitive_variables": []string{"token"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := packersdk.LogSecretFilter.FilterString("TOKEN='s3cr3t-value' ./script"); strings.Contains(got, "s3cr3t-value") {
		t.Errorf("the sensitive value is not filtered: %q", got)
	}
}
