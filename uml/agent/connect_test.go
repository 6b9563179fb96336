package agent

import (
	"context"
	"errors"
	"io"
	"os"
	"testing"
	"time"
)

// silentLine is a line on which no guest ever announces itself.
func silentLine(t *testing.T) io.ReadWriteCloser {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return struct {
		io.Reader
		io.Writer
		io.Closer
	}{r, io.Discard, r}
}

func TestConnectFailures(t *testing.T) {
	exited := make(chan struct{})
	close(exited)
	if _, err := Connect(context.Background(), silentLine(t), exited, time.Minute, "", io.Discard); !errors.Is(err, ErrGuestExited) {
		t.Errorf("guest exited: err %v, want ErrGuestExited", err)
	}
	if _, err := Connect(context.Background(), silentLine(t), nil, 50*time.Millisecond, "", io.Discard); !errors.Is(err, ErrNotReady) {
		t.Errorf("timeout: err %v, want ErrNotReady", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Connect(ctx, silentLine(t), nil, time.Minute, "", io.Discard); !errors.Is(err, context.Canceled) {
		t.Errorf("cancel: err %v, want context.Canceled", err)
	}
}
