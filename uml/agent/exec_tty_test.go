package agent

import (
	"bytes"
	"context"
	"io"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// These run the guest's side in the test process, over pipes (protocol_test.go's pipePair); the
// tests with the real kernel are in terminal_integration_test.go.

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestExecTerminalOverPipes(t *testing.T) {
	c := pipePair(t, "")
	var out syncBuffer
	code, err := c.ExecTerminal(context.Background(), ExecRequest{
		Argv: []string{"/bin/sh", "-c", "tty; stty size; test -t 0 && test -t 1 && test -t 2 && echo isatty; exit 5"},
	}, TermSize{Rows: 33, Cols: 101}, nil, nil, &out)
	if err != nil {
		t.Fatal(err)
	}
	if code != 5 {
		t.Errorf("exit status %d, want 5", code)
	}
	got := out.String()
	if !regexp.MustCompile(`(?m)^/dev/pts/\d+\r$`).MatchString(got) || !strings.Contains(got, "33 101\r\n") || !strings.Contains(got, "isatty\r\n") {
		t.Errorf("output %q: want a /dev/pts/N line, \"33 101\" and \"isatty\" (with the terminal's CR LF)", got)
	}
}

// Once ExecTerminal returns it reads no more of its input: the next reader of the terminal gets
// what the user types next.
func TestExecTerminalStopsReading(t *testing.T) {
	c := pipePair(t, "")
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	code, err := c.ExecTerminal(context.Background(), ExecRequest{Argv: []string{"/bin/sh", "-c", "exit 3"}},
		TermSize{Rows: 24, Cols: 80}, nil, r, io.Discard)
	if err != nil || code != 3 {
		t.Fatalf("code %d, err %v; want 3, nil", code, err)
	}
	w.Write([]byte("next"))
	r.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 16)
	n, err := r.Read(buf)
	if err != nil || string(buf[:n]) != "next" {
		t.Errorf("read after ExecTerminal: %q, %v; want \"next\" (a reader left behind took it?)", buf[:n], err)
	}
}

func TestExecTerminalResizeAndStdin(t *testing.T) {
	c := pipePair(t, "")
	testResizeAndStdin(t, c)
}

// testResizeAndStdin drives an interactive shell: its size before and after a resize, then its
// exit status.
func testResizeAndStdin(t *testing.T, c *Client) {
	t.Helper()
	inR, inW := io.Pipe()
	defer inW.Close()
	resize := make(chan TermSize, 1)
	var out syncBuffer
	type result struct {
		code int
		err  error
	}
	done := make(chan result, 1)
	go func() {
		code, err := c.ExecTerminal(context.Background(), ExecRequest{Argv: []string{"/bin/sh", "-i"}, Env: []string{"PS1=$ "}},
			TermSize{Rows: 24, Cols: 80}, resize, inR, &out)
		done <- result{code, err}
	}()
	waitFor := func(want string, send string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for !strings.Contains(out.String(), want) {
			if time.Now().After(deadline) {
				t.Fatalf("no %q in the terminal's output:\n%q", want, out.String())
			}
			if send != "" {
				inW.Write([]byte(send))
			}
			time.Sleep(500 * time.Millisecond)
		}
	}
	waitFor("24 80\r\n", "stty size\n")
	resize <- TermSize{Rows: 50, Cols: 132}
	// The resize frame and the input travel apart: ask until the new size shows.
	waitFor("50 132\r\n", "stty size\n")
	inW.Write([]byte("exit 2\n"))
	select {
	case r := <-done:
		if r.err != nil || r.code != 2 {
			t.Errorf("code %d, err %v; want 2, nil; output:\n%q", r.code, r.err, out.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("the shell did not exit; output:\n%q", out.String())
	}
}
