package uml

import (
	"context"

	"github.com/hashicorp/packer-plugin-sdk/multistep"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"

	"github.com/packer-uml/packer-plugin-uml/uml/agent"
)

// stepUnmountTarget unmounts the target after the provisioners, so that the filesystem is clean
// before the guest powers off. If a process a provisioner left running keeps it busy, the guest's
// PID 1 ends every process and unmounts at power-off: the build goes on with a warning.
//
// Uses: ui, stateAgent, stateTargetMounted. Produces: clears stateTargetMounted.
type stepUnmountTarget struct{}

func (s *stepUnmountTarget) Run(ctx context.Context, state multistep.StateBag) multistep.StepAction {
	if mounted, _ := state.GetOk(stateTargetMounted); mounted != true {
		return multistep.ActionContinue
	}
	ui := state.Get(stateUI).(packersdk.Ui)
	client := state.Get(stateAgent).(*agent.Client)
	ui.Say("Unmounting the image...")
	if err := runGuestScript(ctx, client, ui, "umount", umountScript()); err != nil {
		ui.Error("Warning: " + err.Error() + " (the guest unmounts it at power-off, after ending every process)")
	}
	state.Put(stateTargetMounted, false)
	return multistep.ActionContinue
}

func (s *stepUnmountTarget) Cleanup(multistep.StateBag) {}
