package agent

import (
	"bytes"
	"errors"
	"io"
	"runtime"
	"testing"
)

// FuzzFrameReader reads frames from arbitrary bytes: no panic, no buffer over maxPayload (and no
// more than that allocated by a read), every frame it returns is well-formed, and writing the frames
// back gives exactly the bytes they were read from. A dataReader over the same bytes must not panic
// and returns no more bytes than it was given.
func FuzzFrameReader(f *testing.F) {
	seed := func(build func(fw *frameWriter)) []byte {
		var buf bytes.Buffer
		build(&frameWriter{w: &buf})
		return buf.Bytes()
	}
	f.Add([]byte{})
	f.Add([]byte{byte(frameData)})
	f.Add(header(byte(frameData), maxPayload))
	f.Add(header(byte(frameData), maxPayload+1))
	f.Add(header(0, 0))
	f.Add(header(255, 1))
	f.Add(seed(func(fw *frameWriter) {
		fw.writeJSON(frameRequest, Request{Op: OpExec, Argv: []string{"/bin/true"}})
		fw.write(frameStdin, []byte("in"))
		fw.write(frameStdout, []byte("out"))
		fw.write(frameStderr, []byte("err"))
		fw.writeJSON(frameSignal, Signal{Signal: 2})
		fw.writeJSON(frameExit, Exit{Code: 0})
	}))
	f.Add(seed(func(fw *frameWriter) {
		fw.write(frameData, []byte("abc"))
		fw.write(frameData, nil)
		fw.write(frameEOF, nil)
		fw.writeJSON(frameResult, Result{})
	}))
	f.Add(seed(func(fw *frameWriter) {
		fw.write(frameData, []byte("abc"))
		fw.writeJSON(frameResult, Result{Error: "failed"})
	}))
	f.Fuzz(func(t *testing.T, data []byte) {
		var ms runtime.MemStats
		fr := &frameReader{r: bytes.NewReader(data)}
		var again bytes.Buffer
		fw := &frameWriter{w: &again}
		consumed := 0
		for {
			runtime.ReadMemStats(&ms)
			before := ms.TotalAlloc
			typ, p, err := fr.read()
			runtime.ReadMemStats(&ms)
			if grew := ms.TotalAlloc - before; grew > maxPayload+64<<10 {
				t.Fatalf("one read allocated %d bytes", grew)
			}
			if cap(fr.buf) > maxPayload {
				t.Fatalf("buffer of %d bytes", cap(fr.buf))
			}
			if err != nil {
				switch {
				case err == io.EOF:
					if consumed != len(data) {
						t.Fatalf("io.EOF with %d of %d bytes read", consumed, len(data))
					}
				case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, ErrFrameTooLarge), errors.Is(err, ErrUnexpectedFrame):
				default:
					t.Fatalf("unexpected error %v", err)
				}
				break
			}
			if typ < frameRequest || typ > frameResize {
				t.Fatalf("returned a frame of type %d", typ)
			}
			if len(p) > maxPayload {
				t.Fatalf("returned a payload of %d bytes", len(p))
			}
			if err := fw.write(typ, p); err != nil {
				t.Fatal(err)
			}
			consumed += headerSize + len(p)
		}
		if !bytes.Equal(again.Bytes(), data[:consumed]) {
			t.Fatalf("frames written back differ from the bytes they were read from")
		}

		dr := &dataReader{fr: &frameReader{r: bytes.NewReader(data)}}
		got, _ := io.ReadAll(dr)
		if len(got) > len(data) {
			t.Fatalf("dataReader returned %d bytes from %d", len(got), len(data))
		}
	})
}
