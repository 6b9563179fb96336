package uml

import (
	"fmt"
	"os/exec"
	"strings"
)

// defaultFormat is the artifact format when `format` is not set: the image file itself.
const defaultFormat = "raw"

// imageFormat is one value of `format`.
type imageFormat struct {
	name string
	// ext is the artifact's file extension, without the dot.
	ext string
	// qemuImg: the raw image is converted with `qemu-img convert -O <name>` on the host.
	qemuImg bool
}

// imageFormats are the supported formats, in the order messages list them.
var imageFormats = []imageFormat{
	{name: "raw", ext: "img"},
	{name: "qcow2", ext: "qcow2", qemuImg: true},
	{name: "vmdk", ext: "vmdk", qemuImg: true},
	{name: "tar", ext: "tar"},
}

// lookupFormat returns the format of that name.
func lookupFormat(name string) (imageFormat, bool) {
	for _, f := range imageFormats {
		if f.name == name {
			return f, true
		}
	}
	return imageFormat{}, false
}

func supportedFormats() string {
	names := make([]string, len(imageFormats))
	for i, f := range imageFormats {
		names[i] = f.name
	}
	return strings.Join(names, ", ")
}

// validateFormat checks format and disk_compression.
func (c *Config) validateFormat() []error {
	var errs []error
	if _, ok := lookupFormat(c.Format); !ok {
		errs = append(errs, fmt.Errorf("format %q is not supported: use one of %s", c.Format, supportedFormats()))
	}
	if c.DiskCompression && c.Format != "qcow2" {
		errs = append(errs, fmt.Errorf("disk_compression works with format \"qcow2\" only, not %q: remove it or use format = \"qcow2\"", c.Format))
	}
	return errs
}

// formatWarnings are settings that the format makes pointless.
func (c *Config) formatWarnings() []string {
	if c.Format == "tar" && c.FreeSpace > 0 {
		return []string{fmt.Sprintf("free_space (%d) has no effect with format \"tar\": the archive holds the filesystem's files, not its free space; the image is not resized", c.FreeSpace)}
	}
	return nil
}

// defaultImageName is `<build name>.<the format's extension>`.
func (c *Config) defaultImageName() string {
	ext := "img"
	if f, ok := lookupFormat(c.Format); ok {
		ext = f.ext
	}
	return c.PackerBuildName + "." + ext
}

// rawImageFile is the raw image the guest builds: the artifact itself for format raw, else a file
// beside it that the export step removes once the artifact is complete.
func (c *Config) rawImageFile() string {
	if c.Format == defaultFormat || c.Format == "" {
		return c.imageFile()
	}
	return c.imageFile() + ".raw"
}

// resizeMiB is free_space where it changes the artifact: a tar has no free space to give.
func (c *Config) resizeMiB() int {
	if c.Format == "tar" {
		return 0
	}
	return c.FreeSpace
}

// formatToolProblems reports the host programs the format needs and does not find.
func formatToolProblems(format string) []string {
	f, ok := lookupFormat(format)
	switch {
	case !ok:
		return nil
	case f.qemuImg:
		if _, err := exec.LookPath("qemu-img"); err != nil {
			return []string{fmt.Sprintf("format %q needs qemu-img on the host, which is not on PATH: install Debian's qemu-utils (apt-get install qemu-utils), or use format = \"raw\"", format)}
		}
	case f.name == "tar":
		// The guest runs the host's programs: GNU tar, and findmnt to see whether the image is mounted.
		var problems []string
		for _, tool := range [][2]string{{"tar", "tar"}, {"findmnt", "util-linux"}} {
			if _, err := lookSbin(tool[0]); err != nil {
				problems = append(problems, fmt.Sprintf("%s, which format \"tar\" runs in the guest, is not installed: install %s (apt-get install %s), or use format = \"raw\"", tool[0], tool[1], tool[1]))
			}
		}
		return problems
	}
	return nil
}
