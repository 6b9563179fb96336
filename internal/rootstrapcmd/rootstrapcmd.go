// Package rootstrapcmd is `packer-plugin-uml rootstrap`: rootstrap's own command line, without
// Packer. It reads rootstrap.conf from rootstrap's places, runs the modules in UML and writes the
// image, with the same builder a `packer build` uses.
package rootstrapcmd

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"

	"github.com/packer-uml/packer-plugin-uml/builder/uml"
	"github.com/packer-uml/packer-plugin-uml/modules"
)

// Arg is the first argument that selects this command.
const Arg = "rootstrap"

const usage = `usage: packer-plugin-uml rootstrap [-s MB|--image-size MB] [-o logfile] [-u args|--umlargs args] imagefile

Builds a root filesystem image in imagefile as rootstrap(1) did: the configuration is read from
/etc/rootstrap/rootstrap.conf, ~/.rootstrap/rootstrap.conf and ./rootstrap.conf (later files
override earlier ones option by option), and the modules of [global] modules run in User-Mode Linux.
`

// mandatory are the [global] options the rootstrap manual says must be set.
var mandatory = []string{"fstype", "PATH", "initialsize", "modules"}

// Main runs the command with args (those after "rootstrap") and returns the exit status.
func Main(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet(Arg, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage) }
	var size int
	var logFile, umlArgs string
	fs.IntVar(&size, "s", 0, "initial size of the image in MB (overrides initialsize)")
	fs.IntVar(&size, "image-size", 0, "same as -s")
	fs.StringVar(&logFile, "o", "", "write the output to this file instead of standard output")
	fs.StringVar(&umlArgs, "u", "", "more arguments for User-Mode Linux (added to umlargs)")
	fs.StringVar(&umlArgs, "umlargs", "", "same as -u")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return 2
	}
	image := fs.Arg(0)

	out := stdout
	if logFile != "" {
		f, err := os.OpenFile(logFile, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o666)
		if err != nil {
			fmt.Fprintf(stderr, "rootstrap: -o: %v\n", err)
			return 1
		}
		defer f.Close()
		out = f
	}
	if err := run(image, size, umlArgs, out); err != nil {
		fmt.Fprintf(out, "rootstrap: %v\n", err)
		if out != stdout {
			fmt.Fprintf(stderr, "rootstrap: %v\n", err)
		}
		return 1
	}
	return 0
}

func run(image string, size int, umlArgs string, out io.Writer) error {
	workDir, err := os.Getwd()
	if err != nil {
		return err
	}
	home, _ := os.UserHomeDir()
	conf, read, err := modules.Load(modules.ConfigPaths(home, workDir))
	if err != nil {
		return err
	}
	if len(read) == 0 {
		return fmt.Errorf("no configuration: write a rootstrap.conf in %s (or ~/.rootstrap/rootstrap.conf, /etc/rootstrap/rootstrap.conf)", workDir)
	}
	var missing []string
	for _, opt := range mandatory {
		if opt == "initialsize" && size > 0 {
			continue
		}
		if strings.TrimSpace(conf.Global(opt)) == "" {
			missing = append(missing, opt)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("[global] must set %s (read: %s)", strings.Join(missing, ", "), strings.Join(read, ", "))
	}
	raws := map[string]interface{}{}
	if size > 0 {
		raws["image_size"] = size
	}
	if f := strings.Fields(umlArgs); len(f) > 0 {
		raws["uml_args"] = f
	}
	b := new(uml.Builder)
	if _, err := b.PrepareRootstrap(conf, image, raws); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ui := &packersdk.BasicUi{Reader: os.Stdin, Writer: out, ErrorWriter: out}
	fmt.Fprintf(out, "rootstrap: configuration from %s\n", strings.Join(read, ", "))
	artifact, err := b.Run(ctx, ui, &packersdk.DispatchHook{})
	if err != nil {
		return err
	}
	if artifact == nil {
		return errors.New("no image was built")
	}
	fmt.Fprintf(out, "rootstrap: %s\n", artifact.String())
	return nil
}
