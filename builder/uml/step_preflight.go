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

	"github.com/packer-uml/packer-plugin-uml/uml/kernel"
)

// stepPreflight checks everything the build needs from the host before anything is written, and
// reports every missing piece in one error that says how to get it.
//
// Uses: ui. Produces: stateKernel, stateWorkDir (removed by Cleanup).
type stepPreflight struct {
	Kernel string
	FSType string
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
	}

	if tool, ok := mkfsTools[s.FSType]; ok {
		if _, err := lookSbin(tool.program); err != nil {
			problems = append(problems, fmt.Sprintf("%s, needed for fstype %q, is not installed: install %s (apt-get install %s)", tool.program, s.FSType, tool.pkg, tool.pkg))
		}
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
	ui.Say(fmt.Sprintf("Using UML kernel %s (Linux %s), %s mode", k.Path, k.Version, k.Mode()))
	return multistep.ActionContinue
}

func (s *stepPreflight) Cleanup(state multistep.StateBag) {
	if dir, ok := state.GetOk(stateWorkDir); ok {
		os.RemoveAll(dir.(string))
	}
}

// lookSbin finds a system program for the guest, whose PATH includes the sbin directories that an
// ordinary user's PATH often lacks.
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
