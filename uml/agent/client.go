package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/hashicorp/yamux"
)

// Client is the host's side of the protocol: each call opens one stream. It is safe for concurrent use:
// streams are independent, and yamux serialises their frames on the line.
type Client struct {
	sess *yamux.Session
	// stagingDir, when set, is the host directory the guest mounts at GuestStagingDir: transfers
	// put their data in files there instead of sending it over the line.
	stagingDir string
}

// NewClient wraps an established session (see channel.Dial). With stagingDir set, transfers go
// through files in it (the guest must have been booted with the same GuestConfig.StagingDir).
func NewClient(sess *yamux.Session, stagingDir string) *Client {
	return &Client{sess: sess, stagingDir: stagingDir}
}

// Close ends the session; the guest agent sees its line close and powers the guest off.
func (c *Client) Close() error { return c.sess.Close() }

// Done is closed when the session ends, for whatever reason.
func (c *Client) Done() <-chan struct{} { return c.sess.CloseChan() }

// open starts a stream with its request frame.
func (c *Client) open(req *Request) (net.Conn, *frameReader, *frameWriter, error) {
	conn, err := c.sess.Open()
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%s: open stream: %w", req.Op, err)
	}
	fw := &frameWriter{w: conn}
	if err := fw.writeJSON(frameRequest, req); err != nil {
		conn.Close()
		return nil, nil, nil, fmt.Errorf("%s: send request: %w", req.Op, err)
	}
	return conn, &frameReader{r: conn}, fw, nil
}

// ExecRequest describes one command for Exec.
type ExecRequest struct {
	Argv []string
	Env  []string // KEY=value, added to the agent's environment
	Dir  string   // working directory, after the chroot
	Root string   // chroot(2) into this guest directory first; empty for none
}

// Exec runs a command in the guest and streams its input and output; nil streams are allowed. It
// returns the exit status (128+N for death by signal N). Cancelling ctx kills the command's process
// group in the guest, and Exec returns ctx's error.
func (c *Client) Exec(ctx context.Context, r ExecRequest, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	req := &Request{Op: OpExec, Argv: r.Argv, Env: r.Env, Dir: r.Dir, Root: r.Root}
	conn, fr, fw, err := c.open(req)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	go func() {
		if stdin != nil {
			buf := make([]byte, chunkSize)
			for {
				n, err := stdin.Read(buf)
				if n > 0 && fw.write(frameStdin, buf[:n]) != nil {
					return
				}
				if err != nil {
					break
				}
			}
		}
		fw.write(frameEOF, nil)
	}()
	finished := make(chan struct{})
	defer close(finished)
	go func() {
		select {
		case <-ctx.Done():
			fw.writeJSON(frameSignal, Signal{Signal: int(syscall.SIGKILL)})
		case <-finished:
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
		case frameStdout:
			if stdout != nil {
				stdout.Write(p)
			}
		case frameStderr:
			if stderr != nil {
				stderr.Write(p)
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

// send runs an operation whose data flows from host to guest, then waits for the guest's result.
func (c *Client) send(req *Request, data io.Reader) error {
	conn, fr, fw, err := c.open(req)
	if err != nil {
		return err
	}
	defer conn.Close()
	// Copy in the background: if the guest fails early it sends its result while we still write.
	// A staged request has its data in the staged file: nothing follows on the stream.
	copyErr := make(chan error, 1)
	if req.Staged != "" {
		copyErr <- nil
	} else {
		go c.sendData(fw, data, copyErr)
	}
	payload, err := fr.expect(frameResult)

	if err != nil {
		return fmt.Errorf("%s %s: %w", req.Op, req.Path, unexpectedEOF(err))
	}
	if rerr := resultError(payload); rerr != nil {
		return fmt.Errorf("%s %s: %w", req.Op, req.Path, rerr)
	}
	if err := <-copyErr; err != nil {
		return fmt.Errorf("%s %s: %w", req.Op, req.Path, err)
	}
	return nil
}

// sendData copies data into data frames, then eof.
func (c *Client) sendData(fw *frameWriter, data io.Reader, done chan<- error) {
	dw := dataWriter{fw}
	_, err := io.CopyBuffer(dw, data, make([]byte, chunkSize))
	if err == nil {
		err = dw.Close()
	}
	done <- err
}

// receive runs an operation whose data flows from guest to host, then reads the guest's result.
func (c *Client) receive(req *Request, w io.Writer) error {
	conn, fr, _, err := c.open(req)
	if err != nil {
		return err
	}
	defer conn.Close()
	// A result frame in place of data is the guest's error (dataReader returns it as a RemoteError).
	if _, err := io.CopyBuffer(w, &dataReader{fr: fr}, make([]byte, chunkSize)); err != nil {
		return fmt.Errorf("%s %s: %w", req.Op, req.Path, err)
	}
	payload, err := fr.expect(frameResult)
	if err != nil {
		return fmt.Errorf("%s %s: %w", req.Op, req.Path, unexpectedEOF(err))
	}
	if err := resultError(payload); err != nil {
		return fmt.Errorf("%s %s: %w", req.Op, req.Path, err)
	}
	return nil
}

// Upload writes the bytes of r to the file path (inside root), owned by root with mode perm;
// mtime is Unix seconds, 0 for the time of writing.
func (c *Client) Upload(root, path string, perm uint32, mtime int64, r io.Reader) error {
	return c.put(&Request{Op: OpUpload, Root: root, Path: path, Mode: perm, Mtime: mtime}, r)
}

// Untar extracts the tar stream r under the directory path (inside root).
func (c *Client) Untar(root, path string, r io.Reader) error {
	return c.put(&Request{Op: OpUntar, Root: root, Path: path}, r)
}

// Download copies the file path (inside root) to w.
func (c *Client) Download(root, path string, w io.Writer) error {
	return c.get(&Request{Op: OpDownload, Root: root, Path: path}, w)
}

// Tar writes path (inside root) to w as a tar stream; see Request.Contents and Request.Exclude.
func (c *Client) Tar(root, path string, contents bool, exclude []string, w io.Writer) error {
	return c.get(&Request{Op: OpTar, Root: root, Path: path, Contents: contents, Exclude: exclude}, w)
}

// put sends data to the guest: through a staged file when there is a staging directory (the guest
// reads it through hostfs, much faster than the serial line carries it), else in data frames.
func (c *Client) put(req *Request, r io.Reader) error {
	if c.stagingDir == "" {
		return c.send(req, r)
	}
	f, err := createStaged(c.stagingDir, "put-")
	if err != nil {
		return fmt.Errorf("%s %s: stage: %w", req.Op, req.Path, err)
	}
	defer os.Remove(f.Name())
	_, err = io.CopyBuffer(f, r, make([]byte, 1<<20))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("%s %s: stage: %w", req.Op, req.Path, err)
	}
	req.Staged = filepath.Base(f.Name())
	return c.send(req, strings.NewReader(""))
}

// createStaged makes a staged file that the guest can read and write whatever user UML runs as
// (an unprivileged one when Packer runs as root): the staging directory itself is private (0700),
// so the file's mode opens it to nobody else.
func createStaged(dir, prefix string) (*os.File, error) {
	f, err := os.CreateTemp(dir, prefix)
	if err != nil {
		return nil, err
	}
	if err := f.Chmod(0o666); err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, err
	}
	return f, nil
}

// get receives data from the guest, through a staged file when there is a staging directory.
func (c *Client) get(req *Request, w io.Writer) error {
	if c.stagingDir == "" {
		return c.receive(req, w)
	}
	f, err := createStaged(c.stagingDir, "get-")
	if err != nil {
		return fmt.Errorf("%s %s: stage: %w", req.Op, req.Path, err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	req.Staged = filepath.Base(f.Name())
	if err := c.send(req, strings.NewReader("")); err != nil {
		return err
	}
	if _, err := io.CopyBuffer(w, f, make([]byte, 1<<20)); err != nil {
		return fmt.Errorf("%s %s: %w", req.Op, req.Path, err)
	}
	return nil
}

// Shutdown asks the guest to sync, unmount and power off; it returns once the guest has agreed.
func (c *Client) Shutdown() error {
	conn, fr, _, err := c.open(&Request{Op: OpShutdown})
	if err != nil {
		return err
	}
	defer conn.Close()
	payload, err := fr.expect(frameResult)
	if err != nil {
		return fmt.Errorf("shutdown: %w", unexpectedEOF(err))
	}
	return resultError(payload)
}
