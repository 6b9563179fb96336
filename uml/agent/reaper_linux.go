package agent

import (
	"os"
	"os/exec"
	"os/signal"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/packer-uml/packer-plugin-uml/internal/procstat"
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
	for _, p := range procstat.All() {
		if p.State != "Z" || p.PPid != self {
			continue
		}
		r.mu.Lock()
		mine := r.own[p.Pid]
		r.mu.Unlock()
		if !mine {
			unix.Wait4(p.Pid, nil, unix.WNOHANG, nil)
		}
	}
}
