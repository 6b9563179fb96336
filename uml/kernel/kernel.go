// Package kernel finds a User-Mode Linux kernel and reads what it can do, from its own output
// (`--version`, `--help`, `--showconfig`). It has no state and no Packer types.
package kernel

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Candidates are the names looked up on PATH when no kernel is configured and none is installed at
// InstalledPath, in order: Debian's package installs linux.uml, and links linux to it through
// alternatives.
var Candidates = []string{"linux.uml", "linux"}

// Kernel is one UML kernel binary and what it supports.
type Kernel struct {
	Path    string
	Version string
	// Hostfs: the guest's root can be the host's filesystem; it must be built in, not a module.
	Hostfs bool
	// Seccomp: the kernel accepts seccomp=on (Linux 6.16 and later), its fastest mode.
	Seccomp bool
	// MaxCPUs is how many virtual processors the kernel can start (ncpus=): CONFIG_NR_CPUS of a
	// kernel built with CONFIG_SMP that has seccomp mode (UML refuses SMP in ptrace mode); 1
	// otherwise.
	MaxCPUs int
	// Vector: the vector network driver (vecN=), needed for the user-mode IP network.
	Vector bool
	// LegacyNet: the older network drivers (ethN=slirp,..., tuntap, daemon, vde, mcast), which
	// recent kernels no longer have (Linux 7.2 has only the vector driver).
	LegacyNet bool
	// Config is the kernel's .config when it prints one (--showconfig); nil otherwise.
	Config map[string]string
	// ModulesDir is where the kernel's modules are on the host, "" when there are none.
	ModulesDir string
}

// ErrNotFound is returned when no kernel is configured, none is installed and none is on PATH.
var ErrNotFound = errors.New("no User-Mode Linux kernel found")

// InstalledPath is where scripts/build-uml-kernel installs the kernel it builds for the user who
// runs it: $XDG_DATA_HOME/packer-plugin-uml/kernel/linux, or ~/.local/share/... when XDG_DATA_HOME
// is unset or not absolute (the XDG base directory specification ignores relative paths).
func InstalledPath() (string, error) {
	base := os.Getenv("XDG_DATA_HOME")
	if !filepath.IsAbs(base) {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", err
		}
		base = filepath.Join(home, ".local", "share")
	}
	return filepath.Join(base, "packer-plugin-uml", "kernel", "linux"), nil
}

// Find returns the kernel to use: explicit if set; else the one installed at InstalledPath (a
// modern kernel with seccomp mode, which scripts/build-uml-kernel builds); else the first of
// Candidates on PATH (Debian's package).
func Find(explicit string) (string, error) {
	if explicit != "" {
		p, err := exec.LookPath(explicit)
		if err != nil {
			return "", fmt.Errorf("kernel %q: %w", explicit, err)
		}
		return filepath.Abs(p)
	}
	if p, err := InstalledPath(); err == nil {
		st, err := os.Stat(p)
		switch {
		case err == nil && (!st.Mode().IsRegular() || st.Mode().Perm()&0o111 == 0):
			return "", fmt.Errorf("%s (where scripts/build-uml-kernel installs its kernel) is not an executable file: run the script again, or remove it to use %s from PATH", p, strings.Join(Candidates, " or "))
		case err == nil:
			return p, nil
		case !errors.Is(err, fs.ErrNotExist):
			return "", fmt.Errorf("installed kernel: %w", err)
		}
	}
	return FindOnPath()
}

// FindOnPath returns the first of Candidates on PATH, ignoring an installed kernel.
func FindOnPath() (string, error) {
	for _, name := range Candidates {
		if p, err := exec.LookPath(name); err == nil {
			return filepath.Abs(p)
		}
	}
	where := strings.Join(Candidates, ", ") + " is on PATH"
	if p, err := InstalledPath(); err == nil {
		where = fmt.Sprintf("none at %s (scripts/build-uml-kernel), and none of %s", p, where)
	} else {
		where = "none of " + where
	}
	return "", fmt.Errorf("%w: %s", ErrNotFound, where)
}

// Inspect runs the kernel with --version, --help and --showconfig (each prints and exits at once)
// and reads its features. The help text lists every command-line parameter the kernel knows, so a
// feature with a parameter (hostfs=, seccomp=, vecN:) is seen even where --showconfig is gone.
func Inspect(ctx context.Context, path string) (*Kernel, error) {
	k := &Kernel{Path: path}
	out, err := run(ctx, path, "--version")
	if err != nil {
		return nil, fmt.Errorf("%s is not a User-Mode Linux kernel: --version: %w", path, err)
	}
	k.Version = strings.TrimSpace(out)
	help, err := run(ctx, path, "--help")
	if err != nil {
		return nil, fmt.Errorf("%s --help: %w", path, err)
	}
	params := helpParams(help)
	k.Hostfs = params["hostfs"]
	k.Seccomp = params["seccomp"]
	k.Vector = params["vec"]
	k.LegacyNet = params["eth"]
	k.MaxCPUs = 1
	if cfg, err := run(ctx, path, "--showconfig"); err == nil {
		k.Config = parseConfig(cfg)
		if v, ok := k.Config["CONFIG_HOSTFS"]; ok {
			k.Hostfs = v == "y"
		}
		if n, err := strconv.Atoi(k.Config["CONFIG_NR_CPUS"]); err == nil && n > 1 && k.Config["CONFIG_SMP"] == "y" && params["ncpus"] && k.Seccomp {
			k.MaxCPUs = n
		}
	}
	for _, dir := range []string{filepath.Join(filepath.Dir(path), "..", "lib", "uml", "modules", k.Version), "/usr/lib/uml/modules/" + k.Version} {
		if st, err := os.Stat(dir); err == nil && st.IsDir() {
			k.ModulesDir = filepath.Clean(dir)
			break
		}
	}
	return k, nil
}

func run(ctx context.Context, path string, arg string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, arg).Output()
	return string(out), err
}

// helpParams picks the parameter names out of --help: lines that start a parameter's entry
// ("hostfs=<root dir>,...", "vec[0-9]+:<option>=...", "seccomp=on").
func helpParams(help string) map[string]bool {
	params := map[string]bool{}
	s := bufio.NewScanner(strings.NewReader(help))
	for s.Scan() {
		line := s.Text()
		if line == "" || line[0] == ' ' || line[0] == '\t' {
			continue
		}
		name := line
		if i := strings.IndexAny(name, "=[:<"); i > 0 {
			name = name[:i]
		}
		params[strings.TrimSpace(name)] = true
	}
	return params
}

func parseConfig(cfg string) map[string]string {
	m := map[string]string{}
	s := bufio.NewScanner(strings.NewReader(cfg))
	for s.Scan() {
		k, v, ok := strings.Cut(s.Text(), "=")
		if ok && strings.HasPrefix(k, "CONFIG_") {
			m[k] = strings.Trim(v, `"`)
		}
	}
	return m
}

// Mode names the way the kernel runs guest processes, for the build's log: "seccomp mode", or
// "ptrace mode" with where to get a faster kernel.
func (k *Kernel) Mode() string {
	if k.Seccomp {
		return "seccomp mode"
	}
	return "ptrace mode (no seccomp mode: a UML kernel of Linux 6.16 or later starts guest processes " +
		"5-25x faster and runs a debootstrap about 2.5x faster; the plugin's scripts/build-uml-kernel builds one)"
}
