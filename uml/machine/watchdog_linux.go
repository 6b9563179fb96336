package machine

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/packer-uml/packer-plugin-uml/internal/procstat"
)

// WatchdogArg is the argument with which Start runs this binary as UML's watchdog.
//
// Why a process of its own: PR_SET_PDEATHSIG on UML kills the main UML process when the plugin dies,
// but UML's helper processes (its I/O threads are clone()d processes) survive as orphans (seen with
// Debian 12's UML 6.1), and UML calls setsid(2), so its processes form a group of their own that no
// signal to the plugin's group reaches. The watchdog holds a lifeline: a pipe on its standard input
// whose write end only the plugin holds. When the plugin dies, even by SIGKILL, or closes the
// lifeline to stop the machine, the kernel closes that end, the watchdog reads EOF and kills UML's
// whole group.
const WatchdogArg = "uml-watchdog"

// extraFilesEnv tells the watchdog how many descriptors after the agent's line (ExtraFD(0), ...)
// Start gave it to pass on to UML. The watchdog removes it from UML's environment.
const extraFilesEnv = "PACKER_UML_WATCHDOG_EXTRA_FDS"

// runAsEnv tells the watchdog the "uid:gid" to run UML as (Spec.RunAs); unset runs it as itself.
const runAsEnv = "PACKER_UML_WATCHDOG_RUN_AS"

// parseRunAs reads runAsEnv's value.
func parseRunAs(v string) (*syscall.Credential, error) {
	if v == "" {
		return nil, nil
	}
	var uid, gid uint32
	if _, err := fmt.Sscanf(v, "%d:%d", &uid, &gid); err != nil {
		return nil, fmt.Errorf("%s=%q: want uid:gid", runAsEnv, v)
	}
	return &syscall.Credential{Uid: uid, Gid: gid, Groups: []uint32{}}, nil
}

// maxExtraFiles bounds extraFilesEnv: a number beyond it is a mistake, not a machine.
const maxExtraFiles = 64

// parseExtraFiles reads extraFilesEnv's value: empty (an older plugin, or none) is 0.
func parseExtraFiles(v string) (int, error) {
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 || n > maxExtraFiles {
		return 0, fmt.Errorf("%s=%q: want a number of descriptors from 0 to %d", extraFilesEnv, v, maxExtraFiles)
	}
	return n, nil
}

// watchdogFiles are the descriptors the watchdog passes to UML, in order: the agent's line
// (ChannelFD, ChannelFD+1), then n extra files (ExtraFD(0) ... ExtraFD(n-1)).
func watchdogFiles(n int) []*os.File {
	files := []*os.File{os.NewFile(ChannelFD, "line-in"), os.NewFile(ChannelFD+1, "line-out")}
	for i := range n {
		files = append(files, os.NewFile(uintptr(ExtraFD(i)), fmt.Sprintf("extra-%d", i)))
	}
	return files
}

// RunWatchdog is the watchdog's main: args are the kernel and its parameters. It passes descriptors 3
// and 4 (the agent's line), the extra ones Start announced in extraFilesEnv (5, 6, ...) and its
// standard output and error (the console) to UML, and exits with UML's status.
func RunWatchdog(args []string) {
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "uml-watchdog: no kernel given")
		os.Exit(2)
	}
	n, err := parseExtraFiles(os.Getenv(extraFilesEnv))
	if err != nil {
		fmt.Fprintf(os.Stderr, "uml-watchdog: %v\n", err)
		os.Exit(2)
	}
	os.Unsetenv(extraFilesEnv)
	runAs, err := parseRunAs(os.Getenv(runAsEnv))
	if err != nil {
		fmt.Fprintf(os.Stderr, "uml-watchdog: %v\n", err)
		os.Exit(2)
	}
	os.Unsetenv(runAsEnv)
	cmd := exec.Command(args[0], args[1:]...)
	cmd.ExtraFiles = watchdogFiles(n)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	// Same process group as the watchdog (Start made it); if the watchdog itself is killed, UML goes too.
	// The watchdog keeps its own rights (it must be able to kill UML); UML drops to runAs.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Credential: runAs}
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "uml-watchdog: start %s: %v\n", args[0], err)
		os.Exit(2)
	}
	for _, f := range cmd.ExtraFiles {
		f.Close()
	}
	umlGroup := cmd.Process.Pid // UML leads its own session and group (setsid)
	go func() {
		io.Copy(io.Discard, os.Stdin) // returns when the plugin's end closes
		killUML(umlGroup)
		os.Exit(137)
	}()
	err = cmd.Wait()
	code := 0
	if err != nil {
		code = 1
		if ee, ok := err.(*exec.ExitError); ok {
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				code = 128 + int(ws.Signal())
			} else {
				code = ee.ExitCode()
			}
		}
	}
	// UML's helpers, if any outlived it.
	killUML(umlGroup)
	os.Exit(code)
}

// killUML kills UML's process group, and every other process in the watchdog's own group (UML
// before its setsid, had it not got that far).
func killUML(umlGroup int) {
	unix.Kill(-umlGroup, unix.SIGKILL)
	unix.Kill(umlGroup, unix.SIGKILL)
	killOthersInGroup(umlGroup)
	killOthersInGroup(unix.Getpgrp())
}

// killOthersInGroup kills every process of group pgid but the watchdog.
func killOthersInGroup(pgid int) {
	self := os.Getpid()
	for _, p := range procstat.All() {
		if p.Pgrp == pgid && p.Pid != self {
			unix.Kill(p.Pid, unix.SIGKILL)
		}
	}
}
