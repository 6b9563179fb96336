package bench

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/packer-uml/packer-plugin-uml/internal/procstat"
)

// umlCounters are what the host's /proc tells of UML's processes (the kernel's main process and,
// in ptrace mode, one host process per guest address space: a process the guest starts costs one).
type umlCounters struct {
	userTicks, sysTicks   int64 // utime, stime, plus cutime, cstime of waited-for children
	minorFaults           int64 // minflt + cminflt
	readBytes, writeBytes int64 // /proc/PID/io read_bytes, write_bytes: what reached the block layer
	rchar, wchar          int64 // every read(2)/write(2) byte: hostfs and ubd both
	syscr, syscw          int64
	processes             int // distinct UML host processes seen (short-lived ones between samples are missed)
}

func (a umlCounters) add(b umlCounters) umlCounters {
	return umlCounters{a.userTicks + b.userTicks, a.sysTicks + b.sysTicks, a.minorFaults + b.minorFaults,
		a.readBytes + b.readBytes, a.writeBytes + b.writeBytes, a.rchar + b.rchar, a.wchar + b.wchar,
		a.syscr + b.syscr, a.syscw + b.syscw, a.processes + b.processes}
}

func (a umlCounters) sub(b umlCounters) umlCounters {
	return umlCounters{a.userTicks - b.userTicks, a.sysTicks - b.sysTicks, a.minorFaults - b.minorFaults,
		a.readBytes - b.readBytes, a.writeBytes - b.writeBytes, a.rchar - b.rchar, a.wchar - b.wchar,
		a.syscr - b.syscr, a.syscw - b.syscw, a.processes - b.processes}
}

// umlSampler reads the counters of every process running the kernel binary every interval. A
// process's last sample stays counted after it exits, so sums only grow.
type umlSampler struct {
	kernel string
	stop   chan struct{}
	done   sync.WaitGroup

	mu      sync.Mutex
	last    map[int]umlCounters // per PID, the latest sample
	samples []timedCounters
}

type timedCounters struct {
	at time.Time
	c  umlCounters
}

func startUMLSampler(kernel string, every time.Duration) *umlSampler {
	if p, err := filepath.EvalSymlinks(kernel); err == nil {
		kernel = p
	}
	s := &umlSampler{kernel: kernel, stop: make(chan struct{}), last: map[int]umlCounters{}}
	s.done.Add(1)
	go func() {
		defer s.done.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			s.sample()
			select {
			case <-s.stop:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

// isKernel reports whether exe runs the sampled kernel: the kernel file itself, or the copy a
// build run as root makes for UML's unprivileged user (the build's work directory, packer-uml*,
// holding "linux"; docs/reliability.md).
func (s *umlSampler) isKernel(exe string) bool {
	return exe == s.kernel || filepath.Base(exe) == "linux" && strings.HasPrefix(filepath.Base(filepath.Dir(exe)), "packer-uml")
}

func (s *umlSampler) Stop() []timedCounters {
	close(s.stop)
	s.done.Wait()
	s.sample()
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.samples
}

func (s *umlSampler) sample() {
	all := procstat.All()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, st := range all {
		if exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", st.Pid)); err != nil || !s.isKernel(strings.TrimSuffix(exe, " (deleted)")) {
			continue
		}
		s.last[st.Pid] = readCounters(st)
	}
	var sum umlCounters
	for _, c := range s.last {
		sum = sum.add(c)
	}
	sum.processes = len(s.last)
	s.samples = append(s.samples, timedCounters{time.Now(), sum})
}

// readCounters adds /proc/PID/io to what procstat read of the process.
func readCounters(st procstat.Stat) umlCounters {
	// Own counts only: a guest process's host process is UML's child, and its times move into
	// UML's cutime when it is reaped, while its last sample here stays counted.
	c := umlCounters{minorFaults: st.MinFlt, userTicks: st.UTime, sysTicks: st.STime}
	pid := st.Pid
	if io, err := os.Open(fmt.Sprintf("/proc/%d/io", pid)); err == nil {
		sc := bufio.NewScanner(io)
		for sc.Scan() {
			k, v, _ := strings.Cut(sc.Text(), ": ")
			x, _ := strconv.ParseInt(v, 10, 64)
			switch k {
			case "rchar":
				c.rchar = x
			case "wchar":
				c.wchar = x
			case "syscr":
				c.syscr = x
			case "syscw":
				c.syscw = x
			case "read_bytes":
				c.readBytes = x
			case "write_bytes":
				c.writeBytes = x
			}
		}
		io.Close()
	}
	return c
}

// counterAt is the last sample taken at or before t (the zero counters before the first).
func counterAt(samples []timedCounters, t time.Time) umlCounters {
	var c umlCounters
	for _, s := range samples {
		if s.at.After(t) {
			break
		}
		c = s.c
	}
	return c
}

// phaseRows attributes the samples to the build's steps (by the steps' start times; a step's
// counters are the difference between the samples at its start and at the next step's start) and
// returns a table's rows.
func phaseRows(steps []step, samples []timedCounters) []string {
	tick := float64(100) // USER_HZ on Linux
	rows := []string{
		"| step | wall | UML user CPU | UML system CPU | minor faults | UML host processes | read(2)/write(2) MiB | block-layer read/write MiB |",
		"|---|---|---|---|---|---|---|---|",
	}
	if len(samples) == 0 {
		return rows
	}
	end := samples[len(samples)-1].at
	for i, st := range steps {
		to := end
		if i+1 < len(steps) {
			to = steps[i+1].start
		}
		d := counterAt(samples, to).sub(counterAt(samples, st.start))
		rows = append(rows, fmt.Sprintf("| %s | %s | %.1f s | %.1f s | %d | %d | %.0f / %.0f | %.0f / %.0f |", st.name, st.took,
			float64(d.userTicks)/tick, float64(d.sysTicks)/tick, d.minorFaults, d.processes,
			float64(d.rchar)/(1<<20), float64(d.wchar)/(1<<20), float64(d.readBytes)/(1<<20), float64(d.writeBytes)/(1<<20)))
	}
	return rows
}
