package agent_test

import (
	"bytes"
	"context"
	"io"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/packer-uml/packer-plugin-uml/internal/umltest"
	"github.com/packer-uml/packer-plugin-uml/uml/agent"
)

// ExecTerminal against the real kernel and the real agent (PID 1, with its reaper).

type termOutput struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (o *termOutput) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.Write(p)
}

func (o *termOutput) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.String()
}

type execResult struct {
	code int
	err  error
}

func TestExecTerminal(t *testing.T) {
	g := umltest.Boot(t, umltest.Options{})

	t.Run("a terminal of the size asked", func(t *testing.T) {
		var out termOutput
		code, err := g.Client.ExecTerminal(context.Background(), agent.ExecRequest{
			Argv: []string{"/bin/sh", "-c", "tty; stty size; test -t 0 && echo isatty; exit 4"},
		}, agent.TermSize{Rows: 33, Cols: 101}, nil, nil, &out)
		if err != nil {
			t.Fatal(err)
		}
		if code != 4 {
			t.Errorf("exit status %d, want 4", code)
		}
		got := out.String()
		if !regexp.MustCompile(`(?m)^/dev/pts/\d+\r$`).MatchString(got) || !strings.Contains(got, "33 101\r\n") || !strings.Contains(got, "isatty\r\n") {
			t.Errorf("output %q: want a /dev/pts/N line, \"33 101\" and \"isatty\"", got)
		}
	})

	t.Run("output after exit is drained", func(t *testing.T) {
		var out termOutput
		// More than the terminal and the channel hold at once, written just before the exit.
		code, err := g.Client.ExecTerminal(context.Background(), agent.ExecRequest{
			Argv: []string{"/bin/sh", "-c", "seq 1 20000; echo END"},
		}, agent.TermSize{Rows: 24, Cols: 80}, nil, nil, &out)
		if err != nil || code != 0 {
			t.Fatalf("code %d, err %v", code, err)
		}
		if got := out.String(); !strings.Contains(got, "\r\n19999\r\n20000\r\nEND\r\n") {
			t.Errorf("output ends %q, want all of seq's lines and END", got[max(0, len(got)-80):])
		}
	})

	t.Run("resize and stdin", func(t *testing.T) {
		inR, inW := io.Pipe()
		defer inW.Close()
		resize := make(chan agent.TermSize, 1)
		var out termOutput
		done := make(chan execResult, 1)
		go func() {
			code, err := g.Client.ExecTerminal(context.Background(), agent.ExecRequest{
				Argv: []string{"/bin/sh", "-i"}, Env: []string{"PS1=$ "},
			}, agent.TermSize{Rows: 24, Cols: 80}, resize, inR, &out)
			done <- execResult{code, err}
		}()
		waitFor := func(want, send string) {
			t.Helper()
			deadline := time.Now().Add(60 * time.Second)
			for !strings.Contains(out.String(), want) {
				if time.Now().After(deadline) {
					t.Fatalf("no %q in the terminal's output:\n%q\nconsole:\n%s", want, out.String(), g.ConsoleTail())
				}
				inW.Write([]byte(send))
				time.Sleep(time.Second)
			}
		}
		waitFor("24 80\r\n", "stty size\n")
		resize <- agent.TermSize{Rows: 50, Cols: 132}
		// The resize frame and the input travel apart: ask until the new size shows.
		waitFor("50 132\r\n", "stty size\n")
		inW.Write([]byte("exit 2\n"))
		select {
		case r := <-done:
			if r.err != nil || r.code != 2 {
				t.Errorf("code %d, err %v; want 2, nil; output:\n%q", r.code, r.err, out.String())
			}
		case <-time.After(60 * time.Second):
			t.Fatalf("the shell did not exit; output:\n%q", out.String())
		}
	})

	t.Run("cancel kills the session", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		inR, inW := io.Pipe()
		defer inW.Close()
		var out termOutput
		done := make(chan execResult, 1)
		go func() {
			code, err := g.Client.ExecTerminal(ctx, agent.ExecRequest{Argv: []string{"/bin/sh", "-i"}, Env: []string{"PS1=$ "}},
				agent.TermSize{Rows: 24, Cols: 80}, nil, inR, &out)
			done <- execResult{code, err}
		}()
		// An interactive shell runs each job in a process group of its own: the background one
		// ignores the hangup that the shell's death sends, so only the session-wide kill ends it.
		inW.Write([]byte("trap '' HUP; sleep 1000 & sleep 1001; echo NOT-$((1+1))-KILLED\n"))
		deadline := time.Now().Add(60 * time.Second)
		for {
			if strings.TrimSpace(g.Sh(t, "ps -eo comm | grep -c '^sleep$' || true")) == "2" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the sleeps did not start; output:\n%q", out.String())
			}
			time.Sleep(500 * time.Millisecond)
		}
		cancel()
		select {
		case r := <-done:
			if r.err != context.Canceled {
				t.Errorf("err %v, want context.Canceled", r.err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("cancelled ExecTerminal did not return")
		}
		deadline = time.Now().Add(10 * time.Second)
		for {
			got := g.Sh(t, "ps -eo comm | grep -c '^sleep$' || true")
			if strings.TrimSpace(got) == "0" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("sleep processes survive the cancel: %s\n%s", got, g.Sh(t, "ps -eo pid,ppid,pgid,sid,stat,comm"))
			}
			time.Sleep(200 * time.Millisecond)
		}
		if strings.Contains(out.String(), "NOT-2-KILLED") {
			t.Errorf("the shell outlived the cancel: %q", out.String())
		}
	})

	t.Run("plain exec still keeps its status", func(t *testing.T) {
		// The reaper must not take the status of a terminal session's leader, nor of what follows.
		for i := range 5 {
			code, err := g.Client.ExecTerminal(context.Background(), agent.ExecRequest{
				Argv: []string{"/bin/sh", "-c", "(sleep 0.05 &); exit $0", strconv.Itoa(i + 10)},
			}, agent.TermSize{Rows: 24, Cols: 80}, nil, nil, io.Discard)
			if err != nil || code != i+10 {
				t.Fatalf("code %d, err %v; want %d", code, err, i+10)
			}
		}
		if out := g.Sh(t, "echo ok"); out != "ok\n" {
			t.Errorf("plain exec after terminal sessions: %q", out)
		}
	})

	g.Shutdown(t)
}
