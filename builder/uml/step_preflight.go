package uml

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/hashicorp/packer-plugin-sdk/multistep"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"
	"github.com/hashicorp/packer-plugin-sdk/packerbuilderdata"
	"github.com/hashicorp/packer-plugin-sdk/tmp"
	"golang.org/x/sys/unix"

	"github.com/packer-uml/packer-plugin-uml/modules"
	"github.com/packer-uml/packer-plugin-uml/uml/kernel"
	"github.com/packer-uml/packer-plugin-uml/uml/usernet"
)

// stepPreflight checks everything the build needs from the host before anything is written, and
// reports every missing piece in one error that says how to get it.
//
// Uses: ui. Produces: stateKernel, stateWorkDir (removed by Cleanup).
type stepPreflight struct {
	Kernel string
	// CPUs is cpus: more than one needs a kernel with SMP in seccomp mode.
	CPUs   int
	FSType string
	// Modules are every module the build runs, for the host tools they need.
	Modules []string
	// FreeSpace is free_space: the host's e2fsprogs resize the image.
	FreeSpace int
	// Format is format: qcow2 and vmdk need qemu-img, tar the host's GNU tar (the guest runs it).
	Format string
	// Network is the network module's options when the guest gets the network, else nil.
	Network *modules.NetworkOptions
}

func (s *stepPreflight) Run(ctx context.Context, state multistep.StateBag) multistep.StepAction {
	ui := state.Get(stateUI).(packersdk.Ui)
	ui.Say("Checking the host for User-Mode Linux...")
	var problems []string

	var k *kernel.Kernel
	path, err := kernel.Find(s.Kernel)
	if err == nil {
		k, err = kernel.Inspect(ctx, path)
	}
	switch {
	case err != nil:
		problems = append(problems, fmt.Sprintf("%v: install Debian's user-mode-linux package (apt-get install user-mode-linux) or set kernel", err))
	case !k.Hostfs:
		problems = append(problems, fmt.Sprintf("kernel %s has no hostfs built in (CONFIG_HOSTFS=y is needed): use Debian's user-mode-linux package or rebuild the kernel with hostfs", k.Path))
	case s.Network != nil && len(s.Network.UMLArgs()) > 0 && !k.LegacyNet:
		problems = append(problems, fmt.Sprintf("network.transport %q needs UML's older network drivers (%s), which kernel %s (Linux %s) does not have: use transport \"libslirp\" or \"agent\", or set kernel to one that has them, such as Debian's /usr/bin/linux.uml", s.Network.Transport, strings.Join(s.Network.UMLArgs(), " "), k.Path, k.Version))
	case s.CPUs > k.MaxCPUs && k.MaxCPUs == 1:
		problems = append(problems, fmt.Sprintf("cpus = %d: kernel %s (Linux %s) runs one processor only (UML has SMP only in seccomp mode, in kernels built with CONFIG_SMP): set cpus = 1, or build such a kernel with scripts/build-uml-kernel --smp N", s.CPUs, k.Path, k.Version))
	case s.CPUs > k.MaxCPUs:
		problems = append(problems, fmt.Sprintf("cpus = %d: kernel %s was built for at most %d (CONFIG_NR_CPUS): set cpus to %d or fewer", s.CPUs, k.Path, k.MaxCPUs, k.MaxCPUs))
	}

	if tool, ok := mkfsTools[s.FSType]; ok {
		if _, err := lookSbin(tool.program); err != nil {
			problems = append(problems, fmt.Sprintf("%s, needed for fstype %q, is not installed: install %s (apt-get install %s)", tool.program, s.FSType, tool.pkg, tool.pkg))
		}
	}

	problems = append(problems, moduleToolProblems(s.Modules)...)
	if s.FreeSpace > 0 {
		for _, tool := range []string{"e2fsck", "resize2fs", "dumpe2fs"} {
			if _, err := lookSbin(tool); err != nil {
				problems = append(problems, fmt.Sprintf("%s, which free_space runs on the host, is not installed: install e2fsprogs (apt-get install e2fsprogs)", tool))
			}
		}
	}
	problems = append(problems, formatToolProblems(s.Format)...)
	if s.Network != nil {
		problems = append(problems, transportProblems(s.Network)...)
	}

	self, err := os.Executable()
	if err != nil {
		problems = append(problems, fmt.Sprintf("cannot find the plugin's own binary, which the guest runs as init: %v", err))
	} else if strings.ContainsAny(self, " \t\n\"") {
		problems = append(problems, fmt.Sprintf("the plugin binary's path %q holds white space or quotes, which the kernel command line cannot carry: install plugins under a path without them (PACKER_PLUGIN_PATH)", self))
	}

	// UML maps its memory from a file in this directory: it must allow exec.
	workDir, err := tmp.Dir("packer-uml")
	if err != nil {
		problems = append(problems, fmt.Sprintf("cannot create a temporary directory: %v: set TMPDIR to a writable directory", err))
	} else {
		state.Put(stateWorkDir, workDir)
		if err := checkExec(workDir); err != nil {
			problems = append(problems, fmt.Sprintf("%v: UML maps its memory from a file there and needs exec; set TMPDIR to a directory on a filesystem mounted without noexec", err))
		}
	}

	if len(problems) > 0 {
		return halt(state, errors.New("the host is not ready for the uml builder:\n  - "+strings.Join(problems, "\n  - ")))
	}
	state.Put(stateKernel, k)
	// Generated data as soon as it is known, so that provisioners can use it too.
	(&packerbuilderdata.GeneratedData{State: state}).Put("KernelVersion", k.Version)
	return multistep.ActionContinue
}

func (s *stepPreflight) Cleanup(state multistep.StateBag) {
	if dir, ok := state.GetOk(stateWorkDir); ok {
		os.RemoveAll(dir.(string))
	}
}

// moduleToolProblems reports the host programs the standard modules run that are missing.
func moduleToolProblems(names []string) []string {
	var problems []string
	need := map[string][][2]string{ // module: {program, Debian package}
		"debian": {{"debootstrap", "debootstrap"}, {"wget", "wget"}, {"gpgv", "gpgv"}},
	}
	for _, name := range names {
		for _, tool := range need[name] {
			if _, err := lookSbin(tool[0]); err != nil {
				problems = append(problems, fmt.Sprintf("%s, which the %s module runs, is not installed: install %s (apt-get install %s)", tool[0], name, tool[1], tool[1]))
			}
		}
	}
	return problems
}

// transportProblems reports what the network transport needs from the host and does not find.
func transportProblems(n *modules.NetworkOptions) []string {
	var problems []string
	if !n.UsesAgent() {
		// The network module configures the interface with iproute2.
		if _, err := lookSbin("ip"); err != nil {
			problems = append(problems, fmt.Sprintf("ip, which the network module runs for transport %q, is not installed: install iproute2 (apt-get install iproute2)", n.Transport))
		}
	}
	switch n.Transport {
	case "libslirp":
		if _, err := usernet.FindHelper(); err != nil {
			problems = append(problems, fmt.Sprintf("network.transport \"libslirp\": %v; transport \"agent\" needs nothing", err))
		}
	case "slirp":
		slirp := n.Slirp
		if slirp == "" {
			slirp = "slirp"
		}
		if _, err := exec.LookPath(slirp); err != nil {
			problems = append(problems, fmt.Sprintf("network.transport \"slirp\" runs %s, which is not on PATH: install Debian's slirp package (apt-get install slirp) or set network.slirp; transport \"agent\" needs nothing", slirp))
		}
	case "tuntap":
		if f, err := os.OpenFile("/dev/net/tun", os.O_RDWR, 0); err != nil {
			problems = append(problems, fmt.Sprintf("network.transport \"tuntap\" needs /dev/net/tun (%v) and a tap device that root set up for you (or uml_net from uml-utilities); transport \"agent\" needs no root", err))
		} else {
			f.Close()
		}
	case "daemon", "vde":
		sock := n.Socket
		if sock == "" {
			sock = "/tmp/uml.ctl" // uml_switch's default
		}
		if _, err := os.Stat(sock); err != nil {
			tool := "uml_switch (uml-utilities)"
			if n.Transport == "vde" {
				tool = "vde_switch (vde2)"
			}
			problems = append(problems, fmt.Sprintf("network.transport %q: no switch socket at %s: start %s first, or set network.socket", n.Transport, sock, tool))
		}
	}
	return problems
}

// lookSbin finds a system program, for the guest or the host, in PATH or in the sbin directories
// that an ordinary user's PATH often lacks (the guest's PATH includes them).
func lookSbin(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/local/sbin", "/usr/sbin", "/sbin"} {
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", exec.ErrNotFound
}

// checkExec fails when dir lies on a filesystem mounted noexec.
func checkExec(dir string) error {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return fmt.Errorf("statfs %s: %w", dir, err)
	}
	if st.Flags&unix.ST_NOEXEC != 0 {
		return fmt.Errorf("temporary directory %s is on a noexec filesystem", dir)
	}
	return nil
}

// kernelOf returns the kernel found by stepPreflight.
func kernelOf(state multistep.StateBag) *kernel.Kernel {
	return state.Get(stateKernel).(*kernel.Kernel)
}
