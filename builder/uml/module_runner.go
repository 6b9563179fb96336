package uml

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"time"

	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"

	"github.com/packer-uml/packer-plugin-uml/modules"
	"github.com/packer-uml/packer-plugin-uml/uml/agent"
)

// guestModulesDir is where built-in modules are written in the guest (a tmpfs, not the image).
const guestModulesDir = "/run/packer-uml/modules"

// imageDevice is the image in the guest: rootstrap attached it as ubd1.
const imageDevice = "/dev/ubdb"

// moduleRunner runs modules in the guest's build environment (not in the chroot), as rootstrap's
// builder did: one at a time, each with its environment, its output shown in the UI. It is shared
// by the builder's module steps and the communicator (for the `module` provisioner).
type moduleRunner struct {
	client *agent.Client
	ui     packersdk.Ui
	env    modules.Environment
	dirs   []string
	// fixed are the variables the build defines for every module ($TARGET, $HOST, $WORKDIR, ...).
	fixed map[string]string
	// workDir is the modules' working directory: Packer's, as rootstrap ran from its start directory.
	workDir string
	// debug opens a shell in the guest when a module fails (rootstrap's debug option).
	debug bool
	// copyHostModules runs host modules from a copy in the guest: UML run as an unprivileged
	// user (Packer as root) may not read root's module directories through hostfs.
	copyHostModules bool
	// imageSizeMiB is named when a module fails because the image is full.
	imageSizeMiB int
	// shell runs the debug shell (set by the builder: the user's terminal).
	shell debugShell
	// hostProxy is the build's proxy (and package cache) for clients on the host, hostWorkDir the
	// build's temporary directory: the debian module's host phase uses both (debian_prefetch.go).
	hostProxy, hostWorkDir string
	// hostBase, when the modules run mkfs, mount and debian in a row, lets the host make the
	// filesystem with debootstrap's first stage in it (debian_host_base.go).
	hostBase *hostBase
}

// debugShell runs an interactive shell in the guest with env and returns its exit status.
type debugShell func(ctx context.Context, env []string, dir string) (int, error)

// Debug shell exit statuses, as rootstrap's manual gives them.
const (
	debugRetry    = 1
	debugContinue = 2
)

// newModuleRunner derives the fixed variables from the boot's places.
func newModuleRunner(client *agent.Client, ui packersdk.Ui, c *Config, workDir string, proxy string) *moduleRunner {
	env := modules.Environment{Global: map[string]string{}, Modules: c.env.Modules}
	if proxy != "" {
		// The agent's proxy, unless the user gave a proxy of their own.
		for _, k := range []string{"http_proxy", "https_proxy"} {
			env.Global[k] = proxy
		}
	}
	for k, v := range c.env.Global {
		env.Global[k] = v
	}
	return &moduleRunner{
		client: client, ui: ui, env: env, dirs: c.moduleDirs, workDir: workDir, debug: c.Debug, imageSizeMiB: c.ImageSize,
		fixed: map[string]string{
			"TARGET":       agent.TargetDir,
			"HOST":         agent.HostDir,
			"WORKDIR":      workDir,
			"rsworkdir":    workDir, // what rootstrap's kernel command line called it
			"IMAGE_DEVICE": imageDevice,
		},
	}
}

// Run finds and runs one module; extra are a provisioner's variables for this run. Output goes to
// out and errOut when given, else to the UI prefixed with the module's name.
func (r *moduleRunner) Run(ctx context.Context, name, hostPath string, extra map[string]string, out, errOut io.Writer) error {
	var m modules.Module
	var err error
	if hostPath != "" {
		m = modules.Module{Name: name, Path: hostPath}
	} else if m, err = modules.Find(name, r.dirs); err != nil {
		return err
	}
	using := fmt.Sprintf("Using rootstrap module %s from:\n\t%s", name, m.Origin())
	if out != nil {
		fmt.Fprintln(out, using) // a provisioner's run: its output is where the user looks
	} else {
		r.ui.Say(using)
	}
	guestPath := path.Join(agent.HostDir, m.Path)
	script := m.Script
	if !m.BuiltIn() && r.copyHostModules {
		if script, err = os.ReadFile(m.Path); err != nil {
			return fmt.Errorf("module %s: %w", name, err)
		}
	}
	if script != nil {
		guestPath = path.Join(guestModulesDir, name)
		if err := r.client.Upload("", guestPath, 0o755, 0, bytes.NewReader(script)); err != nil {
			return fmt.Errorf("module %s: copy it into the guest: %w", name, err)
		}
	}
	fixed := map[string]string{"MODULE": guestPath}
	for k, v := range r.fixed {
		fixed[k] = v
	}
	env := r.env.For(name, extra, fixed)
	if name == "mkfs" && m.BuiltIn() && r.hostBase != nil && !r.hostBase.tried && extra == nil {
		if r.runHostBase(ctx, env, out) {
			return nil // the host made the filesystem (debian_host_base.go)
		}
	}
	if name == "debian" && m.BuiltIn() && r.hostBase != nil && r.hostBase.secondStage {
		r.hostBase.secondStage = false
		env = append(env, "DEBOOTSTRAP_SECOND_STAGE=1")
	} else if r.prefetchEnabled(m, env) {
		lines := &uiLines{ui: r.ui, prefix: name + " (host): "}
		w := io.Writer(lines)
		if out != nil {
			w = out
		}
		started := time.Now()
		tarball, err := r.prefetchDebian(ctx, m, env, w)
		lines.flush()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			r.ui.Error(fmt.Sprintf("module %s: the download on the host failed (%v); the guest downloads instead (set host_download = false in the debian block to skip this)", name, err))
		} else {
			r.ui.Say(fmt.Sprintf("module %s: packages resolved and downloaded on the host in %s", name, time.Since(started).Round(time.Second)))
			// The guest sees the host's files under $HOST (its own /tmp hides the host's).
			env = append(env, "DEBOOTSTRAP_TARBALL="+path.Join(agent.HostDir, tarball))
		}
	}
	for {
		code, stderrTail, err := r.exec(ctx, name, guestPath, env, out, errOut)
		if err != nil {
			return fmt.Errorf("module %s: %w", name, err)
		}
		if code == 0 {
			return nil
		}
		failure := fmt.Errorf("module %s failed with exit status %d%s", name, code, stderrTail)
		if !r.debug {
			return failure
		}
		again, err := r.debugAfterFailure(ctx, name, env, failure)
		if err != nil || !again {
			return err
		}
	}
}

// exec runs the module once; it returns its exit status and, for a failure, its last error lines.
func (r *moduleRunner) exec(ctx context.Context, name, guestPath string, env []string, out, errOut io.Writer) (int, string, error) {
	var ui *uiLines
	if out == nil || errOut == nil {
		ui = &uiLines{ui: r.ui, prefix: name + ": "}
		defer ui.flush()
	}
	if out == nil {
		out = ui
	}
	var stderr bytes.Buffer
	if errOut == nil {
		errOut = ui
	}
	full := &fullWatcher{}
	var stdout bytes.Buffer // some tools (debootstrap's E: lines) report failures on stdout
	errOut = io.MultiWriter(errOut, &tailBuffer{buf: &stderr, max: 8 << 10}, full)
	out = io.MultiWriter(out, &tailBuffer{buf: &stdout, max: 8 << 10}, full)
	req := agent.ExecRequest{Argv: []string{guestPath}, Env: env, Dir: r.workDir}
	code, err := r.client.Exec(ctx, req, nil, out, errOut)
	if err != nil {
		var remote *agent.RemoteError
		if errors.As(err, &remote) {
			// It did not start (no interpreter, say): that is the module's failure, not the guest's.
			return exitNotStarted, ": " + remote.Msg, nil
		}
		return 0, "", err
	}
	tail := strings.TrimSpace(lastLines(stderr.String(), 5))
	if tail == "" {
		tail = strings.TrimSpace(lastLines(stdout.String(), 5))
	}
	if tail != "" {
		tail = ":\n" + tail
	}
	if code != 0 && full.seen.Load() {
		tail += "\n" + fullImageHint(r.imageSizeMiB)
	}
	return code, tail, nil
}

// debugAfterFailure opens rootstrap's debug shell and reads its verdict: run the module again
// (true), go on (false, nil) or fail (the error).
func (r *moduleRunner) debugAfterFailure(ctx context.Context, name string, env []string, failure error) (bool, error) {
	r.ui.Error(failure.Error())
	r.ui.Say(fmt.Sprintf("debug: a shell in the guest with module %s's environment ($MODULE is the module: sh -x $MODULE runs it traced).\n"+
		"Leave it with 'exit 1' to run the module again, 'exit 2' to go on with the next module; any other status fails the build.", name))
	code, err := r.shell(ctx, env, r.workDir)
	if err != nil {
		return false, fmt.Errorf("%w; debug = true, but the debug shell could not run: %v", failure, err)
	}
	switch code {
	case debugRetry:
		r.ui.Say(fmt.Sprintf("debug: running module %s again", name))
		return true, nil
	case debugContinue:
		r.ui.Say(fmt.Sprintf("debug: going on after module %s", name))
		return false, nil
	}
	return false, fmt.Errorf("%w; the debug shell exited with status %d (1 runs the module again, 2 goes on)", failure, code)
}

// tailBuffer keeps about the last max bytes written to it.
type tailBuffer struct {
	buf *bytes.Buffer
	max int
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.buf.Write(p)
	if over := t.buf.Len() - t.max; over > 0 {
		t.buf.Next(over)
	}
	return len(p), nil
}
