package channel

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/yamux"
	"golang.org/x/sys/unix"
)

// The wire constants are part of the protocol: the guest and the host may be built apart.
func TestWireConstants(t *testing.T) {
	if recordData != 1 || recordAck != 2 || recordSpool != 3 || recordSize != 5 {
		t.Errorf("records: data %d ack %d spool %d size %d, want 1, 2, 3, 5", recordData, recordAck, recordSpool, recordSize)
	}
	if spoolName(7) != ".spool-7" {
		t.Errorf("spoolName(7) = %q", spoolName(7))
	}
	if creditWindow != 3072 {
		t.Errorf("creditWindow %d, want 3072 (below the guest tty's 4 KiB input buffer)", creditWindow)
	}
	if creditWindow >= 4096 {
		t.Error("creditWindow must stay below the tty's 4 KiB input buffer")
	}
	if bannerPrefix != "\nUMLAGENT " {
		t.Errorf("bannerPrefix %q", bannerPrefix)
	}
	if got := Banner(1); got != "\nUMLAGENT 1\n" {
		t.Errorf("Banner(1) = %q", got)
	}
	if got := Banner(42); got != "\nUMLAGENT 42\n" {
		t.Errorf("Banner(42) = %q", got)
	}
}

// conn is a connection whose reads come from r and whose writes are recorded.
type conn struct {
	r      io.Reader
	mu     sync.Mutex
	w      bytes.Buffer
	closed bool
}

func (c *conn) Read(p []byte) (int, error) { return c.r.Read(p) }
func (c *conn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.w.Write(p)
}
func (c *conn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	return nil
}
func (c *conn) written() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.w.Len()
}

func TestDialFindsBanner(t *testing.T) {
	for name, input := range map[string]string{
		"alone":                 Banner(1),
		"without leading nl":    "UMLAGENT 1\n",
		"noise without newline": "[    0.123] booting... no newline here" + Banner(1),
		"noise with newline":    "line one\nline two\n" + Banner(1),
		"noise with crlf":       "line one\r\nline two\r\n" + "\r\nUMLAGENT 1\r\n",
		"blank lines":           "\n\n\n" + Banner(1),
		"binary noise":          "\x00\xff\x1b[2J\x07\x00" + Banner(1),
		"word mid-line":         "some text UMLAGENT 2\n" + Banner(1),
		"partial word":          "UMLAGEN 1\nUMLAGENT1\n" + Banner(1),
		"leading space":         " UMLAGENT 2\n" + Banner(1),
		"trailing yamux bytes":  Banner(1) + "\x00\x01\x00\x01 not read by the banner",
		"long noise line":       strings.Repeat("x", 100_000) + Banner(1),
		"many noise lines":      strings.Repeat("noise\n", 50_000) + Banner(1),
		"plus sign":             "\nUMLAGENT +1\n", // strconv.Atoi accepts it
		"spaces":                "\nUMLAGENT    1   \n",
	} {
		t.Run(name, func(t *testing.T) {
			c := &conn{r: strings.NewReader(input)}
			sess, err := Dial(c, 1, "", io.Discard)
			if err != nil {
				t.Fatalf("Dial: %v", err)
			}
			// Nothing was sent before the banner: the host speaks only after the guest.
			if n := c.written(); n != 0 {
				t.Errorf("Dial wrote %d bytes", n)
			}
			sess.Close()
		})
	}
}

func TestDialRejectsOtherVersion(t *testing.T) {
	for name, input := range map[string]string{
		"newer":           Banner(2),
		"older":           Banner(0),
		"negative":        Banner(-1),
		"garbage version": "\nUMLAGENT one\n",
		"empty version":   "\nUMLAGENT \n",
		"two numbers":     "\nUMLAGENT 1 2\n",
		"after noise":     "noise\n" + Banner(7),
		"first one wins":  Banner(3) + Banner(1),
		"huge":            "\nUMLAGENT 99999999999999999999999\n",
	} {
		t.Run(name, func(t *testing.T) {
			c := &conn{r: strings.NewReader(input)}
			sess, err := Dial(c, 1, "", io.Discard)
			if !errors.Is(err, ErrVersion) {
				t.Fatalf("Dial = %v, want ErrVersion", err)
			}
			if sess != nil {
				t.Error("Dial returned a session with its error")
			}
			if !strings.Contains(err.Error(), "UMLAGENT") || !strings.Contains(err.Error(), "1") {
				t.Errorf("error %q does not say what was announced and what is spoken", err)
			}
			if c.written() != 0 {
				t.Error("Dial wrote to a guest of another version")
			}
		})
	}
}

func TestDialNoBanner(t *testing.T) {
	for name, input := range map[string]string{
		"empty":           "",
		"noise":           "booting\nstill booting\n",
		"no newline":      "some noise",
		"banner unended":  "\nUMLAGENT 1", // the line never ended
		"prefix only":     "\nUMLAGENT",
		"newlines":        "\n\n\n",
		"word in noise":   "xUMLAGENT 1\n",
		"lowercase":       "\numlagent 1\n",
		"other separator": "\nUMLAGENT\t1\n",
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Dial(&conn{r: strings.NewReader(input)}, 1, "", io.Discard)
			if !errors.Is(err, ErrNoBanner) {
				t.Fatalf("Dial = %v, want ErrNoBanner", err)
			}
		})
	}
}

type errReader struct {
	data []byte
	err  error
}

func (r *errReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, r.err
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, nil
}

func TestDialReadError(t *testing.T) {
	boom := errors.New("line broke")
	_, err := Dial(&conn{r: &errReader{data: []byte("noise\nmore"), err: boom}}, 1, "", io.Discard)
	if !errors.Is(err, boom) || errors.Is(err, ErrNoBanner) {
		t.Errorf("Dial = %v, want the read error", err)
	}
}

func TestDialGivesUpAfterMaxScan(t *testing.T) {
	line := strings.Repeat("n", 99) + "\n"
	noise := strings.Repeat(line, maxBannerScan/len(line)+1)
	_, err := Dial(&conn{r: strings.NewReader(noise + Banner(1))}, 1, "", io.Discard)
	if err == nil || errors.Is(err, ErrNoBanner) || !strings.Contains(err.Error(), "no banner") {
		t.Errorf("Dial after %d bytes of noise = %v, want a no-banner error", len(noise), err)
	}
	// Half as much is fine.
	sess, err := Dial(&conn{r: strings.NewReader(noise[:len(noise)/2] + Banner(1))}, 1, "", io.Discard)
	if err != nil {
		t.Fatalf("Dial after half the limit: %v", err)
	}
	sess.Close()
}

// duplex is one end of a pair of os.Pipes, as a serial line or a socketpair end is.
type duplex struct {
	*os.File // read end
	w        io.Writer
	wf       *os.File
}

func (d *duplex) Write(p []byte) (int, error) { return d.w.Write(p) }
func (d *duplex) Close() error {
	err := d.wf.Close()
	d.File.Close()
	return err
}

// pipes returns the host's and the guest's ends. hostW, if not nil, wraps what the host writes and
// guestR what the guest reads.
func pipes(t *testing.T, hostW func(io.Writer) io.Writer, guestR func(*os.File) io.Reader) (host *duplex, guest io.ReadWriteCloser, h2g *os.File) {
	t.Helper()
	h2gR, h2gW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	g2hR, g2hW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	host = &duplex{File: g2hR, w: h2gW, wf: h2gW}
	if hostW != nil {
		host.w = hostW(h2gW)
	}
	var gr io.Reader = h2gR
	if guestR != nil {
		gr = guestR(h2gR)
	}
	guest = struct {
		io.Reader
		io.Writer
		io.Closer
	}{gr, g2hW, closers{g2hW, h2gR}}
	t.Cleanup(func() {
		for _, f := range []*os.File{h2gR, h2gW, g2hR, g2hW} {
			f.Close()
		}
	})
	return host, guest, h2gR
}

type closers []io.Closer

func (cs closers) Close() error {
	var first error
	for _, c := range cs {
		if err := c.Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// countingWriter counts bytes before they are written, so the count is never behind the line.
type countingWriter struct {
	w io.Writer
	n *atomic.Int64
}

func (c countingWriter) Write(p []byte) (int, error) {
	c.n.Add(int64(len(p)))
	return c.w.Write(p)
}

// countingLine counts what the guest writes to its line.
type countingLine struct {
	io.ReadWriteCloser
	n *atomic.Int64
}

func (c countingLine) Write(p []byte) (int, error) {
	c.n.Add(int64(len(p)))
	return c.ReadWriteCloser.Write(p)
}

// watchReader is the guest's side of the line. At every read it records how many bytes the host
// has written that the guest has not read yet, and how many the pipe holds (FIONREAD); it can read
// slowly, in small pieces.
type watchReader struct {
	f        *os.File
	written  *atomic.Int64
	read     int64
	slow     bool
	reads    int
	maxAhead int64
	maxPipe  int
}

func (w *watchReader) Read(p []byte) (int, error) {
	w.reads++
	if w.slow {
		if w.reads%8 == 0 {
			time.Sleep(200 * time.Microsecond)
		}
		if max := 1 + w.reads*37%700; len(p) > max {
			p = p[:max]
		}
	}
	w.observe()
	n, err := w.f.Read(p)
	w.read += int64(n)
	w.observe()
	return n, err
}

func (w *watchReader) observe() {
	if ahead := w.written.Load() - w.read; ahead > w.maxAhead {
		w.maxAhead = ahead
	}
	if q, err := fionread(w.f); err == nil && q > w.maxPipe {
		w.maxPipe = q
	}
}

func randomData(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// writeChunks writes data in pieces of varying size, as yamux does.
func writeChunks(w io.Writer, data []byte) error {
	for i := 0; len(data) > 0; i++ {
		n := min(len(data), 1+(i*7919)%70_000)
		m, err := w.Write(data[:n])
		if err != nil {
			return err
		}
		if m != n {
			return fmt.Errorf("short write %d of %d", m, n)
		}
		data = data[n:]
	}
	return nil
}

// creditPair runs a hostConn and a guestConn over pipes.
func creditPair(t *testing.T, slow bool) (*hostConn, *guestConn, *watchReader, *os.File) {
	t.Helper()
	var written atomic.Int64
	var watch *watchReader
	host, guest, h2g := pipes(t,
		func(w io.Writer) io.Writer { return countingWriter{w, &written} },
		func(f *os.File) io.Reader {
			watch = &watchReader{f: f, written: &written, slow: slow}
			return watch
		})
	return newHostConn(host, host, ""), newGuestConn(guest, ""), watch, h2g
}

func TestCreditBothDirections(t *testing.T) {
	const size = 5 << 20
	hc, gc, watch, _ := creditPair(t, false)
	up, down := randomData(t, size), randomData(t, size)
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	var gotDown, gotUp [32]byte
	wg.Add(4)
	go func() { defer wg.Done(); errs <- writeChunks(hc, down) }()
	go func() { defer wg.Done(); errs <- writeChunks(gc, up) }()
	go func() {
		defer wg.Done()
		b := make([]byte, size)
		_, err := io.ReadFull(gc, b)
		gotDown = sha256.Sum256(b)
		errs <- err
	}()
	go func() {
		defer wg.Done()
		b := make([]byte, size)
		_, err := io.ReadFull(hc, b)
		gotUp = sha256.Sum256(b)
		errs <- err
		// The host keeps reading, as yamux's receive loop does: acknowledgements for its own
		// writes arrive on this side too.
		go io.Copy(io.Discard, hc)
	}()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("transfer did not finish")
	}
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if gotDown != sha256.Sum256(down) {
		t.Error("host to guest data differs")
	}
	if gotUp != sha256.Sum256(up) {
		t.Error("guest to host data differs")
	}
	if watch.maxAhead > creditWindow || watch.maxPipe > creditWindow {
		t.Errorf("host was %d bytes ahead of the guest (pipe held %d), more than the window %d", watch.maxAhead, watch.maxPipe, creditWindow)
	}
	// Every byte the guest read was acknowledged, so no credit is outstanding.
	// (The last acknowledgements may still be on their way to the host's reader.)
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		hc.mu.Lock()
		inflight := hc.inflight
		hc.mu.Unlock()
		if inflight == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("%d bytes still in flight after the guest read everything", inflight)
			break
		}
	}
	t.Logf("guest reads: %d, max ahead %d, max in pipe %d", watch.reads, watch.maxAhead, watch.maxPipe)
}

func TestCreditWindowWithSlowGuest(t *testing.T) {
	const size = 512 << 10
	hc, gc, watch, _ := creditPair(t, true)
	data := randomData(t, size)
	go io.Copy(io.Discard, hc) // the host's reader takes the acks, as yamux's receive loop does
	werr := make(chan error, 1)
	go func() { werr <- writeChunks(hc, data) }()
	got := make([]byte, size)
	if _, err := io.ReadFull(gc, got); err != nil {
		t.Fatal(err)
	}
	if err := <-werr; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Error("data differs")
	}
	if watch.maxAhead > creditWindow {
		t.Errorf("host wrote up to %d bytes the guest had not read; window is %d", watch.maxAhead, creditWindow)
	}
	if watch.maxPipe > creditWindow {
		t.Errorf("the guest's line held up to %d unread bytes; window is %d", watch.maxPipe, creditWindow)
	}
	// The measurement means something: the host did fill the window while the guest lagged.
	if watch.maxAhead < creditWindow/2 {
		t.Errorf("host was at most %d bytes ahead: the slow guest never made it wait", watch.maxAhead)
	}
	t.Logf("guest reads: %d, max ahead %d, max in pipe %d", watch.reads, watch.maxAhead, watch.maxPipe)
}

// fionread returns how many unread bytes the pipe f holds (FIONREAD). (f.Fd() would put f in blocking mode.)
func fionread(f *os.File) (int, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return 0, err
	}
	var q int
	var qerr error
	if err := rc.Control(func(fd uintptr) { q, qerr = unix.IoctlGetInt(int(fd), unix.TIOCINQ) }); err != nil {
		return 0, err
	}
	return q, qerr
}

// waitPipe waits until the pipe f holds n unread bytes.
func waitPipe(t *testing.T, f *os.File, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		q, err := fionread(f)
		if err != nil {
			t.Fatal(err)
		}
		if q == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pipe holds %d bytes, want %d", q, n)
		}
		time.Sleep(time.Millisecond)
	}
}

type writeResult struct {
	n   int
	err error
}

func TestCreditCloseStopsSender(t *testing.T) {
	hc, _, _, h2g := creditPair(t, false)
	// Write queues; the sender sends one window and waits, since the guest reads nothing.
	if n, err := hc.Write(make([]byte, 10_000)); n != 10_000 || err != nil {
		t.Fatalf("Write = %d, %v", n, err)
	}
	waitPipe(t, h2g, creditWindow)
	time.Sleep(50 * time.Millisecond)
	if q, err := fionread(h2g); err != nil || q != creditWindow {
		t.Fatalf("%d bytes in the pipe (%v), want one window, %d", q, err, creditWindow)
	}
	if err := hc.Close(); err != nil {
		t.Fatal(err)
	}
	if n, err := hc.Write([]byte("x")); n != 0 || !errors.Is(err, errClosed) {
		t.Errorf("Write after Close = %d, %v", n, err)
	}
}

func TestCreditWriterWaitsForQueue(t *testing.T) {
	hc, _, _, _ := creditPair(t, false)
	res := make(chan writeResult, 1)
	go func() {
		// The guest reads nothing: the sender holds its first batch, the queue fills up to
		// maxQueued behind it, and the writer waits.
		chunk := make([]byte, 1<<20)
		for i := 0; i < 3*maxQueued/len(chunk); i++ {
			if n, err := hc.Write(chunk); err != nil {
				res <- writeResult{n, err}
				return
			}
		}
		res <- writeResult{}
	}()
	select {
	case r := <-res:
		t.Fatalf("Write returned %d, %v with a full queue", r.n, r.err)
	case <-time.After(100 * time.Millisecond):
	}
	hc.Close()
	select {
	case r := <-res:
		if !errors.Is(r.err, errClosed) {
			t.Errorf("Write = %d, %v; want errClosed", r.n, r.err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not unblock the writer")
	}
}

func TestCreditLineEOFStopsSender(t *testing.T) {
	hc, gc, _, h2g := creditPair(t, false)
	if _, err := hc.Write(make([]byte, 2*creditWindow+1)); err != nil {
		t.Fatal(err)
	}
	rerr := make(chan error, 1)
	go func() { _, err := io.Copy(io.Discard, hc); rerr <- err }()
	waitPipe(t, h2g, creditWindow)
	gc.Close() // the guest's end goes away: the host's reader sees EOF
	select {
	case err := <-rerr:
		if err != nil {
			t.Errorf("host reader: %v, want a clean EOF", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("host reader did not see EOF")
	}
	if _, err := hc.Write([]byte("x")); !errors.Is(err, errClosed) {
		t.Errorf("Write after EOF: %v, want errClosed", err)
	}
}

func record(t byte, v int, data string) []byte {
	b := make([]byte, recordSize, recordSize+len(data))
	b[0] = t
	binary.BigEndian.PutUint32(b[1:], uint32(v))
	return append(b, data...)
}

func TestHostConnRecords(t *testing.T) {
	var in bytes.Buffer
	in.Write(record(recordAck, 100, ""))
	in.Write(record(recordData, 5, "hello"))
	in.Write(record(recordAck, 3, ""))
	in.Write(record(recordAck, 0, ""))
	in.Write(record(recordData, 0, "")) // an empty record is skipped
	in.Write(record(recordData, 3, "abc"))
	in.Write(record(recordAck, 1000, "")) // more than in flight: clamps at 0
	c := &conn{r: &in}
	hc := newHostConn(c, c, "")
	hc.inflight = 200
	var out []string
	buf := make([]byte, 2)
	for {
		n, err := hc.Read(buf)
		if n > 0 {
			out = append(out, string(buf[:n]))
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		switch strings.Join(out, "") {
		case "hello":
			if hc.inflight != 100 {
				t.Errorf("after the first ack inflight = %d, want 100", hc.inflight)
			}
		case "helloabc":
			if hc.inflight != 97 {
				t.Errorf("after two acks inflight = %d, want 97", hc.inflight)
			}
		}
	}
	if got := strings.Join(out, "|"); got != "he|ll|o|ab|c" {
		t.Errorf("reads %q, want records cut at their ends", got)
	}
	if hc.inflight != 0 {
		t.Errorf("inflight %d after an over-ack, want 0", hc.inflight)
	}
	// EOF shut the connection for writers.
	if _, err := hc.Write([]byte("x")); !errors.Is(err, errClosed) {
		t.Errorf("Write after EOF: %v", err)
	}
}

func TestHostConnBadRecords(t *testing.T) {
	for name, tc := range map[string]struct {
		in   []byte
		want error
	}{
		"unknown type":     {record(9, 1, "x"), nil},
		"zero type":        {record(0, 0, ""), nil},
		"truncated header": {[]byte{recordData, 0, 0}, io.ErrUnexpectedEOF},
		"truncated data":   {record(recordData, 10, "abc"), io.ErrUnexpectedEOF},
	} {
		t.Run(name, func(t *testing.T) {
			c := &conn{r: bytes.NewReader(tc.in)}
			hc := newHostConn(c, c, "")
			_, err := io.ReadAll(hc)
			if err == nil {
				t.Fatal("no error")
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("error %v, want %v", err, tc.want)
			}
			if tc.want == nil && !strings.Contains(err.Error(), "unknown record type") {
				t.Errorf("error %v", err)
			}
			if _, err := hc.Write([]byte("x")); !errors.Is(err, errClosed) {
				t.Errorf("Write after a bad record: %v, want errClosed", err)
			}
		})
	}
}

func TestGuestConnRecords(t *testing.T) {
	var in bytes.Buffer
	in.Write(record(recordData, 6, "012345"))
	in.Write(record(recordData, 0, "")) // an empty record is skipped
	in.Write(record(recordData, 4, "6789"))
	c := &conn{r: &in}
	gc := newGuestConn(c, "")
	if n, err := gc.Write([]byte("hello")); n != 5 || err != nil {
		t.Fatalf("Write = %d, %v", n, err)
	}
	if n, err := gc.Write(nil); n != 0 || err != nil {
		t.Fatalf("empty Write = %d, %v", n, err)
	}
	buf := make([]byte, 4)
	for _, want := range []string{"0123", "45", "6789"} {
		n, err := gc.Read(buf)
		if err != nil || string(buf[:n]) != want {
			t.Fatalf("Read = %q, %v; want %q", buf[:n], err, want)
		}
	}
	if n, err := gc.Read(buf); n != 0 || err != io.EOF {
		t.Fatalf("Read at the end = %d, %v", n, err)
	}
	// The guest acknowledges every byte it took from the line, headers included: the line's
	// reads here return the whole input at once.
	var want []byte
	want = append(want, record(recordData, 5, "hello")...)
	want = append(want, record(recordAck, 3*recordSize+10, "")...)
	if got := c.w.Bytes(); !bytes.Equal(got, want) {
		t.Errorf("guest wrote\n% x\nwant\n% x", got, want)
	}
	if err := gc.Close(); err != nil || !c.closed {
		t.Errorf("Close = %v, closed %v", err, c.closed)
	}
}

func TestGuestConnBadRecords(t *testing.T) {
	for name, tc := range map[string]struct {
		in   []byte
		want string
	}{
		"unknown type":           {record(9, 1, "x"), "unknown record type 9"},
		"ack from the host":      {record(recordAck, 1, ""), "unknown record type 2"},
		"truncated header":       {[]byte{recordData, 0, 0}, io.ErrUnexpectedEOF.Error()},
		"truncated data":         {record(recordData, 10, "abc"), ""},
		"spool without spooling": {record(recordSpool, 10, ""), "no spool directory"},
	} {
		t.Run(name, func(t *testing.T) {
			gc := newGuestConn(&conn{r: bytes.NewReader(tc.in)}, "")
			_, err := io.ReadAll(gc)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want %q", err, tc.want)
			}
		})
	}
}

func TestGuestConnReadsSpool(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, spoolName(0)), []byte("spooled!"), 0o644); err != nil {
		t.Fatal(err)
	}
	var in bytes.Buffer
	in.Write(record(recordData, 2, "ab"))
	in.Write(record(recordSpool, 8, ""))
	in.Write(record(recordData, 2, "cd"))
	in.Write(record(recordSpool, 5, "")) // file 1 is missing
	gc := newGuestConn(&conn{r: &in}, dir)
	got, err := io.ReadAll(gc)
	if string(got) != "abspooled!cd" {
		t.Errorf("read %q", got)
	}
	if err == nil || !strings.Contains(err.Error(), "open spool file") {
		t.Errorf("missing spool file: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, spoolName(0))); !os.IsNotExist(err) {
		t.Errorf("the guest left spool file 0: %v", err)
	}
	// A file shorter than its record is an error, not a short stream.
	os.WriteFile(filepath.Join(dir, spoolName(0)), []byte("abc"), 0o644)
	gc = newGuestConn(&conn{r: bytes.NewReader(record(recordSpool, 8, ""))}, dir)
	if _, err := io.ReadAll(gc); err == nil || !strings.Contains(err.Error(), "3 of 8 bytes") {
		t.Errorf("short spool file: %v", err)
	}
}

// TestHostConnReadsGuestSpool: the host takes the guest's spool files in order between data
// records, removes them, and refuses a missing, short or symbolically linked one, or any when it
// has no spool directory.
func TestHostConnReadsGuestSpool(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, guestSpoolName(0)), []byte("spooled!"), 0o644); err != nil {
		t.Fatal(err)
	}
	var in bytes.Buffer
	in.Write(record(recordData, 2, "ab"))
	in.Write(record(recordSpool, 8, ""))
	in.Write(record(recordData, 2, "cd"))
	in.Write(record(recordSpool, 5, "")) // file 1 is missing
	c := &conn{r: &in}
	got, err := io.ReadAll(newHostConn(c, c, dir))
	if string(got) != "abspooled!cd" {
		t.Errorf("read %q", got)
	}
	if err == nil || !strings.Contains(err.Error(), "open guest spool file") {
		t.Errorf("missing spool file: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, guestSpoolName(0))); !os.IsNotExist(err) {
		t.Errorf("the host left guest spool file 0: %v", err)
	}
	secret := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(secret, []byte("12345678"), 0o600)
	for name, make := range map[string]func(string) error{
		"short":   func(p string) error { return os.WriteFile(p, []byte("abc"), 0o644) },
		"symlink": func(p string) error { return os.Symlink(secret, p) },
	} {
		p := filepath.Join(dir, guestSpoolName(0))
		os.Remove(p)
		if err := make(p); err != nil {
			t.Fatal(err)
		}
		c := &conn{r: bytes.NewReader(record(recordSpool, 8, ""))}
		if got, err := io.ReadAll(newHostConn(c, c, dir)); err == nil || len(got) != 0 {
			t.Errorf("%s guest spool file: read %q, error %v", name, got, err)
		}
	}
	c = &conn{r: bytes.NewReader(record(recordSpool, 8, ""))}
	if _, err := io.ReadAll(newHostConn(c, c, "")); err == nil || !strings.Contains(err.Error(), "no spool directory") {
		t.Errorf("guest spool without a spool directory: %v", err)
	}
}

// TestSpoolBothDirections: large writes from either side go through spool files, small ones through
// the line, and the byte stream arrives whole and in order.
func TestSpoolBothDirections(t *testing.T) {
	dir := t.TempDir()
	var written, guestWrote atomic.Int64
	host, guest, _ := pipes(t,
		func(w io.Writer) io.Writer { return countingWriter{w, &written} },
		func(f *os.File) io.Reader { return f })
	guest = countingLine{guest, &guestWrote}
	hc, gc := newHostConn(host, host, dir), newGuestConn(guest, dir)
	const size = 8 << 20
	down, up := randomData(t, size), randomData(t, size/4)
	errs := make(chan error, 3)
	go func() { errs <- writeChunks(hc, down) }()
	go func() { errs <- writeChunks(gc, up) }()
	go func() {
		got, err := io.ReadAll(io.LimitReader(hc, int64(len(up))))
		if err == nil && !bytes.Equal(got, up) {
			err = errors.New("guest-to-host bytes differ")
		}
		errs <- err
		// Keep reading, as yamux's receive loop does: acknowledgements return the host's credit.
		io.Copy(io.Discard, hc)
	}()
	got, err := io.ReadAll(io.LimitReader(gc, size))
	if err != nil {
		t.Fatal(err)
	}
	if sha256.Sum256(got) != sha256.Sum256(down) {
		t.Fatalf("host-to-guest bytes differ (%d of %d)", len(got), size)
	}
	for range 3 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	// Most bytes went around the line: writeChunks writes pieces up to 70,000 bytes. The guest's
	// line also carries its acknowledgements, 5 bytes per read.
	if line := written.Load(); line > size/20 {
		t.Errorf("%d bytes crossed the line for %d sent, want most of them spooled", line, size)
	}
	if line := guestWrote.Load(); line > size/4/10 {
		t.Errorf("%d bytes crossed the guest's line for %d sent, want most of them spooled", line, size/4)
	}
	left, _ := os.ReadDir(dir)
	if len(left) != 0 {
		t.Errorf("spool files left: %d", len(left))
	}
}

type failWriter struct{ io.Reader }

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("line gone") }
func (failWriter) Close() error              { return nil }

func TestGuestConnWriteErrors(t *testing.T) {
	gc := newGuestConn(failWriter{bytes.NewReader(record(recordData, 3, "abc"))}, "")
	if n, err := gc.Write([]byte("x")); n != 0 || err == nil {
		t.Errorf("Write = %d, %v; want the line's error", n, err)
	}
	// A read whose acknowledgement fails reports it: the host would wait for that credit forever.
	buf := make([]byte, 8)
	if n, err := gc.Read(buf); err == nil || !strings.Contains(err.Error(), "line gone") {
		t.Errorf("Read = %d, %v; want the ack's error", n, err)
	}
}

// sessions runs Serve and Dial over pipes.
func sessions(t *testing.T, guestV, hostV int) (host, guest *yamux.Session, err error) {
	t.Helper()
	hostEnd, guestEnd, _ := pipes(t, nil, nil)
	type result struct {
		s   *yamux.Session
		err error
	}
	gs := make(chan result, 1)
	go func() {
		s, err := Serve(guestEnd, guestV, "", io.Discard)
		gs <- result{s, err}
	}()
	host, err = Dial(hostEnd, hostV, "", io.Discard)
	g := <-gs
	if g.err != nil {
		t.Fatalf("Serve: %v", g.err)
	}
	t.Cleanup(func() {
		if host != nil {
			host.Close()
		}
		g.s.Close()
	})
	return host, g.s, err
}

func TestSessionVersionMismatch(t *testing.T) {
	_, _, err := sessions(t, 2, 1)
	if !errors.Is(err, ErrVersion) {
		t.Errorf("Dial = %v, want ErrVersion", err)
	}
}

func TestSessionConcurrentStreams(t *testing.T) {
	host, guest, err := sessions(t, 3, 3)
	if err != nil {
		t.Fatal(err)
	}
	// The guest echoes every stream the host opens.
	go func() {
		for {
			st, err := guest.Accept()
			if err != nil {
				return
			}
			go func() {
				defer st.Close()
				io.Copy(st, st)
			}()
		}
	}()
	// And the host drains (and hashes) every stream the guest opens.
	const upSize = 2 << 20
	var wg sync.WaitGroup
	var mu sync.Mutex
	upSums := map[[32]byte]bool{}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 2; i++ {
			st, err := host.Accept()
			if err != nil {
				t.Error(err)
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer st.Close()
				h := sha256.New()
				if _, err := io.Copy(h, st); err != nil {
					t.Error(err)
				}
				var sum [32]byte
				copy(sum[:], h.Sum(nil))
				mu.Lock()
				upSums[sum] = true
				mu.Unlock()
			}()
		}
	}()
	var sent [][32]byte
	for i := 0; i < 2; i++ {
		data := randomData(t, upSize)
		sent = append(sent, sha256.Sum256(data))
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, err := guest.Open()
			if err != nil {
				t.Error(err)
				return
			}
			if err := writeChunks(st, data); err != nil {
				t.Error(err)
			}
			st.Close()
		}()
	}
	const streams, echoSize = 8, 384 << 10
	for i := 0; i < streams; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, err := host.Open()
			if err != nil {
				t.Error(err)
				return
			}
			defer st.Close()
			data := randomData(t, echoSize+i*1000)
			werr := make(chan error, 1)
			go func() { werr <- writeChunks(st, data) }()
			got := make([]byte, len(data))
			if _, err := io.ReadFull(st, got); err != nil {
				t.Errorf("stream %d: %v", i, err)
				return
			}
			if err := <-werr; err != nil {
				t.Errorf("stream %d: %v", i, err)
			}
			if sha256.Sum256(got) != sha256.Sum256(data) {
				t.Errorf("stream %d: echo differs", i)
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("streams did not finish")
	}
	for i, s := range sent {
		if !upSums[s] {
			t.Errorf("guest stream %d arrived changed", i)
		}
	}
	// Pings go through the credit layer too.
	if _, err := host.Ping(); err != nil {
		t.Errorf("host ping: %v", err)
	}
	if _, err := guest.Ping(); err != nil {
		t.Errorf("guest ping: %v", err)
	}
}

// The guest may send right after its banner; bytes the host's banner reader buffered are not lost.
func TestSessionBytesRightAfterBanner(t *testing.T) {
	hostEnd, guestEnd, _ := pipes(t, nil, nil)
	guest, err := Serve(guestEnd, 1, "", io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer guest.Close()
	st, err := guest.Open()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Write([]byte("first words")); err != nil {
		t.Fatal(err)
	}
	// Let the banner, the stream's SYN and its data reach the pipe before the host reads at all,
	// so that the host's first read takes them together.
	time.Sleep(50 * time.Millisecond)
	host, err := Dial(hostEnd, 1, "", io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer host.Close()
	hs, err := host.Accept()
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 11)
	if _, err := io.ReadFull(hs, buf); err != nil || string(buf) != "first words" {
		t.Fatalf("read %q, %v", buf, err)
	}
}

func TestSessionOverNetPipe(t *testing.T) {
	h, g := net.Pipe()
	gs := make(chan *yamux.Session, 1)
	go func() {
		s, err := Serve(g, 1, "", io.Discard)
		if err != nil {
			t.Error(err)
		}
		gs <- s
	}()
	host, err := Dial(h, 1, "", io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	guest := <-gs
	defer guest.Close()
	defer host.Close()
	go func() {
		st, err := guest.Accept()
		if err != nil {
			return
		}
		defer st.Close()
		r := bufio.NewReader(st)
		line, _ := r.ReadString('\n')
		io.WriteString(st, strings.ToUpper(line))
	}()
	st, err := host.Open()
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(st, "ping\n")
	got, err := bufio.NewReader(st).ReadString('\n')
	if err != nil || got != "PING\n" {
		t.Errorf("got %q, %v", got, err)
	}
	// Closing the host's line ends both sessions.
	host.Close()
	select {
	case <-guest.CloseChan():
	case <-time.After(5 * time.Second):
		t.Error("guest session did not notice the host went away")
	}
}

func TestServeWriteError(t *testing.T) {
	_, err := Serve(failWriter{strings.NewReader("")}, 1, "", io.Discard)
	if err == nil || !strings.Contains(err.Error(), "banner") {
		t.Errorf("Serve = %v, want a banner write error", err)
	}
}

func TestAwaitBannerLeavesRest(t *testing.T) {
	br := bufio.NewReader(strings.NewReader("noise" + Banner(5) + "rest of the stream"))
	if err := awaitBanner(br, 5); err != nil {
		t.Fatal(err)
	}
	rest, _ := io.ReadAll(br)
	if string(rest) != "rest of the stream" {
		t.Errorf("after the banner %q is left, want the rest of the stream", rest)
	}
}
