package agent

import (
	"errors"
	"fmt"
	"log"
	"os"

	"github.com/packer-uml/packer-plugin-uml/uml/channel"
	"github.com/packer-uml/packer-plugin-uml/uml/fsroot"
	"golang.org/x/sys/unix"
	"golang.org/x/term"
)

// SerialLine is the guest device of the agent's channel: UML's ssl1, bound to the host's pipes.
const SerialLine = "/dev/ttyS1"

// runAgent is the guest agent, run by PID 1 (RunInit): it opens the serial line in raw mode,
// announces itself and serves requests until the host asks for a shutdown or goes away. The reaper
// learns of every child it starts. With cfg.ProxyAddr set it also serves the guest's proxy port.
func runAgent(r *reaper, cfg GuestConfig) error {
	logger := log.New(os.Stderr, "uml-agent: ", log.Lmicroseconds)
	// A blocking descriptor: os.NewFile keeps it out of Go's netpoller, and reads block in a thread
	// of their own, the simplest path for a tty. (Input stalls on this line come from UML's throttle,
	// which the channel's credit layer avoids; see package channel.)
	fd, err := unix.Open(SerialLine, unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", SerialLine, err)
	}
	line := os.NewFile(uintptr(fd), SerialLine)
	// Raw mode: without it the tty echoes the host's bytes and rewrites ours (NL to CR NL).
	if _, err := term.MakeRaw(int(line.Fd())); err != nil {
		return fmt.Errorf("raw mode on %s: %w", SerialLine, err)
	}
	// The host spools large writes into the staging directory, when there is one (see package
	// channel): the line alone carries well under 1 MB/s towards the guest.
	spool := ""
	if cfg.StagingDir != "" {
		spool = GuestStagingDir
	}
	sess, err := channel.Serve(line, ProtocolVersion, spool, os.Stderr)
	if err != nil {
		return err
	}
	if cfg.ProxyAddr != "" {
		// Without its proxy the guest still serves the host: the build fails later, with the
		// guest's tools reporting a refused connection and this line on the console.
		if err := startGuestProxy(sess, cfg.ProxyAddr, logger); err != nil {
			logger.Printf("no proxy in the guest: %v", err)
		}
	}
	// Uploaded files belong to root: the host user's uid means nothing in the image.
	srv := &Server{Log: logger, StagingDir: GuestStagingDir, Owner: &fsroot.Owner{UID: 0, GID: 0}, reaper: r}
	err = srv.Serve(sess)
	if errors.Is(err, ErrShutdown) {
		// No goodbye on the session: the host has its answer and waits for UML to exit, and
		// closing a tty may wait for its output to drain.
		return nil
	}
	// The host closed the line: the plugin ended or died. Power off (PID 1 does, when we return).
	return fmt.Errorf("host went away: %w", err)
}
