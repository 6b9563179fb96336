package agent

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/packer-uml/packer-plugin-uml/internal/procstat"
	"github.com/packer-uml/packer-plugin-uml/internal/pty"
)

// execTTY runs one command on a pseudo-terminal (an exec request with tty set; spec.md §3): the
// command leads a new session with the terminal's slave as its controlling terminal and its stdin,
// stdout and stderr. One goroutine copies the master's output into stdout frames; this one's
// helper reads the stream (stdin, resize and signal frames).
func (s *Server) execTTY(req *Request, fr *frameReader, fw *frameWriter) {
	fail := func(err error) { fw.writeJSON(frameResult, Result{Error: err.Error()}) }
	if len(req.Argv) == 0 {
		fail(errors.New("exec: empty argv"))
		return
	}
	cmd, err := s.command(req)
	if err != nil {
		fail(err)
		return
	}
	master, slave, err := pty.Open()
	if err != nil {
		fail(fmt.Errorf("exec %s: allocate a terminal: %w", req.Argv[0], err))
		return
	}
	defer master.Close()
	if err := pty.SetSize(master, req.TTY.Rows, req.TTY.Cols); err != nil {
		slave.Close()
		fail(fmt.Errorf("exec %s: set terminal size: %w", req.Argv[0], err))
		return
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	// A session of its own (its process group too: a session leader cannot call setpgid, so
	// Setpgid goes), with the slave, the child's fd 0, as its controlling terminal.
	cmd.SysProcAttr.Setpgid = false
	cmd.SysProcAttr.Setsid = true
	cmd.SysProcAttr.Setctty = true
	cmd.SysProcAttr.Ctty = 0
	if s.reaper != nil {
		err = s.reaper.start(cmd)
	} else {
		err = cmd.Start()
	}
	// The child has its copies; ours would keep the master from ever reading EIO.
	slave.Close()
	if err != nil {
		fail(fmt.Errorf("start %s: %w", req.Argv[0], err))
		return
	}
	sid := cmd.Process.Pid
	var output sync.WaitGroup
	output.Add(1)
	// Read until EIO: the master reports it once every process has closed the slave, after the
	// output still buffered has been read.
	go copyOutput(&output, master, fw, frameStdout)

	exited := make(chan struct{})
	go s.readTTYInput(fr, master, sid, exited)

	waitErr := cmd.Wait()
	if s.reaper != nil {
		s.reaper.release(sid)
	}
	close(exited)
	if !waitTimeout(&output, outputGrace) {
		s.Log.Printf("exec %s: terminal still open %s after exit (a background process holds it); not waiting for it",
			req.Argv[0], outputGrace)
		// Closing the master hangs up the terminal (its processes get SIGHUP) and ends the copy.
		master.Close()
	}
	code := exitCode(cmd.ProcessState, waitErr)
	if err := fw.writeJSON(frameExit, Exit{Code: code}); err != nil {
		s.Log.Printf("exec %s: send exit status: %v", req.Argv[0], err)
	}
}

// readTTYInput feeds stdin frames to the terminal, applies resize frames and delivers signal
// frames: SIGKILL (cancel) to every process of the session, others to the command's process
// group. An eof frame changes nothing: a terminal has no end of input. If the stream fails before
// the command exits (the host cancelled or went away) the session is killed.
func (s *Server) readTTYInput(fr *frameReader, master *os.File, sid int, exited <-chan struct{}) {
	// Input goes through a goroutine of its own: a write blocks while the terminal's input buffer
	// is full (a paste into a command that does not read), and resize and signal frames, a cancel
	// above all, must not wait behind it.
	input := make(chan []byte, 64)
	defer close(input)
	go func() {
		for p := range input {
			// An error means the terminal is gone (the command ended): drop the input.
			master.Write(p)
		}
	}()
	for {
		t, p, err := fr.read()
		if err != nil {
			select {
			case <-exited:
			default:
				s.Log.Printf("exec stream ended before the process did (%v): killing session %d", err, sid)
				killSession(sid)
			}
			return
		}
		switch t {
		case frameStdin:
			input <- bytes.Clone(p) // the frame reader reuses p
		case frameResize:
			var size TermSize
			if json.Unmarshal(p, &size) == nil {
				// The kernel sends SIGWINCH to the terminal's foreground process group.
				pty.SetSize(master, size.Rows, size.Cols)
			}
		case frameSignal:
			var sig Signal
			if json.Unmarshal(p, &sig) != nil || sig.Signal <= 0 {
				continue
			}
			select {
			case <-exited:
				continue // the pid may be another process's now
			default:
			}
			if unix.Signal(sig.Signal) == unix.SIGKILL {
				killSession(sid)
			} else {
				unix.Kill(-sid, unix.Signal(sig.Signal))
			}
		}
	}
}

// killSession kills the process group of the session leader sid, then every other process of its
// session: an interactive shell runs each job in a process group of its own.
func killSession(sid int) {
	unix.Kill(-sid, unix.SIGKILL)
	for _, p := range procstat.All() {
		if p.Pid == 1 || p.Pid == os.Getpid() {
			continue
		}
		if got, err := unix.Getsid(p.Pid); err == nil && got == sid {
			unix.Kill(p.Pid, unix.SIGKILL)
		}
	}
}
