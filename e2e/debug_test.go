package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// flakyModule fails until $WORKDIR/fixed exists: what a user fixes from rootstrap's debug shell.
const flakyModule = `#!/bin/sh
if [ -f "$WORKDIR/fixed" ]; then echo "flaky-ok"; exit 0; fi
echo "flaky: not fixed yet" >&2
exit 1
`

func debugTemplate(p *project) {
	p.write("modules/flaky", flakyModule)
	os.Chmod(p.path("modules/flaky"), 0o755)
	p.write("debug.pkr.hcl", `
source "uml" "debug" {
  image_size       = 64
  output_directory = "out"
  chroot           = false
  modules          = ["mkfs", "flaky"]
  post_modules     = []
  debug            = true
}
build {
  sources = ["source.uml.debug"]
}
`)
}

// tmuxBuild runs packer build in a detached tmux session, so that the plugin has a real terminal
// as its controlling terminal, as a user at a shell does. It returns a function that types a line
// into the terminal, one that returns the screen, and one that waits for packer's exit status.
func tmuxBuild(t *testing.T, p *project) (send func(string), screen func() string, wait func() (int, string)) {
	t.Helper()
	socket := fmt.Sprintf("e2e-%d-%d", os.Getpid(), time.Now().UnixNano())
	script := "#!/bin/sh\ncd " + p.dir + "\n"
	for _, kv := range p.env() {
		if k, v, ok := strings.Cut(kv, "="); ok && !strings.ContainsAny(k, "()%") && !strings.HasPrefix(k, "TMUX") {
			script += fmt.Sprintf("export %s='%s'\n", k, strings.ReplaceAll(v, "'", `'\''`))
		}
	}
	script += "packer build debug.pkr.hcl >build.out 2>&1\necho $? >build.exit\nsleep 600\n"
	p.write("run.sh", script)
	tmux := func(args ...string) string {
		out, err := exec.Command("tmux", append([]string{"-L", socket}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("tmux %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	tmux("new-session", "-d", "-x", "160", "-y", "48", "sh "+p.path("run.sh"))
	t.Cleanup(func() { exec.Command("tmux", "-L", socket, "kill-server").Run() })
	send = func(line string) { tmux("send-keys", "-t", "0", line, "Enter") }
	screen = func() string { return tmux("capture-pane", "-p", "-t", "0") }
	wait = func() (int, string) {
		deadline := time.Now().Add(5 * time.Minute)
		for time.Now().Before(deadline) {
			if b, err := os.ReadFile(p.path("build.exit")); err == nil {
				out, _ := os.ReadFile(p.path("build.out"))
				var code int
				fmt.Sscan(string(b), &code)
				return code, string(out)
			}
			time.Sleep(200 * time.Millisecond)
		}
		out, _ := os.ReadFile(p.path("build.out"))
		t.Fatalf("packer did not end\nscreen:\n%s\noutput:\n%s", screen(), out)
		return 0, ""
	}
	return send, screen, wait
}

// waitScreen waits until the terminal shows want.
func waitScreen(t *testing.T, p *project, screen func() string, want string) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for time.Now().Before(deadline) {
		if strings.Contains(screen(), want) {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	out, _ := os.ReadFile(p.path("build.out"))
	t.Fatalf("the terminal never showed %q\nscreen:\n%s\npacker output:\n%s", want, screen(), out)
}

// TestDebugShell: with debug = true a failing module opens a shell in the guest on the user's
// terminal with the module's environment; exit 1 runs the module again, exit 2 goes on, any other
// status fails the build.
func TestDebugShell(t *testing.T) {
	for _, tc := range []struct {
		name    string
		typed   string
		code    int
		outputs []string
	}{
		{"exit 1 retries", `echo "in-guest fstype=$fstype"; touch "$WORKDIR/fixed"; exit 1`, 0,
			[]string{"flaky: not fixed yet", "debug: running module flaky again", "flaky: flaky-ok"}},
		{"exit 2 goes on", "exit 2", 0, []string{"debug: going on after module flaky", "modules done"}},
		{"exit 3 fails", "exit 3", 1, []string{"the debug shell exited with status 3"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newProject(t)
			debugTemplate(p)
			send, screen, wait := tmuxBuild(t, p)
			waitScreen(t, p, screen, "(module debug) #")
			send(tc.typed)
			code, out := wait()
			if code != tc.code {
				t.Errorf("packer exited %d, want %d\nscreen:\n%s\noutput:\n%s", code, tc.code, screen(), out)
			}
			for _, want := range tc.outputs {
				if !strings.Contains(out, want) {
					t.Errorf("output lacks %q:\n%s", want, out)
				}
			}
			if tc.code == 0 && !strings.Contains(screen()+out, "in-guest fstype=ext4") && tc.name == "exit 1 retries" {
				t.Errorf("the shell did not have the module's environment\nscreen:\n%s", screen())
			}
		})
	}
}

// TestDebugWithoutTerminal: debug = true with no terminal (CI, setsid) says so and fails.
func TestDebugWithoutTerminal(t *testing.T) {
	p := newProject(t)
	debugTemplate(p)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "packer", "build", "debug.pkr.hcl")
	cmd.Dir = p.dir
	cmd.Env = p.env()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true} // no controlling terminal
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("packer build succeeded with a failing module:\n%s", out)
	}
	if !strings.Contains(string(out), "no terminal") || !strings.Contains(string(out), "module flaky failed with exit status 1") {
		t.Errorf("the failure does not say there is no terminal:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(p.dir, "out", "debug.img")); !os.IsNotExist(err) {
		t.Errorf("a failed build left its image: %v", err)
	}
}
