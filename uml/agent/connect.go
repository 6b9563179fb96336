package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/hashicorp/yamux"

	"github.com/packer-uml/packer-plugin-uml/uml/channel"
)

var (
	// ErrGuestExited is returned by Connect when the guest ended before its agent was ready.
	ErrGuestExited = errors.New("the guest exited before its agent was ready")
	// ErrNotReady is returned by Connect when the agent did not announce itself in time.
	ErrNotReady = errors.New("the guest agent was not ready in time")
)

// Connect waits for the agent's banner on line and returns a Client, giving up when exited is
// closed (the guest ended), after timeout, or when ctx ends. On failure it closes line, which ends
// the wait; the caller still owns the guest and should stop it. stagingDir is as for NewClient.
func Connect(ctx context.Context, line io.ReadWriteCloser, exited <-chan struct{}, timeout time.Duration, stagingDir string, logOut io.Writer) (*Client, error) {
	type dialed struct {
		sess *yamux.Session
		err  error
	}
	result := make(chan dialed, 1)
	go func() {
		sess, err := channel.Dial(line, ProtocolVersion, stagingDir, logOut)
		result <- dialed{sess, err}
	}()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	var err error
	select {
	case r := <-result:
		if r.err == nil {
			return NewClient(r.sess, stagingDir), nil
		}
		err = fmt.Errorf("guest agent did not start: %w", r.err)
	case <-exited:
		err = ErrGuestExited
	case <-timer.C:
		err = fmt.Errorf("%w (%s)", ErrNotReady, timeout)
	case <-ctx.Done():
		err = fmt.Errorf("waiting for the guest agent: %w", ctx.Err())
	}
	line.Close()
	return nil, err
}
