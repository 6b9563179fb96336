package uml

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/packer-plugin-sdk/common"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"
	"github.com/hashicorp/packer-plugin-sdk/template/config"

	"github.com/packer-uml/packer-plugin-uml/uml/pkgcache"
)

// Defaults, named so that docs and code say the same.
const (
	defaultImageSize       = 1024
	defaultFSType          = "ext4"
	defaultMemory          = 256
	defaultBootTimeout     = 2 * time.Minute
	defaultShutdownTimeout = 2 * time.Minute
	// minMemory: below this the Debian UML kernel does not boot reliably.
	minMemory = 64
)

// mkfsTools maps each supported filesystem to the program that makes it and the Debian package
// that has it.
var mkfsTools = map[string]struct{ program, pkg string }{
	"ext2":  {"mkfs.ext2", "e2fsprogs"},
	"ext3":  {"mkfs.ext3", "e2fsprogs"},
	"ext4":  {"mkfs.ext4", "e2fsprogs"},
	"xfs":   {"mkfs.xfs", "xfsprogs"},
	"btrfs": {"mkfs.btrfs", "btrfs-progs"},
}

// minImageSize is the smallest image each filesystem's mkfs accepts, in MiB.
var minImageSize = map[string]int{"ext2": 1, "ext3": 2, "ext4": 2, "xfs": 300, "btrfs": 114}

// Prepare decodes the raw configuration, sets defaults and reports every problem at once.
func (c *Config) Prepare(raws ...interface{}) ([]string, error) {
	err := config.Decode(c, &config.DecodeOpts{
		PluginType:         BuilderID,
		Interpolate:        true,
		InterpolateContext: &c.ctx,
	}, raws...)
	if err != nil {
		return nil, err
	}
	registerSecrets(&c.PackerConfig)
	var errs *packersdk.MultiError
	problems := c.applyRootstrapConfig()
	c.setDefaults()
	problems = append(problems, c.validate()...)
	problems = append(problems, c.validateFormat()...)
	problems = append(problems, c.prepareModules()...)
	for _, err := range problems {
		errs = packersdk.MultiErrorAppend(errs, err)
	}
	if errs != nil && len(errs.Errors) > 0 {
		return nil, errs
	}
	return c.formatWarnings(), nil
}

func (c *Config) setDefaults() {
	if c.ImageSize == 0 {
		c.ImageSize = defaultImageSize
	}
	if c.FSType == "" {
		c.FSType = defaultFSType
	}
	if c.OutputDir == "" {
		c.OutputDir = "output-" + c.PackerBuildName
	}
	if c.Format == "" {
		c.Format = defaultFormat
	}
	if c.ImageName == "" {
		c.ImageName = c.defaultImageName()
	}
	if c.Memory == 0 {
		c.Memory = defaultMemory
	}
	if c.BootTimeout == 0 {
		c.BootTimeout = defaultBootTimeout
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = defaultShutdownTimeout
	}
	if c.CacheDir == "" && !c.Cache.False() {
		// No error if there is no cache directory: the build then runs without a cache.
		c.CacheDir, _ = pkgcache.DefaultDir()
	}
}

// validate checks what can be checked without booting; the host's tools are checked by the
// pre-flight step, so that `packer validate` works on a machine without UML.
func (c *Config) validate() []error {
	var errs []error
	if _, ok := mkfsTools[c.FSType]; !ok {
		errs = append(errs, fmt.Errorf("fstype %q is not supported: use one of %s", c.FSType, strings.Join(supportedFSTypes(), ", ")))
	} else if c.ImageSize < minImageSize[c.FSType] {
		errs = append(errs, fmt.Errorf("image_size %d is too small for %s: use at least %d (MiB)", c.ImageSize, c.FSType, minImageSize[c.FSType]))
	}
	if c.ImageSize < 0 {
		errs = append(errs, fmt.Errorf("image_size must be a positive number of MiB, not %d", c.ImageSize))
	}
	if c.Memory < minMemory {
		errs = append(errs, fmt.Errorf("memory %d is too small: use at least %d (MiB)", c.Memory, minMemory))
	}
	if c.CPUs < 0 {
		errs = append(errs, fmt.Errorf("cpus must be a positive number, not %d (leave it unset for the host's CPU count where the kernel allows it)", c.CPUs))
	}
	if c.BootTimeout < 0 {
		errs = append(errs, errors.New("boot_timeout must be positive"))
	}
	if c.ShutdownTimeout < 0 {
		errs = append(errs, errors.New("shutdown_timeout must be positive"))
	}
	if c.ImageName != filepath.Base(c.ImageName) || c.ImageName == "." || c.ImageName == ".." {
		errs = append(errs, fmt.Errorf("image_name %q must be a file name without directories (set output_directory for the directory)", c.ImageName))
	}
	if strings.ContainsAny(c.ImageName, " \t\n\",:") || strings.ContainsAny(c.OutputDir, " \t\n\",:") {
		errs = append(errs, fmt.Errorf("output_directory %q and image_name %q may not hold white space, quotes, ',' or ':', which UML's disk syntax cannot carry", c.OutputDir, c.ImageName))
	}
	if !c.PackerForce && c.imagePath == "" {
		if _, err := os.Stat(c.OutputDir); err == nil {
			errs = append(errs, fmt.Errorf("output_directory %q already exists: remove it, choose another, or run packer build -force to replace it", c.OutputDir))
		}
	}
	if c.Kernel != "" && strings.Contains(c.Kernel, "/") {
		if _, err := os.Stat(c.Kernel); err != nil {
			errs = append(errs, fmt.Errorf("kernel %q: %w: install Debian's user-mode-linux package, or point kernel at a UML kernel binary", c.Kernel, errors.Unwrap(err)))
		}
	}
	for i, d := range c.ExtraDisks {
		st, err := os.Stat(d)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("extra_disks[%d] %q: %w: create the image file first", i, d, errors.Unwrap(err)))
		case st.IsDir():
			errs = append(errs, fmt.Errorf("extra_disks[%d] %q is a directory: give an image file", i, d))
		}
		if strings.ContainsAny(d, " \t\n\",:") {
			errs = append(errs, fmt.Errorf("extra_disks[%d] %q may not hold white space, quotes, ',' or ':'", i, d))
		}
	}
	for i, a := range c.UMLArgs {
		if strings.ContainsAny(a, " \t\n") {
			errs = append(errs, fmt.Errorf("uml_args[%d] %q holds white space: give one kernel parameter per element", i, a))
		}
	}
	return errs
}

func supportedFSTypes() []string {
	names := make([]string, 0, len(mkfsTools))
	for n := range mkfsTools {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// chroot reports whether provisioners run inside the image (the default).
func (c *Config) chroot() bool { return !c.Chroot.False() }

// registerSecrets makes the values of Packer's sensitive variables secrets of this plugin's log
// filter, which the SDK applies to UI messages and which our log lines go through too.
func registerSecrets(pc *common.PackerConfig) {
	for _, name := range pc.PackerSensitiveVars {
		if v, ok := pc.PackerUserVars[name]; ok && v != "" {
			packersdk.LogSecretFilter.Set(v)
		}
	}
}
