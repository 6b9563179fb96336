package channel

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"

	"golang.org/x/sys/unix"
)

// The credit layer sits between the line and yamux.
//
// Why: the guest's end is a UML serial line. When more than about 4 KiB arrive before the guest reads
// them, the tty's 4 KiB input buffer fills and the line is throttled; Debian 12's UML 6.1 then never
// delivers input again (measured: 4,225 bytes arrived, the next request never did). So the host
// keeps at most creditWindow bytes unread in the guest: the guest acknowledges every read, and the
// host waits for acknowledgements before it writes more.
//
// That makes the line slow from host to guest (one round trip per 3 KiB; UML also reads the host's
// side one byte per read): 0.2-0.75 MB/s measured. So a large write from the host does not cross the
// line at all: with a spool directory (a host directory the guest mounts through hostfs, the
// build's staging directory), the host writes the bytes to a file of their own there and sends a
// spool record that names it by sequence number; the guest reads the file whole and removes it.
// Record order on the line keeps the byte stream in order. Spooled bytes need no credit: what the
// host may have outstanding is bounded by yamux's stream windows instead.
//
// The other way, the guest's writes cross the line at about 13 MB/s (measured, 64 MiB of a guest
// process's stdout). So the guest spools too: a write of spoolThreshold bytes or more becomes a file
// of its own in the same directory (hostfs writes it through to the host when the guest closes it,
// before the record is sent), and the host reads and removes it.
//
// Wire format, both directions: records of one type byte and a big-endian uint32, then for data
// records that many bytes. Guest to host: data, acks and spool records. Host to guest: data and
// spool records.
const (
	recordData  = 1 // uint32 = length, then the bytes
	recordAck   = 2 // uint32 = bytes the guest has read from the line (guest to host)
	recordSpool = 3 // uint32 = length of the sender's spool file number <seq>
	recordSize  = 5

	// creditWindow bounds the bytes the host has written that the guest has not yet read.
	creditWindow = 3072

	// spoolThreshold: writes of at least this many bytes go through a spool file when there is a
	// spool directory. A spool file costs the guest an open, a read, a close and an unlink (about
	// 0.1 ms each in UML), the line a round trip per 3 KiB: beyond a few KiB the file wins.
	spoolThreshold = 4096
	// maxSpool bounds one spool record, so that a corrupt record cannot make the guest allocate
	// gigabytes (yamux frames are bounded by the stream window, 16 MiB).
	maxSpool = 64 << 20
)

// spoolName is the file name of the host's spool record seq, inside the spool directory, and
// guestSpoolName that of the guest's. The leading dot keeps them apart from the staged transfer
// files, whose names never start with one.
func spoolName(seq uint64) string      { return ".spool-" + strconv.FormatUint(seq, 10) }
func guestSpoolName(seq uint64) string { return ".gspool-" + strconv.FormatUint(seq, 10) }

// spoolPath is where the receiver finds the spool file name of a record of size bytes from sender
// ("host" or "guest"): it needs a spool directory of its own, and a record is at most maxSpool
// bytes, so that a corrupt one cannot make it allocate gigabytes.
func spoolPath(dir, name string, size int, sender string) (string, error) {
	if dir == "" {
		return "", fmt.Errorf("channel: the %s spooled data, but there is no spool directory on this side", sender)
	}
	if size > maxSpool {
		return "", fmt.Errorf("channel: %s spool record of %d bytes, more than %d", sender, size, maxSpool)
	}
	return filepath.Join(dir, name), nil
}

// errClosed is returned by a closed hostConn.
var errClosed = errors.New("channel closed")

// hostConn is the host's end. Writes are queued and sent by one goroutine of the hostConn's own, so
// that bytes written while it is busy (writing a spool file, waiting for credit) go out together:
// yamux writes each frame's header and body apart, and a proxied download arrives in pieces of
// whatever size the network delivers; sent one by one, most of them would be too small to spool.
// Reads unpack data records and take acks.
type hostConn struct {
	raw      io.ReadWriteCloser
	r        io.Reader // raw, after the banner
	spoolDir string    // "" when large writes cross the line too

	spoolSeq uint64 // the next spool file's number; only the sender uses it
	wbuf     []byte // header and data of one data record; only the sender uses it

	mu       sync.Mutex // guards everything below and the conditions
	cond     *sync.Cond // credit returned, or closed
	inflight int
	closed   bool
	qcond    *sync.Cond // queue changed, or closed
	queue    []byte     // written, not yet sent
	spare    []byte     // the sender's last batch, reused as the next queue
	sendErr  error      // the sender's error: later writes fail with it

	// The reading goroutine's own: bytes left in the current data record, the rest of the
	// current guest spool file, and the next guest spool file's number.
	rest     int
	pending  []byte
	guestSeq uint64
	hdr      [recordSize]byte
}

// maxQueued bounds the bytes Write accepts ahead of the sender; a writer waits beyond it.
const maxQueued = 8 << 20

func newHostConn(raw io.ReadWriteCloser, r io.Reader, spoolDir string) *hostConn {
	c := &hostConn{raw: raw, r: r, spoolDir: spoolDir, wbuf: make([]byte, creditWindow)}
	c.cond = sync.NewCond(&c.mu)
	c.qcond = sync.NewCond(&c.mu)
	go c.sender()
	return c
}

// Write queues p for the sender. It fails once the connection is closed or the sender failed.
func (c *hostConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(c.queue) >= maxQueued && !c.closed && c.sendErr == nil {
		c.qcond.Wait()
	}
	if c.sendErr != nil {
		return 0, c.sendErr
	}
	if c.closed {
		return 0, errClosed
	}
	c.queue = append(c.queue, p...)
	c.qcond.Broadcast()
	return len(p), nil
}

// sender sends what is queued, all of it at once, until the connection closes or a send fails.
func (c *hostConn) sender() {
	for {
		c.mu.Lock()
		for len(c.queue) == 0 && !c.closed {
			c.qcond.Wait()
		}
		if c.closed {
			c.mu.Unlock()
			return
		}
		batch := c.queue
		c.queue, c.spare = c.spare[:0], nil
		c.qcond.Broadcast()
		c.mu.Unlock()

		err := c.send(batch)

		c.mu.Lock()
		c.spare = batch[:0]
		if err != nil {
			c.sendErr = err
			c.qcond.Broadcast()
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
	}
}

// send writes p as one spool file when it is large and there is a spool directory, else as data
// records that fit the credit.
func (c *hostConn) send(p []byte) error {
	if c.spoolDir != "" && len(p) >= spoolThreshold {
		return c.spool(p)
	}
	for len(p) > 0 {
		credit, err := c.takeCredit(min(len(p)+recordSize, creditWindow))
		if err != nil {
			return err
		}
		n := credit - recordSize
		rec := c.wbuf[:credit]
		rec[0] = recordData
		binary.BigEndian.PutUint32(rec[1:recordSize], uint32(n))
		copy(rec[recordSize:], p[:n])
		if _, err := c.raw.Write(rec); err != nil {
			return err
		}
		p = p[n:]
	}
	return nil
}

// spool writes p to the next spool file, then sends the record that names it.
func (c *hostConn) spool(p []byte) error {
	seq := c.spoolSeq
	c.spoolSeq++
	// 0644: with Packer as root the guest's UML runs as another user (see builder's
	// step_unprivileged), which must read the file; the directory itself is closed to others.
	if err := os.WriteFile(filepath.Join(c.spoolDir, spoolName(seq)), p, 0o644); err != nil {
		return fmt.Errorf("channel: spool %d bytes: %w", len(p), err)
	}
	if _, err := c.takeCredit(recordSize); err != nil {
		return err
	}
	var rec [recordSize]byte
	rec[0] = recordSpool
	binary.BigEndian.PutUint32(rec[1:], uint32(len(p)))
	_, err := c.raw.Write(rec[:])
	return err
}

// takeCredit waits until the window has room for a record header and one byte of data (or, for
// want == recordSize, a bare header), then takes up to want bytes of it.
func (c *hostConn) takeCredit(want int) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	// A record needs its header and at least one byte of room (a spool record: its header).
	need := min(want, recordSize+1)
	for creditWindow-c.inflight < need && !c.closed {
		c.cond.Wait()
	}
	if c.closed {
		return 0, errClosed
	}
	n := min(want, creditWindow-c.inflight)
	c.inflight += n
	return n, nil
}

// Read returns data the guest sent. Acknowledgements are handled here too, so yamux's receive loop,
// which always reads, keeps credit flowing.
func (c *hostConn) Read(p []byte) (int, error) {
	if len(c.pending) > 0 {
		n := copy(p, c.pending)
		c.pending = c.pending[n:]
		return n, nil
	}
	for c.rest == 0 {
		if _, err := io.ReadFull(c.r, c.hdr[:]); err != nil {
			c.shut()
			return 0, err
		}
		v := int(binary.BigEndian.Uint32(c.hdr[1:]))
		switch c.hdr[0] {
		case recordData:
			c.rest = v
		case recordSpool:
			b, err := c.readGuestSpool(v)
			if err != nil {
				c.shut()
				return 0, err
			}
			n := copy(p, b)
			c.pending = b[n:]
			return n, nil
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

// readGuestSpool reads and removes the guest's next spool file, which must be a regular file of
// size bytes. It is opened without following a symbolic link: the guest made the file, and the
// host may run as root.
func (c *hostConn) readGuestSpool(size int) ([]byte, error) {
	seq := c.guestSeq
	c.guestSeq++
	name, err := spoolPath(c.spoolDir, guestSpoolName(seq), size, "guest")
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(name, os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil, fmt.Errorf("channel: open guest spool file: %w", err)
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() || st.Size() != int64(size) {
		return nil, fmt.Errorf("channel: guest spool file %s is not a regular file of %d bytes (%v)", name, size, err)
	}
	b := make([]byte, size)
	if _, err := io.ReadFull(f, b); err != nil {
		return nil, fmt.Errorf("channel: guest spool file %s: %w", name, err)
	}
	if err := os.Remove(name); err != nil {
		return nil, fmt.Errorf("channel: remove guest spool file: %w", err)
	}
	return b, nil
}

func (c *hostConn) shut() {
	c.mu.Lock()
	c.closed = true
	c.cond.Broadcast()
	c.qcond.Broadcast()
	c.mu.Unlock()
}

func (c *hostConn) Close() error {
	c.shut()
	return c.raw.Close()
}

// guestConn is the guest's end: every read from the line is acknowledged; a write is a data record,
// or a spool file and its record. Reads unpack the host's records: data from the line, spool
// records from their files.
type guestConn struct {
	line     io.ReadWriteCloser
	spoolDir string // where the host's spool files are, as the guest sees it; "" for none
	spoolSeq uint64
	writeSeq uint64 // the guest's next spool file's number; guarded by wmu

	wmu  sync.Mutex // keeps records whole: acks and data are written by different goroutines
	whdr [recordSize]byte

	// The reading side, used by one goroutine (yamux's receive loop). in holds bytes read from
	// the line and not yet parsed, in[r:w]; the host never has more than creditWindow unread.
	in       [creditWindow]byte
	r, w     int
	rest     int    // bytes of the current data record not yet returned
	pending  []byte // bytes of the current spool file not yet returned
	spoolBuf []byte
}

func newGuestConn(line io.ReadWriteCloser, spoolDir string) *guestConn {
	return &guestConn{line: line, spoolDir: spoolDir}
}

func (g *guestConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for len(g.pending) == 0 && g.rest == 0 {
		if err := g.fill(recordSize); err != nil {
			return 0, err
		}
		t, v := g.in[g.r], int(binary.BigEndian.Uint32(g.in[g.r+1:g.r+recordSize]))
		g.r += recordSize
		switch t {
		case recordData:
			g.rest = v
		case recordSpool:
			b, err := g.readSpool(v)
			if err != nil {
				return 0, err
			}
			g.pending = b
		default:
			return 0, fmt.Errorf("channel: unknown record type %d from the host", t)
		}
	}
	if len(g.pending) > 0 {
		n := copy(p, g.pending)
		g.pending = g.pending[n:]
		return n, nil
	}
	if err := g.fill(1); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return 0, err
	}
	n := copy(p[:min(len(p), g.rest)], g.in[g.r:g.w])
	g.r += n
	g.rest -= n
	return n, nil
}

// fill reads from the line until at least want unparsed bytes are buffered, acknowledging each
// read. A clean end of the line between records is io.EOF; inside a header, ErrUnexpectedEOF.
func (g *guestConn) fill(want int) error {
	if g.r == g.w {
		g.r, g.w = 0, 0
	}
	if g.w-g.r >= want {
		return nil
	}
	if g.r > 0 {
		g.w = copy(g.in[:], g.in[g.r:g.w])
		g.r = 0
	}
	for g.w < want {
		n, err := g.line.Read(g.in[g.w:])
		if n > 0 {
			g.w += n
			if aerr := g.record(recordAck, n, nil); aerr != nil {
				return aerr
			}
		}
		if err != nil {
			if err == io.EOF && g.w > 0 {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
	}
	return nil
}

// readSpool reads and removes the next spool file, which must hold size bytes.
func (g *guestConn) readSpool(size int) ([]byte, error) {
	seq := g.spoolSeq
	g.spoolSeq++
	name, err := spoolPath(g.spoolDir, spoolName(seq), size, "host")
	if err != nil {
		return nil, err
	}
	// Plain system calls, each costly in UML: open, one read of the whole file, close, unlink.
	fd, err := unix.Open(name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("channel: open spool file: %w", err)
	}
	if cap(g.spoolBuf) < size {
		g.spoolBuf = make([]byte, size)
	}
	buf := g.spoolBuf[:size]
	got := 0
	for got < size {
		n, err := unix.Read(fd, buf[got:])
		if err == unix.EINTR {
			continue
		}
		if err != nil || n == 0 {
			unix.Close(fd)
			return nil, fmt.Errorf("channel: spool file %s: %d of %d bytes: %v", name, got, size, err)
		}
		got += n
	}
	unix.Close(fd)
	if err := unix.Unlink(name); err != nil {
		return nil, fmt.Errorf("channel: remove spool file: %w", err)
	}
	return buf, nil
}

func (g *guestConn) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	var err error
	if g.spoolDir != "" && len(p) >= spoolThreshold {
		err = g.spool(p)
	} else {
		err = g.record(recordData, len(p), p)
	}
	if err != nil {
		return 0, err
	}
	return len(p), nil
}

// spool writes p to the guest's next spool file and then sends its record, under one lock so that
// files and records keep the stream's order. yamux writes a frame's header and body apart, so
// the bodies of large frames come here whole.
func (g *guestConn) spool(p []byte) error {
	g.wmu.Lock()
	defer g.wmu.Unlock()
	seq := g.writeSeq
	g.writeSeq++
	name := filepath.Join(g.spoolDir, guestSpoolName(seq))
	// Plain system calls, each costly in UML: open, writes, close (which writes hostfs's cached
	// pages through to the host file: the host reads it only after the record).
	fd, err := unix.Open(name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return fmt.Errorf("channel: create spool file: %w", err)
	}
	for rest := p; len(rest) > 0; {
		n, err := unix.Write(fd, rest)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			unix.Close(fd)
			return fmt.Errorf("channel: write spool file: %w", err)
		}
		rest = rest[n:]
	}
	if err := unix.Close(fd); err != nil {
		return fmt.Errorf("channel: close spool file: %w", err)
	}
	return g.writeRecord(recordSpool, len(p), nil)
}

func (g *guestConn) record(t byte, v int, data []byte) error {
	g.wmu.Lock()
	defer g.wmu.Unlock()
	return g.writeRecord(t, v, data)
}

// writeRecord writes one record; the caller holds wmu.
func (g *guestConn) writeRecord(t byte, v int, data []byte) error {
	g.whdr[0] = t
	binary.BigEndian.PutUint32(g.whdr[1:], uint32(v))
	if _, err := g.line.Write(g.whdr[:]); err != nil {
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
