package uml

import (
	"bytes"
	"testing"
)

func TestFullWatcherFindsSplitMessage(t *testing.T) {
	var out bytes.Buffer
	f := &fullWatcher{w: &out}
	f.Write([]byte("cp: error writing 'x': No space le"))
	if f.seen.Load() {
		t.Fatal("seen before the message was whole")
	}
	f.Write([]byte("ft on device\n"))
	if !f.seen.Load() {
		t.Error("a message split over two writes was missed")
	}
	if out.String() != "cp: error writing 'x': No space left on device\n" {
		t.Errorf("output changed: %q", out.String())
	}
}
