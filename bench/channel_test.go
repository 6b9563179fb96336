package bench

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/packer-uml/packer-plugin-uml/internal/umltest"
	"github.com/packer-uml/packer-plugin-uml/uml/agent"
)

// BenchmarkChannel measures the agent's byte stream itself, not the staged file transfers: 64 MiB
// from the host into a guest process's stdin and 64 MiB of a guest process's stdout, through `dd`
// with 1 MiB blocks at the guest's end (`dd of=/dev/null`, `dd if=/dev/zero count=64`). Both
// directions go through spool files (see package channel). With programs that move smaller pieces
// the guest's own system calls decide instead: `head -c 64M /dev/zero` writes 8 KiB at a time,
// which held guest to host at 26-31 MB/s where dd reached 95-139 (docs/performance.md). Each
// direction is timed on the host around the whole exec, one boot for all iterations; MB/s is 10^6
// bytes per second, the median.
func BenchmarkChannel(b *testing.B) {
	const size = 64 << 20
	g := umltest.Boot(b, umltest.Options{})
	defer g.Shutdown(b)
	var up, down []time.Duration
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		code, err := g.Client.Exec(context.Background(), agent.ExecRequest{Argv: []string{"dd", "of=/dev/null", "bs=1M", "status=none"}},
			io.LimitReader(zeros{}, size), nil, nil)
		if err != nil || code != 0 {
			b.Fatalf("host to guest: %d %v", code, err)
		}
		up = append(up, time.Since(t0))

		var got countWriter
		t0 = time.Now()
		code, err = g.Client.Exec(context.Background(), agent.ExecRequest{Argv: []string{"dd", "if=/dev/zero", "bs=1M", "count=64", "status=none"}}, nil, &got, nil)
		if err != nil || code != 0 || got != size {
			b.Fatalf("guest to host: %d %v, %d bytes", code, err, got)
		}
		down = append(down, time.Since(t0))
	}
	b.ReportMetric(size/median(up).Seconds()/1e6, "host-to-guest-MB/s")
	b.ReportMetric(size/median(down).Seconds()/1e6, "guest-to-host-MB/s")
	b.ReportMetric(0, "ns/op")
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

type countWriter int64

func (c *countWriter) Write(p []byte) (int, error) {
	*c += countWriter(len(p))
	return len(p), nil
}
