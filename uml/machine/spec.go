// Package machine runs one User-Mode Linux guest: Spec turns a description into the kernel's command
// line (a pure function), and Start runs it with the agent's channel on two host pipes, its console
// captured, and a watchdog that kills it if this process dies. It has no Packer types.
package machine

import (
	"fmt"
	"os"
	"strings"
	"syscall"
)

// ChannelFD is the descriptor the UML process reads the agent's line from (the host writes the other
// end); ChannelFD+1 is the one it writes the line to. They are the first two of exec.Cmd.ExtraFiles.
const ChannelFD = 3

// ExtraFD is the descriptor number under which UML receives Spec.ExtraFiles[i]: they follow the
// agent's line, so ExtraFiles[0] is ChannelFD+2 (5), ExtraFiles[1] is 6, and so on. Kernel
// parameters that name a descriptor (a network transport's fd=N, say) must use this number.
func ExtraFD(i int) int { return ChannelFD + 2 + i }

// Spec describes one boot.
type Spec struct {
	Kernel string // path of the UML kernel binary
	UMID   string // unique machine id (names UML's pid and mconsole files)
	UMLDir string // where UML keeps its UMID directory, instead of ~/.uml
	TmpDir string // where UML creates its memory file; must allow exec
	MemMiB int
	// Disks become ubd<FirstDisk>, ubd<FirstDisk+1>, ...: the image first, then extra disks.
	Disks []string
	// FirstDisk is the ubd index of the first disk. rootstrap attached the image as ubd1, and
	// modules written for it may expect /dev/ubdb.
	FirstDisk int
	// Init is the program the kernel starts as PID 1 (our own binary).
	Init string
	// InitParams are key=value parameters the kernel passes to init as environment.
	InitParams []string
	// Seccomp turns on the kernel's seccomp mode (only kernels that know seccomp=).
	Seccomp bool
	// CPUs is the number of virtual processors (ncpus=); 0 or 1 is the kernel's default of one.
	// More need a kernel built with CONFIG_SMP and Seccomp: UML refuses SMP in ptrace mode.
	CPUs int
	// RunAs, when set, is the user UML runs as (its watchdog keeps the caller's rights). A UML
	// run by root writes the host as root through hostfs, whatever the guest mounts: the builder
	// runs it as an unprivileged user then.
	RunAs *syscall.Credential
	// Extra are the user's own parameters, last so that they win.
	Extra []string
	// ExtraFiles are more host files UML inherits, as descriptors ExtraFD(0), ExtraFD(1), ... (the
	// network's end of a socketpair, say). Start passes them on through the watchdog and does not
	// close them: they stay the caller's, who may close its copies once Start has returned. They
	// have no part in Args; a parameter that names one is the caller's to add to Extra.
	ExtraFiles []*os.File
}

// Args returns the kernel's command line for s, one parameter per element.
func (s Spec) Args() ([]string, error) {
	for name, v := range map[string]string{"kernel": s.Kernel, "init": s.Init, "umid": s.UMID, "uml_dir": s.UMLDir} {
		if v == "" {
			return nil, fmt.Errorf("machine spec: %s is empty", name)
		}
		if strings.ContainsAny(v, " \t\n\"") {
			return nil, fmt.Errorf("machine spec: %s %q has white space or quotes, which the kernel command line cannot carry", name, v)
		}
	}
	if s.MemMiB <= 0 {
		return nil, fmt.Errorf("machine spec: memory must be positive, not %d MiB", s.MemMiB)
	}
	args := []string{
		fmt.Sprintf("mem=%dM", s.MemMiB),
		"umid=" + s.UMID,
		"uml_dir=" + s.UMLDir,
	}
	for i, d := range s.Disks {
		if strings.ContainsAny(d, " \t\n\",:") {
			return nil, fmt.Errorf("machine spec: disk %q: its path may not hold white space, quotes, ',' or ':' (UML's ubd syntax)", d)
		}
		args = append(args, fmt.Sprintf("ubd%d=%s", s.FirstDisk+i, d))
	}
	args = append(args,
		// The guest's root is the host's own /, read-only, through hostfs.
		"root=/dev/root", "rootfstype=hostfs", "rootflags=/", "ro",
		"init="+s.Init,
		// Console 0 to our stdout (captured to the console log), no input; no other consoles.
		"con0=null,fd:1", "con=null",
		// The agent's channel: serial line 1 on the two pipes; no other serial lines (the default
		// channel would allocate host ptys).
		"ssl=null", fmt.Sprintf("ssl1=fd:%d,fd:%d", ChannelFD, ChannelFD+1),
		// Legacy ptys take seconds to set up at boot and nothing here uses them.
		"pty.legacy_count=0",
	)
	if s.Seccomp {
		args = append(args, "seccomp=on")
	}
	if s.CPUs > 1 {
		if !s.Seccomp {
			return nil, fmt.Errorf("machine spec: %d processors need seccomp mode (UML has SMP only there)", s.CPUs)
		}
		args = append(args, fmt.Sprintf("ncpus=%d", s.CPUs))
	}
	args = append(args, s.InitParams...)
	args = append(args, s.Extra...)
	return args, nil
}
