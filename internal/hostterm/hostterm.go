// Package hostterm gives the plugin the user's terminal for an interactive session in the guest
// (rootstrap's debug shell): the controlling terminal /dev/tty, raw mode, its size and its size
// changes.
//
// Not stdin: Packer starts a plugin with stdin that is not the user's terminal. /dev/tty is the
// terminal of the session Packer runs in, which the plugin shares.
//
// Usage:
//
//	t, err := hostterm.Open()
//	if err != nil {
//		return err // errors.Is(err, hostterm.ErrNoTerminal): say so, fail the build
//	}
//	defer t.Close() // restores the terminal, also when a panic unwinds
//	if err := t.MakeRaw(); err != nil {
//		return err
//	}
//	size, _ := t.Size()
//	code, err := client.ExecTerminal(ctx, req, size, t.Resizes(), t, t)
package hostterm

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"time"

	"golang.org/x/sys/unix"
	"golang.org/x/term"

	"github.com/packer-uml/packer-plugin-uml/uml/agent"
)

// Path is the controlling terminal of the calling process.
const Path = "/dev/tty"

// ErrNoTerminal is the error of Open when the process has no controlling terminal (Packer run by CI,
// by a service, with setsid, ...).
var ErrNoTerminal = errors.New("no terminal")

// Terminal is the user's terminal, open for reading and writing. Read and Write make it the in and
// out of agent.Client.ExecTerminal; SetReadDeadline lets ExecTerminal stop its reader when the
// command ends, so that no keystroke is read after that.
type Terminal struct {
	f *os.File

	mu      sync.Mutex // guards the fields below
	saved   *term.State
	sigs    chan os.Signal
	resizes chan agent.TermSize
	stop    chan struct{}
	closed  bool
}

// Open opens the controlling terminal. Without one, the error wraps ErrNoTerminal.
func Open() (*Terminal, error) {
	// os.OpenFile makes the descriptor non-blocking and puts it in Go's poller, so that read
	// deadlines and Close end a Read in progress. O_NONBLOCK is set on this open file description
	// only: the shell's and Packer's stdin are not affected.
	f, err := os.OpenFile(Path, os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		var errno unix.Errno
		if errors.As(err, &errno) && (errno == unix.ENXIO || errno == unix.ENOENT || errno == unix.ENODEV || errno == unix.ENOTTY) {
			return nil, fmt.Errorf("%w: this process has no controlling terminal to run an interactive session on (%v)", ErrNoTerminal, err)
		}
		return nil, fmt.Errorf("%w: %v", ErrNoTerminal, err)
	}
	t := &Terminal{f: f}
	isTerm := false
	t.control(func(fd int) error { isTerm = term.IsTerminal(fd); return nil })
	if !isTerm {
		f.Close()
		return nil, fmt.Errorf("%w: %s is not a terminal", ErrNoTerminal, Path)
	}
	return t, nil
}

// Read reads what the user types.
func (t *Terminal) Read(p []byte) (int, error) { return t.f.Read(p) }

// Write writes to the terminal.
func (t *Terminal) Write(p []byte) (int, error) { return t.f.Write(p) }

// SetReadDeadline makes a Read in progress, and later ones, fail after d; the zero time clears it.
func (t *Terminal) SetReadDeadline(d time.Time) error { return t.f.SetReadDeadline(d) }

// MakeRaw puts the terminal in raw mode (no echo, no line editing, no signals from ^C or ^Z: the
// keys go to the guest's terminal, which interprets them). Restore or Close undoes it.
func (t *Terminal) MakeRaw() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return os.ErrClosed
	}
	if t.saved != nil {
		return nil
	}
	return t.control(func(fd int) error {
		// A process outside the terminal's foreground process group that changes its mode is
		// stopped by SIGTTOU (and by SIGTTIN when it reads): refuse instead of hanging.
		if fg, err := unix.IoctlGetInt(fd, unix.TIOCGPGRP); err == nil && fg != unix.Getpgrp() {
			return fmt.Errorf("%s: this process is not in the terminal's foreground process group (Packer runs in the background?)", Path)
		}
		st, err := term.MakeRaw(fd)
		if err != nil {
			return fmt.Errorf("raw mode on %s: %w", Path, err)
		}
		t.saved = st
		return nil
	})
}

// Restore puts the terminal back in the mode it had before MakeRaw; without MakeRaw it does nothing.
func (t *Terminal) Restore() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.restore()
}

func (t *Terminal) restore() error {
	if t.saved == nil || t.closed {
		return nil
	}
	st := t.saved
	t.saved = nil
	return t.control(func(fd int) error { return term.Restore(fd, st) })
}

// Size returns the terminal's size. A terminal that reports no size (0x0, as some serial lines
// do) gets the classic 24x80.
func (t *Terminal) Size() (agent.TermSize, error) {
	var s agent.TermSize
	err := t.control(func(fd int) error {
		ws, err := unix.IoctlGetWinsize(fd, unix.TIOCGWINSZ)
		if err != nil {
			return fmt.Errorf("size of %s: %w", Path, err)
		}
		s = agent.TermSize{Rows: ws.Row, Cols: ws.Col}
		return nil
	})
	if err == nil && (s.Rows == 0 || s.Cols == 0) {
		s = agent.TermSize{Rows: 24, Cols: 80}
	}
	return s, err
}

// Resizes returns a channel that receives the terminal's new size after each SIGWINCH, until Close.
// Every call returns the same channel. A size not yet received is replaced by a newer one.
func (t *Terminal) Resizes() <-chan agent.TermSize {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.resizes != nil {
		return t.resizes
	}
	t.resizes = make(chan agent.TermSize, 1)
	if t.closed {
		return t.resizes
	}
	t.sigs = make(chan os.Signal, 1)
	t.stop = make(chan struct{})
	signal.Notify(t.sigs, unix.SIGWINCH)
	go t.watch(t.sigs, t.resizes, t.stop)
	return t.resizes
}

func (t *Terminal) watch(sigs <-chan os.Signal, out chan agent.TermSize, stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		case <-sigs:
			s, err := t.Size()
			if err != nil {
				continue
			}
			// Keep only the latest size: drop one the reader has not taken yet.
			select {
			case <-out:
			default:
			}
			select {
			case out <- s:
			default:
			}
		}
	}
}

// Close restores the terminal's mode, stops watching its size and closes it. It is safe to call more
// than once, and meant to be deferred right after Open: a deferred call runs on every path,
// panics included.
func (t *Terminal) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil
	}
	err := t.restore()
	t.closed = true
	if t.sigs != nil {
		signal.Stop(t.sigs)
		close(t.stop)
	}
	if cerr := t.f.Close(); err == nil {
		err = cerr
	}
	return err
}

// control runs fn on the descriptor. f.Fd would put the descriptor in blocking mode, and a Read
// in progress could then no longer be ended by a deadline or Close.
func (t *Terminal) control(fn func(fd int) error) error {
	rc, err := t.f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) { ferr = fn(int(fd)) }); err != nil {
		return err
	}
	return ferr
}
