//go:generate go tool packer-sdc mapstructure-to-hcl2 -type NetworkOptions,DebianOptions,UMLOptions,ModuleEnv

package modules

import (
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
)

// The typed options of the standard modules. Each field's mapstructure name is rootstrap's option
// name, which is also the environment variable the module sees: HCL, rootstrap.conf and the
// module's script say the same thing. Lists become one space-separated variable, booleans "true" or
// "false"; empty fields are not set, so the module's own default applies.

// NetworkOptions are the `network` module's options (`[network]` in rootstrap.conf).
type NetworkOptions struct {
	// How the guest reaches the network: `agent` (the default: HTTP and HTTPS through the host over
	// the agent's channel, nothing needed on the host), `libslirp` (an IP network with DNS, TCP and
	// UDP through Debian's `libslirp-helper`, no root: interface `vec0`, address `10.0.2.15/24`,
	// gateway `10.0.2.2`, DNS `10.0.2.3` unless set), or one of UML's transports as rootstrap used
	// them: `tuntap`, `slirp`, `daemon`, `vde`, `mcast`. Whatever the transport, debootstrap and apt
	// fetch through the agent's proxy, so that the package cache sees every package.
	Transport string `mapstructure:"transport"`
	// The interface inside the guest, and UML's device name for it. Defaults to `eth0`.
	Interface string `mapstructure:"interface"`
	// The host side's IP address (the tap device's, for `tuntap`).
	Host string `mapstructure:"host"`
	// The guest's IP address, or `dhcp`. Required for every transport but `agent`.
	UML string `mapstructure:"uml"`
	// The netmask of the interface, for example `255.255.255.0`. Required with a static `uml` address.
	Netmask string `mapstructure:"netmask"`
	// The guest's host name while it builds.
	Hostname string `mapstructure:"hostname"`
	// The guest's default gateway.
	Gateway string `mapstructure:"gateway"`
	// The local domain name (the guest's resolv.conf `search`).
	Domain string `mapstructure:"domain"`
	// The DNS server the guest uses.
	Nameserver string `mapstructure:"nameserver"`
	// The slirp program, for the `slirp` transport. Defaults to `slirp`.
	Slirp string `mapstructure:"slirp"`
	// The switch's control socket, for the `daemon` and `vde` transports.
	Socket string `mapstructure:"socket"`
}

// DebianOptions are the `debian` module's options (`[debian]` in rootstrap.conf).
type DebianOptions struct {
	// The distribution to install, for example `bookworm`. Required when the module runs.
	Dist string `mapstructure:"dist"`
	// The archive to install from (any URL debootstrap takes). Defaults to
	// `http://deb.debian.org/debian`.
	Mirror string `mapstructure:"mirror"`
	// Packages never to install (debootstrap's `--exclude`).
	Exclude []string `mapstructure:"exclude"`
	// Packages to remove with `dpkg --purge` after the installation.
	Purge []string `mapstructure:"purge"`
	// Packages to add to the initial set (debootstrap's `--include`).
	Include []string `mapstructure:"include"`
	// Packages to install with apt after debootstrap.
	Install []string `mapstructure:"install"`
	// A debconf database file (the format of `/var/cache/debconf/config.dat`) whose answers are the
	// defaults while packages are purged and installed.
	Debconf string `mapstructure:"debconf"`
	// The target's `sources.list`. Defaults to the main section of `mirror` for `dist`.
	Sources string `mapstructure:"sources"`
	// The target's apt preferences; separate stanzas with a line holding a lone `.`.
	AptPreferences string `mapstructure:"apt_preferences"`
	// The target's `apt.conf`, written before packages are installed.
	AptConf string `mapstructure:"apt_conf"`
	// Install with apt's equivalent of `--force-yes` (unauthenticated sources allowed). Defaults to
	// `true`, as in rootstrap.
	ForceYes *bool `mapstructure:"force_yes"`
	// debootstrap's `--variant`, for example `minbase` (not in rootstrap). Defaults to debootstrap's own.
	Variant string `mapstructure:"variant"`
	// debootstrap's `--components` (not in rootstrap).
	Components []string `mapstructure:"components"`
	// Resolve and download the packages on the host first (debootstrap `--make-tarball`, no root
	// needed, through the build's package cache), then install them in the guest from that tarball
	// (`--unpack-tarball`): the same packages, much faster than downloading in the guest. Defaults
	// to `true` (not in rootstrap); only the built-in module with the build's proxy does it. When
	// the built-in `mkfs`, `mount` and `debian` run in a row on an ext filesystem and the host has
	// `fakeroot`, the host also makes the filesystem with debootstrap's first stage in it
	// (`--foreign`, then `mke2fs -d`), and the guest runs the second stage only.
	HostDownload *bool `mapstructure:"host_download"`
}

// UMLOptions are the `uml` module's options (`[uml]` in rootstrap.conf).
type UMLOptions struct {
	// The UML kernel's modules in the image: `copy` (the default) copies them in, `hostfs` adds an
	// fstab line that mounts them from the host read-only at boot, `none` leaves them out.
	KernelModules string `mapstructure:"kernel_modules"`
	// Where the kernel modules are on the host. Defaults to `/usr/lib/uml/modules`.
	KernelModulesDir string `mapstructure:"kernel_modules_dir"`
	// rootstrap's older switch, superseded by `kernel_modules`: `true` means `copy`, `false` `none`.
	InstallModules *bool `mapstructure:"install_modules"`
}

// ModuleEnv gives any module, custom ones included, environment variables of its own.
type ModuleEnv struct {
	// The module's name.
	Name string `mapstructure:"name" required:"true"`
	// Its variables; they override the global ones and the typed options of the same name.
	Env map[string]string `mapstructure:"env"`
}

// Transports the network module knows. agent is ours; the others are UML's, as rootstrap passed them.
var Transports = []string{"agent", "libslirp", "tuntap", "slirp", "daemon", "vde", "mcast"}

// OptionsEnv turns a typed options struct into the module's environment, by mapstructure name.
func OptionsEnv(opts any) map[string]string {
	env := map[string]string{}
	v := reflect.Indirect(reflect.ValueOf(opts))
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		name := t.Field(i).Tag.Get("mapstructure")
		switch f := v.Field(i); f.Kind() {
		case reflect.String:
			if f.String() != "" {
				env[name] = f.String()
			}
		case reflect.Slice:
			if f.Len() > 0 {
				env[name] = strings.Join(f.Interface().([]string), " ")
			}
		case reflect.Pointer:
			if !f.IsNil() {
				env[name] = strconv.FormatBool(f.Elem().Bool())
			}
		}
	}
	return env
}

// FillFromSection sets the fields of a typed options struct that are still empty from a
// rootstrap.conf section: the file gives defaults, HCL wins. Lists are split on white space,
// booleans read as rootstrap's "true/false/yes/no". It returns the section's options that are not
// typed fields; they stay plain environment variables.
func FillFromSection(opts any, section map[string]string, sectionName string) (map[string]string, error) {
	rest := map[string]string{}
	for k, v := range section {
		rest[k] = v
	}
	v := reflect.ValueOf(opts).Elem()
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		name := t.Field(i).Tag.Get("mapstructure")
		val, ok := section[name]
		if !ok {
			continue
		}
		delete(rest, name)
		switch f := v.Field(i); f.Kind() {
		case reflect.String:
			if f.String() == "" {
				f.SetString(val)
			}
		case reflect.Slice:
			if f.Len() == 0 {
				f.Set(reflect.ValueOf(strings.Fields(val)))
			}
		case reflect.Pointer:
			if f.IsNil() {
				b, err := parseBool(val)
				if err != nil {
					return nil, fmt.Errorf("[%s] %s: %w", sectionName, name, err)
				}
				f.Set(reflect.ValueOf(&b))
			}
		}
	}
	return rest, nil
}

func parseBool(s string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "true", "yes", "on", "1":
		return true, nil
	case "false", "no", "off", "0":
		return false, nil
	}
	return false, fmt.Errorf("%q is not a boolean: use true or false", s)
}

// Validate checks the network options; field names in errors are prefixed with prefix (for
// example "network.").
func (n *NetworkOptions) Validate(prefix string) []error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(prefix+format, args...)) }
	transport := n.transport()
	known := false
	for _, t := range Transports {
		known = known || t == transport
	}
	if !known {
		bad("transport %q is not known: use one of %s", n.Transport, strings.Join(Transports, ", "))
		return errs
	}
	if n.Interface != "" && !validName(n.Interface) {
		bad("interface %q is not an interface name such as eth0", n.Interface)
	}
	for _, f := range []struct{ name, value string }{{"host", n.Host}, {"gateway", n.Gateway}, {"nameserver", n.Nameserver}} {
		if f.value != "" && net.ParseIP(f.value) == nil {
			bad("%s %q is not an IP address", f.name, f.value)
		}
	}
	if n.Netmask != "" && net.ParseIP(n.Netmask).To4() == nil {
		bad("netmask %q is not a netmask such as 255.255.255.0", n.Netmask)
	}
	if transport == "agent" {
		return errs
	}
	if transport == "libslirp" {
		if n.Interface != "" && n.Interface != "vec0" {
			bad("interface %q: the libslirp transport's interface is vec0 (UML's vector driver)", n.Interface)
		}
		if n.UML != "" && n.UML != "dhcp" && net.ParseIP(n.UML) == nil {
			bad("uml %q is not an IP address or \"dhcp\"", n.UML)
		}
		return errs
	}
	switch {
	case n.UML == "":
		bad("uml is required with transport %q: set the guest's IP address, or \"dhcp\"", transport)
	case n.UML == "dhcp":
	case net.ParseIP(n.UML) == nil:
		bad("uml %q is not an IP address or \"dhcp\"", n.UML)
	case n.Netmask == "":
		bad("netmask is required with a static uml address: set it, for example \"255.255.255.0\"")
	}
	if transport == "tuntap" && n.Host == "" {
		bad("host is required with transport \"tuntap\": set the host side's IP address of the tap device")
	}
	if (transport == "vde") && n.Socket == "" {
		bad("socket is required with transport \"vde\": set the vde_switch control socket's path")
	}
	return errs
}

func (n *NetworkOptions) transport() string {
	if n.Transport == "" {
		return "agent"
	}
	return n.Transport
}

// UsesAgent reports whether the guest's network is the agent's channel (no UML device at all).
func (n *NetworkOptions) UsesAgent() bool { return n.transport() == "agent" }

// UMLArgs returns the kernel parameter that attaches the interface, as rootstrap built it
// (`eth0=slirp,,BINARY`, `eth0=tuntap,,,HOST`, ...), or nothing for the agent transport and for
// libslirp (whose parameter names a descriptor the builder passes at boot).
func (n *NetworkOptions) UMLArgs() []string {
	iface := n.Interface
	if iface == "" {
		iface = "eth0"
	}
	switch n.transport() {
	case "tuntap":
		return []string{iface + "=tuntap,,," + n.Host}
	case "slirp":
		slirp := n.Slirp
		if slirp == "" {
			slirp = "slirp"
		}
		return []string{iface + "=slirp,," + slirp}
	case "daemon":
		if n.Socket != "" {
			return []string{iface + "=daemon,,unix," + n.Socket}
		}
		return []string{iface + "=daemon"}
	case "vde":
		return []string{iface + "=vde," + n.Socket}
	case "mcast":
		return []string{iface + "=mcast"}
	}
	return nil
}

// Validate checks the debian options; workDir resolves a relative debconf file. needDist is false
// where the distribution may come from elsewhere (the builder's settings, for the provisioner).
func (d *DebianOptions) Validate(prefix, workDir string, exists func(string) bool, needDist bool) []error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(prefix+format, args...)) }
	if d.Dist == "" && needDist {
		bad("dist is required: set the distribution to install, for example dist = \"bookworm\"")
	}
	if d.Mirror != "" {
		u, err := url.Parse(d.Mirror)
		if err != nil || u.Scheme == "" {
			bad("mirror %q is not a URL such as http://deb.debian.org/debian or file:///srv/mirror", d.Mirror)
		}
	}
	if d.Debconf != "" {
		p := d.Debconf
		if !filepath.IsAbs(p) {
			p = filepath.Join(workDir, p)
		}
		if !exists(p) {
			bad("debconf file %q does not exist: give the path of a debconf database file", d.Debconf)
		}
	}
	for _, f := range []struct {
		name string
		list []string
	}{{"exclude", d.Exclude}, {"include", d.Include}, {"purge", d.Purge}, {"install", d.Install}} {
		for _, p := range f.list {
			if strings.ContainsAny(p, " \t\n,'\"") {
				bad("%s: %q is not a package name: give one package per element", f.name, p)
			}
		}
	}
	return errs
}

// Validate checks the uml options.
func (u *UMLOptions) Validate(prefix string) []error {
	var errs []error
	switch u.KernelModules {
	case "", "none", "hostfs", "copy":
	default:
		errs = append(errs, fmt.Errorf("%skernel_modules %q is not known: use none, hostfs or copy", prefix, u.KernelModules))
	}
	if u.KernelModulesDir != "" && !filepath.IsAbs(u.KernelModulesDir) {
		errs = append(errs, fmt.Errorf("%skernel_modules_dir %q must be an absolute path on the host", prefix, u.KernelModulesDir))
	}
	return errs
}

// SortedEnv turns a map into KEY=value elements, sorted.
func SortedEnv(m map[string]string) []string {
	env := make([]string, 0, len(m))
	for k, v := range m {
		env = append(env, k+"="+v)
	}
	sort.Strings(env)
	return env
}
