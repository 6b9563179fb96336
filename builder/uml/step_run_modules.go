package uml

import (
	"context"
	"fmt"

	"github.com/hashicorp/packer-plugin-sdk/multistep"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"
)

// stepRunModules runs a list of modules in order; the first failure fails the build (rootstrap's
// rule), unless the debug shell says to go on.
//
// Uses: ui, stateModuleRunner.
type stepRunModules struct {
	// Field names the list in messages: "modules" or "post_modules".
	Field string
	Names []string
}

func (s *stepRunModules) Run(ctx context.Context, state multistep.StateBag) multistep.StepAction {
	if len(s.Names) == 0 {
		return multistep.ActionContinue
	}
	ui := state.Get(stateUI).(packersdk.Ui)
	runner := state.Get(stateModuleRunner).(*moduleRunner)
	for i, name := range s.Names {
		if err := runner.Run(ctx, name, "", nil, nil, nil); err != nil {
			if ctx.Err() != nil {
				return haltf(state, "%s[%d] %s: cancelled", s.Field, i, name)
			}
			return haltf(state, "%s[%d]: %w", s.Field, i, err)
		}
	}
	ui.Say(fmt.Sprintf("%s done: %d module(s)", s.Field, len(s.Names)))
	return multistep.ActionContinue
}

func (s *stepRunModules) Cleanup(multistep.StateBag) {}
