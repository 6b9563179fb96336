package machine

import (
	"bufio"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestMain lets the test binary serve as the watchdog, as the plugin's binary does: Start runs it
// with WatchdogArg.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == WatchdogArg {
		RunWatchdog(os.Args[2:]) // never returns
	}
	os.Exit(m.Run())
}

func TestExtraFD(t *testing.T) {
	// The agent's line is 3 and 4; extra files follow.
	for i, want := range []int{5, 6, 7} {
		if got := ExtraFD(i); got != want {
			t.Errorf("ExtraFD(%d) = %d, want %d", i, got, want)
		}
	}
}

func TestParseExtraFiles(t *testing.T) {
	for v, want := range map[string]int{"": 0, "0": 0, "1": 1, "64": 64} {
		if n, err := parseExtraFiles(v); err != nil || n != want {
			t.Errorf("parseExtraFiles(%q) = %d, %v; want %d", v, n, err, want)
		}
	}
	for _, v := range []string{"-1", "65", "x", "1x", " 1"} {
		if _, err := parseExtraFiles(v); err == nil || !strings.Contains(err.Error(), extraFilesEnv) {
			t.Errorf("parseExtraFiles(%q): err %v, want one naming %s", v, err, extraFilesEnv)
		}
	}
}

func TestArgsIgnoreExtraFiles(t *testing.T) {
	s := validSpec()
	want, _ := s.Args()
	s.ExtraFiles = []*os.File{os.Stdin}
	got, _ := s.Args()
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("ExtraFiles changed the command line: %v, want %v", got, want)
	}
}

func TestStartRejectsNilExtraFile(t *testing.T) {
	s := validSpec()
	s.ExtraFiles = []*os.File{os.Stdin, nil}
	if _, err := Start(s, "/nonexistent", io.Discard); err == nil || !strings.Contains(err.Error(), "descriptor 6") {
		t.Errorf("err %v, want one naming descriptor 6", err)
	}
}

// fakeUML stands in for the kernel: it reports what it inherited from the watchdog on the console,
// writes to the agent's line and to both extra files, and waits until the watchdog ($PPID) has
// closed its copies of the extra files.
const fakeUML = `#!/bin/sh
echo "env=${PACKER_UML_WATCHDOG_EXTRA_FDS-unset}"
if [ -e /proc/self/fd/7 ]; then echo fd7=open; else echo fd7=closed; fi
echo guest-line >&4
echo extra0 >&5
echo extra1 >&6
mine="$(readlink /proc/self/fd/5) $(readlink /proc/self/fd/6)"
i=0
while [ $i -lt 100 ]; do
	open=
	for f in /proc/$PPID/fd/*; do
		l=$(readlink "$f") || continue
		case " $mine " in *" $l "*) open="$open $l" ;; esac
	done
	if [ -z "$open" ]; then echo watchdog-closed; exit 0; fi
	sleep 0.05
	i=$((i+1))
done
echo "watchdog-still-holds$open"
`

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestStartPassesExtraFiles runs the real watchdog (this test binary) with a shell script as the
// kernel: the extra files must reach it as ExtraFD(0) and ExtraFD(1), after the agent's line, and the
// watchdog must not keep them open.
func TestStartPassesExtraFiles(t *testing.T) {
	dir := t.TempDir()
	kernel := filepath.Join(dir, "linux")
	if err := os.WriteFile(kernel, []byte(fakeUML), 0o755); err != nil {
		t.Fatal(err)
	}
	var readers []*os.File
	s := validSpec()
	s.Kernel, s.UMLDir, s.TmpDir = kernel, dir, dir
	for range 2 {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		readers = append(readers, r)
		s.ExtraFiles = append(s.ExtraFiles, w)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	var console lockedBuffer
	m, err := Start(s, self, &console)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Kill(5 * time.Second)
	// Start leaves the extra files to the caller, who closes them once UML has them.
	for _, w := range s.ExtraFiles {
		w.Close()
	}
	line, err := bufio.NewReader(m.Channel()).ReadString('\n')
	if err != nil || line != "guest-line\n" {
		t.Errorf("agent line: %q, %v", line, err)
	}
	for i, r := range readers {
		got, err := io.ReadAll(r) // EOF once the script has exited: nobody else holds the write end
		if want := []string{"extra0\n", "extra1\n"}[i]; err != nil || string(got) != want {
			t.Errorf("extra file %d (fd %d): %q, %v; want %q", i, ExtraFD(i), got, err, want)
		}
	}
	if !m.Wait(10 * time.Second) {
		t.Fatalf("fake UML did not exit; console:\n%s", console.String())
	}
	if err := m.Err(); err != nil {
		t.Errorf("watchdog: %v; console:\n%s", err, console.String())
	}
	out := console.String()
	for _, want := range []string{
		"env=unset\n",       // the watchdog keeps its variable to itself
		"fd7=closed\n",      // exactly the files announced, nothing after them
		"watchdog-closed\n", // the watchdog closed its copies after starting UML
	} {
		if !strings.Contains(out, want) {
			t.Errorf("console lacks %q:\n%s", want, out)
		}
	}
}
