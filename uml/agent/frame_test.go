package agent

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"sync"
	"testing"
)

// The frame layout is the wire protocol (spec.md §2): the constants may not move.
func TestFrameWireConstants(t *testing.T) {
	for typ, want := range map[frameType]uint8{
		frameRequest: 1, frameStdin: 2, frameStdout: 3, frameStderr: 4, frameData: 5,
		frameEOF: 6, frameExit: 7, frameResult: 8, frameSignal: 9, frameResize: 10,
	} {
		if uint8(typ) != want {
			t.Errorf("%s frame has type %d on the wire, want %d", typ, uint8(typ), want)
		}
	}
	if sizeOfType != 1 || sizeOfLength != 4 || headerSize != 5 {
		t.Errorf("header: type %d + length %d = %d bytes, want 1 + 4 = 5", sizeOfType, sizeOfLength, headerSize)
	}
	if maxPayload != 1<<20 {
		t.Errorf("maxPayload %d, want %d", maxPayload, 1<<20)
	}
	if chunkSize > maxPayload {
		t.Errorf("chunkSize %d is over maxPayload %d", chunkSize, maxPayload)
	}
	if ProtocolVersion != 3 {
		t.Errorf("ProtocolVersion %d: a change needs spec.md and both sides changed together", ProtocolVersion)
	}
	// The bytes of one frame, pinned.
	var buf bytes.Buffer
	if err := (&frameWriter{w: &buf}).write(frameStdout, []byte("hi")); err != nil {
		t.Fatal(err)
	}
	if want := []byte{3, 0, 0, 0, 2, 'h', 'i'}; !bytes.Equal(buf.Bytes(), want) {
		t.Errorf("stdout frame \"hi\" is % x on the wire, want % x", buf.Bytes(), want)
	}
	buf.Reset()
	if err := (&frameWriter{w: &buf}).writeJSON(frameExit, Exit{Code: 3}); err != nil {
		t.Fatal(err)
	}
	if want := append([]byte{7, 0, 0, 0, 10}, `{"code":3}`...); !bytes.Equal(buf.Bytes(), want) {
		t.Errorf("exit frame is %q, want %q", buf.Bytes(), want)
	}
	// The JSON field names are the wire too.
	b, _ := json.Marshal(Request{Op: OpExec, Argv: []string{"a"}, Env: []string{"E=1"}, Dir: "/d", Root: "/r",
		Path: "/p", Mode: 0o644, Mtime: 5, Exclude: []string{"x"}, Contents: true, Staged: "s"})
	want := `{"op":"exec","argv":["a"],"env":["E=1"],"dir":"/d","root":"/r","path":"/p","mode":420,"mtime":5,"exclude":["x"],"contents":true,"staged":"s"}`
	if string(b) != want {
		t.Errorf("request JSON\n%s\nwant\n%s", b, want)
	}
	for v, want := range map[any]string{
		Exit{Code: 1}: `{"code":1}`, Result{}: `{}`, Result{Error: "e"}: `{"error":"e"}`, Signal{Signal: 15}: `{"signal":15}`,
		TermSize{Rows: 24, Cols: 80}: `{"rows":24,"cols":80}`,
	} {
		if b, _ := json.Marshal(v); string(b) != want {
			t.Errorf("%T JSON %s, want %s", v, b, want)
		}
	}
	for op, want := range map[string]string{OpExec: "exec", OpUpload: "upload", OpUntar: "untar", OpDownload: "download", OpTar: "tar", OpShutdown: "shutdown"} {
		if op != want {
			t.Errorf("op %q, want %q", op, want)
		}
	}
}

func TestFrameTypeString(t *testing.T) {
	for typ, want := range map[frameType]string{
		frameRequest: "request", frameStdin: "stdin", frameStdout: "stdout", frameStderr: "stderr",
		frameData: "data", frameEOF: "eof", frameExit: "exit", frameResult: "result", frameSignal: "signal",
		frameResize: "resize", 0: "frame(0)", 11: "frame(11)", 255: "frame(255)",
	} {
		if got := typ.String(); got != want {
			t.Errorf("frameType(%d).String() = %q, want %q", uint8(typ), got, want)
		}
	}
}

func TestFrameRoundTrips(t *testing.T) {
	big := make([]byte, maxPayload)
	rand.Read(big)
	type frame struct {
		typ     frameType
		payload []byte
	}
	raw := []frame{
		{frameStdin, []byte("input\n")},
		{frameStdout, []byte("output")},
		{frameStderr, []byte("error output\x00\xff")},
		{frameData, big}, // the largest allowed
		{frameData, []byte{}},
		{frameEOF, nil},
		{frameStdin, nil}, // empty stdin
	}
	jsons := []struct {
		typ frameType
		v   any
		dst any
	}{
		{frameRequest, &Request{Op: OpExec, Argv: []string{"/bin/sh", "-c", "echo hi"}, Env: []string{"A=b"}, Dir: "/tmp"}, &Request{}},
		{frameRequest, &Request{Op: OpUntar, Root: "/target", Path: "/etc", Exclude: []string{"*.log"}, Contents: true, Staged: "x.tar"}, &Request{}},
		{frameRequest, &Request{Op: OpUpload, Path: "/f", Mode: 0o4755, Mtime: 1_700_000_000}, &Request{}},
		{frameExit, &Exit{Code: 255}, &Exit{}},
		{frameExit, &Exit{Code: -1}, &Exit{}},
		{frameResult, &Result{}, &Result{}},
		{frameResult, &Result{Error: "no such file: /x"}, &Result{}},
		{frameSignal, &Signal{Signal: 9}, &Signal{}},
		{frameResize, &TermSize{Rows: 50, Cols: 132}, &TermSize{}},
		{frameRequest, &Request{Op: OpExec, Argv: []string{"/bin/sh"}, TTY: &TermSize{Rows: 24, Cols: 80}}, &Request{}},
	}
	var buf bytes.Buffer
	fw := &frameWriter{w: &buf}
	for _, f := range raw {
		if err := fw.write(f.typ, f.payload); err != nil {
			t.Fatalf("write %s: %v", f.typ, err)
		}
	}
	for _, j := range jsons {
		if err := fw.writeJSON(j.typ, j.v); err != nil {
			t.Fatalf("writeJSON %s: %v", j.typ, err)
		}
	}
	fr := &frameReader{r: &buf}
	for _, f := range raw {
		typ, p, err := fr.read()
		if err != nil {
			t.Fatalf("read %s: %v", f.typ, err)
		}
		if typ != f.typ || !bytes.Equal(p, f.payload) {
			t.Errorf("read %s frame of %d bytes, want %s of %d", typ, len(p), f.typ, len(f.payload))
		}
	}
	for _, j := range jsons {
		p, err := fr.expect(j.typ)
		if err != nil {
			t.Fatalf("expect %s: %v", j.typ, err)
		}
		if err := json.Unmarshal(p, j.dst); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(j.dst, j.v) {
			t.Errorf("%s frame decoded to %+v, want %+v", j.typ, j.dst, j.v)
		}
	}
	if _, _, err := fr.read(); err != io.EOF {
		t.Errorf("read at the end: %v, want io.EOF", err)
	}
}

// A payload is only valid until the next read: the buffer is reused.
func TestFrameReaderReusesBuffer(t *testing.T) {
	var buf bytes.Buffer
	fw := &frameWriter{w: &buf}
	fw.write(frameData, []byte("first payload"))
	fw.write(frameData, []byte("second"))
	fr := &frameReader{r: &buf}
	_, p1, _ := fr.read()
	c := cap(fr.buf)
	_, p2, _ := fr.read()
	if string(p2) != "second" || cap(fr.buf) != c {
		t.Errorf("second payload %q, buffer cap %d -> %d", p2, c, cap(fr.buf))
	}
	if &p1[0] != &p2[0] {
		t.Error("the buffer was not reused")
	}
}

func TestFrameWriterTooLarge(t *testing.T) {
	var buf bytes.Buffer
	err := (&frameWriter{w: &buf}).write(frameData, make([]byte, maxPayload+1))
	if !errors.Is(err, ErrFrameTooLarge) {
		t.Errorf("write of maxPayload+1 bytes: %v, want ErrFrameTooLarge", err)
	}
	if buf.Len() != 0 {
		t.Errorf("a refused frame still wrote %d bytes", buf.Len())
	}
}

func header(t byte, n uint32) []byte {
	h := []byte{t, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(h[1:], n)
	return h
}

func TestFrameReaderErrors(t *testing.T) {
	for name, tc := range map[string]struct {
		in   []byte
		want error
	}{
		"too large":            {header(byte(frameData), maxPayload+1), ErrFrameTooLarge},
		"far too large":        {header(byte(frameStdout), 0xffffffff), ErrFrameTooLarge},
		"too large, bad type":  {header(200, maxPayload+1), ErrFrameTooLarge},
		"type zero":            {header(0, 0), ErrUnexpectedFrame},
		"type eleven":          {append(header(11, 1), 'x'), ErrUnexpectedFrame},
		"type 255":             {header(255, 3), ErrUnexpectedFrame},
		"truncated payload":    {append(header(byte(frameStdout), 10), "short"...), io.ErrUnexpectedEOF},
		"no payload at all":    {header(byte(frameData), 1), io.ErrUnexpectedEOF},
		"truncated header":     {[]byte{byte(frameData), 0, 0}, io.ErrUnexpectedEOF},
		"one byte":             {[]byte{byte(frameEOF)}, io.ErrUnexpectedEOF},
		"clean end":            {nil, io.EOF},
		"max payload, missing": {header(byte(frameData), maxPayload), io.ErrUnexpectedEOF},
	} {
		t.Run(name, func(t *testing.T) {
			fr := &frameReader{r: bytes.NewReader(tc.in)}
			typ, p, err := fr.read()
			if !errors.Is(err, tc.want) {
				t.Fatalf("read = %s, %d bytes, %v; want %v", typ, len(p), err, tc.want)
			}
			if tc.want == io.EOF && err != io.EOF {
				t.Errorf("a clean end must be io.EOF itself, got %v", err)
			}
			if errors.Is(err, ErrFrameTooLarge) && cap(fr.buf) != 0 {
				t.Errorf("allocated %d bytes for a refused frame", cap(fr.buf))
			}
		})
	}
}

func TestFrameExpect(t *testing.T) {
	var buf bytes.Buffer
	fw := &frameWriter{w: &buf}
	fw.writeJSON(frameExit, Exit{Code: 1})
	fw.write(frameEOF, nil)
	fr := &frameReader{r: &buf}
	_, err := fr.expect(frameResult)
	if !errors.Is(err, ErrUnexpectedFrame) || !strings.Contains(err.Error(), "exit") || !strings.Contains(err.Error(), "result") {
		t.Errorf("expect(result) on an exit frame: %v", err)
	}
	if p, err := fr.expect(frameEOF); err != nil || len(p) != 0 {
		t.Errorf("expect(eof) = %q, %v", p, err)
	}
	if _, err := fr.expect(frameEOF); err != io.EOF {
		t.Errorf("expect at the end: %v, want io.EOF", err)
	}
}

// Frames written by several goroutines at once stay whole.
func TestFrameWriterConcurrent(t *testing.T) {
	var buf bytes.Buffer
	var mu sync.Mutex
	fw := &frameWriter{w: writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return buf.Write(p)
	})}
	const writers, frames = 8, 200
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < frames; i++ {
				fw.write(frameType(1+w%9), []byte(fmt.Sprintf("writer %d frame %d %s", w, i, strings.Repeat("x", i))))
			}
		}()
	}
	wg.Wait()
	fr := &frameReader{r: &buf}
	next := make([]int, writers)
	for n := 0; n < writers*frames; n++ {
		typ, p, err := fr.read()
		if err != nil {
			t.Fatalf("frame %d: %v", n, err)
		}
		var w, i int
		if _, err := fmt.Sscanf(string(p), "writer %d frame %d", &w, &i); err != nil {
			t.Fatalf("frame %d: payload %q", n, p)
		}
		if typ != frameType(1+w%9) || i != next[w] || !strings.HasSuffix(string(p), " "+strings.Repeat("x", i)) {
			t.Fatalf("frame %d: %s %q, want writer %d's frame %d", n, typ, p, w, next[w])
		}
		next[w]++
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func TestDataWriterReader(t *testing.T) {
	for _, size := range []int{0, 1, chunkSize - 1, chunkSize, chunkSize + 1, 3*chunkSize + 12345} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			data := make([]byte, size)
			rand.Read(data)
			var buf bytes.Buffer
			fw := &frameWriter{w: &buf}
			dw := dataWriter{fw}
			n, err := dw.Write(data)
			if err != nil || n != size {
				t.Fatalf("Write = %d, %v", n, err)
			}
			if err := dw.Close(); err != nil {
				t.Fatal(err)
			}
			// Frames of at most chunkSize bytes, then eof.
			wire := bytes.NewReader(buf.Bytes())
			fr := &frameReader{r: wire}
			frames := 0
			for {
				typ, p, err := fr.read()
				if err != nil {
					t.Fatal(err)
				}
				if typ == frameEOF {
					break
				}
				if typ != frameData || len(p) > chunkSize || len(p) == 0 {
					t.Fatalf("frame %s of %d bytes", typ, len(p))
				}
				frames++
			}
			if want := (size + chunkSize - 1) / chunkSize; frames != want {
				t.Errorf("%d data frames, want %d", frames, want)
			}
			// And back, with small reads.
			dr := &dataReader{fr: &frameReader{r: bytes.NewReader(buf.Bytes())}}
			got, err := io.ReadAll(io.LimitReader(struct{ io.Reader }{dr}, int64(size)+1))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, data) {
				t.Error("data differs")
			}
			// EOF sticks.
			if n, err := dr.Read(make([]byte, 1)); n != 0 || err != io.EOF {
				t.Errorf("Read after eof = %d, %v", n, err)
			}
		})
	}
}

type failingWriter struct{ after int }

func (w *failingWriter) Write(p []byte) (int, error) {
	if w.after <= 0 {
		return 0, errors.New("stream reset")
	}
	w.after--
	return len(p), nil
}

func TestDataWriterError(t *testing.T) {
	// Header and payload of the first chunk go through, then the stream fails.
	dw := dataWriter{&frameWriter{w: &failingWriter{after: 2}}}
	n, err := dw.Write(make([]byte, 2*chunkSize+1))
	if err == nil || n != chunkSize {
		t.Errorf("Write = %d, %v; want %d and the stream's error", n, err, chunkSize)
	}
}

func TestDataReaderRemoteError(t *testing.T) {
	var buf bytes.Buffer
	fw := &frameWriter{w: &buf}
	fw.write(frameData, []byte("partial"))
	fw.writeJSON(frameResult, Result{Error: "open /nope: no such file or directory"})
	dr := &dataReader{fr: &frameReader{r: &buf}}
	got, err := io.ReadAll(dr)
	if string(got) != "partial" {
		t.Errorf("data before the error: %q", got)
	}
	var re *RemoteError
	if !errors.As(err, &re) {
		t.Fatalf("error %v (%T), want a *RemoteError", err, err)
	}
	if re.Msg != "open /nope: no such file or directory" || re.Error() != "guest: open /nope: no such file or directory" {
		t.Errorf("RemoteError %q / %q", re.Msg, re.Error())
	}
}

func TestDataReaderErrors(t *testing.T) {
	build := func(f func(fw *frameWriter)) *dataReader {
		var buf bytes.Buffer
		f(&frameWriter{w: &buf})
		return &dataReader{fr: &frameReader{r: &buf}}
	}
	// The stream ends without eof.
	dr := build(func(fw *frameWriter) { fw.write(frameData, []byte("abc")) })
	if _, err := io.ReadAll(dr); err != io.ErrUnexpectedEOF {
		t.Errorf("no eof frame: %v, want io.ErrUnexpectedEOF", err)
	}
	// Another frame in a data stream.
	dr = build(func(fw *frameWriter) { fw.write(frameStdout, []byte("abc")) })
	if _, err := io.ReadAll(dr); !errors.Is(err, ErrUnexpectedFrame) {
		t.Errorf("stdout frame in a data stream: %v, want ErrUnexpectedFrame", err)
	}
	// A result frame that does not decode.
	dr = build(func(fw *frameWriter) { fw.write(frameResult, []byte("{not json")) })
	if _, err := io.ReadAll(dr); err == nil || !strings.Contains(err.Error(), "decode result") {
		t.Errorf("bad result frame: %v", err)
	}
	// A frame too large.
	dr = &dataReader{fr: &frameReader{r: bytes.NewReader(header(byte(frameData), maxPayload+1))}}
	if _, err := io.ReadAll(dr); !errors.Is(err, ErrFrameTooLarge) {
		t.Errorf("oversized frame: %v, want ErrFrameTooLarge", err)
	}
	// Empty data frames are skipped.
	dr = build(func(fw *frameWriter) {
		fw.write(frameData, nil)
		fw.write(frameData, []byte("x"))
		fw.write(frameData, nil)
		fw.write(frameEOF, nil)
	})
	if got, err := io.ReadAll(dr); err != nil || string(got) != "x" {
		t.Errorf("empty data frames: %q, %v", got, err)
	}
}

func TestResultError(t *testing.T) {
	if err := resultError([]byte(`{}`)); err != nil {
		t.Errorf("empty result: %v", err)
	}
	if err := resultError([]byte(`{"error":""}`)); err != nil {
		t.Errorf("empty error: %v", err)
	}
	var re *RemoteError
	if err := resultError([]byte(`{"error":"boom"}`)); !errors.As(err, &re) || re.Msg != "boom" {
		t.Errorf("error result: %v", err)
	}
	if err := resultError([]byte(`[`)); err == nil || errors.As(err, &re) {
		t.Errorf("undecodable result: %v", err)
	}
}
