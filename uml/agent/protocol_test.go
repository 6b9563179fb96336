package agent

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"io"
	"log"
	"os"
	"path/filepath"
	"testing"

	"github.com/packer-uml/packer-plugin-uml/uml/channel"
)

// pipePair connects a Client and a Server over two os.Pipes, as the serial line does, without UML.
func pipePair(t *testing.T, staging string) *Client {
	t.Helper()
	hr, gw, _ := os.Pipe() // guest → host
	gr, hw, _ := os.Pipe() // host → guest
	guest := struct {
		io.Reader
		io.Writer
		io.Closer
	}{gr, gw, gw}
	host := struct {
		io.Reader
		io.Writer
		io.Closer
	}{hr, hw, hw}
	go func() {
		sess, err := channel.Serve(guest, ProtocolVersion, "", io.Discard)
		if err != nil {
			t.Error(err)
			return
		}
		(&Server{Log: log.New(io.Discard, "", 0), StagingDir: staging}).Serve(sess)
	}()
	sess, err := channel.Dial(host, ProtocolVersion, "", io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	c := NewClient(sess, staging)
	t.Cleanup(func() { c.Close(); gr.Close(); hr.Close() })
	return c
}

func TestUploadThenDownloadOverPipes(t *testing.T) {
	t.Run("frames", func(t *testing.T) { testRoundTrips(t, pipePair(t, "")) })
	t.Run("staged", func(t *testing.T) { testRoundTrips(t, pipePair(t, t.TempDir())) })
}

func testRoundTrips(t *testing.T, c *Client) {
	dir := t.TempDir()
	for _, n := range []int{0, 1, 4096, chunkSize + 1, 3 << 20} {
		data := make([]byte, n)
		rand.Read(data)
		p := filepath.Join(dir, "f")
		if err := c.Upload("", p, 0o600, 0, bytes.NewReader(data)); err != nil {
			t.Fatalf("upload %d: %v", n, err)
		}
		var back bytes.Buffer
		if err := c.Download("", p, &back); err != nil {
			t.Fatalf("download %d: %v", n, err)
		}
		if sha256.Sum256(back.Bytes()) != sha256.Sum256(data) {
			t.Fatalf("round trip of %d bytes changed the data", n)
		}
	}
}
