package uml

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/packer-plugin-sdk/multistep"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"

	"github.com/packer-uml/packer-plugin-uml/modules"
	"github.com/packer-uml/packer-plugin-uml/uml/agent"
	"github.com/packer-uml/packer-plugin-uml/uml/fsroot"
)

// Communicator is Packer's view of the guest: commands and files go through the agent. With Root set
// (chroot mode) commands run chrooted there and paths are paths inside it.
//
// It is safe for concurrent use: every call opens its own stream on the agent's session, so there
// is no lock here (unlike docker's communicator, whose `docker exec` runs one at a time).
type Communicator struct {
	Client *agent.Client
	// Root is the guest directory commands chroot into and paths resolve in; "" for the build
	// environment.
	Root string
	// ConsoleLog is named in errors about a guest that went away.
	ConsoleLog string
	// Exited reports whether UML has ended, and how; nil when it is unknown.
	Exited func() (bool, error)
	// ConsoleTail returns the console's last lines, formatted for a message; nil for none.
	ConsoleTail func() string
	// Modules runs the modules the `module` provisioner asks for (see modules.Invocation); nil
	// refuses them.
	Modules *moduleRunner
	// ImageSizeMiB is named when a command fails because the image is full.
	ImageSizeMiB int
}

var _ packersdk.Communicator = new(Communicator)

// exitNotStarted is the status of a command that could not start (as a shell reports a missing
// command).
const exitNotStarted = 127

// Start runs cmd.Command with /bin/sh -c and returns at once; SetExited is called exactly once.
func (c *Communicator) Start(ctx context.Context, cmd *packersdk.RemoteCmd) error {
	if inv, ok, err := modules.ParseInvocation(cmd.Command); ok {
		return c.startModule(ctx, cmd, inv, err)
	}
	req := agent.ExecRequest{Argv: []string{"/bin/sh", "-c", cmd.Command}, Root: c.Root}
	// The command holds the provisioner's environment: keep sensitive values out of the log.
	log.Print(packersdk.LogSecretFilter.FilterString(fmt.Sprintf("uml communicator: running %q (root %q)", cmd.Command, c.Root)))
	go func() {
		// A full image shows as ENOSPC in the command's error output; say which setting fixes it.
		stderr := &fullWatcher{w: cmd.Stderr}
		code, err := c.Client.Exec(ctx, req, cmd.Stdin, cmd.Stdout, stderr)
		if err == nil && code != 0 && stderr.seen.Load() && cmd.Stderr != nil {
			fmt.Fprintln(cmd.Stderr, fullImageHint(c.ImageSizeMiB))
		}
		if err != nil {
			var remote *agent.RemoteError
			switch {
			case errors.As(err, &remote):
				// The guest could not start the command: say why where the user looks.
				if cmd.Stderr != nil {
					fmt.Fprintln(cmd.Stderr, remote.Msg)
				}
				log.Printf("uml communicator: %v", err)
				cmd.SetExited(exitNotStarted)
			default:
				// Say so where the user looks: Packer alone would suggest expect_disconnect.
				msg := c.gone(err).Error()
				log.Printf("uml communicator: %s", msg)
				if cmd.Stderr != nil {
					fmt.Fprintln(cmd.Stderr, msg)
				}
				cmd.SetExited(packersdk.CmdDisconnect)
			}
			return
		}
		cmd.SetExited(code)
	}()
	return nil
}

// Upload writes r to the file dst, owned by root; with fi its mode and mtime are kept, without it
// the file gets mode 0644. Missing parent directories are created.
func (c *Communicator) Upload(dst string, r io.Reader, fi *os.FileInfo) error {
	perm, mtime := uint32(0o644), int64(0)
	if fi != nil {
		perm = fsroot.UnixMode((*fi).Mode())
		mtime = (*fi).ModTime().Unix()
	}
	return c.wrap(c.Client.Upload(c.Root, dst, perm, mtime, r))
}

// UploadDir copies the host directory src into the guest directory dst, as rsync does: with a
// trailing slash on src its contents land in dst, without one src itself lands in dst/<base of src>.
// Modes, mtimes and symlinks are kept; files become root's (the host user's uid means nothing in the
// image). exclude holds patterns (filepath.Match) matched against each path below src and its base name.
func (c *Communicator) UploadDir(dst string, src string, exclude []string) error {
	contents := strings.HasSuffix(src, "/")
	abs, err := filepath.Abs(src)
	if err != nil {
		return err
	}
	root, err := fsroot.Open(filepath.Dir(abs))
	if err != nil {
		return err
	}
	defer root.Close()
	pr, pw := io.Pipe()
	go func() {
		pw.CloseWithError(root.Archive(filepath.Base(abs), pw, fsroot.ArchiveOptions{
			Contents: contents, Exclude: exclude, Owner: &fsroot.Owner{UID: 0, GID: 0},
		}))
	}()
	err = c.Client.Untar(c.Root, dst, pr)
	pr.CloseWithError(io.ErrClosedPipe) // stops the archiver if the guest failed first
	return c.wrap(err)
}

// Download copies the guest file src to w.
func (c *Communicator) Download(src string, w io.Writer) error {
	return c.wrap(c.Client.Download(c.Root, src, w))
}

// DownloadDir copies the guest directory src into the host directory dst, with UploadDir's slash
// rule. Owners are kept when the host side runs as root; device nodes are skipped otherwise (an
// ordinary user cannot make them). Entries that would land outside dst are refused.
func (c *Communicator) DownloadDir(src string, dst string, exclude []string) error {
	contents := strings.HasSuffix(src, "/")
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	root, err := fsroot.Open(dst)
	if err != nil {
		return err
	}
	defer root.Close()
	pr, pw := io.Pipe()
	tarErr := make(chan error, 1)
	go func() {
		err := c.Client.Tar(c.Root, src, contents, exclude, pw)
		pw.CloseWithError(err)
		tarErr <- err
	}()
	root0 := os.Geteuid() == 0
	skipped, err := root.Extract(".", pr, fsroot.ExtractOptions{KeepOwners: root0, SkipDevices: !root0})
	pr.CloseWithError(io.ErrClosedPipe)
	if terr := <-tarErr; terr != nil {
		return c.wrap(terr)
	}
	if err != nil {
		return err
	}
	if skipped > 0 {
		log.Printf("uml communicator: download of %s skipped %d device nodes or FIFOs", src, skipped)
	}
	return nil
}

// wrap adds where to look when the guest is gone.
func (c *Communicator) wrap(err error) error {
	if err == nil {
		return nil
	}
	var remote *agent.RemoteError
	if errors.As(err, &remote) {
		return err
	}
	return c.gone(err)
}

// gone describes a lost session: whether UML died (and how), and where its console log is.
func (c *Communicator) gone(err error) error {
	if c.Exited != nil {
		// UML's exit closes the line a moment before its process is reaped.
		for i := 0; i < 20; i++ {
			if exited, how := c.Exited(); exited {
				// A failed build removes the output directory, console log included: quote it here.
				tail := ""
				if c.ConsoleTail != nil {
					tail = c.ConsoleTail()
				}
				return fmt.Errorf("the guest died (UML exited: %v) during this command (%w); its console log is %s (packer build -on-error=abort keeps it)%s",
					how, err, c.ConsoleLog, tail)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	tail := ""
	if c.ConsoleTail != nil {
		tail = c.ConsoleTail()
	}
	// UML still runs but its agent is gone: the channel's keepalive found no answer (uml/channel),
	// a hung kernel or a wedged agent. UML is killed when the build cleans up.
	return fmt.Errorf("the guest stopped answering: the agent's channel closed (%w) while UML still runs; its console log is %s (packer build -on-error=abort keeps it)%s",
		err, c.ConsoleLog, tail)
}

// consoleLogPathOf returns the console log path of this build, from the config.
func consoleLogPathOf(state multistep.StateBag) string {
	return state.Get(stateConfig).(*Config).consoleLog()
}

// startModule runs a module for the `module` provisioner, in the build environment whatever Root
// is, with the build's module environment and the provisioner's own variables.
func (c *Communicator) startModule(ctx context.Context, cmd *packersdk.RemoteCmd, inv modules.Invocation, decodeErr error) error {
	if decodeErr != nil {
		return decodeErr
	}
	if c.Modules == nil {
		return errors.New("this communicator cannot run modules")
	}
	log.Printf("uml communicator: running module %s (%q)", inv.Name, inv.Path)
	go func() {
		err := c.Modules.Run(ctx, inv.Name, inv.Path, inv.Env, orDiscard(cmd.Stdout), orDiscard(cmd.Stderr))
		if err != nil {
			if cmd.Stderr != nil {
				fmt.Fprintln(cmd.Stderr, err)
			}
			cmd.SetExited(1)
			return
		}
		cmd.SetExited(0)
	}()
	return nil
}

func orDiscard(w io.Writer) io.Writer {
	if w == nil {
		return io.Discard
	}
	return w
}
