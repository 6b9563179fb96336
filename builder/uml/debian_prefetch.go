package uml

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/packer-uml/packer-plugin-uml/modules"
)

// The debian module's host phase.
//
// Why: debootstrap's first part (fetching the indices, resolving the package set, downloading and
// checking every package) is shell work, thousands of short processes, and UML makes each process
// costly: in Debian 12's UML it took minutes before the first package was fetched. None of it needs
// root: debootstrap --make-tarball runs as any user. So the builder runs the very same module script
// on the host first, with DEBOOTSTRAP_MAKE_TARBALL set (the script then runs debootstrap
// --make-tarball with the arguments it would give debootstrap in the guest, through the build's
// proxy and package cache), and the guest's run gets DEBOOTSTRAP_TARBALL and unpacks that tarball
// (debootstrap --unpack-tarball): the same packages from the same mirror, installed by the same
// debootstrap in the guest.

// prefetchEnabled says whether the module gets a host phase: only the built-in debian module (a
// custom one may do anything), only with the build's proxy on the host, and unless the user turned
// it off.
func (r *moduleRunner) prefetchEnabled(m modules.Module, env []string) bool {
	if m.Name != "debian" || !m.BuiltIn() || r.hostProxy == "" || r.hostWorkDir == "" {
		return false
	}
	for _, kv := range env {
		if k, v, _ := strings.Cut(kv, "="); k == "host_download" {
			return v != "false" && v != "no" && v != "0"
		}
	}
	return true
}

// prefetchDebian runs the module's host phase and returns the tarball's path.
func (r *moduleRunner) prefetchDebian(ctx context.Context, m modules.Module, env []string, out io.Writer) (string, error) {
	dir, err := os.MkdirTemp(r.hostWorkDir, "debian-host-")
	if err != nil {
		return "", err
	}
	// The tarball stays until the work directory goes; debootstrap's scratch target goes now.
	script := filepath.Join(dir, "debian")
	if err := os.WriteFile(script, m.Script, 0o755); err != nil {
		return "", err
	}
	tarball := filepath.Join(dir, "debian.tgz")
	target := filepath.Join(dir, "target")
	defer os.RemoveAll(target)

	var hostEnv []string
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		switch strings.ToLower(k) {
		case "http_proxy", "https_proxy", "target", "home", "tmpdir":
			continue // the host's own, below
		}
		hostEnv = append(hostEnv, kv)
	}
	hostEnv = append(hostEnv, "TARGET="+target, "DEBOOTSTRAP_MAKE_TARBALL="+tarball,
		"http_proxy="+r.hostProxy, "https_proxy="+r.hostProxy, "HOME="+os.Getenv("HOME"), "TMPDIR="+dir)
	cmd := exec.CommandContext(ctx, "/bin/sh", script)
	cmd.Env, cmd.Dir = hostEnv, dir
	cmd.Stdout, cmd.Stderr = out, out
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("debootstrap --make-tarball on the host: %w", err)
	}
	// Readable by the guest's UML, which may run as another user (Packer as root).
	if err := os.Chmod(dir, 0o755); err != nil {
		return "", err
	}
	return tarball, nil
}
