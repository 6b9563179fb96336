// Package umltest boots real UML guests for tests: it builds the plugin binary once (it is the
// guest's init and agent), starts the machine and opens the agent session. Tests that use it need
// Debian's user-mode-linux package; without it they fail (they never skip: CI installs it).
//
// The kernel is UML_KERNEL when set (a path, or a name on PATH), else the one the builder would
// pick (kernel.Find): the kernel scripts/build-uml-kernel installed for this user, else Debian's.
// UML_KERNEL=linux.uml runs the tests with Debian's kernel while another is installed.
package umltest

import (
	"context"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/packer-uml/packer-plugin-uml/uml/agent"
	"github.com/packer-uml/packer-plugin-uml/uml/kernel"
	"github.com/packer-uml/packer-plugin-uml/uml/machine"
	"github.com/packer-uml/packer-plugin-uml/uml/netproxy"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// Binary builds the plugin (static, as releases are) once per test process and returns its path.
// The binary lives in a directory every user can read, because the guest runs it as init with the
// test user's rights.
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "umltest-bin-")
		if err != nil {
			buildErr = err
			return
		}
		os.Chmod(dir, 0o755)
		binPath = filepath.Join(dir, "packer-plugin-uml")
		cmd := exec.Command("go", "build", "-o", binPath, "github.com/packer-uml/packer-plugin-uml")
		// From the module's root: a test may have changed its working directory.
		_, self, _, _ := runtime.Caller(0)
		cmd.Dir = filepath.Join(filepath.Dir(self), "..", "..")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// Guest is one booted machine with its agent session.
type Guest struct {
	Machine *machine.Machine
	Client  *agent.Client
	Console *machine.Console
	Dir     string // host directory of this guest: image, console log, UML's files
	Image   string
	Ready   time.Duration // from start to agent ready
}

// Options for Boot.
type Options struct {
	ImageMiB int // size of the sparse image attached as ubd<FirstDisk> (default 64)
	// FirstDisk is the image's ubd index: 0 (/dev/ubda), or 1 (/dev/ubdb) as the builder attaches it.
	FirstDisk int
	WorkDir   string // host directory mounted read-write as $WORKDIR (default none)
	MemMiB    int
	// OnConsole, when set, sees every console line as it arrives.
	OnConsole func(line string)
	// ProxyAddr, when set, is the guest's proxy port (agent.GuestConfig.ProxyAddr); Boot then
	// serves it on the host with a netproxy.
	ProxyAddr string
	// ExtraFiles are passed to UML as machine.ExtraFD(0), ExtraFD(1), ... (machine.Spec.ExtraFiles);
	// ExtraArgs are appended to the kernel's command line (machine.Spec.Extra).
	ExtraFiles []*os.File
	ExtraArgs  []string
}

// Boot starts a guest and waits for its agent; the guest is killed when the test ends.
func Boot(t testing.TB, o Options) *Guest {
	t.Helper()
	bin := Binary(t)
	kpath, err := kernel.Find(os.Getenv("UML_KERNEL"))
	if err != nil {
		t.Fatalf("%v (install Debian's user-mode-linux package)", err)
	}
	k, err := kernel.Inspect(context.Background(), kpath)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	g := &Guest{Dir: dir, Image: filepath.Join(dir, "image")}
	if o.ImageMiB == 0 {
		o.ImageMiB = 64
	}
	if o.MemMiB == 0 {
		o.MemMiB = 256
	}
	if err := os.WriteFile(g.Image, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(g.Image, int64(o.ImageMiB)<<20); err != nil {
		t.Fatal(err)
	}
	staging := filepath.Join(dir, "staging")
	if err := os.Mkdir(staging, 0o700); err != nil {
		t.Fatal(err)
	}
	cfg, _ := agent.GuestConfig{WorkDir: o.WorkDir, StagingDir: staging, ModulesDir: k.ModulesDir, ProxyAddr: o.ProxyAddr}.Encode()
	logf, err := os.Create(filepath.Join(dir, "console.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { logf.Close() })
	g.Console = &machine.Console{File: logf, Keep: 40, OnLine: o.OnConsole}
	spec := machine.Spec{
		Kernel: k.Path, UMID: fmt.Sprintf("umltest-%d-%d", os.Getpid(), time.Now().UnixNano()%1e9),
		UMLDir: dir, TmpDir: dir, MemMiB: o.MemMiB, Disks: []string{g.Image}, FirstDisk: o.FirstDisk,
		Init: bin, InitParams: []string{cfg}, Seccomp: k.Seccomp,
		Extra: o.ExtraArgs, ExtraFiles: o.ExtraFiles,
	}
	start := time.Now()
	m, err := machine.Start(spec, bin, g.Console)
	if err != nil {
		t.Fatal(err)
	}
	g.Machine = m
	t.Cleanup(func() {
		if !m.Exited() {
			m.Kill(10 * time.Second)
		}
	})
	c, err := agent.Connect(context.Background(), m.Channel(), m.Done(), 2*time.Minute, staging, os.Stderr)
	if err != nil {
		m.Kill(10 * time.Second)
		t.Fatalf("agent: %v\nconsole:\n%s", err, g.ConsoleTail())
	}
	g.Client = c
	g.Ready = time.Since(start)
	if o.ProxyAddr != "" {
		go c.ServeProxy(netproxy.New(netproxy.Options{Log: log.New(os.Stderr, "netproxy: ", log.Lmicroseconds)}))
	}
	return g
}

// ConsoleTail is the last console lines, for failure messages.
func (g *Guest) ConsoleTail() string { return strings.Join(g.Console.Tail(), "\n") }

// Sh runs a shell script in the guest's build environment and returns its output; a non-zero exit
// fails the test.
func (g *Guest) Sh(t testing.TB, script string) string {
	t.Helper()
	out, code, err := g.ShCode(script)
	if err != nil || code != 0 {
		t.Fatalf("guest script failed (exit %d, %v):\n%s\noutput:\n%s\nconsole:\n%s", code, err, script, out, g.ConsoleTail())
	}
	return out
}

// ShCode runs a shell script and returns its combined output and exit status.
func (g *Guest) ShCode(script string) (string, int, error) {
	var out strings.Builder
	w := &lockedWriter{w: &out}
	code, err := g.Client.Exec(context.Background(), agent.ExecRequest{Argv: []string{"/bin/sh", "-c", script}}, nil, w, w)
	return out.String(), code, err
}

// Shutdown powers the guest off and waits for UML to exit.
func (g *Guest) Shutdown(t testing.TB) {
	t.Helper()
	if err := g.Client.Shutdown(); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if !g.Machine.Wait(time.Minute) {
		t.Fatalf("guest did not power off\nconsole:\n%s", g.ConsoleTail())
	}
}

type lockedWriter struct {
	mu sync.Mutex
	w  *strings.Builder
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
