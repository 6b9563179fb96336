package hostterm

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/packer-uml/packer-plugin-uml/internal/pty"
)

// The tests run the test binary again as a child (TestMain sees helperEnv): a process's
// controlling terminal is fixed by its session, so each case needs a process of its own.
const helperEnv = "HOSTTERM_TEST_HELPER"

func TestMain(m *testing.M) {
	switch os.Getenv(helperEnv) {
	case "":
		os.Exit(m.Run())
	case "open":
		helperOpen()
	case "terminal":
		helperTerminal()
	}
	os.Exit(0)
}

func helper(t *testing.T, mode string) *exec.Cmd {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), helperEnv+"="+mode)
	return cmd
}

// helperOpen reports what Open says.
func helperOpen() {
	t, err := Open()
	if err != nil {
		fmt.Printf("errors.Is=%v error=%v\n", errors.Is(err, ErrNoTerminal), err)
		return
	}
	t.Close()
	fmt.Println("opened")
}

// In a session of its own, which has no controlling terminal, Open says so.
func TestOpenWithoutTerminal(t *testing.T) {
	cmd := helper(t, "open")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	got := string(out)
	if !strings.Contains(got, "errors.Is=true") || !strings.Contains(got, "no terminal") {
		t.Errorf("Open without a controlling terminal: %q, want ErrNoTerminal saying \"no terminal\"", got)
	}
}

// helperTerminal runs on a pty that TestTerminalOnPty made its controlling terminal; it reports
// on stdout, line by line, and takes its cues from stdin.
func helperTerminal() {
	in := bufio.NewReader(os.Stdin)
	say := func(format string, args ...any) { fmt.Printf(format+"\n", args...) }
	echo := func() bool {
		tio, err := unix.IoctlGetTermios(3, unix.TCGETS) // fd 3: the slave, as the parent passed it
		return err == nil && tio.Lflag&unix.ECHO != 0
	}
	t, err := Open()
	if err != nil {
		say("open: %v", err)
		return
	}
	s, err := t.Size()
	say("size %d %d %v", s.Rows, s.Cols, err)
	resizes := t.Resizes()
	// Restore on every path: a panic in the middle of a raw session leaves the terminal as it was.
	func() {
		defer func() { recover() }()
		defer t.Restore()
		if err := t.MakeRaw(); err != nil {
			say("makeraw: %v", err)
		}
		say("raw echo=%v", echo())
		panic("boom")
	}()
	say("restored echo=%v", echo())
	say("ready")
	select {
	case s := <-resizes:
		say("resized %d %d", s.Rows, s.Cols)
	case <-time.After(20 * time.Second):
		say("no resize")
	}
	// A read through the terminal, ended by a deadline, as ExecTerminal ends its reader.
	t.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	_, err = t.Read(make([]byte, 1))
	say("read deadline %v", errors.Is(err, os.ErrDeadlineExceeded))
	t.MakeRaw()
	t.Close()
	say("closed echo=%v", echo())
	t.Close() // a second Close is harmless
	in.ReadString('\n')
}

func TestTerminalOnPty(t *testing.T) {
	master, slave, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer master.Close()
	if err := pty.SetSize(master, 40, 120); err != nil {
		t.Fatal(err)
	}
	cmd := helper(t, "terminal")
	cmd.ExtraFiles = []*os.File{slave} // fd 3 in the child
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 3}
	stdin, _ := cmd.StdinPipe()
	defer stdin.Close()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	slave.Close()
	defer cmd.Wait()
	// Drain the terminal: nothing should write there, but a full buffer must not block the child.
	go io.Copy(io.Discard, master)
	lines := make(chan string)
	go func() {
		s := bufio.NewScanner(stdout)
		for s.Scan() {
			lines <- s.Text()
		}
		close(lines)
	}()
	expect := func(want string) {
		t.Helper()
		select {
		case got, ok := <-lines:
			if !ok {
				t.Fatalf("helper ended; want %q", want)
			}
			if got != want {
				t.Fatalf("helper says %q, want %q", got, want)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("helper silent; want %q", want)
		}
	}
	expect("size 40 120 <nil>")
	expect("raw echo=false")
	expect("restored echo=true")
	expect("ready")
	if err := pty.SetSize(master, 41, 121); err != nil {
		t.Fatal(err)
	}
	expect("resized 41 121")
	expect("read deadline true")
	expect("closed echo=true")
	stdin.Write([]byte("\n"))
}
