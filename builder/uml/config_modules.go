package uml

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/packer-uml/packer-plugin-uml/modules"
	"github.com/packer-uml/packer-plugin-uml/uml/agent"
	"github.com/packer-uml/packer-plugin-uml/uml/usernet"
)

// defaultPATH is the modules' PATH when neither the template nor a rootstrap.conf sets one (the
// manual makes PATH mandatory in rootstrap.conf; a Packer template should not need it).
const defaultPATH = "/usr/sbin:/usr/bin:/sbin:/bin"

// rootstrapGlobals are the [global] options that are builder settings; the others are only
// environment.
var rootstrapGlobals = []string{"fstype", "initialsize", "freespace", "modules", "umlargs", "debug"}

// applyRootstrapConfig reads rootstrap_config and takes from it, and from a configuration the
// rootstrap command loaded, every setting the template left unset.
func (c *Config) applyRootstrapConfig() []error {
	if c.RootstrapConfig != "" {
		f, err := os.ReadFile(c.RootstrapConfig)
		if err != nil {
			return []error{fmt.Errorf("rootstrap_config: %w", err)}
		}
		conf, err := modules.Parse(c.RootstrapConfig, f)
		if err != nil {
			return []error{fmt.Errorf("rootstrap_config: %w", err)}
		}
		if c.rootstrap == nil {
			c.rootstrap = conf
		} else {
			c.rootstrap.Merge(conf)
		}
	}
	if c.rootstrap == nil {
		return nil
	}
	var errs []error
	g := c.rootstrap.Sections[modules.GlobalSection]
	intOption := func(name string, dst *int) {
		v, ok := g[name]
		if !ok || *dst != 0 || strings.TrimSpace(v) == "" {
			return
		}
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil || n < 0 {
			errs = append(errs, fmt.Errorf("rootstrap_config: [global] %s = %q is not a number of megabytes", name, v))
			return
		}
		*dst = n
	}
	if c.FSType == "" {
		c.FSType = strings.TrimSpace(g["fstype"])
	}
	intOption("initialsize", &c.ImageSize)
	intOption("freespace", &c.FreeSpace)
	if v, ok := g["modules"]; ok && c.Modules == nil && c.PostModules == nil {
		// rootstrap has one list; the provisioners go before a final umount.
		all := strings.Fields(v)
		if n := len(all); n > 0 && all[n-1] == "umount" {
			c.Modules, c.PostModules = all[:n-1], all[n-1:]
		} else {
			c.Modules, c.PostModules = all, []string{}
		}
	}
	if v := strings.Fields(g["umlargs"]); len(v) > 0 {
		// The template's uml_args supplement the file's, as rootstrap's -u did.
		c.UMLArgs = append(v, c.UMLArgs...)
	}
	if v, ok := g["debug"]; ok && !c.Debug {
		switch strings.ToLower(strings.TrimSpace(v)) {
		case "true", "yes", "on", "1":
			c.Debug = true
		case "false", "no", "off", "0", "":
		default:
			errs = append(errs, fmt.Errorf("rootstrap_config: [global] debug = %q is not a boolean: use true or false", v))
		}
	}
	return errs
}

// prepareModules sets the module lists' defaults, builds every module's environment and checks
// that each module exists and that the standard ones' options are complete.
func (c *Config) prepareModules() []error {
	var errs []error
	if c.Modules == nil {
		c.Modules = slices.Clone(modules.DefaultModules)
	}
	if c.PostModules == nil {
		c.PostModules = slices.Clone(modules.DefaultPostModules)
	}
	workDir, err := os.Getwd()
	if err != nil {
		return []error{err}
	}
	home, _ := os.UserHomeDir()
	c.moduleDirs = modules.SearchDirs(home, workDir, c.ModulePaths)

	// Every module's own variables: the file's section under the template's typed block, then the
	// template's module_env.
	env := modules.Environment{Global: map[string]string{"PATH": defaultPATH}}
	typed := map[string]any{"network": &c.Network, "debian": &c.Debian, "uml": &c.UML}
	if c.rootstrap != nil {
		for k, v := range c.rootstrap.Sections[modules.GlobalSection] {
			env.Global[k] = v
		}
		for sec, opts := range c.rootstrap.Sections {
			if sec == modules.GlobalSection {
				continue
			}
			rest := opts
			if t, ok := typed[sec]; ok {
				r, err := modules.FillFromSection(t, opts, sec)
				if err != nil {
					errs = append(errs, fmt.Errorf("rootstrap_config: %w", err))
				}
				rest = r
			}
			env.Set(sec, rest)
		}
	}
	if c.Network.Transport == "libslirp" {
		// libslirp's own network: the module configures what the helper serves.
		setDefault(&c.Network.Interface, usernet.Interface)
		setDefault(&c.Network.UML, usernet.GuestIP)
		setDefault(&c.Network.Netmask, usernet.Netmask)
		setDefault(&c.Network.Gateway, usernet.Gateway)
		setDefault(&c.Network.Nameserver, usernet.Nameserver)
	}
	for name, t := range typed {
		env.Set(name, modules.OptionsEnv(t))
	}
	for i, m := range c.ModuleEnv {
		if m.Name == "" {
			errs = append(errs, fmt.Errorf("module_env[%d]: name is required: the module these variables are for", i))
			continue
		}
		env.Set(m.Name, m.Env)
	}
	// The builder's own settings, under rootstrap's names, as rootstrap's [global] gave them.
	env.Global["fstype"] = c.FSType
	env.Global["initialsize"] = strconv.Itoa(c.ImageSize)
	env.Global["freespace"] = strconv.Itoa(c.FreeSpace)
	env.Global["modules"] = strings.Join(append(slices.Clone(c.Modules), c.PostModules...), " ")
	env.Global["umlargs"] = strings.Join(c.UMLArgs, " ")
	env.Global["debug"] = strconv.FormatBool(c.Debug)
	for k, v := range c.Global {
		env.Global[k] = v
	}
	c.env = env

	for i, d := range c.ModulePaths {
		if st, err := os.Stat(c.moduleDirs[len(c.moduleDirs)-len(c.ModulePaths)+i]); err != nil || !st.IsDir() {
			errs = append(errs, fmt.Errorf("module_paths[%d] %q is not a directory: create it or remove it from module_paths", i, d))
		}
	}
	listed := map[string]bool{}
	for i, list := range [][]string{c.Modules, c.PostModules} {
		field := []string{"modules", "post_modules"}[i]
		for j, name := range list {
			listed[name] = true
			if _, err := modules.Find(name, c.moduleDirs); err != nil {
				errs = append(errs, fmt.Errorf("%s[%d]: %w", field, j, err))
			}
		}
	}
	if listed["network"] {
		errs = append(errs, c.Network.Validate("network.")...)
	}
	if listed["debian"] {
		exists := func(p string) bool { _, err := os.Stat(p); return err == nil }
		errs = append(errs, c.Debian.Validate("debian.", workDir, exists, true)...)
	}
	if listed["uml"] {
		errs = append(errs, c.UML.Validate("uml.")...)
	}
	if c.FreeSpace < 0 {
		errs = append(errs, fmt.Errorf("free_space must be a positive number of MiB, not %d", c.FreeSpace))
	}
	if c.FreeSpace > 0 && !strings.HasPrefix(c.FSType, "ext") {
		errs = append(errs, fmt.Errorf("free_space works with ext2, ext3 and ext4 only (resize2fs), not %s: xfs cannot shrink, and btrfs resizing is not supported here; remove free_space or use an ext filesystem", c.FSType))
	}
	return errs
}

func setDefault(field *string, value string) {
	if *field == "" {
		*field = value
	}
}

// networkEnabled reports whether the guest gets the network: the network module runs at some point.
func (c *Config) networkEnabled() bool {
	return slices.Contains(c.Modules, "network") || slices.Contains(c.PostModules, "network")
}

// networkArgs attach the network module's interface to UML (none for the agent transport).
func (c *Config) networkArgs() []string {
	if !c.networkEnabled() {
		return nil
	}
	return c.Network.UMLArgs()
}

// proxyAddr is where the guest agent listens for the guest's proxy connections: whatever the
// transport, debootstrap and apt fetch through it, so that the host sees (and can cache) every
// package.
func (c *Config) proxyAddr() string {
	if !c.networkEnabled() {
		return ""
	}
	return agent.DefaultProxyAddr
}

// cacheDir is the package cache's directory, "" when the cache is off.
func (c *Config) cacheDir() string {
	if c.Cache.False() || !c.networkEnabled() {
		return ""
	}
	return c.CacheDir
}

// network is the network module's options when the guest gets the network, else nil.
func (c *Config) network() *modules.NetworkOptions {
	if !c.networkEnabled() {
		return nil
	}
	return &c.Network
}
