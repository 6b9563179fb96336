package machine

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/packer-uml/packer-plugin-uml/internal/procstat"
)

// Machine is one running UML process.
type Machine struct {
	cmd     *exec.Cmd
	channel *pipeConn
	// lifeline is the write end of the watchdog's standard input: never written, closed when the
	// machine is done or this process dies.
	lifeline *os.File
	done     chan struct{} // closed when the process has been waited for
	mu       sync.Mutex    // guards waitErr
	waitErr  error
}

// Start boots spec under a watchdog: watchdog is this program's own binary, which RunWatchdog runs
// when given WatchdogArg. The console (UML's stdout and stderr) is copied to console. The returned
// machine's Channel is the host end of the agent's line.
func Start(spec Spec, watchdog string, console io.Writer) (*Machine, error) {
	args, err := spec.Args()
	if err != nil {
		return nil, err
	}
	if len(spec.ExtraFiles) > maxExtraFiles {
		return nil, fmt.Errorf("machine spec: %d extra files, at most %d", len(spec.ExtraFiles), maxExtraFiles)
	}
	for i, f := range spec.ExtraFiles {
		if f == nil {
			return nil, fmt.Errorf("machine spec: extra file %d (descriptor %d) is nil", i, ExtraFD(i))
		}
	}
	// Two pipes, one per direction (ssl1=fd:3,fd:4). A socketpair works as well; the input stalls once
	// blamed on it came from UML's tty throttle, which the channel's credit layer avoids.
	toGuestR, toGuestW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("pipe for the agent channel: %w", err)
	}
	fromGuestR, fromGuestW, err := os.Pipe()
	if err != nil {
		toGuestR.Close()
		toGuestW.Close()
		return nil, fmt.Errorf("pipe for the agent channel: %w", err)
	}
	defer toGuestR.Close()
	defer fromGuestW.Close()
	conn := &pipeConn{r: fromGuestR, w: toGuestW}
	lifeR, lifeW, err := os.Pipe()
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("pipe for the watchdog: %w", err)
	}
	defer lifeR.Close()

	cmd := exec.Command(watchdog, append([]string{WatchdogArg, spec.Kernel}, args...)...)
	cmd.Stdin = lifeR
	cmd.Stdout, cmd.Stderr = console, console
	// ChannelFD and ChannelFD+1, then ExtraFD(0), ExtraFD(1), ...; the watchdog learns how many
	// extra ones to pass on from extraFilesEnv.
	cmd.ExtraFiles = append([]*os.File{toGuestR, fromGuestW}, spec.ExtraFiles...)
	cmd.Env = append(os.Environ(), "TMPDIR="+spec.TmpDir, fmt.Sprintf("%s=%d", extraFilesEnv, len(spec.ExtraFiles)))
	if spec.RunAs != nil {
		cmd.Env = append(cmd.Env, fmt.Sprintf("%s=%d:%d", runAsEnv, spec.RunAs.Uid, spec.RunAs.Gid))
	}
	// UML opens ./root_fs as ubd0 when no ubd0 is given (the image is ubd1): start it in our own
	// empty directory, so that it never opens a file of the user's by that name.
	cmd.Dir = spec.TmpDir
	cmd.SysProcAttr = &syscall.SysProcAttr{
		// A group of its own for the watchdog, UML and UML's helpers: the terminal's Ctrl-C reaches
		// Packer, not UML, and Kill ends them all with one kill(-pgid).
		Setpgid: true,
	}
	// UML's helpers may keep the console pipe open a moment after UML itself exits.
	cmd.WaitDelay = 2 * time.Second

	m := &Machine{cmd: cmd, channel: conn, lifeline: lifeW, done: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		conn.Close()
		lifeW.Close()
		return nil, fmt.Errorf("start %s: %w", spec.Kernel, err)
	}
	go func() {
		err := cmd.Wait()
		m.mu.Lock()
		m.waitErr = err
		m.mu.Unlock()
		m.lifeline.Close()
		close(m.done)
	}()
	return m, nil
}

// Channel is the host end of the agent's serial line.
func (m *Machine) Channel() io.ReadWriteCloser { return m.channel }

// pipeConn joins the two pipe ends the host keeps into one stream.
type pipeConn struct {
	r *os.File // what the guest writes
	w *os.File // what the guest reads
}

func (p *pipeConn) Read(b []byte) (int, error)  { return p.r.Read(b) }
func (p *pipeConn) Write(b []byte) (int, error) { return p.w.Write(b) }

// Close closes both ends; a Read or Write blocked on them returns at once.
func (p *pipeConn) Close() error {
	errW := p.w.Close()
	errR := p.r.Close()
	if errW != nil {
		return errW
	}
	return errR
}

// Pid is the watchdog's process id, which is also the id of the process group of UML.
func (m *Machine) Pid() int { return m.cmd.Process.Pid }

// Done is closed when the UML process has exited.
func (m *Machine) Done() <-chan struct{} { return m.done }

// Err is how the process ended; valid after Done is closed.
func (m *Machine) Err() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.waitErr
}

// Exited reports whether the process has ended.
func (m *Machine) Exited() bool {
	select {
	case <-m.done:
		return true
	default:
		return false
	}
}

// Kill ends UML and its helper processes at once and waits for them (at most timeout): closing the
// lifeline makes the watchdog kill UML's group; a watchdog that does not end in time is killed
// with its group.
func (m *Machine) Kill(timeout time.Duration) error {
	m.lifeline.Close()
	m.channel.Close()
	select {
	case <-m.done:
		return nil
	case <-time.After(timeout / 2):
	}
	// The watchdog did not end UML (it may be stopped or stuck itself): kill UML's own group
	// (UML leads it, as a child of the watchdog), then the watchdog's.
	for _, p := range procstat.All() {
		if p.PPid == m.cmd.Process.Pid {
			unix.Kill(-p.Pid, unix.SIGKILL)
			unix.Kill(p.Pid, unix.SIGKILL)
		}
	}
	unix.Kill(-m.cmd.Process.Pid, unix.SIGKILL)
	select {
	case <-m.done:
		return nil
	case <-time.After(timeout / 2):
		return errors.New("UML's watchdog did not end after SIGKILL")
	}
}

// Wait waits up to timeout for the process to exit by itself; it reports whether it did.
func (m *Machine) Wait(timeout time.Duration) bool {
	select {
	case <-m.done:
		return true
	case <-time.After(timeout):
		return false
	}
}
