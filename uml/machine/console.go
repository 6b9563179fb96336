package machine

import (
	"bytes"
	"io"
	"strings"
	"sync"
)

// Console collects UML's console output: every byte goes to File (the console log), each complete
// line to OnLine (for the Packer log), and the last lines stay for error messages.
type Console struct {
	File   io.Writer
	OnLine func(string)
	Keep   int // how many last lines Tail returns

	mu      sync.Mutex // guards partial and tail
	partial []byte
	tail    []string
}

// Write implements io.Writer; UML's stdout and stderr both write here.
func (c *Console) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.File != nil {
		c.File.Write(p)
	}
	c.partial = append(c.partial, p...)
	for {
		i := bytes.IndexByte(c.partial, '\n')
		if i < 0 {
			break
		}
		line := strings.TrimRight(string(c.partial[:i]), "\r")
		c.partial = c.partial[i+1:]
		if c.OnLine != nil {
			c.OnLine(line)
		}
		c.tail = append(c.tail, line)
		if keep := max(c.Keep, 1); len(c.tail) > keep {
			c.tail = c.tail[len(c.tail)-keep:]
		}
	}
	return len(p), nil
}

// Tail returns the last lines written, with a partial last line if any.
func (c *Console) Tail() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := append([]string(nil), c.tail...)
	if len(c.partial) > 0 {
		t = append(t, string(c.partial))
	}
	return t
}
