package uml

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/packer-plugin-sdk/multistep"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"

	"github.com/packer-uml/packer-plugin-uml/uml/agent"
	"github.com/packer-uml/packer-plugin-uml/uml/machine"
)

// stepShutdown asks the guest to sync, unmount and power off, and waits for UML to exit. A guest that
// does not power off in time is killed and the build fails: its image may be incomplete.
//
// Uses: ui, stateAgent, stateMachine.
type stepShutdown struct {
	Timeout time.Duration
}

func (s *stepShutdown) Run(_ context.Context, state multistep.StateBag) multistep.StepAction {
	ui := state.Get(stateUI).(packersdk.Ui)
	client := state.Get(stateAgent).(*agent.Client)
	m := state.Get(stateMachine).(*machine.Machine)
	ui.Say("Shutting down the guest...")
	start := time.Now()
	if err := client.Shutdown(); err != nil {
		m.Kill(10 * time.Second)
		return haltf(state, "shutdown: %w%s", err, consoleTail(state))
	}
	if !m.Wait(s.Timeout) {
		m.Kill(10 * time.Second)
		return haltf(state, "the guest did not power off within shutdown_timeout (%s); UML was killed and the image may be incomplete%s", s.Timeout, consoleTail(state))
	}
	if err := m.Err(); err != nil {
		return haltf(state, "UML ended with an error after shutdown: %v%s", err, consoleTail(state))
	}
	ui.Say(fmt.Sprintf("Guest powered off in %s", time.Since(start).Round(time.Millisecond)))
	return multistep.ActionContinue
}

func (s *stepShutdown) Cleanup(multistep.StateBag) {}
