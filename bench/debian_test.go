package bench

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/packer-uml/packer-plugin-uml/internal/umltest"
)

// debianTemplate is e2e/debian_test.go's build: Debian bookworm minbase from the host's mirror by
// the default modules (network through the agent's proxy, mkfs, mount, debian, uml), with the
// package cache in a directory of the benchmark's choosing.
const debianTemplate = `
variable "mirror" {
  type    = string
  default = ""
}
variable "out" {
  type = string
}
variable "cache" {
  type = string
}
source "uml" "debian" {
  image_size       = 2048
  memory           = 512
  output_directory = var.out
  cache_dir        = var.cache
  free_space       = 64
  debian {
    dist    = "bookworm"
    variant = "minbase"
    mirror  = var.mirror
    include = ["less"]
    install = ["hello"]
  }
  uml {
    kernel_modules = "none"
  }
}
build {
  sources = ["source.uml.debian"]
  provisioner "shell" {
    inline = ["/usr/bin/hello"]
  }
}
`

// BenchmarkDebianBuild runs the whole Debian build with `packer build` twice per iteration: with an
// empty package cache (cold: every package from the mirror), then with the cache the first build
// filled (warm), each into its own output directory. It takes 20-30 minutes, so it runs only when
// its name is in -bench (`make bench-debian`, or
// `go test -run '^$' -bench DebianBuild -benchtime 1x -timeout 90m ./bench/`). It needs packer on
// PATH, debootstrap and HTTP access to the mirror of the host's apt sources.
//
// Metrics: cold_s and warm_s, the medians of the wall times. At the end it prints the cache's
// counts of each build (the plugin's "Package cache: ..." line) and, from packer's -timestamp-ui
// (one-second resolution), the time of each module and provisioner.
func BenchmarkDebianBuild(b *testing.B) {
	if f := flag.Lookup("test.bench"); f == nil || !strings.Contains(f.Value.String(), "DebianBuild") {
		b.Skip("takes 20-30 minutes: runs only when named, as in make bench-debian")
	}
	// go test's default -timeout, 10m, would end the first build with a panic.
	if f := flag.Lookup("test.timeout"); f != nil {
		if d, err := time.ParseDuration(f.Value.String()); err == nil && d > 0 && d < time.Duration(b.N)*45*time.Minute {
			b.Fatalf("-timeout %s is too short for %d cold and warm build(s): give -timeout %s (make bench-debian does)", d, b.N, time.Duration(b.N)*90*time.Minute)
		}
	}
	if _, err := exec.LookPath("packer"); err != nil {
		b.Fatal("packer is not on PATH: run scripts/install-deps")
	}
	dir, plugins := b.TempDir(), b.TempDir()
	env := append(os.Environ(),
		"PACKER_PLUGIN_PATH="+plugins,
		"CHECKPOINT_DISABLE=1",
		"PACKER_LOG=1",
		"PACKER_LOG_PATH="+filepath.Join(dir, "packer.log"),
	)
	packer := func(ctx context.Context, args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, "packer", args...)
		cmd.Dir, cmd.Env = dir, env
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := packer(context.Background(), "plugins", "install", "--path", umltest.Binary(b), "github.com/packer-uml/uml"); err != nil {
		b.Fatalf("packer plugins install: %v\n%s", err, out)
	}
	if err := os.WriteFile(filepath.Join(dir, "debian.pkr.hcl"), []byte(debianTemplate), 0o644); err != nil {
		b.Fatal(err)
	}
	var vars []string
	if m := umltest.HostMirror(b); m != "" {
		vars = append(vars, "-var", "mirror="+m)
	}

	var runs [2][]debianRun // cold, warm
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		cache := b.TempDir() // empty: the first build of the pair is cold
		for phase := range runs {
			name := []string{"cold", "warm"}[phase]
			args := append([]string{"build", "-color=false", "-timestamp-ui"}, vars...)
			args = append(args, "-var", fmt.Sprintf("out=%s-%d", name, i), "-var", "cache="+cache, "debian.pkr.hcl")
			ctx, cancel := context.WithTimeout(context.Background(), 45*time.Minute)
			t0 := time.Now()
			out, err := packer(ctx, args...)
			took := time.Since(t0)
			cancel()
			if err != nil {
				b.Fatalf("%s build: %v\n%s\n%s", name, err, out, fileTail(filepath.Join(dir, "packer.log"), 60))
			}
			stats, err := parseCacheStats(out)
			if err != nil {
				b.Fatalf("%s build: %v\n%s", name, err, out)
			}
			runs[phase] = append(runs[phase], debianRun{wall: took, cache: stats, steps: parseSteps(out)})
			b.Logf("%s build %d: %s; %s", name, i, took.Round(time.Second), stats)
		}
	}
	b.StopTimer()

	fmt.Printf("\nDebian bookworm minbase build, %d run(s) of each (median wall time; the cache counts and module times are the median run's):\n\n", b.N)
	fmt.Println("| phase | wall time | cache hits | misses | MiB from the network |")
	fmt.Println("|---|---|---|---|---|")
	var mid [2]debianRun
	for phase, rs := range runs {
		mid[phase] = medianRun(rs)
		r := mid[phase]
		fmt.Printf("| %s cache | %s | %d (%.1f MiB) | %d | %.1f |\n", []string{"cold", "warm"}[phase],
			r.wall.Round(time.Second), r.cache.Hits, r.cache.HitMiB, r.cache.Misses, r.cache.NetworkMiB)
	}
	fmt.Printf("\nTime per step, from packer's -timestamp-ui (whole seconds):\n\n")
	fmt.Println("| step | cold | warm |")
	fmt.Println("|---|---|---|")
	for _, row := range stepRows(mid[0].steps, mid[1].steps) {
		fmt.Println(row)
	}
	fmt.Println()
	b.ReportMetric(median(walls(runs[0])).Seconds(), "cold_s")
	b.ReportMetric(median(walls(runs[1])).Seconds(), "warm_s")
	b.ReportMetric(0, "ns/op")
}

type debianRun struct {
	wall  time.Duration
	cache cacheStats
	steps []step
}

func walls(rs []debianRun) []time.Duration {
	var d []time.Duration
	for _, r := range rs {
		d = append(d, r.wall)
	}
	return d
}

// medianRun is the run with the median wall time.
func medianRun(rs []debianRun) debianRun {
	s := append([]debianRun(nil), rs...)
	sort.Slice(s, func(i, j int) bool { return s[i].wall < s[j].wall })
	return s[len(s)/2]
}

// cacheStats is the plugin's summary of the package cache, said when the proxy stops.
type cacheStats struct {
	Hits, Misses       int
	HitMiB, NetworkMiB float64
}

func (c cacheStats) String() string {
	return fmt.Sprintf("package cache: %d hits (%.1f MiB), %d misses, %.1f MiB from the network", c.Hits, c.HitMiB, c.Misses, c.NetworkMiB)
}

var cacheLine = regexp.MustCompile(`Package cache: (\d+) hits \(([0-9.]+) MiB\), (\d+) misses; ([0-9.]+) MiB from the network`)

// parseCacheStats reads the last "Package cache: N hits (X MiB), M misses; Y MiB from the network"
// line of a build's output.
func parseCacheStats(out string) (cacheStats, error) {
	all := cacheLine.FindAllStringSubmatch(out, -1)
	if len(all) == 0 {
		return cacheStats{}, fmt.Errorf("no %q line in the build's output", "Package cache: N hits (X MiB), M misses; Y MiB from the network")
	}
	m := all[len(all)-1]
	var c cacheStats
	var errs [4]error
	c.Hits, errs[0] = strconv.Atoi(m[1])
	c.HitMiB, errs[1] = strconv.ParseFloat(m[2], 64)
	c.Misses, errs[2] = strconv.Atoi(m[3])
	c.NetworkMiB, errs[3] = strconv.ParseFloat(m[4], 64)
	for _, err := range errs {
		if err != nil {
			return cacheStats{}, fmt.Errorf("package cache line %q: %v", m[0], err)
		}
	}
	return c, nil
}

// step is one stretch of a build, from one of the marks parseSteps knows to the next.
type step struct {
	name  string // "module debian", "provisioner shell", or "other"
	took  time.Duration
	start time.Time // whole seconds, as packer prints them
}

// uiLine is a line of `packer build -timestamp-ui`: the RFC 3339 time (whole seconds), then what
// packer would print without it. Only the first line of a multi-line message has the time.
var uiLine = regexp.MustCompile(`^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:Z|[+-]\d\d:\d\d)): (.*)$`)

// target is packer's prefix of a build's line ("==> uml.debian: "; without a terminal, ui.Message
// lines have the arrow too).
var target = regexp.MustCompile(`^(?:==>|-->| {3}) [^:]+: (.*)$`)

var ansiEscape = regexp.MustCompile("\x1b\\[[0-9;]*m")

// otherSteps are the beginnings of the builder's lines that start a step which is neither a module
// nor a provisioner. Modules' output never matches (it is prefixed with the module's name, "debian:
// I: ..."; so is the network's progress, "network: 12.0 MiB downloaded ...").
var otherSteps = []string{"Checking the host for User-Mode Linux", "Creating a sparse", "Booting UML",
	"modules done:", "post_modules done:", "Shutting down the guest", "Resizing the filesystem"}

// parseSteps splits a build's output into steps by its timestamped lines: a module runs from its
// "Using rootstrap module X from:" line, a provisioner from packer's "Provisioning with X" line, each
// until the next such line or one of otherSteps; what lies before the first module and after the
// modules (preflight, boot, shutdown, resize, post-processors) counts as "other". The last step
// ends at the last timestamped line.
func parseSteps(out string) []step {
	type mark struct {
		name string
		at   time.Time
	}
	var marks []mark
	var last time.Time
	for _, line := range strings.Split(ansiEscape.ReplaceAllString(out, ""), "\n") {
		m := uiLine.FindStringSubmatch(strings.TrimRight(line, "\r"))
		if m == nil {
			continue
		}
		at, err := time.Parse(time.RFC3339, m[1])
		if err != nil {
			continue
		}
		last = at
		text := m[2]
		if t := target.FindStringSubmatch(text); t != nil {
			text = t[1]
		}
		name := ""
		if rest, ok := strings.CutPrefix(text, "Using rootstrap module "); ok {
			name = "module " + strings.Fields(rest + " ")[0]
		} else if rest, ok := strings.CutPrefix(text, "Provisioning with "); ok {
			name = "provisioner " + strings.TrimRight(strings.Fields(rest + " ")[0], ".:")
		} else if len(marks) == 0 {
			name = "other"
		} else {
			for _, p := range otherSteps {
				if strings.HasPrefix(text, p) {
					name = "other"
				}
			}
		}
		// Consecutive "other" marks make one step.
		if name != "" && !(name == "other" && len(marks) > 0 && marks[len(marks)-1].name == "other") {
			marks = append(marks, mark{name, at})
		}
	}
	var steps []step
	for i, mk := range marks {
		end := last
		if i+1 < len(marks) {
			end = marks[i+1].at
		}
		steps = append(steps, step{mk.name, end.Sub(mk.at), mk.at})
	}
	return steps
}

// stepTotals adds the steps up by name, in the order of their first appearance.
func stepTotals(steps []step) (names []string, took map[string]time.Duration) {
	took = map[string]time.Duration{}
	for _, s := range steps {
		if _, seen := took[s.name]; !seen {
			names = append(names, s.name)
		}
		took[s.name] += s.took
	}
	return names, took
}

// stepRows is the step table's rows for a cold and a warm build: modules and provisioners in the
// order they ran, then "other" and the total.
func stepRows(cold, warm []step) []string {
	coldNames, coldTook := stepTotals(cold)
	warmNames, warmTook := stepTotals(warm)
	var names []string
	seen := map[string]bool{"other": true}
	for _, n := range append(coldNames, warmNames...) {
		if !seen[n] {
			seen[n] = true
			names = append(names, n)
		}
	}
	cell := func(m map[string]time.Duration, n string) string {
		if d, ok := m[n]; ok {
			return d.String()
		}
		return "-"
	}
	var rows []string
	for _, n := range names {
		rows = append(rows, fmt.Sprintf("| %s | %s | %s |", n, cell(coldTook, n), cell(warmTook, n)))
	}
	rows = append(rows, fmt.Sprintf("| other (preflight, boot, shutdown, resize, ...) | %s | %s |", cell(coldTook, "other"), cell(warmTook, "other")))
	var coldSum, warmSum time.Duration
	for _, d := range coldTook {
		coldSum += d
	}
	for _, d := range warmTook {
		warmSum += d
	}
	return append(rows, fmt.Sprintf("| total (first to last timestamp) | %s | %s |", coldSum, warmSum))
}

func fileTail(path string, n int) string {
	b, _ := os.ReadFile(path)
	return path + " (tail):\n" + tail(string(b), n)
}
