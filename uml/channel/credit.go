package channel

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
)

// The credit layer sits between the line and yamux.
//
// Why: the guest's end is a UML serial line. When more than about 4 KiB arrive before the guest reads
// them, the tty's 4 KiB input buffer fills and the line is throttled; Debian 12's UML 6.1 then never
// delivers input again (measured: 4,225 bytes arrived, the next request never did). So the host
// keeps at most creditWindow bytes unread in the guest: the guest acknowledges every read, and the
// host waits for acknowledgements before it writes more. Host-to-guest traffic is small (requests,
// stdin, window updates); bulk uploads go through the staging directory instead (see agent).
//
// Wire format, guest to host only (host to guest is the raw yamux stream): records of
// one type byte and a big-endian uint32, then for data records that many bytes.
const (
	recordData = 1 // uint32 = length, then the bytes
	recordAck  = 2 // uint32 = bytes the guest has read from the line
	recordSize = 5

	// creditWindow bounds the bytes the host has written that the guest has not yet read.
	creditWindow = 3072
)

// errClosed is returned by a closed hostConn.
var errClosed = errors.New("channel closed")

// hostConn is the host's end: writes wait for credit, reads unpack data records and take acks.
type hostConn struct {
	raw io.ReadWriteCloser
	r   io.Reader // raw, after the banner

	mu       sync.Mutex // guards inflight, closed and their condition
	cond     *sync.Cond
	inflight int
	closed   bool

	rest int // bytes left in the current data record; only the reading goroutine uses it
	hdr  [recordSize]byte
}

func newHostConn(raw io.ReadWriteCloser, r io.Reader) *hostConn {
	c := &hostConn{raw: raw, r: r}
	c.cond = sync.NewCond(&c.mu)
	return c
}

func (c *hostConn) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		c.mu.Lock()
		for c.inflight >= creditWindow && !c.closed {
			c.cond.Wait()
		}
		if c.closed {
			c.mu.Unlock()
			return written, errClosed
		}
		n := min(len(p), creditWindow-c.inflight)
		c.inflight += n
		c.mu.Unlock()
		if _, err := c.raw.Write(p[:n]); err != nil {
			return written, err
		}
		written += n
		p = p[n:]
	}
	return written, nil
}

// Read returns data the guest sent. Acknowledgements are handled here too, so yamux's receive loop,
// which always reads, keeps credit flowing.
func (c *hostConn) Read(p []byte) (int, error) {
	for c.rest == 0 {
		if _, err := io.ReadFull(c.r, c.hdr[:]); err != nil {
			c.shut()
			return 0, err
		}
		v := int(binary.BigEndian.Uint32(c.hdr[1:]))
		switch c.hdr[0] {
		case recordData:
			c.rest = v
		case recordAck:
			c.mu.Lock()
			c.inflight -= v
			if c.inflight < 0 {
				c.inflight = 0
			}
			c.cond.Broadcast()
			c.mu.Unlock()
		default:
			c.shut()
			return 0, fmt.Errorf("channel: unknown record type %d from the guest", c.hdr[0])
		}
	}
	n, err := c.r.Read(p[:min(len(p), c.rest)])
	c.rest -= n
	if err == io.EOF && c.rest > 0 {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		c.shut()
	}
	return n, err
}

func (c *hostConn) shut() {
	c.mu.Lock()
	c.closed = true
	c.cond.Broadcast()
	c.mu.Unlock()
}

func (c *hostConn) Close() error {
	c.shut()
	return c.raw.Close()
}

// guestConn is the guest's end: every read is acknowledged, every write is a data record.
type guestConn struct {
	line io.ReadWriteCloser
	mu   sync.Mutex // keeps records whole: acks and data are written by different goroutines
	hdr  [recordSize]byte
}

func (g *guestConn) Read(p []byte) (int, error) {
	n, err := g.line.Read(p)
	if n > 0 {
		if aerr := g.record(recordAck, n, nil); aerr != nil && err == nil {
			err = aerr
		}
	}
	return n, err
}

func (g *guestConn) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if err := g.record(recordData, len(p), p); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (g *guestConn) record(t byte, v int, data []byte) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.hdr[0] = t
	binary.BigEndian.PutUint32(g.hdr[1:], uint32(v))
	if _, err := g.line.Write(g.hdr[:]); err != nil {
		return err
	}
	if len(data) > 0 {
		if _, err := g.line.Write(data); err != nil {
			return err
		}
	}
	return nil
}

func (g *guestConn) Close() error { return g.line.Close() }
