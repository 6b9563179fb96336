package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"syscall"
	"time"
)

// TermSize is a terminal's size in character cells: the payload of a resize frame, and the tty
// field of an exec request that runs its command on a terminal (spec.md §3).
type TermSize struct {
	Rows uint16 `json:"rows"`
	Cols uint16 `json:"cols"`
}

// ExecTerminal runs a command in the guest on a pseudo-terminal of size size: the command is the
// leader of a new session whose controlling terminal that is, so a shell there is interactive
// (prompt, line editing, job control, ^C). What the user types (in) goes to the terminal, and what
// the terminal shows (the command's stdout and stderr together) to out. Each size received from
// resize changes the terminal's size (the command gets SIGWINCH); resize may be nil.
//
// The terminal is the guest's: put the user's own terminal in raw mode (package hostterm) so that
// keys reach it unchanged. The guest's TERM is the agent's ("dumb") unless r.Env sets it; pass the
// host's. The end of in is not an end of input for the command (a terminal has none): it must end
// by itself, or by cancel.
//
// It returns the exit status (128+N for death by signal N). Cancelling ctx kills every process of
// the terminal's session, and ExecTerminal returns ctx's error. Before it returns, ExecTerminal
// stops reading in if in has a SetReadDeadline method that works (an *os.File on a terminal, or a
// hostterm.Terminal): it sets a deadline in the past, waits for the pending Read to end, then
// clears the deadline, so no keystroke meant for what follows is read. Other readers are left to
// a goroutine that ends with their next Read.
func (c *Client) ExecTerminal(ctx context.Context, r ExecRequest, size TermSize, resize <-chan TermSize, in io.Reader, out io.Writer) (int, error) {
	if len(r.Argv) == 0 {
		return 0, fmt.Errorf("exec: empty argv")
	}
	req := &Request{Op: OpExec, Argv: r.Argv, Env: r.Env, Dir: r.Dir, Root: r.Root, TTY: &size}
	conn, fr, fw, err := c.open(req)
	if err != nil {
		return 0, err
	}
	defer conn.Close()

	inDone := make(chan struct{})
	go func() {
		defer close(inDone)
		if in == nil {
			return
		}
		buf := make([]byte, 32<<10)
		for {
			n, err := in.Read(buf)
			if n > 0 && fw.write(frameStdin, buf[:n]) != nil {
				return
			}
			if err != nil {
				return
			}
		}
	}()
	// Runs before conn.Close (defers run last first): a keystroke read until then still goes out.
	defer stopReading(in, inDone)

	finished := make(chan struct{})
	defer close(finished)
	go func() {
		done := ctx.Done()
		for {
			select {
			case s, ok := <-resize:
				if !ok {
					resize = nil
					continue
				}
				if fw.writeJSON(frameResize, s) != nil {
					return
				}
			case <-done:
				fw.writeJSON(frameSignal, Signal{Signal: int(syscall.SIGKILL)})
				done = nil
			case <-finished:
				return
			}
		}
	}()

	for {
		t, p, err := fr.read()
		if err != nil {
			if ctx.Err() != nil {
				return 0, ctx.Err()
			}
			return 0, fmt.Errorf("exec %s: %w", r.Argv[0], unexpectedEOF(err))
		}
		switch t {
		case frameStdout, frameStderr:
			if out != nil {
				out.Write(p)
			}
		case frameExit:
			var e Exit
			if err := json.Unmarshal(p, &e); err != nil {
				return 0, fmt.Errorf("exec %s: decode exit status: %w", r.Argv[0], err)
			}
			if ctx.Err() != nil {
				return e.Code, ctx.Err()
			}
			return e.Code, nil
		case frameResult:
			if err := resultError(p); err != nil {
				return 0, err
			}
			return 0, fmt.Errorf("exec %s: result without exit status: %w", r.Argv[0], ErrUnexpectedFrame)
		default:
			return 0, fmt.Errorf("exec %s: got %s frame: %w", r.Argv[0], t, ErrUnexpectedFrame)
		}
	}
}

// stopReading ends the goroutine that reads in, when in supports read deadlines; see ExecTerminal.
func stopReading(in io.Reader, done <-chan struct{}) {
	d, ok := in.(interface{ SetReadDeadline(time.Time) error })
	if !ok || d.SetReadDeadline(time.Now()) != nil {
		return
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		// A reader whose deadline does not end its Read (a wrapper, a file out of the poller):
		// leave it rather than hang.
	}
	d.SetReadDeadline(time.Time{})
}
