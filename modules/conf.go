// Package modules holds what rootstrap users bring along: the rootstrap.conf format and, as the
// modules issue lands, the standard modules and the runner that orders them. It has no Packer types.
package modules

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"gopkg.in/ini.v1"
)

// GlobalSection is the section whose options every module inherits.
const GlobalSection = "global"

// Config is a rootstrap.conf: sections of option=value, one per module plus GlobalSection.
type Config struct {
	// Sections maps a section name to its options. Option names keep their case: modules see them
	// as environment variables, and the manual requires PATH.
	Sections map[string]map[string]string
}

// loadOptions read the format the rootstrap manual describes (it was Python's ConfigParser):
// "[section]" headers, "option=value" (or "option: value"), comments starting with '#' or ';',
// and long values continued on lines indented with white space. A '#' inside a value is kept.
var loadOptions = ini.LoadOptions{
	AllowPythonMultilineValues: true,
	IgnoreInlineComment:        true,
	PreserveSurroundedQuote:    true,
	KeyValueDelimiters:         "=:",
	SkipUnrecognizableLines:    false,
}

// Parse reads one rootstrap.conf; name is used in errors.
func Parse(name string, data []byte) (*Config, error) {
	f, err := ini.LoadSources(loadOptions, data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	c := &Config{Sections: map[string]map[string]string{}}
	for _, s := range f.Sections() {
		if s.Name() == ini.DefaultSection {
			if keys := s.KeyStrings(); len(keys) > 0 {
				return nil, fmt.Errorf("%s: option %q comes before any [section] header: put it under [global] or a module's section", name, keys[0])
			}
			continue
		}
		opts := map[string]string{}
		for _, k := range s.Keys() {
			opts[k.Name()] = joinContinuation(k.Value())
		}
		c.Sections[s.Name()] = opts
	}
	return c, nil
}

// joinContinuation strips the indentation of continuation lines, as ConfigParser does, and keeps
// the line breaks: a multi-line `sources` is one sources.list line per line.
func joinContinuation(v string) string {
	lines := strings.Split(v, "\n")
	for i := range lines {
		lines[i] = strings.TrimSpace(lines[i])
	}
	return strings.Join(lines, "\n")
}

// Merge lays o over c, option by option: a later file overrides what an earlier one set, and
// keeps what it does not mention.
func (c *Config) Merge(o *Config) {
	for sec, opts := range o.Sections {
		dst, ok := c.Sections[sec]
		if !ok {
			dst = map[string]string{}
			c.Sections[sec] = dst
		}
		for k, v := range opts {
			dst[k] = v
		}
	}
}

// Load reads every existing file of paths, in order, each overriding the ones before it, and
// returns the result with the files it read. A missing file is skipped; an unreadable or malformed
// one is an error.
func Load(paths []string) (*Config, []string, error) {
	c := &Config{Sections: map[string]map[string]string{}}
	var read []string
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, read, err
		}
		f, err := Parse(p, data)
		if err != nil {
			return nil, read, err
		}
		c.Merge(f)
		read = append(read, p)
	}
	return c, read, nil
}

// ConfigPaths are the places rootstrap reads its configuration from, system-wide first and the
// working directory's last, so that it wins.
func ConfigPaths(home, workDir string) []string {
	return []string{
		"/etc/rootstrap/rootstrap.conf",
		filepath.Join(home, ".rootstrap", "rootstrap.conf"),
		filepath.Join(workDir, "rootstrap.conf"),
	}
}

// Env is the environment a module runs with: the global options, then the module's own section's,
// which win. It is sorted by name, one KEY=value per element.
func (c *Config) Env(module string) []string {
	merged := map[string]string{}
	for k, v := range c.Sections[GlobalSection] {
		merged[k] = v
	}
	for k, v := range c.Sections[module] {
		merged[k] = v
	}
	env := make([]string, 0, len(merged))
	for k, v := range merged {
		env = append(env, k+"="+v)
	}
	sort.Strings(env)
	return env
}

// Global returns one option of the global section, "" when it is not set.
func (c *Config) Global(option string) string { return c.Sections[GlobalSection][option] }
