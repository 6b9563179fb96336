// Package usernet gives a UML guest an IP network without root: a user-mode TCP/IP stack
// (libslirp, run by Debian's libslirp-helper) on one end of a datagram socketpair, UML's vector
// driver on the other (transport=fd). The guest sees a NATed network with the host's usual slirp
// addresses: it configures itself as GuestIP/Netmask on Interface, routes through Gateway and asks
// Nameserver; libslirp turns its connections into the host's own sockets, made as the building
// user. It has no Packer types.
//
// Security: libslirp by default lets the guest reach the host's loopback: a connection to Gateway
// (10.0.2.2) is a connection to the host's 127.0.0.1, so a guest can talk to every service that
// listens only on the host's loopback, as the building user. The helper's --disable-host-loopback
// flag forbids that (tried with 4.3.0: the guest's connect to 10.0.2.2 then fails with "Network is
// unreachable", while DNS through Nameserver still works). Start keeps libslirp's default (the
// tests fetch from a server on 127.0.0.1 that way, as a package proxy on the host would be
// reached), which the user documentation must say. The helper's --restrict flag would cut the
// guest off from everything but the host, which is not what a build wants.
package usernet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// HelperName is the program Start runs: libslirp-helper from Debian's package of the same name
// (4.3.0 in Debian 12).
const HelperName = "libslirp-helper"

// The guest's side of the network: libslirp's defaults, which the helper keeps unless told otherwise.
const (
	Interface  = "vec0"          // the guest's interface: UML's vector driver names it vec<N>
	GuestIP    = "10.0.2.15"     // the guest's address (also the first one libslirp's DHCP gives)
	Netmask    = "255.255.255.0" // the network, 10.0.2.0/24
	PrefixLen  = 24              // Netmask as a prefix length, for ip addr add GuestIP/24
	Gateway    = "10.0.2.2"      // the default route; also the host's own loopback (see the package doc)
	Nameserver = "10.0.2.3"      // libslirp's DNS forwarder, which asks the host's resolvers
)

// helperFD is the descriptor the helper receives its end of the socketpair as.
const helperFD = 3

// FindHelper looks HelperName up on PATH.
func FindHelper() (string, error) {
	p, err := exec.LookPath(HelperName)
	if err != nil {
		return "", fmt.Errorf("%s not found on PATH (%w): the user-mode network needs it; install Debian's libslirp-helper package (apt-get install libslirp-helper)", HelperName, err)
	}
	return p, nil
}

// Net is one running helper and the socketpair between it and UML.
type Net struct {
	cmd     *exec.Cmd
	uml     *os.File
	done    chan struct{} // closed when the helper has been waited for
	waitErr error         // how the helper ended; valid once done is closed
	once    sync.Once
}

// Start makes the socketpair and starts helperPath (FindHelper's answer) on one end of it. The
// helper's output goes to log (nil: discarded). The helper ends when Close is called, when ctx is
// done, and, through --exit-with-parent (PR_SET_PDEATHSIG), when this process dies.
//
// Two caveats of --exit-with-parent: the kernel signals the helper when the thread that started it
// exits, not the process (Go's runtime only ends threads that a goroutine locked with
// runtime.LockOSThread and never unlocked, which this package does not do); and a process that
// dies before the helper has called prctl leaves it behind. Closing UML's end of the socketpair does
// not end the helper: an AF_UNIX datagram socket tells its peer nothing when the other end closes.
func Start(ctx context.Context, helperPath string, log io.Writer) (*Net, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("usernet: socketpair: %w", err)
	}
	helperEnd := os.NewFile(uintptr(fds[0]), "usernet-helper")
	umlEnd := os.NewFile(uintptr(fds[1]), "usernet-uml")
	// The helper's end is the child's alone once it runs.
	defer helperEnd.Close()

	cmd := exec.CommandContext(ctx, helperPath, fmt.Sprintf("--fd=%d", helperFD), "--exit-with-parent")
	cmd.ExtraFiles = []*os.File{helperEnd} // becomes helperFD
	if log != nil {
		cmd.Stdout, cmd.Stderr = log, log
	}
	// A process group of its own: the terminal's Ctrl-C reaches Packer, which stops the build in
	// order, not the helper, which would cut the network under the build's cleanup.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.WaitDelay = 2 * time.Second
	if err := cmd.Start(); err != nil {
		umlEnd.Close()
		return nil, fmt.Errorf("usernet: start %s: %w", helperPath, err)
	}
	n := &Net{cmd: cmd, uml: umlEnd, done: make(chan struct{})}
	go func() {
		n.waitErr = cmd.Wait()
		close(n.done)
	}()
	return n, nil
}

// UMLFile is UML's end of the socketpair: put it in machine.Spec.ExtraFiles and name its
// descriptor there (machine.ExtraFD) in UMLArg. It stays open until Close.
func (n *Net) UMLFile() *os.File { return n.uml }

// UMLArg is the kernel parameter that makes Interface on UML's end, which UML has as descriptor
// fd: the vector driver's fd transport, one packet per system call (vec=0).
func (n *Net) UMLArg(fd int) string {
	return fmt.Sprintf("%s:transport=fd,fd=%d,vec=0", Interface, fd)
}

// Pid is the helper's process id.
func (n *Net) Pid() int { return n.cmd.Process.Pid }

// Done is closed when the helper has exited (by Close, or by itself: then the guest's network is gone).
func (n *Net) Done() <-chan struct{} { return n.done }

// Err is how the helper ended; valid once Done is closed.
func (n *Net) Err() error {
	<-n.done
	return n.waitErr
}

// Close kills the helper, waits for it and closes UML's end of the socketpair. It may be called
// more than once; only the first call does anything.
func (n *Net) Close() error {
	var err error
	n.once.Do(func() {
		select {
		case <-n.done:
		default:
			// It keeps no state worth saving: SIGKILL, then reap.
			n.cmd.Process.Kill()
			select {
			case <-n.done:
			case <-time.After(10 * time.Second):
				err = errors.New("usernet: the helper did not end after SIGKILL")
			}
		}
		if cerr := n.uml.Close(); err == nil {
			err = cerr
		}
	})
	return err
}
