// Package bench measures the uml builder's foundations with the real UML kernel: boot to agent
// ready, 512 MiB transfers each way (sha256 checked on both sides), exec round trips and the
// guest's HTTP downloads through each network transport (download_test.go), each beside a baseline
// taken on the host in the same run. Run with `make bench`, which prints Go's benchmark table; the
// metrics are medians over the iterations (-benchtime Nx). BenchmarkDebianBuild
// (debian_test.go), two whole Debian builds with a cold and a warm package cache, takes 20-30
// minutes and runs only when named: `make bench-debian`.
package bench

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/packer-uml/packer-plugin-uml/internal/umltest"
	"github.com/packer-uml/packer-plugin-uml/uml/agent"
)

func median(d []time.Duration) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// BenchmarkBootToAgentReady boots a guest per iteration; kernel-ms is the part until the kernel
// runs init (read off the console), agent-ms the rest (mounts, agent start, banner).
func BenchmarkBootToAgentReady(b *testing.B) {
	var ready, kernel []time.Duration
	for i := 0; i < b.N; i++ {
		var mu sync.Mutex
		var runInit time.Time
		start := time.Now()
		g := umltest.Boot(b, umltest.Options{OnConsole: func(line string) {
			if strings.HasPrefix(line, "Run ") && strings.Contains(line, "as init process") {
				mu.Lock()
				runInit = time.Now()
				mu.Unlock()
			}
		}})
		ready = append(ready, g.Ready)
		mu.Lock()
		if !runInit.IsZero() {
			kernel = append(kernel, runInit.Sub(start))
		}
		mu.Unlock()
		g.Shutdown(b)
	}
	b.ReportMetric(ms(median(ready)), "ready-ms")
	if len(kernel) > 0 {
		b.ReportMetric(ms(median(kernel)), "kernel-ms")
		b.ReportMetric(ms(median(ready)-median(kernel)), "agent-ms")
	}
	b.ReportMetric(0, "ns/op")
}

// BenchmarkTransfer512MiB moves a 512 MiB random file into the guest and back, checking sha256 in
// the guest and on the host, to two places: "image" is an ext4 filesystem on the image (ubd), what
// a build writes, including a sync; "tmpfs" is the guest's /tmp, which measures the transfer path
// without UML's block device. The baseline is a host copy of the same file in the same run.
func BenchmarkTransfer512MiB(b *testing.B) {
	for _, dest := range []struct{ name, setup, path string }{
		{"image", "mkfs.ext4 -q -F -E lazy_itable_init=1,lazy_journal_init=1 /dev/ubda && mkdir -p /tmp/target && mount -o noinit_itable /dev/ubda /tmp/target", "/tmp/target/big.bin"},
		{"tmpfs", "true", "/tmp/big.bin"},
	} {
		b.Run(dest.name, func(b *testing.B) { benchTransfer(b, dest.setup, dest.path) })
	}
}

func benchTransfer(b *testing.B, setup, guestPath string) {
	const size = 512 << 20
	dir := b.TempDir()
	src := filepath.Join(dir, "src.bin")
	want := writeRandom(b, src, size)
	// 1400 MiB of guest memory: tmpfs holds the file, and the page cache does not thrash.
	g := umltest.Boot(b, umltest.Options{ImageMiB: 1400, MemMiB: 1400})
	g.Sh(b, setup)
	var up, down, host []time.Duration
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		copyFile(b, src, filepath.Join(dir, "copy.bin"))
		host = append(host, time.Since(t0))

		f, err := os.Open(src)
		if err != nil {
			b.Fatal(err)
		}
		t0 = time.Now()
		if err := g.Client.Upload("", guestPath, 0o644, 0, f); err != nil {
			b.Fatal(err)
		}
		g.Sh(b, "sync")
		up = append(up, time.Since(t0))
		f.Close()
		if out := g.Sh(b, "sha256sum "+guestPath); !strings.HasPrefix(out, want) {
			b.Fatalf("guest sha256 %q, want %s", out, want)
		}

		h := sha256.New()
		out, err := os.Create(filepath.Join(dir, "back.bin"))
		if err != nil {
			b.Fatal(err)
		}
		t0 = time.Now()
		if err := g.Client.Download("", guestPath, io.MultiWriter(out, h)); err != nil {
			b.Fatal(err)
		}
		down = append(down, time.Since(t0))
		out.Close()
		if got := hex.EncodeToString(h.Sum(nil)); got != want {
			b.Fatalf("downloaded sha256 %s, want %s", got, want)
		}
		g.Sh(b, "rm -f "+guestPath)
	}
	g.Shutdown(b)
	mbs := func(d time.Duration) float64 { return float64(size) / 1e6 / d.Seconds() }
	b.ReportMetric(mbs(median(up)), "upload-MB/s")
	b.ReportMetric(mbs(median(down)), "download-MB/s")
	b.ReportMetric(mbs(median(host)), "host-copy-MB/s")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkExecTrue runs `true` in the guest per iteration; the baseline is fork+exec of /bin/true
// on the host.
func BenchmarkExecTrue(b *testing.B) {
	g := umltest.Boot(b, umltest.Options{})
	var guest, host []time.Duration
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		code, err := g.Client.Exec(context.Background(), agent.ExecRequest{Argv: []string{"/bin/true"}}, nil, nil, nil)
		if err != nil || code != 0 {
			b.Fatalf("exec true: %d %v", code, err)
		}
		guest = append(guest, time.Since(t0))
		t0 = time.Now()
		if err := exec.Command("/bin/true").Run(); err != nil {
			b.Fatal(err)
		}
		host = append(host, time.Since(t0))
	}
	g.Shutdown(b)
	b.ReportMetric(ms(median(guest)), "guest-ms")
	b.ReportMetric(ms(median(host)), "host-ms")
	b.ReportMetric(float64(median(guest))/float64(median(host)), "ratio")
	b.ReportMetric(0, "ns/op")
}

func writeRandom(b *testing.B, path string, size int) string {
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	buf := make([]byte, 1<<20)
	for n := 0; n < size; n += len(buf) {
		rand.Read(buf)
		h.Write(buf)
		if _, err := f.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

func copyFile(b *testing.B, src, dst string) {
	in, err := os.Open(src)
	if err != nil {
		b.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := io.CopyBuffer(struct{ io.Writer }{out}, in, make([]byte, 1<<20)); err != nil {
		b.Fatal(err)
	}
	out.Close()
}
