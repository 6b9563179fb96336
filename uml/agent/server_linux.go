package agent

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/exec"
	"path"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/packer-uml/packer-plugin-uml/uml/fsroot"
	"golang.org/x/sys/unix"
)

// outputGrace is how long an exec waits, after its process exited, for the rest of its output: a
// background process that inherited stdout would otherwise hold the request open forever.
const outputGrace = 5 * time.Second

// ErrShutdown is returned by Serve after a shutdown request was answered.
var ErrShutdown = errors.New("shutdown requested")

// Server answers requests in the guest. Env is added to the environment of every command.
type Server struct {
	Env []string
	Log *log.Logger
	// StagingDir is where staged transfer files are (GuestStagingDir in a guest).
	StagingDir string
	// Owner owns uploaded files, and enables the owners a tar stream carries; in the guest it is
	// root. Nil leaves ownership to the server process (tests run it unprivileged).
	Owner *fsroot.Owner
	// reaper, when the server runs in PID 1, registers the children it starts; nil otherwise.
	reaper *reaper
}

// Serve answers the streams that l accepts until a shutdown request (ErrShutdown) or until the
// listener fails (the host went away).
func (s *Server) Serve(l net.Listener) error {
	shutdown := make(chan struct{})
	var once sync.Once
	errc := make(chan error, 1)
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				errc <- err
				return
			}
			go s.handle(conn, func() { once.Do(func() { close(shutdown) }) })
		}
	}()
	select {
	case <-shutdown:
		return ErrShutdown
	case err := <-errc:
		return err
	}
}

func (s *Server) handle(conn net.Conn, shutdown func()) {
	defer conn.Close()
	fr := &frameReader{r: conn}
	fw := &frameWriter{w: conn}
	payload, err := fr.expect(frameRequest)
	if err != nil {
		s.Log.Printf("read request: %v", err)
		return
	}
	var req Request
	if err := json.Unmarshal(payload, &req); err != nil {
		fw.writeJSON(frameResult, Result{Error: "decode request: " + err.Error()})
		return
	}
	if req.Op == OpExec && req.TTY != nil {
		s.execTTY(&req, fr, fw)
		return
	}
	if req.Op == OpExec {
		s.exec(&req, fr, fw)
		return
	}
	err = s.transfer(&req, fr, fw)
	res := Result{}
	if err != nil {
		res.Error = err.Error()
	}
	if werr := fw.writeJSON(frameResult, res); werr != nil {
		s.Log.Printf("%s %s: send result: %v", req.Op, req.Path, werr)
	}
	if req.Op == OpShutdown {
		shutdown()
	}
}

// transfer runs every operation but exec; its error goes back in the result frame.
func (s *Server) transfer(req *Request, fr *frameReader, fw *frameWriter) error {
	if req.Op == OpShutdown {
		return nil
	}
	root, err := fsroot.Open(rootDir(req.Root))
	if err != nil {
		return err
	}
	defer root.Close()
	in, out, finish, err := s.dataPath(req, fr, fw)
	if err != nil {
		return err
	}
	// A staged file is closed by finish on success; these close it on the error paths (a second
	// Close of an os.File is harmless).
	if f, ok := in.(*os.File); ok {
		defer f.Close()
	}
	if f, ok := out.(*os.File); ok {
		defer f.Close()
	}
	switch req.Op {
	case OpUpload:
		f, err := root.Create(req.Path, fsroot.FileMode(req.Mode), s.Owner)
		if err != nil {
			return err
		}
		_, err = copyBlocks(f, in)
		if err == nil && req.Mtime != 0 {
			tv := unix.NsecToTimeval(time.Unix(req.Mtime, 0).UnixNano())
			err = unix.Futimes(int(f.Fd()), []unix.Timeval{tv, tv})
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("write %s: %w", req.Path, err)
		}
		return finish()
	case OpUntar:
		_, err := root.Extract(req.Path, bufio.NewReaderSize(in, blockSize), fsroot.ExtractOptions{KeepOwners: s.Owner != nil})
		if err != nil {
			// Drain what the host still sends, so that it reads our result instead of a write error.
			io.Copy(io.Discard, in)
			return err
		}
		return finish()
	case OpDownload:
		f, err := root.OpenFile(req.Path)
		if err != nil {
			return err
		}
		defer f.Close()
		if _, err := copyBlocks(out, f); err != nil {
			return fmt.Errorf("read %s: %w", req.Path, err)
		}
		return finish()
	case OpTar:
		opts := fsroot.ArchiveOptions{Contents: req.Contents, Exclude: req.Exclude}
		bw := bufio.NewWriterSize(out, blockSize)
		if err := root.Archive(req.Path, bw, opts); err != nil {
			return err
		}
		if err := bw.Flush(); err != nil {
			return err
		}
		return finish()
	}
	return fmt.Errorf("unknown operation %q", req.Op)
}

// dataPath returns where an operation's data comes from (in) or goes to (out): data frames on the
// stream, or a staged file when the request names one. finish ends the data: eof for frames, close
// for a staged file.
func (s *Server) dataPath(req *Request, fr *frameReader, fw *frameWriter) (io.Reader, io.Writer, func() error, error) {
	if req.Staged == "" {
		dw := dataWriter{fw}
		finish := func() error { return nil }
		if req.Op == OpDownload || req.Op == OpTar {
			finish = dw.Close
		}
		return &dataReader{fr: fr}, dw, finish, nil
	}
	if s.StagingDir == "" || req.Staged != path.Base(req.Staged) || strings.HasPrefix(req.Staged, ".") {
		return nil, nil, nil, fmt.Errorf("staged file %q: no staging directory, or not a plain name", req.Staged)
	}
	p := path.Join(s.StagingDir, req.Staged)
	switch req.Op {
	case OpUpload, OpUntar:
		f, err := os.Open(p)
		if err != nil {
			return nil, nil, nil, err
		}
		return f, nil, f.Close, nil
	case OpDownload, OpTar:
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
		if err != nil {
			return nil, nil, nil, err
		}
		return nil, f, f.Close, nil
	}
	return nil, nil, nil, fmt.Errorf("operation %q has no data", req.Op)
}

// blockSize is how much one read or write moves in the guest. Every guest system call costs about
// 0.1 ms in UML (ptrace mode), so small blocks dominate: reading a staged file through hostfs ran
// at 37 MB/s in 4 KiB reads and 1.1 GB/s in 1 MiB reads (dd, 256 MiB).
const blockSize = 4 << 20

// copyBlocks copies in blockSize pieces. io.Copy would hand two *os.File to ReadFrom, whose
// fallback for files on different filesystems (hostfs to ext4) copies 32 KiB at a time.
func copyBlocks(w io.Writer, r io.Reader) (int64, error) {
	return io.CopyBuffer(struct{ io.Writer }{w}, struct{ io.Reader }{r}, make([]byte, blockSize))
}

func rootDir(root string) string {
	if root == "" {
		return "/"
	}
	return root
}

// exec runs one command. This goroutine reads the stream (stdin and signals); two more copy stdout
// and stderr into frames.
func (s *Server) exec(req *Request, fr *frameReader, fw *frameWriter) {
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
	stdinR, stdinW, err := os.Pipe()
	if err != nil {
		fail(err)
		return
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		fail(err)
		return
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		fail(err)
		return
	}
	// Pipes of outputBlock bytes, so that a fast writer's output is taken in pieces that large
	// (each piece costs system calls in UML and, past a few KiB, a spool file on the channel),
	// and a stdin frame goes into the pipe in one write. Best effort: a smaller pipe only makes
	// the pieces smaller.
	for _, p := range []*os.File{stdinW, outR, errR} {
		unix.FcntlInt(p.Fd(), unix.F_SETPIPE_SZ, outputBlock)
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdinR, outW, errW
	if s.reaper != nil {
		err = s.reaper.start(cmd)
	} else {
		err = cmd.Start()
	}
	stdinR.Close()
	outW.Close()
	errW.Close()
	if err != nil {
		stdinW.Close()
		outR.Close()
		errR.Close()
		fail(fmt.Errorf("start %s: %w", req.Argv[0], err))
		return
	}
	pgid := cmd.Process.Pid
	var copies sync.WaitGroup
	copies.Add(2)
	go copyOutput(&copies, outR, fw, frameStdout)
	go copyOutput(&copies, errR, fw, frameStderr)

	exited := make(chan struct{})
	go s.readInput(fr, stdinW, pgid, exited)

	waitErr := cmd.Wait()
	if s.reaper != nil {
		s.reaper.release(pgid)
	}
	close(exited)
	if !waitTimeout(&copies, outputGrace) {
		s.Log.Printf("exec %s: output still open %s after exit (a background process holds it); not waiting for it",
			req.Argv[0], outputGrace)
		outR.Close()
		errR.Close()
	}
	code := exitCode(cmd.ProcessState, waitErr)
	if err := fw.writeJSON(frameExit, Exit{Code: code}); err != nil {
		s.Log.Printf("exec %s: send exit status: %v", req.Argv[0], err)
	}
}

// command builds the process for an exec request: in a chroot when Root is set, in a process group
// of its own so that a cancel reaches everything it started.
func (s *Server) command(req *Request) (*exec.Cmd, error) {
	argv0 := req.Argv[0]
	if !strings.Contains(argv0, "/") {
		found, err := lookPath(rootDir(req.Root), argv0)
		if err != nil {
			return nil, err
		}
		argv0 = found
	}
	cmd := &exec.Cmd{Path: argv0, Args: req.Argv, Dir: req.Dir}
	if cmd.Dir == "" {
		cmd.Dir = "/"
	}
	cmd.Env = append(append(os.Environ(), s.Env...), req.Env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if req.Root != "" && req.Root != "/" {
		cmd.SysProcAttr.Chroot = req.Root
	}
	return cmd, nil
}

// lookPath finds name in PATH as the command will see it, inside root.
func lookPath(root, name string) (string, error) {
	r, err := fsroot.Open(root)
	if err != nil {
		return "", err
	}
	defer r.Close()
	for _, dir := range strings.Split(defaultPath, ":") {
		p := path.Join(dir, name)
		if f, err := r.OpenFile(p); err == nil {
			f.Close()
			return p, nil
		}
	}
	return "", fmt.Errorf("exec: %q not found in %s (root %s)", name, defaultPath, root)
}

// readInput feeds stdin frames to the process and delivers signal frames to its process group. If the
// stream fails before the process exits (the host cancelled or went away) the group is killed.
func (s *Server) readInput(fr *frameReader, stdin *os.File, pgid int, exited <-chan struct{}) {
	defer stdin.Close()
	for {
		t, p, err := fr.read()
		if err != nil {
			select {
			case <-exited:
			default:
				s.Log.Printf("exec stream ended before the process did (%v): killing process group %d", err, pgid)
				unix.Kill(-pgid, unix.SIGKILL)
			}
			return
		}
		switch t {
		case frameStdin:
			if _, err := stdin.Write(p); err != nil {
				// The process closed its input; drop further stdin but keep reading signals.
				stdin.Close()
			}
		case frameEOF:
			stdin.Close()
		case frameSignal:
			var sig Signal
			if json.Unmarshal(p, &sig) == nil && sig.Signal > 0 {
				unix.Kill(-pgid, unix.Signal(sig.Signal))
			}
		}
	}
}

// outputBlock is the most one read of a process's output takes (and its pipe's size): a frame's
// most, maxPayload.
const outputBlock = maxPayload

func copyOutput(wg *sync.WaitGroup, r *os.File, fw *frameWriter, t frameType) {
	defer wg.Done()
	defer r.Close()
	buf := make([]byte, outputBlock)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			if fw.write(t, buf[:n]) != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func waitTimeout(wg *sync.WaitGroup, d time.Duration) bool {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-time.After(d):
		return false
	}
}

// exitCode maps a process's end to a shell-style status: 128+N for death by signal N.
func exitCode(ps *os.ProcessState, err error) int {
	if ps == nil {
		return 255
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ps.ExitCode()
}
