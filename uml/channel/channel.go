// Package channel turns the byte stream between host and guest (a UML serial line on the guest side, a
// pair of pipes on the host side) into a yamux session, after a versioned readiness banner. It knows
// nothing of the requests that travel over the session (see package agent).
package channel

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/yamux"
)

// bannerPrefix starts the line the guest writes once its end is in raw mode; the version follows.
// It starts with a newline so that it is found even after stray console bytes on the line.
const bannerPrefix = "\nUMLAGENT "

// maxBannerScan bounds how much the host reads while looking for the banner: a guest that prints
// megabytes of something else on the agent's line is not an agent.
const maxBannerScan = 1 << 20

var (
	// ErrVersion is returned when the guest speaks another protocol version.
	ErrVersion = errors.New("guest agent speaks another protocol version")
	// ErrNoBanner is returned when the line closed before the guest's readiness banner arrived.
	ErrNoBanner = errors.New("channel closed before the guest agent was ready")
)

// config is yamux's configuration for both sides.
//
// Keepalive stays on, unlike kata's agent, because a hung guest must be noticed (a dead UML process is
// noticed anyway, by the host waiting on it). Under a heavy guest load the agent still answers within
// the write timeout: pings are handled by yamux's own goroutine, not behind a request.
func config(logOut io.Writer) *yamux.Config {
	c := yamux.DefaultConfig()
	c.KeepAliveInterval = 10 * time.Second
	// Also the limit for a keepalive's answer: a guest silent for KeepAliveInterval plus this is
	// taken for hung, and the session ends (ErrKeepAliveTimeout).
	c.ConnectionWriteTimeout = 30 * time.Second
	// A 16 MiB window lets one stream keep the line busy while the other side drains its buffer.
	c.MaxStreamWindowSize = 16 << 20
	c.StreamOpenTimeout = 60 * time.Second
	c.LogOutput = nil
	c.Logger = log.New(logOut, "yamux: ", log.LstdFlags)
	return c
}

// Banner is what the guest writes when it is ready, for protocol version v.
func Banner(v int) string { return bannerPrefix + strconv.Itoa(v) + "\n" }

// Serve is the guest side: it announces version v on line (already in raw mode) and returns the
// yamux server session. spoolDir is where the guest sees the host's spool directory (see Dial), ""
// for none. logOut receives yamux's own log lines.
func Serve(line io.ReadWriteCloser, v int, spoolDir string, logOut io.Writer) (*yamux.Session, error) {
	if _, err := io.WriteString(line, Banner(v)); err != nil {
		return nil, fmt.Errorf("write banner: %w", err)
	}
	return yamux.Server(newGuestConn(line, spoolDir), config(logOut))
}

// Dial is the host side: it waits for the guest's banner on conn, checks that it announces version
// v, and returns the yamux client session. spoolDir, when set, is a host directory the guest reads
// through hostfs (and was given to Serve): large writes to the guest go through files there, not
// through the slow line (see credit.go). It sends nothing before the banner. Bytes before the
// banner (the guest's line may carry noise while it boots) are skipped.
func Dial(conn io.ReadWriteCloser, v int, spoolDir string, logOut io.Writer) (*yamux.Session, error) {
	br := bufio.NewReaderSize(conn, 4096)
	if err := awaitBanner(br, v); err != nil {
		return nil, err
	}
	// The bufio.Reader may already hold the first bytes after the banner; hand them on.
	return yamux.Client(newHostConn(conn, br, spoolDir), config(logOut))
}

func awaitBanner(br *bufio.Reader, v int) error {
	word := strings.TrimPrefix(bannerPrefix, "\n") // the banner's leading newline makes it start a line
	for scanned := 0; scanned < maxBannerScan; {
		line, err := br.ReadString('\n')
		scanned += len(line)
		if err == io.EOF {
			return ErrNoBanner
		}
		if err != nil {
			return fmt.Errorf("wait for guest agent: %w", err)
		}
		if !strings.HasPrefix(line, word) {
			continue
		}
		got, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, word)))
		if err != nil || got != v {
			return fmt.Errorf("%w: guest announced %q, host speaks %d", ErrVersion, strings.TrimSpace(line), v)
		}
		return nil
	}
	return fmt.Errorf("wait for guest agent: no banner in the first %d bytes", maxBannerScan)
}
