package bench

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/packer-uml/packer-plugin-uml/internal/umltest"
)

// minbaseTemplate builds what `debootstrap --variant=minbase bookworm` builds, with the default
// modules, into a 2,048 MiB ext4 image: the build e2e's TestMinbaseMatchesDebootstrap checks.
var minbaseTemplate = `
variable "out" {
  type = string
}
variable "cache" {
  type = string
}
variable "kernel" {
  type = string
}
` + umltest.MinbaseSource("var.kernel", "var.out", "var.cache") + `
build {
  sources = ["source.uml.minbase"]
}
`

// BenchmarkMinbase is the speed issue's comparison (`make bench-compare`): the same minbase bookworm
// image from the same mirror, built
//   - by this plugin through `packer build` with a warm package cache, once per UML kernel: Debian's
//     packaged one (linux.uml on PATH) and the modern one scripts/build-uml-kernel installs, when it
//     is there;
//   - as root, the way a user with root would: `debootstrap --variant=minbase` into a directory
//     (with a warm --cache-dir) then `mke2fs -t ext4 -d` into a 2,048 MiB image, and `mmdebstrap
//     --variant=minbase` into a directory then the same mke2fs.
//
// One untimed build of each fills the caches first. It prints a table of wall time, CPU time (user and
// system of every process the command waited for, UML's included) and the image's allocated size,
// with the ratio of ours to each anchor, then the time of each build step of ours. The anchors need
// root: run as root (UML then runs as nobody, see docs/reliability.md), with debootstrap and
// mmdebstrap installed.
func BenchmarkMinbase(b *testing.B) {
	if f := flag.Lookup("test.bench"); f == nil || !strings.Contains(f.Value.String(), "Minbase") {
		b.Skip("takes 10-30 minutes: runs only when named, as in make bench-compare")
	}
	if os.Geteuid() != 0 {
		b.Fatal("the anchors (debootstrap, mmdebstrap) need root: run as root")
	}
	for _, tool := range []string{"packer", "debootstrap", "mmdebstrap", "mke2fs"} {
		if _, err := exec.LookPath(tool); err != nil {
			b.Fatalf("%s is not on PATH: apt-get install debootstrap mmdebstrap e2fsprogs, scripts/install-packer", tool)
		}
	}
	mirror := umltest.HostMirror(b)
	if mirror == "" {
		b.Fatal("no Debian mirror in the host's apt sources")
	}
	kernels := []struct{ name, path string }{{"Debian 12 UML", "/usr/bin/linux.uml"}}
	if p := os.Getenv("PACKER_UML_MODERN_KERNEL"); p != "" {
		kernels = append(kernels, struct{ name, path string }{"modern UML", p})
	} else if home, err := os.UserHomeDir(); err == nil {
		// Where scripts/build-uml-kernel installs it (uml/kernel's InstalledPath).
		p := filepath.Join(home, ".local/share/packer-plugin-uml/kernel/linux")
		if x := os.Getenv("XDG_DATA_HOME"); filepath.IsAbs(x) {
			p = filepath.Join(x, "packer-plugin-uml/kernel/linux")
		}
		if _, err := os.Stat(p); err == nil {
			kernels = append(kernels, struct{ name, path string }{"modern UML", p})
		}
	}
	if len(kernels) == 1 {
		b.Log("no modern kernel installed (scripts/build-uml-kernel): measuring Debian's only")
	}

	dir, plugins, cache, dcache := b.TempDir(), b.TempDir(), b.TempDir(), b.TempDir()
	env := append(os.Environ(), "PACKER_PLUGIN_PATH="+plugins, "CHECKPOINT_DISABLE=1",
		"PACKER_LOG=1", "PACKER_LOG_PATH="+filepath.Join(dir, "packer.log"))
	if out, err := run(dir, env, "packer", "plugins", "install", "--path", umltest.Binary(b), "github.com/packer-uml/uml"); err != nil {
		b.Fatalf("packer plugins install: %v\n%s", err, out)
	}
	if err := os.WriteFile(filepath.Join(dir, "minbase.pkr.hcl"), []byte(minbaseTemplate), 0o644); err != nil {
		b.Fatal(err)
	}

	type job struct {
		name   string
		kernel string // ours: the kernel, whose processes are sampled
		do     func(out string) (image string, log string, err error)
	}
	var jobs []job
	for _, k := range kernels {
		k := k
		jobs = append(jobs, job{"ours, " + k.name, k.path, func(out string) (string, string, error) {
			log, err := run(dir, env, "packer", "build", "-color=false", "-timestamp-ui",
				"-var", "mirror="+mirror, "-var", "out="+out, "-var", "cache="+cache, "-var", "kernel="+k.path, "minbase.pkr.hcl")
			imgs, _ := filepath.Glob(filepath.Join(out, "*.img"))
			if err == nil && len(imgs) != 1 {
				err = fmt.Errorf("want one image in %s, found %v", out, imgs)
			}
			if len(imgs) == 0 {
				return "", log, err
			}
			return imgs[0], log, err
		}})
	}
	anchor := func(name string, argv ...string) job {
		return job{name, "", func(out string) (string, string, error) {
			root := out + ".root"
			defer os.RemoveAll(root)
			log, err := run(dir, nil, argv[0], append(append([]string{}, argv[1:]...), "bookworm", root, mirror)...)
			if err != nil {
				return "", log, err
			}
			if err := os.MkdirAll(out, 0o755); err != nil {
				return "", log, err
			}
			img := filepath.Join(out, "image.img")
			more, err := run(dir, nil, "mke2fs", "-q", "-t", "ext4", "-d", root, img, "2048M")
			return img, log + more, err
		}}
	}
	jobs = append(jobs,
		anchor("root: debootstrap + mke2fs -d", "debootstrap", "--variant=minbase", "--cache-dir="+dcache),
		anchor("root: mmdebstrap + mke2fs -d", "mmdebstrap", "--variant=minbase", "--mode=root"))

	type result struct {
		wall, cpu time.Duration
		size      int64
		steps     []step
		samples   []timedCounters
	}
	results := make([][]result, len(jobs))
	measure := func(i int, out string) result {
		var sampler *umlSampler
		if jobs[i].kernel != "" {
			sampler = startUMLSampler(jobs[i].kernel, 500*time.Millisecond)
		}
		before := childrenCPU()
		t0 := time.Now()
		img, log, err := jobs[i].do(out)
		wall := time.Since(t0)
		cpu := childrenCPU() - before
		var samples []timedCounters
		if sampler != nil {
			samples = sampler.Stop()
		}
		if err != nil {
			b.Fatalf("%s: %v\n%s\n%s", jobs[i].name, err, tail(log, 60), fileTail(filepath.Join(dir, "packer.log"), 40))
		}
		var st syscall.Stat_t
		if err := syscall.Stat(img, &st); err != nil {
			b.Fatal(err)
		}
		return result{wall: wall, cpu: cpu, size: st.Blocks * 512, steps: parseSteps(log), samples: samples}
	}
	// Warm the caches: ours' package cache, debootstrap's --cache-dir (mmdebstrap has none to keep).
	for i, j := range jobs {
		if strings.HasPrefix(j.name, "ours") && i > 0 {
			continue // one build fills the cache for every kernel
		}
		r := measure(i, filepath.Join(dir, fmt.Sprintf("warmup-%d", i)))
		b.Logf("warm-up %s: %s", j.name, r.wall.Round(time.Second))
		os.RemoveAll(filepath.Join(dir, fmt.Sprintf("warmup-%d", i)))
	}
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		for i, j := range jobs {
			out := filepath.Join(dir, fmt.Sprintf("run-%d-%d", n, i))
			r := measure(i, out)
			results[i] = append(results[i], r)
			b.Logf("%s: %s wall, %s CPU, %.0f MiB", j.name, r.wall.Round(time.Second), r.cpu.Round(time.Second), float64(r.size)/(1<<20))
			os.RemoveAll(out)
		}
	}
	b.StopTimer()

	mid := make([]result, len(jobs))
	for i, rs := range results {
		sort.Slice(rs, func(a, c int) bool { return rs[a].wall < rs[c].wall })
		mid[i] = rs[len(rs)/2]
	}
	anchors := []int{len(jobs) - 2, len(jobs) - 1}
	fmt.Printf("\nMinbase bookworm, warm caches, median of %d run(s) each:\n\n", b.N)
	fmt.Println("| build | wall | CPU (user+sys) | image (allocated) | wall vs debootstrap | wall vs mmdebstrap |")
	fmt.Println("|---|---|---|---|---|---|")
	for i, j := range jobs {
		r := mid[i]
		fmt.Printf("| %s | %s | %s | %.0f MiB | %.2f× | %.2f× |\n", j.name, r.wall.Round(100*time.Millisecond), r.cpu.Round(100*time.Millisecond),
			float64(r.size)/(1<<20), r.wall.Seconds()/mid[anchors[0]].wall.Seconds(), r.wall.Seconds()/mid[anchors[1]].wall.Seconds())
	}
	for i, k := range kernels {
		fmt.Printf("\nWhere the time of ours goes, %s (steps from packer's -timestamp-ui, whole seconds; UML's host processes sampled every 0.5 s from /proc):\n\n", k.name)
		for _, row := range phaseRows(mid[i].steps, mid[i].samples) {
			fmt.Println(row)
		}
	}
	fmt.Println()
	for i, k := range kernels {
		b.ReportMetric(mid[i].wall.Seconds()/mid[anchors[0]].wall.Seconds(), "ratio-"+strings.Fields(k.name)[0])
	}
	b.ReportMetric(0, "ns/op")
}

// run runs a command in dir (env nil: the benchmark's own) and returns its combined output.
func run(dir string, env []string, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir, cmd.Env = dir, env
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// childrenCPU is the user and system time of every child this process has waited for, and of
// theirs (getrusage RUSAGE_CHILDREN).
func childrenCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_CHILDREN, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
