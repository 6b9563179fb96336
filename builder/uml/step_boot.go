package uml

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/packer-plugin-sdk/multistep"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"

	"github.com/packer-uml/packer-plugin-uml/uml/agent"
	"github.com/packer-uml/packer-plugin-uml/uml/kernel"
	"github.com/packer-uml/packer-plugin-uml/uml/machine"
	"github.com/packer-uml/packer-plugin-uml/uml/usernet"
)

// guestCPUs is the guest's processor count: cpus when set (the pre-flight step checked the kernel
// can run them), else the host's CPUs up to the kernel's limit, which is 1 for a kernel without SMP
// or without seccomp mode. Processes of the guest then run side by side.
func guestCPUs(cpus int, k *kernel.Kernel) int {
	if cpus > 0 {
		return cpus
	}
	return min(runtime.NumCPU(), k.MaxCPUs)
}

func processors(n int) string {
	if n <= 1 {
		return "1 processor"
	}
	return fmt.Sprintf("%d processors", n)
}

// consoleTailLines is how much of the console an error message quotes.
const consoleTailLines = 25

// stepBoot starts the UML kernel with the image, our own binary as init and the agent's channel.
//
// Uses: ui, stateKernel, stateWorkDir, stateImagePath. Produces: stateMachine, stateConsole.
// Cleanup kills UML if it still runs (after a failure or a cancel).
type stepBoot struct {
	MemoryMiB int
	// CPUs is cpus; 0 means as many as the host has, where the kernel can run them.
	CPUs       int
	ExtraDisks []string
	UMLArgs    []string
	// NetworkArgs attach the guest's network interface (the network module's transport).
	NetworkArgs []string
	// UserNet attaches a libslirp network (network.transport "libslirp") as vec0.
	UserNet bool
	// ProxyAddr, when set, is where the guest agent listens for the guest's HTTP proxy connections.
	ProxyAddr  string
	ConsoleLog string
	Debug      bool

	consoleFile *os.File
	net         *usernet.Net
	disks       []*os.File
}

func (s *stepBoot) Run(ctx context.Context, state multistep.StateBag) multistep.StepAction {
	ui := state.Get(stateUI).(packersdk.Ui)
	k := kernelOf(state)
	workDir := state.Get(stateWorkDir).(string)
	self, err := os.Executable()
	if err != nil {
		return haltf(state, "boot: find the plugin binary: %w", err)
	}
	cwd, err := os.Getwd()
	if err != nil {
		return haltf(state, "boot: find the working directory: %w", err)
	}
	if err := os.MkdirAll(stagingDir(state), 0o700); err != nil {
		return haltf(state, "boot: create the staging directory: %w", err)
	}
	guestCfg, err := agent.GuestConfig{WorkDir: cwd, StagingDir: stagingDir(state), ModulesDir: k.ModulesDir, Debug: s.Debug, ProxyAddr: s.ProxyAddr}.Encode()
	if err != nil {
		return haltf(state, "boot: %w", err)
	}
	spec := machine.Spec{
		Kernel:     kernelBinary(state, k.Path),
		UMID:       "packer-uml-" + randomHex(6),
		UMLDir:     workDir,
		TmpDir:     workDir,
		MemMiB:     s.MemoryMiB,
		Disks:      append([]string{state.Get(stateImagePath).(string)}, s.ExtraDisks...),
		FirstDisk:  1,
		Init:       initBinary(state, self),
		RunAs:      runAs(state),
		InitParams: []string{guestCfg},
		Seccomp:    k.Seccomp,
		CPUs:       guestCPUs(s.CPUs, k),
		Extra:      append(append([]string{}, s.NetworkArgs...), s.UMLArgs...),
	}
	if !strings.ContainsAny(cwd, " \t\n\"") {
		// The start directory, as rootstrap's command line gave it to its builder (modules get
		// $WORKDIR and $rsworkdir from the runner whatever the path).
		spec.InitParams = append(spec.InitParams, "rsworkdir="+cwd)
	}
	if spec.RunAs != nil {
		// UML, as an unprivileged user, may not be able to walk to the image's directory (root's
		// home, a private temporary directory): it opens the disks through descriptors we opened.
		for i, d := range spec.Disks {
			f, err := os.OpenFile(d, os.O_RDWR, 0)
			if err != nil {
				return haltf(state, "boot: open %s: %w", d, err)
			}
			s.disks = append(s.disks, f)
			spec.ExtraFiles = append(spec.ExtraFiles, f)
			spec.Disks[i] = fmt.Sprintf("/proc/self/fd/%d", machine.ExtraFD(len(spec.ExtraFiles)-1))
		}
	}
	if s.UserNet {
		helper, err := usernet.FindHelper()
		if err == nil {
			// Not ctx: the network must outlive a cancel until UML is stopped in Cleanup.
			s.net, err = usernet.Start(context.WithoutCancel(ctx), helper, log.Writer())
		}
		if err != nil {
			return haltf(state, "boot: network.transport \"libslirp\": %w", err)
		}
		spec.ExtraFiles = append(spec.ExtraFiles, s.net.UMLFile())
		spec.Extra = append([]string{s.net.UMLArg(machine.ExtraFD(len(spec.ExtraFiles) - 1))}, spec.Extra...)
		ui.Say(fmt.Sprintf("Network: libslirp (helper pid %d), the guest's %s is %s", s.net.Pid(), usernet.Interface, usernet.GuestIP))
	}
	s.consoleFile, err = os.Create(s.ConsoleLog)
	if err != nil {
		return haltf(state, "boot: create console log: %w", err)
	}
	console := &machine.Console{
		File: s.consoleFile,
		Keep: consoleTailLines,
		// The whole console goes to Packer's log (shown with PACKER_LOG=1).
		OnLine: func(line string) { log.Print("[uml console] " + packersdk.LogSecretFilter.FilterString(line)) },
	}
	ui.Say(fmt.Sprintf("Kernel: %s %s, %s", k.Path, k.Version, k.Mode()))
	ui.Say(fmt.Sprintf("Booting UML (%d MiB memory, %s); console log: %s", s.MemoryMiB, processors(spec.CPUs), s.ConsoleLog))
	args, _ := spec.Args()
	log.Printf("uml command line: %s %v", spec.Kernel, args)
	m, err := machine.Start(spec, self, console)
	if err != nil {
		return haltf(state, "boot: %w", err)
	}
	state.Put(stateMachine, m)
	state.Put(stateConsole, console)
	state.Put(stateBootStart, time.Now())
	return multistep.ActionContinue
}

func (s *stepBoot) Cleanup(state multistep.StateBag) {
	if m, ok := state.GetOk(stateMachine); ok {
		m := m.(*machine.Machine)
		if !m.Exited() {
			log.Printf("killing UML (pid %d)", m.Pid())
			if err := m.Kill(10 * time.Second); err != nil {
				state.Get(stateUI).(packersdk.Ui).Error(err.Error())
			}
		}
	}
	if s.consoleFile != nil {
		s.consoleFile.Close()
	}
	if s.net != nil {
		s.net.Close()
	}
	for _, f := range s.disks {
		f.Close()
	}
}

// consoleTail formats the last console lines for an error message.
func consoleTail(state multistep.StateBag) string {
	c, ok := state.GetOk(stateConsole)
	if !ok {
		return ""
	}
	out := ""
	for _, l := range c.(*machine.Console).Tail() {
		out += "\n    " + l
	}
	return "\nlast lines of the guest console:" + out
}

// stagingDir is where transfers stage their data, inside the build's work directory.
func stagingDir(state multistep.StateBag) string {
	return filepath.Join(state.Get(stateWorkDir).(string), "staging")
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// initBinary is the binary the guest runs as init: ours, or the copy stepUnprivileged made.
func initBinary(state multistep.StateBag, self string) string {
	if p, ok := state.GetOk(stateInitBinary); ok {
		return p.(string)
	}
	return self
}

// kernelBinary is the kernel UML runs: the one found, or the copy stepUnprivileged made.
func kernelBinary(state multistep.StateBag, found string) string {
	if p, ok := state.GetOk(stateKernelBinary); ok {
		return p.(string)
	}
	return found
}

// runAs is the user UML runs as, nil for Packer's own.
func runAs(state multistep.StateBag) *syscall.Credential {
	if c, ok := state.GetOk(stateRunAs); ok {
		return c.(*syscall.Credential)
	}
	return nil
}
