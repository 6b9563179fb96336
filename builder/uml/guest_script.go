package uml

import (
	"bytes"
	"context"
	"fmt"
	"strings"

	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"

	"github.com/packer-uml/packer-plugin-uml/uml/agent"
)

// runGuestScript runs a shell script in the guest's build environment (not in the chroot) and shows
// its output in the UI, prefixed with the step's name. A non-zero exit is an error that quotes the
// script's last error output.
func runGuestScript(ctx context.Context, client *agent.Client, ui packersdk.Ui, name, script string) error {
	out := &uiLines{ui: ui, prefix: name + ": "}
	var stderr bytes.Buffer
	errOut := &teeLines{lines: out, buf: &stderr}
	code, err := client.Exec(ctx, agent.ExecRequest{Argv: []string{"/bin/sh", "-e", "-c", script}}, nil, out, errOut)
	out.flush()
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if code != 0 {
		return fmt.Errorf("%s failed with exit status %d: %s", name, code, strings.TrimSpace(lastLines(stderr.String(), 5)))
	}
	return nil
}

// uiLines turns a byte stream into UI messages, one per line.
type uiLines struct {
	ui      packersdk.Ui
	prefix  string
	partial []byte
}

func (u *uiLines) Write(p []byte) (int, error) {
	u.partial = append(u.partial, p...)
	for {
		i := bytes.IndexByte(u.partial, '\n')
		if i < 0 {
			return len(p), nil
		}
		u.ui.Message(u.prefix + string(u.partial[:i]))
		u.partial = u.partial[i+1:]
	}
}

func (u *uiLines) flush() {
	if len(u.partial) > 0 {
		u.ui.Message(u.prefix + string(u.partial))
		u.partial = nil
	}
}

// teeLines shows error output like standard output and keeps it for the error message.
type teeLines struct {
	lines *uiLines
	buf   *bytes.Buffer
}

func (t *teeLines) Write(p []byte) (int, error) {
	t.buf.Write(p)
	return t.lines.Write(p)
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
