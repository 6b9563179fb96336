package usernet_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/packer-uml/packer-plugin-uml/uml/usernet"
)

// childEnv makes the test binary a stand-in for the plugin: it starts a helper, prints its pid and
// waits to be killed.
const childEnv = "USERNET_TEST_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		helper, err := usernet.FindHelper()
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		n, err := usernet.Start(context.Background(), helper, os.Stderr)
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		fmt.Println(n.Pid())
		select {}
	}
	os.Exit(m.Run())
}

func helper(t *testing.T) string {
	t.Helper()
	p, err := usernet.FindHelper()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// helperRunning reports whether pid is a live (not zombie) libslirp-helper.
func helperRunning(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(stat)
	if i := strings.LastIndexByte(s, ')'); i < 0 || strings.HasPrefix(s[i+1:], " Z") {
		return false
	}
	cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return strings.Contains(string(cmdline), usernet.HelperName)
}

// waitGone waits up to timeout for pid to stop running.
func waitGone(pid int, timeout time.Duration) bool {
	for end := time.Now().Add(timeout); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if !helperRunning(pid) {
			return true
		}
	}
	return false
}

// childHelpers lists the helpers that are children of this process.
func childHelpers(t *testing.T) []int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		s := string(stat)
		i := strings.LastIndexByte(s, ')')
		f := strings.Fields(s[i+1:])
		if len(f) > 1 && f[1] == strconv.Itoa(os.Getpid()) && strings.Contains(s[:i], "libslirp") {
			pids = append(pids, pid)
		}
	}
	return pids
}

func TestFindHelper(t *testing.T) {
	if p := helper(t); !strings.HasSuffix(p, "/"+usernet.HelperName) {
		t.Errorf("FindHelper = %q", p)
	}
	t.Setenv("PATH", t.TempDir())
	_, err := usernet.FindHelper()
	if err == nil || !strings.Contains(err.Error(), "apt-get install libslirp-helper") {
		t.Errorf("without the helper on PATH: err %v, want one saying how to install it", err)
	}
}

func TestUMLArg(t *testing.T) {
	n, err := usernet.Start(context.Background(), helper(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if got, want := n.UMLArg(5), "vec0:transport=fd,fd=5,vec=0"; got != want {
		t.Errorf("UMLArg(5) = %q, want %q", got, want)
	}
	if n.UMLFile() == nil || n.UMLFile().Fd() < 3 {
		t.Errorf("UMLFile = %v", n.UMLFile())
	}
}

func TestCloseLeavesNoHelper(t *testing.T) {
	n, err := usernet.Start(context.Background(), helper(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	pid := n.Pid()
	time.Sleep(100 * time.Millisecond)
	if !helperRunning(pid) {
		t.Fatalf("helper %d is not running after Start: %v", pid, n.Err())
	}
	umlFD := n.UMLFile().Fd()
	if err := n.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	// Reaped, not just killed: no process, not even a zombie.
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
		t.Errorf("helper %d still exists after Close", pid)
	}
	if left := childHelpers(t); len(left) > 0 {
		t.Errorf("helpers left behind: %v", left)
	}
	select {
	case <-n.Done():
	default:
		t.Error("Done not closed after Close")
	}
	if _, err := os.Stat(fmt.Sprintf("/proc/self/fd/%d", umlFD)); err == nil {
		// The number may have been reused by another test's descriptor, but not in this one.
		t.Errorf("UML's end (fd %d) still open after Close", umlFD)
	}
	if err := n.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestContextEndsHelper(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	n, err := usernet.Start(ctx, helper(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	cancel()
	select {
	case <-n.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("helper still running after its context ended")
	}
}

// TestClosingUMLEndKeepsHelper documents what closing the socketpair does: nothing to the helper.
// An AF_UNIX datagram socket gets no EOF or hang-up when its peer closes, so the helper keeps
// waiting; only Close, the context or the death of this process end it.
func TestClosingUMLEndKeepsHelper(t *testing.T) {
	n, err := usernet.Start(context.Background(), helper(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	n.UMLFile().Close()
	time.Sleep(time.Second)
	if !helperRunning(n.Pid()) {
		t.Errorf("the helper ended when UML's end closed (%v): it notices now; update Start's documentation", n.Err())
	}
}

// TestPluginDeathEndsHelper kills a stand-in for the plugin with SIGKILL: --exit-with-parent
// (PR_SET_PDEATHSIG) must end its helper.
func TestPluginDeathEndsHelper(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=1")
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	line, err := bufio.NewReader(out).ReadString('\n')
	pid, perr := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || perr != nil {
		t.Fatalf("child said %q (%v)", line, err)
	}
	time.Sleep(200 * time.Millisecond) // let the helper reach its prctl
	if !helperRunning(pid) {
		t.Fatalf("helper %d not running", pid)
	}
	cmd.Process.Kill()
	cmd.Wait()
	if !waitGone(pid, 5*time.Second) {
		t.Errorf("helper %d still running 5 s after its parent was killed", pid)
		exec.Command("kill", "-9", strconv.Itoa(pid)).Run()
	}
}
