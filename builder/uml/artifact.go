package uml

import (
	"fmt"
	"os"
	"path/filepath"
)

// Artifact is the image file, or the file of another format made from it (format). Destroy removes
// only what this build wrote (that file and the console log, then the output directory if that
// leaves it empty), never other files a user keeps there.
type Artifact struct {
	// ImagePath is the artifact's file: the raw image, the qcow2 or vmdk image, or the tar archive.
	ImagePath string
	// Format is the builder's format: raw, qcow2, vmdk or tar.
	Format        string
	ConsoleLog    string
	FSType        string
	SizeMiB       int
	KernelPath    string
	KernelVersion string
	// StateData holds generated_data for post-processors; values stay msgpack-friendly.
	StateData map[string]interface{}
}

// BuilderId identifies the builder that made the artifact.
func (a *Artifact) BuilderId() string { return BuilderID }

// Files lists the artifact's file: the one file post-processors (checksum, compress, manifest) take.
func (a *Artifact) Files() []string { return []string{a.ImagePath} }

// Id is the artifact file's name.
func (a *Artifact) Id() string { return filepath.Base(a.ImagePath) }

func (a *Artifact) String() string {
	switch a.Format {
	case "", defaultFormat:
		return fmt.Sprintf("Root filesystem image: %s (%d MiB %s, built with UML kernel %s)", a.ImagePath, a.SizeMiB, a.FSType, a.KernelVersion)
	case "tar":
		return fmt.Sprintf("Root filesystem archive: %s (tar of a %d MiB %s image, built with UML kernel %s)", a.ImagePath, a.SizeMiB, a.FSType, a.KernelVersion)
	}
	return fmt.Sprintf("Root filesystem image: %s (%s, %d MiB %s, built with UML kernel %s)", a.ImagePath, a.Format, a.SizeMiB, a.FSType, a.KernelVersion)
}

// State returns builder-specific data by name.
func (a *Artifact) State(name string) interface{} {
	switch name {
	case "ImagePath":
		return a.ImagePath
	case "Format":
		return a.Format
	case "FSType":
		return a.FSType
	case "SizeMiB":
		return a.SizeMiB
	case "KernelVersion":
		return a.KernelVersion
	}
	return a.StateData[name]
}

// Destroy removes the artifact's file and the console log.
func (a *Artifact) Destroy() error {
	if err := os.Remove(a.ImagePath); err != nil && !os.IsNotExist(err) {
		return err
	}
	if a.ConsoleLog != "" {
		os.Remove(a.ConsoleLog)
	}
	os.Remove(filepath.Dir(a.ImagePath)) // only if empty
	return nil
}

func consoleLogPath(outputDir string) string { return filepath.Join(outputDir, "console.log") }

// imageFile is the image this build writes: in output_directory, or where the rootstrap command says.
func (c *Config) imageFile() string {
	if c.imagePath != "" {
		return c.imagePath
	}
	return filepath.Join(c.OutputDir, c.ImageName)
}

// consoleLog is the guest console's file: in output_directory, or beside the rootstrap command's image.
func (c *Config) consoleLog() string {
	if c.imagePath != "" {
		return c.imagePath + ".console.log"
	}
	return consoleLogPath(c.OutputDir)
}
