package agent

import (
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// reapInterval bounds how often the reaper scans /proc: a scan costs a few hundred system calls,
// which UML makes expensive, and a zombie that waits a second for it harms nobody.
const reapInterval = time.Second

// reaper runs in PID 1, where the agent runs too. The kernel re-parents every orphan to PID 1, which
// must reap them; but the agent's own children are waited for by os/exec, and a reaper that used
// wait4(-1) would steal their exit statuses. So children the agent starts are registered (under
// the read lock, together with their start), and the reaper reaps only zombies whose parent is
// PID 1 and that are not registered (under the write lock, so that no start is half done).
type reaper struct {
	phase sync.RWMutex // read: starting and registering a child; write: a reaping pass
	mu    sync.Mutex   // guards own
	own   map[int]bool // pids of children os/exec waits for
}

func newReaper() *reaper { return &reaper{own: map[int]bool{}} }

// start starts cmd and registers its pid before any reaping pass can see it.
func (r *reaper) start(cmd *exec.Cmd) error {
	r.phase.RLock()
	defer r.phase.RUnlock()
	if err := cmd.Start(); err != nil {
		return err
	}
	r.mu.Lock()
	r.own[cmd.Process.Pid] = true
	r.mu.Unlock()
	return nil
}

// release forgets a child once os/exec has waited for it.
func (r *reaper) release(pid int) {
	r.mu.Lock()
	delete(r.own, pid)
	r.mu.Unlock()
}

// run reaps orphans on SIGCHLD, at most once per reapInterval, until stop is closed.
func (r *reaper) run(stop <-chan struct{}) {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, unix.SIGCHLD)
	defer signal.Stop(sigs)
	var last time.Time
	var later <-chan time.Time
	for {
		select {
		case <-stop:
			return
		case <-sigs:
			if wait := reapInterval - time.Since(last); wait > 0 {
				if later == nil {
					later = time.After(wait)
				}
				continue
			}
		case <-later:
		}
		later = nil
		last = time.Now()
		r.pass()
	}
}

// pass reaps every unregistered zombie child of this process.
func (r *reaper) pass() {
	r.phase.Lock()
	defer r.phase.Unlock()
	self := os.Getpid()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		state, ppid, ok := procState(pid)
		if !ok || state != "Z" || ppid != self {
			continue
		}
		r.mu.Lock()
		mine := r.own[pid]
		r.mu.Unlock()
		if !mine {
			unix.Wait4(pid, nil, unix.WNOHANG, nil)
		}
	}
}

// procState reads a process's state letter and parent from /proc/PID/stat.
func procState(pid int) (string, int, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return "", 0, false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')') // the command name may hold spaces and parentheses
	if i < 0 {
		return "", 0, false
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 2 {
		return "", 0, false
	}
	ppid, err := strconv.Atoi(f[1])
	return f[0], ppid, err == nil
}
