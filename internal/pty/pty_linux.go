// Package pty allocates Unix 98 pseudo-terminals: the guest agent runs interactive commands on one,
// and the tests of package hostterm give a child process a controlling terminal with one.
package pty

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// Open allocates a pseudo-terminal. The master is non-blocking and in Go's poller, so that Close
// ends a Read in progress; the slave is a blocking descriptor, as a child's stdin, stdout and stderr
// must be. Neither becomes the caller's controlling terminal. Both are close-on-exec.
func Open() (master, slave *os.File, err error) {
	master, err = os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		// A devpts mounted with newinstance has its own ptmx, which /dev/ptmx reaches only on
		// kernels from 4.7; try that one directly.
		var err2 error
		if master, err2 = os.OpenFile("/dev/pts/ptmx", os.O_RDWR|unix.O_NOCTTY, 0); err2 != nil {
			return nil, nil, err
		}
	}
	var n int
	err = control(master, func(fd int) error {
		if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
			return fmt.Errorf("unlock pty: %w", err)
		}
		var err error
		if n, err = unix.IoctlGetInt(fd, unix.TIOCGPTN); err != nil {
			return fmt.Errorf("pty number: %w", err)
		}
		return nil
	})
	if err != nil {
		master.Close()
		return nil, nil, err
	}
	name := fmt.Sprintf("/dev/pts/%d", n)
	fd, err := unix.Open(name, unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		master.Close()
		return nil, nil, &os.PathError{Op: "open", Path: name, Err: err}
	}
	return master, os.NewFile(uintptr(fd), name), nil
}

// SetSize sets the window size of the terminal f (master or slave); the kernel sends SIGWINCH to
// the terminal's foreground process group when the size changes.
func SetSize(f *os.File, rows, cols uint16) error {
	return control(f, func(fd int) error {
		return unix.IoctlSetWinsize(fd, unix.TIOCSWINSZ, &unix.Winsize{Row: rows, Col: cols})
	})
}

// Size returns the window size of the terminal f.
func Size(f *os.File) (rows, cols uint16, err error) {
	err = control(f, func(fd int) error {
		ws, err := unix.IoctlGetWinsize(fd, unix.TIOCGWINSZ)
		if err != nil {
			return err
		}
		rows, cols = ws.Row, ws.Col
		return nil
	})
	return rows, cols, err
}

// control runs fn on f's descriptor without f.Fd, which would put a pollable file in blocking mode
// (and a blocked Read could then no longer be ended by Close or a deadline).
func control(f *os.File, fn func(fd int) error) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) { ferr = fn(int(fd)) }); err != nil {
		return err
	}
	return ferr
}
