package uml

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/hashicorp/packer-plugin-sdk/multistep"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"
	"github.com/hashicorp/packer-plugin-sdk/packerbuilderdata"
)

// stepCreateImage creates the sparse image file. The filesystem on it is made in the guest by the
// mkfs module, as in rootstrap.
//
// Uses: ui. Produces: stateImagePath.
type stepCreateImage struct {
	Path    string
	SizeMiB int
	// RemoveOnFailure removes the image when the build fails or is cancelled: set when no
	// output directory is cleaned up instead (the rootstrap command).
	RemoveOnFailure bool
}

func (s *stepCreateImage) Run(_ context.Context, state multistep.StateBag) multistep.StepAction {
	ui := state.Get(stateUI).(packersdk.Ui)
	path, err := filepath.Abs(s.Path)
	if err != nil {
		return haltf(state, "create image: %w", err)
	}
	ui.Say(fmt.Sprintf("Creating a sparse %d MiB image %s...", s.SizeMiB, path))
	// O_EXCL: never write into a file that was there before this build. The mode is 0666 less the
	// user's umask, like any file a tool makes.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o666)
	if errors.Is(err, fs.ErrExist) {
		return haltf(state, "create image: %s already exists: remove it or name another image file", path)
	}
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
// build fails or is cancelled (unless -on-error=abort keeps it; -debug only pauses before cleanup);
// without an output directory it removes the image itself, so that no half image is left.
func (s *stepCreateImage) Cleanup(state multistep.StateBag) {
	if !s.RemoveOnFailure {
		return
	}
	_, cancelled := state.GetOk(multistep.StateCancelled)
	_, halted := state.GetOk(multistep.StateHalted)
	if path, ok := state.GetOk(stateImagePath); ok && (cancelled || halted) {
		os.Remove(path.(string))
	}
}
