package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestTerminateLeavesNothing: SIGTERM to packer ends the build like Ctrl-C: UML killed, no image.
func TestTerminateLeavesNothing(t *testing.T) {
	p := newProject(t)
	cmd, out, image := startSlowBuild(t, p)
	cmd.Process.Signal(syscall.SIGTERM)
	waitFailed(t, cmd, out, "SIGTERM")
	waitNoUML(t, image)
	if _, err := os.Stat(image); !os.IsNotExist(err) {
		t.Errorf("image left behind after SIGTERM (err %v)", err)
	}
}

// TestHungGuestIsDetected: a guest that stops answering (UML stopped with SIGSTOP, as a wedged
// kernel would be) is noticed by the channel's keepalive: the build fails with the console tail and
// UML is killed.
func TestHungGuestIsDetected(t *testing.T) {
	p := newProject(t)
	cmd, out, image := startSlowBuild(t, p)
	// Stop UML's processes only: a hung kernel does not stop the watchdog beside it.
	for _, pid := range umlKernelPids(image) {
		syscall.Kill(pid, syscall.SIGSTOP)
	}
	stopped := time.Now()
	// The keepalive's limit (uml/channel) plus cleanup.
	waitFailedWithin(t, cmd, out, "UML was stopped", 3*time.Minute)
	t.Logf("the build failed %s after the guest stopped", time.Since(stopped).Round(time.Second))
	for _, want := range []string{"the guest stopped answering", "console.log"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("%q not in the output:\n%s", want, out.String())
		}
	}
	waitNoUML(t, image)
}

// TestFullImageNamesImageSize: a provisioner that fills the image fails with an error that names
// image_size; so does a module.
func TestFullImageNamesImageSize(t *testing.T) {
	p := newProject(t)
	p.write("modules/fill", "#!/bin/sh\nset -e\ndd if=/dev/zero of=\"$TARGET/big\" bs=1M count=64\n")
	chmodX(t, p.path("modules/fill"))
	for _, tc := range []struct{ name, modules, provisioner string }{
		{"provisioner", `["mkfs", "mount"]
  chroot = false`, `provisioner "shell" { inline = ["dd if=/dev/zero of=$TARGET/big bs=1M count=64"] }`},
		{"module", `["mkfs", "mount", "fill"]`, ``},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p.write("full.pkr.hcl", fmt.Sprintf(`
source "uml" "full" {
  image_size       = 16
  output_directory = "out-%s"
  modules          = %s
}
build {
  sources = ["source.uml.full"]
  %s
}
`, tc.name, tc.modules, tc.provisioner))
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			out, err := p.packer(ctx, "build", "full.pkr.hcl")
			if err == nil {
				t.Fatalf("filling the image did not fail the build:\n%s", out)
			}
			if !strings.Contains(out, "raise image_size (now 16 MiB)") {
				t.Errorf("the error does not name image_size:\n%s", out)
			}
		})
	}
}

// TestConcurrentBuildsShareCache: three builds at once in one directory tree, with one package
// cache, each fetching the same package through the agent's proxy: all succeed, the images are
// whole, the cache holds the package whole and no temporary file.
func TestConcurrentBuildsShareCache(t *testing.T) {
	payload := make([]byte, 2<<20)
	rand.Read(payload)
	sum := sha256.Sum256(payload)
	want := hex.EncodeToString(sum[:])
	var requests atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		w.Header().Set("Content-Length", strconv.Itoa(len(payload)))
		w.Write(payload)
	}))
	defer srv.Close()
	url := srv.URL + "/debian/pool/main/h/hello/hello_2.10-3_amd64.deb"

	p := newProject(t)
	p.write("modules/fetch", fetchModule)
	chmodX(t, p.path("modules/fetch"))
	p.write("concurrent.pkr.hcl", fmt.Sprintf(`
variable "out" {
  type = string
}
source "uml" "concurrent" {
  image_size       = 64
  output_directory = var.out
  cache_dir        = "cache"
  chroot           = false
  modules          = ["network", "mkfs", "mount", "fetch"]
  module_env {
    name = "fetch"
    env  = { url = %q }
  }
}
build {
  sources = ["source.uml.concurrent"]
}
`, url))
	var wg sync.WaitGroup
	errs := make([]error, 3)
	outs := make([]string, 3)
	for i := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			outs[i], errs[i] = p.packer(ctx, "build", "-var", fmt.Sprintf("out=out%d", i), "concurrent.pkr.hcl")
		}()
	}
	wg.Wait()
	for i := range 3 {
		if errs[i] != nil {
			t.Errorf("build %d: %v\n%s", i, errs[i], outs[i])
			continue
		}
		if !strings.Contains(outs[i], "FETCHED "+want) {
			t.Errorf("build %d fetched something else:\n%s", i, outs[i])
		}
		run(t, "/sbin/e2fsck", "-fn", p.path(fmt.Sprintf("out%d/concurrent.img", i)))
	}
	cached, err := os.ReadFile(filepath.Join(p.path("cache"), "http", strings.TrimPrefix(srv.URL, "http://"), "debian/pool/main/h/hello/hello_2.10-3_amd64.deb"))
	if err != nil || !bytes.Equal(cached, payload) {
		t.Errorf("the cache does not hold the package whole: %v", err)
	}
	filepath.WalkDir(p.path("cache"), func(path string, d fs.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(path, ".tmp") {
			t.Errorf("temporary file left in the cache: %s", path)
		}
		return nil
	})
	t.Logf("the mirror saw %d requests for 3 concurrent builds", requests.Load())

	// A fourth build with the warm cache sends no request for the cached package to the mirror.
	before := requests.Load()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	out, err := p.packer(ctx, "build", "-var", "out=out-warm", "concurrent.pkr.hcl")
	if err != nil {
		t.Fatalf("warm build: %v\n%s", err, out)
	}
	if n := requests.Load() - before; n != 0 {
		t.Errorf("the warm build sent %d requests for a cached package to the mirror", n)
	}
	if !strings.Contains(out, "FETCHED "+want) || !strings.Contains(out, "Package cache: 1 hits") {
		t.Errorf("the warm build did not get the package from the cache:\n%s", out)
	}
}

// umlKernelPids are the processes of the UML kernel running image (not its watchdog, whose command
// line carries the same arguments).
func umlKernelPids(image string) []int {
	var pids []int
	for _, proc := range umlProcessesFor(image) {
		pid, _ := strconv.Atoi(strings.SplitN(proc, ":", 2)[0])
		b, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cmdline"))
		if argv0 := strings.SplitN(string(b), "\x00", 2)[0]; strings.HasSuffix(argv0, "linux.uml") || strings.HasSuffix(argv0, "/linux") {
			pids = append(pids, pid)
		}
	}
	return pids
}

// TestBootFaults: a boot that never reaches the agent fails at boot_timeout, or as soon as UML
// exits, with the reason and the console's last lines; no UML is left.
func TestBootFaults(t *testing.T) {
	for _, tc := range []struct {
		name, settings, want string
	}{
		{"init never starts the agent", `uml_args = ["init=/bin/sleep", "3600"]
  boot_timeout = "20s"`, "guest agent not ready after boot_timeout (20s)"},
		{"init exits", `uml_args = ["init=/bin/true"]`, "UML exited before the guest agent was ready"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newProject(t)
			p.write("boot.pkr.hcl", fmt.Sprintf(`
source "uml" "boot" {
  image_size       = 64
  output_directory = "out"
  modules          = ["mkfs"]
  post_modules     = []
  %s
}
build {
  sources = ["source.uml.boot"]
}
`, tc.settings))
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			out, err := p.packer(ctx, "build", "boot.pkr.hcl")
			if err == nil {
				t.Fatalf("the build succeeded:\n%s", out)
			}
			for _, want := range []string{tc.want, "last lines of the guest console"} {
				if !strings.Contains(out, want) {
					t.Errorf("%q not in the output:\n%s", want, out)
				}
			}
			waitNoUML(t, p.path("out/boot.img"))
		})
	}
}

// TestKernelPanicFailsClearly: the guest kernel panics in the middle of a provisioner (sysrq c):
// the build fails at once saying the guest died, with the console's last lines.
func TestKernelPanicFailsClearly(t *testing.T) {
	p := newProject(t)
	p.write("panic.pkr.hcl", `
source "uml" "panic" {
  image_size       = 64
  output_directory = "out"
  chroot           = false
  modules          = ["mkfs", "mount"]
}
build {
  sources = ["source.uml.panic"]
  provisioner "shell" {
    inline = ["echo c > /proc/sysrq-trigger", "sleep 600"]
  }
}
`)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	start := time.Now()
	out, err := p.packer(ctx, "build", "panic.pkr.hcl")
	if err == nil {
		t.Fatalf("the build succeeded:\n%s", out)
	}
	t.Logf("failed %s after the start", time.Since(start).Round(time.Second))
	for _, want := range []string{"the guest died", "last lines of the guest console", "Kernel panic"} {
		if !strings.Contains(out, want) {
			t.Errorf("%q not in the output:\n%s", want, out)
		}
	}
	waitNoUML(t, p.path("out/panic.img"))
	if _, err := os.Stat(p.path("out/panic.img")); !os.IsNotExist(err) {
		t.Errorf("image left behind (err %v)", err)
	}
}
