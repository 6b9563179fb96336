package machine

import (
	"fmt"
	"io"
	"os"
	"os/exec"
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

// RunWatchdog is the watchdog's main: args are the kernel and its parameters. It passes descriptors 3
// and 4 (the agent's line) and its standard output and error (the console) to UML, and exits with
// UML's status.
func RunWatchdog(args []string) {
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "uml-watchdog: no kernel given")
		os.Exit(2)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.ExtraFiles = []*os.File{os.NewFile(ChannelFD, "line-in"), os.NewFile(ChannelFD+1, "line-out")}
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	// Same process group as the watchdog (Start made it); if the watchdog itself is killed, UML goes too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
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
	err := cmd.Wait()
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
