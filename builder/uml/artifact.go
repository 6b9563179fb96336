package uml

import (
	"fmt"
	"os"
	"path/filepath"
)

// Artifact is the image file. Destroy removes only what this build wrote (the image and its console
// log, then the output directory if that leaves it empty), never other files a user keeps there.
type Artifact struct {
	ImagePath     string
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

// Files lists the image file: the one file post-processors (checksum, compress, manifest) take.
func (a *Artifact) Files() []string { return []string{a.ImagePath} }

// Id is the image file's name.
func (a *Artifact) Id() string { return filepath.Base(a.ImagePath) }

func (a *Artifact) String() string {
	return fmt.Sprintf("Root filesystem image: %s (%d MiB %s, built with UML kernel %s)", a.ImagePath, a.SizeMiB, a.FSType, a.KernelVersion)
}

// State returns builder-specific data by name.
func (a *Artifact) State(name string) interface{} {
	switch name {
	case "ImagePath":
		return a.ImagePath
	case "FSType":
		return a.FSType
	case "SizeMiB":
		return a.SizeMiB
	case "KernelVersion":
		return a.KernelVersion
	}
	return a.StateData[name]
}

// Destroy removes the image and the console log.
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
