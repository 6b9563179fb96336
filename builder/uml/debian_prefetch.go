package uml

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

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
	v := envValue(env, "host_download")
	return v != "false" && v != "no" && v != "0"
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

	env = r.hostScriptEnv(env, dir, target, "DEBOOTSTRAP_MAKE_TARBALL="+tarball)
	if err := runHost(ctx, env, dir, out, "/bin/sh", script); err != nil {
		return "", fmt.Errorf("debootstrap --make-tarball on the host: %w", err)
	}
	// Readable by the guest's UML, which may run as another user (Packer as root).
	if err := os.Chmod(dir, 0o755); err != nil {
		return "", err
	}
	return tarball, nil
}

// hostScriptEnv is a guest module environment made fit for the host: $TARGET is target, the proxy
// is the build's proxy on the host, HOME is the host's and TMPDIR is dir; extra is added.
func (r *moduleRunner) hostScriptEnv(env []string, dir, target string, extra ...string) []string {
	var hostEnv []string
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		switch strings.ToLower(k) {
		case "http_proxy", "https_proxy", "target", "home", "tmpdir":
			continue // the host's own, below
		}
		hostEnv = append(hostEnv, kv)
	}
	hostEnv = append(hostEnv, "TARGET="+target, "http_proxy="+r.hostProxy, "https_proxy="+r.hostProxy,
		"HOME="+os.Getenv("HOME"), "TMPDIR="+dir)
	return append(hostEnv, extra...)
}
