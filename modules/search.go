package modules

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Module is one module found by Find: a built-in script, or an executable file on the host.
type Module struct {
	Name string
	// Path is the host file, empty for a built-in module.
	Path string
	// Script is the built-in module's content, nil for a host file.
	Script []byte
}

// BuiltIn reports whether the module ships inside the plugin.
func (m Module) BuiltIn() bool { return m.Path == "" }

// Origin says where the module comes from, for the "Using rootstrap module" line.
func (m Module) Origin() string {
	if m.BuiltIn() {
		return "(built into packer-plugin-uml) " + m.Name
	}
	return m.Path
}

// SearchDirs are the directories a module is looked up in, in rootstrap's order: a later directory
// overrides an earlier one, and every one overrides the built-in set. extra (the builder's
// module_paths) comes last; relative paths are taken from workDir.
func SearchDirs(home, workDir string, extra []string) []string {
	dirs := []string{
		"/usr/lib/rootstrap/modules",
		"/etc/rootstrap/modules",
	}
	if home != "" {
		dirs = append(dirs, filepath.Join(home, ".rootstrap", "modules"))
	}
	dirs = append(dirs, filepath.Join(workDir, "modules"))
	for _, d := range extra {
		if !filepath.IsAbs(d) {
			d = filepath.Join(workDir, d)
		}
		dirs = append(dirs, d)
	}
	return dirs
}

// ErrNotFound is returned by Find for a name that no directory and no built-in module has.
var ErrNotFound = errors.New("module not found")

// Find looks name up: the last of dirs that holds a file of that name wins, then the built-in set.
// A file that is there but not executable is an error, not a reason to look further: the user
// meant that file.
func Find(name string, dirs []string) (Module, error) {
	if !validName(name) {
		return Module{}, fmt.Errorf("module name %q must be a plain file name (letters, digits, '.', '_', '-')", name)
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		p := filepath.Join(dirs[i], name)
		st, err := os.Stat(p)
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscallENOTDIR) {
			continue
		}
		if err != nil {
			return Module{}, fmt.Errorf("module %s: %w", name, err)
		}
		if st.IsDir() {
			continue
		}
		if st.Mode().Perm()&0o111 == 0 {
			return Module{}, fmt.Errorf("module %s: %s is not executable: run chmod +x %s", name, p, p)
		}
		abs, err := filepath.Abs(p)
		if err != nil {
			return Module{}, err
		}
		return Module{Name: name, Path: abs}, nil
	}
	if s, ok := StandardScript(name); ok {
		return Module{Name: name, Script: s}, nil
	}
	return Module{}, fmt.Errorf("%w: %q is not a built-in module (%s) and is in none of %s: put an executable named %s in one of them, or add its directory to module_paths",
		ErrNotFound, name, strings.Join(Standard(), ", "), strings.Join(dirs, ", "), name)
}

// validName keeps module names to what is safe as a file name and as a path element in the guest.
func validName(name string) bool {
	if name == "" || name == "." || name == ".." || len(name) > 255 {
		return false
	}
	for _, r := range name {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '_', r == '-', r == '+':
		default:
			return false
		}
	}
	return true
}
