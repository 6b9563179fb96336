package bench

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/packer-uml/packer-plugin-uml/internal/umltest"
	"github.com/packer-uml/packer-plugin-uml/uml/agent"
	"github.com/packer-uml/packer-plugin-uml/uml/machine"
	"github.com/packer-uml/packer-plugin-uml/uml/usernet"
)

// downloadSize is the file every path fetches: random bytes, so that nothing on the way compresses them.
const downloadSize = 32 << 20

// fetchScript runs its arguments (a wget writing /tmp/dl) and prints the wall time around it, read
// from bash's clock in the guest (so the exec round trip over the agent channel, 50-60 ms, is not
// counted: only the client's own run, as for curl on the host), and the size of what it wrote.
const fetchScript = `#!/bin/bash
set -e
rm -f /tmp/dl
t0=$EPOCHREALTIME
"$@"
t1=$EPOCHREALTIME
echo "$t0 $t1 $(stat -c %s /tmp/dl)"
`

// BenchmarkDownload fetches the same random 32 MiB file, served by an HTTP server on the host's
// 127.0.0.1, four ways: curl on the host (the baseline), wget on the host (the same client as in
// the guest), and wget in a guest through each network transport: the agent's proxy
// (http_proxy=http://127.0.0.1:3128 in the guest, carried over the agent channel to a netproxy on
// the host) and libslirp (vec0 configured as usernet's test does, the server reached as
// 10.0.2.2). Each guest sub-benchmark boots its own guest outside the timer. Every fetch's size is
// checked, and the guest's first copy's sha256. The metric is MB/s (10^6 bytes), the median over
// -benchtime Nx fetches; at the end a table gives each path's ratio to host curl.
func BenchmarkDownload(b *testing.B) {
	blob := make([]byte, downloadSize)
	rand.Read(blob)
	sum := sha256.Sum256(blob)
	want := hex.EncodeToString(sum[:])
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.Itoa(len(blob)))
		w.Write(blob)
	}))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	loadBefore := loadAvg()

	type result struct{ name, label string }
	paths := []result{
		{"host-curl", "curl on the host"},
		{"host-wget", "wget on the host"},
		{"guest-agent-proxy", "wget in the guest, agent proxy"},
		{"guest-libslirp", "wget in the guest, libslirp"},
	}
	mbs := map[string]float64{}
	report := func(b *testing.B, name string, d []time.Duration) {
		v := float64(downloadSize) / 1e6 / median(d).Seconds()
		mbs[name] = v
		b.ReportMetric(v, "MB/s")
		b.ReportMetric(0, "ns/op")
	}

	b.Run("host-curl", func(b *testing.B) {
		if _, err := exec.LookPath("curl"); err != nil {
			b.Skip("no curl on this host")
		}
		url := srv.URL + "/blob"
		var d []time.Duration
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			t0 := time.Now()
			out, err := exec.Command("curl", "-sf", "--noproxy", "*", "-o", "/dev/null", "-w", "%{size_download}", url).Output()
			d = append(d, time.Since(t0))
			if err != nil {
				b.Fatalf("curl: %v", err)
			}
			if n, _ := strconv.Atoi(strings.TrimSpace(string(out))); n != downloadSize {
				b.Fatalf("curl fetched %q bytes, want %d", out, downloadSize)
			}
		}
		b.StopTimer()
		report(b, "host-curl", d)
	})

	b.Run("host-wget", func(b *testing.B) {
		url := srv.URL + "/blob"
		dst := filepath.Join(b.TempDir(), "dl")
		var d []time.Duration
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			os.Remove(dst)
			t0 := time.Now()
			out, err := exec.Command("wget", "--no-proxy", "-q", "-O", dst, url).CombinedOutput()
			d = append(d, time.Since(t0))
			if err != nil {
				b.Fatalf("wget: %v\n%s", err, out)
			}
			if st, err := os.Stat(dst); err != nil || st.Size() != downloadSize {
				b.Fatalf("wget fetched %v (%v), want %d bytes", st, err, downloadSize)
			}
		}
		b.StopTimer()
		report(b, "host-wget", d)
	})

	b.Run("guest-agent-proxy", func(b *testing.B) {
		g := umltest.Boot(b, umltest.Options{ProxyAddr: agent.DefaultProxyAddr})
		cmd := fmt.Sprintf("http_proxy=http://%s /tmp/fetch.sh wget -q -O /tmp/dl http://127.0.0.1:%s/blob", agent.DefaultProxyAddr, port)
		report(b, "guest-agent-proxy", guestFetches(b, g, cmd, want))
	})

	b.Run("guest-libslirp", func(b *testing.B) {
		helper, err := usernet.FindHelper()
		if err != nil {
			b.Fatal(err)
		}
		n, err := usernet.Start(context.Background(), helper, os.Stderr)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { n.Close() }) // after the guest's own clean-up, registered later
		g := umltest.Boot(b, umltest.Options{
			ExtraFiles: []*os.File{n.UMLFile()},
			ExtraArgs:  []string{n.UMLArg(machine.ExtraFD(0))},
		})
		g.Sh(b, fmt.Sprintf("set -e\nip addr add %s/%d dev %s\nip link set %s up\nip route add default via %s\n",
			usernet.GuestIP, usernet.PrefixLen, usernet.Interface, usernet.Interface, usernet.Gateway))
		cmd := fmt.Sprintf("/tmp/fetch.sh wget --no-proxy -q -O /tmp/dl http://%s:%s/blob", usernet.Gateway, port)
		report(b, "guest-libslirp", guestFetches(b, g, cmd, want))
		select {
		case <-n.Done():
			b.Errorf("the libslirp helper ended during the benchmark: %v", n.Err())
		default:
		}
	})

	host, ok := mbs["host-curl"]
	if len(mbs) == 0 {
		return
	}
	fmt.Printf("\nDownload of %d MiB from an HTTP server on the host's 127.0.0.1 (median MB/s; load average before %s, after %s):\n\n",
		downloadSize>>20, loadBefore, loadAvg())
	fmt.Println("| path | MB/s | ratio to host curl |")
	fmt.Println("|---|---|---|")
	for _, p := range paths {
		v, done := mbs[p.name]
		if !done {
			continue
		}
		ratio := ""
		if p.name == "host-curl" {
			ratio = "1 (the baseline)"
		} else if ok {
			ratio = fmt.Sprintf("%.3g", v/host)
			if slower := host / v; slower >= 10 {
				ratio += fmt.Sprintf(" (%.0f× slower)", slower)
			} else if slower > 1 {
				ratio += fmt.Sprintf(" (%.1f× slower)", slower)
			}
		}
		fmt.Printf("| %s (%s) | %.2f | %s |\n", p.label, p.name, v, ratio)
	}
	fmt.Println()
}

// guestFetches runs cmd (a fetch.sh command line) b.N times in the guest, inside the timer, and
// returns the wall times the guest measured; it checks every fetch's size and the first one's
// sha256 (outside the timer), then powers the guest off.
func guestFetches(b *testing.B, g *umltest.Guest, cmd, wantSHA256 string) []time.Duration {
	b.Helper()
	if err := g.Client.Upload("", "/tmp/fetch.sh", 0o755, 0, strings.NewReader(fetchScript)); err != nil {
		b.Fatal(err)
	}
	var d []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		out := g.Sh(b, cmd)
		took, size, err := parseFetch(out)
		if err != nil {
			b.Fatalf("%v\n%s", err, out)
		}
		if size != downloadSize {
			b.Fatalf("the guest fetched %d bytes, want %d", size, downloadSize)
		}
		d = append(d, took)
		if i == 0 {
			b.StopTimer()
			if got := g.Sh(b, "sha256sum /tmp/dl"); !strings.HasPrefix(got, wantSHA256) {
				b.Fatalf("guest sha256 %q, want %s", got, wantSHA256)
			}
			b.StartTimer()
		}
	}
	b.StopTimer()
	g.Sh(b, "rm -f /tmp/dl")
	g.Shutdown(b)
	return d
}

// parseFetch reads fetchScript's line: two $EPOCHREALTIME values and a size.
func parseFetch(out string) (time.Duration, int64, error) {
	f := strings.Fields(out)
	if len(f) != 3 {
		return 0, 0, fmt.Errorf("fetch.sh printed %q, want start, end and size", out)
	}
	t0, err0 := epochMicros(f[0])
	t1, err1 := epochMicros(f[1])
	size, err2 := strconv.ParseInt(f[2], 10, 64)
	if err0 != nil || err1 != nil || err2 != nil || t1 < t0 {
		return 0, 0, fmt.Errorf("fetch.sh printed %q", out)
	}
	return time.Duration(t1-t0) * time.Microsecond, size, nil
}

// epochMicros parses bash's $EPOCHREALTIME (seconds, the locale's decimal mark, six decimals) as
// microseconds, without going through a float.
func epochMicros(s string) (int64, error) {
	sec, frac, ok := strings.Cut(strings.Replace(s, ",", ".", 1), ".")
	if !ok || len(frac) != 6 {
		return 0, fmt.Errorf("EPOCHREALTIME %q", s)
	}
	return strconv.ParseInt(sec+frac, 10, 64)
}

// loadAvg is the host's 1-minute load average, to tell a run on a busy machine.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) > 0 {
		return f[0]
	}
	return "?"
}
