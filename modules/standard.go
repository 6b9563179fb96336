package modules

import (
	"embed"
	"io/fs"
	"sort"
)

// scripts holds the standard modules, shell scripts run by the guest's /bin/sh. They ship inside the
// plugin binary so that a build needs nothing installed but UML and the host's own tools.
//
//go:embed scripts
var scripts embed.FS

// Standard lists the built-in modules, sorted.
func Standard() []string {
	entries, _ := fs.ReadDir(scripts, "scripts")
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return names
}

// StandardScript returns a built-in module's script, or false when there is none of that name.
func StandardScript(name string) ([]byte, bool) {
	if !validName(name) {
		return nil, false
	}
	b, err := scripts.ReadFile("scripts/" + name)
	return b, err == nil
}

// DefaultModules and DefaultPostModules are rootstrap's shipped order, split where Packer's
// provisioners run: after the system is installed and set up for UML, before it is unmounted.
var (
	DefaultModules     = []string{"network", "mkfs", "mount", "debian", "uml"}
	DefaultPostModules = []string{"umount"}
)
