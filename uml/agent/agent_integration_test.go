package agent_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/packer-uml/packer-plugin-uml/internal/umltest"
	"github.com/packer-uml/packer-plugin-uml/uml/agent"
)

// These tests boot the real UML kernel with the real agent.

func TestExecStatusStreamsAndEnv(t *testing.T) {
	g := umltest.Boot(t, umltest.Options{})
	var out, errb bytes.Buffer
	code, err := g.Client.Exec(context.Background(), agent.ExecRequest{
		Argv: []string{"/bin/sh", "-c", `read line; echo "out:$line:$FOO:$TARGET:$HOST"; echo err >&2; exit 7`},
		Env:  []string{"FOO=bar"},
	}, strings.NewReader("hello\n"), &out, &errb)
	if err != nil {
		t.Fatal(err)
	}
	if code != 7 {
		t.Errorf("exit status %d, want 7", code)
	}
	if got, want := out.String(), "out:hello:bar:/tmp/target:/tmp/host\n"; got != want {
		t.Errorf("stdout %q, want %q", got, want)
	}
	if errb.String() != "err\n" {
		t.Errorf("stderr %q, want %q", errb.String(), "err\n")
	}
	// A command that does not exist is an error from the guest, not a hang.
	_, err = g.Client.Exec(context.Background(), agent.ExecRequest{Argv: []string{"/no/such/program"}}, nil, nil, nil)
	if err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("missing program: err %v, want 'no such file'", err)
	}
	g.Shutdown(t)
}

func TestExecCancelKillsProcessGroup(t *testing.T) {
	g := umltest.Boot(t, umltest.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		// The child sleep shares the process group; cancel must end both.
		_, err := g.Client.Exec(ctx, agent.ExecRequest{Argv: []string{"/bin/sh", "-c", "sleep 1000 & sleep 1000"}}, nil, nil, nil)
		done <- err
	}()
	time.Sleep(2 * time.Second)
	cancel()
	select {
	case err := <-done:
		if err != context.Canceled {
			t.Errorf("err %v, want context.Canceled", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("cancelled exec did not return")
	}
	// Nothing of it survives.
	deadline := time.Now().Add(10 * time.Second)
	for {
		out := g.Sh(t, "ps -eo comm | grep -c '^sleep$' || true")
		if strings.TrimSpace(out) == "0" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sleep processes survive the cancel: %s", out)
		}
		time.Sleep(200 * time.Millisecond)
	}
	g.Shutdown(t)
}

func TestUploadDownloadIntegrity(t *testing.T) {
	g := umltest.Boot(t, umltest.Options{})
	data := make([]byte, 24<<20+12345) // not a multiple of any chunk size
	rand.Read(data)
	want := sha256.Sum256(data)
	if err := g.Client.Upload("", "/tmp/up/big.bin", 0o640, 1700000000, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	out := g.Sh(t, "sha256sum /tmp/up/big.bin; stat -c '%a %u %g %Y' /tmp/up/big.bin")
	if !strings.Contains(out, hexSum(want)) {
		t.Errorf("guest sha256 differs: %s", out)
	}
	if !strings.Contains(out, "640 0 0 1700000000") {
		t.Errorf("mode, owner or mtime not kept: %s", out)
	}
	var back bytes.Buffer
	if err := g.Client.Download("", "/tmp/up/big.bin", &back); err != nil {
		t.Fatal(err)
	}
	if sha256.Sum256(back.Bytes()) != want {
		t.Errorf("downloaded bytes differ (got %d bytes)", back.Len())
	}
	// A missing file is the guest's error, in its words.
	err := g.Client.Download("", "/tmp/nothing-here", io.Discard)
	if err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("download of a missing file: %v", err)
	}
	g.Shutdown(t)
}

func hexSum(s [32]byte) string {
	const digits = "0123456789abcdef"
	var b strings.Builder
	for _, c := range s {
		b.WriteByte(digits[c>>4])
		b.WriteByte(digits[c&15])
	}
	return b.String()
}

// TestOrphansReapedStatusesKept: PID 1 reaps orphans the kernel hands it, and never takes the exit
// status of a command the agent itself waits for.
func TestOrphansReapedStatusesKept(t *testing.T) {
	g := umltest.Boot(t, umltest.Options{})
	for i := 0; i < 20; i++ {
		// Each command leaves an orphan (the subshell's sleep) that ends a moment later.
		code, err := g.Client.Exec(context.Background(), agent.ExecRequest{
			Argv: []string{"/bin/sh", "-c", "(sleep 0.05 &); exit $0", strconv.Itoa(i)},
		}, nil, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if code != i {
			t.Fatalf("exit status %d, want %d (a reaper took it?)", code, i)
		}
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		out := g.Sh(t, "ps -eo stat= | grep -c '^Z' || true")
		if strings.TrimSpace(out) == "0" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("zombies left: %s\n%s", out, g.Sh(t, "ps -eo pid,ppid,stat,comm"))
		}
		time.Sleep(500 * time.Millisecond)
	}
	g.Shutdown(t)
}
