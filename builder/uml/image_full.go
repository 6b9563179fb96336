package uml

import (
	"bytes"
	"fmt"
	"io"
	"sync/atomic"
)

// enospc is how every tool in the guest reports a full filesystem (strerror(ENOSPC)).
var enospc = []byte("No space left on device")

// fullImageHint explains a full image: the one setting that fixes it.
func fullImageHint(sizeMiB int) string {
	return fmt.Sprintf("the image is full (No space left on device): raise image_size (now %d MiB); the file is sparse, so a generous size costs no disk until used", sizeMiB)
}

// fullWatcher passes output through and notes whether it reported a full filesystem. A message split
// across two writes is still found: it keeps the tail of the previous write.
type fullWatcher struct {
	w    io.Writer
	tail []byte
	seen atomic.Bool
}

func (f *fullWatcher) Write(p []byte) (int, error) {
	joined := append(f.tail, p...)
	if bytes.Contains(joined, enospc) {
		f.seen.Store(true)
	}
	if keep := len(enospc) - 1; len(joined) > keep {
		joined = joined[len(joined)-keep:]
	}
	f.tail = append(f.tail[:0], joined...)
	if f.w == nil {
		return len(p), nil
	}
	return f.w.Write(p)
}
