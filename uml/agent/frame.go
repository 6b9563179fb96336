package agent

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"sync"
)

// Request is the first frame of every stream; see spec.md §3 for which fields each Op reads.
type Request struct {
	Op       string   `json:"op"`
	Argv     []string `json:"argv,omitempty"`
	Env      []string `json:"env,omitempty"`
	Dir      string   `json:"dir,omitempty"`
	Root     string   `json:"root,omitempty"`
	Path     string   `json:"path,omitempty"`
	Mode     uint32   `json:"mode,omitempty"`
	Mtime    int64    `json:"mtime,omitempty"`
	Exclude  []string `json:"exclude,omitempty"`
	Contents bool     `json:"contents,omitempty"`
	// Staged names a file in the staging directory that holds the operation's data instead of data
	// frames (see spec.md §3).
	Staged string `json:"staged,omitempty"`
	// TTY, on an exec request, runs the command on a pseudo-terminal of this size (see spec.md §3).
	TTY *TermSize `json:"tty,omitempty"`
}

// Exit is the payload of an exit frame.
type Exit struct {
	Code int `json:"code"`
}

// Result is the payload of a result frame; an empty Error means success.
type Result struct {
	Error string `json:"error,omitempty"`
}

// Signal is the payload of a signal frame: a signal number for the process group.
type Signal struct {
	Signal int `json:"signal"`
}

// frameWriter writes frames to one stream. Several goroutines may write (stdout and stderr copiers,
// stdin and cancel): mu keeps each frame's header and payload together.
type frameWriter struct {
	w   io.Writer
	mu  sync.Mutex // guards hdr and the order of writes on w
	hdr [headerSize]byte
}

func (fw *frameWriter) write(t frameType, payload []byte) error {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	if len(payload) > maxPayload {
		return fmt.Errorf("write %s frame of %d bytes: %w", t, len(payload), ErrFrameTooLarge)
	}
	fw.hdr[0] = byte(t)
	binary.BigEndian.PutUint32(fw.hdr[sizeOfType:], uint32(len(payload)))
	// One write for header and payload would need a copy; two writes are fine on a yamux stream,
	// which buffers nothing and sends each write as its own data frame.
	if _, err := fw.w.Write(fw.hdr[:]); err != nil {
		return err
	}
	if len(payload) == 0 {
		return nil
	}
	_, err := fw.w.Write(payload)
	return err
}

func (fw *frameWriter) writeJSON(t frameType, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return fw.write(t, b)
}

// frameReader reads frames from one stream, reusing its buffer: a payload is valid until the next read.
type frameReader struct {
	r   io.Reader
	hdr [headerSize]byte
	buf []byte
}

func (fr *frameReader) read() (frameType, []byte, error) {
	if _, err := io.ReadFull(fr.r, fr.hdr[:]); err != nil {
		return 0, nil, err
	}
	t := frameType(fr.hdr[0])
	n := binary.BigEndian.Uint32(fr.hdr[sizeOfType:])
	if n > maxPayload {
		return 0, nil, fmt.Errorf("read %s frame of %d bytes: %w", t, n, ErrFrameTooLarge)
	}
	if t < frameRequest || t > frameResize {
		return 0, nil, fmt.Errorf("read frame of type %d: %w", uint8(t), ErrUnexpectedFrame)
	}
	if cap(fr.buf) < int(n) {
		fr.buf = make([]byte, n)
	}
	p := fr.buf[:n]
	if _, err := io.ReadFull(fr.r, p); err != nil {
		return 0, nil, fmt.Errorf("read %s frame payload: %w", t, unexpectedEOF(err))
	}
	return t, p, nil
}

func unexpectedEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// expect reads one frame and fails unless it has type t.
func (fr *frameReader) expect(t frameType) ([]byte, error) {
	got, p, err := fr.read()
	if err != nil {
		return nil, err
	}
	if got != t {
		return nil, fmt.Errorf("got %s frame, want %s: %w", got, t, ErrUnexpectedFrame)
	}
	return p, nil
}

// dataWriter turns writes into data frames; Close sends eof.
type dataWriter struct{ fw *frameWriter }

func (d dataWriter) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		n := min(len(p), chunkSize)
		if err := d.fw.write(frameData, p[:n]); err != nil {
			return written, err
		}
		written += n
		p = p[n:]
	}
	return written, nil
}

func (d dataWriter) Close() error { return d.fw.write(frameEOF, nil) }

// dataReader reads data frames until eof. A result frame in their place is the other side's error.
type dataReader struct {
	fr   *frameReader
	rest []byte
	done bool
}

func (d *dataReader) Read(p []byte) (int, error) {
	for len(d.rest) == 0 {
		if d.done {
			return 0, io.EOF
		}
		t, payload, err := d.fr.read()
		if err != nil {
			return 0, unexpectedEOF(err)
		}
		switch t {
		case frameData:
			d.rest = payload
		case frameEOF:
			d.done = true
		case frameResult:
			return 0, resultError(payload)
		default:
			return 0, fmt.Errorf("got %s frame in a data stream: %w", t, ErrUnexpectedFrame)
		}
	}
	n := copy(p, d.rest)
	d.rest = d.rest[n:]
	return n, nil
}

// resultError decodes a result payload into nil or the remote error.
func resultError(payload []byte) error {
	var res Result
	if err := json.Unmarshal(payload, &res); err != nil {
		return fmt.Errorf("decode result: %w", err)
	}
	if res.Error != "" {
		return &RemoteError{Msg: res.Error}
	}
	return nil
}

// RemoteError is an error the guest reported, in its own words.
type RemoteError struct{ Msg string }

func (e *RemoteError) Error() string { return "guest: " + e.Msg }
