// Package procstat lists processes from /proc/PID/stat: the guest's PID 1 looks for orphaned
// zombies with it, UML's watchdog on the host for the processes of a group, and the benchmarks
// for the CPU time and faults of UML's host processes.
package procstat

import (
	"os"
	"strconv"
	"strings"
)

// Stat is what callers need of one process's /proc/PID/stat.
type Stat struct {
	Pid   int
	State string // R, S, D, Z, ...
	PPid  int
	Pgrp  int
	// MinFlt, UTime and STime are the process's own minor faults and user and system time in
	// clock ticks (fields 10, 14 and 15 of proc(5)); zero when the line stops before them.
	MinFlt, UTime, STime int64
}

// All returns every process in /proc; processes that end while it reads are left out.
func All() []Stat {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var all []Stat
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		if st, ok := parse(pid, string(b)); ok {
			all = append(all, st)
		}
	}
	return all
}

// parse reads the fields after the command name, which is in parentheses and may itself hold
// spaces and parentheses: "PID (COMM) STATE PPID PGRP ...".
func parse(pid int, s string) (Stat, bool) {
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return Stat{}, false
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 3 {
		return Stat{}, false
	}
	ppid, err1 := strconv.Atoi(f[1])
	pgrp, err2 := strconv.Atoi(f[2])
	if err1 != nil || err2 != nil {
		return Stat{}, false
	}
	st := Stat{Pid: pid, State: f[0], PPid: ppid, Pgrp: pgrp}
	if len(f) > 12 { // f[k-3] is field k of proc(5)
		st.MinFlt, _ = strconv.ParseInt(f[7], 10, 64)
		st.UTime, _ = strconv.ParseInt(f[11], 10, 64)
		st.STime, _ = strconv.ParseInt(f[12], 10, 64)
	}
	return st, true
}
