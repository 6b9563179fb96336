package uml

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/hashicorp/packer-plugin-sdk/multistep"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"
	"github.com/hashicorp/packer-plugin-sdk/packerbuilderdata"
)

// stepCreateImage creates the sparse image file. The filesystem on it is made in the guest (see
// stepMountTarget), as rootstrap's mkfs module does.
//
// Uses: ui. Produces: stateImagePath.
type stepCreateImage struct {
	Dir     string
	Name    string
	SizeMiB int
}

func (s *stepCreateImage) Run(_ context.Context, state multistep.StateBag) multistep.StepAction {
	ui := state.Get(stateUI).(packersdk.Ui)
	path, err := filepath.Abs(filepath.Join(s.Dir, s.Name))
	if err != nil {
		return haltf(state, "create image: %w", err)
	}
	ui.Say(fmt.Sprintf("Creating a sparse %d MiB image %s...", s.SizeMiB, path))
	// O_EXCL: never write into a file that was there before this build. The mode is 0666 less the
	// user's umask, like any file a tool makes.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o666)
	if err != nil {
		return haltf(state, "create image: %w", err)
	}
	err = f.Truncate(int64(s.SizeMiB) << 20)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return haltf(state, "create image %s of %d MiB: %w", path, s.SizeMiB, err)
	}
	state.Put(stateImagePath, path)
	(&packerbuilderdata.GeneratedData{State: state}).Put("ImagePath", path)
	return multistep.ActionContinue
}

// Cleanup leaves the image to StepOutputDir, which removes the whole output directory when the
// build fails or is cancelled (unless -on-error=abort keeps it; -debug only pauses before cleanup).
func (s *stepCreateImage) Cleanup(multistep.StateBag) {}
